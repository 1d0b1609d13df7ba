"""Mobility models: vehicles on a road arrive, drive through and leave; walkers stay in their area;
a UAV hovers, circles or flies waypoints; recorded traces and live SUMO traffic drive the devices;
moving away from the access point slows an upload down."""
from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import yaml

from cosim.cli import main as cli_main
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import (GaussMarkov, RandomWaypoint, RoadSegment, Static, TraceTrack, UavPath,
                                  load_trace, poisson_arrival_times_s)
from cosim.world.network import Network, NetworkConfig
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES

from conftest import ROOT, tiny_scenario

SUMOCFG = ROOT / "scenarios" / "sumo" / "grid.sumocfg"


# --- road ----------------------------------------------------------------------------------------
def test_road_vehicle_stays_on_the_segment_and_spends_length_over_speed_in_it():
    rng = np.random.default_rng(1)
    arrivals = poisson_arrival_times_s(rng, 0.5, 20)
    for k, entry in enumerate(arrivals):
        speed = rng.uniform(15, 25)
        car = RoadSegment([-500, 30], 1000, speed_mps=speed, start_offset_m=0, wrap=False, entry_s=entry)
        assert car.position_m(entry - 1e-6) is None and car.entry_time_s() == entry
        ts = np.linspace(entry, car.exit_time_s(), 200, endpoint=False)
        xs = np.array([car.position_m(t)[0] for t in ts])
        assert np.all((xs >= -500) & (xs <= 500))
        assert car.exit_time_s() - car.entry_time_s() == pytest.approx(1000 / speed, rel=1e-12)
        assert car.position_m(car.exit_time_s()) is None


def test_poisson_arrivals_have_the_configured_mean_rate():
    rate, n = 0.2, 4000
    t = poisson_arrival_times_s(np.random.default_rng(7), rate, n)
    assert np.all(np.diff(t) > 0)
    # the count in [0, T] is Poisson(rate T): within 3 std of its mean
    horizon = t[-1] / 2
    count = int(np.sum(t <= horizon))
    assert abs(count - rate * horizon) < 3 * math.sqrt(rate * horizon)


def test_the_existing_road_behaviour_is_unchanged_without_arrivals():
    car = RoadSegment([-500, 30], 1000, speed_mps=50, start_offset_m=950, wrap=False)
    assert car.entry_time_s() == 0 and car.exit_time_s() == pytest.approx(1.0)
    ring = RoadSegment([-500, 30], 1000, speed_mps=50, start_offset_m=950, wrap=True)
    assert ring.position_m(2.0)[0] == pytest.approx(-500 + (950 + 100) % 1000)


# --- random waypoint / Gauss–Markov --------------------------------------------------------------
def test_random_waypoint_and_gauss_markov_stay_in_their_area():
    lo, hi = np.array([-50.0, 0.0]), np.array([50.0, 30.0])
    for seed in range(3):
        rwp = RandomWaypoint(lo, hi, (0.5, 3.0), 2.0, np.random.default_rng(seed))
        gm = GaussMarkov(lo, hi, 0.6, 3.0, np.random.default_rng(seed), speed_std_mps=2.0)
        for model in (rwp, gm):
            xy = np.array([model.position_m(t)[:2] for t in np.arange(0, 2000, 0.7)])
            assert np.all(xy >= lo - 1e-9) and np.all(xy <= hi + 1e-9)
            assert np.ptp(xy[:, 0]) > 50     # and they do move around it


def test_gauss_markov_with_alpha_one_keeps_a_constant_velocity():
    gm = GaussMarkov([0, 0], [10_000, 10_000], 1.0, 4.0, np.random.default_rng(3), mean_direction_rad=0.7,
                     speed_std_mps=2.0, direction_std_rad=1.0)
    start = gm.position_m(0.0)
    ts = np.arange(0, 500, 0.5)
    v = np.array([gm.velocity_mps(t) for t in ts])
    assert np.allclose(v, 4.0 * np.array([math.cos(0.7), math.sin(0.7)]), atol=1e-12)
    assert np.allclose(gm.position_m(500.0)[:2], start[:2] + 500 * v[0], atol=1e-9)


