"""The roofline compute model: a step lasts max(FLOPs / effective FLOP/s, bytes moved / effective
bandwidth), with the bytes counted from the real step by the meter, and its prediction for a
published on-device measurement."""
from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

import cosim
from cosim.learn.accounting import StepCost, StepMeter
from cosim.world.engine import Simulation, StopRule
from cosim.world.mobility import Static
from cosim.world.nodes import Node
from cosim.world.profiles import PROFILES
from conftest import tiny_scenario


def _node(profile="jetson-nano", model="roofline"):
    sim = Simulation(0, StopRule(rounds=1))
    node = Node(sim, "dev0", "device", profile, PROFILES[profile], Static([0.0, 0.0, 1.5]))
    node.compute_model = model
    return node


def test_a_step_is_bound_by_its_arithmetic_or_its_memory_traffic_whichever_takes_longer():
    node = _node()   # Jetson Nano: 236 GFLOP/s x 0.3, 25.6 GB/s x 0.5
    flops_s = PROFILES["jetson-nano"].effective_flops
    bytes_s = PROFILES["jetson-nano"].effective_bandwidth_bytes_per_s
    compute_bound = StepCost(flops=flops_s * 0.2, saved_activation_bytes=0, bytes_moved=int(bytes_s * 0.05))
    memory_bound = StepCost(flops=flops_s * 0.01, saved_activation_bytes=0, bytes_moved=int(bytes_s * 0.3))
    assert node.step_duration_s(compute_bound, 0.0) == pytest.approx(0.2)
    assert node.step_duration_s(memory_bound, 0.0) == pytest.approx(0.3)
    flops_only = _node(model="flops")
    assert flops_only.step_duration_s(memory_bound, 0.0) == pytest.approx(0.01)
    # a cost whose traffic was not counted (0 bytes) is timed by its FLOPs
    assert node.step_duration_s(StepCost(flops_s * 0.01, 0), 0.0) == pytest.approx(0.01)


