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
    raw["scheme"] = {"name": scheme, "rounds": 2, "local_steps": 3, "batch_size": 8, "lr": 0.005, "cut_layer": CUT}
    return cosim.run(raw, overrides=overrides, progress=False, plots=False)


def _device_flops_per_sample(r):
    ev = r.events
    samples = (ev.kind == "activation").sum() * 8  # one activation message per micro-batch of 8
    return r.summary["device_flops"] / samples


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sf")
    return {"frozen": _run(tmp), "splitlora": _run(tmp, "splitlora"),
            "no_pipeline": _run(tmp, **{"scheme.pipeline": False}),
            "fused": _run(tmp, **{"scheme.decompose_backward": False})}


def test_device_lora_path_adds_exactly_zero_and_frozen_forward_keeps_no_graph(tmp_path):
    sim = build(cosim.load(tiny_scenario(tmp_path)))
    batch = sim.learner.next_batch("dev0")
    frozen = sim.learner.frozen_forward(batch, CUT)
    with_lora = sim.learner.model(batch.input_ids, batch.attention_mask, start=0, end=CUT)
    assert torch.equal(frozen, with_lora) and not frozen.requires_grad


@pytest.mark.xfail(strict=True, reason="measured 0.504 on tiny-bert (cut 2, T=32): a frozen forward costs "
                   "~half of forward+LoRA backward when only input gradients flow below the cut")
def test_device_flops_per_sample_at_most_0_4_of_splitlora(runs):
    assert _device_flops_per_sample(runs["frozen"]) <= 0.4 * _device_flops_per_sample(runs["splitlora"])


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


def test_pipeline_shortens_the_run(runs):
    assert runs["frozen"].summary["sim_time_s"] < runs["no_pipeline"].summary["sim_time_s"]
    pd.testing.assert_series_equal(runs["frozen"].rounds.accuracy, runs["no_pipeline"].rounds.accuracy)


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
