"""A node that does not move: at a given position, or drawn once in a rectangle around the AP."""
from __future__ import annotations

from typing import Literal

import math

import numpy as np
from pydantic import Field, model_validator

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


#: Positions are drawn by rejection (uniform in the area, kept outside min_distance_m): at least this
#: share of the area must lie outside that circle, so a draw takes at most ~100 tries on average.
MIN_DRAWABLE_SHARE = 0.01


def share_outside_circle(width_m: float, depth_m: float, radius_m: float) -> float:
    """Share of a width x depth rectangle centred on the origin that lies outside the circle of
    `radius_m` around it: 1 - 4 * (quarter circle ∩ [0, w/2] x [0, d/2]) / (w d), using
    ∫ sqrt(r² - x²) dx = (x sqrt(r² - x²) + r² asin(x / r)) / 2."""
    a, b, r = width_m / 2, depth_m / 2, radius_m
    if a <= 0 or b <= 0:
        return 0.0
    if r <= 0:
        return 1.0

    def under_arc(x: float) -> float:   # ∫_0^x sqrt(r² - t²) dt, x <= r
        return (x * math.sqrt(max(r * r - x * x, 0.0)) + r * r * math.asin(min(x / r, 1.0))) / 2

    x_cross = math.sqrt(max(r * r - b * b, 0.0))   # where the arc leaves the top edge y = b
    x_end = min(a, r)
    x_flat = min(x_cross, a)                       # over [0, x_flat) the arc is above the rectangle
    inside = b * x_flat + (under_arc(x_end) - under_arc(x_flat) if x_end > x_flat else 0.0)
    return max(0.0, 1.0 - inside / (a * b))


class StaticMobility(MobilityConfig):
    kind: Literal["static"] = "static"
    position_m: Vec3 | None = Field(None, description="fixed position; null = drawn in area_m")
    area_m: Vec2 = Field([400.0, 400.0], description="width, depth of the area (centred on the first access point)")
    min_distance_m: float = Field(20.0, ge=0, description="drawn positions keep this far from the first access point")
    height_m: float = Field(1.5, ge=0, description="antenna height of a drawn position")

    @model_validator(mode="after")
    def _drawable(self):
        if self.position_m is None:
            share = share_outside_circle(*self.area_m, self.min_distance_m)
            if share < MIN_DRAWABLE_SHARE:
                raise ValueError(
                    f"area_m {self.area_m} leaves {share:.2%} of its area farther than min_distance_m "
                    f"{self.min_distance_m:g} m from its centre, where positions are drawn; allowed: an area with at "
                    f"least {MIN_DRAWABLE_SHARE:.0%} of it beyond min_distance_m (e.g. width and depth above "
                    f"2 x min_distance_m), or a position_m")
        return self

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
