"""The round pieces several schemes share, written once (Flower's strategy building blocks).

A scheme module reads like its paper's algorithm box by composing these; no scheme module imports
another scheme module. Every piece is a SimPy sub-process (`yield from`) over the primitives of
`cosim.world` (`Node.compute`, `Simulation.send`, `Simulation.gather`, memory holds); the round
number is the simulation's current round, never threaded by hand.

Sections: federated rounds (FedAvg's client update and round), split turns, pipelined rounds.
"""
from __future__ import annotations

import simpy

from ..learn.aggregate import merge, weighted_mean
from ..learn.ordering import flat_direction
from ..learn.protocol import split_step
from ..learn.training import optimizer_slots, tensor_bytes
from ..world.failures import ServerFailed
from ..world.network import TransferDropped

# --- federated rounds ------------------------------------------------------------------------------


def local_step(sim, dev, local, *, detail: str = "", after_step=None):
    """One plain local step on `dev`: its next batch through `local.train_step`, as a compute step;
    returns the loss. `detail` goes on the step's trace row; `after_step(cost)` runs after it with
    the step's measured `StepCost` (WHALE-FL sizes its memory check on the saved activations)."""
    batch = sim.learner.next_batch(dev.name)
    loss = yield from dev.compute(local.train_step, batch, kind="train", detail=detail)
    if after_step is not None:
        after_step(dev.last_cost)
    return loss


def client_update(sim, cfg, dev, server, global_state, *, step=None, after_training=None, trains=None):
    """One client's round (FedAvg, McMahan et al. 2017, Algorithm 1, ClientUpdate): download
    `global_state`, `local_steps` real steps, upload. Returns (upload, n_samples, mean loss) with
    `upload` the `Received` update at the server, whose buffer the caller releases once it is
    aggregated.

    Two hooks for clients that train otherwise: `step(local)`, one local step — a sub-process on
    `dev` that trains `local` and returns the loss (default `local_step`; DFL's distilling step);
    `after_training(local)`, a sub-process on `dev` once its training state is given back, before
    the upload (DFL's soft-target pass).

    `trains(name)`: whether the client trains a downloaded parameter (default: every one). One it
    does not train only serves the forward pass: it takes no gradient (backward stops below the
    lowest one trained), no training state, and is not uploaded (WHALE-FL's depth subnetworks)."""
    learner = sim.learner
    plain = step is None and after_training is None and trains is None
    step = step or (lambda local: local_step(sim, dev, local))
    with (yield from sim.send(server, dev, global_state, kind="model_down")) as down:
        # computed ahead on a worker (federated_round submitted it), or trained here step by step
        ahead = learner.ahead.claim(dev.name, "train", down.value, cfg.local_steps) if plain and learner.ahead else None
        local = None if ahead else learner.local(down.value)
        trained = [n for n in down.value if trains is None or trains(n)]
        if trains is not None:
            for name, p in local.params.items():
                p.requires_grad_(name in trained)
        with dev.memory.hold("training_state",
                             tensor_bytes(down.value[n] for n in trained) * (1 + optimizer_slots(learner.optimizer))):
            losses = []
            for k in range(cfg.local_steps):
                if ahead:
                    losses.append((yield from dev.compute(ahead.step(k), kind="train")))
                else:
                    losses.append((yield from step(local)))
        if after_training is not None:
            yield from after_training(local)
        sent = ahead.state() if ahead else local.state()
        if trains is not None:
            sent = {n: sent[n] for n in trained}
        upload = yield from sim.send(dev, server, sent, kind="model_up",
                                     codec=cfg.codec(sim, f"compression/{dev.name}"))
    return upload, learner.num_samples(dev.name), sum(losses) / len(losses)


def aggregate(sim, server, uploads, combine=weighted_mean):
    """The server's `combine(states, weights)` (default the weighted mean) of `uploads` — (Received
    state, weight, …) tuples — as a compute step; each upload's receive buffer is released once it
    is folded in (or lost, when the server fails mid-aggregation: `ServerFailed`, cosim.world.failures).
    Returns the new state."""
    states = [u[0].value for u in uploads]
    weights = [u[1] for u in uploads]
    try:
        return (yield from server.compute(combine, states, weights, kind="aggregate"))
    finally:
        for u in uploads:
            u[0].release()


