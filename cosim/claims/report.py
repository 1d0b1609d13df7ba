"""`cosim claims`: run every claims row (cosim.claims.CLAIMS) and write results/claims/claims.md,
claims.csv and one figure per row (figures/<key>.png). A row that fails to run is a row too: its
number says what went wrong, so the report never hides a claim."""
from __future__ import annotations

import csv
import io
import math
import textwrap
import time
import traceback
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..results import write_atomic
from . import CLAIMS, Outcome
from .runner import Runner

COLUMNS = ["scheme", "paper", "claim", "scenario", "test", "our_number", "shown", "why", "figure", "wall_s"]


def run_claims(out_dir="results/claims", *, quick: bool = False, only: list[str] | None = None,
               progress: bool = False, reuse: bool = False) -> list[dict]:
    """Measure the rows `only` (all when None) and write the report into `out_dir`; returns the rows.
    `reuse`: read back finished runs of the same scenario already in `out_dir`/runs (Runner)."""
    out = Path(out_dir)
    unknown = sorted(set(only or []) - set(CLAIMS))
    if unknown:
        raise KeyError(f"unknown claims rows {unknown}; known: {', '.join(CLAIMS)}")
    runner, rows = Runner(out, quick=quick, progress=progress, reuse=reuse), []
    for key, c in CLAIMS.items():
        if only and key not in only:
            continue
        t0 = time.monotonic()   # host time, reported only: how long the row took to measure
        try:
            outcome = c.measure(runner)
        except Exception as err:   # noqa: BLE001 - a row that cannot run is reported, not raised
            traceback.print_exc()
            outcome = Outcome(number=f"not measured: {type(err).__name__}: {err}"[:300], shown=False,
                              why="the scenario did not run")
        figure = _figure(c, outcome, out / "figures" / f"{key}.png", quick)
        rows.append({"scheme": key, "paper": c.paper, "claim": c.says, "scenario": c.scenario, "test": c.test,
                     "our_number": outcome.number, "shown": "shown" if outcome.shown else "not shown",
                     "why": outcome.why, "figure": figure, "wall_s": round(time.monotonic() - t0, 1)})
        if progress:
            print(f"{key}: {outcome.number} — {rows[-1]['shown']}", flush=True)
    _write(out, rows, quick, reused=runner.reused)
    return rows


def _write(out: Path, rows: list[dict], quick: bool, reused: list[str] = ()) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "claims.csv", buf.getvalue())
    mode = ("**quick**: every scenario shrunk to a tiny model (tiny-bert with MiniLM's 6 blocks), at most 3 rounds "
            "of 2 steps of batch 8 and 4 devices per group — it shows what each mechanism does to time, bytes, "
            "FLOPs and memory; accuracies of a tiny model say little" if quick else
            "**full**: every scenario as shipped (MiniLM, the scenario's rounds)")
    shown = sum(r["shown"] == "shown" for r in rows)
    lines = ["# The papers' claims, measured by cosim", "",
             f"Written by `cosim claims{' --quick' if quick else ''}` ({mode}). {shown} of {len(rows)} claims shown. "
             + ("Every number below was measured by this run" if not reused else
                "Every number below was measured by this report's runs (read back with `--reuse`: "
                + ", ".join(reused) + ")")
             + "; `claims.csv` has the same rows, `figures/` one figure "
             "per row.", "",
             "| scheme | paper | claim | our scenario | our number | shown? | why | figure |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["scheme"], r["paper"], r["claim"], f"`{r['scenario']}` (`{r['test']}`)", r["our_number"],
                 r["shown"], r["why"], f"[png]({r['figure']})" if r["figure"] else ""]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    write_atomic(out / "claims.md", "\n".join(lines) + "\n")


def _figure(c, outcome: Outcome, path: Path, quick: bool) -> str:
    """Draw the row's bars or curves; returns the figure's path relative to the report ('' if none)."""
    if not outcome.bars and not outcome.curves:
        return ""
    fig = Figure(figsize=(6.4, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if outcome.curves:
        for label, (x, y) in outcome.curves.items():
            ax.plot(x, y, marker="o", label=label)
        ax.set_xlabel(outcome.x_label)
        ax.set_ylabel(outcome.y_label)
        ax.legend(fontsize=8)
    else:
        labels, values = list(outcome.bars), [v if math.isfinite(v) else 0.0 for v in outcome.bars.values()]
        colors = ["#888888" if lab.startswith("paper") else "#3070b0" for lab in labels]
        bars = ax.bar(range(len(values)), values, color=colors)
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8)
        ax.set_xticks(range(len(values)), labels, fontsize=8, rotation=15 if len(labels) > 2 else 0)
        ax.set_ylabel(outcome.unit)
    verdict = "shown" if outcome.shown else "not shown"
    ax.set_title(f"{c.key}: {verdict}{' (quick)' if quick else ''}\n" + textwrap.fill(c.says, 90), fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return str(path.relative_to(path.parents[1]))
