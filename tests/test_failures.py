"""Faults as events with a policy (cosim.world.failures): a device that runs out of memory during a
step, and a server that fails and recovers. The run survives both; the trace says what happened."""
from __future__ import annotations

import pytest

import cosim
from cosim.scenario import ScenarioError
from conftest import tiny_scenario

#: 10 MB: the tiny model's weights, a received model and its training state fit (~8.6 MB), a
#: training step's saved activations on top (~11.2 MB) do not.
TIGHT = {"tight": {"peak_flops": 236e9, "utilization": 0.3, "memory_bytes": 10e6, "compute_power_w": 10.0}}


def _tight_fedavg(tmp_path, oom: str, **changes):
    raw = tiny_scenario(tmp_path, profiles=TIGHT, failures={"oom": oom}, **changes)
    raw["devices"] = [{"count": 3, "profile": "jetson-nano"}, {"count": 1, "profile": "tight", "name": "small"}]
    return cosim.run(raw, progress=False, plots=False)


def test_a_step_over_memory_is_an_oom_event_and_drop_loses_only_that_clients_update(tmp_path):
    r = _tight_fedavg(tmp_path, "drop")
    ooms = r.events[r.events.kind == "oom"]
    assert list(ooms.node) == ["small0", "small0"] and (ooms["round"].tolist() == [1, 2])
    assert (ooms.mem_bytes > 10e6).all() and ooms.detail.str.startswith("train step:").all()
    rounds = r.rounds[r.rounds["round"] > 0]
    assert rounds.clients.tolist() == [4, 4] and rounds.updates.tolist() == [3, 3]
    assert r.summary["stop_reason"] == "rounds=2 done"
    # the device that did not fit never uploaded; the others did
    ups = r.events[r.events.kind == "model_up"]
    assert "small0" not in set(ups.node) and len(ups) == 6


def test_fail_round_closes_the_round_with_no_update_applied(tmp_path):
    r = _tight_fedavg(tmp_path, "fail_round")
    assert (r.events.kind == "round_failed").sum() == 2
    rounds = r.rounds[r.rounds["round"] > 0]
    assert rounds.updates.tolist() == [0, 0]
    assert not (r.events.kind == "aggregate").any()
    # nothing was applied: the model is the initial one, so its accuracy does not move
    assert rounds.accuracy.tolist() == [r.rounds.accuracy.iloc[0]] * 2


def test_abort_stops_the_run_naming_the_device_and_the_bytes(tmp_path):
    r = _tight_fedavg(tmp_path, "abort")
    reason = r.summary["stop_reason"]
    assert reason.startswith("out of memory: small0 held ") and "of 10000000 B (train step)" in reason
    held = int(reason.split(" held ")[1].split(" B")[0])
    assert held > 10e6
    assert r.rounds["round"].tolist() == [0]   # round 1 never closed


def test_an_upload_the_server_cannot_hold_is_an_oom_event_and_loses_that_client(tmp_path):
    # 8.5 MB: the tiny model's weights and one client's upload fit at the edge, a second upload does not
    raw = tiny_scenario(tmp_path, profiles={"small-edge": {**TIGHT["tight"], "memory_bytes": 8.5e6}})
    raw["edge"][0]["profile"] = "small-edge"
    r = cosim.run(raw, progress=False, plots=False)
    ooms = r.events[r.events.kind == "oom"]
    assert set(ooms.node) == {"edge0"} and ooms.detail.str.startswith("received model_up from dev").all()
    assert len(ooms) == 6 and (ooms.mem_bytes > 8.5e6).all()
    assert r.rounds.updates.dropna().tolist() == [1, 1]


def test_by_default_nothing_changes_for_nodes_that_fit(tmp_path):
    r = cosim.run(tiny_scenario(tmp_path), progress=False, plots=False)
    assert not r.events.category.eq("fault").any()
    assert cosim.load(tiny_scenario(tmp_path)).failures.oom == "drop"


