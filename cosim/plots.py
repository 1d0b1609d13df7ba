"""Plots of one run or several: accuracy over simulated time, node timelines, memory, energy.

Every figure is read from the tables a run writes (DESIGN.md §6): ``rounds.csv``,
``events.parquet``, ``nodes.csv``, ``summary.json``. Figures are built on
``matplotlib.figure.Figure`` directly (Agg canvas, no pyplot), so nothing is registered in global
state and many runs can be plotted in one process without leaking figures.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

log = logging.getLogger(__name__)

__all__ = [
    "PLOTS",
    "plot_comparison",
    "plot_decisions",
    "plot_delay_accuracy",
    "plot_energy",
    "plot_epoch_delay",
    "plot_memory",
    "plot_run",
    "plot_tracks",
    "plot_timeline",
]

# --- event kinds (DESIGN.md §6, events.parquet `kind`) --------------------------------------
COMPUTE_KINDS = frozenset({"fwd", "bwd", "step", "compute", "train", "aggregate", "eval"})
TRANSFER_KINDS = frozenset({"upload", "download", "transfer", "activation", "gradient", "model"})
FAULT_MARKERS = ("outage", "drop", "fail", "disconnect")  # substrings of a failure kind
GLOBAL_NODE_NAMES = frozenset({"", "none", "nan", "all", "*", "medium"})  # event of no one node

# --- colours: Okabe & Ito (2008) colour-blind-safe palette; faults in plain red -------------
COLORS = {
    "compute": "#0072B2",
    "upload": "#E69F00",
    "download": "#009E73",
    "transfer": "#CC79A7",
    "other": "#56B4E9",
    "fault": "#D7191C",
    "idle": "#E8E8E8",
}
ROLE_COLORS = {"device": "#0072B2", "edge": "#E69F00", "cloud": "#009E73", "server": "#999999"}
ROLE_TIER = {"device": 0, "edge": 1, "cloud": 2}  # upload = towards a higher tier
SERIES_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
                 "#F0E442"]

DPI = 120
FIG_WIDTH_IN = 10.0
TIMELINE_ROW_HEIGHT_IN = 0.28
LOG_SCALE_RATIO = 50.0        # bar charts switch to a log axis when max/min exceeds this
INSTANT_FRACTION = 2e-3       # a fault shorter than this share of the time span gets a marker
MAX_ROUND_MARKS = 20          # round-boundary lines/labels on the timeline (every k-th round)

MIB = 2**20
GIB = 2**30

# --- units ----------------------------------------------------------------------------------


def _time_unit(t_max_s: float) -> tuple[float, str]:
    """(seconds per displayed unit, unit name) for a time axis that reaches ``t_max_s``."""
    t = abs(float(t_max_s)) if np.isfinite(t_max_s) else 0.0
    if 0 < t < 1.0:
        return 1e-3, "ms"
    if t <= 600.0:
        return 1.0, "s"
    if t <= 10 * 3600.0:
        return 60.0, "min"
    return 3600.0, "h"


def _bytes_unit(b_max: float) -> tuple[float, str]:
    b = abs(float(b_max)) if np.isfinite(b_max) else 0.0
    if b >= GIB:
        return float(GIB), "GiB"
    if b >= MIB or b == 0:
        return float(MIB), "MiB"
    return 1024.0, "KiB"


def _energy_unit(e_max_j: float) -> tuple[float, str]:
    e = abs(float(e_max_j)) if np.isfinite(e_max_j) else 0.0
    if e >= 1e7:
        return 1e6, "MJ"
    if e >= 1e4:
        return 1e3, "kJ"
    return 1.0, "J"


# --- helpers --------------------------------------------------------------------------------


def _natural_key(name: str) -> list:
    """'dev2' sorts before 'dev10'."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(name))]


def _infer_role(node: str) -> str:
    n = str(node).lower()
    if n.startswith("cloud"):
        return "cloud"
    if n.startswith(("edge", "server", "srv", "bs", "mec")):
        return "edge"
    return "device"


def _roles(node_names: Iterable[str], nodes: pd.DataFrame | None) -> dict[str, str]:
    known: dict[str, str] = {}
    if nodes is not None and len(nodes) and {"node", "role"} <= set(nodes.columns):
        known = {str(n): str(r) for n, r in zip(nodes["node"], nodes["role"]) if pd.notna(r)}
    return {str(n): known.get(str(n), _infer_role(n)) for n in node_names}


