"""MobiLLM (Li et al., arXiv 2502.20421): server-assisted side-tuning. The device keeps only the
frozen pretrained backbone and runs it forward only; a side network of parallel adapters
(cosim/learn/side.py) lives on the server, fed by the backbone's per-layer activations, which
travel one way (device → server) quantized to `bits` (8, 4 or 2; real packed bytes,
cosim/learn/compress.py `QuantCodec`). The server backpropagates through the side network only.

Modelling choices:

- Device. `Learner.frozen_layer_outputs` runs the base model under no_grad with any LoRA adapter
  off: no adapter, no autograd graph, no backward, no optimizer state. The device ledger holds its
  frozen weights and, while it is uploaded, the outgoing activations (full precision, before they
  are coded). Nothing but the final side network is ever sent down.
- What travels up per micro-batch: the fed layers' hidden states (B, T, H) each, quantized per
  tensor (min-max), the sequence lengths (int32) and the labels (MobiLLM's server trains on
  labels). Exact size: `quantized_payload_bytes`.
- Pipeline. The device loop is `protocol.pipelined_producer` (the SplitFrozen one): the device's
  forward of micro-batch k+1 overlaps with the upload of, and the server's training on, k.
- End. After the last round the side network (weights, fp32) is sent to every device that took
  part (kind "side_network") so it can run backbone + side at inference. Evaluation after each
  round is that inference model: the full-precision backbone plus the side network
  (`side.close_round_with_side`).
- Causal LM (`model.task: causal_lm`, e.g. SmolLM2 on Shakespeare): the side network reads out
  through the backbone's own final norm and LM head at every position (frozen; the server holds a
  copy, the device has its own), so it starts as exactly the pretrained model; the labels sent up
  are the next-token targets (B, T) int64.
"""
from __future__ import annotations

from typing import Literal

import simpy
from pydantic import Field

from ..learn.compress import QuantCodec
from ..learn.protocol import pipelined_producer, serve_queue
from ..learn.side import SideConfig, SideTrainer, close_round_with_side, server_side_network
from ..learn.training import lengths_of, mask_from_lengths, tensor_bytes
from .base import LoraConfig, SchemeConfig, Strict, scheme


class SideOptions(Strict):
    reduction: int = Field(8, ge=1, description="adapter width = hidden // reduction")
    normalize: bool = Field(False, description="scale each adapter's input to unit RMS per token")
    layers: list[int] | None = Field(None, description="backbone blocks (0-based) feeding the side network; null = all")

    def config(self) -> SideConfig:
        return SideConfig(self.reduction, None if self.layers is None else tuple(self.layers), self.normalize)


class SideTuningConfig(SchemeConfig):
    """Knobs MobiLLM and PAE MobiLLM share."""

    lora: LoraConfig | None = Field(None, description="unused: the device backbone stays frozen, no LoRA")
    bits: Literal[2, 4, 8] = Field(8, description="bit width of the activations sent up")
    stochastic_rounding: bool = Field(False, description="unbiased stochastic rounding instead of round-to-nearest")
    quant_scale: Literal["tensor", "token"] = Field(
        "tensor", description="one min-max range per activation tensor, or per token (8 bytes per token more); "
                              "decoder LLMs need 'token': their massive activations flatten a per-tensor range")
    side: SideOptions = Field(default_factory=SideOptions)

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, depth

    def codec(self, sim) -> QuantCodec:
        return QuantCodec(self.bits, sim.rng("quantization") if self.stochastic_rounding else None,
                          per_row=self.quant_scale == "token")


class MobiLLMConfig(SideTuningConfig):
    name: str = "mobillm"
    pipeline: bool = Field(True, description="device computes micro-batch k+1 while the server trains on k")


@scheme("mobillm", config=MobiLLMConfig,
        summary="MobiLLM: forward-only frozen device, quantized per-layer activations up, server-side parallel adapters")
def run(sim, cfg: MobiLLMConfig):
    learner, server = sim.learner, sim.edge[0]
    trainer, layers = server_side_network(sim, server, cfg.side.config(), cfg.lr, cfg.optimizer)
    side, codec = trainer.side, cfg.codec(sim)
    served = set()
    for rnd in sim.rounds():
        devices = sim.select(cfg.participants)
        queue = simpy.Store(sim.env)
        producers = [sim.client(pipelined_producer(sim, dev, server, cfg.local_steps, _producer(sim, dev, layers, rnd),
                                                   queue, rnd, pipeline=cfg.pipeline, codec=codec))
                     for dev in devices]
        losses = yield sim.process(serve_queue(queue, len(devices), _server_step(sim, server, trainer, layers, rnd)))
        yield sim.all_of(producers)
        served.update(devices)
        close_round_with_side(sim, rnd, lambda b: inference(learner, side, layers, b), losses, clients=len(devices))
    yield from deliver_side(sim, server, trainer, sorted(served, key=lambda d: d.name), sim.current_round)


def _producer(sim, dev, layers: list[int], rnd: int):
    learner = sim.learner

    def produce(k: int):
        batch = learner.next_batch(dev.name)
        hiddens = yield from dev.compute(learner.frozen_layer_outputs, batch, layers, kind="fwd",
                                         key=("side_fwd", tuple(layers), batch.signature), rnd=rnd)
        message = {f"h{i}": h for i, h in zip(layers, hiddens)}
        return {**message, "lengths": lengths_of(batch.attention_mask), "labels": batch.labels}

    return produce


def _server_step(sim, server, trainer: SideTrainer, layers: list[int], rnd: int):
    def serve(dev, k, received, done):
        hiddens = [received[f"h{i}"] for i in layers]
        mask = mask_from_lengths(received["lengths"], hiddens[0].shape[1])
        loss = yield from server.compute(trainer.train_step, hiddens, mask, received["labels"], kind="train",
                                         key=("side_train", len(layers), tuple(hiddens[0].shape)), rnd=rnd,
                                         detail=dev.name)
        server.memory.release(f"queued:{dev.name}:{k}")
        done.succeed(True)
        return loss

    return serve


def inference(learner, side, layers: list[int], batch):
    """The device's inference model: frozen backbone (full precision) + the side network."""
    hiddens = learner.frozen_layer_outputs(batch, layers)
    return side(hiddens, batch.attention_mask)


def deliver_side(sim, server, trainer: SideTrainer, devices: list, rnd: int):
    """Send the trained side network to every device (kind "side_network"), in parallel."""
    state = trainer.state()

    def one(dev):
        yield from sim.send(server, dev, state, kind="side_network", rnd=rnd)
        dev.memory.hold("side_weights", tensor_bytes(state.values()))
        dev.memory.release(f"recv:side_network:{server.name}")

    if devices:
        yield sim.all_of(sim.client(one(dev)) for dev in devices)
