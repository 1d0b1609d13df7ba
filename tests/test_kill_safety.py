"""A run killed at any moment leaves a folder `load_run` reads, holding every finished round
(issue 16: a kill timed to a rewrite used to leave a 0-byte rounds.csv or nodes.csv)."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tiny_scenario
from cosim.results import load_run, write_atomic

ROOT = Path(__file__).resolve().parents[1]

#: Runs a scenario (JSON in argv[1]); with argv[2:] = (file name, n), SIGKILLs itself the n-th time
#: that file is about to replace the old one: its new content written, not yet in place.
_RUNNER = r"""
import json, os, signal, sys
raw = json.loads(sys.argv[1])
if len(sys.argv) > 2:
    name, n = sys.argv[2], int(sys.argv[3])
    seen, real_replace = [0], os.replace
    def replace(src, dst):
        if os.path.basename(dst) == name:
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
    os.replace = replace
import cosim
cosim.run(raw, progress=False, plots=False)
"""


def _scenario(tmp_path, rounds):
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    raw["data"]["test_samples"] = 16
    raw["scheme"] = {**raw["scheme"], "rounds": rounds, "local_steps": 1}
    return raw


def _start(raw, *kill_at):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", _RUNNER, json.dumps(raw), *map(str, kill_at)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run_dir(tmp_path) -> Path:
    (found,) = (tmp_path / "results" / "tiny").iterdir()
    return found


@pytest.mark.parametrize("name", ["rounds.csv", pytest.param("nodes.csv", marks=pytest.mark.slow),
                                  pytest.param("summary.json", marks=pytest.mark.slow)])
def test_a_kill_while_a_table_is_replaced_leaves_the_previous_rounds_table(tmp_path, name):
    proc = _start(_scenario(tmp_path, rounds=5), name, 4)   # killed as round 3's table replaces round 2's
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    result = load_run(_run_dir(tmp_path))
    if name == "rounds.csv":
        assert list(result.rounds["round"]) == [0, 1, 2]
    else:   # written after rounds.csv in each flush
        assert list(result.rounds["round"]) == [0, 1, 2, 3]
    assert len(result.nodes) == 3   # two devices and the edge server
    assert result.summary["rounds"] == 2   # the summary of the last flush that finished (rounds 1, 2 trained)
    assert set(result.events["round"]) >= {0, 1, 2}


def _kill_at_random_and_load(tmp_path, seed: int):
    raw = _scenario(tmp_path, rounds=10_000)
    proc = _start(raw)
    rounds_csv = None
    deadline = time.monotonic() + 120
    while rounds_csv is None and time.monotonic() < deadline:   # the run has begun writing
        found = list((tmp_path / "results" / "tiny").glob("*/rounds.csv"))
        rounds_csv = found[0] if found else None
        time.sleep(0.02)
    assert rounds_csv is not None, "the run never wrote rounds.csv"
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    result = load_run(rounds_csv.parent)
    rounds = list(result.rounds["round"])
    assert rounds == list(range(len(rounds))) and rounds   # every finished round, in order, none torn
    assert set(range(len(rounds))) <= set(result.events["round"])   # the events of each finished round
    assert len(result.nodes) == 3 and result.summary["rounds"] <= rounds[-1]


def test_a_kill_at_a_random_moment_leaves_a_folder_that_loads_with_its_finished_rounds(tmp_path):
    _kill_at_random_and_load(tmp_path, seed=0)


@pytest.mark.exhaustive
@pytest.mark.parametrize("seed", range(1, 11))
def test_kills_at_many_random_moments_leave_folders_that_load(tmp_path, seed):
    _kill_at_random_and_load(tmp_path, seed)


def test_an_atomic_write_replaces_whole_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "rounds.csv"
    write_atomic(path, "round\n0\n")
    write_atomic(path, "round\n0\n1\n")
    assert path.read_text() == "round\n0\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rounds.csv"]