# --- servers that fail ------------------------------------------------------------------------------


def test_a_failed_edge_loses_its_in_flight_uploads_and_the_round_closes_with_what_survived(tmp_path):
    # round 1's uploads leave the devices at 9.3, 10.2, 10.5 and 11.3 ms (steps timed by FLOPs alone:
    # the timings this window was set around); the edge is down from 11 ms to 50 ms: three uploads in
    # flight are lost, the fourth waits for the edge
    raw = tiny_scenario(tmp_path, failures={"servers": [{"node": "edge0", "schedule": [[0.011, 0.050]]}]},
                        runtime={"compute_model": "flops"})
    r = cosim.run(raw, progress=False, plots=False)
    ev = r.events
    down, up = ev[ev.kind == "server_down"], ev[ev.kind == "server_up"]
    assert down.t_start.tolist() == [pytest.approx(0.011)] and up.t_start.tolist() == [pytest.approx(0.050)]
    lost = ev[(ev.kind == "drop") & ev.detail.str.contains("edge0 failed")]
    assert len(lost) == 3 and lost.t_end.tolist() == [pytest.approx(0.011)] * len(lost)
    rounds = r.rounds[r.rounds["round"] > 0]
    assert rounds.updates.iloc[0] == 4 - len(lost) and rounds.updates.iloc[1] == 4
    # nothing crosses the edge while it is down: an upload ready meanwhile waits for it
    moved = ev[(ev.category == "transfer") & ((ev.node == "edge0") | (ev.peer == "edge0"))]
    assert not ((moved.t_end > 0.011 + 1e-9) & (moved.t_end < 0.050)).any()
    assert (moved[moved.t_start.between(0.011, 0.050)].t_end > 0.050).sum() == 1
    assert r.summary["stop_reason"] == "rounds=2 done"


def test_a_split_scheme_survives_its_server_failing_mid_turn(tmp_path):
    raw = tiny_scenario(tmp_path, scheme={"name": "split", "rounds": 2, "local_steps": 2, "batch_size": 8,
                                          "cut_layer": 2},
                        failures={"servers": [{"node": "edge0", "schedule": [[0.02, 0.03], [0.1, 0.12]]}]})
    r = cosim.run(raw, progress=False, plots=False)
    ev = r.events
    assert (ev.kind == "server_down").sum() == 2 and (ev.kind == "server_up").sum() == 2
    lost = ev[ev.detail.str.contains("edge0 failed", na=False)]
    assert len(lost) >= 1                       # a step or a transfer was in flight and is lost
    assert r.summary["stop_reason"] == "rounds=2 done" and len(r.rounds) == 3
    steps = ev[(ev.node == "edge0") & (ev.category == "compute")]
    for a, b in [(0.02, 0.03), (0.1, 0.12)]:    # the server computes nothing while it is down
        assert not ((steps.t_end > a + 1e-9) & (steps.t_start < b - 1e-9)).any()


def test_poisson_failures_draw_from_their_own_seeded_stream(tmp_path):
    def run(stream=None, seed=1):
        server = {"node": "edge0", "mtbf_s": 0.03, "mttr_s": 0.005, **({"stream": stream} if stream else {})}
        raw = tiny_scenario(tmp_path, failures={"servers": [server]}, seed=seed)
        r = cosim.run(raw, progress=False, plots=False)
        return r.events[r.events.kind == "server_down"].t_start.tolist(), r

    a, r = run()
    b, _ = run()
    c, _ = run(stream="failures/other")
    assert a and a == b and a != c
    assert r.summary["stop_reason"] == "rounds=2 done"


