"""Claims of the federated family on the real MiniLM under extreme label skew (issue 8).

Setting (scenarios/compare_fl.yaml, the same for every scheme: seed 3, same partition, devices and
radio): 10 devices, one class each (shards; binary movie reviews), 64 samples per device, MiniLM
+ LoRA r 8, lr 5e-4 (AdamW), K = 5 local steps of batch 16, 6 rounds, 300 held-out rows — the
setting of NOTES.md where the analysis's direction shows. Each test runs once (`make
test-claims`, minutes each on 2 cores); the numbers are printed and reported, never tuned.

- Sequential FL ends above FedAvg (Li & Lyu's counterintuitive result under heterogeneity).
- Sequential split learning (vanilla `split`, cut after block 2) against FedAvg.
- CyclicFL (2 cyclic rounds, then 4 FedAvg rounds) against FedAvg from the same initialisation
  after the same total number of rounds (6); FedAvg's accuracy after 4 rounds is printed too.
- DFL against FedAvg (reported only: the issue claims no order).

Measured (one run each, seed 3, 2 shared cores; accuracy after rounds 0..6):
  fedavg        0.450 0.447 0.463 0.470 0.480 0.490 0.503
  sequential_fl 0.450 0.513 0.607 0.687 0.723 0.747 0.767   (> FedAvg: passes)
  split         0.450 0.567 0.693 0.693 0.773 0.793 0.763   (> FedAvg: passes)
  cyclicfl      0.450 0.513 0.607 0.630 0.647 0.663 0.677   (> FedAvg's 0.503 after 6 rounds and 0.480 after 4)
  dfl           0.450 0.447 0.463 0.470 0.477 0.487 0.503   (= FedAvg: with one class per client a
                device's stored soft targets agree with its labels, so the KD term pulls the same way as CE)
Wall time: 660 s for sequential_fl + fedavg, 768 s for split + cyclicfl + dfl (fedavg cached).
"""
from __future__ import annotations

import pytest
import yaml

import cosim
from conftest import ROOT

pytestmark = pytest.mark.claims

_CACHE: dict[str, object] = {}


def _result(tmp_path_factory, scheme: str):
    if scheme not in _CACHE:
        raw = yaml.safe_load((ROOT / "scenarios" / "compare_fl.yaml").read_text())
        raw["name"] = f"claim-{scheme}"
        raw["scheme"] = {**raw["scheme"], "name": scheme}
        if scheme == "split":
            raw["scheme"]["cut_layer"] = 2
        if scheme == "cyclicfl":
            raw["scheme"]["cyclic_rounds"] = 2
        raw["outputs"] = {"dir": str(tmp_path_factory.mktemp(scheme) / "results"), "progress": False, "plots": []}
        _CACHE[scheme] = cosim.run(raw, progress=False, plots=False)
    return _CACHE[scheme]


def _curve(res) -> str:
    return " ".join(f"{a:.3f}" for a in res.rounds["accuracy"])


def _vs_fedavg(tmp_path_factory, scheme: str) -> tuple[float, float]:
    ours, fed = _result(tmp_path_factory, scheme), _result(tmp_path_factory, "fedavg")
    a, b = ours.summary["final_accuracy"], fed.summary["final_accuracy"]
    print(f"\n{scheme}: {_curve(ours)}\nfedavg: {_curve(fed)}\n{scheme} {a:.4f} vs FedAvg {b:.4f} "
          f"after {ours.summary['rounds']} rounds")
    assert ours.summary["rounds"] == fed.summary["rounds"]
    return a, b


def test_sequential_fl_ends_above_fedavg_with_one_class_per_client(tmp_path_factory):
    a, b = _vs_fedavg(tmp_path_factory, "sequential_fl")
    assert a > b


def test_sequential_split_learning_ends_above_fedavg_with_one_class_per_client(tmp_path_factory):
    a, b = _vs_fedavg(tmp_path_factory, "split")
    assert a > b


def test_cyclicfl_ends_above_fedavg_from_the_same_initialisation(tmp_path_factory):
    a, b = _vs_fedavg(tmp_path_factory, "cyclicfl")
    fed = _result(tmp_path_factory, "fedavg").rounds
    print(f"FedAvg after 4 rounds (as many FedAvg rounds as CyclicFL's phase 2): "
          f"{float(fed.loc[fed['round'] == 4, 'accuracy'].iloc[0]):.4f}")
    assert a > b


def test_dfl_vs_fedavg_on_non_iid_data(tmp_path_factory):
    # the issue asks for DFL's accuracy against FedAvg's to be reported, not for an order
    a, b = _vs_fedavg(tmp_path_factory, "dfl")
    assert 0.0 <= a <= 1.0 and 0.0 <= b <= 1.0
