"""Gauss–Markov mobility in a rectangle, for pedestrians and robots.

Liang & Haas, "Predictive distance-based mobility management for PCS networks", INFOCOM 1999
(as stated in Camp, Boleng & Davies, "A survey of mobility models for ad hoc network research",
WCMC 2(5), 2002, eq. 1-2). Every `step_s` the speed and direction are updated with memory α:

    s_n = α s_{n-1} + (1 − α) s̄ + sqrt(1 − α²) w_s,   w_s ~ N(0, σ_s²)
    d_n = α d_{n-1} + (1 − α) d̄ + sqrt(1 − α²) w_d,   w_d ~ N(0, σ_d²)

and the node moves in a straight line at (s_n, d_n) until the next update. α = 1 is constant
velocity, α = 0 is a memoryless random walk. At a border the node is reflected (angle of incidence
= angle of reflection); the mean direction d̄ is reflected with it, so memory does not pull the node
back into the wall (Camp et al. instead steer d̄ away from the edges; reflection keeps the node
exactly inside the area). A negative speed draw is clipped to 0.

The path is a list of vertices (every update, every bounce), extended on demand in order from the
node's own generator: any query order sees the same path, and nothing ticks per node.
"""
from __future__ import annotations

import bisect
import math
from typing import Literal

import numpy as np
from pydantic import Field

from .area import AreaMobility

#: Update period of speed and direction, s (Camp et al. 2002 use a fixed time step; ASSUMED 1 s).
STEP_S = 1.0


class GaussMarkov:
    """A node moving by the Gauss–Markov model in [x_min, x_max] × [y_min, y_max] at `height_m`."""

    def __init__(self, area_min_m, area_max_m, alpha: float, mean_speed_mps: float, rng: np.random.Generator,
                 mean_direction_rad: float | None = None, speed_std_mps: float = 1.0,
                 direction_std_rad: float = 0.5, step_s: float = STEP_S, height_m: float = 1.5):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("alpha: needs 0 <= alpha <= 1")
        self.lo = np.asarray(area_min_m, dtype=float)[:2]
        self.hi = np.asarray(area_max_m, dtype=float)[:2]
        if np.any(self.hi <= self.lo):
            raise ValueError("area: needs a non-empty rectangle")
        self.alpha, self.s_mean = float(alpha), float(mean_speed_mps)
        self.s_std, self.d_std = float(speed_std_mps), float(direction_std_rad)
        self.step_s, self.height_m, self.rng = float(step_s), float(height_m), rng
        self.d_mean = float(rng.uniform(0, 2 * math.pi)) if mean_direction_rad is None else float(mean_direction_rad)
        self._speed, self._dir = self.s_mean, self.d_mean   # state of the current step
        self._next_update = 0.0
        self._t: list[float] = [0.0]
        self._p: list[np.ndarray] = [rng.uniform(self.lo, self.hi)]
        self._v: list[np.ndarray] = []

    def _update(self) -> None:
        """Liang & Haas eq.: new speed and direction from the previous ones (skipped at t = 0)."""
        if self._next_update > 0:
            a, root = self.alpha, math.sqrt(max(1.0 - self.alpha ** 2, 0.0))
            w_s, w_d = self.rng.normal(0.0, self.s_std), self.rng.normal(0.0, self.d_std)
            self._speed = max(a * self._speed + (1 - a) * self.s_mean + root * w_s, 0.0)
            self._dir = a * self._dir + (1 - a) * self.d_mean + root * w_d

    def _extend(self, t_s: float) -> None:
        while self._t[-1] <= t_s:
            if self._t[-1] >= self._next_update:
                self._update()
                self._next_update += self.step_s
            p = self._p[-1]
            v = self._speed * np.array([math.cos(self._dir), math.sin(self._dir)])
            end = self._next_update
            # first wall the straight move would cross before `end`
            hit_dt, axis = end - self._t[-1], -1
            for k in range(2):
                if v[k] > 0:
                    dt = (self.hi[k] - p[k]) / v[k]
                elif v[k] < 0:
                    dt = (self.lo[k] - p[k]) / v[k]
                else:
                    continue
                if dt < hit_dt:
                    hit_dt, axis = max(dt, 0.0), k
            self._v.append(v)
            q = np.clip(p + v * hit_dt, self.lo, self.hi)
            self._t.append(self._t[-1] + hit_dt if axis >= 0 else end)
            self._p.append(q)
            if axis == 0:     # vertical wall: mirror the x component
                self._dir, self.d_mean = math.pi - self._dir, math.pi - self.d_mean
            elif axis == 1:   # horizontal wall: mirror the y component
                self._dir, self.d_mean = -self._dir, -self.d_mean

    def _vertex(self, t_s: float) -> int:
        self._extend(t_s)
        return bisect.bisect_right(self._t, t_s) - 1

    def position_m(self, t_s: float) -> np.ndarray:
        i = self._vertex(t_s)
        xy = np.clip(self._p[i] + self._v[i] * (t_s - self._t[i]), self.lo, self.hi)
        return np.array([xy[0], xy[1], self.height_m])

    def velocity_mps(self, t_s: float) -> np.ndarray:
        return self._v[self._vertex(t_s)].copy()

    def speed_mps(self, t_s: float) -> float:
        return float(np.linalg.norm(self.velocity_mps(t_s)))

    def motion_change_s(self, t_s: float) -> float:
        """The next time the velocity changes (a Gauss–Markov update or a bounce)."""
        return self._t[self._vertex(t_s) + 1]

    def entry_time_s(self) -> float:
        return 0.0

    def exit_time_s(self) -> float:
        return math.inf


class GaussMarkovMobility(AreaMobility):
    kind: Literal["gauss_markov"]
    alpha: float = Field(0.75, ge=0, le=1, description="memory: 1 = constant velocity, 0 = random walk")
    mean_speed_mps: float = Field(1.0, ge=0, description="mean speed s̄ the speed reverts to")
    mean_direction_rad: float | None = Field(None, description="null = drawn uniformly per node")
    speed_std_mps: float = Field(0.5, ge=0, description="std σ_s of the speed's random term")
    direction_std_rad: float = Field(0.5, ge=0, description="std σ_d of the direction's random term")
    step_s: float = Field(STEP_S, gt=0, description="update period of speed and direction")

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> GaussMarkov:
        lo, hi = self.corners_m()
        return GaussMarkov(lo, hi, self.alpha, self.mean_speed_mps, rng, mean_direction_rad=self.mean_direction_rad,
                           speed_std_mps=self.speed_std_mps, direction_std_rad=self.direction_std_rad,
                           step_s=self.step_s, height_m=self.height_m)
