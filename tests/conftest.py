"""Shared fixtures: a tiny, seconds-long scenario every engine test starts from."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

torch.set_num_threads(1)
# every run in the test suite checks the run-time invariants (cosim.world.invariants), subprocesses too
os.environ.setdefault("COSIM_VERIFY", "1")
# twin-mode step costs persist across runs (cosim.learn.twin): keep the suite's out of ~/.cache
os.environ.setdefault("COSIM_TWIN_CACHE_DIR", tempfile.mkdtemp(prefix="cosim-twin-cache-"))
ROOT = Path(__file__).resolve().parents[1]


def tiny_scenario(tmp_path: Path, **changes) -> dict:
    """scenarios/tiny.yaml as a dict, writing into tmp_path, no progress bar, static devices."""
    raw = yaml.safe_load((ROOT / "scenarios" / "tiny.yaml").read_text())
    raw["outputs"] = {"dir": str(tmp_path / "results"), "progress": False, "plots": []}
    raw["devices"] = [{"count": 4, "profile": "jetson-nano"}]
    for key, value in changes.items():
        raw[key] = value
    return raw


@pytest.fixture
def tiny(tmp_path):
    return tiny_scenario(tmp_path)
