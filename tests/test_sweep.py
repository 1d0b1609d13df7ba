"""`cosim sweep`: one ordinary run per point of a grid, each in its own process. The table is in grid
order and does not depend on how many processes ran it (or on Ray), finished rows survive a killed
sweep, and a bad key or value is refused (exit 2, named) before anything runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.scenario import ScenarioError
from cosim.sweep import parse_grid, points_of
from conftest import ROOT, tiny_scenario

BANDWIDTH = "network.medium.bandwidth_hz"
#: Columns that may differ between two runs of the same point: host time and where it was written.
HOST = ["wall_time_s", "run_dir"]


def _split(tmp_path: Path, **grid) -> dict:
    """The tiny scenario under split learning with LoRA (cut after block 1), `grid` as its sweep."""
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {**raw["scheme"], "name": "splitlora", "cut_layer": 1}
    if grid:
        raw["sweep"] = {"grid": grid}
    return raw


def _file(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.mark.slow  # six spawned processes, ~30 s
def test_the_grid_runs_its_product_in_order_and_bandwidth_moves_time_not_accuracy(tmp_path):
    raw = _split(tmp_path, **{BANDWIDTH: ["2e6", 20e6], "scheme.cut_layer": [1, 3]})
    table = cosim.sweep(raw, workers=2)

    assert table.attrs["keys"] == [BANDWIDTH, "scheme.cut_layer"]
    assert list(table.columns[:2]) == [BANDWIDTH, "scheme.cut_layer"] and table.columns[-1] == "run_dir"
    assert list(zip(table[BANDWIDTH], table["scheme.cut_layer"])) == [(2e6, 1), (2e6, 3), (20e6, 1), (20e6, 3)]
    assert list(table.index) == [0, 1, 2, 3] and (table.rounds == 2).all()
    slow, fast = table[table[BANDWIDTH] == 2e6].set_index("scheme.cut_layer"), \
        table[table[BANDWIDTH] == 20e6].set_index("scheme.cut_layer")
    assert (slow.sim_time_s > fast.sim_time_s).all()        # a narrower medium: longer transfers
    assert (slow.final_accuracy == fast.final_accuracy).all()  # the same steps, at other times
    assert (slow.bytes_up == fast.bytes_up).all()
    assert (slow.loc[3, "device_flops"] > slow.loc[1, "device_flops"])  # a deeper cut: more on the device

    # each point is an ordinary run folder holding its one-point scenario
    for _, row in table.iterrows():
        sc = yaml.safe_load((Path(row.run_dir) / "scenario.yaml").read_text())
        assert (sc["network"]["medium"]["bandwidth_hz"], sc["scheme"]["cut_layer"]) == \
            (row[BANDWIDTH], row["scheme.cut_layer"])
        assert sc["sweep"] == {"grid": {}, "budget_s": None}   # a one-point scenario: no grid of its own
        assert (Path(row.run_dir) / "events.parquet").is_file()
    out = table.attrs["dir"]
    assert out.parent == _results(tmp_path) / "tiny" and out.name.startswith("sweep-")
    csv = pd.read_csv(out / "sweep.csv", index_col="point")
    pd.testing.assert_frame_equal(csv.drop(columns=HOST), table.drop(columns=HOST), check_dtype=False)
    assert (out / "sweep.png").stat().st_size > 10_000
    assert not (out / "running").exists()   # the points' resume notes go once every point is done

    # the same points in one process at a time: the same table
    again = cosim.sweep(raw, workers=1)
    pd.testing.assert_frame_equal(again.drop(columns=HOST), table.drop(columns=HOST))
    assert set(again.run_dir).isdisjoint(table.run_dir)


def test_grid_on_the_command_line_goes_over_the_files_grid(tmp_path, capsys):
    path = _file(tmp_path, _split(tmp_path, **{"scheme.cut_layer": [1, 2, 3]}))
    assert main(["sweep", str(path), "--quiet", "--grid", "scheme.cut_layer=2", "--grid", "seed=4,5",
                 "--set", "scheme.rounds=1"]) == 0
    out = capsys.readouterr().out
    folder = Path(out.strip().splitlines()[-1].removeprefix("results: "))
    csv = pd.read_csv(folder / "sweep.csv")
    assert list(csv.columns[:3]) == ["point", "scheme.cut_layer", "seed"]
    assert list(zip(csv["scheme.cut_layer"], csv.seed)) == [(2, 4), (2, 5)]
    assert (csv.rounds == 1).all()  # --set reaches every point
    assert csv.final_accuracy.nunique() == 2 or csv.sim_time_s.nunique() == 2  # another seed, another run
    assert "scheme.cut_layer" in out and "sim_time_s" in out


@pytest.mark.parametrize("grid, expected", [
    (["scheme.cut_layer=1,9"], ["sweep.grid.scheme.cut_layer=9:", "beyond the model's depth", "1 to 4"]),
    (["network.medium.bandwith_hz=5e6"], ["sweep.grid.network.medium.bandwith_hz='5e6'", "unknown key",
                                          "bandwidth_hz"]),
    ([f"{BANDWIDTH}=-1,5e6", "devices.3.count=1"], [f"sweep.grid.{BANDWIDTH}=-1", "greater than 0",
                                                     "sweep.grid.devices.3.count=1", "not in this list"]),
    (["model.source=tiny-bert,minilm", "scheme.cut_layer=5"],  # only one combination is impossible
     ["sweep point (model.source='tiny-bert', scheme.cut_layer=5)", "1 to 4 for 'tiny-bert'"]),
    (["seed=a"], ["sweep.grid.seed='a'", "valid integer"]),
    (["seed="], ["--grid 'seed='", "no values"]),
    (["seed"], ["--grid 'seed'", "key.path=V1,V2"]),
    ([], ["sweep.grid: no points"]),
])
def test_a_bad_key_or_value_exits_2_naming_it_before_anything_runs(tmp_path, capsys, grid, expected):
    path = _file(tmp_path, _split(tmp_path))
    assert main(["sweep", str(path), "--quiet", *[a for g in grid for a in ("--grid", g)]]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert "Traceback" not in err
    assert not _results(tmp_path).exists()  # nothing ran, no folder


def test_a_bad_value_in_the_files_grid_is_refused_too(tmp_path):
    with pytest.raises(ScenarioError) as err:
        cosim.sweep(_split(tmp_path, **{"scheme.cut_layer": [2, 7], "seed": [1, 2]}))
    assert err.value.problems == ["sweep.grid.scheme.cut_layer=7: scheme.cut_layer: beyond the model's depth "
                                  "(given 7); allowed: 1 to 4 for 'tiny-bert' (4 blocks)"]  # once, not per seed
    with pytest.raises(ScenarioError, match=r"sweep\.grid\.seed: Input should be a valid list"):
        cosim.sweep(_split(tmp_path, seed=3))
    assert not _results(tmp_path).exists()


def test_values_on_the_command_line_read_as_yaml():
    assert parse_grid("seed=1,2,3") == ("seed", [1, 2, 3])
    assert parse_grid("scheme.name=fedavg, splitlora") == ("scheme.name", ["fedavg", "splitlora"])
    assert parse_grid("devices.1.mobility.speed_mps=[5, 10],[20,30]") == \
        ("devices.1.mobility.speed_mps", [[5, 10], [20, 30]])
    assert parse_grid("scheme.lora=null,{r: 4}") == ("scheme.lora", [None, {"r": 4}])


def test_a_point_that_fails_at_run_time_leaves_the_others_finished(tmp_path, capsys):
    """A device profile too small for its part of the model is only found when the run builds."""
    raw = _split(tmp_path, **{"devices.0.profile": ["jetson-nano", "speck"]})
    raw["profiles"] = {"speck": {"peak_flops": 1e9, "utilization": 0.5, "memory_bytes": 1000, "compute_power_w": 1}}
    assert main(["sweep", str(_file(tmp_path, raw)), "--quiet"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert "sweep point 1 (devices.0.profile=speck): devices.0.profile: 'speck' has" in captured.err
    folder = Path(captured.out.strip().splitlines()[-1].removeprefix("results: ").split(" (")[0])
    csv = pd.read_csv(folder / "sweep.csv")
    assert list(csv["devices.0.profile"]) == ["jetson-nano"] and csv.rounds[0] == 2


def test_a_killed_sweep_keeps_the_rows_of_its_finished_runs(tmp_path):
    raw = _split(tmp_path, **{"scheme.rounds": [1, 100_000]})  # the second point runs until killed
    path = _file(tmp_path, raw)
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "sweep", str(path), "--quiet", "--workers", "2"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, csv = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(_results(tmp_path).glob("tiny/sweep-*/sweep.csv"))
            if found:
                csv = found[0]
                break
            time.sleep(0.5)
        assert csv is not None, "no row was written while the sweep ran"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
        proc.wait()
    rows = pd.read_csv(csv)
    assert list(rows.point) == [0] and list(rows["scheme.rounds"]) == [1] and rows.rounds[0] == 1
    assert Path(rows.run_dir[0], "summary.json").is_file()


def test_the_ray_backend_without_ray_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as when it is not installed
    with pytest.raises(ScenarioError, match=r"cosim\[ray\]"):
        cosim.sweep(_split(tmp_path, seed=[1, 2]), backend="ray")
    assert not _results(tmp_path).exists()


def test_a_ray_address_that_does_not_answer_is_refused_naming_it(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")

    def unreachable(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance")

    monkeypatch.setattr(ray, "init", unreachable)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ScenarioError, match=r"address: no Ray cluster answered at 'head:6379' \(ConnectionError"):
        cosim.sweep(_split(tmp_path, seed=[1, 2]), backend="ray", address="head:6379")
    assert not list(_results(tmp_path).glob("tiny/sweep-*"))  # nothing ran, no folder left


@pytest.mark.slow
def test_ray_on_a_local_ray_gives_the_table_local_processes_give(tmp_path):
    pytest.importorskip("ray")
    raw = _split(tmp_path, **{BANDWIDTH: [2e6, 20e6]})
    local = cosim.sweep(raw, workers=2)
    throwaway = set(Path(tempfile.gettempdir()).glob("cosim-ray-*"))
    on_ray = cosim.sweep(raw, backend="ray", workers=2)
    pd.testing.assert_frame_equal(on_ray.drop(columns=HOST), local.drop(columns=HOST))
    assert set(on_ray.run_dir).isdisjoint(local.run_dir)
    # pytest's folders are too deep for Ray's sockets: its session went to a short folder, now gone
    # (another test worker's Ray session may come and go meanwhile: only this one's must not stay)
    assert set(Path(tempfile.gettempdir()).glob("cosim-ray-*")) <= throwaway


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "scenarios").glob("*.yaml"))
                                  if "sweep:" in p.read_text()], ids=lambda p: p.stem)
def test_every_point_of_a_shipped_sweep_validates(path):
    keys, points, scenarios = points_of(path)
    assert len(points) == len(scenarios) >= 2 and keys



def test_validate_checks_every_point_of_the_files_grid(tmp_path, capsys):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "splitlora", "cut_layer": 1, "rounds": 1, "local_steps": 1, "batch_size": 8}
    raw["sweep"] = {"grid": {"scheme.cut_layer": [1, 9]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    assert "scheme.cut_layer" in capsys.readouterr().err
    raw["sweep"]["grid"]["scheme.cut_layer"] = [1, 2]
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == 0
    assert "sweep: 2 points over scheme.cut_layer" in capsys.readouterr().out


def test_a_scenario_with_a_compare_list_runs_every_entry_at_every_point(tmp_path):
    """The entries are the innermost key, `compare`; each is the entry's merged scheme block on the
    point's settings, so a swept key reaches every entry."""
    raw = _split(tmp_path, **{BANDWIDTH: [2e6, 20e6]})
    raw["compare"] = ["splitlora", {"label": "fast-lr", "scheme": {"name": "splitlora", "lr": 0.05}},
                      {"label": "fedlora", "scheme": {"name": "fedlora"}}]
    keys, points, scenarios = points_of(raw)
    assert keys == [BANDWIDTH, "compare"]
    assert [(p[BANDWIDTH], p["compare"]) for p in points] == [
        (2e6, "splitlora"), (2e6, "fast-lr"), (2e6, "fedlora"),
        (20e6, "splitlora"), (20e6, "fast-lr"), (20e6, "fedlora")]
    assert [sc.network.medium.bandwidth_hz for sc in scenarios] == [2e6] * 3 + [20e6] * 3
    assert [sc.scheme.name for sc in scenarios[:3]] == ["splitlora", "splitlora", "fedlora"]
    assert scenarios[1].scheme.lr == 0.05 and scenarios[0].scheme.lr == raw["scheme"]["lr"]
    assert not hasattr(scenarios[2].scheme, "cut_layer")  # a base key its scheme does not declare stays out
    assert all(not sc.compare for sc in scenarios)        # each run folder holds a one-scheme scenario

    raw["compare"][1]["scheme"]["bits"] = 4                # an entry's bad key is named by its path
    with pytest.raises(ScenarioError, match=r"compare\.1\.scheme\.bits"):
        points_of(raw)
    with pytest.raises(ScenarioError, match=r"sweep\.grid\.compare: not a setting to sweep"):
        points_of(_split(tmp_path, compare=[["splitlora"]]))


def test_quality_at_a_budget_is_that_of_the_last_round_closed_by_then(tmp_path):
    """What the same run stopped by `stop.sim_time_s` would report: a stop changes nothing before it."""
    from cosim.sweep import at_budget

    pd.DataFrame({"round": [0, 1, 2], "sim_time_s": [0.0, 2.0, 5.0], "accuracy": [0.1, 0.2, 0.3],
                  "perplexity": [90.0, 60.0, 40.0]}).to_csv(tmp_path / "rounds.csv", index=False)
    assert at_budget(tmp_path, 4.9) == {"budget_s": 4.9, "rounds_at_budget": 1, "accuracy_at_budget": 0.2,
                                        "perplexity_at_budget": 60.0}
    assert at_budget(tmp_path, 5.0)["perplexity_at_budget"] == 40.0   # a round that closes at the budget counts
    assert at_budget(tmp_path, 1.0)["rounds_at_budget"] == 0          # the initial model
