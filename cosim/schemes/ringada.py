"""RingAda (arXiv 2502.19864, "RingAda: Pipelining Large Model Fine-Tuning on Edge Devices with
Scheduled Layer Unfreezing"): the devices form a ring; each holds consecutive frozen blocks with
their LoRA adapters; every batch flows around the ring as a pipeline of micro-batches; adapters
unfreeze top-down on a schedule, and backward stops at the lowest unfrozen adapter, so in early
rounds the devices below it run forward only and are sent no gradient.

Modelling choices (stated because time, memory and the model depend on them):

- Ring. The devices in scenario order (`ring_order: scenario`) or in an order drawn from the
  stream "ring" (`ring_order: seeded`). Device i holds blocks [cuts[i-1], cuts[i]) with their
  adapters: `blocks_per_device` (one count per device) or an even split of the depth (the
  remainder goes to the lowest devices). The first device also holds the embedding, the last the
  final norm and the head (a classification head, or a causal LM's pretrained LM head). Devices reach each other through their serving access
  point (device → AP → device: the network has no direct device-to-device link). The ring's
  closing edge (last → first) carries nothing here: the first device starts the next batch as
  soon as its pipeline slot frees.
- Data and labels. The first device reads the data (its own partition) and labels travel with
  the activation up the ring, as in split learning (`protocol.chain_step`); the last device
  computes the loss. The other devices' partitions are not used.
- Pipeline. A batch of `batch_size` splits into `micro_batches` micro-batches, all in flight at
  once (each device's processor takes them in arrival order, so device i works on micro-batch m
  while device i+1 works on m-1). Gradients accumulate over the micro-batches and every device
  updates once per batch (synchronous, GPipe-style: no weight staleness), with the mean
  gradient. Every micro-batch holds its own buffers (saved activations, what it received) until
  its exchange is over, so overlapping micro-batches each count.
- Unfreezing. `unfreeze: {every_rounds: k, start_top: m, add: a}`: in round r the adapters of the
  top min(depth, m + a·floor((r-1)/k)) blocks train, plus a classification head (always; a causal
  LM's pretrained head stays frozen). `unfreeze: all`:
  every adapter from round 1 (the baseline). Frozen adapters stay at their initial values (LoRA's
  B = 0: they add nothing) and their parameters do not require a gradient; backward stops at the
  lowest trainable block (`chain_step(stop=...)`).
- Each round is `local_steps` batches; evaluation uses the full model (every device's part).
  A dropped transfer loses that micro-batch (its gradient does not count); the batch still updates.

Reproduces: arXiv 2502.19864: scheduled unfreezing shortens fine-tuning at comparable accuracy —
scenarios/ringada_ring4.yaml,
tests/test_ringada.py::test_ringada_accuracy_within_a_few_points_of_all_trainable_on_minilm
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from ..config import Strict
from ..learn.aggregate import merge
from ..learn.protocol import chain_step
from ..learn.training import Batch, tensor_bytes
from ..world.events import declare
from .base import LoraRequired, SchemeConfig, scheme
from .common import round_loop


declare("update", "compute", "an optimizer step on accumulated gradients", by="ringada")


class UnfreezeSchedule(Strict):
    every_rounds: int = Field(1, ge=1, description="rounds between two unfreezing steps")
    start_top: int = Field(1, ge=1, description="blocks (from the top) whose adapters train in round 1")
    add: int = Field(1, ge=1, description="blocks unfrozen at each step")


class RingAdaConfig(LoraRequired, SchemeConfig):
    name: str = "ringada"
    compresses: ClassVar[bool] = True   # `compression` codes activations and gradients
    blocks_per_device: list[int] | None = Field(None, description="blocks per ring device, bottom first "
                                                                  "(null: an even split of the depth)")
    micro_batches: int = Field(2, ge=1, description="micro-batches per batch in the ring pipeline")
    unfreeze: UnfreezeSchedule | Literal["all"] = Field(default_factory=UnfreezeSchedule,
                                                        description="top-down schedule, or 'all' (baseline)")
    ring_order: Literal["scenario", "seeded"] = "scenario"

    @field_validator("blocks_per_device")
    @classmethod
    def _positive(cls, v):
        if v is not None and (len(v) < 2 or any(b < 1 for b in v)):
            raise ValueError("needs at least two devices with at least one block each; allowed: e.g. [2, 2, 1, 1]")
        return v

    def topology_problems(self, depth: int, devices: int, clouds: int) -> list[str]:
        try:   # the ring holds every device, each at least one block
            ring_cuts(depth, devices, self.blocks_per_device)
        except ValueError as err:
            field = "scheme.blocks_per_device" if self.blocks_per_device is not None else "devices"
            return [f"{field}: {str(err).removeprefix('ringada: ')}"]
        return super().topology_problems(depth, devices, clouds)

    def device_blocks(self, depth: int) -> tuple[int, int]:
        # The device count is unknown here: without blocks_per_device, check the whole model (conservative).
        return (0, self.blocks_per_device[0]) if self.blocks_per_device else (0, depth)


def ring_cuts(depth: int, devices: int, blocks_per_device: list[int] | None) -> list[int]:
    """Upper block index of each device's part: [c1, c2, …, depth]."""
    if blocks_per_device is None:
        if devices > depth:
            raise ValueError(f"ringada: {devices} devices but only {depth} blocks; allowed: at most {depth} devices")
        base, extra = divmod(depth, devices)
        blocks_per_device = [base + (1 if i < extra else 0) for i in range(devices)]
    if len(blocks_per_device) != devices or sum(blocks_per_device) != depth:
        raise ValueError(f"ringada: blocks_per_device {blocks_per_device} must have one entry per device "
                         f"({devices}) and sum to the model's depth ({depth})")
    cuts, total = [], 0
    for b in blocks_per_device:
        total += b
        cuts.append(total)
    return cuts