def _order_nodes(roles: dict[str, str]) -> list[str]:
    """Devices first, then edge, then cloud; natural order within a role."""
    return sorted(roles, key=lambda n: (ROLE_TIER.get(roles[n], 1), _natural_key(n)))


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        fig.clear()  # drop artists now; the Figure is not registered anywhere else
    return path


def _use_log(values: np.ndarray) -> bool:
    pos = values[np.isfinite(values) & (values > 0)]
    return pos.size >= 2 and pos.max() / pos.min() > LOG_SCALE_RATIO


def _log_axis(ax) -> None:
    """Log y-axis labelled with plain numbers (0.5, 2, 40) rather than powers of ten."""
    ax.set_yscale("log")
    ax.margins(y=0.06)  # in log space: room above the tallest bar
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(fmt)
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if f"{v:.1e}"[0] in "25" else ""))


def _column(df: pd.DataFrame, name: str, default=np.nan) -> pd.Series:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce")
    return pd.Series(default, index=df.index, dtype=float)


# --- accuracy vs simulated time -------------------------------------------------------------


def _quality(rounds: pd.DataFrame) -> tuple[pd.Series, str]:
    """What a round's model is judged by: held-out perplexity for a causal LM (its next-token
    accuracy says little), else held-out accuracy in %."""
    ppl = _column(rounds, "perplexity")
    if ppl.notna().any():
        return ppl, "perplexity (held-out)"
    return _column(rounds, "accuracy") * 100.0, "accuracy (%)"


def _quality_axis(ax, label: str, values) -> None:
    ax.set_ylabel(label)
    if label.startswith("accuracy"):
        ax.set_ylim(0, 100)
    elif _use_log(np.asarray(values, dtype=float)):
        _log_axis(ax)


def plot_delay_accuracy(rounds: pd.DataFrame, path, title=None) -> Path:
    """Held-out accuracy (%), or perplexity for a causal LM, against simulated time, training loss
    on a twin axis."""
    t_s = _column(rounds, "sim_time_s")
    acc, quality = _quality(rounds)
    loss = _column(rounds, "loss")
    div, unit = _time_unit(np.nanmax(t_s.to_numpy()) if t_s.notna().any() else 0.0)

    fig = _new_figure(FIG_WIDTH_IN * 0.8, 4.5)
    ax = fig.add_subplot()
    handles = []
    ok = acc.notna() & t_s.notna()
    if ok.any():
        (h,) = ax.plot(t_s[ok] / div, acc[ok], "o-", color=COLORS["compute"], ms=4,
                       label=quality.split(" (")[0] + " (held-out)")
        handles.append(h)
    ax.set_xlabel(f"simulated time ({unit})")
    _quality_axis(ax, quality, acc[ok])
    ax.yaxis.label.set_color(COLORS["compute"])
    ax.grid(True, alpha=0.3)

    ok = loss.notna() & t_s.notna()
    if ok.any():
        ax2 = ax.twinx()
        (h,) = ax2.plot(t_s[ok] / div, loss[ok], "s--", color=SERIES_COLORS[1], ms=3, lw=1.2,
                        label="training loss")
        ax2.set_ylabel("training loss", color=SERIES_COLORS[1])
        ax2.set_ylim(bottom=0)
        handles.append(h)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
                   frameon=False)
    ax.set_xlim(left=min(0.0, float(np.nanmin(t_s / div)) if t_s.notna().any() else 0.0))
    ax.set_title(title or f"{quality.split(' (')[0].capitalize()} over simulated time")
    return _save(fig, path)


def plot_epoch_delay(curves: dict[str, pd.DataFrame], path, title=None) -> Path:
    """Per decision epoch (round), top: the system delay a scheme reports for it (`delay_s`, e.g.
    dt_incremental's summed user delay: what its controller minimizes); bottom: held-out accuracy
    (%). One line per run (`curves`: label -> rounds table), so policies compare on one figure."""
    fig = _new_figure(FIG_WIDTH_IN * 0.8, 6.0)
    ax_delay, ax_acc = fig.subplots(2, 1, sharex=True)
    delays = np.concatenate([_column(c, "delay_s").to_numpy() for c in curves.values()] or [np.zeros(0)])
    div, unit = _time_unit(np.nanmax(delays) if np.isfinite(delays).any() else 0.0)
    shown = []
    for i, (label, c) in enumerate(curves.items()):
        rnd, delay, (acc, quality) = _column(c, "round"), _column(c, "delay_s"), _quality(c)
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        lw = 1.2 + 0.6 * (len(curves) - 1 - i)   # earlier lines wider: one hidden under a later one still shows
        ok = rnd.notna() & delay.notna()
        mean_s = float(delay[ok].mean()) if ok.any() else math.nan
        ax_delay.plot(rnd[ok], delay[ok] / div, "o-", ms=3, lw=lw, color=color,
                      label=f"{label} (mean {mean_s / div:.3g} {unit})")
        ok = rnd.notna() & acc.notna() & (rnd > 0)
        shown += acc[ok].tolist()
        ax_acc.plot(rnd[ok], acc[ok], "o-", ms=3, lw=lw, color=color, label=str(label))
    ax_delay.set_ylabel(f"system delay per epoch ({unit})")
    ax_delay.set_ylim(bottom=0)
    ax_delay.grid(True, alpha=0.3)
    ax_delay.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _quality_axis(ax_acc, quality if curves else "accuracy (%)", shown)
    ax_acc.set_xlabel("decision epoch (round)")
    ax_acc.grid(True, alpha=0.3)
    ax_delay.set_title(title or "System delay and accuracy per epoch", fontsize=11)
    return _save(fig, path)


