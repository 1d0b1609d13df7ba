"""LoRA through peft: which layers get adapters, and which parameters train.

peft injects the adapters in place (the backbone keeps its attribute paths, so the block walk in
`models.py` still applies); a classification head (new) always trains, a causal-LM head
(pretrained) stays frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .models import DEFAULT_LORA_TARGETS, SplitModel


@dataclass(frozen=True)
class LoraSpec:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None


def add_lora(model: SplitModel, spec: LoraSpec) -> SplitModel:
    """Inject LoRA into every target module of the backbone; freeze all but adapters and a
    classification head."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(spec.target_modules or DEFAULT_LORA_TARGETS[model.arch])
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
                        fan_in_fan_out=model.arch == "gpt2")
    inject_adapter_in_model(config, model.backbone)
    for name, p in model.named_parameters():
        p.requires_grad_((name.startswith("head.") and model.task == "classification") or "lora_" in name)
    return model


def train_all(model: nn.Module) -> nn.Module:
    """Full fine-tuning: every parameter trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model
