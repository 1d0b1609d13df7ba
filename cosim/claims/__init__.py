"""The papers' claims, one row each: what a seed scheme's paper reports, the scenario cosim runs to
check it, what cosim measures there, and whether the claim is shown (`cosim claims`).

A row is a function registered with `@claim(key, paper=..., says=..., scenario=..., test=...)`: it
takes a `Runner` (cosim.claims.runner: runs a scenario, shrunk under `--quick`) and returns an
`Outcome` — our number in words, shown or not, why, and the values its figure draws. Every module in
this package is imported here so its rows register; adding a row is adding a function (or a file),
so a new scheme's row (dt_incremental's) joins the report without touching the others.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Outcome:
    """What a row measured. `number`: our figure in words (with the baseline's); `shown`: whether
    it meets the paper's claim as the row states it; `why`: the reason, in numbers where it can be;
    `bars` ({label: value}, `unit`) or `curves` ({label: ([x], [y])}, `x_label`): the figure."""

    number: str
    shown: bool
    why: str
    unit: str = ""
    bars: dict[str, float] = field(default_factory=dict)
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    x_label: str = ""
    y_label: str = "held-out accuracy"   # of the curves


@dataclass
class Claim:
    key: str            # a scheme name, or a topic (e.g. "thz_isac")
    paper: str
    says: str           # the claim, as the paper states it
    scenario: str       # scenarios/x.yaml
    test: str           # tests/test_y.py::test_z that checks the same claim
    measure: Callable   # (Runner) -> Outcome


CLAIMS: dict[str, Claim] = {}


def claim(key: str, *, paper: str, says: str, scenario: str, test: str):
    """Register `fn(runner) -> Outcome` as the row `key` of the claims report."""

    def register(fn: Callable) -> Callable:
        CLAIMS[key] = Claim(key, paper, says, scenario, test, fn)
        return fn

    return register


for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("runner", "report"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CLAIMS", "Claim", "Outcome", "claim"]