# --- Gantt timeline -------------------------------------------------------------------------


def _categorize(ev: pd.DataFrame, roles: dict[str, str]) -> pd.Series:
    """One of compute / upload / download / transfer / fault / other for each event.

    The declared category (events.parquet `category`, cosim.world.events) decides; a transfer's
    direction comes from the roles of its two ends (node sends to peer). Frames without the column
    (run folders written before it existed, hand-made frames) fall back to guessing from the kind."""
    kind = ev["kind"].astype(str).str.lower()
    peer = ev["peer"].fillna("").astype(str)
    has_peer = (peer != "") & (peer.str.lower() != "none")
    nbytes = _column(ev, "bytes", 0.0).fillna(0.0)
    src_tier = ev["node"].map(lambda n: ROLE_TIER.get(roles.get(n, "device"), 1))
    dst_tier = peer.map(lambda n: ROLE_TIER.get(roles.get(n, _infer_role(n)), 1))
    direction = np.where(src_tier < dst_tier, "upload",
                         np.where(src_tier > dst_tier, "download", "transfer"))

    cat = pd.Series("other", index=ev.index, dtype=object)
    if "category" in ev.columns:
        declared = ev["category"].fillna("").astype(str)
    else:   # a frame without the column: the kinds declared in this version say what they are
        from .world.events import category_of

        declared = kind.map(category_of)
    known = declared != ""
    if known.all():
        cat[declared == "compute"] = "compute"
        is_transfer = (declared == "transfer").to_numpy()
        cat[is_transfer] = direction[is_transfer]
        cat[declared == "fault"] = "fault"
        return cat
    carries_bytes = (nbytes > 0) & has_peer & ~kind.isin(COMPUTE_KINDS)
    is_transfer = kind.isin(TRANSFER_KINDS) | carries_bytes
    cat[is_transfer] = direction[is_transfer.to_numpy()]
    cat[kind == "upload"] = "upload"
    cat[kind == "download"] = "download"
    cat[kind.isin(COMPUTE_KINDS)] = "compute"
    is_fault = np.zeros(len(ev), dtype=bool)
    for marker in FAULT_MARKERS:
        is_fault |= kind.str.contains(marker, regex=False).to_numpy()
    cat[is_fault] = "fault"
    return cat


