"""Replay a recorded mobility trace without SUMO: SUMO FCD output or a CSV of t, id, x, y, z.

SUMO's floating-car-data output (`sumo --fcd-output`, https://sumo.dlr.de/docs/Simulation/Output/FCDOutput.html)
is `<fcd-export><timestep time=".."><vehicle id=".." x=".." y=".." [z=".."] .../>`; a CSV has the
header `t,id,x,y,z` (z optional). A vehicle's position is linearly interpolated between its samples
and is None outside its recorded span (before it appears, after it disappears: gone for good).
"""
from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from ...config import ScenarioError, given, is_file
from .base import MobilityConfig


class TraceError(ValueError):
    """A trace file that is missing or cannot be read; the message says what is wrong."""


def load_trace(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{vehicle id: (times_s sorted, xyz (n, 3))} from an FCD XML or CSV file."""
    p = Path(path)
    if not is_file(p):
        raise TraceError(f"{given(str(p))}: file not found")
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    try:
        if p.suffix.lower() == ".csv":
            with p.open(newline="") as fh:
                reader = csv.DictReader(fh)
                missing = {"t", "id", "x", "y"} - set(reader.fieldnames or ())
                if missing:
                    raise TraceError(f"{p}: CSV needs columns t,id,x,y[,z]; missing {', '.join(sorted(missing))}")
                for r in reader:
                    rows.setdefault(r["id"], []).append((float(r["t"]), float(r["x"]), float(r["y"]),
                                                         float(r.get("z") or 0.0)))
        else:
            for _, el in ET.iterparse(p, events=("end",)):
                if el.tag == "timestep":
                    t = float(el.get("time"))
                    for v in el.iter("vehicle"):
                        rows.setdefault(v.get("id"), []).append((t, float(v.get("x")), float(v.get("y")),
                                                                 float(v.get("z") or 0.0)))
                    el.clear()
    except TraceError:
        raise
    except (ET.ParseError, TypeError, ValueError, KeyError, OSError) as exc:
        raise TraceError(f"{p}: not a SUMO FCD XML or t,id,x,y,z CSV trace ({exc})") from exc
    if not rows:
        raise TraceError(f"{p}: no vehicle samples in the trace")
    out = {}
    for vid, samples in rows.items():
        a = np.array(sorted(samples))
        out[vid] = (a[:, 0], a[:, 1:4])
    return out


def vehicles_in_order(trace: dict) -> list[str]:
    """Vehicle ids by first appearance (ties by id): the order devices map onto them."""
    return sorted(trace, key=lambda v: (trace[v][0][0], v))


class TraceTrack:
    """One vehicle of a trace (times_s, xyz); an empty track is a vehicle that never appears."""

    def __init__(self, times_s, xyz, height_m: float | None = None):
        self.t = np.asarray(times_s, dtype=float)
        self.xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
        self.height_m = height_m

    def position_m(self, t_s: float):
        if len(self.t) == 0 or t_s < self.t[0] or t_s > self.t[-1]:
            return None
        i = int(np.searchsorted(self.t, t_s, side="right")) - 1
        i = min(i, len(self.t) - 1)
        p = self.xyz[i]
        if i + 1 < len(self.t) and self.t[i + 1] > self.t[i]:
            p = p + (t_s - self.t[i]) / (self.t[i + 1] - self.t[i]) * (self.xyz[i + 1] - p)
        p = p.copy()
        if self.height_m is not None:
            p[2] = self.height_m
        return p

    def speed_mps(self, t_s: float) -> float:
        if self.position_m(t_s) is None or len(self.t) < 2:
            return 0.0
        i = min(int(np.searchsorted(self.t, t_s, side="right")) - 1, len(self.t) - 2)
        dt = self.t[i + 1] - self.t[i]
        return float(np.linalg.norm(self.xyz[i + 1] - self.xyz[i]) / dt) if dt > 0 else 0.0

    def motion_change_s(self, t_s: float) -> float:
        """The next sample time after t (velocity is constant between samples)."""
        j = int(np.searchsorted(self.t, t_s, side="right"))
        return float(self.t[j]) if j < len(self.t) else math.inf

    def entry_time_s(self) -> float:
        return float(self.t[0]) if len(self.t) else math.inf

    def exit_time_s(self) -> float:
        return float(self.t[-1]) if len(self.t) else math.inf


class TraceMobility(MobilityConfig):
    kind: Literal["trace"]
    file: str = Field(description="SUMO FCD output XML, or a CSV with columns t,id,x,y[,z]")
    vehicle_ids: list[str] | None = Field(None, description="device k replays vehicle_ids[k]; null = vehicles "
                                          "in order of first appearance")
    height_m: float | None = Field(None, ge=0, description="fixed antenna height; null = the trace's z")

    @field_validator("file")
    @classmethod
    def _readable(cls, v):
        load_trace(v)   # TraceError (a ValueError) names what is wrong with the file
        return v

    def build(self, rng, index_in_group=0, centre_xy=(0.0, 0.0), *, group_size=1, group_rng=None) -> TraceTrack:
        trace = load_trace(self.file)
        ids = self.vehicle_ids or vehicles_in_order(trace)
        vid = ids[index_in_group] if index_in_group < len(ids) else None
        if vid is not None and vid not in trace:
            raise ScenarioError([f"devices.mobility.vehicle_ids: {vid!r} is not in {self.file}"])
        times, xyz = trace[vid] if vid is not None else ((), ())
        return TraceTrack(times, xyz, height_m=self.height_m)
