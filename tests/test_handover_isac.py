"""Several access points (handover), coverage events from mobility, and the UAV THz-ISAC link in a run."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import yaml

from channels import isac
from cosim.run import run
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import RoadSegment, Static
from cosim.world.mobility.uav import UavPath
from cosim.world.network import Network, NetworkConfig
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES

from conftest import ROOT

B_HZ = 10e6


def world(mobilities, aps=((0, 0, 25),), association="nearest", isac=None, link_models=None):
    sim = Simulation(0, StopRule(rounds=1))
    for i, ap in enumerate(aps):
        mob = ap if not isinstance(ap, tuple) else Static(list(ap))
        sim.edge.append(Node(sim, f"edge{i}", "edge", "edge-t4", PROFILES["edge-t4"], mob))
    for i, m in enumerate(mobilities):
        sim.devices.append(Node(sim, f"dev{i}", "device", "jetson-nano", PROFILES["jetson-nano"], m))
    config = radio(association=association, isac=isac or {})
    sim.network = Network(sim, config, link_models=link_models)
    return sim


def radio(**changes) -> NetworkConfig:
    """A free-space cell without shadowing or fading, transfers dropped in outage."""
    return NetworkConfig(**{"frequency_hz": 3.5e9, "medium": {"bandwidth_hz": B_HZ, "sharing": "equal"},
                            "channel": {"pathloss": {"model": "fspl"}, "shadowing": False, "fading": "none"},
                            "outage": {"policy": "drop"}, "backhaul": {"rate_bps": 1e9, "latency_s": 0.0},
                            **changes})


def rows(sim, kind):
    return [r for r in sim.trace.rows if r[4] == kind]


# --- handover ------------------------------------------------------------------------------------

@pytest.mark.parametrize("association", ["nearest", "strongest"])
def test_a_vehicle_driving_between_two_aps_hands_over_and_later_transfers_use_the_new_ap(association):
    # road x = -100 → 700 at y = 30, 20 m/s; APs at x = 0 and x = 500: the midpoint x = 250 is at t = 17.5 s
    car = RoadSegment([-100, 30], 800, speed_mps=20, start_offset_m=0, wrap=False)
    sim = world([car], aps=((0, 0, 25), (500, 0, 25)), association=association)
    dev, edge0, edge1 = sim.devices[0], *sim.edge
    log = {}

    def proc():
        yield sim.timeout(1.0)        # x = -80: edge0
        yield from sim.network.transfer(dev, edge0, 1_000_000, "model_up", 1)
        log["first_ap"] = sim.network.serving_ap(dev).name
        yield sim.timeout(14.0 - sim.now)   # x = 180: edge0; a long upload that carries on past x = 250
        yield from sim.network.transfer(dev, edge0, 60_000_000, "model_up", 1)
        log["long_done"] = sim.now
        yield sim.timeout(max(0.0, 22.0 - sim.now))   # x ≥ 340: nearer (and stronger) edge1
        yield from sim.network.transfer(dev, edge0, 1_000_000, "model_up", 2)
        yield from sim.network.transfer(edge0, dev, 1_000_000, "model_down", 2)
    sim.process(proc())
    sim.env.run()

    assert log["first_ap"] == "edge0"
    assert log["long_done"] > 17.5            # the long upload was still running when the car passed x = 250
    ups = [r for r in sim.trace.rows if r[4] == "model_up"]
    # the hop in progress finished on the old AP's medium: the car stayed in edge0's coverage
    assert ups[1][2:4] == ("dev0", "edge0") and ups[1][1] == log["long_done"]
    handovers = rows(sim, "handover")
    assert len(handovers) == 1
    t, node, peer, detail = (handovers[0][i] for i in (0, 2, 3, 10))   # t_start, node, peer, detail
    assert (node, peer, detail) == ("dev0", "edge1", "edge0") and t >= 17.5
    # after it: up over the air to edge1, then edge1 → edge0 over the backhaul; down the other way
    assert [(r[2], r[3]) for r in ups[2:]] == [("dev0", "edge1"), ("edge1", "edge0")]
    downs = [(r[2], r[3]) for r in sim.trace.rows if r[4] == "model_down"]
    assert downs == [("edge0", "edge1"), ("edge1", "dev0")]


def test_strongest_association_follows_the_snr_not_the_distance():
    # edge1 is nearer but transmits 30 dB less: strongest picks edge0, nearest picks edge1
    pos = Static([300, 0, 1.5])
    for association, expected in (("nearest", "edge1"), ("strongest", "edge0")):
        sim = world([pos], aps=((0, 0, 25), (400, 0, 25)), association=association)
        sim.network.link_to(sim.devices[0], sim.edge[1]).config = radio(ap_tx_power_dbm=13.0)
        assert sim.network.serving_ap(sim.devices[0]).name == expected


# --- coverage events -----------------------------------------------------------------------------

def test_enter_and_leave_fire_at_the_crossing_times_of_a_road_vehicle():
    # road along y = 30 from x = -500, 20 m/s, 1 km long; AP at the origin; radius 100 m (ground distance):
    # inside while |x| <= sqrt(100² - 30²) = 95.394 m
    car = RoadSegment([-500, 30], 1000, speed_mps=20, start_offset_m=0, wrap=False)
    parked = Static([50, 0, 1.5])
    sim = world([car, parked])
    dev, ap = sim.devices[0], sim.edge[0]
    half_chord = math.sqrt(100**2 - 30**2)
    seen = []
    sim.network.watch_coverage(dev, ap, on_enter=lambda d, a: seen.append(("enter", sim.now, d.name, a.name)),
                               on_leave=lambda d, a: seen.append(("leave", sim.now, d.name, a.name)), radius_m=100)
    wide = []
    sim.network.watch_coverage(dev, ap, on_enter=lambda d, a: wide.append(("enter", sim.now)),
                               on_leave=lambda d, a: wide.append(("leave", sim.now)), radius_m=1000)
    sim.env.run(until=200)

    assert [s[0] for s in seen] == ["enter", "leave"] and seen[0][2:] == ("dev0", "edge0")
    assert seen[0][1] == pytest.approx((500 - half_chord) / 20, abs=1e-6)   # 20.2303 s
    assert seen[1][1] == pytest.approx((500 + half_chord) / 20, abs=1e-6)   # 29.7697 s
    # the 1 km disc holds the whole road: enter on subscribing, leave when the car leaves the road (t = 50 s)
    assert wide == [("enter", 0.0), ("leave", pytest.approx(50.0, abs=1e-6))]
    traced = [(r[4], r[2], r[3]) for r in sim.trace.rows]
    assert traced.count(("enter", "dev0", "edge0")) == 2 and traced.count(("leave", "dev0", "edge0")) == 2
    assert all(r[2] != "dev1" for r in sim.trace.rows)   # only subscribed devices have events


def test_snr_threshold_coverage_event_when_the_vehicle_leaves():
    car = RoadSegment([-500, 30], 1000, speed_mps=25, start_offset_m=500, wrap=False)   # gone at t = 20 s
    sim = world([car])
    events = []
    sim.network.watch_coverage(sim.devices[0], sim.edge[0], on_enter=lambda d, a: events.append(("enter", sim.now)),
                               on_leave=lambda d, a: events.append(("leave", sim.now)))
    sim.env.run(until=100)
    assert events == [("enter", 0.0), ("leave", pytest.approx(20.0, abs=1e-9))]


# --- the THz-ISAC link ---------------------------------------------------------------------------

def uav_world(speed_mps, sensing_fraction=0.0):
    uav = UavPath("circle", rng=np.random.default_rng(3), altitude_m=100, radius_m=60, speed_mps=speed_mps,
                  position_jitter_std_m=0.0)
    return world([Static([0, 0, 1.5])], aps=(uav,), isac={"sensing_fraction": sensing_fraction},
                 link_models={"edge0": "thz-isac"})


def mean_rate(sim, uplink):
    link = sim.network.link(sim.devices[0])
    return float(np.mean([link.rate_bps(t, uplink, 10e9, 10e9)[0] for t in np.arange(0, 120, 0.1)]))


def test_flying_uav_jitter_lowers_the_thz_link_rate_on_average():
    # the device sits under the circle's centre, so the distance is the same whether the UAV flies or hovers
    hovering, flying = uav_world(0.0), uav_world(15.0)
    assert hovering.edge[0].mobility.is_hovering(5.0) and not flying.edge[0].mobility.is_hovering(5.0)
    for uplink in (False, True):
        assert mean_rate(flying, uplink) < mean_rate(hovering, uplink)


def test_sense_events_carry_the_sensing_snr_and_sensing_costs_rate():
    rates = {}
    for alpha in (0.0, 0.3):
        sim = uav_world(15.0, alpha)
        rates[alpha] = mean_rate(sim, False)
        senses = rows(sim, "sense")
        assert len(senses) >= 100                       # one per re-evaluation (every 0.1 s pointing block)
        for r in senses[:20]:
            fields = dict(kv.split("=") for kv in r[10].split())
            assert (r[2], r[3]) == ("edge0", "dev0")
            expected = isac.isac_tradeoff(alpha, "time", frequency_hz=300e9, bandwidth_hz=10e9, tx_power_dbm=20.0,
                                          num_elements=1024, target_distance_m=float(fields["distance_m"]),
                                          user_distance_m=float(fields["distance_m"]), user_gain_db=20.0,
                                          noise_figure_db=10.0,
                                          pointing_error_rad=float(fields["pointing_error_rad"]))
            if alpha == 0:
                assert fields["sensing_snr_db"] == "-inf"
            else:
                assert float(fields["sensing_snr_db"]) == pytest.approx(float(expected.sensing_snr_db), abs=2e-3)
            assert float(fields["comm_rate_bps"]) == pytest.approx(float(expected.comm_rate_bps), rel=1e-5)
    # time split: the pointing draws are the same stream, so the rate left is exactly (1 − α)
    assert rates[0.3] == pytest.approx(0.7 * rates[0.0], rel=1e-9)


def uav_scenario(tmp_path, sensing_fraction):
    raw = yaml.safe_load((ROOT / "scenarios" / "uav_thz_isac.yaml").read_text())
    raw["model"] = {"source": "tiny-bert", "max_length": 32}
    raw["data"]["test_samples"] = 64
    raw["scheme"].update(rounds=2, local_steps=3, batch_size=8, participants=4, lora=None)
    raw["outputs"] = {"dir": str(tmp_path / f"results{sensing_fraction}"), "progress": False, "plots": []}
    raw["network"]["isac"]["sensing_fraction"] = sensing_fraction
    return raw


def test_sensing_fraction_sweep_lengthens_time_and_leaves_accuracy_alone(tmp_path):
    fractions = [0.0, 0.1, 0.25, 0.5]
    results = [run(uav_scenario(tmp_path, a), progress=False, plots=False) for a in fractions]
    times = [r.summary["sim_time_s"] for r in results]
    accuracy = [r.rounds["accuracy"].tolist() for r in results]
    print("sensing sweep sim_time_s:", dict(zip(fractions, times)))
    assert all(a < b for a, b in zip(times, times[1:])), times
    assert all(acc == accuracy[0] for acc in accuracy)
    events = results[-1].events
    sense = events[events["kind"] == "sense"]
    assert len(sense) > 0
    snr = sense["detail"].map(lambda d: float(re.search(r"sensing_snr_db=(\S+)", d).group(1)))
    assert np.isfinite(snr).all()
    assert not (events["kind"] == "drop").any()