def plot_timeline(events: pd.DataFrame, nodes: pd.DataFrame | None, path, title=None,
                  max_nodes: int = 40) -> Path:
    """Gantt chart: one row per node, bars per activity, idle gaps grey, faults red.

    Transfers are drawn on both ends' rows. "upload" means towards a higher tier
    (device → edge → cloud), "download" the reverse. A round starts at its first event.
    """
    if events is None or len(events) == 0:
        raise ValueError("plot_timeline needs at least one event")
    ev = events.copy()
    ev["node"] = ev["node"].astype(str)
    if "peer" not in ev.columns:
        ev["peer"] = ""
    ev["peer"] = ev["peer"].where(ev["peer"].notna(), "").astype(str)
    if "kind" not in ev.columns:
        ev["kind"] = "compute"
    ev["t_start"] = pd.to_numeric(ev["t_start"], errors="coerce")
    ev = ev[ev["t_start"].notna()]
    t_end = _column(ev, "t_end")
    ev["t_end"] = t_end.where(t_end.notna(), ev["t_start"]).clip(lower=ev["t_start"])

    peers = ev["peer"][(ev["peer"] != "") & (ev["peer"].str.lower() != "none")]
    named = pd.unique(pd.concat([ev["node"], peers]))
    roles = _roles([n for n in named if n.lower() not in GLOBAL_NODE_NAMES], nodes)
    ev["cat"] = _categorize(ev, roles).to_numpy()

    # mirror transfers onto the receiving end's row
    tr = ev[ev["cat"].isin(["upload", "download", "transfer"]) & ev["peer"].isin(list(roles))
            & (ev["peer"] != ev["node"])]
    drawn = pd.concat([ev, tr.assign(node=tr["peer"])], ignore_index=True)

    order = _order_nodes(roles)
    devices = [n for n in order if roles[n] == "device"]
    servers = [n for n in order if roles[n] != "device"]
    note = ""
    if len(order) > max_nodes:
        n_dev = max(max_nodes - len(servers), 1)
        order = devices[:n_dev] + servers[: max(max_nodes - n_dev, 0)]
        note = f" (first {min(n_dev, len(devices))} of {len(devices)} devices)"
    row = {n: i for i, n in enumerate(order)}

    t0 = min(0.0, float(ev["t_start"].min()))
    t1 = float(ev["t_end"].max())
    div, unit = _time_unit(t1 - t0)
    span = max(t1 - t0, 1e-12) / div
    bar_h = 0.7
    round_step = 1

    fig = _new_figure(FIG_WIDTH_IN, max(3.0, 1.6 + TIMELINE_ROW_HEIGHT_IN * len(order)))
    ax = fig.add_subplot()
    # idle background: every row is idle for the whole run unless something covers it
    for i in range(len(order)):
        ax.broken_barh([(t0 / div, span)], (i - bar_h / 2, bar_h), facecolors=COLORS["idle"],
                       linewidth=0, zorder=1)

    drawn = drawn[drawn["node"].isin(row)]
    present: list[str] = []
    other_kinds: list[str] = []
    z = {"compute": 2, "download": 3, "upload": 3, "transfer": 3, "other": 2, "fault": 4}
    for cat in ["compute", "upload", "download", "transfer", "other", "fault"]:
        sub = drawn[drawn["cat"] == cat]
        if sub.empty:
            continue
        present.append(cat)
        if cat == "other":
            other_kinds = sorted(sub["kind"].astype(str).unique())
        starts = (sub["t_start"] / div).to_numpy()
        widths = ((sub["t_end"] - sub["t_start"]) / div).to_numpy()
        rows = sub["node"].map(row).to_numpy()
        for r in np.unique(rows):
            m = rows == r
            ax.broken_barh(np.column_stack([starts[m], widths[m]]), (r - bar_h / 2, bar_h),
                           facecolors=COLORS[cat], linewidth=0, zorder=z[cat])
        if cat == "fault":
            instant = widths < INSTANT_FRACTION * span
            if instant.any():
                ax.scatter(starts[instant], rows[instant], marker="X", s=40, color=COLORS["fault"],
                           edgecolors="white", linewidths=0.5, zorder=5)

    # faults not tied to any node (e.g. a whole-medium outage) shade every row
    glob = ev[(ev["cat"] == "fault") & ev["node"].str.lower().isin(GLOBAL_NODE_NAMES)]
    for a, b in zip(glob["t_start"] / div, glob["t_end"] / div):
        ax.axvspan(a, max(b, a + INSTANT_FRACTION * span), color=COLORS["fault"], alpha=0.35,
                   lw=0, zorder=1.5)
        if "fault" not in present:
            present.append("fault")

    if servers and devices and len(order) > len([n for n in order if roles[n] == "device"]) > 0:
        n_dev_shown = sum(roles[n] == "device" for n in order)
        ax.axhline(n_dev_shown - 0.5, color="0.3", lw=0.8, zorder=6)

    # round boundaries
    if "round" in ev.columns:
        starts = ev.groupby("round")["t_start"].min().dropna().sort_index()
        if len(starts):
            round_step = max(1, math.ceil(len(starts) / MAX_ROUND_MARKS))
            starts = starts.iloc[::round_step]
            xs = (starts / div).to_numpy()
            ax.vlines(xs, -0.5, len(order) - 0.5, colors="0.25", lw=0.6, ls=(0, (2, 2)), zorder=6)
            top = ax.secondary_xaxis("top")
            top.set_xticks(xs, [str(r) for r in starts.index], fontsize=7)
            top.tick_params(length=2, pad=1)
            top.set_xlabel("round", fontsize=8, labelpad=2)

    ax.set_yticks(range(len(order)), order, fontsize=8 if len(order) > 20 else 9)
    ax.set_ylim(len(order) - 0.5, -0.5)  # first device on top
    ax.set_xlim(t0 / div, t1 / div if t1 > t0 else t0 / div + 1)
    ax.set_xlabel(f"simulated time ({unit})")

    labels = {"compute": "compute", "upload": "upload (to server)",
              "download": "download (to device)", "transfer": "transfer (peer to peer)",
              "other": "other" + (f" ({', '.join(other_kinds[:3])})" if other_kinds else ""),
              "fault": "outage / drop"}
    handles = [Patch(color=COLORS[c], label=labels[c]) for c in present]
    handles.append(Patch(color=COLORS["idle"], label="idle"))
    if "round" in ev.columns:
        every = f" (every {round_step} rounds)" if round_step > 1 else ""
        handles.append(Line2D([], [], color="0.25", lw=0.8, ls=(0, (2, 2)),
                              label="round start" + every))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, borderaxespad=0)
    ax.set_title((title or "Node timeline") + note)
    return _save(fig, path)


