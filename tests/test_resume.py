"""Checkpoint and resume (cosim.checkpoint): a run stopped after round k and resumed ends with the
same tables, byte for byte, as a run that never stopped — for a FedAvg, a split and a pipelined
scheme; a scheme that cannot resume says so; a checkpoint builds only what it may."""
from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import cosim
from cosim import checkpoint
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.scenario import ScenarioError
from conftest import ROOT, tiny_scenario

TABLES = ("rounds.csv", "events.parquet", "nodes.csv")

#: scheme families: FedAvg over moving devices, SplitFed v2 (a shared server model and its
#: optimizer carried across rounds), SplitFrozen (pipelined rounds, one shared LoRA server model)
FAMILIES = {
    "fedavg": {},
    "splitfed": {"name": "splitfed", "variant": "v2", "cut_layer": 1},
    "splitfrozen": {"name": "splitfrozen", "cut_layer": 1},
}
#: the other schemes whose rounds are a round_loop (stop-and-resume identity; exhaustive tier but one)
MORE_FAMILIES = {
    "local_lora": {"name": "local_lora", "lora": {"r": 4, "alpha": 8}},
    "split": {"name": "split", "cut_layer": 1, "order": "grab"},
    "sequential_fl": {"name": "sequential_fl", "order": "fixed"},
    "cyclicfl": {"name": "cyclicfl", "cyclic_rounds": 3, "order": "grab"},   # the phases change after the cut
    "dfl": {"name": "dfl"},
    "three_tier": {"name": "three_tier", "cut_layers": [1, 2], "lora": {"r": 4, "alpha": 8}},
    # a seeded ring; one more block's adapters train each round (the trainable set changes after the cut)
    "ringada": {"name": "ringada", "blocks_per_device": [1, 1, 1, 1], "ring_order": "seeded",
                "lora": {"r": 4, "alpha": 8}},
    "mavfl": {"name": "mavfl", "selection": "ucb", "participants": 2},
    "whale_fl": {"name": "whale_fl", "assignment": "adaptive", "ranks": [1, 2, 4], "lora": {"r": 4, "alpha": 8}},
    # Johnson's order once every device's times are estimated (after round 1): estimates cross the cut
    "hetero_sfl": {"name": "hetero_sfl", "order": "johnson", "lora": {"r": 4, "alpha": 8}},
}
#: what a family needs of the world beyond the tiny scenario's (top-level keys replaced)
WORLDS = {
    "three_tier": {"edge": [{"profile": "edge-t4", "name": "edge-west", "position_m": [-150, 0, 10]},
                            {"profile": "edge-t4", "name": "edge-east", "position_m": [150, 0, 10]}],
                   "cloud": [{"profile": "cloud-h100", "position_m": [0, 5000, 30]}],
                   "network": {"medium": {"bandwidth_hz": 20e6}, "backhaul": {"rate_bps": 1e9, "latency_s": 0.01}}},
    "mavfl": {"devices": [{"count": 4, "profile": "jetson-nano", "name": "car",
                           "mobility": {"kind": "road", "start_m": [-300, 40], "length_m": 600, "speed_mps": [15, 30],
                                        "lanes": 2, "wrap": True}}],
              "network": {"medium": {"bandwidth_hz": 20e6}, "outage": {"policy": "drop"}}},
    "whale_fl": {"devices": [{"count": 4, "profile": "jetson-nano", "conditions": {
        "kind": "markov", "step_s": 0.2, "compute": {"levels": [0.2, 0.5, 1.0], "stay": 0.7},
        "radio": {"levels": [0.1, 0.4, 1.0], "stay": 0.7}, "availability": {"p_leave": 0.05, "p_return": 0.5}}}]},
}
FAST_MORE = {"local_lora"}


def _scenario(tmp_path: Path, family: str, rounds: int = 4, **runtime) -> dict:
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"},
                      {"count": 2, "profile": "raspberry-pi-4", "mobility": {"kind": "road", "speed_mps": [15, 25],
                                                                              "wrap": True}}]
    raw["scheme"] = {**raw["scheme"], **{**FAMILIES, **MORE_FAMILIES}[family], "rounds": rounds}
    raw["runtime"] = runtime
    raw.update(WORLDS.get(family, {}))
    return raw


class _Stop(Exception):
    pass


def _run_stopped_after(raw: dict, k: int, monkeypatch) -> Path:
    """Run `raw` in this process and stop it (an exception) right after round k's checkpoint step."""
    boundary = checkpoint.Checkpoints.boundary

    def stop_after(self, sim, state):
        boundary(self, sim, state)
        if sim.current_round == k:
            raise _Stop

    with monkeypatch.context() as m:
        m.setattr(checkpoint.Checkpoints, "boundary", stop_after)
        with pytest.raises(_Stop):
            cosim.run(raw, progress=False, plots=False)
    (run_dir,) = Path(raw["outputs"]["dir"]).glob("*/*")
    return run_dir


def _same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("family", [*FAMILIES, *(f if f in FAST_MORE else pytest.param(f, marks=pytest.mark.exhaustive)
                                                 for f in MORE_FAMILIES)])