def test_a_lazy_trajectory_does_not_depend_on_the_query_order():
    a = RandomWaypoint([0, 0], [100, 100], (1, 2), 1.0, np.random.default_rng(5))
    b = RandomWaypoint([0, 0], [100, 100], (1, 2), 1.0, np.random.default_rng(5))
    ts = np.arange(0, 300, 1.3)
    fwd = [a.position_m(t) for t in ts]
    back = [b.position_m(t) for t in ts[::-1]][::-1]
    assert np.allclose(fwd, back)


# --- UAV -----------------------------------------------------------------------------------------
def test_uav_modes_and_their_jitter():
    rng = np.random.default_rng(0)
    hover = UavPath("hover", rng=rng, centre_m=(10, 20), altitude_m=50, position_jitter_std_m=0.2)
    p = np.array([hover.position_m(t) for t in np.arange(0, 100, 0.05)])
    assert np.allclose(p.mean(0), [10, 20, 50], atol=0.05) and hover.is_hovering(3.0)
    circle = UavPath("circle", rng=rng, centre_m=(0, 0), altitude_m=80, radius_m=100, speed_mps=10,
                     position_jitter_std_m=0.0)
    pts = np.array([circle.position_m(t) for t in np.linspace(0, 100, 50)])
    assert np.allclose(np.hypot(pts[:, 0], pts[:, 1]), 100) and np.allclose(pts[:, 2], 80)
    assert circle.jitter_std_rad(1.0) > hover.jitter_std_rad(1.0)
    path = UavPath("waypoints", rng=rng, waypoints_m=[[0, 0, 50], [100, 0, 50]], speed_mps=10, loop=False,
                   position_jitter_std_m=0.0)
    assert np.allclose(path.position_m(5.0), [50, 0, 50]) and not path.is_hovering(5.0)
    assert np.allclose(path.position_m(60.0), [100, 0, 50]) and path.is_hovering(60.0)
    with pytest.raises(ValueError, match="waypoints_m"):
        UavPath("waypoints", rng=rng, waypoints_m=[[0, 0, 50]], speed_mps=10)


# --- coupling to the network ---------------------------------------------------------------------
def _upload_time_s(mobility) -> float:
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0, 0, 25])))
    sim.devices.append(Node(sim, "dev0", "device", "jetson-nano", PROFILES["jetson-nano"], mobility))
    config = NetworkConfig(frequency_hz=3.5e9, medium={"bandwidth_hz": 10e6, "sharing": "equal"},
                           channel={"pathloss": {"model": "fspl"}, "shadowing": False, "fading": "none"},
                           backhaul={"rate_bps": 1e9, "latency_s": 0.0})
    sim.network = Network(sim, config)
    done = {}

    def proc():
        yield from sim.network.transfer(sim.devices[0], sim.edge[0], 100_000_000, "model_up", 1)
        done["t"] = sim.now
    sim.process(proc())
    sim.env.run()
    return done["t"]


def test_driving_away_from_the_base_station_makes_an_upload_take_longer():
    standing = _upload_time_s(Static([50, 30, 1.5]))
    driving = _upload_time_s(RoadSegment([0, 30], 5000, speed_mps=40, start_offset_m=50, wrap=False))
    assert driving > standing * 1.05


def test_a_vehicle_not_yet_arrived_is_waited_for_not_dropped():
    car = RoadSegment([0, 30], 1000, speed_mps=20, start_offset_m=0, wrap=False, entry_s=4.0)
    t = _upload_time_s(car)
    assert 4.0 < t < 4.0 + 30.0


