"""The scheme registry and the configuration every scheme shares.

A scheme is a generator function `run(sim, cfg)` — the SimPy process of the whole training —
registered with `@scheme(name, config=ConfigClass, summary="one line")`. Its config is a pydantic
model validated from the scenario's `scheme:` block, so a typo in a scheme's own knob is refused
before anything runs, with the field's path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraConfig(Strict):
    r: int = Field(8, ge=1, description="LoRA rank")
    alpha: float = Field(16, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | None = Field(None, description="module names; default: attention query/value")


class SchemeConfig(Strict):
    name: str
    rounds: int = Field(10, ge=1)
    local_steps: int = Field(5, ge=1, description="minibatch steps per client per round")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(5e-3, gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lora: LoraConfig | None = Field(default_factory=LoraConfig, description="null = full fine-tuning")
    participants: int | None = Field(None, ge=1, description="devices per round; null = all in coverage")

    #: The model tasks (`model.task`) the scheme can train; a scheme narrows it where its method
    #: only makes sense for one (checked before the run, with the reason in `task_note`).
    tasks: ClassVar[tuple[str, ...]] = ("classification", "causal_lm")
    task_note: ClassVar[str] = ""

    def device_blocks(self, depth: int) -> tuple[int, int]:
        """Blocks [start, end) a device holds and trains (memory check before the run)."""
        return 0, depth


@dataclass(frozen=True)
class SchemeEntry:
    name: str
    run: Callable
    config: type[SchemeConfig]
    summary: str


SCHEMES: dict[str, SchemeEntry] = {}


def scheme(name: str, *, config: type[SchemeConfig], summary: str):
    """Register a scheme under `name`."""

    def register(fn: Callable) -> Callable:
        SCHEMES[name] = SchemeEntry(name, fn, config, summary)
        return fn

    return register
