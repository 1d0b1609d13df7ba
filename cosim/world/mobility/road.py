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
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ...config import Vec2
from .base import MobilityConfig, shared_rng

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
    from scipy.stats import truncnorm   # here: scipy.stats costs half a second to import

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

    def motion_change_s(self, t_s: float) -> float:
        """On a loop road, the next time after t the vehicle jumps from the road's end back to its
        start (a jump in position: links re-evaluate there, not some time later); inf otherwise."""
        if not self.wrap:
            return math.inf
        if t_s < self.entry_s:
            return self.entry_s
        laps = math.floor(self.travelled_m(t_s) / self.length_m) + 1
        wrap_s = self.entry_s + (laps * self.length_m - self.offset_m) / self.speed
        while wrap_s <= t_s:   # float rounding at the instant of a wrap: the one after it
            laps += 1
            wrap_s = self.entry_s + (laps * self.length_m - self.offset_m) / self.speed
        return wrap_s


class RoadMobility(MobilityConfig):
    kind: Literal["road"]
    start_m: Vec2 = Field([-1000.0, 50.0], description="x, y where the road starts; it runs along +x")
    length_m: float = Field(2000.0, gt=0, description="road length from `start_m` along +x")
    speed_mps: Vec2 = Field([15.0, 25.0], description="speeds drawn uniformly in [low, high]")
    lanes: int = Field(1, ge=1, description="device k of the group drives in lane k mod lanes")
    lane_width_m: float = Field(3.5, gt=0, description="lane k is offset k × lane_width_m in y")
    wrap: bool = Field(False, description="loop road: re-enter at the start instead of leaving")
    height_m: float = Field(1.5, ge=0, description="antenna height above the road")
    arrival_rate_per_s: float | None = Field(None, gt=0, description="Poisson arrivals at the start: device k "
                                             "enters at the k-th arrival; null = all on the road at t = 0")
    speed_distribution: Literal["uniform", "truncnorm"] = Field("uniform", description="how speeds are drawn in "
                                                                "speed_mps: uniform, or a normal truncated to it")
    speed_mean_mps: float | None = Field(None, gt=0, description="truncnorm mean; null = middle of speed_mps")
    speed_std_mps: float | None = Field(None, gt=0, description="truncnorm std; null = a quarter of the range")

    @field_validator("speed_mps")
    @classmethod
    def _ordered(cls, v):
        if v[0] <= 0 or v[1] < v[0]:
            raise ValueError("needs 0 < low <= high")
        return v

    @model_validator(mode="after")
    def _arrivals_need_open_road(self):
        if self.arrival_rate_per_s is not None and self.wrap:
            raise ValueError("wrap: must be false with arrival_rate_per_s (arriving vehicles leave at the end)")
        return self

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> RoadSegment:
        lane = index_in_group % self.lanes
        speed = draw_speed_mps(rng, *self.speed_mps, distribution=self.speed_distribution,
                               mean_mps=self.speed_mean_mps, std_mps=self.speed_std_mps)
        if self.arrival_rate_per_s is None:
            offset, entry = rng.uniform(0, self.length_m), 0.0
        else:  # a pool of slots: slot k enters at the start at the k-th Poisson arrival (same draws for the group)
            arrivals = poisson_arrival_times_s(shared_rng(rng, group_rng, "arrivals"), self.arrival_rate_per_s,
                                               group_size)
            offset, entry = 0.0, float(arrivals[index_in_group])
        return RoadSegment(self.start_m, self.length_m, speed_mps=speed, start_offset_m=offset, wrap=self.wrap,
                           lane_offset_m=lane * self.lane_width_m, height_m=self.height_m, entry_s=entry)
