"""FedAvg (McMahan et al., AISTATS 2017, Algorithm 1): each round the selected clients download the
global model, train `local_steps` minibatches in parallel, and upload; the server averages the
uploads weighted by client sample counts. With `lora:` set, only adapters and head train and
travel; with `lora: null` the whole model does."""
from __future__ import annotations

from ..learn.training import optimizer_slots, tensor_bytes
from .base import SchemeConfig, scheme


class FedAvgConfig(SchemeConfig):
    name: str = "fedavg"


@scheme("fedavg", config=FedAvgConfig,
        summary="FedAvg: parallel clients train from the global model, server averages (full model or LoRA only)")
def run(sim, cfg: FedAvgConfig):
    learner, server = sim.learner, sim.edge[0]
    global_state = learner.initial_state()
    server.memory.hold("weights", learner.weight_bytes())
    for rnd in sim.rounds():
        global_state = yield from fedavg_round(sim, cfg, server, global_state, rnd)


def fedavg_round(sim, cfg: SchemeConfig, server, global_state, rnd: int, update=None, **extra):
    """One FedAvg round from `global_state`, closed with `sim.close_round` (with `extra` columns);
    returns the new global state (other schemes reuse it, e.g. CyclicFL's second phase). `update`
    replaces `client_update` (same signature and result), e.g. DFL's distilling client."""
    update = update or client_update
    clients = sim.select(cfg.participants)
    finished = yield sim.all_of(sim.client(update(sim, cfg, dev, server, global_state, rnd)) for dev in clients)
    updates = sim.survivors(finished, rnd) or []
    losses = [loss for _, _, loss in updates]
    if updates:
        states, weights, _ = zip(*updates)
        global_state = yield from server.compute(sim.learner.average, list(states), list(weights), kind="aggregate",
                                                 key=("average", len(states)), rnd=rnd)
    server.memory.releases_with_prefix("recv:")
    sim.close_round(rnd, global_state, losses, clients=len(clients), updates=len(updates), **extra)
    return global_state


def client_update(sim, cfg: FedAvgConfig, dev, server, global_state, rnd: int, *, key: tuple = ("train",),
                  detail: str = "", after_step=None):
    """One client's round: download `global_state`, `local_steps` real steps, upload. Returns
    (state, n, loss). `key` prefixes each step's FLOP-cache signature (e.g. with a LoRA rank) and
    `after_step(step_key)` runs after each step (WHALE-FL reads the measured activations there)."""
    learner = sim.learner
    state = yield from sim.send(server, dev, global_state, kind="model_down", rnd=rnd)
    local = learner.local(state)
    dev.memory.hold("training_state", tensor_bytes(state.values()) * (1 + optimizer_slots(learner.optimizer)))
    losses = []
    for _ in range(cfg.local_steps):
        batch = learner.next_batch(dev.name)
        step_key = (*key, batch.signature)
        loss = yield from dev.compute(local.train_step, batch, kind="train", key=step_key, rnd=rnd, detail=detail)
        if after_step is not None:
            after_step(step_key)
        losses.append(loss)
    dev.memory.release("training_state")
    update = local.state()
    yield from sim.send(dev, server, update, kind="model_up", rnd=rnd)
    dev.memory.release(f"recv:model_down:{server.name}")
    return update, learner.num_samples(dev.name), sum(losses) / len(losses)
