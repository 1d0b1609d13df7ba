"""TensorBoard scalars (`outputs.tensorboard: true`): read back from the event file, each round's
accuracy and loss are rounds.csv's, each point's time is the round's simulated end, and the totals
at the last round are summary.json's; without the package the scenario is refused, naming the key."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

import cosim
from cosim.scenario import ScenarioError
from cosim.tensorboard_log import FOLDER, ROUND_TAGS, SIM_TIME_TAG, TOTAL_TAGS
from conftest import tiny_scenario


def _f32(x) -> float:
    """What TensorBoard keeps of a value: a float32."""
    return float(np.float32(x))


def test_the_scalars_read_back_equal_the_tables(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional extra cosim[report] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = tiny_scenario(tmp_path)
    raw["scheme"]["rounds"] = 3
    raw["outputs"]["tensorboard"] = True
    r = cosim.run(raw)
    files = list((r.dir / FOLDER).glob("events.out.tfevents.*"))
    assert len(files) == 1
    board = EventAccumulator(str(r.dir / FOLDER))
    board.Reload()
    rounds = pd.read_csv(r.dir / "rounds.csv")
    summary = json.loads((r.dir / "summary.json").read_text())

    for column in ("accuracy", "loss", "eval_loss"):
        points = board.Scalars(ROUND_TAGS[column])
        known = rounds[rounds[column].notna()]   # round 0 has no training loss
        assert [p.step for p in points] == list(known["round"])
        assert [p.value for p in points] == [_f32(v) for v in known[column]]
        assert [p.wall_time for p in points] == list(known.sim_time_s)   # x = simulated time, exactly
    assert [p.value for p in board.Scalars(SIM_TIME_TAG)] == [_f32(t) for t in rounds.sim_time_s]

    for key, tag in TOTAL_TAGS.items():
        points = board.Scalars(tag)
        assert [p.step for p in points] == list(rounds["round"])
        assert points[-1].value == _f32(summary[key])
        assert all(a.value <= b.value for a, b in zip(points, points[1:])), tag   # totals and peaks only grow
    assert board.Scalars(TOTAL_TAGS["bytes_up"])[-1].value > board.Scalars(TOTAL_TAGS["bytes_up"])[0].value


def test_without_the_package_the_scenario_is_refused_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if tensorboard were not installed
    raw = tiny_scenario(tmp_path)
    raw["outputs"]["tensorboard"] = True
    with pytest.raises(ScenarioError, match=r"outputs\.tensorboard.*pip install 'cosim\[report\]'"):
        cosim.run(raw)
    assert not (tmp_path / "results").exists()   # refused before any folder was made


def test_a_resumed_run_goes_on_in_the_same_log_with_each_round_once(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the optional extra cosim[report] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cosim import checkpoint

    class Stop(Exception):
        pass

    boundary = checkpoint.Checkpoints.boundary

    def stop_after_round_3_with_round_1s_checkpoint(self, sim, state):
        boundary(self, sim, state)
        self.every_s = float("inf")   # no checkpoint after round 1's: rounds 2 and 3 get written twice
        if sim.current_round == 3:
            raise Stop

    raw = tiny_scenario(tmp_path)
    raw["scheme"]["rounds"] = 4
    raw["outputs"]["tensorboard"] = True
    with monkeypatch.context() as m:
        m.setattr(checkpoint.Checkpoints, "boundary", stop_after_round_3_with_round_1s_checkpoint)
        with pytest.raises(Stop):
            cosim.run(raw)
    (run_dir,) = (tmp_path / "results").glob("*/*")
    assert checkpoint.read(run_dir)["writer"]["rounds_written"] == 2   # rounds 0 and 1
    cosim.run(resume=run_dir)

    board = EventAccumulator(str(run_dir / FOLDER))
    board.Reload()
    rounds = pd.read_csv(run_dir / "rounds.csv")
    points = board.Scalars(ROUND_TAGS["accuracy"])
    assert [p.step for p in points] == [0, 1, 2, 3, 4] == list(rounds["round"])
    assert [p.value for p in points] == [_f32(v) for v in rounds.accuracy]
    assert [p.wall_time for p in points] == list(rounds.sim_time_s)
