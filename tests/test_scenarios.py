"""Every shipped scenario validates as it stands, and so does every entry of its compare: list:
a scenario file that drifted from the code would otherwise only fail when someone runs it."""
from __future__ import annotations

import pytest

import cosim
from cosim.compare import entries_of
from conftest import ROOT

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def test_there_is_a_scenario_for_every_scheme():
    from cosim.schemes import SCHEMES

    text = "\n".join(p.read_text() for p in SCENARIOS)
    assert [name for name in SCHEMES if f"name: {name}" not in text] == []


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenario_validates(path):
    sc = cosim.load(path)
    if sc.compare:
        labels = [label for label, _ in entries_of(path)]
        assert len(labels) == len(sc.compare) >= 2
