"""Real road traffic from Eclipse SUMO, stepped in lock-step with the simulated clock.

SUMO (Lopez et al., "Microscopic traffic simulation using SUMO", IEEE ITSC 2018) runs in-process
through `libsumo` (the TraCI API without the socket; TraCI itself is the fallback when libsumo does
not import). Positions are asked lazily at a time t, so `SumoWorld.advance_to(t)` steps SUMO (by
`step_s`) until it has sampled t, never backwards; every vehicle's sampled track is kept, so an
earlier time is answered by linear interpolation between SUMO's samples. Per step one call collects
all vehicles: `simulation.subscribe` delivers the departed / arrived ids, each departed vehicle is
subscribed once to its position and speed, and `vehicle.getAllSubscriptionResults()` returns them
all (no call per vehicle per step).

A sample carries SUMO's own time label, as in its FCD output: the state after executing step T is
time T. cosim's t = 0 is the configuration's begin time. cosim devices map onto SUMO vehicles by id,
or in order of departure (slot k is the k-th vehicle to depart); a vehicle is absent (position None)
before it departs and after it arrives, and then leaves for good.

libsumo holds one SUMO per process: starting a world closes the previous one (its tracks stay
readable up to where it was stepped). Worlds with the same configuration, step and seed are shared.
"""
from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...config import given, is_file
from .base import MobilityConfig, shared_rng


def sumo_home() -> str:
    """$SUMO_HOME, set from the `eclipse-sumo` package when unset."""
    if not os.environ.get("SUMO_HOME"):
        import sumo  # the eclipse-sumo wheel
        os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    return os.environ["SUMO_HOME"]


def _binding():
    """(module, argv0): libsumo in-process, else TraCI over a socket with the sumo binary."""
    home = sumo_home()
    try:
        import libsumo
        return libsumo, "sumo"
    except ImportError:  # pragma: no cover - only without the libsumo wheel
        import traci
        return traci, str(Path(home) / "bin" / "sumo")


class _Track:
    __slots__ = ("t0", "xyz", "speed", "arrived")

    def __init__(self, t0: float):
        self.t0, self.xyz, self.speed, self.arrived = t0, [], [], False


class SumoWorld:
    """One running SUMO and the tracks of every vehicle it has moved so far."""

    _active: "SumoWorld | None" = None

    @classmethod
    def shared(cls, sumocfg, step_s: float = 1.0, seed: int = 0, extra_args=()) -> "SumoWorld":
        key = (str(Path(sumocfg).resolve()), float(step_s), int(seed), tuple(extra_args))
        if cls._active is not None and cls._active.key == key:
            return cls._active
        return cls(sumocfg, step_s, seed, extra_args)

    def __init__(self, sumocfg, step_s: float = 1.0, seed: int = 0, extra_args=()):
        self.key = (str(Path(sumocfg).resolve()), float(step_s), int(seed), tuple(extra_args))
        if not Path(sumocfg).is_file():
            raise FileNotFoundError(f"sumocfg: {sumocfg} not found")
        self.step_s = float(step_s)
        self.tracks: dict[str, _Track] = {}
        self.departure_order: list[str] = []
        self.sampled_s = -math.inf     # cosim time of the latest sample
        self.done = False              # SUMO has no vehicles left (or was closed)
        if SumoWorld._active is not None:
            SumoWorld._active.close()
        self._sumo, argv0 = _binding()
        self._sumo.start([argv0, "-c", str(sumocfg), "--step-length", repr(self.step_s), "--seed", str(int(seed)),
                          "--no-step-log", "true", "--no-warnings", "true", *extra_args])
        SumoWorld._active = self
        from libsumo import constants as tc  # noqa: PLC0415 - same constants for traci
        self._pos_var, self._speed_var = tc.VAR_POSITION3D, tc.VAR_SPEED
        self._dep_var, self._arr_var = tc.VAR_DEPARTED_VEHICLES_IDS, tc.VAR_ARRIVED_VEHICLES_IDS
        self._begin_s = float(self._sumo.simulation.getTime())
        self._sumo.simulation.subscribe([self._dep_var, self._arr_var])

    def close(self) -> None:
        if SumoWorld._active is self:
            self._sumo.close()
            SumoWorld._active = None
        self.done = True

    def advance_to(self, t_s: float) -> None:
        """Step SUMO until its latest sample is at or after cosim time t_s (monotone)."""
        while not self.done and self.sampled_s < t_s:
            self._step()

    def _step(self) -> None:
        sumo = self._sumo
        label_s = float(sumo.simulation.getTime()) - self._begin_s
        try:
            sumo.simulationStep()
        except Exception:  # SUMO reached its configured end
            self.close()
            return
        sim_res = sumo.simulation.getSubscriptionResults()
        for vid in sim_res.get(self._dep_var, ()):
            sumo.vehicle.subscribe(vid, [self._pos_var, self._speed_var])
            self.tracks[vid] = _Track(label_s)
            self.departure_order.append(vid)
        for vid in sim_res.get(self._arr_var, ()):
            if vid in self.tracks:
                self.tracks[vid].arrived = True
        pos_var, speed_var = self._pos_var, self._speed_var
        for vid, res in sumo.vehicle.getAllSubscriptionResults().items():
            tr = self.tracks.get(vid)
            if tr is not None and not tr.arrived:
                tr.xyz.append(res[pos_var])
                tr.speed.append(res[speed_var])
        self.sampled_s = label_s
        if sumo.simulation.getMinExpectedNumber() == 0:
            self.close()

    def track(self, vid: str | None) -> _Track | None:
        return None if vid is None else self.tracks.get(vid)


