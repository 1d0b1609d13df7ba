"""Where nodes are at simulated time t. Positions are computed lazily when a link asks; nothing
ticks per device. Each model is a small class with `position_m(t_s)` (None while not in the area),
`speed_mps(t_s)`, `entry_time_s()` (when it enters; 0 if there from the start) and `exit_time_s()`
(when it leaves the area for good; inf if never), so a link knows exactly when its device comes
and goes. Models whose velocity changes along the way also say `motion_change_s(t_s)`: the next
time it may change (a pause ends, a Gauss–Markov update, a SUMO step).

Models: `Static`, `RoadSegment` (Poisson arrivals on a straight road), `RandomWaypoint`,
`GaussMarkov`, `UavPath` (hover / circle / waypoints, with jitter), `TraceTrack` (replay of a SUMO
FCD or CSV trace) and `SumoVehicle` (live SUMO through libsumo).

Each model's scenario block (`StaticMobility`, `RoadMobility`, ...: `mobility: {kind: ...}`) sits
beside it and makes it with `build(rng, index_in_group, centre_xy, ...)`; `MOBILITY_CONFIGS` lists
them for `cosim.scenario`'s union. SUMO itself is imported only when a `SumoVehicle` is built.
"""
from .area import AreaMobility
from .base import MobilityConfig
from .gauss_markov import GaussMarkov, GaussMarkovMobility
from .random_waypoint import RandomWaypoint, RandomWaypointMobility
from .road import RoadMobility, RoadSegment, draw_speed_mps, poisson_arrival_times_s
from .static import Static, StaticMobility
from .sumo import SumoMobility
from .trace import TraceError, TraceMobility, TraceTrack, load_trace, vehicles_in_order
from .uav import UavMobility, UavPath

#: Every mobility config, one per `kind`.
MOBILITY_CONFIGS = (StaticMobility, RoadMobility, RandomWaypointMobility, GaussMarkovMobility, UavMobility,
                    TraceMobility, SumoMobility)

__all__ = ["AreaMobility", "GaussMarkov", "GaussMarkovMobility", "MOBILITY_CONFIGS", "MobilityConfig",
           "RandomWaypoint", "RandomWaypointMobility", "RoadMobility", "RoadSegment", "Static", "StaticMobility",
           "SumoMobility", "TraceError", "TraceMobility", "TraceTrack", "UavMobility", "UavPath", "draw_speed_mps",
           "load_trace", "poisson_arrival_times_s", "vehicles_in_order"]
