"""One self-contained HTML page per results folder, to read, mail or archive: `report.html`.

A run folder's page holds the headline numbers (summary.json), the per-round table (rounds.csv),
the per-node table (nodes.csv), the controller's decisions (decisions.csv, when it decided), the
resolved scenario (scenario.yaml) and every figure the folder has (cosim.plots), embedded as
base64 PNG. A compare or sweep folder's page holds its table (comparison.csv / sweep.csv), its
figure and a link to each run's own page. Nothing is fetched: no script, no stylesheet, font or
image from the network, so the page reads the same offline and years later. Tables, not
figures, are the record; a figure is a view of them.

`write_report(folder)` writes `folder/report.html` whole or not at all (`results.write_atomic`);
`cosim run` writes one at the end of every run unless `outputs.report: false`, `cosim compare` and
`cosim sweep` one for their folder, and `cosim report FOLDER` (re)writes one, drawing first the
figures a run folder lacks (as `cosim plot` would).
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .results import DECISION_COLUMNS, write_atomic

FILE = "report.html"
#: A table longer than this shows its first rows and says where the rest is (a 10,000-device run's
#: nodes.csv would make a page no browser scrolls comfortably).
MAX_TABLE_ROWS = 200
#: Figures of a run folder in page order, with their captions (file names as cosim.plots.PLOTS).
RUN_FIGURES = {
    "delay_accuracy.png": "Accuracy (or perplexity) and training loss over simulated time",
    "timeline.png": "What every node did when: compute, uploads, downloads, faults",
    "memory.png": "Peak memory per node",
    "energy.png": "Energy per node (compute, radio, idle)",
    "tracks.png": "Where the moving devices went and the link rate their transfers achieved",
    "decisions.png": "What the controller decided, per device, over simulated time",
}
COMPARE_FIGURES = {"comparison.png": "Accuracy (or perplexity) over simulated time per entry; peak memory per entry"}
SWEEP_FIGURES = {"sweep.png": "The swept settings against the headline numbers"}
#: Summary keys shown in a compare or sweep table (the CSV keeps every column).
TABLE_COLUMNS = ("final_accuracy", "final_perplexity", "time_to_target_s", "sim_time_s", "rounds",
                 "device_peak_memory_bytes", "server_peak_memory_bytes", "device_flops", "bytes_up", "bytes_down",
                 "energy_j", "stop_reason")
KIB = 1024

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:#1a1a1a}
header{background:#0b3954;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85}nav{padding:8px 28px;background:#eef2f5;border-bottom:1px solid #d5dde3}
nav a{margin-right:16px;color:#0b3954;text-decoration:none}main{padding:4px 28px 40px;max-width:1400px}
h2{border-bottom:2px solid #0b3954;padding-bottom:3px;margin-top:30px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #d5dde3;padding:3px 8px;white-space:nowrap}
th{background:#eef2f5;text-align:left;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f8fafb}.scroll{max-height:560px;overflow:auto;display:inline-block;max-width:100%}
figure{margin:14px 0 24px}figure img{max-width:100%;height:auto;border:1px solid #d5dde3}
figcaption{color:#555;font-size:13px}pre{background:#f6f8fa;border:1px solid #d5dde3;padding:10px;overflow:auto;
font-size:12.5px;max-height:640px}.note{color:#666;font-size:13px}dl.kv{display:grid;grid-template-columns:max-content auto;
gap:2px 18px;font-size:14px}dl.kv dt{color:#555}dl.kv dd{margin:0;font-variant-numeric:tabular-nums}
"""


class ReportError(ValueError):
    """The folder is not one cosim wrote (no run, compare or sweep tables in it)."""


def kind_of(folder: Path) -> str | None:
    """'run', 'compare' or 'sweep' for a folder cosim wrote, else None."""
    folder = Path(folder)
    if (folder / "comparison.csv").is_file() or (folder / "entries.json").is_file():
        return "compare"
    if (folder / "sweep.csv").is_file() or (folder / "points.json").is_file():
        return "sweep"
    if any((folder / f).is_file() for f in ("rounds.csv", "summary.json", "scenario.yaml")):
        return "run"
    return None