# --- memory ---------------------------------------------------------------------------------


def _role_legend(roles: Iterable[str]) -> list[Patch]:
    return [Patch(color=ROLE_COLORS.get(r, ROLE_COLORS["server"]), label=r)
            for r in dict.fromkeys(roles)]


def _node_table(nodes: pd.DataFrame) -> pd.DataFrame:
    df = nodes.copy()
    df["node"] = df["node"].astype(str)
    roles = _roles(df["node"], df)
    df["role"] = df["node"].map(roles)
    order = _order_nodes(roles)
    return df.set_index("node").loc[order].reset_index()


def _bar_width_in(n: int) -> float:
    return min(max(FIG_WIDTH_IN * 0.6, 1.5 + 0.35 * n), 24.0)


def plot_memory(nodes: pd.DataFrame, path, title=None) -> Path:
    """Peak memory per node (bars coloured by role) with its capacity as a black tick."""
    df = _node_table(nodes)
    peak = _column(df, "peak_memory_bytes").to_numpy()
    cap = _column(df, "memory_capacity_bytes").to_numpy()
    div, unit = _bytes_unit(np.nanmax(np.concatenate([peak, cap, [0.0]])))
    x = np.arange(len(df))

    fig = _new_figure(_bar_width_in(len(df)), 4.5)
    ax = fig.add_subplot()
    colors = [ROLE_COLORS.get(r, ROLE_COLORS["server"]) for r in df["role"]]
    over = np.isfinite(cap) & (np.nan_to_num(peak) > cap)
    ax.bar(x, np.nan_to_num(peak) / div, color=colors, width=0.7, zorder=2,
           edgecolor=np.where(over, COLORS["fault"], "none"), linewidth=np.where(over, 1.5, 0))
    handles = _role_legend(df["role"])
    if np.isfinite(cap).any():
        ok = np.isfinite(cap)
        ax.hlines(cap[ok] / div, x[ok] - 0.42, x[ok] + 0.42, colors="black", lw=2, zorder=3)
        handles.append(Line2D([], [], color="black", lw=2, label="capacity"))
    if over.any():
        handles.append(Patch(facecolor="white", edgecolor=COLORS["fault"], lw=1.5,
                             label="over capacity"))
    log_scale = _use_log(np.concatenate([peak, cap]))
    if log_scale:
        _log_axis(ax)
    ax.set_xticks(x, df["node"], rotation=45 if len(df) > 8 else 0,
                  ha="right" if len(df) > 8 else "center", fontsize=8 if len(df) > 20 else 9)
    ax.set_ylabel(f"peak memory ({unit}{', log scale' if log_scale else ''})")
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False, borderaxespad=0)
    ax.set_title(title or "Peak memory per node")
    return _save(fig, path)


# --- energy ---------------------------------------------------------------------------------

ENERGY_PARTS = {"compute_energy_j": "compute", "radio_energy_j": "radio", "idle_energy_j": "idle"}
ENERGY_PART_COLORS = {"compute": COLORS["compute"], "radio": COLORS["upload"],
                      "idle": "#BBBBBB", "other": COLORS["other"]}


