"""SplitFrozen's claims on a tiny real scenario (same seed for every run compared): the device runs
a frozen forward only, so it computes less, holds less and never receives a gradient; the pipeline
shortens the run; the decomposed backward changes time, never the model."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import cosim
from cosim.run import build
from conftest import tiny_scenario

CUT = 2


def _run(tmp_path, scheme="splitfrozen", **overrides):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": scheme, "rounds": 2, "local_steps": 3, "batch_size": 8, "lr": 0.005}
    if scheme != "fedlora":   # FedLoRA trains the whole model on the device: no cut
        raw["scheme"]["cut_layer"] = CUT
    return cosim.run(raw, overrides=overrides, progress=False, plots=False)


def _device_flops_per_sample(r):
    ev = r.events
    devices = set(r.nodes[r.nodes.role == "device"].node)
    # one device forward (split family) or local training step (FedLoRA) per micro-batch of 8
    steps = (ev.node.isin(devices) & ev.kind.isin(["fwd", "train"])).sum()
    return r.summary["device_flops"] / (steps * 8)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sf")
    return {"frozen": _run(tmp), "splitlora": _run(tmp, "splitlora"), "fedlora": _run(tmp, "fedlora"),
            "no_pipeline": _run(tmp, **{"scheme.pipeline": False}),
            "fused": _run(tmp, **{"scheme.decompose_backward": False})}


def test_device_lora_path_adds_exactly_zero_and_frozen_forward_keeps_no_graph(tmp_path):
    sim = build(cosim.load(tiny_scenario(tmp_path)))
    batch = sim.learner.next_batch("dev0")
    frozen = sim.learner.frozen_forward(batch, CUT)
    with_lora = sim.learner.model(batch.input_ids, batch.attention_mask, start=0, end=CUT)
    assert torch.equal(frozen, with_lora) and not frozen.requires_grad


#: SplitFrozen's claim ("SplitFrozen: Split Learning with Device-side Model Frozen for Fine-Tuning LLM on
#: Heterogeneous Resource-Constrained Devices", 2025): device-side computation down 86.8 % against
#: FedLoRA and SplitLoRA, i.e. at most 0.132 of theirs per sample.
PAPER_RATIO = 1 - 0.868


def test_device_flops_per_sample_below_splitlora_below_fedlora(runs):
    """The measured relation, same tiny scenario, cut 2 of tiny-bert's 4 blocks: per sample the
    frozen bottom forward costs 0.465x SplitLoRA's device forward + backward and 0.223x FedLoRA's
    whole-model training step (MiniLM, compare_split.yaml, cut 2 of 6: see `cosim claims`). Before
    attention's FLOPs were counted on the CPU (its fused kernel counted 0) these were 0.504x and 0.240x."""
    frozen, splitlora, fedlora = (_device_flops_per_sample(runs[k]) for k in ("frozen", "splitlora", "fedlora"))
    assert frozen < splitlora < fedlora
    assert frozen / splitlora == pytest.approx(0.465, abs=0.005)
    assert frozen / fedlora == pytest.approx(0.223, abs=0.005)


@pytest.mark.xfail(strict=True, reason="measured 0.223x FedLoRA (-77.7 %) on tiny-bert (cut 2 of 4 blocks, T=32), "
                   "not the paper's 0.132x (-86.8 %): the device holds half of tiny-bert's blocks")
def test_device_flops_per_sample_is_the_papers_fraction_of_fedlora(runs):
    assert _device_flops_per_sample(runs["frozen"]) <= PAPER_RATIO * _device_flops_per_sample(runs["fedlora"])


@pytest.mark.xfail(strict=True, reason="measured 0.465x SplitLoRA (-53.5 %) on tiny-bert (cut 2, T=32), not the "
                   "paper's 0.132x (-86.8 %): a frozen forward costs under half of forward + backward when only input "
                   "gradients and LoRA's flow below the cut, whatever the cut")
