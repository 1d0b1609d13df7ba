"""Progress is guaranteed or the run stops with its reason (issue 16): a stop limit ends a run
mid-round, a round nobody can join waits for coverage or ends the run, a transfer at rate 0 gives
up per the outage policy, a wall-clock limit stops between events, and a link beyond its model's
valid distance is out of coverage with a trace row saying so."""
from __future__ import annotations

import math
import time

import pytest

from conftest import tiny_scenario
from cosim.run import run
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import Static
from cosim.world.network import Network, NetworkConfig, OutagePolicy, TransferDropped
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES


def _small(tmp_path, **changes):
    raw = tiny_scenario(tmp_path, **changes)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    raw["scheme"] = {**raw["scheme"], "rounds": 3, "local_steps": 1}
    return raw


def _kinds(result, kind):
    return result.events[result.events.kind == kind]


# --- the simulated-time limit ends a run mid-round ------------------------------------------------

def test_a_1_hz_band_stops_at_the_simulated_time_limit_within_its_first_round(tmp_path):
    raw = _small(tmp_path, stop={"sim_time_s": 10})
    raw["network"] = {"medium": {"bandwidth_hz": 1}}   # a model download would take days of simulated time
    wall0 = time.perf_counter()
    result = run(raw, progress=False, plots=False)
    assert time.perf_counter() - wall0 < 30
    assert result.summary["stop_reason"] == "sim_time_s=10 reached"
    assert result.summary["sim_time_s"] == pytest.approx(10.0)
    assert result.summary["rounds"] == 0 and list(result.rounds["round"]) == [0]   # round 1 never closed
    stopped = _kinds(result, "run_stopped")
    assert len(stopped) == 1 and "round 1 unfinished" in stopped.detail.iloc[0]
    assert stopped.t_start.iloc[0] == pytest.approx(10.0)
    assert (result.events.t_end <= 10.0 + 1e-9).all()


def test_a_limit_between_rounds_closes_the_last_round_it_began(tmp_path):
    """A round that ends before the limit is kept whole; the one in progress at the limit is cut."""
    full = run(_small(tmp_path / "a"), progress=False, plots=False)
    t1, t2 = full.rounds.sim_time_s.iloc[1], full.rounds.sim_time_s.iloc[2]
    cut = run(_small(tmp_path / "b", stop={"sim_time_s": float((t1 + t2) / 2)}), progress=False, plots=False)
    assert list(cut.rounds["round"]) == [0, 1]
    assert cut.rounds.iloc[1].to_dict() == full.rounds.iloc[1].to_dict()
    assert cut.summary["sim_time_s"] == pytest.approx((t1 + t2) / 2)
    assert "round 2 unfinished" in _kinds(cut, "run_stopped").detail.iloc[0]


# --- a round nobody can join -----------------------------------------------------------------------

def test_every_device_out_of_range_ends_the_run_with_no_participant_instead_of_empty_rounds(tmp_path):
    raw = _small(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano", "mobility": {"kind": "static",
                                                                          "position_m": [30, 0, 1.5]}}]
    raw["edge"] = [{"profile": "edge-t4", "position_m": [100_000, 0, 25]}]   # 100 km from both devices
    result = run(raw, progress=False, plots=False)
    assert result.summary["stop_reason"] == "no participant can return"
    assert result.summary["rounds"] == 0 and result.summary["sim_time_s"] == 0.0
    row = _kinds(result, "no_participant")
    assert len(row) == 1 and row.category.iloc[0] == "fault" and "before round 1" in row.detail.iloc[0]
    far = _kinds(result, "out_of_range")
    assert set(far.node) == {"dev0", "dev1"} and "d2d_m=99970 beyond 3gpp-uma" in far.detail.iloc[0]


def test_devices_that_left_for_good_end_the_run_instead_of_spinning(tmp_path):
    raw = _small(tmp_path)
    raw["scheme"]["rounds"] = 1000
    raw["devices"] = [{"count": 2, "profile": "jetson-nano",
                       "mobility": {"kind": "road", "speed_mps": [20, 20], "length_m": 60, "wrap": False}}]
    result = run(raw, progress=False, plots=False)   # off the road after 3 s, never to return
    assert result.summary["stop_reason"] == "no participant can return"
    assert result.summary["rounds"] < 1000 and result.summary["sim_time_s"] < 3 + 30 + 1
    last = result.rounds.iloc[-1]
    assert _kinds(result, "no_participant")["round"].iloc[0] == last["round"] + 1


