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
- Pipeline. A round is `common.pipelined_round` (the SplitFrozen one): the device's forward of
  micro-batch k+1 overlaps with the upload of, and the server's training on, k.
- End. After the last round the side network (weights, fp32) is sent to every device that took
  part (kind "side_network") so it can run backbone + side at inference. Evaluation after each
  round is that inference model: the full-precision backbone plus the side network
  (`side.close_round_with_side`).
- Causal LM (`model.task: causal_lm`, e.g. SmolLM2 on Shakespeare): the side network reads out
  through the backbone's own final norm and LM head at every position (frozen; the server holds a
  copy, the device has its own), so it starts as exactly the pretrained model; the labels sent up
  are the next-token targets (B, T) int64.

Reproduces: arXiv 2502.20421: on-device LoRA's accuracy with far less device memory —
scenarios/mobillm_phone.yaml,
tests/test_side_tuning.py::test_mobillm_converges_within_a_few_points_of_on_device_lora
"""
from __future__ import annotations

from pydantic import Field

from ..learn.activation import Activation
from ..learn.side import SideTuningConfig, close_round_with_side, deliver_side, server_side_network
from ..world.events import declare
from .base import SchemeConfig, scheme
from .common import frozen_forward, pipelined_round


declare("side_network", "transfer", "a trained side network delivered to the device that will run it", by="mobillm")


class MobiLLMConfig(SideTuningConfig, SchemeConfig):
    name: str = "mobillm"
    pipeline: bool = Field(True, description="device computes micro-batch k+1 while the server trains on k")


@scheme("mobillm", config=MobiLLMConfig,
        summary="MobiLLM: forward-only frozen device, quantized per-layer activations up, server-side parallel adapters")
def run(sim, cfg: MobiLLMConfig):
    learner, server = sim.learner, sim.edge[0]
    trainer, layers = server_side_network(sim, server, cfg.side.config(), cfg.lr, cfg.optimizer)
    side, codec = trainer.side, cfg.codec(sim)

    def backbone_forward(dev, k):
        """Device: the frozen backbone's outputs at the fed layers for its next micro-batch."""
        batch, hiddens = yield from frozen_forward(sim, dev, k, "frozen_layer_outputs", layers)
        return Activation.of(hiddens, batch, layers=layers)

    def train_side(dev, received, proceed):
        """Server: one step of the side network on the received (dequantized) activations."""
        act = received.value
        return (yield from server.compute(trainer.train_step, act.hiddens, act.mask, act.labels, kind="train",
                                          detail=dev.name))

    served = set()
    for rnd in sim.rounds():
        devices = sim.select(cfg.participants)
        losses = yield from pipelined_round(sim, devices, server, backbone_forward, train_side, steps=cfg.local_steps,
                                            pipeline=cfg.pipeline, codec=codec,
                                            forward=("frozen_layer_outputs", lambda dev: (layers,)))
        served.update(devices)
        close_round_with_side(sim, rnd, lambda b: inference(learner, side, layers, b), losses, clients=len(devices))
    yield from deliver_side(sim, server, trainer, sorted(served, key=lambda d: d.name))


def inference(learner, side, layers: list[int], batch):
    """The device's inference model: frozen backbone (full precision) + the side network."""
    hiddens = learner.frozen_layer_outputs(batch, layers)
    return side(hiddens, batch.attention_mask)
