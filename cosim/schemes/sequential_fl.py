"""Sequential federated learning (Li & Lyu, "Convergence Analysis of Sequential Federated
Learning on Heterogeneous Data", NeurIPS 2023): in each round the model visits the selected
clients one after another; each downloads the model the previous client produced (relayed by the
server: a real model_down transfer), trains `local_steps` minibatches from it, and uploads the
result (model_up). The model after the last client is the round's global model.

The visiting order is a policy (`order`, cosim.learn.ordering): `random_reshuffle` (a new
permutation every round), `fixed` (one permutation), or `grab` (greedy herding of the previous
round's per-client update directions). A client whose transfer is dropped is skipped: the server
keeps the model it last received.
"""
from __future__ import annotations

from pydantic import Field

from ..learn.ordering import ClientOrder, OrderPolicy, flat_direction
from ..world.network import TransferDropped
from .base import SchemeConfig, scheme


class SequentialFLConfig(SchemeConfig):
    name: str = "sequential_fl"
    order: OrderPolicy = Field("random_reshuffle", description="client order per round: random_reshuffle | "
                               "fixed | grab (herding of last round's update directions)")


@scheme("sequential_fl", config=SequentialFLConfig,
        summary="Sequential FL: the model visits the round's clients one after another (order policy)")
def run(sim, cfg: SequentialFLConfig):
    learner, server = sim.learner, sim.edge[0]
    state = learner.initial_state()
    server.memory.hold("weights", learner.weight_bytes())
    order = ClientOrder(cfg.order, sim.rng("order"))
    for rnd in sim.rounds():
        state, losses, visited = yield from sequential_round(sim, cfg, server, state, order, rnd)
        sim.close_round(rnd, state, losses, clients=len(visited), order=" ".join(d.name for d in visited))


def sequential_round(sim, cfg: SchemeConfig, server, state, order: ClientOrder, rnd: int):
    """One pass of the model over the round's clients in `order`'s sequence (not closed).

    Returns (state after the last client, training losses, the clients in visiting order)."""
    from .fedavg import client_update

    visited = order.order(sim.select(cfg.participants), sim.devices)
    losses = []
    for dev in visited:
        try:
            new_state, _, loss = yield from client_update(sim, cfg, dev, server, state, rnd)
        except TransferDropped:
            continue  # the drop is in the trace; the next client starts from the last model received
        order.observe(dev.name, flat_direction(state, new_state))
        state = new_state
        losses.append(loss)
        server.memory.releases_with_prefix("recv:")
    return state, losses, visited