def lowest_trainable(cfg: RingAdaConfig, depth: int, rnd: int) -> int:
    """The lowest block whose adapters train in round `rnd` (0: all of them)."""
    if cfg.unfreeze == "all":
        return 0
    s = cfg.unfreeze
    return max(0, depth - (s.start_top + s.add * ((rnd - 1) // s.every_rounds)))


def micro_split(batch: Batch, parts: int) -> list[Batch]:
    """`parts` consecutive slices of a batch (fewer when the batch is smaller)."""
    n = batch.input_ids.shape[0]
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [Batch(batch.input_ids[a:b], batch.attention_mask[a:b], batch.labels[a:b])
            for a, b in zip(bounds, bounds[1:]) if b > a]


@scheme("ringada", config=RingAdaConfig,
        summary="RingAda: ring of devices, micro-batch pipeline, adapters unfrozen top-down (backward stops early)")
def run(sim, cfg: RingAdaConfig):
    learner = sim.learner
    codec = cfg.codec(sim)   # activations and gradients around the ring (scheme.compression), or plain
    model, depth = learner.model, learner.model.depth
    cuts = ring_cuts(depth, len(sim.devices), cfg.blocks_per_device)
    starts = [0] + cuts[:-1]
    block_of = {n: b for b in range(depth) for n in model.part_parameter_names(b, b + 1)}

    def initial():
        """(the ring of devices in its order, each device's part with its optimizer, accumulating)."""
        ring = list(sim.devices)
        if cfg.ring_order == "seeded":
            ring = [ring[i] for i in sim.rng("ring").permutation(len(ring))]
        parts = []
        for dev, a, b in zip(ring, starts, cuts):
            names = learner.trainable_names(a, b)
            part = learner.local(learner.initial_state(names), a, b)
            part.accumulate()
            parts.append(part)
            dev.memory.resident("weights", learner.weight_bytes(a, b))
        return ring, parts

    def one_round(rnd, state):
        ring, parts = state
        stop = lowest_trainable(cfg, depth, rnd)
        for dev, part in zip(ring, parts):
            for name, p in part.params.items():  # a trainable head (above every block) always trains
                p.requires_grad_(block_of[name] >= stop if name in block_of else True)
            training = [n for n, p in part.params.items() if p.requires_grad]
            dev.memory.resident("training_state", learner.training_state_bytes(training))
        losses = []
        for _ in range(cfg.local_steps):
            batch = learner.next_batch(ring[0].name)
            micro = micro_split(batch, cfg.micro_batches)
            gathered = yield from sim.gather(chain_step(sim, ring, parts, cuts, mb, stop=stop, codec=codec)
                                             for mb in micro)
            losses += gathered.results
            yield sim.all_of(sim.process(_update(dev, part, len(micro))) for dev, part in zip(ring, parts)
                             if any(p.requires_grad for p in part.params.values()))
        sim.close_round(rnd, merge(*(part.state() for part in parts)), losses, lowest_trainable_block=stop,
                        trainable_adapter_bytes=sum(tensor_bytes(p for p in part.params.values() if p.requires_grad)
                                                    for part in parts))
        return ring, parts

    yield from round_loop(sim, initial, one_round)


def _update(dev, part, micro: int):
    """One optimizer step on a device's accumulated micro-batch gradients (its cost follows which
    of the part's parameters train: the part's signature shows it)."""
    yield from dev.compute(part.flush, 1.0 / micro, kind="update")
    part.accumulate()
