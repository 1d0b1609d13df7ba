"""CyclicFL (Zhang et al., "CyclicFL: A Cyclic Model Pre-Training Approach to Efficient Federated
Learning", 2023): phase 1 trains the model cyclically across the selected clients — the model goes
from client to client, each training from the previous one's result, as in sequential FL (no data
leaves a client) — for `cyclic_rounds` rounds, to obtain a good initial model; phase 2 runs FedAvg
from it for the remaining `rounds - cyclic_rounds` rounds. Every round, of either phase, is a row
of the results (column `phase`: cyclic | fedavg).

Phase 1 is `common.sequential_round` with the `order` policy; phase 2 is FedAvg's round,
`common.federated_round`.

Reproduces: Zhang et al. 2023: cyclic pre-training then FedAvg ends above FedAvg —
scenarios/compare_fl.yaml,
tests/test_fl_claims.py::test_cyclicfl_ends_above_fedavg_from_the_same_initialisation
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ..learn.ordering import ClientOrder, OrderPolicy
from .base import SchemeConfig, scheme
from .common import federated_round, round_loop, sequential_round


class CyclicFLConfig(SchemeConfig):
    name: str = "cyclicfl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    cyclic_rounds: int = Field(2, ge=0, description="phase 1: rounds of cyclic (sequential) training; "
                               "the remaining rounds - cyclic_rounds are FedAvg")
    order: OrderPolicy = Field("random_reshuffle", description="client order in the cyclic phase")

    @model_validator(mode="after")
    def _phases(self):
        if self.cyclic_rounds > self.rounds:
            raise ValueError(f"cyclic_rounds: {self.cyclic_rounds} exceeds rounds={self.rounds}")
        return self


@scheme("cyclicfl", config=CyclicFLConfig,
        summary="CyclicFL: cyclic (sequential) pre-training across clients, then FedAvg from that model")
def run(sim, cfg: CyclicFLConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())

    def one_round(rnd, state):
        """`state`: (the model, the cyclic phase's order policy with what it observed)."""
        model, order = state
        if rnd <= cfg.cyclic_rounds:
            model, losses, visited = yield from sequential_round(sim, cfg, server, model, order)
            sim.close_round(rnd, model, losses, clients=len(visited), phase="cyclic")
        else:
            model = yield from federated_round(sim, cfg, server, model, phase="fedavg")
        return model, order

    yield from round_loop(sim, lambda: (learner.initial_state(), ClientOrder(cfg.order, sim.rng("order"))), one_round)
