"""Where nodes are at simulated time t. Positions are computed lazily when a link asks; nothing
ticks per device. Each model is a small class with `position_m(t_s)` (None once gone) and
`speed_mps(t_s)` and `exit_time_s()` (when it leaves the area
for good; inf if never), so a link knows exactly when its device is gone."""
from .road import RoadSegment
from .static import Static

__all__ = ["RoadSegment", "Static"]
