"""SplitLoRA (Lin et al., "SplitLoRA: A Split Parameter-Efficient Fine-Tuning Framework for Large
Language Models", 2024): split-federated LoRA — LoRA adapters on both sides of the cut, the
selected clients train in parallel (each with its own device-side adapters and its own
server-side adapter copy), and both sides' adapters are averaged at the end of every round,
weighted by client samples. That is SplitFed v1 with LoRA, so it runs `common.split_federated` with
variant v1 and a config that refuses `lora: null`. Same seed and partition give the same model
as `fedlora`; the two differ in time, memory and bytes. `server_copies` (default `full`, SplitFed's
server-side model per client; `adapters`: adapter copies over one frozen base) sets what the
server holds per client."""
from __future__ import annotations

from .base import LoraRequired, ServerCopies, SplitConfig, scheme
from .common import split_federated


class SplitLoraConfig(LoraRequired, ServerCopies, SplitConfig):
    name: str = "splitlora"


@scheme("splitlora", config=SplitLoraConfig,
        summary="SplitLoRA: SplitFed v1 with LoRA on both sides of the cut, adapters averaged each round")
def run(sim, cfg: SplitLoraConfig):
    return (yield from split_federated(sim, cfg, "v1"))
