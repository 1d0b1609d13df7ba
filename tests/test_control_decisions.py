"""The control layer's decisions for resource allocation (issue 14): a device's share of its
server's compute (processor sharing), its association to an access point, and retrain-or-not —
applied while the run goes on, checked, and kept true to the run-time invariants."""
from __future__ import annotations

import pytest
import torch

import cosim
from cosim.control import ControlLoop, Decision, DecisionError
from cosim.control.controllers import Controller
from cosim.world.invariants import InvariantViolation
from conftest import tiny_scenario


def _product(a, b):
    return a @ b


def _two_cells(tmp_path):
    """Two static devices near edge0 and a second edge 400 m away."""
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 2, "profile": "jetson-nano", "name": "u",
                       "mobility": {"kind": "static", "position_m": [20.0, 0.0, 1.5]}}]
    raw["edge"] = [{"profile": "edge-t4", "position_m": [0, 0, 25], "name": "bs0"},
                   {"profile": "edge-t4", "position_m": [400, 0, 25], "name": "bs1"}]
    return cosim.build(cosim.load(raw))


class _Nobody(Controller):
    name = "test"


def _steps(sim, server, shares):
    """Each share's step (the same matrix product) on `server`, all started at t=0; their rows."""
    a, b = torch.ones(64, 64), torch.ones(64, 64)

    def one(share):
        yield from server.compute(_product, a, b, kind="infer", share=share)

    before = len(sim.trace.rows)
    procs = [sim.process(one(s)) for s in shares]
    sim.env.run(until=sim.all_of(procs))
    return [r for r in sim.trace.rows[before:] if r[2] == server.name and r[4] == "infer"]


def test_steps_sharing_a_server_run_side_by_side_at_their_share_of_its_flops(tmp_path):
    sim = _two_cells(tmp_path)
    server = sim.edge[0]
    alone = _steps(sim, server, [None])[0]
    duration = alone[1] - alone[0]
    t = sim.now
    shared = _steps(sim, server, [0.25, 0.75])
    (big0, big1), (small0, small1) = shared[0][:2], shared[1][:2]   # the 0.75 step ends first
    assert big0 == small0 == t                                         # both started at once
    assert big1 - big0 == pytest.approx(duration / 0.75, rel=1e-9)
    assert small1 - small0 == pytest.approx(duration / 0.25, rel=1e-9)
    power = server.profile.compute_power_w
    assert [r[8] for r in shared] == pytest.approx([power * duration] * 2)   # each busy for its FLOPs' time
    assert server.busy_s == pytest.approx(3 * duration)
    sim.verifier.totals("test")   # energy = power × busy time from the trace, shares counted


def test_shares_that_add_up_past_one_wait_for_the_server(tmp_path):
    sim = _two_cells(tmp_path)
    rows = _steps(sim, sim.edge[0], [0.6, 0.6])
    (a0, a1), (b0, b1) = (rows[0][:2], rows[1][:2])
    assert b0 == pytest.approx(a1)   # the second waited for the first's share to come back


def test_the_verifier_refuses_shares_in_use_past_one(tmp_path):
    sim = _two_cells(tmp_path)
    sim.verifier.share_started("bs0", 0.7)
    with pytest.raises(InvariantViolation, match="shares in use add up to 1.4"):
        sim.verifier.share_started("bs0", 0.7)


def test_an_association_decision_moves_the_device_and_the_network_keeps_it(tmp_path):
    sim = _two_cells(tmp_path)
    dev = sim.devices[0]
    assert sim.network.serving_ap(dev).name == "bs0"   # nearest
    loop = ControlLoop(sim, sim.control.config, _Nobody(None))
    loop.apply(Decision(association={"u0": "bs1"}, compute_share={"u0": 1.0, "u1": 1.0}, retrain={"u1": True}),
               "large")
    assert sim.network.serving_ap(dev).name == "bs1"
    handover = [r for r in sim.trace.rows if r[4] == "handover"]
    assert [(h[2], h[3], h[10]) for h in handover] == [("u0", "bs1", "bs0")]
    assert loop.compute_share_of(dev) == 1.0 and loop.retrain_of(sim.devices[1]) and not loop.retrain_of(dev)
    settings = {(r["device"], r["setting"]): r["value"] for r in loop.log}
    assert settings[("u0", "association")] == "bs1" and settings[("u1", "retrain")] == 1


@pytest.mark.parametrize("decision, match", [
    (Decision(compute_share={"u0": 0.7, "u1": 0.6}), "compute shares at bs0 add up to 1.3"),
    (Decision(compute_share={"u0": 0.0}), "compute share 0.0 outside"),
    (Decision(association={"u0": "bs9"}), "association 'bs9' is not an access point; allowed: bs0, bs1"),
    (Decision(retrain={"u0": "yes"}), "retrain 'yes' is not true or false"),
    (Decision(retrain={"nobody": True}), "device 'nobody' does not exist"),
])
def test_a_resource_decision_that_cannot_be_applied_names_the_device_and_value(tmp_path, decision, match):
    sim = _two_cells(tmp_path)
    loop = ControlLoop(sim, sim.control.config, _Nobody(None))
    with pytest.raises(DecisionError, match=match):
        loop.apply(decision, "small")


def test_moving_a_device_moves_its_compute_share_to_the_new_server(tmp_path):
    """Shares are checked per server after the association: 0.7 + 0.6 is fine on two servers."""
    sim = _two_cells(tmp_path)
    loop = ControlLoop(sim, sim.control.config, _Nobody(None))
    loop.apply(Decision(association={"u1": "bs1"}, compute_share={"u0": 0.7, "u1": 0.6}), "small")
    assert loop.compute_share_of(sim.devices[1]) == 0.6
