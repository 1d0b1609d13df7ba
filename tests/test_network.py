"""The fluid transfer model: rates from the channel, bandwidth re-split as flows come and go,
and outages that stall, drop or wait — without ever crashing the run."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import RoadSegment, Static
from cosim.world.network import Network, NetworkConfig, OutagePolicy, TransferDropped
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES

C_MPS = 299_792_458.0
AP_DBM, NF_DB, F_HZ, B_HZ = 43.0, 7.0, 3.5e9, 10e6


def world(mobilities, outage=OutagePolicy()):
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static([0, 0, 25])))
    for i, m in enumerate(mobilities):
        sim.devices.append(Node(sim, f"dev{i}", "device", "jetson-nano", PROFILES["jetson-nano"], m))
    config = NetworkConfig(frequency_hz=F_HZ, ap_tx_power_dbm=AP_DBM, noise_figure_db=NF_DB,
                           channel={"pathloss": {"model": "fspl"}, "shadowing": False, "fading": "none"},
                           medium={"bandwidth_hz": B_HZ, "sharing": "equal"}, outage=outage,
                           backhaul={"rate_bps": 1e9, "latency_s": 0.0})
    sim.network = Network(sim, config)
    return sim


def downlink_rate_bps(distance_3d_m, share_hz=B_HZ):
    """Independent of the code under test: Friis, kT = -174 dBm/Hz, Shannon; the AP's power is
    spread over the band, so a share sees the full-band SNR."""
    fspl = 20 * math.log10(4 * math.pi * distance_3d_m * F_HZ / C_MPS)
    snr_db = AP_DBM - fspl - (-174 + 10 * math.log10(B_HZ) + NF_DB)
    return share_hz * math.log2(1 + 10 ** (snr_db / 10))


def send(sim, dst, nbytes, done):
    def proc():
        yield from sim.network.transfer(sim.edge[0], dst, nbytes, "model_down", 1)
        done[dst.name] = sim.now
    return sim.process(proc())


def test_one_flow_takes_its_bits_over_the_shannon_rate():
    sim = world([Static([100, 0, 1.5])])
    done = {}
    send(sim, sim.devices[0], 1_000_000, done)
    sim.env.run()
    d = math.dist([100, 0, 1.5], [0, 0, 25])
    assert done["dev0"] == pytest.approx(8e6 / downlink_rate_bps(d), rel=1e-9)


def test_two_flows_share_the_band_and_resplit_when_one_starts_late():
    pos = Static([100, 0, 1.5])
    sim = world([pos, pos])
    rate = downlink_rate_bps(math.dist([100, 0, 1.5], [0, 0, 25]))
    bits = 8e6
    t_late = 0.3 * bits / rate
    done = {}
    send(sim, sim.devices[0], 1_000_000, done)

    def late():
        yield sim.timeout(t_late)
        yield send(sim, sim.devices[1], 1_000_000, done)
    sim.process(late())
    sim.env.run()
    # dev0 alone until t_late, then half the band: finishes at t_late + 2 (bits - rate t_late) / rate
    t0 = t_late + 2 * (bits - rate * t_late) / rate
    assert done["dev0"] == pytest.approx(t0, rel=1e-9)
    # dev1 had half the band until dev0 finished, then all of it
    sent_shared = (t0 - t_late) * rate / 2
    assert done["dev1"] == pytest.approx(t0 + (bits - sent_shared) / rate, rel=1e-9)


def _leaving_vehicle():
    # starts 50 m before the end of a 1 km road at 50 m/s: gone after 1 s
    return RoadSegment([-500, 30], 1000, speed_mps=50, start_offset_m=950, wrap=False)


@pytest.mark.parametrize("policy,max_wait_s,gives_up_at_s", [("drop", 30.0, 1.0), ("wait", 5.0, 6.0)])
def test_a_device_that_leaves_mid_transfer_is_dropped_per_policy(policy, max_wait_s, gives_up_at_s):
    sim = world([_leaving_vehicle()], OutagePolicy(policy=policy, max_wait_s=max_wait_s))
    outcome = {}

    def proc():
        try:
            yield from sim.network.transfer(sim.edge[0], sim.devices[0], 100_000_000, "model_down", 1)
            outcome["done"] = sim.now
        except TransferDropped as drop:
            outcome["dropped"] = drop.t_s
    sim.process(proc())
    sim.env.run()
    assert outcome["dropped"] == pytest.approx(gives_up_at_s, abs=0.02)
    drops = [r for r in sim.trace.rows if r[4] == "drop"]
    assert len(drops) == 1 and drops[0][2] == "edge0" and drops[0][3] == "dev0"


def test_a_moving_devices_rate_changes_during_a_transfer():
    vehicle = RoadSegment([-400, 30], 800, speed_mps=20, start_offset_m=0, wrap=False)
    sim = world([vehicle])
    link = sim.network.link(sim.devices[0])
    rates = [link.rate_bps(t, False, B_HZ, B_HZ)[0] for t in np.linspace(0, 18, 7)]  # x from -400 to -40 m
    assert len(set(np.round(rates, 3))) == len(rates)      # every sample different
    assert rates == sorted(rates)                           # nearer the AP, faster
