"""SplitFed (Thapa et al., "SplitFed: When Federated Learning Meets Split Learning", AAAI 2022):
the model is cut after block `cut_layer`; every round the selected clients run in parallel, each
doing split-learning steps (`protocol.split_step`) with the server, and a fed server averages the
device-side parts (uploaded, weighted by client samples) at the end of the round.

- `variant: v1` (SplitFed Algorithm 1): the server keeps one server-side copy (and optimizer) per
  active client and averages those copies locally at the end of the round, weighted like the
  device parts. Its memory grows with the number of clients.
- `variant: v2` (SplitFed Algorithm 2): ONE shared server-side part, trained on the clients'
  activation batches in turn, in the order they arrive at the server (its processor is a FIFO
  queue), and never averaged; it keeps its optimizer across rounds.

With `lora:` set, only adapters (and the head) train and travel on both sides; `lora: null` is
full fine-tuning of both parts.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..learn.training import tensor_bytes
from .base import scheme
from .split import SplitConfig, device_turn


class SplitFedConfig(SplitConfig):
    name: str = "splitfed"
    variant: Literal["v1", "v2"] = Field("v1", description="v1: a server-side copy per client, averaged each round; "
                                                            "v2: one shared server-side part trained in turn")


@scheme("splitfed", config=SplitFedConfig,
        summary="SplitFed: parallel split learning, device parts averaged; server part per client (v1) or shared (v2)")
def run(sim, cfg: SplitFedConfig):
    return (yield from split_federated(sim, cfg, cfg.variant))


def split_federated(sim, cfg: SplitConfig, variant: str):
    """The SplitFed round loop for `variant` "v1" or "v2" (shared with `splitlora`)."""
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    bottom_state = learner.initial_state(learner.trainable_names(0, cut))
    top_state = learner.initial_state(learner.trainable_names(cut))
    server.memory.hold("weights", learner.weight_bytes(cut))
    shared_top = None
    if variant == "v2":
        shared_top = learner.local(top_state, start=cut)
        server.memory.hold("training_state", learner.training_state_bytes(list(top_state)))
    for rnd in sim.rounds():
        clients = sim.select(cfg.participants)
        finished = yield sim.all_of(sim.client(client_round(sim, cfg, dev, server, bottom_state, top_state,
                                                            shared_top, rnd)) for dev in clients)
        updates = sim.survivors(finished, rnd) or []
        if updates:
            bottoms, tops, weights, _ = zip(*updates)
            bottom_state = yield from server.compute(learner.average, list(bottoms), list(weights), kind="aggregate",
                                                     key=("average", "device part", len(bottoms)), rnd=rnd)
            if shared_top is None:  # v1: the server averages its per-client copies locally (no transfer)
                top_state = yield from server.compute(learner.average, list(tops), list(weights), kind="aggregate",
                                                      key=("average", "server part", len(tops)), rnd=rnd)
        if shared_top is not None:
            top_state = shared_top.state()
        server.memory.releases_with_prefix("recv:")
        server.memory.releases_with_prefix("client_copy:")
        sim.close_round(rnd, {**bottom_state, **top_state}, [loss for *_, loss in updates],
                        clients=len(clients), updates=len(updates))


def client_round(sim, cfg: SplitConfig, dev, server, bottom_state, top_state, shared_top, rnd: int):
    """One client's round: the server makes this client's server-side copy (v1) or uses the shared
    part (v2), then the device's split-learning turn runs. Returns (device part, server copy or
    None, samples, mean loss)."""
    learner = sim.learner
    top = shared_top
    if top is None:
        top = learner.local(top_state, start=cfg.cut_layer)
        server.memory.hold(f"client_copy:{dev.name}",
                           tensor_bytes(top.params.values()) + learner.training_state_bytes(list(top_state)))
    bottom, losses = yield from device_turn(sim, cfg, dev, server, top, bottom_state, rnd)
    dev.memory.release(f"recv:model_down:{server.name}")
    return bottom, None if shared_top is not None else top.state(), learner.num_samples(dev.name), \
        sum(losses) / len(losses)
