"""Models cut at any block give exactly the uncut model's output, for BERT-, GPT-2- and Llama-style
architectures; LoRA trains only adapters and head; a step's FLOPs are counted once and reused."""
from __future__ import annotations

import pytest
import torch

from cosim.learn.accounting import StepMeter
from cosim.learn.adapters import LoraSpec, add_lora
from cosim.learn.data import encode
from cosim.learn.models import build_classifier, load_tokenizer

ARCHS = ["tiny-bert", "tiny-gpt2", "tiny-llama"]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-bert")


@pytest.mark.parametrize("source", ARCHS)
@pytest.mark.parametrize("cut", [1, 2, 3])
def test_bottom_then_top_equals_the_whole_model(source, cut, tokenizer):
    model = build_classifier(source, num_labels=3, seed=0)
    enc = encode(tokenizer, ["a short one", "a somewhat longer sentence with more words"], 16)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    whole = model(ids, mask)
    hidden = model(ids, mask, start=0, end=cut)
    assert hidden.shape == (2, 16, model.hidden_size)
    torch.testing.assert_close(model(attention_mask=mask, hidden=hidden, start=cut), whole)
    bottom, top = set(model.part_parameter_names(0, cut)), set(model.part_parameter_names(cut))
    assert not bottom & top and bottom | top == {n for n, _ in model.named_parameters()}


@pytest.mark.parametrize("source", ARCHS)
def test_lora_trains_only_adapters_and_head(source):
    model = add_lora(build_classifier(source, num_labels=2, seed=0), LoraSpec(r=4))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any("lora_" in n for n in trainable)


def test_flops_are_counted_once_per_signature_and_scale_with_batch(tokenizer):
    model = add_lora(build_classifier("tiny-bert", num_labels=2, seed=0), LoraSpec(r=4))
    meter = StepMeter()
    meter.exclude_parameters(model)

    def step(n):
        enc = encode(tokenizer, ["word"] * n, 16)
        loss = model(enc["input_ids"], enc["attention_mask"]).sum()
        loss.backward()

    _, c4 = meter.run(("step", 4), step, 4)
    _, again = meter.run(("step", 4), step, 4)
    _, c8 = meter.run(("step", 8), step, 8)
    assert meter.measured == 2 and again == c4
    assert c8.flops == pytest.approx(2 * c4.flops, rel=0.01)
    assert c8.saved_activation_bytes == pytest.approx(2 * c4.saved_activation_bytes, rel=0.05)
