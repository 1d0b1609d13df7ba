"""A straight road segment along x (the vehicular-FL setting): a vehicle drives at constant speed
from where it starts and is gone once it passes the end, or re-enters at the start on a loop road.

Traffic entering the road: vehicles arrive at the start by a Poisson process (exponential gaps of
mean 1 / `arrival_rate_per_s`, the free-flow highway arrival model, e.g. Wisitpongphan et al.,
"Routing in sparse vehicular ad hoc wireless networks", IEEE JSAC 25(8), 2007), each at a speed drawn
uniformly in a range or from a truncated normal (the highway free-flow speed model of the
vehicular-FL literature, e.g. Xiao et al., "Vehicle selection and resource optimization for
federated learning in vehicular edge computing", IEEE T-ITS 23(8), 2022). A group of devices is a
pool of slots: slot k enters at the k-th arrival time and is absent (position None) before it
enters and after it leaves, so new vehicles join as clients while others leave for good.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import truncnorm

SPEED_DISTRIBUTIONS = ("uniform", "truncnorm")


def poisson_arrival_times_s(rng: np.random.Generator, rate_per_s: float, count: int) -> np.ndarray:
    """The first `count` arrival times of a Poisson process of rate `rate_per_s` starting at t = 0."""
    if rate_per_s <= 0:
        raise ValueError("arrival_rate_per_s must be > 0")
    return np.cumsum(rng.exponential(1.0 / rate_per_s, size=count))


def draw_speed_mps(rng: np.random.Generator, low_mps: float, high_mps: float, distribution: str = "uniform",
                   mean_mps: float | None = None, std_mps: float | None = None) -> float:
    """One vehicle's speed in [low, high]: uniform, or a normal N(mean, std²) truncated to the range
    (mean defaults to the middle, std to a quarter of the range)."""
    if distribution == "uniform" or high_mps == low_mps:
        return float(rng.uniform(low_mps, high_mps))
    if distribution != "truncnorm":
        raise ValueError(f"speed_distribution: {distribution!r}; allowed: {', '.join(SPEED_DISTRIBUTIONS)}")
    mean = (low_mps + high_mps) / 2 if mean_mps is None else float(mean_mps)
    std = (high_mps - low_mps) / 4 if std_mps is None else float(std_mps)
    a, b = (low_mps - mean) / std, (high_mps - mean) / std
    return float(truncnorm.rvs(a, b, loc=mean, scale=std, random_state=rng))


class RoadSegment:
    """Vehicle on the road from (x0, y) to (x0 + length_m, y) at height `height_m`.

    `start_offset_m` is where along the road it is when it enters, at `entry_s` (t = 0 unless it
    arrives later). With `wrap=False` it leaves for good at the end (position None: out of every
    cell); with `wrap=True` it loops (a ring road seen as a segment), so it keeps passing by the
    access point. Before `entry_s` it is not on the road yet (position None, not gone).
    """

    def __init__(self, start_m, length_m: float, speed_mps: float, start_offset_m: float, wrap: bool,
                 lane_offset_m: float = 0.0, height_m: float = 1.5, entry_s: float = 0.0):
        self.x0, self.y0 = float(start_m[0]), float(start_m[1]) + lane_offset_m
        self.length_m = float(length_m)
        self.speed = float(speed_mps)
        self.offset_m = float(start_offset_m)
        self.wrap = wrap
        self.height_m = height_m
        self.entry_s = float(entry_s)
        self._exit_s = math.inf if wrap else self.entry_s + (self.length_m - self.offset_m) / self.speed

    def travelled_m(self, t_s: float) -> float:
        return self.offset_m + self.speed * (t_s - self.entry_s)

    def position_m(self, t_s: float):
        if t_s >= self._exit_s or t_s < self.entry_s:  # decided on time: agrees with exit/entry_time_s
            return None
        s = self.travelled_m(t_s) % self.length_m
        return np.array([self.x0 + s, self.y0, self.height_m])

    def entry_time_s(self) -> float:
        """Simulated time at which the vehicle enters the road (0 if on it from the start)."""
        return self.entry_s

    def exit_time_s(self) -> float:
        """Simulated time at which the vehicle leaves the segment (inf on a loop road)."""
        return self._exit_s

    def speed_mps(self, t_s: float) -> float:
        return self.speed if self.position_m(t_s) is not None else 0.0
