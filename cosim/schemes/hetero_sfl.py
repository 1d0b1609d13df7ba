"""Edge-assisted split-federated LoRA for heterogeneous devices (arXiv 2506.02940, 2503.13819):
each device's cut is the deepest its memory holds; devices train LoRA on their lower blocks; the
edge server keeps ONE full model and serves the devices one at a time, swapping in each device's
server-side LoRA adapters; a server-side scheduler picks the serving order.

Modelling choices:

- Cut selection (`choose_cut`): the deepest cut c in [1, depth) whose device part — weights of
  embedding + blocks [0, c), LoRA gradients and optimizer state, and the activations a forward
  saves for backward (measured on a real batch) — fits `memory_fraction` of the profile's memory.
- One local step = a two-stage flow shop over the selected devices. All devices run their bottom
  forward at once; the server then grants the uplink and its processor in the scheduled order:
  stage 1 = the device's upload (a job cannot start before its forward is done), stage 2 = the
  server's top forward/backward with that device's adapters. The gradient goes down and the
  device's backward runs while the server serves the next device; the step ends when every
  device has updated (a barrier). Johnson's rule (Johnson 1954) is optimal for two machines.
- Stage-time estimates for the scheduler are the durations observed at the previous step (the
  first step of a run is served in arrival order). `order: arrival` serves the device whose
  stage 1 is expected to finish first; `random` draws from stream "order".
- Server memory: one full model, the active device's adapter training state, and each
  selected device's server-side adapter set (small) — never a model copy per device.
- End of round: device-side adapters go up (`model_up`), server-side ones are local; both are
  averaged weighted by samples into the global adapter set.

Reproduces: arXiv 2506.02940: server memory −79 % against SplitFed (a server-side model per client) —
scenarios/hetero_sfl.yaml,
tests/test_hetero_sfl.py::test_server_peak_against_splitfed_v1_full_copies_and_adapter_copies
"""
from __future__ import annotations

import itertools
from typing import ClassVar, Literal

from pydantic import Field

from ..config import ScenarioError
from ..learn.activation import Activation
from ..learn.aggregate import merge, weighted_mean
from ..learn.training import tensor_bytes
from ..world.network import TransferDropped
from .base import LoraRequired, scheme
from .common import round_loop


def flow_shop_makespan(order, a, b) -> float:
    """Completion time of the last job on machine 2 when jobs run in `order` on two machines."""
    t1 = t2 = 0.0
    for j in order:
        t1 += a[j]
        t2 = max(t2, t1) + b[j]
    return t2


def johnson_order(a, b) -> list[int]:
    """Johnson's rule (Johnson 1954): jobs with a < b first by increasing a, then the rest by
    decreasing b; optimal for the two-machine flow shop."""
    jobs = range(len(a))
    first = sorted((j for j in jobs if a[j] < b[j]), key=lambda j: (a[j], j))
    second = sorted((j for j in jobs if a[j] >= b[j]), key=lambda j: (-b[j], j))
    return first + second


def arrival_order(a, b) -> list[int]:
    return sorted(range(len(a)), key=lambda j: (a[j], j))


def best_order_bruteforce(a, b) -> list[int]:
    """The makespan-optimal order by trying every permutation (tests; N <= 8)."""
    return list(min(itertools.permutations(range(len(a))), key=lambda o: flow_shop_makespan(o, a, b)))


def serve_order(policy: str, a, b, rng) -> list[int]:
    if policy == "johnson":
        return johnson_order(a, b)
    if policy == "arrival":
        return arrival_order(a, b)
    return [int(i) for i in rng.permutation(len(a))]


class HeteroSflConfig(LoraRequired):
    name: str = "hetero_sfl"
    compresses: ClassVar[bool] = True   # `compression` codes activations and gradients
    memory_fraction: float = Field(0.5, gt=0, le=1, description="share of a device's memory its part may use")
    order: Literal["johnson", "arrival", "random"] = "johnson"

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, 1


def choose_cut(learner, budget_bytes: float, batch) -> int | None:
    """Deepest cut whose device part (weights, LoRA training state, saved activations) fits."""
    from ..learn.accounting import StepMeter

    best = None
    for cut in range(1, learner.model.depth):
        bottom = learner.local(learner.initial_state(learner.trainable_names(0, cut)), 0, cut)
        _, cost = StepMeter().run("probe", bottom.bottom_forward, batch, cut)
        need = (learner.weight_bytes(0, cut) + learner.training_state_bytes(learner.trainable_names(0, cut))
                + cost.saved_activation_bytes)
        if need <= budget_bytes:
            best = cut
    return best


@scheme("hetero_sfl", config=HeteroSflConfig,
        summary="Heterogeneous split-federated LoRA: memory-chosen cuts, one server model, scheduled serving")
