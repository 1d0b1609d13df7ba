"""Claims on the real MiniLM (marker `claims`: `make test-claims`, not `make test`). Run once, numbers
reported, never tuned.

- MAVFL (arXiv 2410.10451 reports UCB selection reaching the target accuracy ~28 % faster than random
  selection): scenarios/mavfl_highway.yaml, UCB vs random, the same seed, cars and partition; time to
  the first round whose held-out accuracy reaches TARGET.
- WHALE-FL: scenarios/whale_fl.yaml, adaptive vs fixed subnetwork assignment under the same dynamic
  conditions; time to TARGET. Subnetworks of depth: scenarios/whale_fl_depth.yaml (the claims row
  whale_fl_depth: adaptive, fixed, every device at depth 1).
"""
from __future__ import annotations

import math

import pytest
import yaml

import cosim
from conftest import ROOT

pytestmark = pytest.mark.claims

TARGET = 0.70   # movie_reviews; centralized MiniLM reaches 0.79 in 100 steps (NOTES.md). Fixed before running.


def _time_to_target(tmp_path, scenario: str, **scheme) -> tuple[float, list]:
    raw = yaml.safe_load((ROOT / "scenarios" / scenario).read_text())
    raw["scheme"].update(scheme)
    raw["outputs"] = {"dir": str(tmp_path / "_".join(map(str, scheme.values()))), "progress": False, "plots": []}
    raw["stop"] = {"target_accuracy": TARGET}
    r = cosim.run(raw, progress=False, plots=False)
    hit = r.rounds[r.rounds.accuracy >= TARGET]
    curve = list(zip(r.rounds.sim_time_s.round(1), r.rounds.accuracy.round(3)))
    print(scenario, scheme, "curve", curve)
    return (float(hit.sim_time_s.iloc[0]) if len(hit) else math.inf), curve


@pytest.mark.xfail(strict=True, reason="measured once (MiniLM, highway, target 0.70): UCB 5.3 s vs random 5.0 s "
                   "(ratio 1.057; the paper reports ~28 % faster) — both hit 0.70 in round 1")
def test_ucb_selection_reaches_target_sooner_than_random_on_the_highway(tmp_path):
    ucb, _ = _time_to_target(tmp_path, "mavfl_highway.yaml", selection="ucb", rounds=15)
    rnd, _ = _time_to_target(tmp_path, "mavfl_highway.yaml", selection="random", rounds=15)
    print(f"MAVFL time to {TARGET}: ucb {ucb:.1f} s, random {rnd:.1f} s, ratio {ucb / rnd:.3f}")
    assert ucb < rnd


@pytest.mark.xfail(strict=True, reason="measured once (MiniLM, target 0.70): adaptive 30.3 s vs fixed 17.5 s; "
                   "remeasured with the roofline default and common random numbers (cosim claims --only whale_fl): "
                   "adaptive 25.8 s (round 2) vs fixed 16.2 s (round 1); LoRA rank barely changes step time because "
                   "the frozen backbone dominates (subnetworks of depth: test_whale_fl_adaptive_depth_against_fixed_depths)")
def test_whale_fl_adaptive_reaches_target_sooner_than_fixed(tmp_path):
    adaptive, _ = _time_to_target(tmp_path, "whale_fl.yaml", assignment="adaptive", rounds=10)
    fixed, _ = _time_to_target(tmp_path, "whale_fl.yaml", assignment="fixed", rounds=10)
    print(f"WHALE-FL time to {TARGET}: adaptive {adaptive:.1f} s, fixed {fixed:.1f} s, ratio {adaptive / fixed:.3f}")
    assert adaptive < fixed


def test_whale_fl_adaptive_depth_against_fixed_depths(tmp_path):
    """Subnetworks of depth (issue 17 §4): adaptive against fixed sizes on scenarios/whale_fl_depth.yaml,
    as the claims row measures it; the step-time mechanism must show (a shallower subnetwork steps
    faster), whatever the time to target says — printed, and asserted only for the mechanism."""
    from cosim.claims import CLAIMS
    from cosim.claims.federated import whale_fl_depth_runs
    from cosim.claims.runner import Runner

    runner = Runner(tmp_path)
    runs = whale_fl_depth_runs(runner)
    out = CLAIMS["whale_fl_depth"].measure(runner)   # the same runs (cached by the runner)
    print(f"\nwhale_fl_depth: {out.number} — {'shown' if out.shown else 'not shown'}: {out.why}")
    step_s = {label: (r.events[r.events.kind == "train"].t_end - r.events[r.events.kind == "train"].t_start).mean()
              for label, r in runs.items()}
    assert step_s["fixed depth 1"] < step_s["fixed"]
