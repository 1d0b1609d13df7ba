"""Many flows on one medium: finish times as a direct fluid computation gives them, and a link's
channel evaluated when its state changes, not every time the band is re-split."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import Static
from cosim.world.network import Network, NetworkConfig, RadioLink
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES

C_MPS = 299_792_458.0
AP_DBM, UE_DBM, NF_DB, F_HZ, B_HZ = 43.0, 23.0, 7.0, 3.5e9, 10e6
AP_XYZ = np.array([0.0, 0.0, 25.0])


def world(positions, sharing="equal"):
    sim = Simulation(0, StopRule(rounds=1))
    sim.edge.append(Node(sim, "edge0", "edge", "edge-t4", PROFILES["edge-t4"], Static(AP_XYZ)))
    for i, p in enumerate(positions):
        sim.devices.append(Node(sim, f"dev{i}", "device", "jetson-nano", PROFILES["jetson-nano"], Static(p)))
    config = NetworkConfig(frequency_hz=F_HZ, ap_tx_power_dbm=AP_DBM, tx_power_dbm=UE_DBM, noise_figure_db=NF_DB,
                           channel={"pathloss": {"model": "fspl"}, "shadowing": False, "fading": "none"},
                           medium={"bandwidth_hz": B_HZ, "sharing": sharing})
    sim.network = Network(sim, config)
    return sim


def rate_bps(distance_3d_m: float, share_hz: float, uplink: bool) -> float:
    """Independent of the code under test: Friis, kT = -174 dBm/Hz, Shannon. Downlink: the AP's
    power is spread over the band (a share sees the full-band SNR); uplink: the device's whole
    power over its share."""
    fspl = 20 * math.log10(4 * math.pi * distance_3d_m * F_HZ / C_MPS)
    tx = UE_DBM if uplink else AP_DBM + 10 * math.log10(share_hz / B_HZ)
    snr_db = tx - fspl - (-174 + 10 * math.log10(share_hz) + NF_DB)
    return share_hz * math.log2(1 + 10 ** (snr_db / 10))


def fluid_finish_times_s(starts_s, bits, distances_m, uplink):
    """Processor sharing by hand: between two events every active flow has B / k of the band."""
    t, left, done = 0.0, list(map(float, bits)), [None] * len(bits)
    pending = sorted(range(len(bits)), key=lambda i: starts_s[i])
    while any(d is None for d in done):
        active = [i for i in range(len(bits)) if done[i] is None and starts_s[i] <= t]
        rates = {i: rate_bps(distances_m[i], B_HZ / len(active), uplink) for i in active}
        nxt_start = min((starts_s[i] for i in pending if starts_s[i] > t), default=math.inf)
        first = min((left[i] / rates[i] for i in active), default=math.inf)
        dt = min(first, nxt_start - t)
        for i in active:
            left[i] -= rates[i] * dt
        t += dt
        for i in active:
            if left[i] <= 1e-6 * bits[i]:
                done[i] = t
    return done


@pytest.mark.parametrize("uplink", [False, True])
def test_many_flows_sharing_a_band_finish_when_processor_sharing_says(uplink):
    rng = np.random.default_rng(3)
    n = 60
    xy = rng.uniform(-300, 300, size=(n, 2))
    positions = [np.array([x, y, 1.5]) for x, y in xy]
    starts = np.round(rng.uniform(0, 0.5, size=n), 3)
    starts[: n // 2] = 0.0   # half start together, the others join while they are sending
    nbytes = rng.integers(50_000, 400_000, size=n)
    sim = world(positions)
    done = {}

    def send(i):
        yield sim.timeout(float(starts[i]))
        dev = sim.devices[i]
        src, dst = (dev, sim.edge[0]) if uplink else (sim.edge[0], dev)
        yield from sim.network.transfer(src, dst, int(nbytes[i]), "model_up" if uplink else "model_down", 1)
        done[i] = sim.now

    for i in range(n):
        sim.process(send(i))
    sim.env.run()
    expected = fluid_finish_times_s(starts, nbytes * 8, [float(np.linalg.norm(p - AP_XYZ)) for p in positions],
                                    uplink)
    assert [done[i] for i in range(n)] == pytest.approx(expected, rel=1e-7)


def test_a_link_is_evaluated_when_its_state_changes_not_at_every_re_split(monkeypatch):
    """N flows starting and ending one after another re-split the band ~2N times; the channel
    chain of each static link is worked out a bounded number of times, not ~N times."""
    calls = {"n": 0}
    real = RadioLink.rate_terms

    def counting(self, *a, **k):
        calls["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(RadioLink, "rate_terms", counting)
    n = 200
    rng = np.random.default_rng(5)
    positions = [np.array([x, y, 1.5]) for x, y in rng.uniform(-300, 300, size=(n, 2))]
    sim = world(positions)
    for i, dev in enumerate(sim.devices):
        def send(dev=dev, delay_s=0.001 * i):
            yield sim.timeout(delay_s)
            yield from sim.network.transfer(sim.edge[0], dev, 100_000, "model_down", 1)
        sim.process(send())
    sim.env.run()
    assert calls["n"] <= 3 * n


def _finishes(monkeypatch, each_arrival: bool, uplink: bool):
    """Finish time, airtime and carried bits of 40 flows, 30 of them starting in one instant, and
    how many times the band was re-split in that instant."""
    from cosim.world.network import Medium

    if each_arrival:   # the way before flows joined first: a re-split at every arrival
        monkeypatch.setattr(Medium, "_reallocate_once_joined", Medium._reallocate)
    rng = np.random.default_rng(11)
    n = 40
    positions = [np.array([x, y, 1.5]) for x, y in rng.uniform(-300, 300, size=(n, 2))]
    starts = [0.0] * 30 + list(np.round(rng.uniform(0.001, 0.05, size=n - 30), 4))
    sim = world(positions)
    out, splits = {}, {}

    def send(i):
        yield sim.timeout(starts[i])
        dev = sim.devices[i]
        src, dst = (dev, sim.edge[0]) if uplink else (sim.edge[0], dev)
        out[i] = yield from sim.network.transfer(src, dst, 20_000 + 1_000 * i, "model_up" if uplink else "model_down",
                                                 1)
        out[i] = (sim.now, out[i])

    def watch():   # the medium's re-split count once the first instant is over
        yield sim.timeout(0.0005)
        splits["first instant"] = (sim.network._up if uplink else sim.network._down)["edge0"]._generation

    for i in range(n):
        sim.process(send(i))
    sim.process(watch())
    sim.env.run()
    return out, splits["first instant"]


@pytest.mark.parametrize("uplink", [False, True])
def test_flows_starting_in_one_instant_join_before_one_re_split_and_finish_as_if_re_split_at_each(monkeypatch,
                                                                                                   uplink):
    joined, joined_splits = _finishes(monkeypatch, False, uplink)
    with monkeypatch.context() as m:
        each, each_splits = _finishes(m, True, uplink)
    assert joined == each   # every finish time, airtime and carried bit count, exactly
    assert joined_splits == 1 and each_splits == 30
