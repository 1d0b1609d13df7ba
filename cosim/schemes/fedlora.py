"""FedLoRA: FedAvg over LoRA adapters only — the baseline the split-learning LoRA papers compare
with (e.g. SplitLoRA, Lin et al. 2024, §V). Each round the selected clients download the adapters
and head, train `local_steps` minibatches in parallel on the whole (frozen) model, and upload
them; the server averages the uploads weighted by client sample counts. The round is FedAvg's
(`common.federated_round`), run with a config that refuses `lora: null`.

Reproduces: the baseline of SplitLoRA's and SplitFrozen's claims (SplitFrozen: device computation −86.8 %
against it) — scenarios/compare_split.yaml,
tests/test_splitfrozen.py::test_device_flops_per_sample_is_the_papers_fraction_of_fedlora
"""
from __future__ import annotations

from typing import ClassVar

from .base import LoraRequired, scheme
from .common import federated_training


class FedLoraConfig(LoraRequired):
    name: str = "fedlora"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)


@scheme("fedlora", config=FedLoraConfig,
        summary="FedLoRA: FedAvg over LoRA adapters only (parallel clients on the whole frozen model)")
def run(sim, cfg: FedLoraConfig):
    yield from federated_training(sim, cfg)
