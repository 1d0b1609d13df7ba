"""SFT, Split Fine-Tuning (arXiv 2501.09237): an LLM split between mobile devices and an edge
server; all devices share ONE server-side model and fine-tune in parallel; activations going up
and gradients coming down are compressed (top-k sparsification, stochastic quantization, lossless
coding); a two-timescale resource manager picks each device's cut and compression rate (large
timescale) and shares the spectrum among devices (small timescale) — `control.controller: sft`,
cosim/control/sft.py.

Each round: every selected device downloads its part (LoRA adapters of blocks [0, cut) — the cut
the controller chose for it, or `cut_layer`), runs `local_steps` split steps against the shared
server model with its codec on both directions, and uploads its part; the server then averages
every parameter over the holders that trained it (`weighted_mean_by_key`: a block lives on the
devices cutting above it and, for the others' traffic, in the server's shared model), weighted by
samples. A cut change takes effect at the next round: that round's download carries the new part.

Reproduces: SFT's delay and communication savings against uncompressed fixed-cut split
fine-tuning (paper: −80.2 % delay, −93.6 % bytes) — scenarios/compare_sft.yaml,
tests/test_sft_claims.py::test_sft_cuts_delay_and_bytes_against_uncompressed_fixed_cut.

Reproduces: arXiv 2501.09237: delay −80.2 % and communication −93.6 % against split fine-tuning —
scenarios/compare_sft.yaml,
tests/test_sft_claims.py::test_sft_cuts_delay_and_bytes_against_uncompressed_fixed_cut
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..control.costs import measure_split_costs
from ..learn.aggregate import weighted_mean_by_key
from ..learn.compress import make_codec
from ..learn.protocol import split_step
from .base import LoraRequired, scheme


class SftConfig(LoraRequired):
    name: str = "sft"
    cut_layer: int = Field(2, ge=1, description="device holds embedding + blocks [0, cut_layer) unless the "
                                                "controller decides another cut")
    cut_candidates: list[int] | None = Field(None, description="the cuts a controller may choose from (each is "
                                             "probed once at the start); null = every cut")
    compresses: ClassVar[bool] = True   # `compression`: activations up and gradients down, unless the controller decides
    controllers: ClassVar[tuple[str, ...]] = ("fixed", "equal", "sft")

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layer

    def problems(self, depth, source, device_profiles) -> list[str]:
        problems = super().problems(depth, source, device_profiles)
        for field, cut in [("cut_layer", self.cut_layer), *((f"cut_candidates.{i}", c)
                                                             for i, c in enumerate(self.cut_candidates or []))]:
            if not 1 <= cut < depth:   # the server keeps at least one block of the shared model
                problems.append(f"scheme.{field}: outside the model's cuts (given {cut}); allowed: 1 to {depth - 1} "
                                f"for {source!r} ({depth} blocks; the server keeps at least one)")
        return problems


def _shared_top(learner):
    """The server's one model: every trainable parameter from block 1 up (and the head), so the
    same part serves any cut; a device cutting at c uses blocks [c, depth) of it."""
    return learner.local(learner.initial_state(learner.trainable_names(1)), start=1)


@scheme("sft", config=SftConfig,
        summary="SFT: parallel split fine-tuning, one shared server model, compressed both ways, two-timescale control")
def run(sim, cfg: SftConfig):
    learner, server = sim.learner, sim.edge[0]
    depth = learner.model.depth
    top = _shared_top(learner)
    server.memory.resident("weights", learner.weight_bytes())
    server.memory.resident("training_state", learner.training_state_bytes(list(top.params)))
    cuts = sorted(set(cfg.cut_candidates or range(1, depth)) | {cfg.cut_layer})
    costs = measure_split_costs(sim, server, cuts, top, cfg.batch_size)
    sim.control.expect(depth=depth, cut_fits=lambda node, cut: costs.fits(cut, node.profile.memory_bytes),
                       costs=costs, local_steps=cfg.local_steps, base_cut=cfg.cut_layer,
                       fits=lambda view, cut: costs.fits(cut, view.memory_bytes),
                       weights={d.name: learner.num_samples(d.name) for d in sim.devices},
                       codec_rng=sim.rng("control/probe"))
    global_state = learner.initial_state()
    for rnd in sim.rounds():
        devices = sim.select(cfg.participants)
        gathered = yield from sim.gather(device_round(sim, cfg, dev, server, top, global_state) for dev in devices)
        if gathered.results:
            global_state = yield from aggregate(sim, server, top, gathered.results, global_state)
        sim.close_round(rnd, global_state, [loss for *_, loss in gathered.results], clients=len(devices),
                        updates=len(gathered.results))


def device_round(sim, cfg: SftConfig, dev, server, top, global_state):
    """One device's round: download its part, `local_steps` compressed split steps, upload.
    Returns (Received part at the server, its cut, samples, mean loss)."""
    learner = sim.learner
    cut = sim.control.cut_of(dev, cfg.cut_layer)
    compression = sim.control.compression_of(dev, cfg.compression)
    codec = make_codec(compression, sim.rng(f"compression/{dev.name}"))
    names = learner.trainable_names(0, cut)
    dev.memory.resident("weights", learner.weight_bytes(0, cut))
    with (yield from sim.send(server, dev, {k: global_state[k] for k in names}, kind="model_down")) as down:
        bottom = learner.local(down.value, 0, cut)
        with dev.memory.hold("training_state", learner.training_state_bytes(names)):
            losses = []
            for _ in range(cfg.local_steps):
                batch = learner.next_batch(dev.name)
                losses.append((yield from split_step(sim, dev, server, bottom, top, batch, cut, codec=codec)))
        upload = yield from sim.send(dev, server, bottom.state(), kind="model_up")
    return upload, cut, learner.num_samples(dev.name), sum(losses) / len(losses)


def aggregate(sim, server, top, results, global_state):
    """Every parameter's sample-weighted mean over the holders that trained it this round: the
    devices whose part holds it, and the server's shared model for the traffic of the devices that
    cut below it. Parameters nobody trained keep their value."""
    contributions, server_weight = [], {}
    for upload, cut, samples, _ in results:
        contributions.append((upload.value, float(samples)))
        for k in top.params:
            if k not in upload.value:
                server_weight[k] = server_weight.get(k, 0.0) + float(samples)
    contributions.append((top.state(), server_weight))
    state = yield from server.compute(weighted_mean_by_key, contributions, kind="aggregate")
    for upload, *_ in results:
        upload.release()
    top.load({k: v for k, v in state.items() if k in top.params})
    return {**global_state, **state}