def plot_energy(nodes: pd.DataFrame, path, title=None) -> Path:
    """Energy per node; stacked compute / radio (/ idle) when the split is recorded."""
    df = _node_table(nodes)
    parts = [c for c in ENERGY_PARTS if c in df.columns and _column(df, c).notna().any()]
    total = _column(df, "energy_j").to_numpy()
    x = np.arange(len(df))

    fig = _new_figure(_bar_width_in(len(df)), 4.5)
    ax = fig.add_subplot()
    if parts:
        stack = np.column_stack([_column(df, c).fillna(0.0).to_numpy() for c in parts])
        rest = np.nan_to_num(total) - stack.sum(axis=1)
        top = np.nanmax(np.concatenate([stack.sum(axis=1), total, [0.0]]))
        div, unit = _energy_unit(top)
        bottom = np.zeros(len(df))
        names = [ENERGY_PARTS[c] for c in parts]
        series = [stack[:, i] for i in range(len(parts))]
        if np.any(rest > 1e-6 * max(top, 1.0)):  # energy_j holds more than the parts
            names.append("other")
            series.append(np.clip(rest, 0.0, None))
        for name, vals in zip(names, series):
            ax.bar(x, vals / div, bottom=bottom / div, width=0.7, label=name,
                   color=ENERGY_PART_COLORS[name], zorder=2)
            bottom = bottom + vals
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  borderaxespad=0)
    else:
        div, unit = _energy_unit(np.nanmax(np.concatenate([total, [0.0]])))
        colors = [ROLE_COLORS.get(r, ROLE_COLORS["server"]) for r in df["role"]]
        ax.bar(x, np.nan_to_num(total) / div, color=colors, width=0.7, zorder=2)
        ax.legend(handles=_role_legend(df["role"]), fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0)
    ax.set_xticks(x, df["node"], rotation=45 if len(df) > 8 else 0,
                  ha="right" if len(df) > 8 else "center", fontsize=8 if len(df) > 20 else 9)
    ax.set_ylabel(f"energy ({unit})")
    ax.grid(True, axis="y", alpha=0.3, zorder=0)
    ax.set_title(title or "Energy per node")
    return _save(fig, path)


# --- comparison of schemes ------------------------------------------------------------------


def plot_comparison(table: pd.DataFrame, curves: dict[str, pd.DataFrame], path,
                    title=None) -> Path:
    """Left: accuracy (perplexity for a causal LM) over simulated time, one line per scheme.
    Right: peak memory per scheme."""
    fig = _new_figure(FIG_WIDTH_IN * 1.2, 4.5)
    ax_acc, ax_mem = fig.subplots(1, 2, width_ratios=[3, 2])

    t_max = max((np.nanmax(_column(c, "sim_time_s").to_numpy(), initial=0.0)
                 for c in curves.values() if len(c)), default=0.0)
    div, unit = _time_unit(t_max)
    quality, shown = "accuracy (%)", []
    for i, (scheme, c) in enumerate(curves.items()):
        t, (acc, quality) = _column(c, "sim_time_s"), _quality(c)
        ok = t.notna() & acc.notna()
        shown += acc[ok].tolist()
        ax_acc.plot(t[ok] / div, acc[ok], "o-", ms=3, lw=1.5, label=str(scheme),
                    color=SERIES_COLORS[i % len(SERIES_COLORS)])
    ax_acc.set_xlabel(f"simulated time ({unit})")
    _quality_axis(ax_acc, quality, shown)
    ax_acc.set_xlim(left=0)
    ax_acc.grid(True, alpha=0.3)
    if curves:
        ax_acc.legend(fontsize=8, loc="lower right" if quality.startswith("accuracy") else "upper right")
    ax_acc.set_title(f"{quality.split(' (')[0].capitalize()} over simulated time", fontsize=10)

    schemes = table["scheme"].astype(str).tolist() if "scheme" in table.columns else []
    cols = [(c, lab) for c, lab in [("device_peak_memory_bytes", "device"),
                                    ("server_peak_memory_bytes", "server")]
            if c in table.columns and _column(table, c).notna().any()]
    x = np.arange(len(schemes))
    if cols:
        vals = np.concatenate([_column(table, c).to_numpy() for c, _ in cols])
        bdiv, bunit = _bytes_unit(np.nanmax(vals))
        w = 0.8 / len(cols)
        for j, (c, lab) in enumerate(cols):
            v = _column(table, c).to_numpy()
            ax_mem.bar(x + (j - (len(cols) - 1) / 2) * w, np.nan_to_num(v) / bdiv, width=w,
                       label=f"{lab} peak", zorder=2,
                       color=ROLE_COLORS["device" if lab == "device" else "edge"])
        log_scale = _use_log(vals)
        if log_scale:
            _log_axis(ax_mem)
        ax_mem.set_ylabel(f"peak memory ({bunit}{', log scale' if log_scale else ''})")
        ax_mem.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                      ncols=len(cols), frameon=False, borderaxespad=0.2)
    crowded = len(schemes) > 4 or sum(len(str(n)) for n in schemes) > 40   # long labels collide side by side
    ax_mem.set_xticks(x, schemes, rotation=30 if crowded else 0,
                      ha="right" if crowded else "center", fontsize=9)
    ax_mem.grid(True, axis="y", alpha=0.3, zorder=0)
    ax_mem.set_title("Peak memory per scheme", fontsize=10, pad=20 if cols else None)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_tracks(tracks: pd.DataFrame, events: pd.DataFrame | None, path, title=None) -> Path:
    """Where the moving devices went (grey tracks) and the rate their transfers achieved there:
    each transfer is a dot at the device's position at the transfer's midpoint, coloured by
    bytes × 8 / duration. Access points are black triangles when `tracks` has role 'edge' rows."""
    fig = _new_figure(7.5, 6.0)
    ax = fig.add_subplot()
    mobile = tracks[tracks.role == "device"] if "role" in tracks else tracks
    for _, track in mobile.groupby("node", sort=False):
        ax.plot(track.x_m, track.y_m, color="0.75", linewidth=0.8, zorder=1)
    if "role" in tracks:
        aps = tracks[tracks.role != "device"].drop_duplicates("node")
        ax.scatter(aps.x_m, aps.y_m, marker="^", s=80, color="black", zorder=3, label="access point")
    dots = _transfer_positions(mobile, events)
    if len(dots):
        sc = ax.scatter(dots.x_m, dots.y_m, c=dots.rate_bps / 1e6, cmap="viridis", s=14, zorder=2)
        fig.colorbar(sc, ax=ax, label="achieved transfer rate (Mbit/s)")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    if "role" in tracks:
        ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title or "Device tracks and achieved link rate")
    return _save(fig, path)


