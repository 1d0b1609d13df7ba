"""Run one scenario under several schemes, or one scheme under several settings, side by side.

`cosim.compare(scenario, schemes=None, overrides=None)` runs the same world (seed, data partition,
devices, network) once per entry and returns one row per entry. The entries come from the
scenario's `compare:` list, e.g.

    compare:
      - mobillm                                                  # label = scheme name
      - {label: mobillm-4bit, scheme: {name: mobillm, bits: 4}}  # these keys over the base block
      - {label: ringada-all, scheme: {name: ringada, unfreeze: all}}

so the same scheme can run twice with different knobs, or from `schemes=[...]`: labels from that
list, or plain scheme names. It creates `results/<name>/compare-<stamp>/` before the first run, with entries.json (each entry's
label and validated scenario: what it will run); while an entry runs, `running/entry-<i>.txt` names
its run folder. comparison.csv is rewritten (whole: `write_atomic`) as each entry finishes, and
`comparison.png` drawn at the end (accuracy over simulated time, one line per label; peak memory
bars), `epoch_delay.png` when every entry's scheme reports an epoch delay (`delay_s`), and `report.html` (cosim.report; unless outputs.report: false). An interrupted compare keeps the finished entries there and raises `BatchInterrupted`;
`compare(resume=COMPARE_DIR)` (`cosim compare --resume COMPARE_DIR`) goes on: the entries in
comparison.csv are kept, not run again; the one that was running resumes from its run's
checkpoint (cosim.checkpoint), or starts over when it has none; the rest run.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from . import checkpoint
from .interrupts import BatchInterrupted, RunInterrupted
from .results import load_run, unique_dir, write_atomic
from .scenario import CompareEntry, ScenarioError, _problems, _validate_scheme, apply_overrides, load, read_raw
from .schemes import SCHEMES

#: Columns `cosim compare` prints (the CSV keeps every column).
SHOWN = ("time_to_target_s", "final_accuracy", "final_perplexity", "sim_time_s", "device_peak_memory_bytes", "server_peak_memory_bytes",
         "device_flops", "bytes_up", "bytes_down", "energy_j")
#: What a compare runs, in its folder from the start: each entry's label and validated scenario.
ENTRIES_FILE = "entries.json"


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


def compare(scenario=None, schemes: list[str] | None = None, overrides: dict[str, Any] | None = None, *,
            progress: bool | None = None, resume=None) -> pd.DataFrame:
    """Run `scenario` (path, dict or Scenario) once per entry; return the table.

    `schemes=None` runs the scenario's `compare:` list; otherwise each name picks the entry with
    that label from the list, or, when no entry has that label, the plain scheme of that name.

    `resume=COMPARE_DIR` goes on with an interrupted compare in its folder, with the entries it was
    started with (entries.json); a scenario, schemes or overrides given too must give those same
    entries. Finished entries (those in its comparison.csv) are kept, the one that was running
    resumes from its checkpoint (or starts over without one), the others run.

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
    from .plots import plot_comparison, plot_epoch_delay

    if resume is None:
        labelled = entries_of(scenario, schemes, overrides)
        first = labelled[0][1]
        out = _new_dir(Path(first.outputs.dir) / first.name)
        write_atomic(out / ENTRIES_FILE, json.dumps(_dumped(labelled)))
        rows, curves = {}, {}
    else:
        out, labelled = _resumable(Path(resume), scenario, schemes, overrides)
        rows, curves = _finished(out, labelled)
        first = labelled[0][1]
    labels = [label for label, _ in labelled]

    def table() -> pd.DataFrame:
        done = [label for label in labels if label in rows]
        return pd.DataFrame([rows[label] for label in done], index=pd.Index(done))

    for i, (label, sc) in enumerate(labelled):
        if label in rows:
            continue
        try:
            result = _run_entry(sc, out, i, progress)
        except ScenarioError:   # refused by the run's build step (e.g. memory): a first refusal leaves no folder
            if resume is None and not rows:
                _discard(out)
            raise
        except KeyboardInterrupt as stop:   # the entries that finished are in comparison.csv already
            raise BatchInterrupted("compare", len(rows), len(labelled), out / "comparison.csv" if rows else None,
                                   stop if isinstance(stop, RunInterrupted) else None,
                                   resume=f"cosim compare --resume {out}") from None
        rows[label] = {**result.summary, "time_to_target_s": _time_to_target(result.rounds, sc.stop.target_accuracy),
                       "run_dir": str(result.dir)}
        curves[label] = result.rounds
        write_atomic(out / "comparison.csv", table().to_csv(index_label="label"))   # as each entry finishes
    done = table()
    # the plot names its bars by the `scheme` column: give it the labels, which tell entries apart
    plot_comparison(done.assign(scheme=labels), curves, out / "comparison.png",
                    title=f"{first.name}: {', '.join(labels)}")
    if curves and all("delay_s" in c.columns for c in curves.values()):   # schemes that report an epoch delay
        plot_epoch_delay({label: curves[label] for label in labels}, out / "epoch_delay.png",
                         title=f"{first.name}: system delay and accuracy per epoch")
    if first.outputs.report:
        from .report import write_report

        write_report(out)
    done.attrs["dir"] = out
    return done


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


