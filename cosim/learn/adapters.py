"""LoRA through peft: which layers get adapters, and which parameters train.

peft injects the adapters in place (the backbone keeps its attribute paths, so the block walk in
`models.py` still applies); a classification head (new) always trains, a causal-LM head
(pretrained) stays frozen.

`LoraConfig` is the scenario's `scheme.lora` block and what `add_lora` takes (peft's own config is
built from it here; Hu et al., "LoRA", ICLR 2022: scale = alpha / r).
"""
from __future__ import annotations

from pydantic import Field
from torch import nn

from ..config import Strict
from .models import DEFAULT_LORA_TARGETS, SplitModel


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA branch's input (peft's lora_dropout)")
    target_modules: list[str] | None = Field(None, description="module names; default: attention query/value")


#: The former name, for callers not yet renamed (same class).
LoraSpec = LoraConfig


def add_lora(model: SplitModel, config: LoraConfig) -> SplitModel:
    """Inject LoRA into every target module of the backbone; freeze all but adapters and a
    classification head."""
    from peft import LoraConfig as PeftLoraConfig, inject_adapter_in_model

    targets = list(config.target_modules or DEFAULT_LORA_TARGETS[model.arch])
    peft_config = PeftLoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                 target_modules=targets, fan_in_fan_out=model.arch == "gpt2")
    inject_adapter_in_model(peft_config, model.backbone)
    for name, p in model.named_parameters():
        p.requires_grad_((name.startswith("head.") and model.task == "classification") or "lora_" in name)
    return model


def train_all(model: nn.Module) -> nn.Module:
    """Full fine-tuning: every parameter trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model
