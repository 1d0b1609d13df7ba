"""Common random numbers: the channel of a device at time t is a pure function of (seed, device, t),
so every scheme of a `cosim compare` sees the same shadowing, LOS state and fading for the same
device at the same simulated time, whatever it asked before and in whatever order."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cosim
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import Static
from cosim.world.mobility.gauss_markov import GaussMarkov
from cosim.world.mobility.random_waypoint import RandomWaypoint
from cosim.world.mobility.road import RoadSegment
from cosim.world.network import Network, NetworkConfig, RadioLink
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES
from conftest import tiny_scenario

SEED = 11
BAND_HZ = 20e6
TIMES_S = [0.0, 0.004, 0.37, 1.0, 2.5, 2.51, 7.3, 11.0, 19.9, 30.0, 44.4, 59.0]


def _mobilities():
    """One device of each kind of motion: standing, straight, waypoints with pauses, Gauss–Markov."""
    return {"still": Static([120.0, 40.0, 1.5]),
            "road": RoadSegment([-400.0, 30.0], 800.0, 22.0, 50.0, wrap=True),
            "waypoints": RandomWaypoint([-300.0, -300.0], [300.0, 300.0], (3.0, 12.0), 2.0,
                                        np.random.default_rng(4), height_m=1.5),
            "gauss_markov": GaussMarkov([-300.0, -300.0], [300.0, 300.0], 0.75, 8.0, np.random.default_rng(5),
                                        height_m=1.5)}


def _world(fading="rayleigh"):
    sim = Simulation(SEED, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0.0, 0.0, 25.0])))
    for name, mob in _mobilities().items():
        sim.devices.append(Node(sim, name, "device", "jetson-nano", PROFILES["jetson-nano"], mob))
    sim.network = Network(sim, NetworkConfig(channel={"pathloss": {"model": "3gpp-uma"}, "fading": fading},
                                             medium={"bandwidth_hz": BAND_HZ}))
    return sim


def _channel(sim, device: str, t_s: float):
    """What a medium gets from the link: ((loss_db, gain_db, radio_share) or None, valid_until_s)."""
    link = sim.network.link_to(sim.node(device), sim.edge[0])
    return link.rate_terms(t_s, BAND_HZ)


def _alone(device: str, t_s: float):
    """The channel at t of a world in which nothing else was ever asked."""
    return _channel(_world(), device, t_s)


@pytest.fixture(scope="module")
def reference():
    return {(d, t): _alone(d, t) for d in _mobilities() for t in TIMES_S}


@settings(max_examples=25, deadline=None)
@given(order=st.permutations([(d, t) for d in ["road", "waypoints", "gauss_markov", "still"] for t in TIMES_S]),
       noise=st.lists(st.tuples(st.sampled_from(["road", "waypoints", "gauss_markov", "still"]),
                                st.floats(0.0, 80.0)), max_size=12))
def test_the_channel_at_t_does_not_depend_on_what_was_asked_before_or_in_what_order(reference, order, noise):
    sim = _world()
    asks = list(order)
    for i, extra in enumerate(noise):   # other questions in between, at other times
        asks.insert((7 * i) % (len(asks) + 1), ("noise", extra))
    for ask in asks:
        if ask[0] == "noise":
            _channel(sim, *ask[1])
            continue
        assert _channel(sim, *ask) == reference[ask], ask


def test_the_channel_changes_along_the_path_and_over_coherence_blocks(reference):
    """Not a constant: a moving device's loss (shadowing, distance) and fading differ over the minute,
    and a standing device's fading is redrawn each static coherence block (1 s) while its loss holds."""
    road = [reference[("road", t)][0] for t in TIMES_S]
    assert len({terms[0] for terms in road if terms is not None}) > 5
    still = [reference[("still", t)][0] for t in TIMES_S]
    assert len({terms[0] for terms in still}) == 1
    assert len({terms[1] for terms in still}) > 5


def test_shadowing_is_correlated_along_the_path_as_gudmundson_says():
    """Lattice points 10 m apart on a straight road: the unit LOS shadowing process has lag-1
    correlation exp(-10 / 37) (UMa LOS, TR 38.901 Table 7.5-6) and unit variance."""
    sim = _world()
    link = sim.network.link_to(sim.node("road"), sim.edge[0])
    lattice, values, t = link._lattice, [], 0.0
    while len(values) < 4000:
        _, _, t_next, v = lattice.at(t)
        values.append(v[0])
        t = t_next
    z = np.array(values)
    assert z.var() == pytest.approx(1.0, abs=0.1)
    assert np.corrcoef(z[:-1], z[1:])[0, 1] == pytest.approx(math.exp(-10.0 / 37.0), abs=0.05)


@pytest.mark.slow
def test_every_scheme_of_a_compare_sees_the_channel_a_fresh_world_would_show(tmp_path, monkeypatch):
    """Two schemes asking the channel at their own moments (FedAvg and split learning): every answer
    either got is the answer of a world asked nothing else before, so the two share one realization."""
    asked: list[tuple[int, str, float, tuple]] = []
    sims: list = []   # one Simulation per compared scheme, in run order
    real = RadioLink.rate_terms

    def recording(self, t_s, full_bandwidth_hz, *, fading=True):
        out = real(self, t_s, full_bandwidth_hz, fading=fading)
        sim = self.network.sim
        if not any(s is sim for s in sims):
            sims.append(sim)
        if fading:
            asked.append((next(i for i, s in enumerate(sims) if s is sim), self.device.name, t_s, out))
        return out

    monkeypatch.setattr(RadioLink, "rate_terms", recording)
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"},
                      {"count": 2, "profile": "raspberry-pi-4", "mobility": {"kind": "road", "speed_mps": [15, 25],
                                                                               "wrap": True}}]
    raw["scheme"] = {**raw["scheme"], "rounds": 1, "local_steps": 1}
    raw["data"] = {**raw["data"], "test_samples": 16}
    raw["compare"] = ["fedavg", {"label": "split", "scheme": {"name": "split", "cut_layer": 1}}]
    cosim.compare(raw)
    monkeypatch.setattr(RadioLink, "rate_terms", real)
    by_run = [{(d, t) for r, d, t, _ in asked if r == i} for i in range(len(sims))]
    assert len(by_run) == 2 and by_run[0] and by_run[1] and by_run[0] != by_run[1]   # asked at other moments
    alone_raw = {k: v for k, v in raw.items() if k != "compare"}
    fresh = cosim.build(cosim.load({**alone_raw, "scheme": {"name": "fedavg"}}))
    for _, device, t_s, out in reversed(asked):   # another order than either scheme's
        alone = fresh.network.link_to(fresh.node(device), fresh.edge[0]).rate_terms(t_s, BAND_HZ)
        assert alone == out, (device, t_s)