def write_report(folder, draw_missing: bool = False) -> Path:
    """Write `folder/report.html` for a run, compare or sweep folder and return its path.

    `draw_missing`: draw first the figures a run folder lacks but has the tables for (`cosim report`);
    at the end of a run the page shows the figures the run drew (outputs.plots) and no others."""
    folder = Path(folder)
    kind = kind_of(folder)
    if kind is None:
        raise ReportError(f"report: {folder} is not a folder cosim wrote (no rounds.csv, summary.json, "
                          "comparison.csv or sweep.csv in it); allowed: a run, compare or sweep folder")
    if kind == "run":
        if draw_missing:
            from .plots import PLOTS, plot_run

            missing = [name for name, png in PLOTS.items() if not (folder / png).is_file()]
            if missing:
                plot_run(folder, which=missing)
        page = _run_page(folder)
    else:
        page = _batch_page(folder, kind)
    path = folder / FILE
    write_atomic(path, page)
    return path


# --- a run folder ---------------------------------------------------------------------------------

def _run_page(folder: Path) -> str:
    summary = _json(folder / "summary.json")
    title = " · ".join(str(summary[k]) for k in ("name", "scheme") if summary.get(k)) or folder.name
    rounds, nodes = _csv(folder / "rounds.csv"), _csv(folder / "nodes.csv")
    decisions = _csv(folder / "decisions.csv")
    scenario = (folder / "scenario.yaml").read_text() if (folder / "scenario.yaml").is_file() else None
    sections = [
        ("summary", "Summary", _summary(summary) if summary else _missing("summary.json")),
        ("figures", "Figures", _figures(folder, RUN_FIGURES)),
        ("rounds", "Rounds", _table(rounds, "rounds.csv") if rounds is not None else _missing("rounds.csv")),
        ("nodes", "Nodes", _table(nodes, "nodes.csv") if nodes is not None else _missing("nodes.csv")),
    ]
    if decisions is not None:
        sections.append(("decisions", "Decisions", _table(decisions[[c for c in DECISION_COLUMNS
                                                                       if c in decisions.columns]], "decisions.csv")))
    sections.append(("scenario", "Scenario (resolved)",
                     f"<pre>{html.escape(scenario)}</pre>" if scenario is not None else _missing("scenario.yaml")))
    sections.append(("files", "Files", _files(folder)))
    subtitle = (f"run folder {html.escape(str(folder))} · seed {summary.get('seed', '—')} · "
                f"stopped: {html.escape(str(summary.get('stop_reason', '—')))}")
    return _page(title, subtitle, sections)


def _summary(summary: dict) -> str:
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(_readable(k, v))}</dd>" for k, v in summary.items())
    return f'<dl class="kv">{rows}</dl>'


def _readable(key: str, value) -> str:
    """A summary value with a human unit beside the exact one (bytes in MiB, FLOPs in GFLOP, …)."""
    text = _cell(value)
    if not _numeric(value) or not math.isfinite(value):
        return text
    if key.endswith("_bytes") or key in ("bytes_up", "bytes_down"):
        return f"{text} ({_bytes(value)})"
    if key.endswith("flops"):
        return f"{text} ({value / 1e9:,.3g} GFLOP)"
    if key.endswith("_s") and value >= 120:
        return f"{text} ({value / 60:,.3g} min)"
    return text


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < KIB or unit == "TiB":
            return f"{n:,.3g} {unit}"
        n /= KIB
    return f"{n} B"


# --- a compare or sweep folder --------------------------------------------------------------------

def _batch_page(folder: Path, kind: str) -> str:
    csv = "comparison.csv" if kind == "compare" else "sweep.csv"
    table = _csv(folder / csv)
    if kind == "compare":
        entries = _json(folder / "entries.json") or []
        first = entries[0]["scenario"] if entries else {}
        index, keys, figures = "label", [], COMPARE_FIGURES
        subtitle = f"compare of {len(entries)} entries: {', '.join(html.escape(str(e['label'])) for e in entries)}"
    else:
        points = _json(folder / "points.json") or []
        first = points[0] if points else {}
        index, figures = "point", SWEEP_FIGURES
        keys = _swept_keys(table)
        subtitle = f"sweep of {len(points)} points over {', '.join(html.escape(k) for k in keys) or '—'}"
    title = f"{first.get('name', folder.parent.name)} · {kind}"
    if table is None:
        body = _missing(csv) + '<p class="note">no entry has finished yet.</p>'
    else:
        shown = [index] + keys + [c for c in TABLE_COLUMNS if c in table.columns]
        view = table[[c for c in shown if c in table.columns]].copy()
        links = [_run_link(folder, run_dir) for run_dir in table.get("run_dir", pd.Series([None] * len(table)))]
        body = _table(view, csv, links=links)
    sections = [("table", "Comparison" if kind == "compare" else "Sweep", body),
                ("figures", "Figures", _figures(folder, figures))]
    if kind == "compare" and entries:   # what tells the entries apart: each one's scheme block
        blocks = "".join(f"<details open><summary>{html.escape(str(e['label']))}</summary>"
                         f"<pre>{html.escape(_yaml(e['scenario'].get('scheme', {})))}</pre></details>" for e in entries)
        sections.append(("entries", "Entries (scheme blocks)", blocks))
    if first:
        sections.append(("scenario", "Scenario (first " + ("entry" if kind == "compare" else "point") + ", resolved)",
                         f"<details><summary>show</summary><pre>{html.escape(_yaml(first))}</pre></details>"))
    sections.append(("files", "Files", _files(folder)))
    return _page(title, f"{subtitle} · folder {html.escape(str(folder))}", sections)