def test_the_meter_counts_the_bytes_a_real_step_reads_and_writes():
    """One linear layer: addmm reads bias, input and weight and writes the output (the transpose
    of the weight is a view: nothing moves); its backward and an SGD update move more."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 128)
    x = torch.randn(4, 256)
    with torch.no_grad():
        _, fwd = StepMeter().run("fwd", layer, x)
    assert fwd.bytes_moved == 4 * (128 + 4 * 256 + 256 * 128 + 4 * 128)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)

    def train():
        layer(x).pow(2).mean().backward()
        opt.step()

    _, step = StepMeter().run("train", train)
    weights = 4 * (256 * 128 + 128)
    # backward writes a gradient of every weight, the update reads weights and gradients and writes weights
    assert step.bytes_moved > fwd.bytes_moved + 3 * weights
    assert step.flops > fwd.flops


# MobileBERT (Sun et al., "MobileBERT: a Compact Task-Agnostic BERT for Resource-Limited Devices",
# ACL 2020), Table 4: BERT-base (109M parameters, 22.5 GFLOPs at sequence length 128) runs one
# sequence of 128 tokens in 342 ms on a Pixel 4 phone (TensorFlow Lite, 4 CPU threads); the abstract's
# 62 ms for MobileBERT at 5.5x faster than BERT-base agrees (62 x 5.5 = 341 ms).
MOBILEBERT_PIXEL4_BERT_BASE_S = 0.342


def bert_base_inference_cost() -> StepCost:
    """BERT-base (Devlin et al. 2019: 12 layers, hidden 768, 12 heads), one sequence of 128 tokens,
    counted by the meter on the meta device (shapes only: no weights are allocated)."""
    with torch.device("meta"):
        model = BertForSequenceClassification(BertConfig()).eval()
        ids = torch.zeros((1, 128), dtype=torch.long)
    with torch.no_grad():
        return StepMeter().run("bert-base", model, input_ids=ids)[1]


def test_cosim_predicts_bert_base_inference_on_a_pixel_4_within_twice_the_published_time():
    """cosim's phone-cpu profile (Snapdragon 855 big cores, utilization 0.25 as every CPU profile,
    not fitted) predicts 553 ms for the 342 ms measured: 1.62x. The step is compute-bound (22.3 GFLOP
    over 0.6 GB moved: 37 FLOP/B; the phone's ridge point is 40.4e9 / 17.05e9 = 2.4 FLOP/B), so the
    ratio is the utilization assumption: the measurement implies 0.40 of peak."""
    cost = bert_base_inference_cost()
    assert cost.flops == pytest.approx(22.5e9, rel=0.02)   # the paper's count
    predicted_s = _node("phone-cpu").step_duration_s(cost, 0.0)
    ratio = predicted_s / MOBILEBERT_PIXEL4_BERT_BASE_S
    assert 0.5 <= ratio <= 2.0, ratio
    assert ratio == pytest.approx(1.62, abs=0.05)   # the figure the README reports


def test_the_scenario_chooses_the_compute_model_and_roofline_is_the_default(tmp_path):
    raw = tiny_scenario(tmp_path)
    assert {n.compute_model for n in cosim.build(cosim.load(raw)).nodes} == {"roofline"}
    flops = cosim.build(cosim.load(raw, {"runtime.compute_model": "flops"}))
    assert {n.compute_model for n in flops.nodes} == {"flops"}


# --- counts that do not depend on the kernels the host picks (runtime.device) -----------------------

def test_the_optimizers_multi_tensor_form_moves_the_bytes_of_its_one_tensor_form():
    """On CUDA torch's AdamW and SGD take their `_foreach_` form, on the CPU one op per tensor: the
    count is the same, so a GPU run charges the CPU run's step (here both forms run on the CPU)."""
    torch.manual_seed(0)
    shapes = [(8, 16), (16,), (4, 8), (3,)]
    for make in (lambda ps, fe: torch.optim.AdamW(ps, lr=1e-3, foreach=fe), lambda ps, fe: torch.optim.SGD(ps, lr=1e-2, foreach=fe)):
        counts = []
        for foreach in (False, True):
            params = [torch.randn(s, requires_grad=True) for s in shapes]
            opt = make(params, foreach)
            meter = StepMeter()

            def step():
                sum((p * p).sum() for p in params).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            step()                                                     # moments exist: a steady-state step
            counts.append(meter.run("k", step)[1])
        assert counts[0] == counts[1] and counts[0].bytes_moved > 0


def test_fused_attention_counts_its_flops_and_only_what_every_backend_touches():
    """The CPU's flash kernel has no formula in torch's FlopCounterMode (it counted 0 FLOPs); cosim
    gives it the flash-attention formula the CUDA kernels have. Its bytes are q, k, v and the output
    (backward: grad_out, q, k, v, out and the three gradients): what any backend reads and writes,
    not its own bookkeeping (the CPU's log-sum-exp; CUDA's also RNG state)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    from cosim.learn.traffic import TrafficCounter

    b, h, s, d = 2, 4, 16, 8
    shape, tensor_bytes = (b, h, s, d), b * h * s * d * 4
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):   # the fused CPU kernel, not the math decomposition
        _, cost = StepMeter().run("k", lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    assert cost.flops >= sdpa_flop_count(shape, shape, shape) + sdpa_backward_flop_count(shape, shape, shape, shape) > 0

    flash, flash_backward = (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
                             torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward)
    q, k, v = (t.detach() for t in (q, k, v))
    with TrafficCounter() as forward:
        out, logsumexp = flash.default(q, k, v)
    assert forward.bytes_moved == 4 * tensor_bytes and logsumexp.untyped_storage().data_ptr() in forward.bookkeeping
    grad_out = torch.ones_like(out)
    with TrafficCounter() as backward:
        flash_backward.default(grad_out, q, k, v, out, logsumexp, 0.0, False)
    assert backward.bytes_moved == 8 * tensor_bytes
