"""FedAvg (McMahan et al., AISTATS 2017, Algorithm 1): each round the selected clients download the
global model, train `local_steps` minibatches in parallel, and upload; the server averages the
uploads weighted by client sample counts. With `lora:` set, only adapters and head train and
travel; with `lora: null` the whole model does. The round is `common.federated_round`.

Reproduces: McMahan et al., AISTATS 2017: more local steps per round reach an accuracy in fewer rounds than
one — scenarios/fedavg.yaml, tests/test_claims.py::test_claim_is_shown
"""
from __future__ import annotations

from typing import ClassVar

from .base import SchemeConfig, scheme
from .common import federated_training


class FedAvgConfig(SchemeConfig):
    name: str = "fedavg"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)


@scheme("fedavg", config=FedAvgConfig,
        summary="FedAvg: parallel clients train from the global model, server averages (full model or LoRA only)")
def run(sim, cfg: FedAvgConfig):
    yield from federated_training(sim, cfg)
