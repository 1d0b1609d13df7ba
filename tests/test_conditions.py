"""Dynamic device conditions: Markov chains that match their stationary law, compute that slows
with the share, radio rate that scales with the radio level, and devices that go away."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosim.learn.accounting import StepMeter
from cosim.world.conditions import (MarkovChain, MarkovConditions, StaticConditions, TraceConditions,
                                    load_conditions_trace, stationary)
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import Static
from cosim.world.network import Network, NetworkConfig, OutagePolicy, TransferDropped
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES


def world(outage=OutagePolicy(), n=2):
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0, 0, 25])))
    for i in range(n):
        sim.devices.append(Node(sim, f"dev{i}", "device", "jetson-nano", PROFILES["jetson-nano"],
                                Static([100, 0, 1.5])))
    config = NetworkConfig(frequency_hz=3.5e9, medium={"bandwidth_hz": 10e6, "sharing": "equal"}, outage=outage,
                           channel={"pathloss": {"model": "fspl"}, "shadowing": False, "fading": "none"},
                           backhaul={"rate_bps": 1e9, "latency_s": 0.0})
    sim.network = Network(sim, config)
    return sim


def test_markov_chain_long_run_frequencies_match_its_stationary_distribution():
    p = np.array([[0.8, 0.15, 0.05], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    pi = stationary(p)
    assert pi @ p == pytest.approx(pi, abs=1e-12)
    chain = MarkovChain([1.0, 0.5, 0.25], p, 2.0, np.random.default_rng(7))
    n = 40_000
    states = np.array([chain.state_at_step(k) for k in range(n)])
    freq = np.bincount(states, minlength=3) / n
    assert freq == pytest.approx(pi, abs=0.015)
    # lazy and reproducible: values by time equal the drawn path, and the same seed gives the same path
    assert chain.value(2.0 * 1234 + 0.5) == [1.0, 0.5, 0.25][states[1234]]
    again = MarkovChain([1.0, 0.5, 0.25], p, 2.0, np.random.default_rng(7))
    assert [again.state_at_step(k) for k in range(500)] == states[:500].tolist()


def _const(share):
    return TraceConditions([0.0], [share], [1.0], [True])


def test_a_device_with_compute_share_half_takes_twice_as_long_for_the_same_step():
    sim = world()
    sim.meter = StepMeter()
    full, half = sim.devices
    half.conditions = _const(0.5)
    w = torch.randn(64, 64)

    def step(x):
        return (x @ w).sum()

    done = {}

    def proc(dev):
        t0 = sim.now
        yield from dev.compute(step, torch.randn(32, 64), kind="train", key=("mm",), rnd=1)
        done[dev.name] = sim.now - t0
    sim.process(proc(full))
    sim.process(proc(half))
    sim.env.run()
    assert done["dev0"] > 0
    assert done["dev1"] == pytest.approx(2 * done["dev0"], rel=1e-12)


def test_radio_share_scales_the_rate():
    sims = []
    for share in (1.0, 0.25):
        sim = world(n=1)
        sim.devices[0].conditions = TraceConditions([0.0], [1.0], [share], [True])
        done = {}

        def proc(sim=sim, done=done):
            yield from sim.network.transfer(sim.edge[0], sim.devices[0], 1_000_000, "model_down", 1)
            done["t"] = sim.now
        sim.process(proc())
        sim.env.run()
        sims.append(done["t"])
    assert sims[1] == pytest.approx(4 * sims[0], rel=1e-9)


def test_an_unavailable_device_is_not_selected_and_its_transfers_stall_per_outage_policy():
    # dev1 away during [0, 100) s, back afterwards
    away = TraceConditions([0.0, 100.0], [1.0, 1.0], [1.0, 1.0], [False, True])
    sim = world(OutagePolicy(policy="wait", max_wait_s=30.0))
    sim.devices[1].conditions = away
    assert [d.name for d in sim.select(None)] == ["dev0"]
    outcome = {}

    def proc():
        try:
            yield from sim.network.transfer(sim.edge[0], sim.devices[1], 1_000_000, "model_down", 1)
            outcome["done"] = sim.now
        except TransferDropped as drop:
            outcome["dropped"] = drop.t_s
    sim.process(proc())
    sim.env.run()
    assert outcome == {"dropped": pytest.approx(30.0)}

    # with more patience the flow waits for the device to come back and then completes
    sim = world(OutagePolicy(policy="wait", max_wait_s=500.0))
    sim.devices[1].conditions = away
    outcome.clear()
    sim.process(proc())
    sim.env.run()
    assert "done" in outcome and 100.0 < outcome["done"] < 101.0
    assert [d.name for d in sim.select(None)] == ["dev0", "dev1"]   # back at t > 100


def test_an_away_device_computes_nothing_until_it_is_back():
    sim = world(n=1)
    sim.meter = StepMeter()
    sim.devices[0].conditions = TraceConditions([0.0, 50.0], [1.0, 1.0], [1.0, 1.0], [False, True])
    done = {}

    def proc():
        yield from sim.devices[0].compute(lambda x: x.sum(), torch.ones(8, 8), kind="train", key=("s",), rnd=1)
        done["t"] = sim.now
    sim.process(proc())
    sim.env.run()
    assert done["t"] >= 50.0


def test_markov_availability_and_scenario_build(tmp_path):
    from cosim.run import build
    from cosim.scenario import load
    from tests.conftest import tiny_scenario

    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 3, "profile": "jetson-nano", "conditions": {
        "kind": "markov", "step_s": 5.0, "compute": {"levels": [1.0, 0.5, 0.25], "stay": 0.8},
        "radio": {"levels": [1.0, 0.3], "transition": [[0.9, 0.1], [0.5, 0.5]]},
        "availability": {"p_leave": 0.2, "p_return": 0.5}}}]
    sim = build(load(raw))
    conds = [d.conditions for d in sim.devices]
    assert all(isinstance(c, MarkovConditions) for c in conds)
    # each device its own stream: the three paths differ, and a rebuild reproduces them
    paths = [[c.compute_share(5.0 * k) for k in range(200)] for c in conds]
    assert paths[0] != paths[1]
    sim2 = build(load(raw))
    assert [sim2.devices[0].conditions.compute_share(5.0 * k) for k in range(200)] == paths[0]
    av = [conds[0].available(5.0 * k) for k in range(4000)]
    assert np.mean(av) == pytest.approx(0.5 / 0.7, abs=0.05)   # on/off stationary share p_return/(p_leave+p_return)
    assert sim.devices[0].effective_flops(0.0) == pytest.approx(
        PROFILES["jetson-nano"].effective_flops * conds[0].compute_share(0.0))


def test_trace_file_and_static(tmp_path):
    f = tmp_path / "cond.csv"
    f.write_text("t,device,compute_share,bandwidth_share,available\n0,dev0,1,1,1\n10,dev0,0.5,0.2,0\n"
                 "20,dev0,0.25,1,1\n")
    table = load_conditions_trace(f)
    c = TraceConditions(*table["dev0"])
    assert (c.compute_share(5), c.compute_share(10), c.compute_share(25)) == (1.0, 0.5, 0.25)
    assert c.radio_share(15) == 0.2 and not c.available(15) and c.available(20)
    assert c.next_change_s(12) == 20 and c.next_available_s(12) == 20
    s = StaticConditions()
    assert (s.compute_share(1), s.radio_share(1), s.available(1), s.next_change_s(1)) == (1.0, 1.0, True, math.inf)
