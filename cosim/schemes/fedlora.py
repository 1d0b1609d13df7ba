"""FedLoRA: FedAvg over LoRA adapters only — the baseline the split-learning LoRA papers compare
with (e.g. SplitLoRA, Lin et al. 2024, §V). Each round the selected clients download the adapters
and head, train `local_steps` minibatches in parallel on the whole (frozen) model, and upload
them; the server averages the uploads weighted by client sample counts. The round is FedAvg's
(`fedavg.run`), run with a config that refuses `lora: null`."""
from __future__ import annotations

from pydantic import ValidationInfo, field_validator

from . import fedavg
from .base import SchemeConfig, scheme


class LoraRequired(SchemeConfig):
    """A scheme that trains LoRA adapters only: `lora: null` (full fine-tuning) is refused."""

    @field_validator("lora")
    @classmethod
    def _lora_set(cls, v, info: ValidationInfo):
        if v is None:
            name = info.data.get("name", "this scheme")
            raise ValueError(f"{name} trains LoRA adapters only and needs a lora block; allowed: a mapping such "
                             "as {r: 8, alpha: 16} (for full fine-tuning use fedavg or splitfed with lora: null)")
        return v


class FedLoraConfig(LoraRequired):
    name: str = "fedlora"


@scheme("fedlora", config=FedLoraConfig,
        summary="FedLoRA: FedAvg over LoRA adapters only (parallel clients on the whole frozen model)")
def run(sim, cfg: FedLoraConfig):
    return (yield from fedavg.run(sim, cfg))