# --- recorded traces -----------------------------------------------------------------------------
def test_a_csv_trace_is_interpolated_and_absent_outside_its_span(tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("t,id,x,y,z\n0,a,0,0,1.5\n10,a,100,0,1.5\n5,b,0,0,0\n")
    trace = load_trace(f)
    a = TraceTrack(*trace["a"])
    assert np.allclose(a.position_m(2.5), [25, 0, 1.5]) and a.speed_mps(2.5) == pytest.approx(10)
    assert a.position_m(10.5) is None and a.exit_time_s() == 10.0
    assert TraceTrack(*trace["b"]).position_m(4.9) is None


# --- SUMO ----------------------------------------------------------------------------------------
sumo_mod = pytest.importorskip("cosim.world.mobility.sumo")


def _sumo_fcd(tmp_path, seed, end_s=300):
    """SUMO's own FCD output for the shipped scenario (the binary from the eclipse-sumo wheel)."""
    home = sumo_mod.sumo_home()
    out = tmp_path / "fcd.xml"
    subprocess.run([f"{home}/bin/sumo", "-c", str(SUMOCFG), "--step-length", "1.0", "--seed", str(seed),
                    "--end", str(end_s), "--fcd-output", str(out), "--precision", "6",
                    "--no-step-log", "true", "--no-warnings", "true"], check=True, capture_output=True)
    return load_trace(out)


def test_sumo_positions_equal_sumos_own_fcd_output_over_300_s(tmp_path):
    seed = 1234
    world = sumo_mod.SumoWorld(SUMOCFG, 1.0, seed)
    cars = [sumo_mod.SumoVehicle(world, slot=k, height_m=None) for k in range(60)]
    for t in np.arange(0.0, 300.0, 1.0):            # the simulated clock asks every second
        for car in cars:
            car.position_m(t)
    assert world.sampled_s >= 299 or world.done
    fcd = _sumo_fcd(tmp_path, seed)
    assert len(world.departure_order) == len(fcd) == 50
    for vid, (times, xyz) in fcd.items():
        car = sumo_mod.SumoVehicle(world, vehicle_id=vid, height_m=None)
        ours = np.array([car.position_m(t) for t in times])
        assert np.allclose(ours, xyz, atol=1e-5), vid
        assert car.position_m(times[-1] + 1.0) is None and car.exit_time_s() == times[-1]
        assert car.position_m(times[0] - 0.5) is None
    # slots follow the order of departure
    firsts = [fcd[v][0][0] for v in world.departure_order]
    assert firsts == sorted(firsts)


def _sumo_yaml(tmp_path, **mobility):
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 6, "profile": "jetson-nano", "mobility": {"kind": "sumo", **mobility}}]
    raw["edge"][0]["position_m"] = [400.0, 400.0, 25.0]
    path = tmp_path / "sumo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return raw, path


def test_a_run_with_sumo_is_reproducible_with_the_same_seed(tmp_path):
    from cosim.run import build
    from cosim.scenario import load

    raw, path = _sumo_yaml(tmp_path, sumocfg=str(SUMOCFG))
    tracks = []
    for _ in range(2):
        sim = build(load(path))
        tracks.append([[None if (p := d.position_m(t)) is None else tuple(p) for t in range(0, 120, 3)]
                       for d in sim.devices])
    assert tracks[0] == tracks[1]
    assert any(p is not None for dev in tracks[0] for p in dev)


# --- bad input -----------------------------------------------------------------------------------
def _validate(tmp_path, capsys, mobility) -> str:
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano", "mobility": mobility}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli_main(["validate", str(path)]) == 2
    return capsys.readouterr().err + capsys.readouterr().out


@pytest.mark.parametrize("mobility,field", [
    ({"kind": "road", "speed_mps": [30, 10]}, "speed_mps"),
    ({"kind": "random_waypoint", "speed_mps": [3, 1]}, "speed_mps"),
    ({"kind": "uav", "mode": "waypoints", "waypoints_m": [[0, 0, 50]]}, "waypoints_m"),
    ({"kind": "sumo", "sumocfg": "no/such/file.sumocfg"}, "sumocfg"),
    ({"kind": "trace", "file": "no/such/trace.csv"}, "file"),
])
def test_bad_mobility_input_is_refused_naming_the_field(tmp_path, capsys, mobility, field):
    assert field in _validate(tmp_path, capsys, mobility)


def test_a_malformed_sumo_or_trace_file_is_refused_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "broken.sumocfg"
    bad.write_text("<configuration><input><net-file value='missing.net.xml'/>")
    msg = _validate(tmp_path, capsys, {"kind": "sumo", "sumocfg": str(bad)})
    assert "sumocfg" in msg and "not valid XML" in msg
    bad.write_text("<configuration><input><net-file value='missing.net.xml'/></input></configuration>")
    msg = _validate(tmp_path, capsys, {"kind": "sumo", "sumocfg": str(bad)})
    assert "sumocfg" in msg and "missing" in msg
    trace = tmp_path / "bad.csv"
    trace.write_text("time,vehicle\n1,a\n")
    msg = _validate(tmp_path, capsys, {"kind": "trace", "file": str(trace)})
    assert "file" in msg and "t,id,x,y" in msg
