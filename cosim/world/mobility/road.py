"""A straight road segment along x (the vehicular-FL setting): a vehicle drives at constant speed
from where it starts and is gone once it passes the end, or re-enters at the start on a loop road."""
from __future__ import annotations

import numpy as np


class RoadSegment:
    """Vehicle on the road from (x0, y) to (x0 + length_m, y) at height `height_m`.

    `start_offset_m` is where along the road it is at t = 0. With `wrap=False` it leaves for good
    at the end (position None: out of every cell); with `wrap=True` it loops (a ring road seen as a
    segment), so it keeps passing by the access point.
    """

    def __init__(self, start_m, length_m: float, speed_mps: float, start_offset_m: float, wrap: bool,
                 lane_offset_m: float = 0.0, height_m: float = 1.5):
        self.x0, self.y0 = float(start_m[0]), float(start_m[1]) + lane_offset_m
        self.length_m = float(length_m)
        self.speed = float(speed_mps)
        self.offset_m = float(start_offset_m)
        self.wrap = wrap
        self.height_m = height_m

    def travelled_m(self, t_s: float) -> float:
        return self.offset_m + self.speed * t_s

    def position_m(self, t_s: float):
        if t_s >= self.exit_time_s():  # decided on time, so it agrees exactly with exit_time_s
            return None
        s = self.travelled_m(t_s) % self.length_m
        return np.array([self.x0 + s, self.y0, self.height_m])

    def exit_time_s(self) -> float:
        """Simulated time at which the vehicle leaves the segment (inf on a loop road)."""
        return float("inf") if self.wrap else (self.length_m - self.offset_m) / self.speed

    def speed_mps(self, t_s: float) -> float:
        return self.speed if self.position_m(t_s) is not None else 0.0
