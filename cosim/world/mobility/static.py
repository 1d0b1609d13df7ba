"""A node that does not move: at a given position, or drawn once in a rectangle around the AP."""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ...config import Vec2, Vec3
from .base import MobilityConfig


class Static:
    def __init__(self, position_m):
        self._position_m = np.asarray(position_m, dtype=float)

    def position_m(self, t_s: float) -> np.ndarray:
        return self._position_m

    def speed_mps(self, t_s: float) -> float:
        return 0.0

    def exit_time_s(self) -> float:
        return float("inf")


class StaticMobility(MobilityConfig):
    kind: Literal["static"] = "static"
    position_m: Vec3 | None = Field(None, description="fixed position; null = drawn in area_m")
    area_m: Vec2 = Field([400.0, 400.0], description="width, depth of the area (centred on the first access point)")
    min_distance_m: float = Field(20.0, ge=0, description="drawn positions keep this far from the first access point")
    height_m: float = Field(1.5, ge=0)

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> Static:
        if self.position_m is not None:
            return Static(self.position_m)
        half = np.asarray(self.area_m) / 2
        while True:  # uniform in the rectangle, outside the AP's minimum distance
            xy = rng.uniform(-half, half)
            if np.hypot(*xy) >= self.min_distance_m:
                return Static([centre_xy[0] + xy[0], centre_xy[1] + xy[1], self.height_m])

    def ut_heights_m(self) -> list[tuple[str, float]]:
        if self.position_m is not None:
            return [("position_m", float(self.position_m[2]))]
        return [("height_m", self.height_m)]
