"""The claims report (`cosim claims`): every seed scheme has a row, rows and scheme docstrings point
at scenarios and tests that exist (and at the same ones), the report writes its table, CSV and
figures with a number in every row — a row that cannot run included — and, marked `claims`, the
rows no other claims test checks are shown on the shipped scenarios."""
from __future__ import annotations

import csv
import inspect
import re

import pytest

from cosim.claims import CLAIMS, Claim, Outcome
from cosim.claims.report import run_claims
from cosim.cli import main
from cosim.schemes import SCHEMES
from conftest import ROOT

#: the seed schemes of issue 17 §5, each a row (dt_incremental joins when it is registered)
SEED_ROWS = ["fedavg", "sequential_fl", "split", "splitfed", "splitlora", "splitfrozen", "hetero_sfl", "three_tier",
             "sft", "mobillm", "pae_mobillm", "ringada", "mavfl", "whale_fl", "cyclicfl", "dfl", "split_kd", "thz_isac"]
REPRODUCES = re.compile(r"Reproduces: (?P<claim>.+?)\s+—\s+(?P<scenario>scenarios/\S+\.yaml),\s+"
                        r"(?P<test>tests/\S+\.py::\w+)", re.S)


def _test_exists(ref: str) -> bool:
    path, name = ref.split("::")
    return (ROOT / path).is_file() and re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), re.M)


def test_every_seed_scheme_and_every_registered_scheme_with_a_claim_has_a_row():
    assert set(SEED_ROWS) <= set(CLAIMS)
    if "dt_incremental" in SCHEMES:
        assert "dt_incremental" in CLAIMS


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_docstring_names_the_claim_scenario_and_test_it_reproduces(name):
    doc = inspect.getmodule(SCHEMES[name].run).__doc__ or ""
    m = REPRODUCES.search(doc)
    assert m, f"{name}: no 'Reproduces: <paper, claim> — scenarios/x.yaml, tests/test_y.py::test_z' line"
    assert (ROOT / m["scenario"]).is_file(), m["scenario"]
    assert _test_exists(m["test"]), m["test"]
    if name in CLAIMS:   # the scheme and its report row point at the same scenario and test
        assert (m["scenario"], m["test"]) == (CLAIMS[name].scenario, CLAIMS[name].test)


@pytest.mark.parametrize("key", sorted(CLAIMS))
def test_every_row_points_at_a_scenario_and_a_test_that_exist(key):
    c = CLAIMS[key]
    assert (ROOT / c.scenario).is_file() and _test_exists(c.test), (c.scenario, c.test)


def test_the_report_writes_every_row_with_its_number_and_figure_and_a_failing_row_says_why(tmp_path, monkeypatch):
    def shown(runner):
        return Outcome(number="0.25x", shown=True, why="measured", unit="x", bars={"ours": 0.25, "paper": 0.5})

    def broken(runner):
        raise RuntimeError("no such model")

    monkeypatch.setattr("cosim.claims.report.CLAIMS", {
        "a": Claim("a", "Paper A", "cuts cost", "scenarios/tiny.yaml", "tests/test_claims.py::x", shown),
        "b": Claim("b", "Paper B", "learns", "scenarios/tiny.yaml", "tests/test_claims.py::y", broken)})
    rows = run_claims(tmp_path, quick=True)
    assert [r["shown"] for r in rows] == ["shown", "not shown"]
    assert "RuntimeError: no such model" in rows[1]["our_number"]
    with open(tmp_path / "claims.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["scheme"] for r in table] == ["a", "b"] and all(r["our_number"] for r in table)
    assert (tmp_path / "figures" / "a.png").stat().st_size > 0 and rows[1]["figure"] == ""
    md = (tmp_path / "claims.md").read_text()
    assert "1 of 2 claims shown" in md and "| a | Paper A | cuts cost |" in md


@pytest.mark.slow
def test_cosim_claims_quick_measures_a_subset_end_to_end(tmp_path, capsys):
    rows = ["splitfrozen", "three_tier"]
    assert main(["claims", "--quick", "--only", ",".join(rows), "--out", str(tmp_path), "--quiet"]) == 0
    with open(tmp_path / "claims.csv") as f:
        table = {r["scheme"]: r for r in csv.DictReader(f)}
    assert set(table) == set(rows)
    for r in table.values():
        assert not r["our_number"].startswith("not measured") and re.search(r"\d", r["our_number"])
        assert (tmp_path / r["figure"]).is_file()
    assert "claims shown; report:" in capsys.readouterr().out


def test_unknown_rows_exit_2_naming_the_allowed_ones(tmp_path, capsys):
    assert main(["claims", "--only", "nosuch", "--out", str(tmp_path)]) == 2
    assert "nosuch" in capsys.readouterr().err


@pytest.mark.claims
@pytest.mark.parametrize("key", ["fedavg", "splitfed", "pae_mobillm", "split_kd", "mavfl_exodus"])
def test_claim_is_shown(key, tmp_path):
    """The rows no other claims test checks, on the shipped scenarios (MiniLM): measured, printed,
    and asserted shown."""
    (row,) = run_claims(tmp_path, only=[key])
    print(f"\n{key}: {row['our_number']} — {row['shown']}: {row['why']}")
    assert row["shown"] == "shown", row["why"]


def test_reuse_reads_back_a_finished_run_of_the_same_scenario_and_runs_a_changed_one(tmp_path):
    """`cosim claims --reuse`: an interrupted report goes on from the runs it finished, never from a
    run of another scenario under the same label."""
    from cosim.claims.runner import Runner

    one_round = {"name": "fedavg", "rounds": 1, "local_steps": 1}
    first = Runner(tmp_path).run("a", "scenarios/tiny.yaml", one_round)
    again = Runner(tmp_path, reuse=True).run("a", "scenarios/tiny.yaml", one_round)
    assert again.dir == first.dir
    host = {"wall_time_s"}   # the host's clock: the folder keeps the last flush's
    assert {k: v for k, v in again.summary.items() if k not in host} == \
        {k: v for k, v in first.summary.items() if k not in host}
    assert len(again.events) == len(first.events) and list(again.rounds.accuracy) == list(first.rounds.accuracy)
    changed = Runner(tmp_path, reuse=True).run("a", "scenarios/tiny.yaml", {**one_round, "lr": 0.01})
    assert changed.dir != first.dir
