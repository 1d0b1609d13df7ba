"""MAVFL: a vehicle that drives away before its upload completes fails that round — a
failed_participation in the trace, its update left out of the average — and the server's bandit
picks vehicles by the UCB1 formula."""
from __future__ import annotations

import math

import pytest

import cosim
from cosim.schemes import mavfl
from cosim.schemes.mavfl import UCB1_EXPLORATION, Bandit, ucb1_indices, ucb1_select, utilities
from conftest import tiny_scenario

SLOW_CAR = {"peak_flops": 2e8, "utilization": 0.5, "memory_bytes": 4e9, "compute_power_w": 5.0}  # 1.4 s a tiny step
ROAD = {"kind": "road", "start_m": [-100, 20], "length_m": 200, "speed_mps": [20, 30]}


def highway(tmp_path, selection="ucb"):
    raw = tiny_scenario(tmp_path)
    raw["profiles"] = {"slowcar": SLOW_CAR}
    raw["devices"] = [{"count": 8, "profile": "slowcar", "name": "car", "mobility": ROAD},
                      {"count": 12, "profile": "slowcar", "name": "car",
                       "mobility": {**ROAD, "arrival_rate_per_s": 0.5}}]
    raw["network"] = {"medium": {"bandwidth_hz": 20e6}, "outage": {"policy": "drop"}}
    raw["scheme"] = {"name": "mavfl", "selection": selection, "rounds": 4, "local_steps": 3, "batch_size": 8,
                     "participants": 4}
    return raw


def test_vehicles_that_leave_mid_round_fail_and_are_not_aggregated(tmp_path, monkeypatch):
    averaged = []
    original = mavfl.aggregate

    def spy(sim, server, uploads, *args, **kwargs):
        averaged.append(len(uploads))
        return (yield from original(sim, server, uploads, *args, **kwargs))

    monkeypatch.setattr(mavfl, "aggregate", spy)
    r = cosim.run(highway(tmp_path), progress=False, plots=False)
    ev = r.events
    failed = ev[ev.kind == "failed_participation"]
    dropped = ev[ev.kind == "drop"]
    assert len(failed) > 0, "the scenario should make some cars leave mid-round"
    assert set(zip(failed.node, failed["round"])) == set(zip(dropped.node, dropped["round"]))
    uploads = ev[ev.kind == "model_up"]
    rounds = r.rounds[r.rounds["round"] > 0]
    per_round_uploads = [int((uploads["round"] == k).sum()) for k in rounds["round"]]
    assert [n for n in per_round_uploads if n] == averaged          # only completed uploads are averaged
    assert list(rounds.failed) == [int((failed["round"] == k).sum()) for k in rounds["round"]]
    assert list(rounds.updates) == per_round_uploads
    assert not set(zip(failed.node, failed["round"])) & set(zip(uploads.node, uploads["round"]))


def test_ucb1_index_is_mean_plus_sqrt_two_log_n_over_plays():
    means, counts = [0.5, 0.9, 0.2, 0.0], [4, 1, 2, 0]
    n = 7
    index = ucb1_indices(means, counts, n)
    for j in range(3):
        assert index[j] == pytest.approx(means[j] + math.sqrt(2 * math.log(n) / counts[j]))
    assert math.isinf(index[3])                                      # unplayed arms go first
    assert UCB1_EXPLORATION == pytest.approx(math.sqrt(2))
    # 0.5+1.05=1.55, 0.9+1.97=2.87, 0.2+1.39=1.59 → unplayed, then arm 1, then arm 2
    assert ucb1_select(means, counts, n, k=3) == [3, 1, 2]
    assert ucb1_select(means, counts, n, k=2, exploration=0.0) == [3, 1]  # c = 0: greedy on the mean


def test_reward_is_zero_for_a_failure_and_favours_high_loss_and_low_delay():
    u = utilities({"a": (0.8, 2.0), "b": (0.4, 4.0), "c": None}, loss_weight=0.5)
    assert u == {"a": pytest.approx(1.0), "b": pytest.approx(0.5 * 0.5 + 0.5 * 0.5), "c": 0.0}
    bandit = Bandit()
    bandit.update("a", True, 1.0)
    bandit.update("a", False, 0.0)
    assert bandit.participation_ratio("a") == 0.5 and bandit.total_plays == 2


@pytest.mark.parametrize("selection", ["random", "all"])
def test_baselines_run_and_all_takes_every_vehicle_in_range(tmp_path, selection):
    r = cosim.run(highway(tmp_path, selection), progress=False, plots=False)
    rounds = r.rounds[r.rounds["round"] > 0]
    if selection == "random":
        assert (rounds.clients <= 4).all()
    else:
        assert rounds.clients.iloc[0] > 4
