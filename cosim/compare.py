"""Run one scenario under several schemes and put the results side by side.

`cosim.compare(scenario, schemes=[...], overrides=None)` runs the same world (seed, data partition,
devices, network) once per scheme, changing only `scheme.name`, and returns one row per scheme;
it writes `results/<name>/compare-<stamp>/comparison.csv` and `comparison.png` (accuracy over
simulated time, one line per scheme; peak memory bars).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .results import unique_dir
from .scenario import ScenarioError, apply_overrides, load, read_raw
from .schemes import SCHEMES

#: Columns `cosim compare` prints (the CSV keeps every column).
SHOWN = ("time_to_target_s", "final_accuracy", "sim_time_s", "device_peak_memory_bytes", "server_peak_memory_bytes",
         "device_flops", "bytes_up", "bytes_down", "energy_j")


def compare(scenario, schemes: list[str], overrides: dict[str, Any] | None = None, *,
            progress: bool | None = None) -> pd.DataFrame:
    """Run `scenario` (path, dict or Scenario) once per scheme in `schemes`; return the table.

    The table has one row per scheme (index = scheme name) with the columns of `Result.summary`,
    `time_to_target_s` (the first round-end `sim_time_s` at which accuracy ≥
    `stop.target_accuracy`; NaN if no target is set or it was never reached) and `run_dir`.
    `table.attrs["dir"]` is the folder with comparison.csv and comparison.png.

    Scheme-specific settings go in the scenario's `scheme:` block as usual; each scheme gets the
    keys its own config declares and the others are dropped (e.g. `cut_layer` reaches splitlora
    but not fedlora). A key that no compared scheme declares is refused as a typo; an unknown
    scheme name is refused before anything runs (both as ScenarioError).
    """
    from .plots import plot_comparison
    from .run import run

    schemes = list(schemes)
    raw = apply_overrides(_raw(scenario), overrides)
    scenarios = [load(_for_scheme(raw, name)) for name in _checked(schemes, raw)]

    rows, curves = [], {}
    for name, sc in zip(schemes, scenarios):
        result = run(sc, progress=progress, plots=False)
        rows.append({**result.summary, "time_to_target_s": _time_to_target(result.rounds, sc.stop.target_accuracy),
                     "run_dir": str(result.dir)})
        curves[name] = result.rounds
    table = pd.DataFrame(rows, index=pd.Index(schemes))

    first = scenarios[0]
    out = _new_dir(Path(first.outputs.dir) / first.name)
    table.to_csv(out / "comparison.csv", index=False)
    plot_comparison(table, curves, out / "comparison.png", title=f"{first.name}: {', '.join(schemes)}")
    table.attrs["dir"] = out
    return table


def _raw(scenario) -> dict:
    raw = read_raw(scenario)
    if not isinstance(raw, dict):
        raise ScenarioError([f"(scenario): expected a mapping of fields, got {type(raw).__name__}"])
    return raw


def _checked(schemes: list[str], raw: dict) -> list[str]:
    problems = []
    if not schemes:
        problems.append(f"schemes: none given; allowed: {', '.join(SCHEMES)}")
    for name in schemes:
        if name not in SCHEMES:
            problems.append(f"schemes: unknown scheme (given {name!r}); allowed: {', '.join(SCHEMES)}")
    if len(set(schemes)) < len(schemes):
        problems.append(f"schemes: a scheme is named twice (given {schemes!r})")
    block = raw.get("scheme")
    if not isinstance(block, dict):
        problems.append(f"scheme: expected a mapping (given {block!r})")
    elif not problems:
        declared = set().union(*(SCHEMES[n].config.model_fields for n in schemes))
        for key in block:
            if key not in declared:
                problems.append(f"scheme.{key}: no compared scheme declares it (given {block[key]!r}); "
                                f"allowed keys: {', '.join(sorted(declared))}")
    if problems:
        raise ScenarioError(problems)
    return schemes


def _for_scheme(raw: dict, name: str) -> dict:
    fields = SCHEMES[name].config.model_fields
    block = {k: v for k, v in raw["scheme"].items() if k in fields}
    return {**raw, "scheme": {**block, "name": name}}


def _time_to_target(rounds: pd.DataFrame, target: float | None) -> float:
    if target is None:
        return math.nan
    hit = rounds[rounds.accuracy >= target]
    return float(hit.sim_time_s.iloc[0]) if len(hit) else math.nan


def _new_dir(parent: Path) -> Path:
    return unique_dir(parent, f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
