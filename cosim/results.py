"""The run folder: the trace turned into tidy tables, written as the run goes.

    results/<name>/<run-id>/
        scenario.yaml      the resolved scenario (after overrides)
        rounds.csv         one row per finished round (rewritten as each round ends)
        events.parquet     one row per event (written at the end from per-round parts in
                           events.parts/, which a killed run keeps)
        nodes.csv          per-node totals, rewritten after every round
        summary.json       headline numbers, rewritten after every round
        tracks.parquet     positions of the moving nodes over the run (when any move)
        decisions.csv      what the run's controller decided, per device and setting (when it decided)
        *.png              plots
        report.html        one self-contained page of all the above (cosim.report; unless outputs.report: false)
        tensorboard/       TensorBoard scalars per round (cosim.tensorboard_log; when outputs.tensorboard: true)

A killed run keeps every finished round: rounds.csv, events.parts/ and nodes.csv/summary.json
are on disk after each round. Every file is written whole or not at all (`write_atomic`: a temp
file beside it, fsync'd, renamed over the old one), so a kill at any moment leaves the previous
round's file or this one's, never a torn one. `load_run` reads either form.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .world.engine import EVENT_COLUMNS, RoundRecord, Simulation

_EVENT_SCHEMA = pa.schema([
    ("t_start", pa.float64()), ("t_end", pa.float64()), ("node", pa.string()), ("peer", pa.string()),
    ("kind", pa.string()), ("round", pa.int64()), ("bytes", pa.int64()), ("flops", pa.float64()),
    ("energy_j", pa.float64()), ("mem_bytes", pa.int64()), ("detail", pa.string()), ("category", pa.string()),
])
SERVER_ROLES = ("edge", "cloud")
#: Columns of decisions.csv: one row per device and setting a controller decided (cosim.control).
DECISION_COLUMNS = ["t_s", "round", "timescale", "controller", "device", "setting", "value"]


@dataclass
class Result:
    """What `cosim.run` returns: the headline numbers and the three tidy tables."""

    summary: dict
    rounds: pd.DataFrame
    nodes: pd.DataFrame
    events: pd.DataFrame
    dir: Path

    def __repr__(self) -> str:
        s = self.summary
        acc = s.get('final_accuracy')   # null when nothing was scored (twin mode, eval_round0 off and no round)
        return (f"Result({s.get('name')!r}, rounds={s.get('rounds')}, sim_time_s={s.get('sim_time_s'):.1f}, "
                f"final_accuracy={'n/a' if acc is None else format(acc, '.3f')}, dir='{self.dir}')")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` whole or not at all: written to a hidden temp file beside it
    (readers skip names starting with "."), fsync'd, renamed over `path` (atomic on POSIX), then
    the folder fsync'd so the rename itself reaches the disk. A kill at any moment leaves the old
    file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:   # a platform without directory handles (Windows): the rename is all there is
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def unique_dir(parent: Path, stem: str) -> Path:
    """Create and return parent/stem, or parent/stem-1, -2, … if taken (runs started the same second)."""
    for i in range(1000):
        path = Path(parent) / (stem + (f"-{i}" if i else ""))
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a folder {stem} under {parent}")


def new_run_dir(base: Path, name: str, seed: int) -> Path:
    return unique_dir(Path(base) / name, f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}")


def _events_table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(EVENT_COLUMNS, r)) for r in rows], schema=_EVENT_SCHEMA)


def rows_to_frame(rows: list[tuple]) -> pd.DataFrame:
    return _events_table(rows).to_pandas()


def nodes_frame(sim: Simulation) -> pd.DataFrame:
    return pd.DataFrame([{
        "node": n.name, "role": n.role, "profile": n.profile_name, "flops": n.flops, "busy_s": n.busy_s,
        "energy_j": n.energy_j, "compute_energy_j": n.compute_energy_j, "radio_energy_j": n.radio_energy_j,
        "peak_memory_bytes": n.memory.peak, "memory_capacity_bytes": n.memory.capacity_bytes,
        "bytes_sent": n.bytes_sent, "bytes_received": n.bytes_received,
    } for n in sim.nodes])


def rounds_frame(records: list[RoundRecord]) -> pd.DataFrame:
    return pd.DataFrame([{"round": r.round, "sim_time_s": r.sim_time_s, "loss": r.loss, "accuracy": r.accuracy,
                          **r.extra} for r in records])


#: Most samples per moving node in tracks.parquet (one per simulated second below that).
TRACK_SAMPLES = 2000


def tracks_frame(sim: Simulation) -> pd.DataFrame:
    """Positions of every node that moves (sampled once a simulated second, at most TRACK_SAMPLES
    per node) and of every server, for the tracks plot; empty when nothing moves."""
    from .world.mobility import Static

    moving = [n for n in sim.nodes if not isinstance(n.mobility, Static)]
    if not moving or sim.now <= 0:
        return pd.DataFrame()
    times = np.linspace(0.0, sim.now, int(min(TRACK_SAMPLES, max(2, sim.now + 1))))
    rows = []
    for n in sim.nodes:
        for t in (times if n in moving else times[:1]):
            pos = n.position_m(float(t))
            if pos is not None:
                rows.append((float(t), n.name, n.role, float(pos[0]), float(pos[1]), float(pos[2])))
    return pd.DataFrame(rows, columns=["t_s", "node", "role", "x_m", "y_m", "z_m"])


def summarize(sim: Simulation, nodes: pd.DataFrame, scheme: str, name: str, wall_s: float) -> dict:
    trained = [r for r in sim.round_records if r.round > 0]
    last = sim.round_records[-1] if sim.round_records else None
    devices = nodes[nodes.role == "device"]
    servers = nodes[nodes.role.isin(SERVER_ROLES)]

    def num(x):
        x = float(x)
        return None if math.isnan(x) else x

    return {
        "name": name, "scheme": scheme, "seed": sim.seed,
        "sim_time_s": sim.now,
        "final_accuracy": num(last.accuracy) if last else None,
        "final_loss": num(trained[-1].loss) if trained else None,
        "rounds": len(trained),
        "bytes_up": int(devices.bytes_sent.sum()),
        "bytes_down": int(devices.bytes_received.sum()),
        "energy_j": float(nodes.energy_j.sum()),
        "device_energy_j": float(devices.energy_j.sum()),
        "device_flops": float(devices.flops.sum()),
        "server_flops": float(servers.flops.sum()),
        "device_peak_memory_bytes": int(devices.peak_memory_bytes.max()) if len(devices) else 0,
        "server_peak_memory_bytes": int(servers.peak_memory_bytes.max()) if len(servers) else 0,
        "stop_reason": sim.stop_reason,
        "wall_time_s": wall_s,
        **({"final_perplexity": num(last.extra["perplexity"])} if last and "perplexity" in last.extra else {}),
        **({"mode": "twin"} if sim.twin else {}),   # nothing scored: accuracy and loss null (cosim.learn.twin)
    }


class RunWriter:
    """Writes a run folder incrementally; one call per finished round, one at the end."""

    def __init__(self, run_dir: Path, scenario_yaml: str, scheme: str, name: str):
        self.dir = Path(run_dir)
        self.parts = self.dir / "events.parts"
        self.parts.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / "scenario.yaml", scenario_yaml)
        self.scheme, self.name = scheme, name
        self._part = 0
        self._t0 = time.perf_counter()
        self._rounds_written = 0
        self.summary: dict = {}

    def flush(self, sim: Simulation) -> None:
        """Append what happened since the last flush (events, rounds) and refresh the totals."""
        rows = sim.trace.drain()
        if rows:
            self._part += 1
            write_atomic(self.parts / f"part-{self._part:05d}.parquet", parquet_bytes(_events_table(rows)))
        if len(sim.round_records) > self._rounds_written:  # rewritten whole: rounds are few, columns may grow
            write_atomic(self.dir / "rounds.csv", rounds_frame(sim.round_records).to_csv(index=False))
            self._rounds_written = len(sim.round_records)
        decisions = sim.control.new_rows() if sim.control is not None else []
        if decisions:   # appended as decided (decisions.csv: t_s, round, timescale, controller, device, setting, value)
            path = self.dir / "decisions.csv"
            with open(path, "a") as f:
                pd.DataFrame(decisions, columns=DECISION_COLUMNS).to_csv(f, header=f.tell() == 0, index=False)
                f.flush()
                os.fsync(f.fileno())
        nodes = nodes_frame(sim)
        write_atomic(self.dir / "nodes.csv", nodes.to_csv(index=False))
        summary = summarize(sim, nodes, self.scheme, self.name, time.perf_counter() - self._t0)
        write_atomic(self.dir / "summary.json", json.dumps(summary, indent=2))
        self.summary = summary   # the totals as of this flush (the TensorBoard scalars read them)

    def offsets(self) -> dict:
        """How far the folder is written (a checkpoint keeps it; `resume_at` goes back to it)."""
        decisions = self.dir / "decisions.csv"
        return {"part": self._part, "rounds_written": self._rounds_written,
                "decisions_bytes": decisions.stat().st_size if decisions.is_file() else 0}

    def resume_at(self, offsets: dict, records: list[RoundRecord]) -> None:
        """Continue a folder from a checkpoint's `offsets`: what was written after it (event parts,
        decisions, rounds) is dropped, to be written again by the resumed run exactly once."""
        self._part, self._rounds_written = offsets["part"], offsets["rounds_written"]
        for p in self.parts.glob("part-*.parquet"):
            if int(p.stem.split("-")[1]) > self._part:
                p.unlink()
        decisions = self.dir / "decisions.csv"
        if decisions.is_file():
            with open(decisions, "r+b") as f:
                f.truncate(offsets["decisions_bytes"])
            if offsets["decisions_bytes"] == 0:
                decisions.unlink()
        rounds_frame(records).to_csv(self.dir / "rounds.csv", index=False)

    def finish(self, sim: Simulation) -> None:
        """Last flush, then merge the event parts into events.parquet."""
        self.flush(sim)
        parts = sorted(self.parts.glob("part-*.parquet"))
        tables = [pq.read_table(p) for p in parts]
        table = pa.concat_tables(tables) if tables else _EVENT_SCHEMA.empty_table()
        write_atomic(self.dir / "events.parquet", parquet_bytes(table))   # then the parts may go
        for p in parts:
            p.unlink()
        self.parts.rmdir()
        tracks = tracks_frame(sim)
        if not tracks.empty:
            write_atomic(self.dir / "tracks.parquet", parquet_bytes(pa.Table.from_pandas(tracks, preserve_index=False)))


def load_run(run_dir) -> Result:
    """Read a run folder (finished or interrupted) back into a Result."""
    run_dir = Path(run_dir)
    parts = sorted((run_dir / "events.parts").glob("part-*.parquet"))   # a killed run's (no temp files)
    if (run_dir / "events.parquet").is_file():
        events = pd.read_parquet(run_dir / "events.parquet")
    elif parts:
        events = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
    else:
        events = rows_to_frame([])
    rounds = pd.read_csv(run_dir / "rounds.csv") if (run_dir / "rounds.csv").is_file() else pd.DataFrame()
    nodes = pd.read_csv(run_dir / "nodes.csv") if (run_dir / "nodes.csv").is_file() else pd.DataFrame()
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    return Result(summary, rounds, nodes, events, run_dir)