@pytest.mark.parametrize("failing, problem", [
    ({"node": "edge9", "schedule": [[1, 2]]}, "failures.servers.0.node: no edge or cloud node of that name"),
    ({"node": "edge0", "schedule": [[2, 1]]}, "comes back before it goes down"),
    ({"node": "edge0", "schedule": [[1, 3], [2, 4]]}, "starts before the previous interval ends"),
    ({"node": "edge0", "schedule": [[1, 2]], "mtbf_s": 5, "mttr_s": 1}, "not both"),
    ({"node": "edge0", "mtbf_s": 5}, "needs both mtbf_s and mttr_s"),
])
def test_a_failure_process_that_cannot_run_is_refused_before_the_run(tmp_path, failing, problem):
    with pytest.raises(ScenarioError, match=problem):
        cosim.load(tiny_scenario(tmp_path, failures={"servers": [failing]}))


def test_a_step_in_flight_on_a_failing_server_is_lost_with_its_busy_time_and_the_turn_fails(tmp_path):
    slow_edge = {"slow-edge": {"peak_flops": 1e9, "utilization": 0.5, "memory_bytes": 16e9, "compute_power_w": 70.0}}
    raw = tiny_scenario(tmp_path, scheme={"name": "split", "rounds": 1, "local_steps": 2, "batch_size": 8,
                                          "cut_layer": 2, "order": "fixed"},
                        profiles=slow_edge, failures={"servers": [{"node": "edge0", "schedule": [[0.1, 0.2]]}]})
    raw["edge"][0]["profile"] = "slow-edge"
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    r = cosim.run(raw, progress=False, plots=False)
    ev = r.events
    lost = ev[ev.kind == "lost_step"]   # dev0's first top step takes ~0.15 s from ~7 ms: cut at 0.1 s
    assert lost.node.tolist() == ["edge0"] and lost.t_end.tolist() == [pytest.approx(0.1)]
    (t0,) = lost.t_start
    assert 0 < t0 < 0.1 and lost.energy_j.iloc[0] == pytest.approx(70.0 * (0.1 - t0))
    assert ev[ev.kind == "model_up"].node.tolist() == ["dev1"]   # dev0's turn is lost, dev1's goes on
    # dev1's turn starts at the failure and waits for the server to be back
    assert ev[(ev.node == "edge0") & (ev.peer == "dev1") & (ev.kind == "model_down")].t_end.min() > 0.2
    nodes = r.nodes.set_index("node")
    trained = ev[(ev.node == "edge0") & (ev.kind == "train")]
    assert nodes.loc["edge0", "busy_s"] == pytest.approx((trained.t_end - trained.t_start).sum() + 0.1 - t0)


def test_uploads_are_released_when_the_server_fails_while_aggregating(tmp_path):
    import torch

    from cosim.run import build
    from cosim.schemes.common import aggregate
    from cosim.world.failures import ServerFailed

    raw = tiny_scenario(tmp_path, failures={"servers": [{"node": "edge0", "schedule": [[0.05, 0.06]]}]},
                        profiles={"slow-edge": {"peak_flops": 1e9, "utilization": 0.5, "memory_bytes": 16e9,
                                                "compute_power_w": 70.0}})
    raw["edge"][0]["profile"] = "slow-edge"
    sim = build(cosim.load(raw))
    server, dev = sim.edge[0], sim.devices[0]
    weights = torch.ones(512, 512)

    def slow_combine(states, counts):   # ~0.27 GFLOP of matmul: ~0.5 s on the slow edge
        return {"w": states[0]["w"] * (weights @ weights).sum()}

    def round_():
        upload = yield from sim.send(dev, server, {"w": torch.ones(8)}, kind="model_up")
        assert sim.now < 0.04
        yield sim.timeout(0.04 - sim.now)
        try:
            yield from aggregate(sim, server, [(upload, 1)], combine=slow_combine)
        except ServerFailed as lost:
            return lost

    proc = sim.process(round_())
    sim.env.run(until=proc)
    assert isinstance(proc.value, ServerFailed) and "aggregate step lost: edge0 failed" in str(proc.value)
    assert not [h for h in server.memory.holds if h.label.startswith("recv:")]
    assert [r[4] for r in sim.trace.rows if r[2] == "edge0"][-2:] == ["server_down", "lost_step"]
