"""A node that does not move."""
from __future__ import annotations

import numpy as np


class Static:
    def __init__(self, position_m):
        self._position_m = np.asarray(position_m, dtype=float)

    def position_m(self, t_s: float) -> np.ndarray:
        return self._position_m

    def speed_mps(self, t_s: float) -> float:
        return 0.0

    def exit_time_s(self) -> float:
        return float("inf")
