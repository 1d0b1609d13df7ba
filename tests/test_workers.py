"""Host parallelism never changes a table: runs with workers (forked processes, Ray actors) write
byte-identical rounds.csv and events.parquet to the serial run, for every scheme family; and the
work really went to the workers."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest
import yaml

import cosim
import cosim.learn.workers as workers_module
from conftest import ROOT, tiny_scenario


def _digests(result) -> dict:
    return {name: hashlib.md5((Path(result.dir) / name).read_bytes()).hexdigest()
            for name in ("rounds.csv", "events.parquet")}


def _run(raw: dict, out: Path, **runtime) -> dict:
    raw = {**raw, "runtime": {**raw.get("runtime", {}), **runtime},
           "outputs": {"dir": str(out), "progress": False, "plots": []}}
    return _digests(cosim.run(raw, progress=False, plots=False))


def _fedavg(tmp_path) -> dict:
    """Tiny FedAvg whose held-out split spans several evaluation batches (so scoring is sharded)."""
    raw = tiny_scenario(tmp_path)
    raw["data"] = {**raw.get("data", {}), "test_samples": 150}
    raw["scheme"] = {**raw["scheme"], "name": "fedavg", "rounds": 2, "local_steps": 3, "participants": 3}
    return raw


@pytest.mark.parametrize("scheme, claim", [("fedavg", "claim"), ("splitlora", "claim"), ("mobillm", "claim_step")])
def test_two_worker_processes_write_the_serial_tables_and_did_the_work(scheme, claim, tmp_path, monkeypatch):
    """FedAvg's local steps, SplitLoRA's (SplitFed v1) client turns and MobiLLM's device forwards run on the
    workers; scoring is sharded."""
    raw = _fedavg(tmp_path)
    raw["scheme"]["name"] = scheme
    serial = _run(raw, tmp_path / "serial", workers=1)
    claimed = []
    real_claim = getattr(workers_module.Ahead, claim)

    def spy(self, *args):
        ticket = real_claim(self, *args)
        claimed.append(ticket is not None)
        return ticket

    monkeypatch.setattr(workers_module.Ahead, claim, spy)
    parallel = _run(raw, tmp_path / "parallel", workers=2)
    assert parallel == serial
    assert claimed and all(claimed)   # every client's steps came from a worker


def test_a_claim_from_another_state_is_refused_and_trained_here(tmp_path):
    """A ticket computed from a state other than what the client received is not used."""
    import torch

    from cosim.run import build
    from cosim.scenario import load

    sim = build(load(_fedavg(tmp_path)))
    ahead = workers_module.Ahead(sim.learner, None)
    state = sim.learner.initial_state()
    name = sim.devices[0].name
    ticket = workers_module.Ticket(ahead, name, state, 3, sim.learner.clients[name].cursor(), future=None)
    ahead._tickets[(name, "train")] = ticket
    moved = {k: v + 1 for k, v in state.items()}
    assert ahead.claim(name, "train", moved, 3) is None
    ahead._tickets[(name, "train")] = ticket
    assert ahead.claim(name, "train", {k: v.clone() for k, v in state.items()}, 3) is ticket
    sim.learner.clients[name].next_indices()   # the client drew a batch since: its cursor moved
    ahead._tickets[(name, "train")] = ticket
    assert ahead.claim(name, "train", state, 3) is None
    assert torch.equal(state[next(iter(state))], sim.learner.initial_state()[next(iter(state))])


#: One shipped scenario per scheme family, shrunk as tools/fingerprint.py shrinks it.
FAMILIES = ["fedavg", "fedlora", "splitfed_v1", "splitfed", "split", "splitfrozen", "hetero_sfl", "three_tier",
            "sequential_fl", "cyclicfl", "dfl", "mavfl", "whale_fl", "split_kd", "mobillm_phone",
            "pae_mobillm_phone", "ringada_ring4", "local_lora", "uav_thz_isac"]


def _fingerprint_tool():
    spec = importlib.util.spec_from_file_location("fingerprint", ROOT / "tools" / "fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("case", FAMILIES)
def test_every_scheme_family_writes_the_same_tables_with_workers(case, tmp_path):
    tool = _fingerprint_tool()
    extra = dict(tool.CASES[case])
    raw = yaml.safe_load((ROOT / "scenarios" / f"{extra.pop('file', case)}.yaml").read_text())
    if "scheme" in extra:
        raw["scheme"] = extra.pop("scheme")
    raw = tool.shrink(raw, str(tmp_path))
    raw["data"]["test_samples"] = 140   # several evaluation batches
    for key, value in extra.items():
        section, field = key.split(".", 1)
        raw[section][field] = value
    assert _run(raw, tmp_path / "parallel", workers=2) == _run(raw, tmp_path / "serial", workers=1)


@pytest.mark.slow
def test_ray_actors_on_a_local_ray_write_the_serial_tables(tmp_path):
    pytest.importorskip("ray")
    raw = _fedavg(tmp_path)
    assert _run(raw, tmp_path / "ray", workers=2, backend="ray") == _run(raw, tmp_path / "serial", workers=1)
    assert not list((tmp_path / "ray").rglob("ray/session_*")), "the Ray session folder is left behind"


def test_batched_clients_charge_the_same_steps_and_learn_the_same_within_tolerance(tmp_path, monkeypatch):
    """runtime.batch_clients: the round's clients step together on the host (cosim.learn.batched);
    every simulated figure is the one-at-a-time run's, accuracy within float tolerance."""
    import pandas as pd

    raw = _fedavg(tmp_path)
    claimed = []
    real_claim = workers_module.Ahead.claim
    monkeypatch.setattr(workers_module.Ahead, "claim",
                        lambda self, *a: claimed.append(real_claim(self, *a)) or claimed[-1])
    runs = {}
    for label, runtime in {"one": {}, "batched": {"batch_clients": True},
                           "batched_2": {"batch_clients": True, "workers": 2}}.items():
        raw_i = {**raw, "runtime": runtime, "outputs": {"dir": str(tmp_path / label), "progress": False, "plots": []}}
        runs[label] = cosim.run(raw_i, progress=False, plots=False)
    cols = ["t_start", "t_end", "node", "kind", "round", "bytes", "flops", "energy_j", "mem_bytes"]
    for label in ("batched", "batched_2"):
        pd.testing.assert_frame_equal(runs[label].events[cols], runs["one"].events[cols])
        assert (runs[label].rounds.accuracy - runs["one"].rounds.accuracy).abs().max() <= 0.02
        assert (runs[label].rounds.loss - runs["one"].rounds.loss).abs().max() <= 1e-3
    assert len(claimed) == 2 * 2 * 3 and all(t is not None for t in claimed)   # all batched, none refused


