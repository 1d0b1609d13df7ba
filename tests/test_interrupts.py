"""SIGINT/SIGTERM stop `cosim run`, `sweep` and `compare` cleanly (issue 16): the rows written so far
stay, one line says where it stopped and how to resume, exit 130, no traceback; a sweep's workers
stop with their parent, however it stops, and the points that finished are in sweep.csv."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_scenario
from cosim.interrupts import EXIT_INTERRUPTED
from cosim.results import load_run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _scenario_file(tmp_path: Path, rounds: int, **extra) -> Path:
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    raw["data"]["test_samples"] = 16
    raw["scheme"] = {**raw["scheme"], "rounds": rounds, "local_steps": 1}
    raw.update(extra)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test():
    """A test that fails while its command still runs (a sweep that did not stop) must not leave it
    and its workers running for hours beside the rest of the suite."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            for pid in _descendants(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            proc.kill()
            proc.communicate()


def _cosim(*args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    return proc


def _wait_for(pattern: str, root: Path, count: int = 1, timeout_s: float = 120) -> list[Path]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} under {root} after {timeout_s} s")


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(children)
            todo += children
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_stops_a_run_with_its_rows_written_and_the_resume_line(tmp_path, sig):
    proc = _cosim("run", str(_scenario_file(tmp_path, rounds=100_000)), "--quiet", "--no-plots")
    (rounds_csv,) = _wait_for("results/tiny/*/rounds.csv", tmp_path)
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    run_dir = rounds_csv.parent
    match = re.fullmatch(r"interrupted at round (\d+), simulated ([0-9.e+-]+) s; resume with: cosim run --resume (.+)",
                         lines[0])
    assert match and Path(match.group(3)) == run_dir, lines[0]
    result = load_run(run_dir)
    assert result.summary["stop_reason"] == f"interrupted ({signal.Signals(sig).name})"
    assert list(result.rounds["round"]) == list(range(len(result.rounds)))
    assert int(match.group(1)) >= result.rounds["round"].iloc[-1]
    assert float(match.group(2)) == pytest.approx(result.summary["sim_time_s"], rel=1e-5)
    # the event parts stay (the run can go on from its checkpoint); load_run reads them
    assert (run_dir / "events.parts").is_dir() and not (run_dir / "events.parquet").exists()
    assert (result.events.kind == "run_stopped").sum() == 1


def _sweep_file(tmp_path: Path) -> Path:
    """Four points: two of one round that finish at once, two that would run for hours."""
    return _scenario_file(tmp_path, rounds=1, sweep={"grid": {"scheme.rounds": [1, 100_000], "seed": [1, 2]}})


@pytest.mark.slow
def test_interrupting_a_sweep_stops_its_workers_and_keeps_the_finished_points(tmp_path):
    proc = _cosim("sweep", str(_sweep_file(tmp_path)), "--workers", "2", "--quiet")
    _wait_for("results/tiny/*-seed*/summary.json", tmp_path, count=4, timeout_s=180)   # all four have begun
    time.sleep(2.0)   # the two short points are done; the long ones are running
    workers = _descendants(proc.pid)
    assert workers
    proc.send_signal(signal.SIGINT)   # to the parent only: it must stop its workers itself
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err + out
    assert re.fullmatch(r"interrupted: 2 of 4 sweep runs finished, listed in .*sweep\.csv", err.strip()), err
    (sweep_csv,) = _wait_for("results/tiny/sweep-*/sweep.csv", tmp_path)
    table = pd.read_csv(sweep_csv)
    assert sorted(table["point"]) == [0, 1] and (table["scheme.rounds"] == 1).all()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    stopped = [load_run(d).summary.get("stop_reason") for d in (tmp_path / "results" / "tiny").glob("*-seed*")]
    assert sorted(stopped) == ["interrupted (SIGTERM)"] * 2 + ["rounds=1 done"] * 2


@pytest.mark.slow
def test_killing_a_sweep_kills_its_workers(tmp_path):
    proc = _cosim("sweep", str(_sweep_file(tmp_path)), "--workers", "2", "--quiet")
    _wait_for("results/tiny/*-seed*/summary.json", tmp_path, count=4, timeout_s=180)
    workers = _descendants(proc.pid)
    assert workers
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
    table = pd.read_csv(_wait_for("results/tiny/sweep-*/sweep.csv", tmp_path)[0])
    assert sorted(table["point"]) == [0, 1]   # written as each point finished


@pytest.mark.slow
def test_interrupting_a_compare_keeps_the_entries_that_finished(tmp_path):
    """The first entry finishes, the second runs for hours: Ctrl-C leaves comparison.csv with the first."""
    path = _scenario_file(tmp_path, rounds=1, compare=["fedavg", {"label": "long", "scheme": {"name": "fedavg",
                                                                                              "rounds": 100_000}}])
    proc = _cosim("compare", str(path), "--quiet")
    _wait_for("results/tiny/*-seed*/rounds.csv", tmp_path, count=2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err + out
    assert re.fullmatch(r"interrupted: 1 of 2 compare runs finished, listed in .*comparison\.csv; the run in "
                        r"progress: interrupted at round \d+, simulated .* s; resume with: cosim compare --resume "
                        r".*compare-[0-9-]+", err.strip()), err
    (table,) = _wait_for("results/tiny/compare-*/comparison.csv", tmp_path)
    assert list(pd.read_csv(table)["label"]) == ["fedavg"]


@pytest.mark.slow
def test_a_sweep_point_whose_worker_dies_is_reported_and_the_others_are_kept(tmp_path):
    path = _scenario_file(tmp_path, rounds=1, sweep={"grid": {"scheme.rounds": [1, 100_000]}})
    proc = _cosim("sweep", str(path), "--workers", "2", "--quiet")
    _wait_for("results/tiny/sweep-*/sweep.csv", tmp_path, timeout_s=180)   # the short point is done
    _wait_for("results/tiny/*-seed*/rounds.csv", tmp_path, count=2, timeout_s=180)   # the long one runs
    deadline = time.monotonic() + 30
    while True:   # the short point's worker exits once its outcome is sent
        workers = [p for p in _descendants(proc.pid) if _alive(p) and b"spawn_main" in _cmdline(p)]
        if len(workers) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)   # the machine took the worker (out of memory, say)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err + out
    assert re.search(r"error: sweep point 1 \(.*\): the worker process died \(exit code -9\)", err), err
    table = pd.read_csv(_wait_for("results/tiny/sweep-*/sweep.csv", tmp_path)[0])
    assert table["point"].tolist() == [0] and (table["scheme.rounds"] == 1).all()
