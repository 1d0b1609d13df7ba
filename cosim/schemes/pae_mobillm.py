"""PAE MobiLLM: additive side-tuning with a server-side activation cache, a pivot-token shortcut
and label-free server training (the privacy-aware, efficient follow-up of MobiLLM, Li et al.,
arXiv 2502.20421; the side network is cosim/learn/side.py).

Per minibatch of a device:

1. Cache. The server keeps, per device, the activations it has received, keyed by sample (the
   dataset row index); the device keeps its frozen backbone's logits for the same samples. A
   sample seen before costs the device no forward and the link no activation bytes: only the
   samples the server has not cached go through the device's backbone (kind "fwd") and up.
2. Pivot tokens. Per fed layer one token's hidden state travels instead of the whole sequence
   (`pivot`): "auto" is the token the model's pooling reads — the last real token for decoders
   (it has attended to the whole sequence), the mask mean for mean-pooled encoders such as
   MiniLM; "first" ([CLS]) and "mean"/"last" can be forced. Quantized to `bits` like MobiLLM's.
   So the uplink per sample is ~1/T of MobiLLM's for sequences of T tokens.
3. Request. The device sends the batch's sample keys (int32, 4 bytes each: the only per-sample
   cost of a cache hit); the server runs the side network on the cached pivots and sends its
   logits z_side down (kind "side_output").
4. Difference. The device adds them to its backbone's logits (the additive combination happens
   on the device, kind "combine"), computes its loss on its own labels and sends the
   prediction difference dL/dz_side = (softmax(z_backbone + z_side) − onehot(y)) / B up (kind
   "difference"); the server backpropagates it through the side network and updates.

So the server never receives raw data, input ids, labels or the combined (final) model; it does
see the difference, from which a label can be inferred (argmin of the row), as in the paper's
threat model the difference is what the device chooses to disclose. After the last round the side
network is sent to the device (kind "side_network"), which then holds the whole inference model;
evaluation after each round is that model: backbone logits + side logits on pivots.

Modelling choices: the server recomputes the (small) side forward at the update instead of
holding its graph across the round trip, so devices sharing one side network interleave safely;
the server's cache is charged to its ledger at the quantized size.

Reproduces: after arXiv 2502.20421: the activation cache and pivot tokens cut device compute and uplink
bytes against MobiLLM — scenarios/pae_mobillm_phone.yaml, tests/test_claims.py::test_claim_is_shown
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from ..learn.compress import quantized_tensor_bytes
from ..learn.side import (SideTrainer, SideTuningConfig, backbone_pass, close_round_with_side, deliver_side,
                          prediction_difference, resolve_pivot, server_side_network)
from ..learn.training import Batch
from ..world.events import declare
from .base import SchemeConfig, scheme


declare("combine", "compute", "a device combining its backbone output with the side network's (PAE MobiLLM)",
        by="pae_mobillm")
declare("request", "transfer", "a device asking the server for something it caches (PAE MobiLLM)", by="pae_mobillm")
declare("side_output", "transfer", "side-network outputs the server returns to a device", by="pae_mobillm")
declare("difference", "transfer", "label-free output differences a device sends back (PAE MobiLLM)", by="pae_mobillm")


class PaeMobiLLMConfig(SideTuningConfig, SchemeConfig):
    name: str = "pae_mobillm"
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    task_note: ClassVar[str] = ("its pivot-token shortcut and prediction differences assume one prediction per "
                                "sample; a next-token difference would be B x T x vocab floats")
    pivot: Literal["auto", "first", "last", "mean"] = Field(
        "auto", description="the token sent per layer: auto = last for decoders, mask mean for encoders")
    cache: bool = Field(True, description="server caches received activations by sample")


@scheme("pae_mobillm", config=PaeMobiLLMConfig,
        summary="PAE MobiLLM: additive side-tuning, pivot tokens, server activation cache, label-free server")
def run(sim, cfg: PaeMobiLLMConfig):
    learner, server = sim.learner, sim.edge[0]
    trainer, layers = server_side_network(sim, server, cfg.side.config(), cfg.lr, cfg.optimizer)
    side, pivot = trainer.side, resolve_pivot(learner.model, cfg.pivot)
    caches = {dev.name: ({}, {}) for dev in sim.devices}  # (server: key -> pivots, device: key -> logits)
    served = set()
    for rnd in sim.rounds():
        devices = sim.select(cfg.participants)
        gathered = yield from sim.gather(client_round(sim, cfg, dev, server, trainer, layers, pivot, caches[dev.name])
                                         for dev in devices)
        served.update(devices)
        close_round_with_side(sim, rnd, lambda b: inference(learner, side, layers, pivot, b),
                              [loss for losses in gathered.results for loss in losses], clients=len(devices))
    yield from deliver_side(sim, server, trainer, sorted(served, key=lambda d: d.name))


def client_round(sim, cfg: PaeMobiLLMConfig, dev, server, trainer: SideTrainer, layers, pivot, caches):
    """`local_steps` minibatches of one device; returns the device's losses."""
    learner, codec = sim.learner, cfg.codec(sim)
    server_cache, device_cache = caches
    losses = []
    for _ in range(cfg.local_steps):
        batch, keys = learner.next_indexed_batch(dev.name)
        if not cfg.cache:  # without the cache every sample goes through the backbone and up every time
            server_cache.clear()
            device_cache.clear()
        new = [int(s) for s in dict.fromkeys(keys.tolist()) if int(s) not in device_cache]
        if new:  # 1. only the samples the server has not cached: device forward, pivots up
            rows = [int(np.flatnonzero(keys == s)[0]) for s in new]
            sub = Batch(batch.input_ids[rows], batch.attention_mask[rows], batch.labels[rows])
            pivots, logits = yield from dev.compute(backbone_pass, learner, sub, layers, pivot, kind="fwd")
            message = {"keys": torch.tensor(new, dtype=torch.int32), **{f"p{i}": p for i, p in zip(layers, pivots)}}
            with (yield from sim.send(dev, server, message, kind="activation", codec=codec)) as up:
                for j, s in enumerate(up.value["keys"].tolist()):
                    server_cache[s] = [up.value[f"p{i}"][j] for i in layers]
                    device_cache[s] = logits[j]
            per_sample = len(layers) * quantized_tensor_bytes(learner.model.hidden_size, cfg.bits)
            server.memory.resident(f"cache:{dev.name}", per_sample * len(server_cache))
            dev.memory.resident("logit_cache", sum(t.numel() * t.element_size() for t in device_cache.values()))
        # 3. request: the batch's keys up, the side logits down
        with (yield from sim.send(dev, server, [torch.from_numpy(keys.astype(np.int32))], kind="request")) as req:
            inputs = [torch.stack([server_cache[int(s)][li] for s in req.value[0].tolist()])
                      for li in range(len(layers))]
        side_logits = yield from server.compute(trainer.predict, inputs, kind="fwd", detail=dev.name)
        with (yield from sim.send(server, dev, [side_logits], kind="side_output")) as down:
            (z_side,) = down.value
        # 4. the device combines, computes its loss and the difference; the server trains on it
        backbone = torch.stack([device_cache[int(s)] for s in keys.tolist()])
        loss, diff = yield from dev.compute(prediction_difference, backbone, z_side, batch.labels, kind="combine")
        with (yield from sim.send(dev, server, [diff], kind="difference")) as up:
            (diff,) = up.value
        yield from server.compute(trainer.apply_difference, inputs, diff, kind="train", detail=dev.name)
        losses.append(loss)
    return losses


def inference(learner, side, layers, pivot: str, batch):
    """The device's inference model: backbone logits + side logits on the (full-precision) pivots."""
    pivots, logits = backbone_pass(learner, batch, layers, pivot)
    return logits + side(pivots)