def federated_round(sim, cfg, server, global_state, *, update=client_update, **extra):
    """One FedAvg round from `global_state`: the selected clients run `update` (default
    `client_update`; same signature and result) in parallel, the server averages what arrived,
    and the round closes (with `extra` columns). Returns the new global state."""
    clients = sim.select(cfg.participants)
    if update is client_update and sim.learner.ahead:   # the clients' local steps start on the workers now
        sim.learner.ahead.local_training(clients, global_state, cfg.local_steps)
    gathered = yield from sim.gather(update(sim, cfg, dev, server, global_state) for dev in clients)
    if sim.learner.ahead:
        sim.learner.ahead.discard()
    updates = gathered.results
    if updates:
        try:
            global_state = yield from aggregate(sim, server, updates)
        except ServerFailed:   # the server failed while averaging: the round's updates are lost with it
            updates = []
    sim.close_round(sim.current_round, global_state, [loss for _, _, loss in updates], clients=len(clients),
                    updates=len(updates), **extra)
    return global_state


def round_loop(sim, initial, step):
    """Every round the stop rule allows: `state = yield from step(rnd, state)`, from `initial()` —
    or, in a resumed run, from the state the checkpoint kept (cosim.checkpoint). `state` is all a
    scheme carries from one round to the next (trainable parameters, optimizers); between rounds
    the run may checkpoint it (`sim.boundary`). Returns the last state."""
    state = sim.resumed if sim.resumed is not None else initial()
    sim.resumed = None
    for rnd in sim.rounds():
        state = yield from step(rnd, state)
        sim.boundary(state)
    return state


def federated_training(sim, cfg):
    """FedAvg from the learner's initial state for every round the stop rule allows."""
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())
    return (yield from round_loop(sim, learner.initial_state,
                                  lambda rnd, state: federated_round(sim, cfg, server, state)))


def sequential_round(sim, cfg, server, state, order):
    """One pass of the model over the round's clients in `order`'s sequence (sequential FL, Li & Lyu
    2023; not closed): each client runs `client_update` from the model the previous one uploaded.
    A client whose transfer is dropped is skipped: the next one starts from the last model the
    server received. Returns (state after the last client, training losses, the clients in
    visiting order)."""
    visited = order.order(sim.select(cfg.participants), sim.devices)
    losses = []
    for dev in visited:
        try:
            upload, _, loss = yield from client_update(sim, cfg, dev, server, state)
        except TransferDropped:
            continue  # the drop is in the trace
        with upload:
            order.observe(dev.name, flat_direction(state, upload.value))
            state = upload.value
        losses.append(loss)
    return state, losses, visited


# --- split turns -----------------------------------------------------------------------------------


def device_turn(sim, cfg, dev, server, top, bottom_state):
    """One device's split-learning turn (Gupta & Raskar 2018): fetch the current bottom part from
    the server, `local_steps` split steps against the server's `top`, hand the trained bottom back.
    Returns (the `Received` bottom state at the server, whose buffer the caller releases, losses)."""
    learner, cut = sim.learner, cfg.cut_layer
    codec = cfg.codec(sim, f"compression/{dev.name}")
    with (yield from sim.send(server, dev, bottom_state, kind="model_down")) as down:
        bottom = learner.local(down.value, 0, cut)
        # a SplitFed v1 turn computed ahead on a worker (split_federated submitted it), or run here
        ahead = learner.ahead.claim(dev.name, "split", (down.value, top.state()), cfg.local_steps) \
            if learner.ahead and learner.ahead.pending(dev.name, "split") else None
        with dev.memory.hold("training_state", learner.training_state_bytes(list(down.value))):
            losses = []
            for k in range(cfg.local_steps):
                batch = None if ahead else learner.next_batch(dev.name)
                losses.append((yield from split_step(sim, dev, server, bottom, top, batch, cut, codec=codec,
                                                     ahead=ahead.split_step(k) if ahead else None)))
        if ahead:
            trained_bottom, trained_top = ahead.state()
            bottom.load(trained_bottom)
            top.load(trained_top)
        upload = yield from sim.send(dev, server, bottom.state(), kind="model_up")
    return upload, losses


