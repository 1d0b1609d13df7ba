"""Plots of a run folder: every figure is written, missing inputs skipped, big traces fast."""

import json

import numpy as np
import pandas as pd
import pytest

from cosim import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 2000


def _events() -> pd.DataFrame:
    rows = []
    for rnd in (1, 2, 3):
        t = 10.0 * (rnd - 1)
        for d in ("dev0", "dev1", "dev2"):
            rows += [
                (t, t + 2, d, None, "fwd", rnd, 0, 1e9, 1.0, 10 * 2**20),
                (t + 2, t + 3, d, "edge0", "activation", rnd, 4 * 2**20, 0.0, 0.2, 0),
                (t + 3, t + 5, "edge0", d, "compute", rnd, 0, 5e9, 3.0, 2**30),
                (t + 5, t + 6, "edge0", d, "gradient", rnd, 4 * 2**20, 0.0, 0.1, 0),
                (t + 6, t + 7, d, None, "bwd", rnd, 0, 2e9, 1.0, 10 * 2**20),
            ]
        rows.append((t + 8, t + 9, "edge0", "cloud0", "upload", rnd, 2**20, 0.0, 0.0, 0))
        rows.append((t + 9, t + 9.5, "cloud0", None, "aggregate", rnd, 0, 1e8, 0.5, 0))
    rows.append((12.0, 15.0, "dev1", None, "outage", 2, 0, 0.0, 0.0, 0))
    rows.append((23.0, 23.0, "dev2", "edge0", "drop", 3, 0, 0.0, 0.0, 0))
    rows.append((5.0, 5.5, "", None, "outage", 1, 0, 0.0, 0.0, 0))  # medium-wide, no node
    rows.append((27.5, 28.5, "dev0", None, "sense", 3, 0, 0.0, 0.1, 0))
    cols = ["t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops", "energy_j",
            "mem_bytes"]
    return pd.DataFrame(rows, columns=cols)


def _nodes(split_energy: bool = True) -> pd.DataFrame:
    df = pd.DataFrame({
        "node": ["edge0", "dev0", "dev1", "dev2", "cloud0"],
        "role": ["edge", "device", "device", "device", "cloud"],
        "profile": ["edge-a100", "jetson-nano", "jetson-nano", "rpi4", "cloud-gpu"],
        "flops": [1.5e10, 6e9, 6e9, 6e9, 3e8],
        "busy_s": [6.0, 15.0, 15.0, 15.0, 1.5],
        "energy_j": [9.0, 6.6, 6.6, 6.6, 1.5],
        "peak_memory_bytes": [2**30, 300 * 2**20, 320 * 2**20, 5 * 2**30, 2 * 2**30],
        "memory_capacity_bytes": [40 * 2**30, 4 * 2**30, 4 * 2**30, 4 * 2**30, np.nan],
        "bytes_sent": [12 * 2**20, 12 * 2**20, 12 * 2**20, 12 * 2**20, 0],
        "bytes_received": [36 * 2**20, 12 * 2**20, 12 * 2**20, 12 * 2**20, 3 * 2**20],
    })
    if split_energy:
        df["compute_energy_j"] = [9.0, 6.0, 6.0, 6.0, 1.5]
        df["radio_energy_j"] = [0.0, 0.6, 0.6, 0.6, 0.0]
    return df


def _rounds() -> pd.DataFrame:
    return pd.DataFrame({
        "round": [0, 1, 2, 3],
        "sim_time_s": [0.0, 9.5, 19.5, 29.5],
        "loss": [np.nan, 1.2, 0.9, 0.7],
        "accuracy": [0.12, 0.45, np.nan, 0.71],
        "participants": [0, 3, 3, 3],
    })


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    _rounds().to_csv(d / "rounds.csv", index=False)
    _events().to_parquet(d / "events.parquet", index=False)
    _nodes().to_csv(d / "nodes.csv", index=False)
    (d / "summary.json").write_text(json.dumps({"name": "toy", "scheme": "splitfrozen"}))
    return d


def test_accuracy_plot_tolerates_rounds_without_evaluation(tmp_path):
    out = plots.plot_delay_accuracy(_rounds(), tmp_path / "acc.png")
    assert _is_png(out)