def run(sim, cfg: HeteroSflConfig):
    learner, server = sim.learner, sim.edge[0]

    def initial():
        """(the global model, the serving-time estimates by device); the cuts, chosen once on a probe
        batch, stay in `sim.cuts` (a checkpoint keeps them with the world)."""
        probe = learner.next_batch(sim.devices[0].name)
        cuts = {}
        for dev in sim.devices:
            cut = choose_cut(learner, cfg.memory_fraction * dev.profile.memory_bytes, probe)
            if cut is None:
                # measured on a real batch, so found only now, at t = 0 before any event: still bad input
                raise ScenarioError([f"scheme.memory_fraction: {dev.name} ({dev.profile_name}) cannot hold even cut 1 "
                                     f"in {cfg.memory_fraction:g} of its memory (given {cfg.memory_fraction:g}); "
                                     "allowed: a larger share, a profile with more memory, or a smaller model"])
            cuts[dev.name] = cut
            dev.memory.resident("weights", learner.weight_bytes(0, cut))
        sim.cuts = cuts
        global_state = learner.initial_state()
        server.memory.resident("weights", learner.weight_bytes())
        return global_state, {}

    def one_round(rnd, state):
        global_state, estimates = state
        cuts = sim.cuts
        devices = sim.select(cfg.participants)
        bottoms, tops, training, adapters = {}, {}, [], []
        for dev in devices:
            cut = cuts[dev.name]
            down = yield from sim.send(server, dev, {k: global_state[k] for k in learner.trainable_names(0, cut)},
                                       kind="model_down")
            bottoms[dev.name] = learner.local(down.value, 0, cut)
            training += [down, dev.memory.hold("training_state", learner.training_state_bytes(list(down.value)))]
            tops[dev.name] = learner.local({k: global_state[k] for k in learner.trainable_names(cut)}, start=cut)
            adapters.append(server.memory.hold("adapters", tensor_bytes(tops[dev.name].params.values())))
        losses = []
        for _ in range(cfg.local_steps):
            devices = [d for d in devices if d.name in bottoms]
            losses += yield from flow_shop_step(sim, cfg, server, devices, cuts, bottoms, tops, estimates)
        for held in training:  # the devices are done training: their download and optimizer state go
            held.release()
        uploads = []
        for dev in devices:
            if dev.name not in bottoms:  # its activation was dropped in the last step
                continue
            try:
                up = yield from sim.send(dev, server, bottoms[dev.name].state(), kind="model_up")
            except TransferDropped:
                continue
            uploads.append((up, tops[dev.name], learner.num_samples(dev.name)))
        if uploads:
            states = [merge(up.value, top.state()) for up, top, _ in uploads]
            global_state = yield from server.compute(weighted_mean, states, [n for *_, n in uploads], kind="aggregate")
        for held in [up for up, *_ in uploads] + adapters:
            held.release()
        sim.close_round(rnd, global_state, losses, clients=len(devices), order=cfg.order)
        return global_state, estimates

    yield from round_loop(sim, initial, one_round)


def flow_shop_step(sim, cfg, server, devices, cuts, bottoms, tops, estimates):
    """One local step of every device, served in the scheduled order; returns the losses."""
    learner = sim.learner
    forwards, hiddens = {}, {}

    def forward(dev):
        batch = learner.next_batch(dev.name)
        saved = dev.memory.hold("activations")  # kept for the backward once the gradient is back
        hidden = yield from dev.compute(bottoms[dev.name].bottom_forward, batch, cuts[dev.name], kind="fwd",
                                        keep=saved)
        hiddens[dev.name] = (hidden, batch, saved)

    for dev in devices:
        forwards[dev.name] = sim.process(forward(dev))
    names = [d.name for d in devices]
    if all(n in estimates for n in names):
        a = [estimates[n][0] for n in names]
        b = [estimates[n][1] for n in names]
        order = [devices[i] for i in serve_order(cfg.order, a, b, sim.rng("order"))]
    else:
        order = devices  # nothing observed yet: serve in arrival order below
    t0 = sim.now
    arrived = {d.name: sim.env.event() for d in devices}

    def uplink():
        pending = list(order)
        if not all(n in estimates for n in names):  # arrival order: whoever finishes its forward first
            pending = []
            remaining = dict(forwards)
            while remaining:
                yield sim.env.any_of(list(remaining.values()))
                for n in [n for n, p in remaining.items() if p.triggered]:
                    pending.append(sim.node(n))
                    del remaining[n]
                    yield from send_up(sim.node(n))
            return
        for dev in pending:
            yield forwards[dev.name]
            yield from send_up(dev)

    def send_up(dev):
        hidden, batch, _ = hiddens[dev.name]
        try:
            received = yield from sim.send(dev, server, Activation.of(hidden, batch), kind="activation",
                                           codec=cfg.codec(sim, f"compression/{dev.name}"))
        except TransferDropped:
            received = None
        arrived[dev.name].succeed((received, sim.now - t0))

    sim.process(uplink())
    losses, tails = [], []
    remaining = list(arrived)
    while remaining:
        if all(n in estimates for n in names):
            name = [d.name for d in order if d.name in remaining][0]
            yield arrived[name]
        else:
            yield sim.env.any_of([arrived[n] for n in remaining])
            name = min((n for n in remaining if arrived[n].triggered), key=lambda n: arrived[n].value[1])
        remaining.remove(name)
        received, a_time = arrived[name].value
        dev = sim.node(name)
        hidden, _, saved = hiddens[name]
        if received is None:  # the device drops out of this round; the drop is in the trace
            bottoms.pop(name, None)
            saved.release()
            continue
        with received:
            act = received.value
            s0 = sim.now
            loss, grad = yield from server.compute(tops[name].top_step, act.hidden, act.mask, act.labels, cuts[name],
                                                   kind="train", detail=name)
        estimates[name] = (a_time, sim.now - s0)
        losses.append(loss)
        tails.append(sim.process(tail(sim, dev, server, bottoms[name], hidden, saved, grad,
                                      cfg.codec(sim, f"compression/{name}"))))
    yield sim.all_of(tails)
    return losses


def tail(sim, dev, server, bottom, hidden, saved, grad, codec=None):
    """The device's end of its step, while the server serves the next device: the gradient comes
    down, the bottom backpropagates it and updates, and the saved activations are freed."""
    with saved:
        try:
            with (yield from sim.send(server, dev, [grad], kind="gradient", codec=codec)) as down:
                yield from dev.compute(bottom.bottom_backward, hidden, down.value[0], kind="bwd")
        except TransferDropped:
            pass  # the device misses this update; the drop is in the trace
