"""Where nodes are at simulated time t. Positions are computed lazily when a link asks; nothing
ticks per device. Each model is a small class with `position_m(t_s)` (None while not in the area),
`speed_mps(t_s)`, `entry_time_s()` (when it enters; 0 if there from the start) and `exit_time_s()`
(when it leaves the area for good; inf if never), so a link knows exactly when its device comes
and goes. Models whose velocity changes along the way also say `motion_change_s(t_s)`: the next
time it may change (a pause ends, a Gauss–Markov update, a SUMO step).

Models: `Static`, `RoadSegment` (Poisson arrivals on a straight road), `RandomWaypoint`,
`GaussMarkov`, `UavPath` (hover / circle / waypoints, with jitter), `TraceTrack` (replay of a SUMO
FCD or CSV trace) and `SumoVehicle` (live SUMO through libsumo).
"""
from .gauss_markov import GaussMarkov
from .random_waypoint import RandomWaypoint
from .road import RoadSegment, draw_speed_mps, poisson_arrival_times_s
from .static import Static
from .trace import TraceError, TraceTrack, load_trace, vehicles_in_order
from .uav import UavPath

__all__ = ["GaussMarkov", "RandomWaypoint", "RoadSegment", "Static", "TraceError", "TraceTrack", "UavPath",
           "draw_speed_mps", "load_trace", "poisson_arrival_times_s", "vehicles_in_order"]