def test_hour_long_run_is_shown_in_minutes_and_day_long_in_hours():
    assert plots._time_unit(45.0)[1] == "s"
    assert plots._time_unit(3600.0)[1] == "min"
    assert plots._time_unit(2 * 86400.0)[1] == "h"


def test_timeline_shows_transfers_and_outages(tmp_path):
    out = plots.plot_timeline(_events(), _nodes(), tmp_path / "tl.png", title="toy")
    assert _is_png(out)


def test_timeline_without_nodes_table_infers_roles(tmp_path):
    assert _is_png(plots.plot_timeline(_events(), None, tmp_path / "tl.png"))


def test_timeline_rejects_an_empty_trace(tmp_path):
    with pytest.raises(ValueError):
        plots.plot_timeline(_events().iloc[:0], None, tmp_path / "tl.png")


def test_generic_transfers_point_towards_the_server_or_away_from_it():
    ev = _events()
    roles = {"dev0": "device", "dev1": "device", "dev2": "device", "edge0": "edge",
             "cloud0": "cloud"}
    cat = plots._categorize(ev, roles)
    assert set(cat[ev["kind"] == "activation"]) == {"upload"}     # device → edge
    assert set(cat[ev["kind"] == "gradient"]) == {"download"}     # edge → device
    assert set(cat[ev["kind"].isin(["outage", "drop"])]) == {"fault"}
    assert set(cat[ev["kind"].isin(["fwd", "bwd", "aggregate"])]) == {"compute"}


def test_memory_and_energy_plots(tmp_path):
    assert _is_png(plots.plot_memory(_nodes(), tmp_path / "mem.png"))
    assert _is_png(plots.plot_energy(_nodes(), tmp_path / "e_split.png"))
    assert _is_png(plots.plot_energy(_nodes(split_energy=False), tmp_path / "e_total.png"))


def test_comparison_of_schemes(tmp_path):
    table = pd.DataFrame({
        "scheme": ["fedavg", "splitlora", "splitfrozen"],
        "device_peak_memory_bytes": [900 * 2**20, 400 * 2**20, 150 * 2**20],
        "server_peak_memory_bytes": [2 * 2**30, 3 * 2**30, 3 * 2**30],
    })
    r = _rounds()
    curves = {"fedavg": r, "splitlora": r.assign(sim_time_s=r["sim_time_s"] * 2),
              "splitfrozen": r.assign(accuracy=r["accuracy"] * 0.9)}
    assert _is_png(plots.plot_comparison(table, curves, tmp_path / "cmp.png", title="schemes"))


def test_epoch_delay_of_several_policies(tmp_path):
    r = _rounds().assign(delay_s=lambda df: 0.1 + 0.01 * df["round"])
    path = plots.plot_epoch_delay({"ppo": r, "equal": r.assign(delay_s=r.delay_s * 1.2)}, tmp_path / "d.png")
    assert _is_png(path)


def test_plot_run_writes_all_four_plots_and_skips_tracks_and_decisions_when_absent(run_dir):
    written = plots.plot_run(run_dir)   # (and epoch_delay: its scheme reports no delay_s)
    assert [p.name for p in written] == [f for k, f in plots.PLOTS.items()
                                         if k not in ("tracks", "decisions", "epoch_delay")]
    assert all(_is_png(p) for p in written)


def test_plot_run_draws_tracks_coloured_by_achieved_rate(run_dir):
    events = pd.read_parquet(run_dir / "events.parquet")
    mover = events[events.bytes > 0].node.iloc[0]
    t = np.linspace(0, events.t_end.max(), 50)
    pd.DataFrame({"t_s": t, "node": mover, "role": "device", "x_m": 10 * t, "y_m": 5.0, "z_m": 1.5}).to_parquet(
        run_dir / "tracks.parquet")
    written = plots.plot_run(run_dir, which=["tracks"])
    assert [p.name for p in written] == ["tracks.png"] and _is_png(written[0])


def test_plot_run_skips_timeline_when_events_are_missing(run_dir):
    (run_dir / "events.parquet").unlink()
    written = plots.plot_run(run_dir)
    assert "timeline.png" not in [p.name for p in written]
    assert len(written) == 3
    assert not (run_dir / "timeline.png").exists()


