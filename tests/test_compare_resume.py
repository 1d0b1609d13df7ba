"""An interrupted compare goes on (`cosim compare --resume COMPARE_DIR`, issue 16): the entries that
finished are kept, the one that was running resumes from its checkpoint (or starts over without
one), and the comparison table and every entry's tables come out as those of a compare that never
stopped."""
from __future__ import annotations

import csv
import io
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

import cosim
from cosim import checkpoint
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.compare import ENTRIES_FILE
from cosim.interrupts import EXIT_INTERRUPTED, BatchInterrupted
from cosim.scenario import ScenarioError
from conftest import ROOT, tiny_scenario

RUN_TABLES = ("rounds.csv", "events.parquet", "nodes.csv")
#: comparison.csv columns that differ between any two compares: where the runs went, host time
HOST_COLUMNS = ("run_dir", "wall_time_s")


def _scenario(where: Path, long_rounds: int = 4) -> dict:
    """A FedAvg entry of 2 rounds, then a SplitFed v2 one (a server model and its optimizer carried
    across rounds) of `long_rounds`."""
    raw = tiny_scenario(where)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    raw["data"]["test_samples"] = 16
    raw["scheme"] = {**raw["scheme"], "local_steps": 1}
    raw["compare"] = [{"label": "fed", "scheme": {"name": "fedavg", "rounds": 2}},
                      {"label": "split", "scheme": {"name": "splitfed", "variant": "v2", "cut_layer": 1,
                                                    "rounds": long_rounds}}]
    return raw


def _interrupted_in_round(raw: dict, k: int, monkeypatch, at_boundary: bool = False) -> Path:
    """Compare `raw` in this process; a signal (what its handler sets: `sim.interrupted`) reaches the
    second entry's run just after round k-1's boundary, or (`at_boundary`) while the step that ends
    round k-1 still computes, before its checkpoint is taken. Returns the compare folder."""
    boundary = checkpoint.Checkpoints.boundary

    def interrupt(self, sim, state):
        second = sim.stop.rounds > 2   # only the long (second) entry gets that far
        if second and at_boundary and sim.current_round == k - 1:
            sim.interrupted = "interrupted (SIGINT)"
        boundary(self, sim, state)
        if second and not at_boundary and sim.current_round == k - 1:
            sim.process(_signal_later(sim))

    def _signal_later(sim):
        yield sim.timeout(1e-3)
        sim.interrupted = "interrupted (SIGINT)"

    with monkeypatch.context() as m:
        m.setattr(checkpoint.Checkpoints, "boundary", interrupt)
        with pytest.raises(BatchInterrupted) as stopped:
            cosim.compare(raw, progress=False)
    (out,) = Path(raw["outputs"]["dir"]).glob("tiny/compare-*")
    assert stopped.value.done == 1 and stopped.value.table_path == out / "comparison.csv"
    assert str(stopped.value).endswith(f"resume with: cosim compare --resume {out}")
    return out


def _without_host_columns(path: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in HOST_COLUMNS]
    return [[row[i] for i in keep] for row in rows]


def _same_compare(full: pd.DataFrame, resumed: pd.DataFrame) -> None:
    """The same comparison.csv but for where the runs went and host time, and each entry's tables
    byte for byte."""
    a, b = full.attrs["dir"] / "comparison.csv", resumed.attrs["dir"] / "comparison.csv"
    assert _without_host_columns(a) == _without_host_columns(b)
    for label in full.index:
        for name in RUN_TABLES:
            assert (Path(full.run_dir[label]) / name).read_bytes() == \
                (Path(resumed.run_dir[label]) / name).read_bytes(), (label, name)


@pytest.mark.parametrize("at_boundary", [False, True], ids=["mid-round", "before-the-checkpoint"])
def test_a_compare_interrupted_mid_entry_resumes_to_the_tables_of_one_that_never_stopped(
        tmp_path, monkeypatch, at_boundary):
    full = cosim.compare(_scenario(tmp_path / "full"), progress=False)
    raw = _scenario(tmp_path / "cut")
    out = _interrupted_in_round(raw, 3, monkeypatch, at_boundary)
    assert (out / ENTRIES_FILE).is_file()
    assert list(pd.read_csv(out / "comparison.csv").label) == ["fed"]
    fed_dir = Path(pd.read_csv(out / "comparison.csv").run_dir[0])
    split_dir = Path((out / "running" / "entry-1.txt").read_text())
    assert (split_dir / checkpoint.FILE).is_file() and checkpoint.read(split_dir)["round"] == 2

    resumed = cosim.compare(resume=out, progress=False)
    assert resumed.attrs["dir"] == out and list(resumed.index) == ["fed", "split"]
    assert Path(resumed.run_dir["fed"]) == fed_dir       # not run again
    assert Path(resumed.run_dir["split"]) == split_dir   # resumed in its own folder
    assert len(list(Path(raw["outputs"]["dir"]).glob("tiny/*-seed*"))) == 2
    assert list(resumed.rounds) == [2, 4]
    assert "run_stopped" not in set(cosim.load_run(split_dir).events.kind)
    assert (out / "comparison.png").is_file()
    _same_compare(full, resumed)


