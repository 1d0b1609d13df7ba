"""The primitives own their bookkeeping: scoped holds and received buffers, derived FLOP keys,
the round number by default, a declared event vocabulary — so a scheme cannot leak a buffer, reuse
a wrong FLOP count or draw an event as "other" without the trace saying so."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import yaml

import cosim
from cosim.learn.accounting import StepMeter
from cosim.run import build
from cosim.world import events
from cosim.world.nodes import MemoryLedger
from conftest import ROOT, tiny_scenario


# --- memory: residents replace by name, holds are scoped --------------------------------------------

def test_a_hold_gives_its_bytes_back_once_and_the_peak_remembers_it():
    ledger = MemoryLedger(1e9)
    ledger.resident("weights", 100)
    a = ledger.hold("recv:activation:dev0", 40)
    with ledger.hold("activations", 10) as b:
        assert ledger.total == 150
        b.resize(30)
    assert ledger.total == 140 and ledger.peak == 170
    a.release()
    a.release()  # idempotent
    assert ledger.total == 100 and ledger.holds == []
    ledger.resident("weights", 60)  # a resident name is replaced, not added
    assert ledger.total == 60 and ledger.held == {"weights": 60}


def test_two_holds_with_one_label_are_two_buffers():
    ledger = MemoryLedger(1e9)
    first, second = ledger.hold("queued", 5), ledger.hold("queued", 7)
    assert ledger.total == 12 and ledger.held == {"queued": 12}
    first.release()
    assert ledger.total == 7 and second.open and not first.open


# --- the simulation: send returns a Received, a forgotten one is a fault row ------------------------

def _sim(tmp_path):
    sc = cosim.load(tiny_scenario(tmp_path))
    return build(sc)


def _drive(sim, gen):
    proc = sim.process(gen)
    sim.env.run(until=proc)
    return proc.value


def test_a_received_buffer_is_held_at_the_receiver_until_released(tmp_path):
    sim = _sim(tmp_path)
    dev, server = sim.devices[0], sim.edge[0]
    payload = {"w": torch.zeros(100, dtype=torch.float32)}
    received = _drive(sim, sim.send(server, dev, payload, kind="model_down"))
    assert torch.equal(received.value["w"], payload["w"])
    assert dev.memory.held[f"recv:model_down:{server.name}"] == received.nbytes > 400
    received.release()
    assert f"recv:model_down:{server.name}" not in dev.memory.held


def test_a_buffer_still_held_when_the_round_closes_is_one_leaked_buffer_row(tmp_path, monkeypatch):
    monkeypatch.setenv("COSIM_VERIFY", "0")   # the leak is planted: verification would stop at it
    sim = _sim(tmp_path)
    dev, server = sim.devices[0], sim.edge[0]
    sim.current_round = 1
    _drive(sim, sim.send(server, dev, [torch.ones(10)], kind="model_down"))  # never released
    state = sim.learner.initial_state()
    sim.close_round(1, state, [])
    sim.current_round = 2
    sim.close_round(2, state, [])  # reported once, not at every close
    leaks = [r for r in sim.trace.rows if r[4] == "leaked_buffer"]
    assert len(leaks) == 1
    t0, t1, node, peer, kind, rnd, nbytes, flops, energy, mem, detail, category = leaks[0]
    assert (node, peer, rnd, detail, category) == (dev.name, server.name, 1, f"recv:model_down:{server.name}",
                                                   "fault")
    assert mem > 0


def test_compute_and_send_accept_only_their_own_declared_kinds(tmp_path):
    sim = _sim(tmp_path)
    dev, server = sim.devices[0], sim.edge[0]
    with pytest.raises(events.UnknownKind, match="transfer kind"):
        _drive(sim, dev.compute(torch.ones, 3, kind="activation"))
    with pytest.raises(events.UnknownKind, match="compute kind"):
        _drive(sim, sim.send(server, dev, [torch.ones(3)], kind="train"))
    with pytest.raises(events.UnknownKind, match="not declared"):
        _drive(sim, dev.compute(torch.ones, 3, kind="trian"))


def test_a_step_records_the_current_round_without_being_told(tmp_path):
    sim = _sim(tmp_path)
    sim.current_round = 7
    _drive(sim, sim.devices[0].compute(torch.ones, 3, kind="fwd"))
    assert sim.trace.rows[-1][5] == 7


# --- FLOP keys derived from what the step is given -------------------------------------------------

def test_the_derived_flop_key_tells_shapes_and_trainable_parameters_apart():
    meter = StepMeter()
    lin = torch.nn.Linear(8, 8)

    def step(x):
        return lin(x).sum()

    for x in (torch.ones(2, 8), torch.zeros(2, 8), torch.ones(4, 8)):
        meter.run(meter.signature(step, (x,), {}), step, x)
    assert meter.measured == 2  # (2, 8) twice, (4, 8) once
    a = meter.signature(step, (torch.ones(2, 8),), {})
    b = meter.signature(step, (torch.ones(2, 8, requires_grad=True),), {})
    assert a != b


def test_a_model_part_signs_with_the_parameters_that_train(tmp_path):
    sim = _sim(tmp_path)
    part = sim.learner.local(sim.learner.initial_state())
    before = StepMeter.signature(part.train_step, (), {})
    next(iter(part.params.values())).requires_grad_(False)
    assert StepMeter.signature(part.train_step, (), {}) != before


def test_every_recorded_kind_is_declared_with_its_category(tmp_path):
    ev = cosim.run(tiny_scenario(tmp_path), progress=False, plots=False).events
    assert set(ev.category) <= set(events.CATEGORIES)
    assert all(events.category_of(k) == c for k, c in zip(ev.kind, ev.category))
    assert set(ev.category[ev.kind.isin(["train", "aggregate"])]) == {"compute"}


# --- schemes: no sibling imports, no leaked buffers -------------------------------------------------

SCHEME_DIR = ROOT / "cosim" / "schemes"


def test_no_scheme_module_imports_another_scheme_module():
    from cosim.schemes import SCHEMES  # noqa: F401

    modules = {p.stem for p in SCHEME_DIR.glob("*.py")} - {"__init__", "base", "common"}
    offenders = []
    for path in SCHEME_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:          # from .x import … / from . import x
                    names = [module] if module else [a.name for a in node.names]
                elif node.level == 2 and module.startswith("schemes"):   # from ..schemes.x import …
                    names = [module.removeprefix("schemes").lstrip(".")] or [a.name for a in node.names]
                elif module.startswith("cosim.schemes"):                  # from cosim.schemes.x import …
                    names = [module.removeprefix("cosim.schemes").lstrip(".")] or [a.name for a in node.names]
                else:
                    continue
                offenders += [f"{path.stem} -> {n}" for n in names if n and n.split(".")[0] in modules]
            elif isinstance(node, ast.Import):
                offenders += [f"{path.stem} -> {a.name}" for a in node.names
                              if a.name.startswith("cosim.schemes.") and a.name.split(".")[2] in modules]
    assert offenders == []


def _shrunk(path: Path, tmp_path: Path, **scheme) -> dict:
    raw = yaml.safe_load(path.read_text())
    causal = raw.get("model", {}).get("task") == "causal_lm"
    raw["model"] = {**raw.get("model", {}), "source": "tiny-llama" if causal else "tiny-bert", "max_length": 32}
    raw["model"].pop("tiny", None)
    raw.setdefault("data", {})["test_samples"] = 32
    raw["scheme"].update(rounds=2, local_steps=2, batch_size=8, **scheme)
    for g in raw.get("devices", []):
        g["count"] = min(g.get("count", 1), 4)
    if raw.get("control", {}).get("compute") == "ppo":   # a trained policy fits its scenario's device count only
        raw["control"] = {**raw["control"], "compute": "greedy", "policy": None}
    raw["outputs"] = {"dir": str(tmp_path), "progress": False, "plots": []}
    for key in ("compare", "sweep", "stop"):
        raw.pop(key, None)
    return raw


#: one shipped scenario per scheme (and the settings that make it fit a 4-block tiny model)
SCHEME_CASES = {
    "fedavg": ("fedavg", {}), "fedlora": ("fedlora", {}), "split": ("split", {}), "splitfed": ("splitfed", {}),
    "splitfed-v1": ("splitfed", {"variant": "v1"}), "splitlora": ("splitlora", {}),
    "splitfrozen": ("splitfrozen", {}), "hetero_sfl": ("hetero_sfl", {}), "three_tier": ("three_tier", {}),
    "sequential_fl": ("sequential_fl", {}), "cyclicfl": ("cyclicfl", {"cyclic_rounds": 1}), "dfl": ("dfl", {}),
    "mavfl": ("mavfl", {}), "whale_fl": ("whale_fl", {}), "split_kd": ("split_kd", {}),
    "mobillm": ("mobillm_phone", {}), "pae_mobillm": ("pae_mobillm_phone", {}),
    "ringada": ("ringada_ring4", {"blocks_per_device": [1, 1, 1, 1]}), "local_lora": ("local_lora", {}),
    "sft": ("sft", {}), "dt_incremental": ("dt_incremental", {"requests": [1, 8]}),
}


def test_every_scheme_has_a_leak_case():
    from cosim.schemes import SCHEMES

    covered = {cosim.load(ROOT / "scenarios" / f"{f}.yaml").scheme.name for f, _ in SCHEME_CASES.values()}
    assert set(SCHEMES) <= covered


@pytest.mark.parametrize("case", sorted(SCHEME_CASES))
def test_no_scheme_leaves_a_received_buffer_behind(case, tmp_path):
    file, scheme = SCHEME_CASES[case]
    r = cosim.run(_shrunk(ROOT / "scenarios" / f"{file}.yaml", tmp_path, **scheme), progress=False, plots=False)
    leaks = r.events[r.events.kind == "leaked_buffer"]
    assert leaks[["node", "detail"]].values.tolist() == []
    assert len(r.rounds) == 3  # round 0 and both rounds ran


def test_split_server_peak_does_not_grow_with_the_number_of_devices_it_served(tmp_path):
    """The defect the scoped buffers fixed: plain split kept every device's uploaded bottom part
    (and each device its downloaded one) for the whole run, so the server's peak grew with every
    device that took a turn."""
    def server_peak(count):
        raw = tiny_scenario(tmp_path, devices=[{"count": count, "profile": "jetson-nano"}])
        raw["scheme"].update(name="split", cut_layer=2, rounds=1, participants=None)
        nodes = cosim.run(raw, progress=False, plots=False).nodes
        return int(nodes[nodes.role == "edge"].peak_memory_bytes.iloc[0])

    assert server_peak(2) == server_peak(4)


def test_cosim_kinds_prints_every_declared_kind_with_its_category(capsys):
    from cosim.cli import main

    assert main(["kinds"]) == 0
    out = capsys.readouterr().out
    for category, name in [("compute", "wgrad"), ("transfer", "gradient"), ("marker", "decision"),
                           ("fault", "leaked_buffer")]:
        assert any(line.split()[:2] == [category, name] for line in out.splitlines()), (category, name)
