"""SplitFrozen (split fine-tuning with a frozen device side): devices run the embedding and blocks
[0, cut) of the pretrained model forward only — no LoRA, no autograd graph, no backward, nothing
sent down — and upload the cut-layer activations; ONE shared server-side model carrying LoRA on
blocks [cut, depth) and the head trains on every device's micro-batches in the order they arrive.

Modelling choices (stated because the timeline depends on them):

- Device side. `Learner.frozen_forward` runs the base model under `torch.no_grad()` with the
  device blocks' LoRA layers switched off, so the counted FLOPs are the base model's alone and no
  activation is saved. The host model has LoRA injected everywhere, but the device blocks'
  adapters are never trained and peft initialises lora_B to zero, so switching them off changes
  nothing numerically (tests check bit-equality). The device ledger holds its frozen weights and,
  while it is being uploaded, the outgoing activation — no gradients, no optimizer state.
- Heterogeneous cuts. `cut_layer` is the default; `cut_layers: {profile: cut}` overrides it per
  device profile. The server model holds LoRA for blocks [min cut, depth); a micro-batch cut at c
  runs (and trains) blocks [c, depth) only.
- Pipeline. Each device is a producer process: forward micro-batch k, hand it to a sender process
  (uploads leave one after another on the device's radio and land in the server's queue, a
  `simpy.Store`), and — with `pipeline: true` — go on to micro-batch k+1 while k is uploaded and
  trained, waiting only for k-1 to be done (at most two micro-batches in flight per device, so
  the server's receive buffers stay bounded). With `pipeline: false` the device waits for k to be
  done before computing k+1. "Done" is a control signal of negligible size (no tensor).
- Decomposed backward and the critical path. Nothing below the cut needs a gradient, so the
  server's critical path for a micro-batch is what must finish before the device may proceed and
  before the next micro-batch can be served: forward plus the chain of activation gradients down
  to the output of every trainable map (`LocalModel.top_output_grads`, kind "train") — no
  gradient at the cut itself is ever computed. The parameter gradients (LoRA A/B and head) and
  the optimizer step are a separate compute event right after it (`top_weight_update`, kind
  "wgrad"): the "done" signal is sent after the critical part, so the weight-gradient work
  overlaps with the device's next forward and upload. The server runs one job at a time (FIFO),
  so the next micro-batch's forward always queues behind the previous update: the shared model
  is trained by plain sequential SGD, exactly as with `decompose_backward: false` (one fused
  "train" event) — the decomposition changes time, never the model.
- End of round. The server holds the only trained copy; there is nothing to aggregate or send
  back (devices keep the frozen base). Losses of all micro-batches give the round loss.

Reproduces: SplitFrozen 2025: device-side computation −86.8 % against FedLoRA and SplitLoRA —
scenarios/compare_split.yaml,
tests/test_splitfrozen.py::test_device_flops_per_sample_is_the_papers_fraction_of_fedlora
"""
from __future__ import annotations

from functools import partial

from pydantic import Field

from ..learn.activation import Activation
from ..learn.aggregate import merge
from ..learn.training import tensor_bytes
from ..world.events import declare
from .base import LoraRequired, SplitConfig, scheme
from .common import frozen_forward, pipelined_round, round_loop


declare("wgrad", "compute", "weight gradients and the update, split off the critical path (SplitFrozen)", by="splitfrozen")


class SplitFrozenConfig(LoraRequired, SplitConfig):
    name: str = "splitfrozen"
    cut_layers: dict[str, int] = Field(default_factory=dict,
                                       description="per device profile cut layer, overriding cut_layer")
    pipeline: bool = Field(True, description="device computes/sends micro-batch k+1 while the server trains on k")
    decompose_backward: bool = Field(True, description="parameter gradients as a separate event off the critical path")

    def cut_for(self, profile: str) -> int:
        return self.cut_layers.get(profile, self.cut_layer)

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, max([self.cut_layer, *self.cut_layers.values()])

    def problems(self, depth, source, device_profiles) -> list[str]:
        """cut_layer, and each per-profile cut: a profile some device group uses, a cut in the model."""
        problems = super().problems(depth, source, device_profiles)
        used = sorted(set(device_profiles))
        for profile, cut in self.cut_layers.items():
            if profile not in used:
                problems.append(f"scheme.cut_layers.{profile}: no device group has this profile (given "
                                f"{profile!r}); allowed: {', '.join(used)}")
            problems += self.cut_problems(f"cut_layers.{profile}", cut, depth, source)
        return problems


@scheme("splitfrozen", config=SplitFrozenConfig,
        summary="SplitFrozen: frozen forward-only device side, one shared LoRA server model, pipelined")
def run(sim, cfg: SplitFrozenConfig):
    learner, server = sim.learner, sim.edge[0]
    cuts = {dev.name: cfg.cut_for(dev.profile_name) for dev in sim.devices}
    low = min(cuts.values())
    frozen_bottom = learner.initial_state(learner.trainable_names(0, low))  # never trained
    server.memory.resident("weights", learner.weight_bytes(low))
    server.memory.resident("training_state", learner.training_state_bytes(learner.trainable_names(low)))
    for dev in sim.devices:
        dev.memory.resident("weights", learner.weight_bytes(0, cuts[dev.name]))

    def bottom_forward(dev, k):
        """Device: the frozen forward of its next micro-batch to its cut (no graph, no backward)."""
        batch, hidden = yield from frozen_forward(sim, dev, k, "frozen_forward", cuts[dev.name])
        return Activation.of(hidden, batch)

    def train_top(top, dev, received, proceed):
        """Server: train the shared model's blocks [cut, depth) and head on one micro-batch; the
        device may proceed after the critical path (with `decompose_backward`, before the
        weight-gradient work)."""
        act, cut = received.value, cuts[dev.name]
        if not cfg.decompose_backward:
            return (yield from server.compute(top.top_update, act.hidden, act.mask, act.labels, cut, kind="train",
                                              detail=dev.name))
        loss, stash = yield from server.compute(top.top_output_grads, act.hidden, act.mask, act.labels, cut,
                                                kind="train", detail=dev.name)
        proceed()
        with server.memory.hold("wgrad_stash", tensor_bytes(t for _, x, g in stash for t in (x, g))):
            yield from server.compute(top.top_weight_update, stash, kind="wgrad", detail=dev.name)
        return loss

    codec = cfg.codec(sim)

    def one_round(rnd, top):
        """The round's pipeline; `top`, the shared server model with its optimizer, trains in place."""
        devices = sim.select(cfg.participants)
        losses = yield from pipelined_round(sim, devices, server, bottom_forward, partial(train_top, top),
                                            steps=cfg.local_steps, pipeline=cfg.pipeline, codec=codec,
                                            forward=("frozen_forward", lambda dev: (cuts[dev.name],)))
        sim.close_round(rnd, merge(frozen_bottom, top.state()), losses, clients=len(devices))
        return top

    yield from round_loop(sim, lambda: learner.local(learner.initial_state(learner.trainable_names(low)), start=low),
                          one_round)