def test_a_held_evaluation_row_keeps_its_place_and_stops_the_drain_until_amended():
    """Rows after an evaluation still being scored wait with it: the writer never writes it unfilled."""
    from cosim.world.engine import Trace

    trace = Trace()
    trace.record(0, 1, "d0", "train")
    held = trace.record(1, 1, "", "eval", hold=True)
    trace.record(1, 2, "d0", "train")
    assert [r[4] for r in trace.drain()] == ["train"]
    trace.record(2, 3, "d0", "train")
    assert trace.drain() == []
    trace.amend(held, "accuracy=0.5000")
    rows = trace.drain()
    assert [(r[4], r[10]) for r in rows] == [("eval", "accuracy=0.5000"), ("train", ""), ("train", "")]


def test_closing_a_round_does_not_wait_for_the_previous_rounds_score(tmp_path):
    """With workers, round r's close queues its evaluation and goes on; rounds end in order once their
    scores are in, and the end of the run waits for all of them."""
    from cosim.world.engine import Simulation, StopRule

    class Pending:
        def __init__(self, value):
            self.value, self.ready = value, False

        def done(self):
            return self.ready

        def result(self):
            return self.value, 1.0

    class FakeAhead:
        def __init__(self):
            self.pending, self.queued = [], 0

        def evaluate_later(self, state):
            self.pending.append(Pending(state))
            return self.pending[-1]

        def queue_later(self):
            self.queued += 1

    class FakeLearner:
        task, ahead = "classification", FakeAhead()

    sim = Simulation(0, StopRule(rounds=3))
    sim.learner = FakeLearner()
    ended = []
    sim.on_round_end.append(lambda rec: ended.append(rec.round))
    sim.close_round(1, 0.25, [1.0])
    sim.close_round(2, 0.5, [1.0])   # round 1's score is not in: nothing waits, nothing ends
    assert ended == []
    sim.learner.ahead.pending[0].ready = True
    sim.close_round(3, 0.75, [1.0])
    assert ended == [1]
    sim.settle()   # the end of the run: every score
    assert ended == [1, 2, 3] and [r.accuracy for r in sim.round_records] == [0.25, 0.5, 0.75]
    assert sim.learner.ahead.queued == 1