class SumoVehicle:
    """A cosim device driven by a SUMO vehicle: by `vehicle_id`, or the `slot`-th to depart."""

    def __init__(self, world: SumoWorld, slot: int = 0, vehicle_id: str | None = None, height_m: float | None = None):
        self.world, self.slot, self.vehicle_id, self.height_m = world, slot, vehicle_id, height_m

    def _vid(self) -> str | None:
        if self.vehicle_id is not None:
            return self.vehicle_id
        order = self.world.departure_order
        return order[self.slot] if self.slot < len(order) else None

    def _sample(self, t_s: float):
        """(track, index, fraction) for time t, or None when the vehicle is not in the network."""
        self.world.advance_to(t_s)
        tr = self.world.track(self._vid())
        if tr is None or not tr.xyz or t_s < tr.t0:
            return None
        x = (t_s - tr.t0) / self.world.step_s
        n = len(tr.xyz)
        if x > n - 1 + 1e-9:
            return None     # arrived (left the network) before t
        i = min(int(x), n - 1)
        return tr, i, min(max(x - i, 0.0), 1.0)

    def position_m(self, t_s: float):
        s = self._sample(t_s)
        if s is None:
            return None
        tr, i, f = s
        a = tr.xyz[i]
        if f > 0 and i + 1 < len(tr.xyz):
            b = tr.xyz[i + 1]
            a = (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2]))
        z = a[2] if self.height_m is None else self.height_m
        return np.array([a[0], a[1], z])

    def speed_mps(self, t_s: float) -> float:
        s = self._sample(t_s)
        return 0.0 if s is None else float(s[0].speed[s[1]])

    def entry_time_s(self) -> float:
        tr = self.world.track(self._vid())
        return tr.t0 if tr is not None else math.inf

    def exit_time_s(self) -> float:
        tr = self.world.track(self._vid())
        if tr is not None and tr.arrived:
            return tr.t0 + (len(tr.xyz) - 1) * self.world.step_s
        return math.inf

    def motion_change_s(self, t_s: float) -> float:
        """SUMO's next step after t (its speed may change then); inf once SUMO has nothing left."""
        if self.world.done and self.world.sampled_s < t_s:
            return math.inf
        return (math.floor(t_s / self.world.step_s + 1e-9) + 1) * self.world.step_s


class SumoMobility(MobilityConfig):
    kind: Literal["sumo"]
    sumocfg: str = Field("scenarios/sumo/grid.sumocfg", description="a SUMO .sumocfg (network + routes)")
    step_s: float = Field(1.0, gt=0, description="SUMO step, advanced in lock-step with the simulated clock")
    vehicle_ids: list[str] | None = Field(None, description="device k drives vehicle_ids[k]; null = the k-th "
                                          "vehicle to depart")
    height_m: float | None = Field(1.5, ge=0, description="antenna height; null = SUMO's z")

    @field_validator("sumocfg")
    @classmethod
    def _valid_cfg(cls, v):
        p = Path(v)
        if not is_file(p):
            raise ValueError(f"{given(v)}: file not found")
        try:
            root = ET.parse(p).getroot()
        except (ET.ParseError, OSError) as exc:
            raise ValueError(f"{v}: not valid XML ({exc})") from exc
        files = {tag: el.get("value") for tag in ("net-file", "route-files") for el in root.iter(tag)}
        if not files.get("net-file"):
            raise ValueError(f"{v}: not a SUMO configuration (no <input><net-file>)")
        for tag, names in files.items():
            for name in (names or "").split(","):
                if name.strip() and not is_file(p.parent / name.strip()):
                    raise ValueError(f"{v}: its {tag} {name.strip()!r} is missing")
        return v

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> SumoVehicle:
        seed = int(shared_rng(rng, group_rng, "sumo").integers(2**31 - 1))   # one SUMO per group and seed
        world = SumoWorld.shared(self.sumocfg, self.step_s, seed)
        vid = self.vehicle_ids[index_in_group] if self.vehicle_ids and index_in_group < len(self.vehicle_ids) else None
        return SumoVehicle(world, slot=index_in_group, vehicle_id=vid, height_m=self.height_m)