# --- one entry, and going on with an interrupted compare ---------------------------------------------

def _run_entry(sc, out: Path, i: int, progress):
    """Run entry i, noting its run folder in running/entry-<i>.txt as soon as it exists; an entry
    whose noted folder can go on (a checkpoint, or a run that finished before comparison.csv was
    rewritten) resumes there instead of starting over."""
    from .run import run

    note = out / "running" / f"entry-{i}.txt"
    note.parent.mkdir(exist_ok=True)
    started = lambda run_dir: write_atomic(note, str(run_dir))   # noqa: E731
    noted = Path(note.read_text()) if note.is_file() else None
    if noted is not None and _can_go_on(noted):
        return run(resume=noted, progress=progress, plots=False, started=started)
    return run(sc, progress=progress, plots=False, started=started)


def _can_go_on(run_dir: Path) -> bool:
    """A run folder `run(resume=)` takes: one with a checkpoint, or a finished one (events.parquet
    written, no event parts left)."""
    finished = (run_dir / "events.parquet").is_file() and not (run_dir / "events.parts").is_dir()
    return finished or (run_dir / checkpoint.FILE).is_file()


def _discard(out: Path) -> None:
    """Remove a compare folder in which no run has begun (only entries.json and an empty running/)."""
    running = out / "running"
    if running.is_dir() and not any(running.iterdir()):
        running.rmdir()
    if {p.name for p in out.iterdir()} <= {ENTRIES_FILE}:
        (out / ENTRIES_FILE).unlink(missing_ok=True)
        out.rmdir()


def _dumped(labelled: list[tuple[str, Any]]) -> list[dict]:
    return [{"label": label, "scenario": sc.model_dump(mode="json")} for label, sc in labelled]


def _resumable(out: Path, scenario, schemes, overrides) -> tuple[Path, list[tuple[str, Any]]]:
    """The folder of the compare to go on with and its (label, Scenario) pairs, read from its
    entries.json; a scenario (schemes, overrides) given too must be the one it was started with."""
    if not (out / ENTRIES_FILE).is_file():
        raise ScenarioError([f"compare resume: {out} is not a compare folder (no {ENTRIES_FILE})"])
    saved = json.loads((out / ENTRIES_FILE).read_text())
    if scenario is not None:
        if json.loads(json.dumps(_dumped(entries_of(scenario, schemes, overrides)))) != saved:
            raise ScenarioError([f"compare resume: {out} compares other entries; give the scenario, --schemes and "
                                 "--set it was started with, or none (the folder holds them)"])
    elif schemes is not None or overrides:
        raise ScenarioError(["compare resume: --schemes and --set need the scenario they go with; give none "
                             "(the folder holds its entries) or the scenario too"])
    return out, [(e["label"], load(e["scenario"])) for e in saved]


def _finished(out: Path, labelled: list[tuple[str, Any]]) -> tuple[dict[str, dict], dict[str, pd.DataFrame]]:
    """The rows and accuracy curves of the entries listed in comparison.csv (those that finished),
    by label: rebuilt from their run folders as when they finished (floats exact, via summary.json),
    with the host time comparison.csv noted. An entry whose run folder is gone runs again."""
    if not (out / "comparison.csv").is_file():
        return {}, {}
    listed = pd.read_csv(out / "comparison.csv", index_col="label").to_dict(orient="index")
    rows, curves = {}, {}
    for label, sc in labelled:
        run_dir = Path(listed[label]["run_dir"]) if label in listed else None
        if run_dir is None or not (run_dir / "rounds.csv").is_file():
            continue
        result = load_run(run_dir)
        rows[label] = {**result.summary, "wall_time_s": listed[label].get("wall_time_s"),
                       "time_to_target_s": _time_to_target(result.rounds, sc.stop.target_accuracy),
                       "run_dir": str(run_dir)}
        curves[label] = result.rounds
    return rows, curves
