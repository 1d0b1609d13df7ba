"""The base of every typed config: a pydantic model that refuses unknown keys.

It lives on its own so that each config can sit beside the code that consumes it (mobility models
in `world/mobility/`, the radio in `world/network.py`, LoRA in `learn/adapters.py`, schemes in
`schemes/`) while `scenario.py` only composes them; a misspelt key is then refused wherever it is.
"""
from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

#: A problem line is cut to this many characters: a scenario echoes what it was given, never megabytes of it.
MAX_PROBLEM_CHARS = 1000
#: At most this many problem lines are listed; the rest are counted.
MAX_PROBLEMS = 50


class ScenarioError(ValueError):
    """One or more problems with a scenario; `problems` holds one line each ("path: given; allowed").

    Lines are bounded (MAX_PROBLEM_CHARS each, MAX_PROBLEMS of them) so that a hostile or runaway
    input cannot make the message itself the problem."""

    def __init__(self, problems: list[str] | str):
        if isinstance(problems, str):   # re-created from its message (SimPy re-raises a process's error so)
            problems = problems.splitlines()
        lines = [_cut(str(p), MAX_PROBLEM_CHARS) for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            lines.append(f"(scenario): … and {len(problems) - MAX_PROBLEMS} more problems")
        self.problems = lines
        super().__init__("\n".join(lines))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6


def given(value) -> str:
    """`repr(value)` bounded in length and depth, for the "(given …)" part of a problem line."""
    try:
        return _cut(_SHORT.repr(value), 200)
    except Exception:   # an object whose repr fails still gets a line
        return f"<{type(value).__name__}>"


def is_file(path) -> bool:
    """`Path.is_file`, but False for a path the OS refuses to look up (a name too long, a NUL
    byte) instead of an OSError: a scenario's file fields are user input."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


class Strict(BaseModel):
    """A config block: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class AttentionShape(Strict):
    """A tiny transformer's shape block (model.tiny, a student): `heads` must divide `hidden`."""

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        from .learn.models import heads_problem

        problem = heads_problem(self.hidden, self.heads)
        if problem:
            raise ValueError(problem)
        return self


def at_most(limit: int, why: str):
    """A bound against runaway inputs, with the reason in the message (e.g. `rounds`)."""

    def check(value):
        if value is not None and value > limit:
            raise ValueError(f"above the limit of {limit:,} ({why}); allowed: at most {limit:,}")
        return value

    return AfterValidator(check)


Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Vec2 = Annotated[list[float], Field(min_length=2, max_length=2)]
