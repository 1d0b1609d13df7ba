"""Run one scenario under several schemes, or one scheme under several settings, side by side.

`cosim.compare(scenario, schemes=None, overrides=None)` runs the same world (seed, data partition,
devices, network) once per entry and returns one row per entry. The entries come from the
scenario's `compare:` list, e.g.

    compare:
      - mobillm                                                  # label = scheme name
      - {label: mobillm-4bit, scheme: {name: mobillm, bits: 4}}  # these keys over the base block
      - {label: ringada-all, scheme: {name: ringada, unfreeze: all}}

so the same scheme can run twice with different knobs, or from `schemes=[...]`: labels from that
list, or plain scheme names. It writes `results/<name>/compare-<stamp>/comparison.csv` and
`comparison.png` (accuracy over simulated time, one line per label; peak memory bars).
comparison.csv is rewritten (whole: `write_atomic`) as each entry finishes; an interrupted
compare keeps the finished entries there and raises `BatchInterrupted`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from .interrupts import BatchInterrupted, RunInterrupted
from .results import unique_dir, write_atomic
from .scenario import CompareEntry, ScenarioError, _problems, _validate_scheme, apply_overrides, load, read_raw
from .schemes import SCHEMES

#: Columns `cosim compare` prints (the CSV keeps every column).
SHOWN = ("time_to_target_s", "final_accuracy", "final_perplexity", "sim_time_s", "device_peak_memory_bytes", "server_peak_memory_bytes",
         "device_flops", "bytes_up", "bytes_down", "energy_j")


@dataclass(frozen=True)
class _Entry:
    """One run to compare: `keys` (name included) go over the base scheme block."""
    label: str
    keys: dict
    index: int | None  # position in the file's compare: list; None for a plain scheme name
    control: dict | None = None  # keys over the base control: block

    @property
    def name(self) -> str:
        return self.keys["name"]


def compare(scenario, schemes: list[str] | None = None, overrides: dict[str, Any] | None = None, *,
            progress: bool | None = None) -> pd.DataFrame:
    """Run `scenario` (path, dict or Scenario) once per entry; return the table.

    `schemes=None` runs the scenario's `compare:` list; otherwise each name picks the entry with
    that label from the list, or, when no entry has that label, the plain scheme of that name.

    The table has one row per entry (index = label) with the columns of `Result.summary`,
    `time_to_target_s` (the first round-end `sim_time_s` at which accuracy ≥
    `stop.target_accuracy`; NaN if no target is set or it was never reached) and `run_dir`.
    `table.attrs["dir"]` is the folder with comparison.csv (a `label` column first) and comparison.png.

    Each entry's scheme block is the base `scheme:` block with the entry's keys on top, less the
    base keys its scheme does not declare (e.g. `cut_layer` reaches splitlora but not fedlora); an
    entry's own key its scheme does not declare is refused. A base key that no compared scheme
    declares is refused as a typo. Every entry is validated before anything runs; all problems
    come at once as a ScenarioError naming the path (`compare.3.scheme.unfreeze: ...`).
    """
    from .plots import plot_comparison
    from .run import run

    labelled = entries_of(scenario, schemes, overrides)
    labels, scenarios = [label for label, _ in labelled], [sc for _, sc in labelled]

    first = scenarios[0]
    rows, curves, out = [], {}, None
    for label, sc in labelled:
        try:
            result = run(sc, progress=progress, plots=False)
        except KeyboardInterrupt as stop:   # the entries that finished are in comparison.csv already
            raise BatchInterrupted("compare", len(rows), len(labelled), out and out / "comparison.csv",
                                   stop if isinstance(stop, RunInterrupted) else None) from None
        rows.append({**result.summary, "time_to_target_s": _time_to_target(result.rounds, sc.stop.target_accuracy),
                     "run_dir": str(result.dir)})
        curves[label] = result.rounds
        out = out or _new_dir(Path(first.outputs.dir) / first.name)
        table = pd.DataFrame(rows, index=pd.Index(labels[:len(rows)]))   # written as each entry finishes
        write_atomic(out / "comparison.csv", table.to_csv(index_label="label"))
    # the plot names its bars by the `scheme` column: give it the labels, which tell entries apart
    plot_comparison(table.assign(scheme=labels), curves, out / "comparison.png",
                    title=f"{first.name}: {', '.join(labels)}")
    table.attrs["dir"] = out
    return table


def entries_of(scenario, schemes: list[str] | None = None,
               overrides: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """The (label, validated Scenario) pairs `compare` would run, checked all at once before any
    runs (also what `cosim validate` checks for a file with a `compare:` list)."""
    raw = apply_overrides(_raw(scenario), overrides)
    entries = _selected(raw, schemes)
    return list(zip([e.label for e in entries], _loaded(raw, entries)))


def _raw(scenario) -> dict:
    raw = read_raw(scenario)
    if not isinstance(raw, dict):
        raise ScenarioError([f"(scenario): expected a mapping of fields, got {type(raw).__name__}"])
    return raw


def _listed(raw: dict) -> tuple[list[_Entry], list[str]]:
    """The file's `compare:` list as entries, and the problems with its shape."""
    listed = raw.get("compare") or []
    if not isinstance(listed, list):
        return [], [f"compare: expected a list of scheme names or {{label, scheme}} entries (given {listed!r})"]
    entries, problems = [], []
    for i, item in enumerate(listed):
        if isinstance(item, str) and item not in SCHEMES:
            problems.append(f"compare.{i}: unknown scheme (given {item!r}); allowed: {', '.join(SCHEMES)}")
            continue
        try:
            e = CompareEntry.model_validate(item)
        except ValidationError as err:
            problems += _problems(err, ("compare", i))
            continue
        entries.append(_Entry(e.label, dict(e.scheme), i, e.control))
    seen: dict[str, int] = {}
    for e in entries:
        if e.label in seen:
            problems.append(f"compare.{e.index}.label: already used by compare.{seen[e.label]} (given {e.label!r}); "
                            "labels must be unique")
        seen.setdefault(e.label, e.index)
    return entries, problems


