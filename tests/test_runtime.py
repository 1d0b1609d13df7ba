"""How the host runs the compute (padding to buckets, the round-0 evaluation, the memo of frozen
forwards, the torch device) changes what it costs the host — never what the simulated devices are
charged for the same tokens, and never a table it should not."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch

import cosim
from cosim.learn.data import batches
from cosim.learn.host_cache import HostCache
from cosim.run import build
from cosim.scenario import ScenarioError, load
from conftest import tiny_scenario


def _tables(result) -> dict:
    return {name: hashlib.md5((Path(result.dir) / name).read_bytes()).hexdigest()
            for name in ("rounds.csv", "events.parquet")}


def _fedavg(tmp_path, **model) -> dict:
    raw = tiny_scenario(tmp_path)
    raw["model"] = {**raw.get("model", {}), "max_length": 64, **model}
    raw["data"] = {**raw.get("data", {}), "test_samples": 150}
    raw["scheme"] = {**raw["scheme"], "name": "fedavg", "rounds": 1, "local_steps": 2}
    return raw


def test_bucket_padding_charges_the_tokens_a_device_processes_not_max_length(tmp_path):
    bucket = cosim.run(_fedavg(tmp_path), progress=False, plots=False)
    fixed = cosim.run(_fedavg(tmp_path, padding="max_length"), progress=False, plots=False)
    train = lambda r: r.events[r.events.kind == "train"].flops.to_numpy()   # noqa: E731
    assert len(train(bucket)) == len(train(fixed))
    assert (train(bucket) <= train(fixed)).all() and train(bucket).sum() < 0.8 * train(fixed).sum()
    assert bucket.rounds.sim_time_s.iloc[-1] < fixed.rounds.sim_time_s.iloc[-1]


def test_evaluation_batches_are_sorted_by_length_so_they_pad_little(tmp_path):
    sim = build(load(_fedavg(tmp_path)))
    widths = [b.input_ids.shape[1] for b in sim.learner._test_batches]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    learner = sim.learner
    assert sum(len(b.labels) for b in learner._test_batches) == 150
    in_order = [learner._encode(t, y) for t, y in batches(learner.test, 64)]
    padded = lambda bs: sum(b.input_ids.numel() for b in bs)   # noqa: E731
    assert sum(int(b.attention_mask.sum()) for b in learner._test_batches) == sum(int(b.attention_mask.sum())
                                                                                  for b in in_order)
    assert padded(learner._test_batches) < 0.85 * padded(in_order)


def test_round_zero_evaluation_can_be_skipped(tmp_path):
    raw = _fedavg(tmp_path)
    raw["outputs"]["eval_round0"] = False
    result = cosim.run(raw, progress=False, plots=False)
    assert result.rounds["round"].tolist() == [0, 1]
    assert math.isnan(result.rounds.accuracy.iloc[0]) and not math.isnan(result.rounds.accuracy.iloc[1])
    assert (result.events.kind == "eval").sum() == 1


def test_the_host_memo_of_frozen_forwards_changes_no_table_and_is_used(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["data"] = {**raw.get("data", {}), "test_samples": 100}
    raw["scheme"] = {"name": "mobillm", "rounds": 2, "local_steps": 2, "batch_size": 8}
    off = _tables(cosim.run({**raw, "runtime": {"host_cache_mb": 0}}, progress=False, plots=False))
    hits = []
    real_get = HostCache.get

    def get(self, key, compute):
        value = real_get(self, key, compute)
        hits.append(self.hits)
        return value

    HostCache.get = get
    try:
        on = _tables(cosim.run({**raw, "runtime": {"host_cache_mb": 64}}, progress=False, plots=False))
    finally:
        HostCache.get = real_get
    assert on == off
    assert hits and hits[-1] > 0   # each round's evaluation ran the frozen backbone on the same test batches


def test_the_memo_keeps_within_its_budget_and_never_serves_a_step_being_counted():
    cache = HostCache(budget_bytes=3 * 4 * 10)   # three tensors of ten float32
    calls = []

    def compute(i):
        calls.append(i)
        return torch.full((10,), float(i))

    for i in range(5):
        cache.get(i, lambda i=i: compute(i))
    assert cache.bytes <= cache.budget_bytes and len(cache._entries) == 3
    cache.get(4, lambda: compute(4))
    assert calls == [0, 1, 2, 3, 4]   # a hit: not computed again
    cache.get(0, lambda: compute(0))
    assert calls[-1] == 0   # evicted (least recently used): computed again

    from cosim.learn.accounting import StepMeter

    meter = StepMeter()
    x = torch.ones(4, 4)
    cost_hit = meter.run("k", lambda: cache.get("mm", lambda: x @ x))[1]
    assert cost_hit.flops == 2 * 4 * 4 * 4   # counted for real, though "mm" could have been cached


def test_a_cuda_device_this_machine_lacks_is_refused_naming_the_field(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ScenarioError, match=r"runtime.device: 'cuda' but torch sees 0 CUDA"):
        build(load({**_fedavg(tmp_path), "runtime": {"device": "cuda"}}))
    with pytest.raises(ScenarioError, match="runtime.device"):
        load({**_fedavg(tmp_path), "runtime": {"device": "gpu"}})
    with pytest.raises(ScenarioError, match="runtime.workers"):
        load({**_fedavg(tmp_path), "runtime": {"workers": 0}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("scheme, runtime", [
    ("fedavg", {}), ("splitfed", {}), ("mobillm", {}), ("split", {}), ("splitfrozen", {}),
    ("fedavg", {"batch_clients": True}),          # grouped LoRA steps on the GPU
])
def test_on_cuda_the_simulated_times_are_the_cpu_run_s_and_accuracy_agrees(tmp_path, scheme, runtime):
    raw = _fedavg(tmp_path)
    raw["scheme"] = {**raw["scheme"], "name": scheme}
    cpu = cosim.run({**raw, "runtime": {"device": "cpu"}}, progress=False, plots=False)
    gpu = cosim.run({**raw, "runtime": {"device": "cuda", **runtime}}, progress=False, plots=False)
    cols = ["t_start", "t_end", "node", "kind", "bytes", "flops"]
    assert gpu.events[cols].equals(cpu.events[cols])
    # 150 held-out rows: 0.02 is three answers flipped by float rounding on another device
    assert abs(gpu.rounds.accuracy - cpu.rounds.accuracy).max() <= 0.02


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_a_causal_lm_keeps_the_cpu_run_s_times_and_perplexity(tmp_path):
    raw = _fedavg(tmp_path)
    raw["model"] = {"source": "tiny-llama", "task": "causal_lm", "max_length": 32}
    raw["data"] = {**raw["data"], "test_samples": 32}
    cpu = cosim.run({**raw, "runtime": {"device": "cpu"}}, progress=False, plots=False)
    gpu = cosim.run({**raw, "runtime": {"device": "auto"}}, progress=False, plots=False)   # auto: the GPU here
    cols = ["t_start", "t_end", "node", "kind", "bytes", "flops"]
    assert gpu.events[cols].equals(cpu.events[cols])
    torch.testing.assert_close(torch.tensor(gpu.rounds.perplexity.to_numpy()),
                               torch.tensor(cpu.rounds.perplexity.to_numpy()), rtol=1e-3, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_device_auto_takes_the_gpu_when_torch_sees_one(tmp_path):
    assert build(load({**_fedavg(tmp_path), "runtime": {"device": "auto"}})).learner.device.type == "cuda"


def test_a_run_keeps_its_built_heap_out_of_full_collections_and_hands_it_back(tmp_path, monkeypatch):
    import gc

    during = []
    real_drive = cosim.run.__globals__["_run_scheme"]

    def watched(sim, *a, **k):
        during.append(gc.get_freeze_count())
        return real_drive(sim, *a, **k)

    monkeypatch.setitem(cosim.run.__globals__, "_run_scheme", watched)
    before = gc.get_freeze_count()
    cosim.run(_fedavg(tmp_path), progress=False, plots=False)
    assert during and during[0] > before + 10_000   # the model, data and modules: frozen while it runs
    assert gc.get_freeze_count() == before          # a process running many runs still frees each one's cycles


def test_a_tied_parameter_swapped_in_reaches_every_name_it_is_tied_to():
    from cosim.learn.training import call_with, tied_names

    model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight   # an LM head tied to the embeddings
    assert tied_names(model) == {"0.weight", "1.weight"}
    new = torch.ones(5, 3)
    tokens = torch.tensor([1, 2])
    out = call_with(model, {"0.weight": new}, (tokens,), tied=tied_names(model))
    assert torch.equal(out, torch.full((2, 5), 3.0))   # the head used the swapped-in weight too
    untied = call_with(model, {"0.weight": new}, (tokens,))   # told nothing is tied: the head keeps its own
    assert not torch.equal(untied, out)