def split_federated(sim, cfg, variant: str):
    """SplitFed (Thapa et al., AAAI 2022) for every round the stop rule allows: the selected clients
    take their split-learning turns (`device_turn`) in parallel, then the fed server averages the
    device-side parts they hand back, weighted by client samples.

    `variant` "v1" (Algorithm 1): the server trains one server-side copy (with its optimizer) per
    client and averages the copies locally at the round's end, weighted like the device parts; its
    memory grows with the clients (a copy is the whole server-side part or its trainable tensors
    only: `cfg.server_copies`). "v2" (Algorithm 2): ONE server-side part, trained on the clients'
    activations in the order they reach the server (its processor is a FIFO queue), never averaged,
    keeping its optimizer across rounds. Used by `splitfed` and `splitlora` (v1 with LoRA)."""
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    server.memory.resident("weights", learner.weight_bytes(cut))
    if variant == "v2":
        server.memory.resident("training_state", learner.training_state_bytes(learner.trainable_names(cut)))

    def initial():
        """(device part, server part, the shared server-side model of v2 with its optimizer, or None)."""
        top_state = learner.initial_state(learner.trainable_names(cut))
        shared_top = learner.local(top_state, start=cut) if variant == "v2" else None
        return learner.initial_state(learner.trainable_names(0, cut)), top_state, shared_top

    def one_round(rnd, state):
        bottom_state, top_state, shared_top = state
        clients = sim.select(cfg.participants)
        tops, copies = [shared_top] * len(clients), []
        if shared_top is None:  # v1: a server-side copy per client, held until the copies are averaged
            tops = [learner.local(top_state, start=cut) for _ in clients]
            copies = [server.memory.hold("client_copy", _server_copy_bytes(learner, cfg, cut, top)) for top in tops]
        if shared_top is None and cfg.compression is None and learner.ahead:   # v1: the turns start on the workers
            learner.ahead.split_turns(clients, bottom_state, top_state, cfg.local_steps, cut, sim.codec)
        gathered = yield from sim.gather(_split_client(sim, cfg, dev, server, top, bottom_state)
                                         for dev, top in zip(clients, tops))
        if learner.ahead:
            learner.ahead.discard()
        updates = gathered.results
        if updates:
            uploads, trained_tops, weights, _ = zip(*updates)
            try:
                bottom = yield from server.compute(weighted_mean, [u.value for u in uploads], list(weights),
                                                   kind="aggregate")
                if shared_top is None:  # v1: the server averages its per-client copies locally (no transfer)
                    top_state = yield from server.compute(weighted_mean, [top.state() for top in trained_tops],
                                                          list(weights), kind="aggregate")
                bottom_state = bottom
            except ServerFailed:   # the server failed while averaging: the round's updates are lost with it
                updates = []
            finally:
                for upload in uploads:
                    upload.release()
        if shared_top is not None:
            top_state = shared_top.state()
        for copy in copies:
            copy.release()
        sim.close_round(rnd, merge(bottom_state, top_state), [loss for *_, loss in updates],
                        clients=len(clients), updates=len(updates))
        return bottom_state, top_state, shared_top

    yield from round_loop(sim, initial, one_round)


def _server_copy_bytes(learner, cfg, cut: int, top) -> int:
    """Bytes of one client's server-side copy under SplitFed v1 (`cfg.server_copies`, see
    `base.ServerCopies`): its training state plus either the whole server-side part (`full`) or
    only its trainable tensors (`adapters`, the frozen weights shared through the resident ones)."""
    held = learner.weight_bytes(cut) if cfg.server_copies == "full" else tensor_bytes(top.params.values())
    return held + learner.training_state_bytes(list(top.params))


def _split_client(sim, cfg, dev, server, top, bottom_state):
    """A SplitFed client's round: its `device_turn` against the server-side part `top`. Returns
    (the `Received` device part, `top`, the client's samples, its mean loss)."""
    upload, losses = yield from device_turn(sim, cfg, dev, server, top, bottom_state)
    return upload, top, sim.learner.num_samples(dev.name), sum(losses) / len(losses)


# --- pipelined rounds ------------------------------------------------------------------------------


