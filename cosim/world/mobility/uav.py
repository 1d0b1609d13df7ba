"""A UAV's flight: hover at a point, circle at constant speed, or fly a list of waypoints.

The three flight patterns of the UAV-communication literature (Zeng, Zhang & Lim, "Wireless
communications with unmanned aerial vehicles", IEEE Commun. Mag. 54(5), 2016; circular flight as in
Zeng & Zhang, "Energy-efficient UAV communication with trajectory optimization", IEEE TWC 16(6), 2017).
A hovering multirotor is not still: its position wanders by `position_jitter_std_m` (Gaussian per
axis, redrawn every `jitter_block_s`) and its body shakes, which mis-points a narrow THz beam. The
angular jitter is `jitter_std_rad(t)`: the per-axis std of `channels.antenna.draw_pointing_error_rad`
(the `UAV_JITTER_STD_RAD` "hovering" / "flying" defaults unless overridden), so a link draws its
pointing error as `draw_pointing_error_rad(rng, jitter_std_rad=uav.jitter_std_rad(t))`.

Positions are computed lazily from t; the jitter of block k is drawn from a generator seeded by
(the node's seed, k), so any query order gives the same trajectory.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from channels.antenna import UAV_JITTER_STD_RAD

from ...config import Vec2, Vec3
from .base import MobilityConfig

MODES = ("hover", "circle", "waypoints")
#: Default period at which the hover position jitter is redrawn, s (ASSUMED: the ~10 Hz attitude
#: wander of a hovering multirotor).
JITTER_BLOCK_S = 0.1


class UavPath:
    """Where a UAV is at time t, and how much its body shakes.

    mode "hover": at `centre_m` (x, y) at `altitude_m`.
    mode "circle": radius `radius_m` around `centre_m` at `altitude_m`, `speed_mps` along the circle,
    starting at angle `phase_rad` (drawn uniformly if None), counter-clockwise.
    mode "waypoints": straight legs through `waypoints_m` (≥ 2 points, x, y, z) at `speed_mps`; with
    `loop` it flies back to the first point and repeats, otherwise it hovers at the last one.
    """

    def __init__(self, mode: str, *, rng: np.random.Generator, centre_m=(0.0, 0.0), altitude_m: float = 100.0,
                 radius_m: float = 100.0, speed_mps: float = 10.0, waypoints_m=None, loop: bool = True,
                 phase_rad: float | None = None, position_jitter_std_m: float = 0.0,
                 jitter_block_s: float = JITTER_BLOCK_S, hover_jitter_std_rad: float | None = None,
                 flying_jitter_std_rad: float | None = None):
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r} unknown; allowed: {', '.join(MODES)}")
        self.mode = mode
        self.centre_m = np.array([float(centre_m[0]), float(centre_m[1]), float(altitude_m)])
        self.radius_m, self.speed = float(radius_m), float(speed_mps)
        self.loop = bool(loop)
        self.position_jitter_std_m = float(position_jitter_std_m)
        self.jitter_block_s = float(jitter_block_s)
        self._sigma_rad = {"hovering": UAV_JITTER_STD_RAD["hovering"] if hover_jitter_std_rad is None
                           else float(hover_jitter_std_rad),
                           "flying": UAV_JITTER_STD_RAD["flying"] if flying_jitter_std_rad is None
                           else float(flying_jitter_std_rad)}
        self._seed = int(rng.integers(2**62))
        if mode == "circle":
            if self.radius_m <= 0 or self.speed < 0:
                raise ValueError("circle needs radius_m > 0 and speed_mps >= 0")
            self.phase_rad = float(rng.uniform(0, 2 * math.pi)) if phase_rad is None else float(phase_rad)
        if mode == "waypoints":
            pts = np.asarray(waypoints_m, dtype=float) if waypoints_m is not None else np.zeros((0, 3))
            if pts.ndim != 2 or pts.shape[0] < 2 or pts.shape[1] != 3:
                raise ValueError("waypoints_m: needs a list of at least 2 points (x, y, z)")
            if self.speed <= 0:
                raise ValueError("waypoints need speed_mps > 0")
            if self.loop:
                pts = np.vstack([pts, pts[:1]])
            self._pts = pts
            legs = np.linalg.norm(np.diff(pts, axis=0), axis=1)
            self._cum_m = np.concatenate([[0.0], np.cumsum(legs)])
            self._total_m = float(self._cum_m[-1])

    # --- the protocol every mobility model has ------------------------------------------------
    def position_m(self, t_s: float) -> np.ndarray:
        return self._nominal_m(t_s) + self._jitter_m(t_s)

    def speed_mps(self, t_s: float) -> float:
        return 0.0 if self.is_hovering(t_s) else self.speed

    def exit_time_s(self) -> float:
        return math.inf

    def entry_time_s(self) -> float:
        return 0.0

    # --- UAV specifics ------------------------------------------------------------------------
    def is_hovering(self, t_s: float) -> bool:
        if self.mode == "hover":
            return True
        if self.mode == "circle":
            return self.speed == 0
        return (not self.loop or self._total_m == 0) and self.speed * t_s >= self._total_m

    def jitter_std_rad(self, t_s: float) -> float:
        """Per-axis std of the beam pointing error now (hovering vs flying), rad."""
        return self._sigma_rad["hovering" if self.is_hovering(t_s) else "flying"]

    def _nominal_m(self, t_s: float) -> np.ndarray:
        if self.mode == "hover":
            return self.centre_m.copy()
        if self.mode == "circle":
            ang = self.phase_rad + self.speed * t_s / self.radius_m
            return self.centre_m + self.radius_m * np.array([math.cos(ang), math.sin(ang), 0.0])
        s = self.speed * t_s
        if self.loop and self._total_m > 0:
            s %= self._total_m
        elif s >= self._total_m:
            return self._pts[-1].copy()
        i = int(np.searchsorted(self._cum_m, s, side="right")) - 1
        i = min(max(i, 0), len(self._pts) - 2)
        leg = self._cum_m[i + 1] - self._cum_m[i]
        frac = 0.0 if leg == 0 else (s - self._cum_m[i]) / leg
        return self._pts[i] + frac * (self._pts[i + 1] - self._pts[i])

    def _jitter_m(self, t_s: float) -> np.ndarray:
        if self.position_jitter_std_m <= 0:
            return np.zeros(3)
        block = int(math.floor(max(t_s, 0.0) / self.jitter_block_s))
        return np.random.default_rng([self._seed, block]).normal(0.0, self.position_jitter_std_m, 3)


class UavMobility(MobilityConfig):
    kind: Literal["uav"]
    mode: Literal["hover", "circle", "waypoints"] = Field("circle", description="hover at centre_m, circle around "
                                                                                "it, or fly waypoints_m")
    centre_m: Vec2 = Field([0.0, 0.0], description="hover point / circle centre (x, y)")
    altitude_m: float = Field(100.0, gt=0, description="flight height (hover and circle)")
    radius_m: float = Field(100.0, gt=0, description="circle radius")
    speed_mps: float = Field(10.0, ge=0, description="flight speed along the circle or between waypoints")
    waypoints_m: list[Vec3] | None = Field(None, description="mode waypoints: at least 2 points (x, y, z)")
    loop: bool = Field(True, description="waypoints: fly back to the first and repeat; false = stop at the last")
    phase_rad: float | None = Field(None, description="circle: start angle; null = drawn")
    position_jitter_std_m: float = Field(0.1, ge=0, description="position wander per axis (hovering body)")
    hover_jitter_std_rad: float | None = Field(None, ge=0, description="null = channels.antenna default")
    flying_jitter_std_rad: float | None = Field(None, ge=0, description="null = channels.antenna default")

    @field_validator("waypoints_m")
    @classmethod
    def _two_points(cls, v):
        if v is not None and len(v) < 2:
            raise ValueError(f"needs at least 2 points, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _mode_needs(self):
        if self.mode == "waypoints":
            if self.waypoints_m is None:
                raise ValueError("waypoints_m: mode waypoints needs a list of at least 2 points")
            if self.speed_mps <= 0:
                raise ValueError("speed_mps: mode waypoints needs speed_mps > 0")
        return self

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> UavPath:
        return UavPath(self.mode, rng=rng, centre_m=self.centre_m, altitude_m=self.altitude_m,
                       radius_m=self.radius_m, speed_mps=self.speed_mps, waypoints_m=self.waypoints_m,
                       loop=self.loop, phase_rad=self.phase_rad, position_jitter_std_m=self.position_jitter_std_m,
                       hover_jitter_std_rad=self.hover_jitter_std_rad, flying_jitter_std_rad=self.flying_jitter_std_rad)

    def ut_heights_m(self) -> list[tuple[str, float]]:
        if self.mode == "waypoints":
            return [("waypoints_m", float(p[2])) for p in self.waypoints_m]
        return [("altitude_m", self.altitude_m)]