def test_a_run_stopped_after_a_round_and_resumed_writes_the_tables_of_one_that_never_stopped(
        tmp_path, monkeypatch, family):
    full = cosim.run(_scenario(tmp_path / "full", family), progress=False, plots=False)
    run_dir = _run_stopped_after(_scenario(tmp_path / "cut", family), 2, monkeypatch)
    assert (run_dir / checkpoint.FILE).is_file() and not (run_dir / "events.parquet").exists()
    resumed = cosim.run(resume=run_dir, progress=False, plots=False)
    assert resumed.dir == run_dir and resumed.summary["rounds"] == 4
    _same_tables(full.dir, run_dir)
    assert not (run_dir / checkpoint.FILE).exists()   # a finished run keeps no checkpoint


def test_rows_written_after_the_last_checkpoint_are_written_once_more_not_twice(tmp_path, monkeypatch):
    """Checkpoints at most every hour of wall time: only round 1's is on disk when the run stops
    after round 3; the resumed run drops rounds 2-3's rows and writes them again."""
    full = cosim.run(_scenario(tmp_path / "full", "fedavg"), progress=False, plots=False)
    run_dir = _run_stopped_after(_scenario(tmp_path / "cut", "fedavg", checkpoint_every_s=3600), 3, monkeypatch)
    assert checkpoint.read(run_dir)["round"] == 1
    cosim.run(resume=run_dir, progress=False, plots=False)
    _same_tables(full.dir, run_dir)


def test_a_finished_run_resumes_to_itself(tmp_path):
    done = cosim.run(_scenario(tmp_path, "fedavg", rounds=1), progress=False, plots=False)
    again = cosim.run(resume=done.dir, progress=False, plots=False)
    assert again.rounds.equals(done.rounds)


def test_a_scheme_whose_rounds_do_not_checkpoint_refuses_to_resume(tmp_path, monkeypatch):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {**raw["scheme"], "name": "mobillm", "rounds": 3}
    monkeypatch.setattr(cosim.results.RunWriter, "finish", lambda self, sim: (_ for _ in ()).throw(_Stop()))
    with pytest.raises(_Stop):
        cosim.run(raw, progress=False, plots=False)
    (run_dir,) = Path(raw["outputs"]["dir"]).glob("*/*")
    with pytest.raises(ScenarioError, match="scheme 'mobillm' does not checkpoint its rounds"):
        cosim.run(resume=run_dir, progress=False, plots=False)


def test_resume_on_the_command_line_and_its_refusals(tmp_path, monkeypatch, capsys):
    run_dir = _run_stopped_after(_scenario(tmp_path, "fedavg", rounds=2), 1, monkeypatch)
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-plots"]) == 0
    assert "2 rounds" in capsys.readouterr().out
    assert main(["run", "--resume", str(tmp_path), "--quiet"]) == EXIT_BAD_INPUT
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["run", "--resume", str(run_dir), "--set", "seed=2"]) == EXIT_BAD_INPUT
    assert main(["run"]) == EXIT_BAD_INPUT


class _Shell:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_a_tampered_checkpoint_builds_nothing_it_may_not(tmp_path, monkeypatch):
    run_dir = _run_stopped_after(_scenario(tmp_path, "fedavg", rounds=2), 1, monkeypatch)
    payload = checkpoint.read(run_dir)
    payload["world"] = pickle.dumps(_Shell())
    torch.save(payload, run_dir / checkpoint.FILE)
    with pytest.raises(ScenarioError, match="may not build"):
        cosim.run(resume=run_dir, progress=False, plots=False)


def _killed_after(raw: dict, k: int, tmp_path: Path) -> Path:
    """Run `raw` with the command line in a process of its own and SIGKILL it as soon as
    rounds.csv shows k finished rounds."""
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "run", str(path), "--quiet", "--no-plots"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(Path(raw["outputs"]["dir"]).glob("*/*/rounds.csv"))
            if found and len(found[0].read_text().splitlines()) >= k + 2:   # header, round 0, rounds 1..k
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return found[0].parent


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_run_killed_after_a_round_and_resumed_writes_the_tables_of_one_that_never_stopped(tmp_path, family):
    rounds = 12
    full = cosim.run(_scenario(tmp_path / "full", family, rounds), progress=False, plots=False)
    run_dir = _killed_after(_scenario(tmp_path / "cut", family, rounds), 2, tmp_path)
    assert not (run_dir / "events.parquet").exists()
    assert main(["run", "--resume", str(run_dir), "--quiet", "--no-plots"]) == 0
    _same_tables(full.dir, run_dir)