def _transfer_positions(tracks: pd.DataFrame, events: pd.DataFrame | None) -> pd.DataFrame:
    """Each transfer of a tracked device, placed by interpolating its track at the midpoint."""
    if events is None or events.empty:
        return pd.DataFrame(columns=["x_m", "y_m", "rate_bps"])
    tx = events[(events.bytes > 0) & (events.t_end > events.t_start)]
    rows = []
    for node, track in tracks.groupby("node", sort=False):
        mine = tx[(tx.node == node) | (tx.peer == node)]
        if mine.empty:
            continue
        t_mid = (mine.t_start + mine.t_end).to_numpy() / 2
        inside = (t_mid >= track.t_s.min()) & (t_mid <= track.t_s.max())
        x = np.interp(t_mid, track.t_s, track.x_m)
        y = np.interp(t_mid, track.t_s, track.y_m)
        rate = mine.bytes.to_numpy() * 8 / (mine.t_end - mine.t_start).to_numpy()
        rows.append(pd.DataFrame({"x_m": x[inside], "y_m": y[inside], "rate_bps": rate[inside]}))
    return pd.concat(rows) if rows else pd.DataFrame(columns=["x_m", "y_m", "rate_bps"])


# --- one run folder -------------------------------------------------------------------------

PLOTS = {
    "delay_accuracy": "delay_accuracy.png",
    "timeline": "timeline.png",
    "memory": "memory.png",
    "energy": "energy.png",
    "tracks": "tracks.png",
    "decisions": "decisions.png",
    "epoch_delay": "epoch_delay.png",
}

# a plot is drawn when its table has every column of one of these alternatives
REQUIRED_COLUMNS = {
    "delay_accuracy": [("sim_time_s", "accuracy"), ("sim_time_s", "loss")],
    "timeline": [("t_start", "node")],
    "memory": [("node", "peak_memory_bytes")],
    "energy": [("node", "energy_j"), ("node", "compute_energy_j")],
    "tracks": [("t_s", "node", "x_m", "y_m")],
    "decisions": [("t_s", "device", "setting", "value")],
    "epoch_delay": [("round", "delay_s")],
}


def _read(path: Path, reader) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        df = reader(path)
    except Exception as exc:  # an unreadable or half-written file: skip the plot, keep going
        log.warning("cannot read %s: %s", path, exc)
        return None
    return df if len(df) else None


#: the settings a decisions plot draws, in panel order, with their axis labels
DECISION_PANELS = [("cut", "cut layer"), ("keep", "top-k keep ratio"), ("bits", "bits per kept value"),
                   ("bandwidth_share", "share of the band"), ("compute_share", "share of server compute"),
                   ("retrain", "retrains (1) or not (0)")]


