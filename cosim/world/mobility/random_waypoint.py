"""Random waypoint mobility in a rectangle, for pedestrians and robots.

Johnson & Maltz, "Dynamic source routing in ad hoc wireless networks", Mobile Computing (Kluwer),
1996, ch. 5: a node pauses `pause_s`, then picks a destination uniformly in the area and a speed
uniformly in [min, max], walks there in a straight line, pauses again, and so on. The minimum speed
must be > 0: with 0 the average speed decays towards zero (Yoon, Liu & Noble, "Random waypoint
considered harmful", INFOCOM 2003).

The trajectory is a list of legs extended on demand from the node's own generator, always in
order, so any sequence of queries sees the same path and no event ticks per node.
"""
from __future__ import annotations

import bisect
import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...config import Vec2
from .area import AreaMobility


class RandomWaypoint:
    """A node doing random waypoint in [x_min, x_max] × [y_min, y_max] at height `height_m`."""

    def __init__(self, area_min_m, area_max_m, speed_mps, pause_s: float, rng: np.random.Generator,
                 height_m: float = 1.5):
        self.lo = np.asarray(area_min_m, dtype=float)[:2]
        self.hi = np.asarray(area_max_m, dtype=float)[:2]
        self.v_min, self.v_max = float(speed_mps[0]), float(speed_mps[1])
        if not 0 < self.v_min <= self.v_max:
            raise ValueError("speed_mps: needs 0 < min <= max")
        if np.any(self.hi <= self.lo):
            raise ValueError("area: needs a non-empty rectangle")
        self.pause_s, self.height_m, self.rng = float(pause_s), float(height_m), rng
        # leg i: at p[i] until depart[i], then moves at velocity vel[i] to arrive at p[i+1] at t[i+1]
        self._t = [0.0]                      # arrival time at waypoint i
        self._p = [rng.uniform(self.lo, self.hi)]
        self._depart: list[float] = []
        self._vel: list[np.ndarray] = []
        self._speed: list[float] = []

    def _extend(self, t_s: float) -> None:
        while self._t[-1] <= t_s:
            start = self._p[-1]
            dest = self.rng.uniform(self.lo, self.hi)
            speed = float(self.rng.uniform(self.v_min, self.v_max))
            depart = self._t[-1] + self.pause_s
            dist = float(np.linalg.norm(dest - start))
            self._depart.append(depart)
            self._speed.append(speed)
            self._vel.append((dest - start) / dist * speed if dist > 0 else np.zeros(2))
            self._t.append(depart + dist / speed)
            self._p.append(dest)

    def _leg(self, t_s: float) -> int:
        self._extend(t_s)
        return bisect.bisect_right(self._t, t_s) - 1

    def position_m(self, t_s: float) -> np.ndarray:
        i = self._leg(t_s)
        xy = self._p[i] if t_s <= self._depart[i] else self._p[i] + self._vel[i] * (t_s - self._depart[i])
        return np.array([xy[0], xy[1], self.height_m])

    def speed_mps(self, t_s: float) -> float:
        i = self._leg(t_s)
        return 0.0 if t_s < self._depart[i] else self._speed[i]

    def motion_change_s(self, t_s: float) -> float:
        """The next time the node's velocity changes (end of a pause or arrival at a waypoint)."""
        i = self._leg(t_s)
        return self._depart[i] if t_s < self._depart[i] else self._t[i + 1]

    def entry_time_s(self) -> float:
        return 0.0

    def exit_time_s(self) -> float:
        return math.inf


class RandomWaypointMobility(AreaMobility):
    kind: Literal["random_waypoint"]
    speed_mps: Vec2 = Field([0.5, 1.5], description="speed drawn uniformly in [min, max] per leg (min > 0)")
    pause_s: float = Field(10.0, ge=0, description="pause at each waypoint")

    @field_validator("speed_mps")
    @classmethod
    def _ordered(cls, v):
        if v[0] <= 0 or v[1] < v[0]:
            raise ValueError(f"speed range [{v[0]}, {v[1]}]: needs 0 < min <= max")
        return v

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> RandomWaypoint:
        lo, hi = self.corners_m()
        return RandomWaypoint(lo, hi, self.speed_mps, self.pause_s, rng, height_m=self.height_m)
