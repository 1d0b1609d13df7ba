"""The real thing, end to end: the pretrained MiniLM fine-tuned on the real movie reviews in event
time. Marked slow (minutes); `make test` runs them, `make test-fast` skips them."""
from __future__ import annotations

import pytest

import cosim
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_quickstart_learns_clearly_above_chance_and_writes_its_plots(tmp_path):
    r = cosim.run(ROOT / "scenarios" / "quickstart.yaml", overrides={"outputs.dir": str(tmp_path)}, progress=False)
    assert r.rounds.accuracy.iloc[0] < 0.6                 # the fresh head guesses
    assert r.summary["final_accuracy"] >= 0.7               # held-out, 500 sentences
    assert r.summary["rounds"] == 6 and r.summary["sim_time_s"] > 0
    for png in ("delay_accuracy.png", "timeline.png", "memory.png", "energy.png"):
        assert (r.dir / png).stat().st_size > 10_000
    # ten devices of three profiles; the vehicles' links changed rate while they moved
    assert r.nodes[r.nodes.role == "device"].profile.nunique() == 3


def test_split_on_minilm_moves_real_cut_activations_and_learns(tmp_path):
    r = cosim.run(ROOT / "scenarios" / "split.yaml",
                  overrides={"outputs.dir": str(tmp_path), "scheme.rounds": 1, "scheme.participants": 2},
                  progress=False, plots=False)
    ev = r.events
    per_token = 16 * 384 * 4                                # batch × MiniLM hidden × float32, per token position
    tokens = {(b - 8 - 32) / per_token for b in ev[ev.kind == "gradient"].bytes}   # framing + one tensor header
    assert tokens and tokens <= set(range(8, 65, 8))          # each batch padded to its bucket (multiple of 8, <= 64)
    assert r.summary["final_accuracy"] > r.rounds.accuracy.iloc[0]
