"""The base of every typed config: a pydantic model that refuses unknown keys.

It lives on its own so that each config can sit beside the code that consumes it (mobility models
in `world/mobility/`, the radio in `world/network.py`, LoRA in `learn/adapters.py`, schemes in
`schemes/`) while `scenario.py` only composes them; a misspelt key is then refused wherever it is.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ScenarioError(ValueError):
    """One or more problems with a scenario; `problems` holds one line each ("path: given; allowed")."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    """A config block: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Vec2 = Annotated[list[float], Field(min_length=2, max_length=2)]