def test_device_flops_per_sample_is_the_papers_fraction_of_splitlora(runs):
    assert _device_flops_per_sample(runs["frozen"]) <= PAPER_RATIO * _device_flops_per_sample(runs["splitlora"])


def test_device_computes_less_holds_less_and_gets_no_gradient(runs):
    frozen, base = runs["frozen"], runs["splitlora"]
    assert _device_flops_per_sample(frozen) < _device_flops_per_sample(base)
    assert frozen.summary["device_peak_memory_bytes"] < base.summary["device_peak_memory_bytes"]
    ev = frozen.events
    devices = set(frozen.nodes[frozen.nodes.role == "device"].node)
    down = ev[(ev.bytes > 0) & ev.peer.isin(devices) & ~ev.node.isin(devices)]
    assert not (ev.kind == "gradient").any() and not (ev.kind == "bwd").any()
    assert down.empty or not (down.kind == "gradient").any()
    assert frozen.summary["bytes_down"] == 0
    assert set(ev[ev.node.isin(devices) & (ev.flops > 0)].kind) == {"fwd"}


def _served(r) -> pd.Series:
    ev = r.events
    return ev[ev.kind == "activation"].groupby(["round", "node"]).size()


def test_pipeline_shortens_the_run_and_serves_the_same_micro_batches(runs):
    """The server trains on micro-batches in their order of arrival, and the pipeline changes that
    order across devices (their uploads overlap other devices' forwards), so with several devices
    the two models may differ; the micro-batches served are the same."""
    assert runs["frozen"].summary["sim_time_s"] < runs["no_pipeline"].summary["sim_time_s"]
    pd.testing.assert_series_equal(_served(runs["frozen"]), _served(runs["no_pipeline"]))


def test_with_one_device_the_pipeline_changes_time_never_the_model(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 1, "profile": "jetson-nano"}]
    raw["scheme"] = {"name": "splitfrozen", "rounds": 2, "local_steps": 3, "batch_size": 8, "lr": 0.005,
                     "cut_layer": CUT}
    on, off = (cosim.run(raw, overrides={"scheme.pipeline": p}, progress=False, plots=False) for p in (True, False))
    assert on.summary["sim_time_s"] < off.summary["sim_time_s"]
    pd.testing.assert_series_equal(on.rounds.loss, off.rounds.loss)
    pd.testing.assert_series_equal(on.rounds.accuracy, off.rounds.accuracy)


def test_decomposed_backward_same_model_weight_gradients_in_their_own_event(runs):
    pd.testing.assert_series_equal(runs["frozen"].rounds.loss, runs["fused"].rounds.loss, rtol=1e-5)
    ev = runs["frozen"].events
    assert (ev.kind == "wgrad").sum() == (ev.kind == "train").sum() > 0
    assert not (runs["fused"].events.kind == "wgrad").any()


def test_activation_bytes_are_the_real_payload(runs):
    from cosim.learn.compress import MESSAGE_HEADER_BYTES, TENSOR_HEADER_BYTES
    up = MESSAGE_HEADER_BYTES + 3 * TENSOR_HEADER_BYTES + 8 * 32 * 64 * 4 + 8 * 4 + 8 * 8
    assert set(runs["frozen"].events.query("kind == 'activation'").bytes) == {up}


def test_heterogeneous_cuts_per_profile(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}, {"count": 2, "profile": "raspberry-pi-4", "name": "rpi"}]
    raw["scheme"] = {"name": "splitfrozen", "rounds": 1, "local_steps": 2, "batch_size": 8, "cut_layer": 2,
                     "cut_layers": {"raspberry-pi-4": 1}}
    r = cosim.run(raw, progress=False, plots=False)
    fwd = r.events[r.events.kind == "fwd"].groupby("node").flops.first()
    assert fwd["rpi0"] < fwd["dev0"] and r.summary["rounds"] == 1
