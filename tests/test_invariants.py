"""Run-time invariants (`--verify`, cosim.world.invariants): on in the whole test suite, and a
planted violation stops the run naming the invariant and the event that broke it."""
from __future__ import annotations

import pytest
import yaml

import cosim
from cosim.cli import EXIT_INVARIANT, main
from cosim.run import build
from cosim.world.invariants import InvariantViolation
from cosim.world.network import Medium
from conftest import tiny_scenario


def _half_the_bits(monkeypatch):
    """A medium that carries half of what it is asked to (a bookkeeping bug in the network)."""
    carry = Medium.carry
    monkeypatch.setattr(Medium, "carry", lambda self, link, nbits, name: carry(self, link, nbits / 2, name))


def test_verification_is_on_in_the_test_suite(tmp_path):
    assert build(cosim.load(tiny_scenario(tmp_path))).verifier is not None


def test_a_transfer_whose_flow_carried_other_bytes_stops_the_run_at_that_transfer(tmp_path, monkeypatch):
    _half_the_bits(monkeypatch)
    with pytest.raises(InvariantViolation) as caught:
        cosim.run(tiny_scenario(tmp_path), progress=False, plots=False)
    message = str(caught.value)
    assert message.startswith("invariant 'transfer bytes' violated by model_down t=0..")
    assert "node=edge0 peer=dev" in message and "bytes=33872" in message
    assert "integrates to 135488 bits, the row says 270976 bits" in message


def test_cosim_run_verify_exits_3_naming_the_invariant(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COSIM_VERIFY", "0")
    _half_the_bits(monkeypatch)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_scenario(tmp_path)))
    assert main(["run", str(path), "--verify", "--quiet", "--no-plots"]) == EXIT_INVARIANT
    err = capsys.readouterr().err
    assert err.startswith("error: invariant 'transfer bytes' violated by model_down") and "Traceback" not in err


def test_without_verification_the_same_bug_goes_unnoticed(tmp_path, monkeypatch):
    monkeypatch.setenv("COSIM_VERIFY", "0")
    _half_the_bits(monkeypatch)
    r = cosim.run(tiny_scenario(tmp_path), progress=False, plots=False)
    assert r.summary["stop_reason"] == "rounds=2 done"


# --- each invariant, planted on a built simulation ---------------------------------------------------


@pytest.fixture
def sim(tmp_path):
    return build(cosim.load(tiny_scenario(tmp_path)))


def _advance(sim, t_s):
    sim.env.run(until=t_s)


def test_time_going_back_is_caught(sim):
    _advance(sim, 1.0)
    with pytest.raises(InvariantViolation, match=r"'time' violated by eval t=0..2s"):
        sim.trace.record(0.0, 2.0, "", "eval")   # ends after now


def test_two_steps_at_once_on_one_node_are_caught(sim):
    dev = sim.devices[0]
    _advance(sim, 1.0)
    power = dev.profile.compute_power_w
    sim.trace.record(0.0, 1.0, dev.name, "train", energy_j=power)
    with pytest.raises(InvariantViolation, match=r"'one job at a time' violated by train t=0.5..1s node=dev0.*"
                                                 r"still computing until t=1s"):
        sim.trace.record(0.5, 1.0, dev.name, "train", energy_j=power * 0.5)


def test_a_step_whose_energy_is_not_power_times_duration_is_caught(sim):
    _advance(sim, 1.0)
    with pytest.raises(InvariantViolation, match=r"'energy' violated by train .* power × duration"):
        sim.trace.record(0.0, 1.0, sim.devices[0].name, "train", energy_j=123.0)


def test_node_energy_that_the_trace_does_not_explain_is_caught_at_the_round_end(sim):
    sim.devices[1].compute_energy_j += 1.0   # energy spent outside any step
    with pytest.raises(InvariantViolation, match=r"'energy' violated by the end of round 0 \(node dev1\): "
                                                 r"compute energy 1 J, power × busy = 0 J"):
        sim.end_round(0, loss=0.0, accuracy=0.0)


def test_a_leaked_received_buffer_is_caught(sim):
    dev, server = sim.devices[0], sim.edge[0]
    proc = sim.process(sim.send(server, dev, {"w": __import__("torch").zeros(10)}, kind="model_down"))
    sim.env.run(until=proc)
    with pytest.raises(InvariantViolation, match=r"'buffers' violated by leaked_buffer .* node=dev0 peer=edge0"):
        sim.report_leaks(1)


def test_memory_over_capacity_without_an_oom_event_is_caught(sim):
    dev = sim.devices[2]
    dev.memory.resident("stash", int(dev.memory.capacity_bytes))   # over capacity, no step saw it
    with pytest.raises(InvariantViolation, match=r"'memory' violated by the end of round 0 \(node dev2\): peak"):
        sim.end_round(0, loss=0.0, accuracy=0.0)