def test_a_round_waits_for_a_device_that_comes_back():
    """Nobody in coverage at the round's start: the round begins when the first device is back
    (here a vehicle that enters the road at t = 5 s), with one no_participant row over the wait."""
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0, 0, 25])))
    sim.devices.append(Node(sim, "dev0", "device", "jetson-nano", PROFILES["jetson-nano"], _Arriving(5.0)))
    sim.network = Network(sim, NetworkConfig(channel={"pathloss": {"model": "fspl"}, "shadowing": False,
                                                      "fading": "none"}))
    started = []

    def scheme():
        for rnd in sim.rounds():
            started.append((rnd, sim.now))
            yield sim.timeout(1.0)

    sim.drive(sim.process(scheme()))
    assert started == [(1, pytest.approx(5.0))]
    row = [r for r in sim.trace.rows if r[4] == "no_participant"]
    assert len(row) == 1 and row[0][0] == 0.0 and row[0][1] == pytest.approx(5.0)


class _Arriving(Static):
    """At 50 m from the AP from `entry_s` on; nowhere before."""

    def __init__(self, entry_s: float):
        super().__init__([50.0, 0.0, 1.5])
        self.entry_s = entry_s

    def position_m(self, t_s):
        return self._position_m if t_s >= self.entry_s else None

    def entry_time_s(self):
        return self.entry_s


def test_local_training_without_transfers_ignores_coverage(tmp_path):
    raw = _small(tmp_path)
    raw["scheme"] = {"name": "local_lora", "rounds": 2, "local_steps": 1, "batch_size": 8, "lr": 0.005,
                     "lora": {"r": 2}}
    raw["devices"] = [{"count": 2, "profile": "jetson-nano", "mobility": {"kind": "static",
                                                                          "position_m": [30, 0, 1.5]}}]
    raw["edge"] = [{"profile": "edge-t4", "position_m": [100_000, 0, 25]}]
    result = run(raw, progress=False, plots=False)
    assert result.summary["rounds"] == 2 and result.summary["stop_reason"] == "rounds=2 done"


# --- a transfer at rate 0 --------------------------------------------------------------------------

class _SilentLink:
    """In coverage, but its rate is 0 (e.g. a THz link whose SNR underflows): never finishes alone."""

    spec = NetworkConfig()

    def in_coverage(self, t_s, full):
        return True

    def rate_bps(self, t_s, uplink, share, full):
        return 0.0, math.inf

    def next_change_s(self, t_s):
        return math.inf

    def tx_power_dbm(self, uplink):
        return 23.0


@pytest.mark.parametrize("policy, gives_up_at_s", [("wait", 5.0), ("drop", 0.0)])
def test_a_transfer_at_rate_0_in_coverage_gives_up_per_the_outage_policy(policy, gives_up_at_s):
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0, 0, 25])))
    for i in range(2):
        sim.devices.append(Node(sim, f"dev{i}", "device", "jetson-nano", PROFILES["jetson-nano"],
                                Static([50.0, 0.0, 1.5])))
    sim.network = Network(sim, NetworkConfig(channel={"pathloss": {"model": "fspl"}, "shadowing": False,
                                                      "fading": "none"},
                                             outage=OutagePolicy(policy=policy, max_wait_s=5.0)))
    sim.network._links[("dev0", "edge0")] = _SilentLink()
    out = {}

    def fetch(dev):
        try:
            yield from sim.network.transfer(sim.edge[0], dev, 1_000_000, "model_down", 1)
            out[dev.name] = sim.now
        except TransferDropped as drop:
            out[dev.name] = drop

    for dev in sim.devices:
        sim.process(fetch(dev))
    sim.env.run(until=1000)
    assert isinstance(out["dev0"], TransferDropped) and out["dev0"].t_s == pytest.approx(gives_up_at_s)
    assert "rate 0" in out["dev0"].reason
    assert out["dev1"] < 1.0   # the other flow got on with its share, and all the band once dev0 gave up


# --- the wall-clock limit -------------------------------------------------------------------------

def test_the_wall_clock_limit_stops_between_events_and_never_changes_what_was_simulated(tmp_path):
    raw = _small(tmp_path / "cut", runtime={"max_wall_s": 1.5})
    raw["scheme"]["rounds"] = 10_000
    cut = run(raw, progress=False, plots=False)
    assert cut.summary["stop_reason"] == "max_wall_s=1.5 reached"
    closed = cut.summary["rounds"]
    assert 0 < closed < 10_000
    same = _small(tmp_path / "whole")
    same["scheme"]["rounds"] = closed
    whole = run(same, progress=False, plots=False)
    assert cut.rounds.equals(whole.rounds)   # host time stopped the run; it timed nothing