def test_an_interrupted_entry_without_a_checkpoint_starts_over_and_the_scenario_given_must_match(
        tmp_path, monkeypatch, capsys):
    full = cosim.compare(_scenario(tmp_path / "full"), progress=False)
    raw = _scenario(tmp_path / "cut")
    out = _interrupted_in_round(raw, 2, monkeypatch)
    stale = Path((out / "running" / "entry-1.txt").read_text())
    (stale / checkpoint.FILE).unlink()

    other = _scenario(tmp_path / "cut", long_rounds=5)
    with pytest.raises(ScenarioError, match="compares other entries"):
        cosim.compare(other, resume=out, progress=False)
    assert main(["compare", "--resume", str(tmp_path), "--quiet"]) == EXIT_BAD_INPUT
    assert "is not a compare folder" in capsys.readouterr().err
    assert main(["compare", "--quiet"]) == EXIT_BAD_INPUT

    path = tmp_path / "cut.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["compare", str(path), "--resume", str(out), "--quiet"]) == 0
    resumed = pd.read_csv(out / "comparison.csv", index_col="label")
    resumed.attrs["dir"] = out
    assert Path(resumed.run_dir["split"]) != stale   # started over, in a folder of its own
    _same_compare(full, resumed)


def test_resuming_a_finished_compare_runs_nothing(tmp_path):
    done = cosim.compare(_scenario(tmp_path, long_rounds=2), progress=False)
    before = (done.attrs["dir"] / "comparison.csv").read_bytes()
    again = cosim.compare(resume=done.attrs["dir"], progress=False)
    assert (done.attrs["dir"] / "comparison.csv").read_bytes() == before
    assert list(again.run_dir) == list(done.run_dir)
    assert len(list((tmp_path / "results" / "tiny").glob("*-seed*"))) == 2


def test_a_compare_refused_when_its_first_run_is_built_leaves_no_folder(tmp_path):
    """The build step refuses a device without the memory for its part: nothing ran, nothing stays."""
    raw = _scenario(tmp_path)
    raw["profiles"] = {"mote": {"peak_flops": 1e9, "utilization": 0.5, "memory_bytes": 1e6, "compute_power_w": 0.1}}
    raw["devices"] = [{"count": 2, "profile": "mote"}]
    with pytest.raises(ScenarioError, match="'mote' has .* needs"):
        cosim.compare(raw, progress=False)
    assert not list((tmp_path / "results").glob("tiny/compare-*"))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_compare_stopped_by_sigint_resumes_from_the_command_line(tmp_path):
    """The first entry finishes; SIGINT reaches `cosim compare` in the second's round 4 or later:
    exit 130, one line with the compare's resume command; `cosim compare --resume` keeps the first
    and resumes the second to the tables of a compare that never stopped."""
    rounds = 12
    raw = _scenario(tmp_path / "cut", long_rounds=rounds)
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "compare", str(path), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = Path(raw["outputs"]["dir"]) / "tiny"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            lines = [len(p.read_text().splitlines()) for p in results.glob("*-seed*/rounds.csv")]
            if any(n >= 6 for n in lines):   # the second entry finished round 4 (header, rounds 0..4)
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
    out_text, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in out_text + err
    (out,) = results.glob("compare-*")
    assert re.fullmatch(r"interrupted: 1 of 2 compare runs finished, listed in .*comparison\.csv; the run in "
                        rf"progress: interrupted at round \d+, simulated .* s; resume with: cosim compare --resume "
                        rf"{re.escape(str(out))}", err.strip()), err

    assert main(["compare", "--resume", str(out), "--quiet"]) == 0
    resumed = pd.read_csv(out / "comparison.csv", index_col="label")
    resumed.attrs["dir"] = out
    assert list(resumed.rounds) == [2, rounds]
    full = cosim.compare(_scenario(tmp_path / "full", long_rounds=rounds), progress=False)
    _same_compare(full, resumed)
