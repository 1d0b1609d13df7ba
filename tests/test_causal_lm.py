"""Causal-LM fine-tuning (`model.task: causal_lm`) on tiny decoders: next-token targets, the loss and
perplexity that come out of a run, training that lowers perplexity, MobiLLM's side network starting
as exactly the pretrained LM, and scenarios that ask for the impossible are refused."""
from __future__ import annotations

import math

import pytest
import torch

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.learn.models import build_model
from cosim.learn.side import SideConfig, build_side
from cosim.learn.training import IGNORE, next_token_targets, score, task_loss
from cosim.scenario import ScenarioError, validate
from conftest import tiny_scenario


def _lm(tmp_path, scheme: dict, source: str = "tiny-llama", rounds: int = 3, devices: int = 1, **data):
    raw = tiny_scenario(tmp_path)
    raw["model"] = {"source": source, "task": "causal_lm", "max_length": 32}
    raw["data"] = {"dataset": "movie_reviews", "test_samples": 32, **data}
    raw["devices"] = [{"count": devices, "profile": "jetson-nano"}]
    raw["scheme"] = {"rounds": rounds, "local_steps": 3, "batch_size": 8, "lr": 0.005, **scheme}
    return raw


def test_next_token_targets_shift_by_one_and_skip_padding():
    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert next_token_targets(ids, mask).tolist() == [[6, 7, IGNORE, IGNORE, IGNORE], [2, 3, 4, 9, IGNORE]]


def test_token_loss_and_score_count_only_real_targets():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, IGNORE, IGNORE], [4, 0, IGNORE]])
    kept = torch.tensor([[0, 0], [1, 0], [1, 1]])
    expected = torch.stack([torch.nn.functional.cross_entropy(logits[i, j], targets[i, j]) for i, j in kept])
    assert task_loss(logits, targets).item() == pytest.approx(expected.mean().item(), rel=1e-6)
    correct, loss_sum, n = score(logits, targets)
    assert n == 3 and loss_sum == pytest.approx(expected.sum().item(), rel=1e-6)
    assert correct == sum(int(logits[i, j].argmax() == targets[i, j]) for i, j in kept)


@pytest.mark.parametrize("source", ["tiny-llama", "tiny-gpt2"])
def test_lm_head_is_the_models_own_output_projection_and_stays_frozen(source):
    model = build_model(source, "causal_lm")
    from cosim.learn.adapters import LoraSpec, add_lora

    add_lora(model, LoraSpec(r=4))
    assert not model.head.weight.requires_grad
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if "lora_" in n}
    ids = torch.randint(0, 1000, (2, 8))
    assert model(ids, torch.ones_like(ids)).shape == (2, 8, model.head.out_features)


def test_full_fine_tuning_lowers_perplexity_and_rounds_report_it(tmp_path):
    r = cosim.run(_lm(tmp_path, {"name": "fedavg", "lora": None}), progress=False, plots=False)
    rounds = r.rounds
    assert rounds.perplexity.tolist() == pytest.approx([math.exp(x) for x in rounds.eval_loss])
    assert rounds.perplexity.iloc[-1] < 0.5 * rounds.perplexity.iloc[0]  # a random decoder learns token statistics
    assert ((rounds.accuracy >= 0) & (rounds.accuracy <= 1)).all()


def test_mobillm_side_network_starts_as_exactly_the_pretrained_lm(tmp_path):
    from cosim.run import build
    from cosim.schemes.mobillm import inference

    sc = validate(_lm(tmp_path, {"name": "mobillm"}))
    sim = build(sc)
    side, layers = build_side(sim.learner, SideConfig(), seed=0)
    batch = sim.learner.next_batch(sim.devices[0].name)
    with torch.no_grad():
        plain = sim.learner.model(batch.input_ids, batch.attention_mask)
        assert torch.allclose(inference(sim.learner, side, layers, batch), plain, atol=1e-5)
    assert not any(p is sim.learner.model.head.weight for p in side.parameters())  # the LM head is not trained


@pytest.mark.parametrize("scheme", ["mobillm", "ringada", "local_lora", "splitlora"])
def test_schemes_train_a_decoder_on_next_tokens(tmp_path, scheme):
    knobs = {"ringada": {"micro_batches": 2, "unfreeze": {"start_top": 2}}, "splitlora": {"cut_layer": 2}}
    raw = _lm(tmp_path, {"name": scheme, "lr": 0.01, **knobs.get(scheme, {})}, rounds=2,
              devices=4 if scheme == "ringada" else 1)
    rounds = cosim.run(raw, progress=False, plots=False).rounds
    assert rounds.perplexity.iloc[-1] < rounds.perplexity.iloc[0]


def test_impossible_tasks_are_refused_naming_the_field(tmp_path, capsys):
    with pytest.raises(ScenarioError, match=r"model.task: causal_lm needs a decoder .*'tiny-bert'"):
        validate(_lm(tmp_path, {"name": "fedavg"}, source="tiny-bert"))
    with pytest.raises(ScenarioError, match=r"model.task: scheme 'pae_mobillm' cannot train 'causal_lm'.*"
                                            r"allowed: classification"):
        validate(_lm(tmp_path, {"name": "pae_mobillm"}))
    path = tmp_path / "bad.yaml"
    import yaml

    raw = _lm(tmp_path, {"name": "fedavg"})
    raw["model"]["task"] = "translation"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "model.task" in err and "causal_lm" in err and "Traceback" not in err


def test_summary_and_plots_speak_perplexity_for_a_causal_lm(tmp_path):
    raw = _lm(tmp_path, {"name": "local_lora"}, rounds=1)
    raw["outputs"]["plots"] = ["delay_accuracy"]
    r = cosim.run(raw, progress=False)
    assert r.summary["final_perplexity"] == pytest.approx(r.rounds.perplexity.iloc[-1])
    assert (r.dir / "delay_accuracy.png").stat().st_size > 10_000
