"""What-if grids: one ordinary run per point of a cartesian product of scenario settings.

`cosim.sweep(scenario, grid=None, overrides=None, backend="local")` runs the scenario once per
point of its `sweep:` grid (a given `grid` merged over it), e.g.

    sweep:
      grid:
        network.medium.bandwidth_hz: [5e6, 20e6, 100e6]
        scheme.cut_layer: [1, 3]
        seed: [1, 2]

runs 3 x 2 x 2 = 12 runs, the first key varying slowest. A scenario with a `compare:` list runs
every entry at every point (cosim.compare's entries, built on the point's settings): the entries are
the innermost key, `compare` (the entry's label), so 12 points x 3 entries = 36 runs. Every point is
validated before any run.
Each point is one `cosim.run` in a process of its own (DESIGN.md §7: a single run is one process):
backend "local" is a spawn-context process pool on this machine, backend "ray" one Ray task per
point, on a local Ray or on a cluster (`address=`). Nothing here schedules beyond that.

It writes `results/<name>/sweep-<stamp>/sweep.csv` (a row appended as each run finishes, so a killed
sweep keeps its finished rows; rewritten in grid order at the end), `sweep.png` and `report.html`
(cosim.report; unless outputs.report: false). Interrupted
(SIGINT/SIGTERM), it stops its workers (each running point stops as an interrupted run), keeps
the points that finished and raises `BatchInterrupted`; a worker also stops when the sweep's
process dies (`cosim.interrupts.worker_init`).
A script that calls `sweep` needs the usual `if __name__ == "__main__":` guard: spawned workers
import the caller's main module.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from .interrupts import EXIT_INTERRUPTED, BatchInterrupted, RunInterrupted, parent_gone, stop_workers, worker_init
from .learn.workers import import_ray, ray_temp_dir, start_ray
from .results import unique_dir, write_atomic
from .scenario import ScenarioError, SweepConfig, _problems, apply_overrides, read_raw, safe_yaml, validate

BACKENDS = ("local", "ray")
#: How long an interrupted sweep waits for its stopped workers to report, s (their points' rows are
#: written whatever happens; this is only for the points that finished meanwhile to enter sweep.csv).
STOP_GRACE_S = 30.0
#: Columns `cosim sweep` prints after the swept keys (the CSV keeps every column).
SHOWN = ("final_accuracy", "final_perplexity", "sim_time_s", "device_peak_memory_bytes", "bytes_up", "energy_j",
         "wall_time_s")


class SweepError(RuntimeError):
    """Some points failed at run time; the others finished: `table` (also in `dir`/sweep.csv).
    `bad_input`: every failure was a problem with the scenario that only the run could find (e.g.
    a device without the memory for its part of the model), not a crash."""

    def __init__(self, problems: list[str], table: pd.DataFrame, bad_input: bool):
        self.problems, self.table, self.dir, self.bad_input = problems, table, table.attrs["dir"], bad_input
        super().__init__("\n".join(problems))


def sweep(scenario, grid: dict[str, list] | None = None, overrides: dict[str, Any] | None = None, *,
          backend: str = "local", workers: int | None = None, address: str | None = None,
          progress: bool | None = None, resume=None) -> pd.DataFrame:
    """Run `scenario` (path, dict or Scenario) once per grid point; return one row per point.

    `resume=SWEEP_DIR` continues an interrupted sweep of the same scenario and grid in its folder:
    the points in its sweep.csv are kept, not run again; a point that was running resumes from its
    run's checkpoint (cosim.checkpoint), or starts over when it has none.

    `grid` (dotted key -> values) goes over the file's `sweep.grid` key by key; `overrides` apply to
    every point, under the grid. The table, in grid order (index `point`), has the swept keys as
    columns (values as the validated scenario holds them: `5e6` -> 5000000.0; `compare`, the entry's
    label, last when the scenario has a `compare:` list), then the columns of
    `Result.summary`, then `run_dir`; `table.attrs["dir"]` is the sweep folder, `attrs["keys"]` the
    swept keys.

    `workers`: processes (local) or tasks in flight (ray); default min(points, CPUs here), or all
    points on a cluster. `address`: a running Ray cluster (backend "ray"); without it a local Ray
    is started (ports on 127.0.0.1, no dashboard) and shut down afterwards.
    A point that fails at run time does not stop the others: they finish, then SweepError carries
    the failures and the finished rows. Bad input found before any run is a ScenarioError.
    """
    keys, points, scenarios = points_of(scenario, grid, overrides)
    if backend not in BACKENDS:
        raise ScenarioError([f"backend: unknown (given {backend!r}); allowed: {', '.join(BACKENDS)}"])
    workers = _workers(workers, len(points), cluster=backend == "ray" and bool(address))
    if backend == "ray":
        _import_ray(local=not address)  # refuse before anything is created when Ray is missing
    first = scenarios[0]
    raws = [sc.model_dump(mode="json") for sc in scenarios]  # what each worker runs: the validated point
    budget_s = _budget_s(scenario, overrides)
    if resume is None:
        out = unique_dir(Path(first.outputs.dir) / first.name, f"sweep-{time.strftime('%Y%m%d-%H%M%S')}")
        (out / POINTS_FILE).write_text(json.dumps(raws))
    else:
        out = _resumable(Path(resume), raws, backend)
    show = first.outputs.progress if progress is None else progress

    values = [{k: point[k] if k == COMPARE_KEY else _resolved(raw, k, point[k]) for k in keys}
              for point, raw in zip(points, raws)]
    csv = _Appender(out / "sweep.csv")
    rows: dict[int, dict] = _finished_rows(out) if resume is not None else {}
    if rows:
        csv.header = list(pd.read_csv(out / "sweep.csv", nrows=0).columns[1:])
    failures: list[tuple[int, str, list[str]]] = []
    bar = _bar(len(points), first.name, show)

    def finished(i: int, outcome: tuple) -> None:
        status, *rest = outcome
        if status == "ok":
            summary, run_dir = rest
            rows[i] = {**values[i], **{k: v for k, v in summary.items() if k not in keys},
                       **(at_budget(Path(run_dir), budget_s) if budget_s is not None else {}), "run_dir": run_dir}
            csv.append(i, rows[i])
        else:
            failures.append((i, status, rest[0]))
        bar(_label(values[i]))

    try:
        if backend == "local":
            todo = [i for i in range(len(raws)) if i not in rows]
            _run_local([raws[i] for i in todo], workers, lambda j, outcome: finished(todo[j], outcome),
                       [_point_files(out, i) for i in todo])
        else:
            _run_ray(raws, workers, address, out, finished)
    except ScenarioError:  # no cluster at that address: nothing ran, leave no folder
        if resume is None and {p.name for p in out.iterdir()} <= {POINTS_FILE}:
            (out / POINTS_FILE).unlink(missing_ok=True)
            out.rmdir()
        raise
    except KeyboardInterrupt:   # the workers were stopped; the points that finished are kept
        table = pd.DataFrame([rows[i] for i in sorted(rows)], index=pd.Index(sorted(rows), name="point"))
        if rows:
            write_atomic(out / "sweep.csv", table.to_csv(index_label="point"))
        raise BatchInterrupted("sweep", len(rows), len(points), out / "sweep.csv" if rows else None) from None
    finally:
        bar(None)

    table = pd.DataFrame([rows[i] for i in sorted(rows)], index=pd.Index(sorted(rows), name="point"))
    if rows:
        write_atomic(out / "sweep.csv", table.to_csv(index_label="point"))
        plot_sweep(table, keys, out / "sweep.png", title=f"{first.name}: sweep of {len(points)} runs")
        if first.outputs.report:
            from .report import write_report

            write_report(out)
    table.attrs["dir"], table.attrs["keys"] = out, keys
    if not failures and len(rows) == len(points):   # every point done: nothing left to resume
        shutil.rmtree(out / "running", ignore_errors=True)
    if failures:
        lines = [f"sweep point {i} ({_label(values[i])}): {line}" for i, _, msg in sorted(failures) for line in msg]
        raise SweepError(lines, table, bad_input=all(status == "bad" for _, status, _ in failures))
    return table


# --- the grid -------------------------------------------------------------------------------------

def points_of(scenario, grid: dict[str, list] | None = None,
              overrides: dict[str, Any] | None = None) -> tuple[list[str], list[dict], list]:
    """The swept keys, the points (key -> value as given) in grid order and each point's validated
    Scenario, all checked before any run; every problem at once as one ScenarioError."""
    raw = read_raw(scenario)
    if not isinstance(raw, dict):
        raise ScenarioError([f"(scenario): expected a mapping of fields, got {type(raw).__name__}"])
    raw = apply_overrides(raw, overrides)
    try:
        in_file = SweepConfig.model_validate(raw.get("sweep") or {}).grid
    except ValidationError as err:
        raise ScenarioError(_problems(err, ("sweep",))) from None
    try:
        merged = SweepConfig.model_validate({"grid": {**in_file, **(grid or {})}}).grid
    except ValidationError as err:
        raise ScenarioError([p.replace("sweep.grid", "grid", 1) for p in _problems(err, ("sweep",))]) from None
    if not merged:
        raise ScenarioError(["sweep.grid: no points (given an empty grid); allowed: a sweep: {grid: {<dotted key>: "
                             "[values, ...]}} block in the scenario, or --grid KEY=V1,V2"])
    keys = list(merged)
    overlapping = [f"sweep.grid.{b}: lies inside sweep.grid.{a} (given both); allowed: one of them"
                   for a in keys for b in keys if b.startswith(a + ".")]
    if overlapping:
        raise ScenarioError(overlapping)
    if COMPARE_KEY in keys:
        raise ScenarioError([f"sweep.grid.{COMPARE_KEY}: not a setting to sweep (given {merged[COMPARE_KEY]!r}); "
                             "allowed: a compare: list in the scenario, whose entries then run at every point"])
    base = {k: v for k, v in raw.items() if k != "sweep"}  # each run folder holds a one-point scenario
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(merged[k] for k in keys))]
    scenarios = _loaded(base, keys, points)
    if not base.get("compare"):
        return keys, points, [sc for [(_, sc)] in scenarios]
    return keys + [COMPARE_KEY], [{**point, COMPARE_KEY: label} for point, entries in zip(points, scenarios)
                                  for label, _ in entries], [sc for entries in scenarios for _, sc in entries]


#: The key of a sweep's table that names the compare entry a run is (a scenario with a `compare:` list).
COMPARE_KEY = "compare"


def _point(raw: dict) -> list[tuple[str | None, Any]]:
    """The runs of one point: (label, Scenario) for each compare entry of a scenario with a
    `compare:` list (cosim.compare builds and validates them), else (None, the point's Scenario)."""
    if not raw.get("compare"):
        return [(None, validate(raw))]
    from .compare import entries_of

    return entries_of(raw)


def _loaded(base: dict, keys: list[str], points: list[dict]) -> list[list[tuple[str | None, Any]]]:
    """Each point's runs (`_point`), validated. A problem that every point with a key's value has is named by
    that key and value (`sweep.grid.scheme.cut_layer=9: scheme.cut_layer: ...`); one every point has
    is named once, as it is; any other by its point (`sweep point (model.source='tiny-bert',
    scheme.cut_layer=5): ...`)."""
    def owner(line: str) -> str | None:
        path = line.split(":", 1)[0]
        return next((k for k in keys if path == k or path.startswith(k + ".") or k.startswith(path + ".")), None)

    scenarios, failed = [], {}
    for i, point in enumerate(points):
        raw, lines = base, []
        for key, value in point.items():  # one key at a time: a bad list index does not hide the others
            try:
                raw = apply_overrides(raw, {key: value})
            except ScenarioError as err:
                lines += err.problems
        try:
            scenarios.append(_point(raw))
        except ScenarioError as err:
            lines += err.problems
        if lines:
            failed[i] = lines
    if not failed:
        return scenarios

    def tag(point: dict, line: str) -> tuple:
        key = owner(line)
        return (line, key, repr(point[key]) if key else None)

    with_value = Counter((k, repr(v)) for point in points for k, v in point.items())
    seen = Counter(tag(points[i], line) for i, lines in failed.items() for line in dict.fromkeys(lines))
    problems: list[str] = []
    for i, lines in failed.items():
        for line in lines:
            t = tag(points[i], line)
            key = t[1]
            if key is not None and seen[t] == with_value[(key, t[2])]:
                text = f"sweep.grid.{key}={points[i][key]!r}: {line}"
            elif key is None and seen[t] == len(points):
                text = line
            else:
                text = f"sweep point ({_label(points[i], repr)}): {line}"
            if text not in problems:
                problems.append(text)
    raise ScenarioError(problems)


def _budget_s(scenario, overrides: dict[str, Any] | None) -> float | None:
    """The file's `sweep.budget_s` (checked by `points_of` before this is asked)."""
    raw = apply_overrides(read_raw(scenario), overrides)
    return SweepConfig.model_validate(raw.get("sweep") or {}).budget_s


def at_budget(run_dir: Path, budget_s: float) -> dict:
    """A run's held-out quality at simulated time `budget_s`: that of its last round closed by then
    (round 0, the initial model, at t = 0). A stop rule changes nothing before it, so this is what
    the same run under `stop.sim_time_s: budget_s` reports as final, without running it again."""
    rounds = pd.read_csv(run_dir / "rounds.csv")
    closed = rounds[rounds.sim_time_s <= budget_s]
    if closed.empty:
        return {"budget_s": budget_s, "rounds_at_budget": math.nan, "accuracy_at_budget": math.nan,
                "perplexity_at_budget": math.nan}
    last = closed.iloc[-1]
    return {"budget_s": budget_s, "rounds_at_budget": int(last["round"]),
            "accuracy_at_budget": float(last.get("accuracy", math.nan)),
            "perplexity_at_budget": float(last.get("perplexity", math.nan))}


def parse_grid(text: str) -> tuple[str, list]:
    """`key.path=V1,V2` from the command line; each value is read as YAML, like --set values
    (`seed=1,2,3`, `scheme.name=fedavg,splitlora`, `devices.1.mobility.speed_mps=[5,10],[20,30]`)."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip():
        raise ScenarioError([f"--grid {text!r}: expected key.path=V1,V2,..."])
    parsed = safe_yaml(f"[{values}]", f"--grid {key.strip()} (comma-separated YAML values)")
    if not parsed:
        raise ScenarioError([f"--grid {text!r}: no values given; expected key.path=V1,V2,..."])
    return key.strip(), parsed


def _resolved(raw: dict, key: str, given):
    """The point's value as the validated scenario holds it (`'5e6'` -> 5000000.0), as a scalar or,
    for a list or mapping, its JSON text, so the table's cells compare and group."""
    node: Any = raw
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = given
            break
    return json.dumps(node) if isinstance(node, (list, dict)) else node


def _label(values: dict, show=str) -> str:
    return ", ".join(f"{k}={show(v)}" for k, v in values.items())


def _workers(workers: int | None, points: int, cluster: bool = False) -> int:
    """Processes, or Ray tasks in flight: by default one per CPU here, or every point on a cluster
    (whose scheduler knows its CPUs)."""
    if workers is None:
        return points if cluster else max(1, min(points, os.cpu_count() or 1))
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ScenarioError([f"workers: must be a whole number >= 1 (given {workers!r})"])
    return workers


# --- one point, in its own process ----------------------------------------------------------------

def run_point(raw: dict, cwd: str, note: str | None = None) -> tuple:
    """Run one point (progress bars and per-run plots off: the sweep's plot is the figure) and
    report, never raise (exceptions would have to cross a process boundary): ("ok", summary,
    run_dir), ("bad", problem lines) for bad input found only now, or ("error", traceback lines).
    `note`: a file that holds the point's run folder while it runs; a point whose noted folder has
    a checkpoint resumes from it (`sweep(..., resume=)`)."""
    if os.path.isdir(cwd):  # the driver's folder: relative paths in the scenario (outputs.dir, traces) hold
        os.chdir(cwd)       # on a cluster node only through a shared file system mounted at the same path
    from .checkpoint import FILE
    from .run import run  # torch.set_num_threads(runtime.torch_threads) happens in run's build step

    started = None if note is None else (lambda run_dir: Path(note).write_text(str(run_dir)))
    noted = Path(Path(note).read_text()) if note is not None and Path(note).is_file() else None
    try:
        if noted is not None and (noted / FILE).is_file():
            result = run(resume=noted, progress=False, plots=False, started=started)
        else:
            result = run(raw, progress=False, plots=False, started=started)
    except RunInterrupted as stop:   # the sweep was interrupted: this point's folder is written up to there
        if parent_gone():
            os._exit(EXIT_INTERRUPTED)   # nobody to report to
        return ("interrupted", [str(stop)])
    except ScenarioError as err:
        return ("bad", list(err.problems))
    except FileNotFoundError as err:
        return ("bad", [str(err)])
    except Exception:  # noqa: BLE001 - reported with its traceback once the other points are done
        return ("error", traceback.format_exc().rstrip().splitlines())
    return ("ok", result.summary, str(result.dir))


def _run_local(raws: list[dict], workers: int, finished, notes: list[str] | None = None) -> None:
    """Each point in a fresh spawned process (no state of one run, such as caches or a shared SUMO
    instance, reaches the next), at most `workers` at once. A loop of our own rather than
    ProcessPoolExecutor(max_tasks_per_child=1): on CPython 3.11 that pool's manager thread spawns a
    replacement worker while the pool shuts down, which printed a traceback when a sweep was
    interrupted."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    waiting = list(enumerate(zip(raws, notes or [None] * len(raws))))
    running: dict[int, tuple] = {}   # point -> (process, the end its outcome arrives on)

    def start() -> None:
        while waiting and len(running) < workers:
            i, (raw, note) = waiting.pop(0)
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_point_process, args=(send, raw, os.getcwd(), note),
                                      name=f"cosim-sweep-point-{i}")
            process.start()
            send.close()   # the child holds the only sending end: its death reads as EOF here
            running[i] = (process, receive)

    def collect(timeout: float | None) -> None:
        ready = set(wait([end for _, end in running.values()], timeout))
        for i in sorted(i for i, (_, end) in running.items() if end in ready):
            process, end = running.pop(i)
            try:
                outcome = end.recv()
            except EOFError:   # it died before it could report
                outcome = None
            end.close()
            process.join()
            finished(i, outcome or ("error", [f"the worker process died (exit code {process.exitcode})"]))

    try:
        start()
        while running:
            collect(None)
            start()
    except KeyboardInterrupt:   # stop the workers: each running point stops as an interrupted run
        waiting.clear()
        stop_workers([process.pid for process, _ in running.values()])
        try:   # the points that finish meanwhile are kept; a second interrupt stops waiting
            deadline = time.monotonic() + STOP_GRACE_S
            while running and time.monotonic() < deadline:
                collect(deadline - time.monotonic())
        finally:
            _kill(running)
        raise
    except BaseException:
        _kill(running)
        raise


def _point_process(send, raw: dict, cwd: str, note: str | None) -> None:
    """A sweep worker's whole life: one point, its outcome sent to the parent."""
    worker_init()
    outcome = run_point(raw, cwd, note)
    send.send(outcome)
    send.close()


def _kill(running: dict[int, tuple]) -> None:
    """End the workers still running (after the grace period, or when the sweep itself failed)."""
    for process, end in running.values():
        if process.is_alive():
            process.kill()
        process.join()
        end.close()
    running.clear()


def _import_ray(local: bool):
    """Ray (cosim.learn.workers.import_ray), or a clear error naming the extra when it is missing."""
    try:
        return import_ray(local)
    except ImportError:
        raise ScenarioError(["backend: 'ray' needs Ray, which is not installed (given backend='ray'); "
                             "allowed: pip install 'cosim[ray]', or backend 'local'"]) from None


def _run_ray(raws: list[dict], workers: int, address: str | None, out: Path, finished) -> None:
    """One Ray task per point (1 CPU, a fresh worker each: max_calls=1), at most `workers` in flight."""

    _import_ray(local=not address)
    temp_dir = None if address else ray_temp_dir(out)
    throwaway = temp_dir if temp_dir is not None and not temp_dir.is_relative_to(out.resolve()) else None
    try:
        ray, started = start_ray(address, workers, temp_dir)
    except ConnectionError as err:
        raise ScenarioError([f"address: no Ray cluster answered at {address!r} ({err}); allowed: the address of a "
                             "running cluster's head (`ray start --head` prints it), or no address for a local "
                             "Ray"]) from None
    try:
        task = ray.remote(num_cpus=1, max_calls=1)(run_point)
        queue, pending, cwd = list(enumerate(raws)), {}, os.getcwd()
        while queue or pending:
            while queue and len(pending) < workers:
                i, raw = queue.pop(0)
                pending[task.remote(raw, cwd)] = i
            try:
                done, _ = ray.wait(list(pending), num_returns=1)
            except KeyboardInterrupt:   # the running tasks are cancelled; ray.shutdown stops a local Ray's workers
                for ref in pending:
                    ray.cancel(ref)
                raise
            for ref in done:
                i = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - the worker died (e.g. out of memory)
                    outcome = ("error", [f"the Ray task failed: {type(err).__name__}: {err}"])
                finished(i, outcome)
    finally:
        if started:
            ray.shutdown()
        if throwaway is not None:
            shutil.rmtree(throwaway, ignore_errors=True)


# --- resuming a sweep ------------------------------------------------------------------------------

#: The validated points of a sweep, in its folder: what a resumed sweep must be given again.
POINTS_FILE = "points.json"


def _resumable(out: Path, raws: list[dict], backend: str) -> Path:
    """The folder of the sweep to resume, once it is known to be this sweep."""
    if backend != "local":
        raise ScenarioError([f"sweep resume: backend {backend!r}; allowed: local"])
    if not (out / POINTS_FILE).is_file():
        raise ScenarioError([f"sweep resume: {out} is not a sweep folder (no {POINTS_FILE})"])
    if json.loads((out / POINTS_FILE).read_text()) != json.loads(json.dumps(raws)):
        raise ScenarioError([f"sweep resume: {out} is a sweep of other points; give the scenario, grid and "
                             "overrides it was started with"])
    return out


def _finished_rows(out: Path) -> dict[int, dict]:
    """The rows of sweep.csv (points that finished), by point."""
    if not (out / "sweep.csv").is_file():
        return {}
    table = pd.read_csv(out / "sweep.csv", index_col="point")
    return {int(i): row.dropna().to_dict() for i, row in table.iterrows()}


def _point_files(out: Path, i: int) -> str:
    """Where point i notes its run folder while it runs."""
    (out / "running").mkdir(exist_ok=True)
    return str(out / "running" / f"point-{i}.txt")


# --- output ---------------------------------------------------------------------------------------

class _Appender:
    """sweep.csv while the sweep runs: one row appended per finished run, in finishing order, under
    the header of the first (a column only later runs have waits for the final rewrite)."""

    def __init__(self, path: Path):
        self.path, self.header = path, None
        self.frames: list[pd.DataFrame] = []

    def append(self, point: int, row: dict) -> None:
        """Rewritten whole (`write_atomic`): a kill leaves the previous rows or these, never a torn line."""
        frame = pd.DataFrame([row], index=pd.Index([point], name="point"))
        if self.header is None:
            self.header = list(frame.columns)
        self.frames.append(frame.reindex(columns=self.header))
        write_atomic(self.path, pd.concat(self.frames).to_csv(index_label="point"))


def _bar(total: int, name: str, show: bool):
    """A tqdm bar over finished runs; `bar(None)` closes it."""
    if not show:
        return lambda label: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{name} sweep", unit="run", dynamic_ncols=True)

    def update(label):
        if label is None:
            bar.close()
            return
        bar.update(1)
        bar.set_postfix_str(label)

    return update


def plot_sweep(table: pd.DataFrame, keys: list[str], path, title=None) -> Path:
    """Final accuracy (perplexity for a causal LM), the same at the sweep's `budget_s` when it has
    one (a middle panel), and simulated time against the first swept key other than `seed`, one line
    per combination of the other keys; when `seed` is swept, the mean over seeds with a min-max band."""
    from matplotlib.ticker import EngFormatter, NullLocator

    from .plots import FIG_WIDTH_IN, SERIES_COLORS, _column, _log_axis, _new_figure, _save, _time_unit, _use_log

    x_key = next((k for k in keys if k != "seed"), keys[0])
    over_seeds = "seed" in keys and x_key != "seed"
    groups = [k for k in keys if k not in (x_key, "seed")]
    ppl = _column(table, "final_perplexity")
    quality, q_label = (ppl, "final perplexity (held-out)") if ppl.notna().any() else \
        (_column(table, "final_accuracy") * 100.0, "final accuracy (%)")
    div, unit = _time_unit(np.nanmax(_column(table, "sim_time_s").to_numpy(), initial=0.0))
    data = pd.DataFrame({"x": table[x_key], "quality": quality, "time": _column(table, "sim_time_s") / div})
    panels = [("quality", q_label, q_label.split(" (")[0].capitalize())]
    if "budget_s" in table.columns and table["budget_s"].notna().any():
        budget = _column(table, "perplexity_at_budget" if "perplexity" in q_label else "accuracy_at_budget")
        data["budget"] = budget if "perplexity" in q_label else budget * 100.0
        t_budget = float(table["budget_s"].dropna().iloc[0])
        panels.append(("budget", q_label.replace("final ", f"at t = {t_budget:g} s: "),
                       f"{panels[0][2].removeprefix('Final ').capitalize()} within a {t_budget:g} s budget"))
    panels.append(("time", f"simulated time ({unit})", "Simulated time to finish"))
    for k in groups:
        data[k] = table[k].map(_text)  # text groups, so null values (lora: null) match too

    x_num = pd.to_numeric(data.x, errors="coerce")
    numeric = x_num.notna().all() and not pd.api.types.is_bool_dtype(data.x)
    if not numeric:
        data["x"] = data.x.map(_text)
    order = list(dict.fromkeys(data.x))  # grid order, for categories
    data["xpos"] = x_num if numeric else data.x.map(order.index).astype(float)

    fig = _new_figure(FIG_WIDTH_IN * 0.55 * len(panels), 4.3)
    axes = fig.subplots(1, len(panels))
    combos = list(dict.fromkeys(map(tuple, data[groups].itertuples(index=False)))) if groups else [()]
    for ax, (column, ylabel, heading) in zip(axes, panels):
        for c, combo in enumerate(combos):
            sel = data if not groups else data[(data[groups] == pd.Series(combo, index=groups)).all(axis=1)]
            stats = sel.groupby("xpos", sort=True)[column].agg(["mean", "min", "max"])
            color = SERIES_COLORS[c % len(SERIES_COLORS)]
            label = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(groups, combo)) or None
            # markers shrink line by line, so lines that coincide (e.g. equal accuracy) all stay visible;
            # categories (scheme names) get markers only: nothing lies between them
            ax.plot(stats.index, stats["mean"], ls="-" if numeric else "none", marker="osD^v"[c % 5],
                    ms=max(3.0, 8.0 - 1.5 * c), lw=1.5, color=color, label=label)
            if over_seeds and (stats["max"] > stats["min"]).any():
                ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, lw=0)
        ax.set_ylabel(ylabel + (" — mean, min-max over seeds" if over_seeds else ""), fontsize=9)
        ax.set_title(heading, fontsize=10)
        if column in ("quality", "budget") and "accuracy" in q_label:
            ax.set_ylim(0, 100)
        elif _use_log(data[column].to_numpy(dtype=float)):
            _log_axis(ax)
        ax.set_xlabel(x_key)
        if numeric:
            if _log_x(data.xpos):
                ax.set_xscale("log")
            if np.nanmax(np.abs(data.xpos.to_numpy(dtype=float))) >= 1e4:
                ax.xaxis.set_major_formatter(EngFormatter(unit=_unit_of(x_key)))
            if data.xpos.nunique() <= 12:  # the swept values themselves, no others
                ax.set_xticks(sorted(set(data.xpos)))
                ax.xaxis.set_minor_locator(NullLocator())
        else:
            ax.set_xticks(range(len(order)), order, rotation=30 if len(order) > 4 else 0)
            ax.set_xlim(-0.5, len(order) - 0.5)
        ax.grid(True, alpha=0.3)
    if groups:  # the same lines in every panel: one legend, below them, where it hides none
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=min(len(combos), 3),
                   fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _text(value) -> str:
    """A swept value as a label: YAML's `null` for a missing one."""
    return "null" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _log_x(x: pd.Series) -> bool:
    """A log axis for swept quantities spanning a decade or more (bandwidths, rates), not for small
    counts (cut layers, client numbers) unless they span two."""
    v = x.to_numpy(dtype=float)
    if not (v > 0).all():
        return False
    ratio = v.max() / v.min()
    return ratio >= 100 or (ratio >= 10 and (v.max() >= 1e3 or not np.all(v == np.round(v))))


def _unit_of(key: str) -> str:
    """The unit named by a key's suffix (`bandwidth_hz` -> Hz), for engineering tick labels."""
    suffix = key.rsplit("_", 1)[-1].lower()
    return {"hz": "Hz", "bps": "bit/s", "s": "s", "m": "m", "w": "W", "j": "J"}.get(suffix, "")


__all__ = ["BACKENDS", "COMPARE_KEY", "SHOWN", "SweepError", "parse_grid", "plot_sweep", "points_of", "run_point", "sweep"]