def frozen_forward(sim, dev, k: int, method: str, *args):
    """Device `dev`'s k-th micro-batch through a frozen forward `learner.<method>(batch, *args)` (a
    SplitFrozen bottom, a MobiLLM backbone) as a compute step; returns (batch, output). Taken from
    the workers when `pipelined_round(..., forward=...)` submitted it ahead, else run here."""
    learner = sim.learner
    ahead = learner.ahead.claim_step(dev.name, method, args, k) if learner.ahead else None
    if ahead is not None:
        return (yield from dev.compute(ahead, kind="fwd"))
    batch = learner.next_batch(dev.name)
    return batch, (yield from dev.compute(getattr(learner, method), batch, *args, kind="fwd"))


def pipelined_round(sim, devices, server, produce, serve, *, steps: int, pipeline: bool = True, codec=None,
                    kind: str = "activation", forward=None):
    """One round of a one-way pipeline (SplitFrozen, MobiLLM): every device produces `steps`
    micro-batches and uploads each; ONE server serves them in arrival order. Returns the losses,
    in the order served.

    Device side, for k in range(steps): the sub-process `produce(dev, k)` computes micro-batch k
    and returns its message (an `Activation`, typically); the message goes to a sender process of
    its own — uploads leave one after another on the device's radio (`codec`: how they are coded),
    the device holding the outgoing tensors while they are on the air — and queues at the server
    (a `simpy.Store`). With `pipeline` the device goes on to k+1 while k is on the air and served,
    waiting only for k-1 to be done (at most two micro-batches in flight per device, so the
    server's receive buffers stay bounded); without it the device waits for k. A dropped upload
    ends that device's round (the drop is in the trace).

    Server side: the sub-process `serve(dev, received, proceed)` trains on each queued upload (a
    `Received`) and returns the loss. `proceed()` releases the receive buffer and tells the device
    it may go on ("done": a control signal of negligible size); `serve` may call it before its own
    work is over (SplitFrozen's weight update off the critical path), else it runs as `serve`
    returns.

    `forward=(method, args_of)`: `produce` runs `frozen_forward(sim, dev, k, method, *args_of(dev))`,
    which depends on nothing the clock decides: the workers compute every device's forwards ahead."""
    ahead = sim.learner.ahead if forward is not None else None
    if ahead:
        ahead.frozen_forwards(devices, *forward, steps)
    queue = simpy.Store(sim.env)
    producers = [sim.process(_producer(sim, dev, server, produce, queue, steps, pipeline, codec, kind))
                 for dev in devices]
    losses = yield sim.process(_consumer(queue, len(producers), serve))
    yield sim.all_of(producers)
    if ahead:
        ahead.discard()
    return losses


#: What a producer queues once it has nothing more to send.
_FINISHED = object()


def _producer(sim, dev, server, produce, queue, steps: int, pipeline: bool, codec, kind: str):
    done, sender = [], None  # done[k]: the server answers True once the device may proceed, False: dropped
    try:
        for k in range(steps):
            message = yield from produce(dev, k)
            done.append(sim.env.event())
            sender = sim.process(_upload(sim, dev, server, message, queue, done[k], sender, codec, kind))
            wait_for = k - 1 if pipeline else k
            if wait_for >= 0 and not (yield done[wait_for]):
                return
        if done:
            yield done[-1]
    finally:
        if sender is not None:
            yield sender
        queue.put(_FINISHED)


def _upload(sim, dev, server, message, queue, done, previous, codec, kind: str):
    """Send `message` once the device's previous upload has left, and queue what arrives."""
    if previous is not None:
        yield previous
    wire = message.to_message() if hasattr(message, "to_message") else message
    try:
        with dev.memory.hold("outgoing", tensor_bytes(wire.values())):
            received = yield from sim.send(dev, server, message, kind=kind, codec=codec)
    except TransferDropped:
        done.succeed(False)
        return
    yield queue.put((dev, received, done))


def _consumer(queue, producers: int, serve):
    losses, finished = [], 0
    while finished < producers:
        item = yield queue.get()
        if item is _FINISHED:
            finished += 1
            continue
        dev, received, done = item

        def proceed(received=received, done=done):
            received.release()
            if not done.triggered:
                done.succeed(True)

        losses.append((yield from serve(dev, received, proceed)))
        proceed()
    return losses
