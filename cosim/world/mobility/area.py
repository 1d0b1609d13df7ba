"""The rectangle pedestrians and robots move in: the config both area models share."""
from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from ...config import Vec2
from .base import MobilityConfig


class AreaMobility(MobilityConfig):
    """A rectangle of `area_m` (width, depth) centred on `centre_m`, for pedestrians and robots."""
    area_m: Vec2 = Field([400.0, 400.0], description="width, depth of the area")
    centre_m: Vec2 = Field([0.0, 0.0], description="x, y of the area's centre")
    height_m: float = Field(1.5, ge=0, description="antenna height")

    @field_validator("area_m")
    @classmethod
    def _positive_area(cls, v):
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError("needs width > 0 and depth > 0")
        return v

    def corners_m(self) -> tuple[np.ndarray, np.ndarray]:
        """(x_min, y_min), (x_max, y_max)."""
        half = np.asarray(self.area_m) / 2
        return np.asarray(self.centre_m) - half, np.asarray(self.centre_m) + half