def plot_decisions(decisions: pd.DataFrame, path, title=None, t_end_s: float | None = None) -> Path:
    """One panel per decided setting (cut / compression / bandwidth share …), one step line per
    device over simulated time up to `t_end_s` (the run's end): what the controller decided and
    when. A setting that never changed and is the same for every device is left out (named in
    the x label instead)."""
    df = decisions[decisions["device"].fillna("").astype(str) != ""].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    constant = [f"{s}={df[df.setting == s].value.iloc[0]:g}" for s, _ in DECISION_PANELS
                if (df["setting"] == s).any() and df[df.setting == s].value.nunique() == 1]
    panels = [(s, lbl) for s, lbl in DECISION_PANELS
              if (df["setting"] == s).any() and df[df.setting == s].value.nunique() > 1]
    if not panels and constant:   # nothing varies: still show what was decided
        panels = [(s, lbl) for s, lbl in DECISION_PANELS if (df["setting"] == s).any()][:1]
    if not panels:
        raise ValueError("plot_decisions needs at least one per-device decision")
    fig = _new_figure(8.0, 2.2 * len(panels) + 0.6)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)
    devices = sorted(df["device"].astype(str).unique(), key=_natural_key)
    from matplotlib import colormaps
    colors = colormaps["tab10"]
    t_end = float(df["t_s"].max()) if t_end_s is None else max(float(t_end_s), float(df["t_s"].max()))
    for ax, (setting, ylabel) in zip(axes[:, 0], panels):
        sub = df[df["setting"] == setting]
        for i, dev in enumerate(devices):
            d = sub[sub["device"].astype(str) == dev].sort_values("t_s")
            if d.empty:
                continue
            t = np.append(d["t_s"].to_numpy(float), max(t_end, float(d["t_s"].max())))
            v = np.append(d["value"].to_numpy(float), d["value"].iloc[-1])
            ax.step(t, v, where="post", color=colors(i % 10), label=dev, lw=1.6)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if setting == "keep":
            ax.set_yscale("log")
    axes[-1, 0].set_xlabel("simulated time (s)" + (f" · every device, all the time: {', '.join(constant)}"
                                                  if constant else ""))
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_run(run_dir, which=None) -> list[Path]:
    """Write ``<name>.png`` into ``run_dir`` for each plot in ``which`` (default: all of PLOTS).

    A plot whose input file is missing, empty or unreadable is skipped with a log message.
    Returns the paths written, in the order of ``which``.
    """
    run_dir = Path(run_dir)
    names = list(PLOTS) if which is None else [which] if isinstance(which, str) else list(which)
    unknown = [n for n in names if n not in PLOTS]
    if unknown:
        raise ValueError(f"unknown plot(s) {unknown}; choose from {sorted(PLOTS)}")

    label = run_dir.name
    sim_time_s = None
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
            sim_time_s = summary.get("sim_time_s")
            label = " · ".join(str(summary[k]) for k in ("name", "scheme") if summary.get(k))
            label = label or run_dir.name
        except (ValueError, OSError, AttributeError) as exc:
            log.warning("cannot read %s: %s", summary_path, exc)

    cache: dict[str, pd.DataFrame | None] = {}

    def table(fname: str) -> pd.DataFrame | None:
        if fname not in cache:
            reader = pd.read_parquet if fname.endswith(".parquet") else pd.read_csv
            cache[fname] = _read(run_dir / fname, reader)
        return cache[fname]

    written: list[Path] = []
    for name in names:
        out = run_dir / PLOTS[name]
        columns = REQUIRED_COLUMNS[name]
        if name == "delay_accuracy":
            need, draw = "rounds.csv", lambda df: plot_delay_accuracy(
                df, out, f"Accuracy over simulated time — {label}")
        elif name == "timeline":
            need, draw = "events.parquet", lambda df: plot_timeline(
                df, table("nodes.csv"), out, f"Node timeline — {label}")
        elif name == "memory":
            need, draw = "nodes.csv", lambda df: plot_memory(
                df, out, f"Peak memory per node — {label}")
        elif name == "decisions":
            need, draw = "decisions.csv", lambda df: plot_decisions(
                df, out, f"Controller decisions — {label}", t_end_s=sim_time_s)
        elif name == "epoch_delay":
            need, draw = "rounds.csv", lambda df: plot_epoch_delay(
                {"this run": df}, out, f"System delay and accuracy per epoch — {label}")
        elif name == "tracks":
            need, draw = "tracks.parquet", lambda df: plot_tracks(
                df, table("events.parquet"), out, f"Tracks and link rate — {label}")
        else:
            need, draw = "nodes.csv", lambda df: plot_energy(
                df, out, f"Energy per node — {label}")
        df = table(need)
        if df is None:
            log.info("skipping %s plot: %s missing or empty", name, run_dir / need)
            continue
        if not any(set(alt) <= set(df.columns) for alt in columns):
            log.info("skipping %s plot: %s lacks columns %s", name, run_dir / need, columns[0])
            continue
        written.append(draw(df))
    return written
