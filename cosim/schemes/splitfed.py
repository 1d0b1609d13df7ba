"""SplitFed (Thapa et al., "SplitFed: When Federated Learning Meets Split Learning", AAAI 2022):
the model is cut after block `cut_layer`; every round the selected clients run in parallel, each
doing split-learning steps (`common.device_turn`) with the server, and a fed server averages the
device-side parts (uploaded, weighted by client samples) at the end of the round.

- `variant: v1` (SplitFed Algorithm 1): the server keeps one server-side copy (and optimizer) per
  active client and averages those copies locally at the end of the round, weighted like the
  device parts. Its memory grows with the number of clients.
  What a copy holds is `server_copies`: `full` (default, the whole server-side part, as
  SplitFed defines it) or `adapters` (trainable tensors only over shared frozen weights).
- `variant: v2` (SplitFed Algorithm 2): ONE shared server-side part, trained on the clients'
  activation batches in turn, in the order they arrive at the server (its processor is a FIFO
  queue), and never averaged; it keeps its optimizer across rounds.

With `lora:` set, only adapters (and the head) train and travel on both sides; `lora: null` is
full fine-tuning of both parts.

Reproduces: Thapa et al., AAAI 2022: parallel clients train faster than sequential split learning —
scenarios/splitfed.yaml, tests/test_claims.py::test_claim_is_shown
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import ServerCopies, SplitConfig, scheme
from .common import split_federated


class SplitFedConfig(ServerCopies, SplitConfig):
    name: str = "splitfed"
    variant: Literal["v1", "v2"] = Field("v1", description="v1: a server-side copy per client, averaged each round; "
                                                            "v2: one shared server-side part trained in turn")

    def problems(self, depth, source, device_profiles) -> list[str]:
        extra = []
        if self.variant == "v2" and self.server_copies != "full":
            extra = [f"scheme.server_copies: v2 keeps one shared server-side part, no per-client copies (given "
                     f"{self.server_copies!r}); allowed: leave it out, or use variant v1"]
        return super().problems(depth, source, device_profiles) + extra


@scheme("splitfed", config=SplitFedConfig,
        summary="SplitFed: parallel split learning, device parts averaged; server part per client (v1) or shared (v2)")
def run(sim, cfg: SplitFedConfig):
    return (yield from split_federated(sim, cfg, cfg.variant))

