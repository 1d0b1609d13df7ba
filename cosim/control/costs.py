"""What one split minibatch costs at each cut, measured with the run's own meter and codecs.

A controller that predicts delays must predict what the simulation will then charge. So the costs
are not estimated from a formula: for each candidate cut the real split steps run once on a probe
batch (fixed training rows, no random stream touched) through `sim.meter` with the very step
signatures the split schemes use — the device's bottom forward and backward, the server's top
step — so the FLOP cache the simulation reads afterwards holds exactly these counts. Bytes come
from encoding the probe's activation and gradient with each candidate codec (`len(encoded)`), and
the device part's state with the plain codec (the model exchanged each round).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..learn.activation import Activation


@dataclass
class CutCosts:
    cut: int
    fwd_flops: float                 # device: embedding + blocks [0, cut)
    bwd_flops: float                 # device: backward through them and the update
    server_flops: float              # server: blocks [cut, depth) + head, loss, backward, update
    saved_bytes: int                 # activations the device's forward keeps for backward
    part_bytes: int                  # device memory for its part: weights + gradients + optimizer state
    model_bytes: int                 # the device part's trainable state on the wire (each way, each round)
    activations: list[Activation]    # the probes' cut activations (to encode with candidate codecs)
    gradients: list[torch.Tensor]    # the probes' activation gradients
    #: the measured StepCosts of the three steps (FLOPs and bytes moved), to time them as the nodes will
    fwd_cost: object = None
    bwd_cost: object = None
    server_cost: object = None


@dataclass
class SplitCosts:
    """Per-cut costs of one split minibatch of the run's batch size."""

    cuts: dict[int, CutCosts] = field(default_factory=dict)

    def __getitem__(self, cut: int) -> CutCosts:
        return self.cuts[cut]

    def fits(self, cut: int, memory_bytes: float) -> bool:
        """Whether a device with `memory_bytes` holds its part at `cut` and the activations its
        forward saves (a cut never probed does not fit: nothing is known of it)."""
        c = self.cuts.get(cut)
        return c is not None and c.part_bytes + c.saved_bytes <= memory_bytes


#: probe batches whose encoded sizes and distortions are averaged (a lossless coder's output depends
#: on the content: one batch can be ±10 % off the mean)
PROBE_BATCHES = 3


def probe_batches(sim, batch_size: int, count: int = PROBE_BATCHES) -> list:
    """`count` batches of training rows drawn from stream "control/probe" (no client's stream is
    touched), encoded like every training batch."""
    learner = sim.learner
    rng = sim.rng("control/probe/rows")
    return [learner.batch_of_rows(rng.choice(len(learner.train.labels), size=batch_size, replace=False))
            for _ in range(count)]


def measure_split_costs(sim, server, cuts, top, batch_size: int) -> SplitCosts:
    """Run each cut's split minibatch once on scratch copies of the parts, through `sim.meter`.

    `top` is `server`'s shared part as the scheme built it (its signature decides the server
    step's cache key); scratch copies of it and of each bottom are trained here, never the real ones.
    The device part's size on the wire is what the run's plain codec makes of it."""
    learner, meter = sim.learner, sim.meter
    batches = probe_batches(sim, batch_size)
    batch = batches[0]
    server_role, device_role = server.role, sim.devices[0].role
    scratch_top = learner.local(top.state(), top.start, top.end)
    out = SplitCosts()
    for cut in cuts:
        names = learner.trainable_names(0, cut)
        bottom = learner.local(learner.initial_state(names), 0, cut)
        fwd_key = meter.signature(bottom.bottom_forward, (batch, cut), {})
        hidden, fwd = meter.run((device_role, fwd_key), bottom.bottom_forward, batch, cut)
        act = Activation.of(hidden.detach(), batch)
        top_args = (act.hidden, act.mask, act.labels, cut)
        (_, grad), srv = meter.run((server_role, meter.signature(scratch_top.top_step, top_args, {})),
                                   scratch_top.top_step, *top_args)
        bwd_key = meter.signature(bottom.bottom_backward, (hidden, grad), {})
        _, bwd = meter.run((device_role, bwd_key), bottom.bottom_backward, hidden, grad)
        state = bottom.state()
        acts, grads = [act], [grad.detach()]
        for extra in batches[1:]:   # the other probes: only their activation and gradient
            with torch.no_grad():
                h = bottom.bottom_forward(extra, cut)
            a = Activation.of(h, extra)
            acts.append(a)
            grads.append(scratch_top.top_step(a.hidden, a.mask, a.labels, cut)[1].detach())
        out.cuts[cut] = CutCosts(
            cut=cut, fwd_flops=fwd.flops, bwd_flops=bwd.flops, server_flops=srv.flops,
            saved_bytes=fwd.saved_activation_bytes,
            part_bytes=learner.weight_bytes(0, cut) + learner.training_state_bytes(names),
            model_bytes=len(sim.codec.encode(state)), activations=acts, gradients=grads,
            fwd_cost=fwd, bwd_cost=bwd, server_cost=srv)
    return out