def _selected(raw: dict, schemes: list[str] | None) -> list[_Entry]:
    """The entries to run, checked: the file's list, or those `schemes` names; plus the base-key typo check."""
    listed, problems = _listed(raw)
    by_label = {e.label: e for e in listed}
    allowed = f"labels: {', '.join(by_label) or '(no compare: list)'}; schemes: {', '.join(SCHEMES)}"
    if schemes is None:
        entries = listed
        if not entries and not problems:
            problems.append(f"compare: no entries in the scenario and none given (--schemes); allowed: a list of "
                            f"scheme names or {{label, scheme: {{name, ...}}}} entries; schemes: {', '.join(SCHEMES)}")
    else:
        schemes = list(schemes)
        entries = []
        if not schemes:
            problems.append(f"schemes: none given; allowed: {allowed}")
        for name in schemes:
            if name in by_label:
                entries.append(by_label[name])
            elif name in SCHEMES:
                entries.append(_Entry(name, {"name": name}, None))
            else:
                problems.append(f"schemes: no such label or scheme (given {name!r}); allowed {allowed}")
        if len(set(schemes)) < len(schemes):
            problems.append(f"schemes: a label or scheme is named twice (given {schemes!r})")
    block = raw.get("scheme")
    if not isinstance(block, dict):
        problems.append(f"scheme: expected a mapping (given {block!r})")
        raise ScenarioError(problems)
    shape_ok = not problems
    for e in entries:
        problems += [_located(line, e) for line in _validate_scheme(_block(raw, e))[1]]
    if shape_ok and all(e.name in SCHEMES for e in entries):  # else the declared keys are not all known
        # a typo is a key that neither the base block's scheme nor any entry (listed or picked) declares
        named = {e.name for e in entries + listed} | ({block["name"]} & set(SCHEMES) if "name" in block else set())
        declared = set().union(*(SCHEMES[n].config.model_fields for n in named))
        for key in block:
            if key not in declared:
                problems.append(f"scheme.{key}: no compared scheme declares it (given {block[key]!r}); "
                                f"allowed keys: {', '.join(sorted(declared))}")
    if problems:
        raise ScenarioError(problems)
    return entries


def _block(raw: dict, entry: _Entry) -> dict:
    """The entry's scheme block: base keys its scheme declares, then the entry's own keys."""
    config = SCHEMES.get(entry.name)
    fields = config.config.model_fields if config else {}
    return {**{k: v for k, v in raw["scheme"].items() if k in fields}, **entry.keys}


def _loaded(raw: dict, entries: list[_Entry]) -> list:
    """Each entry's whole scenario, validated (e.g. cut_layer against the model's depth) before any runs."""
    base = {k: v for k, v in raw.items() if k != "compare"}  # each run folder holds a one-scheme scenario
    scenarios, problems = [], []
    for e in entries:
        try:
            entry = {**base, "scheme": _block(raw, e)}
            if e.control is not None:
                entry["control"] = {**(base.get("control") or {}), **e.control}
            scenarios.append(load(entry))
        except ScenarioError as err:
            problems += [p for p in (_located(line, e) for line in err.problems) if p not in problems]
    if problems:
        raise ScenarioError(problems)
    return scenarios


def _located(line: str, entry: _Entry) -> str:
    """Point a `scheme...` problem at the entry's own key (`compare.3.scheme.bits`) or, for a base
    key, at the base block with the entry named."""
    path = line.split(":", 1)[0]
    if path != "scheme" and not path.startswith("scheme."):
        return line
    key = path.split(".")[1] if "." in path else None
    if entry.index is not None and (key is None or key in entry.keys):
        return f"compare.{entry.index}.{line}"
    return f"{line} [in compare entry {entry.label!r}]"


def _time_to_target(rounds: pd.DataFrame, target: float | None) -> float:
    if target is None:
        return math.nan
    hit = rounds[rounds.accuracy >= target]
    return float(hit.sim_time_s.iloc[0]) if len(hit) else math.nan


def _new_dir(parent: Path) -> Path:
    return unique_dir(parent, f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