@pytest.mark.slow
def test_a_killed_sweep_resumes_keeping_finished_points_and_resuming_the_running_one(tmp_path):
    """Point 0 (2 rounds) finishes; point 1 (12 rounds) is killed after round 3 with the sweep;
    `cosim sweep --resume` keeps point 0 and resumes point 1 to the tables of a run that never stopped."""
    raw = _scenario(tmp_path, "fedavg", rounds=2)
    raw["sweep"] = {"grid": {"scheme.rounds": [2, 12]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    results = Path(raw["outputs"]["dir"])
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "sweep", str(path), "--quiet", "--workers", "1"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            lines = [len(p.read_text().splitlines()) for p in results.glob("tiny/*-seed1*/rounds.csv")]
            if any(n >= 5 for n in lines):   # point 0 has 2 rounds (4 lines); point 1 finished round 3
                break
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (sweep_dir,) = results.glob("tiny/sweep-*")
    finished_before = Path(pd_read(sweep_dir / "sweep.csv").run_dir[0])
    assert main(["sweep", str(path), "--quiet", "--workers", "1", "--resume", str(sweep_dir)]) == 0
    table = pd_read(sweep_dir / "sweep.csv")
    assert list(table.point) == [0, 1] and list(table.rounds) == [2, 12]
    assert Path(table.run_dir[0]) == finished_before               # not run again
    assert len(list(results.glob("tiny/*-seed1*"))) == 2          # and point 1 resumed in its own folder
    full = cosim.run(_scenario(tmp_path / "full", "fedavg", rounds=12), progress=False, plots=False)
    _same_tables(full.dir, Path(table.run_dir[1]))


def pd_read(path):
    import pandas as pd

    return pd.read_csv(path)


def test_the_control_loops_ticker_comes_back_with_its_pending_tick(tmp_path, monkeypatch):
    """Band shares decided every 0.3 simulated s run across round ends: the resumed run's ticker
    fires at the same times, in the same order among the other events."""
    def scenario(where):
        raw = _scenario(where, "fedavg")
        raw["control"] = {"controller": "equal", "small_every_s": 0.3}
        raw["network"] = {**raw["network"], "medium": {**raw["network"]["medium"], "sharing": "allocated"}}
        return raw

    full = cosim.run(scenario(tmp_path / "full"), progress=False, plots=False)
    assert (full.dir / "decisions.csv").is_file()
    run_dir = _run_stopped_after(scenario(tmp_path / "cut"), 2, monkeypatch)
    cosim.run(resume=run_dir, progress=False, plots=False)
    _same_tables(full.dir, run_dir)
    assert (full.dir / "decisions.csv").read_bytes() == (run_dir / "decisions.csv").read_bytes()


def test_with_workers_a_checkpoint_keeps_the_evaluation_still_running_and_the_resume_scores_it(
        tmp_path, monkeypatch):
    """With workers a round's evaluation runs behind the next round's steps: the checkpoint at its
    boundary does not wait for it but keeps the state being scored, the record and the held rows;
    the resumed run scores it again and ends with the serial run's tables."""
    full = cosim.run(_scenario(tmp_path / "full", "fedavg"), progress=False, plots=False)
    boundary = checkpoint.Checkpoints.boundary
    kept = []

    def spy(self, sim, state):
        boundary(self, sim, state)
        kept.append(len(sim._unsettled))

    monkeypatch.setattr(checkpoint.Checkpoints, "boundary", spy)
    run_dir = _run_stopped_after(_scenario(tmp_path / "cut", "fedavg", workers=2), 2, monkeypatch)
    assert kept and kept[-1] >= 1   # round 2's score was still out when its checkpoint was taken
    resumed = cosim.run(resume=run_dir, progress=False, plots=False)
    assert resumed.summary["rounds"] == 4
    _same_tables(full.dir, run_dir)


def test_an_interrupted_run_resumes_from_its_last_checkpoint_to_the_tables_of_one_that_never_stopped(
        tmp_path, monkeypatch):
    """A signal (here: what the handler sets, `sim.interrupted`) mid-round 3: the run stops before its
    next event, writes its rows and its last checkpoint, raises RunInterrupted; `resume` drops what
    came after that checkpoint (round 3's partial events, the run_stopped row) and goes on."""
    from cosim.interrupts import RunInterrupted

    full = cosim.run(_scenario(tmp_path / "full", "fedavg"), progress=False, plots=False)
    boundary = checkpoint.Checkpoints.boundary

    def interrupt_in_round_3(self, sim, state):
        boundary(self, sim, state)
        if sim.current_round == 2:
            sim.process(_signal_later(sim))

    def _signal_later(sim):
        yield sim.timeout(1e-3)
        sim.interrupted = "interrupted (SIGINT)"

    monkeypatch.setattr(checkpoint.Checkpoints, "boundary", interrupt_in_round_3)
    with pytest.raises(RunInterrupted):
        cosim.run(_scenario(tmp_path / "cut", "fedavg"), progress=False, plots=False)
    monkeypatch.undo()
    (run_dir,) = Path(tmp_path / "cut" / "results").glob("*/*") if (tmp_path / "cut" / "results").is_dir() else \
        Path(_scenario(tmp_path / "cut", "fedavg")["outputs"]["dir"]).glob("*/*")
    assert (run_dir / checkpoint.FILE).is_file() and (run_dir / "events.parts").is_dir()
    resumed = cosim.run(resume=run_dir, progress=False, plots=False)
    assert resumed.summary["rounds"] == 4 and "run_stopped" not in set(resumed.events.kind)
    _same_tables(full.dir, run_dir)