def _swept_keys(table: pd.DataFrame | None) -> list[str]:
    """The swept keys of a sweep.csv: its columns after `point` and before the summary's first, `name`."""
    if table is None:
        return []
    columns = [c for c in table.columns if c != "point"]
    return columns[:columns.index("name")] if "name" in columns else []


def _run_link(folder: Path, run_dir) -> str | None:
    """A relative link from `folder` to a run's page (or its folder when it has none): the runs of a
    compare or sweep lie beside its folder, under results/<name>/."""
    if not isinstance(run_dir, str) or not run_dir:
        return None
    given = Path(run_dir)
    for candidate in (given, folder.parent / given.name, folder / given.name):
        if candidate.is_dir():
            target = candidate / FILE if (candidate / FILE).is_file() else candidate
            return os.path.relpath(target, folder)
    return None


# --- building blocks ------------------------------------------------------------------------------

def _page(title: str, subtitle: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{sid}">{html.escape(name.split(" (")[0].split(":")[0])}</a>'
                  for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{name}</h2>{content}</section>' for sid, name, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} — cosim report</title><style>{_STYLE}</style></head>\n"
            f"<body><header><h1>{html.escape(title)}</h1><p>{subtitle}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>\n")


def _figures(folder: Path, figures: dict[str, str]) -> str:
    shown = []
    for png, caption in figures.items():
        path = folder / png
        if not path.is_file():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        shown.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{html.escape(caption)} ({html.escape(png)})</figcaption></figure>")
    if not shown:
        return ('<p class="note">no figures in this folder (outputs.plots was empty, or the run drew none); '
                "<code>cosim report FOLDER</code> draws them.</p>")
    return "".join(shown)


def _table(df: pd.DataFrame, source: str, links: list[str | None] | None = None) -> str:
    """An HTML table of `df` (its first MAX_TABLE_ROWS rows), numbers right-aligned; `links`: a link
    per row (a run's page), shown in a first column."""
    head = ("<th>run</th>" if links else "") + "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for i, values in enumerate(df.head(MAX_TABLE_ROWS).itertuples(index=False)):
        cells = "".join(f'<td class="n">{_cell(v)}</td>' if _numeric(v) else f"<td>{html.escape(_cell(v))}</td>"
                        for v in values)
        if links:   # first, where a wide table does not scroll it out of sight
            link = links[i]
            cells = (f'<td><a href="{html.escape(link)}">open</a></td>' if link else "<td>—</td>") + cells
        rows.append(f"<tr>{cells}</tr>")
    note = (f'<p class="note">the first {MAX_TABLE_ROWS} of {len(df):,} rows; every row is in '
            f'<a href="{source}">{source}</a>.</p>' if len(df) > MAX_TABLE_ROWS else
            f'<p class="note">{len(df):,} rows, from <a href="{source}">{source}</a>.</p>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{note}'


def _numeric(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _cell(v) -> str:
    """A value as the page shows it: integers (and whole floats, e.g. bytes read back as floats) with
    thousands separators, other floats to 6 significant digits, missing as a dash."""
    if v is None or (_numeric(v) and math.isnan(v)):
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return str(v)
        if float(v).is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.6g}" if abs(v) < 1e15 else f"{v:.4g}"
    return str(v)


def _files(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != FILE)
    items = "".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in names)
    return f'<p class="note">beside this page, in {html.escape(str(folder))}:</p><ul>{items}</ul>'


def _missing(name: str) -> str:
    return f'<p class="note">{html.escape(name)} is not in this folder.</p>'


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.EmptyDataError):   # an empty or torn file: the page says it is missing
        return None


def _json(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (ValueError, OSError):
        return None


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


__all__ = ["FILE", "ReportError", "kind_of", "write_report"]