def test_plot_run_skips_empty_tables(run_dir):
    _events().iloc[:0].to_parquet(run_dir / "events.parquet", index=False)
    (run_dir / "rounds.csv").write_text("")
    written = plots.plot_run(run_dir, which=["timeline", "delay_accuracy", "memory"])
    assert [p.name for p in written] == ["memory.png"]


def test_plot_run_skips_a_plot_whose_columns_are_missing(run_dir):
    _nodes().drop(columns=["peak_memory_bytes"]).to_csv(run_dir / "nodes.csv", index=False)
    written = plots.plot_run(run_dir, which=["memory", "energy"])
    assert [p.name for p in written] == ["energy.png"]


def test_plot_run_refuses_unknown_plot_names(run_dir):
    with pytest.raises(ValueError, match="unknown plot"):
        plots.plot_run(run_dir, which=["nope"])


def test_plotting_many_runs_leaves_no_open_pyplot_figures(run_dir):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    for _ in range(3):
        plots.plot_run(run_dir, which="memory")
    assert plt.get_fignums() == before


def test_timeline_draws_20k_events(tmp_path):
    """A long run's trace draws (one broken_barh per node and category); its speed (about 0.6 s here)
    is a benchmark matter, not asserted, since CI machines are shared."""
    rng = np.random.default_rng(0)
    n = 20_000
    nodes = [f"dev{i}" for i in range(24)] + ["edge0"]
    node = rng.choice(nodes, n)
    kind = rng.choice(["fwd", "bwd", "step", "activation", "gradient", "outage"], n,
                      p=[0.3, 0.3, 0.2, 0.09, 0.09, 0.02])
    t_start = np.sort(rng.uniform(0, 7200.0, n))
    ev = pd.DataFrame({
        "t_start": t_start,
        "t_end": t_start + rng.exponential(0.5, n),
        "node": node,
        "peer": np.where(np.isin(kind, ["activation", "gradient"]),
                         np.where(node == "edge0", "dev0", "edge0"), None),
        "kind": kind,
        "round": (t_start // 60).astype(int),
        "bytes": np.where(np.isin(kind, ["activation", "gradient"]), 2**20, 0),
        "flops": 1e9, "energy_j": 0.1, "mem_bytes": 0,
    })
    out = plots.plot_timeline(ev, None, tmp_path / "big.png")
    assert _is_png(out)


def test_decisions_draw_one_panel_per_setting_and_a_line_per_device(tmp_path):
    rows = []
    for t, rnd in [(0.0, 1), (4.0, 2), (9.0, 3)]:
        for i, dev in enumerate(["phone0", "phone1", "car0"]):
            rows += [{"t_s": t, "round": rnd, "timescale": "large", "controller": "sft", "device": dev,
                      "setting": "cut", "value": 1 + (i + rnd) % 3},
                     {"t_s": t, "round": rnd, "timescale": "large", "controller": "sft", "device": dev,
                      "setting": "keep", "value": 0.1 * (i + 1)},
                     {"t_s": t, "round": rnd, "timescale": "small", "controller": "sft", "device": dev,
                      "setting": "bandwidth_share", "value": [0.2, 0.3, 0.5][i]}]
    rows.append({"t_s": 0.0, "round": 1, "timescale": "small", "controller": "sft", "device": "",
                 "setting": "predicted_round_s", "value": 3.2})
    assert _is_png(plots.plot_decisions(pd.DataFrame(rows), tmp_path / "d.png", title="decisions"))


def test_every_compute_kind_draws_as_compute_whatever_its_name():
    """The old timeline guessed categories from names: wgrad, update, combine, infer and loss drew
    as "other". The declared category decides now — with the column, and without it (read from
    the vocabulary) for frames written before it existed."""
    from cosim import schemes  # noqa: F401 - the schemes declare wgrad, update, combine, infer, loss

    kinds = ["wgrad", "update", "combine", "infer", "loss", "train"]
    ev = pd.DataFrame({"t_start": 0.0, "t_end": 1.0, "node": "dev0", "peer": "", "kind": kinds, "bytes": 0})
    roles = {"dev0": "device"}
    assert set(plots._categorize(ev, roles)) == {"compute"}
    assert set(plots._categorize(ev.assign(category="compute"), roles)) == {"compute"}
