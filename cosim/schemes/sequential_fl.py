"""Sequential federated learning (Li & Lyu, "Convergence Analysis of Sequential Federated
Learning on Heterogeneous Data", NeurIPS 2023): in each round the model visits the selected
clients one after another; each downloads the model the previous client produced (relayed by the
server: a real model_down transfer), trains `local_steps` minibatches from it, and uploads the
result (model_up). The model after the last client is the round's global model.

The visiting order is a policy (`order`, cosim.learn.ordering): `random_reshuffle` (a new
permutation every round), `fixed` (one permutation), or `grab` (greedy herding of the previous
round's per-client update directions). A client whose transfer is dropped is skipped: the server
keeps the model it last received.

Reproduces: Li & Lyu, NeurIPS 2023: sequential FL ends above FedAvg under heterogeneous data —
scenarios/compare_fl.yaml,
tests/test_fl_claims.py::test_sequential_fl_ends_above_fedavg_with_one_class_per_client
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..learn.ordering import ClientOrder, OrderPolicy
from .base import SchemeConfig, scheme
from .common import round_loop, sequential_round


class SequentialFLConfig(SchemeConfig):
    name: str = "sequential_fl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    order: OrderPolicy = Field("random_reshuffle", description="client order per round: random_reshuffle | "
                               "fixed | grab (herding of last round's update directions)")


@scheme("sequential_fl", config=SequentialFLConfig,
        summary="Sequential FL: the model visits the round's clients one after another (order policy)")
def run(sim, cfg: SequentialFLConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())

    def one_round(rnd, state):
        """`state`: (the model, the order policy with what it observed)."""
        model, order = state
        model, losses, visited = yield from sequential_round(sim, cfg, server, model, order)
        sim.close_round(rnd, model, losses, clients=len(visited), order=" ".join(d.name for d in visited))
        return model, order

    yield from round_loop(sim, lambda: (learner.initial_state(), ClientOrder(cfg.order, sim.rng("order"))), one_round)
