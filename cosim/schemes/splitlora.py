"""SplitLoRA (Lin et al., "SplitLoRA: A Split Parameter-Efficient Fine-Tuning Framework for Large
Language Models", 2024): split-federated LoRA — LoRA adapters on both sides of the cut, the
selected clients train in parallel (each with its own device-side adapters and its own
server-side adapter copy), and both sides' adapters are averaged at the end of every round,
weighted by client samples. That is SplitFed v1 with LoRA, so it runs `common.split_federated` with
variant v1 and a config that refuses `lora: null`. Same seed and partition give the same model
as `fedlora`; the two differ in time, memory and bytes. `server_copies` (default `full`, SplitFed's
server-side model per client; `adapters`: adapter copies over one frozen base) sets what the
server holds per client.

Reproduces: Lin et al. 2024: FedLoRA's model with a fraction of the device's compute and memory —
scenarios/compare_split.yaml,
tests/test_split_family.py::test_splitlora_learns_the_same_model_as_fedlora_with_less_on_the_device
"""
from __future__ import annotations

from .base import LoraRequired, ServerCopies, SplitConfig, scheme
from .common import split_federated


class SplitLoraConfig(LoraRequired, ServerCopies, SplitConfig):
    name: str = "splitlora"


@scheme("splitlora", config=SplitLoraConfig,
        summary="SplitLoRA: SplitFed v1 with LoRA on both sides of the cut, adapters averaged each round")
def run(sim, cfg: SplitLoraConfig):
    return (yield from split_federated(sim, cfg, "v1"))
