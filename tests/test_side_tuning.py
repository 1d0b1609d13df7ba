"""MobiLLM and PAE MobiLLM on a tiny real scenario: the device never backpropagates through its
backbone, so it computes forward only and holds less than on-device LoRA; the activations go up as
real packed low-bit bytes of exactly the documented size; PAE's pivot tokens cut the uplink per
sample by ~the sequence length, its cache spares the device any forward for samples it has already
sent, and nothing that crosses a link carries the labels or the input ids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cosim
from cosim.learn.compress import QuantCodec, dequantize, pack_codes, quantize, quantized_payload_bytes, unpack_codes
from cosim.schemes.base import SCHEMES
from conftest import tiny_scenario

B, T, H, LAYERS = 8, 32, 64, 4  # tiny scenario: batch, max_length, hidden, blocks

#: The on-device LoRA baseline: helper G's `local_lora` when it exists, else FedAvg over LoRA with
#: the single device (which also trains everything itself).
BASELINE = "local_lora" if "local_lora" in SCHEMES else "fedavg"


def _run(tmp_path, scheme: str, samples_per_client: int | None = None, rounds: int = 2, local_steps: int = 3,
         **knobs):
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": 1, "profile": "phone-midrange"}]
    if samples_per_client:
        raw["data"]["partition"] = {"kind": "iid", "samples_per_client": samples_per_client}
    raw["scheme"] = {"name": scheme, "rounds": rounds, "local_steps": local_steps, "batch_size": B, "lr": 0.005,
                     **knobs}
    return cosim.run(raw, progress=False, plots=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("side")
    return {"mobillm": _run(tmp, "mobillm", bits=4), "baseline": _run(tmp, BASELINE),
            "pae": _run(tmp, "pae_mobillm", bits=4)}


def _devices(r):
    return set(r.nodes[r.nodes.role == "device"].node)


def test_mobillm_device_computes_forward_only_and_gets_only_the_side_network(runs):
    r = runs["mobillm"]
    ev = r.events
    on_device = ev[ev.node.isin(_devices(r))]
    assert set(on_device[on_device.flops > 0].kind) == {"fwd"}
    assert not on_device.kind.isin(["bwd", "train", "wgrad"]).any()
    down = ev[(ev.bytes > 0) & ev.peer.isin(_devices(r)) & ~ev.node.isin(_devices(r))]
    assert list(down.kind) == ["side_network"]


def test_mobillm_device_peak_memory_below_on_device_lora(runs):
    assert runs["mobillm"].summary["device_peak_memory_bytes"] < runs["baseline"].summary["device_peak_memory_bytes"]


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_mobillm_uplink_bytes_per_batch_are_the_packed_quantized_size(tmp_path, bits):
    r = _run(tmp_path, "mobillm", rounds=1, local_steps=2, bits=bits)
    up = r.events.query("kind == 'activation'").bytes
    expected = quantized_payload_bytes([(B, T, H)] * LAYERS, bits,
                                       [((B,), torch.int32), ((B,), torch.int64)])  # + lengths, labels
    assert set(up) == {expected}
    assert expected < 8 + LAYERS * B * T * H * bits // 8 + 400  # packed: bits/8 byte per value, tiny headers


def test_pae_uplink_per_sample_is_about_one_over_seq_len_of_mobillm(runs):
    def activation_bytes_per_sample(r):
        ev = r.events
        samples = ((ev.kind == "fwd") & ev.node.isin(_devices(r))).sum() * B  # all samples are new here
        return ev[ev.kind == "activation"].bytes.sum() / samples

    ratio = activation_bytes_per_sample(runs["pae"]) / activation_bytes_per_sample(runs["mobillm"])
    assert 0.8 / T < ratio < 1.5 / T, f"ratio {ratio:.4f} vs 1/T = {1 / T:.4f}"


def test_pae_second_epoch_costs_the_device_no_forward_and_the_link_no_activation(tmp_path):
    # 16 samples, batches of 8, 2 steps per round: round 1 is epoch 1, round 2 epoch 2
    cached = _run(tmp_path, "pae_mobillm", samples_per_client=16, local_steps=2)
    uncached = _run(tmp_path, "pae_mobillm", samples_per_client=16, local_steps=2, cache=False)
    for r, forwards in ((cached, 0), (uncached, 2)):
        ev = r.events.query("node == 'dev0'")
        assert (ev.query("round == 1").kind == "fwd").sum() == 2
        assert (ev.query("round == 2").kind == "fwd").sum() == forwards
        assert (ev.query("round == 2").kind == "activation").sum() == forwards
    ev = cached.events.query("round == 2 and node == 'dev0'")
    assert set(ev[ev.bytes > 0].kind) == {"request", "difference"}


def test_no_payload_carries_labels_or_input_ids(tmp_path, monkeypatch):
    from cosim.learn.training import Learner
    from cosim.world.engine import Simulation

    payloads, batches = [], []
    send, draw = Simulation.send, Learner.next_indexed_batch

    def spy_send(self, src, dst, payload, kind, codec=None):
        payloads.append((kind, list(payload.values()) if isinstance(payload, dict) else list(payload)))
        return (yield from send(self, src, dst, payload, kind, codec=codec))

    def spy_draw(self, client):
        batch, keys = draw(self, client)
        batches.append(batch)
        return batch, keys

    monkeypatch.setattr(Simulation, "send", spy_send)
    monkeypatch.setattr(Learner, "next_indexed_batch", spy_draw)
    _run(tmp_path, "pae_mobillm", samples_per_client=16, local_steps=2)
    assert batches and {k for k, _ in payloads} == {"activation", "request", "side_output", "difference",
                                                    "side_network"}
    secrets = [b.labels for b in batches] + [b.input_ids for b in batches]
    assert _carries(batches[0].labels.to(torch.int32).reshape(1, -1), batches[0].labels)  # the detector works
    for kind, tensors in payloads:
        for t in tensors:
            assert not any(_carries(t, s) for s in secrets), f"a {kind} payload carries a label or input-id row"


def _carries(t: torch.Tensor, secret: torch.Tensor) -> bool:
    """Whether a row of `secret` (labels: one row; input ids: one per sample) appears, in any
    dtype, as a row of `t` read with the secret's row width."""
    width = secret.shape[-1]
    if not t.numel() or t.numel() % width:
        return False
    rows = t.reshape(-1, width).to(torch.float64)
    return any(bool((rows == row).all(dim=1).any()) for row in secret.reshape(-1, width).to(torch.float64))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantization_error_is_bounded_by_the_step(bits):
    x = torch.randn(5, 7, 11) * 3
    codes, lo, scale = quantize(x, bits)
    err = (dequantize(codes, lo, scale).reshape(x.shape) - x).abs().max().item()
    assert err <= scale / 2 * (1 + 1e-5)
    codes_s, lo_s, scale_s = quantize(x, bits, np.random.default_rng(0))
    assert (dequantize(codes_s, lo_s, scale_s).reshape(x.shape) - x).abs().max().item() < scale_s * (1 + 1e-5)
    assert torch.equal(unpack_codes(pack_codes(codes, bits), bits, codes.numel()), codes)
    data = QuantCodec(bits).encode([x])
    assert len(data) == quantized_payload_bytes([x.shape], bits)
    assert len(pack_codes(codes, bits)) == -(-x.numel() * bits // 8)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_per_token_ranges_keep_a_massive_activation_from_flattening_the_other_tokens(bits):
    """A decoder's hidden state (B, T, H) with one huge value on the first token, as SmolLM2's."""
    x = torch.randn(2, 6, 16)
    x[:, 0, 3] = 2.5e4
    codec = QuantCodec(bits, per_row=True)
    data = codec.encode({"h": x, "lengths": torch.tensor([6, 4], dtype=torch.int32)})
    assert len(data) == quantized_payload_bytes([x.shape], bits, [((2,), torch.int32)], per_row=True)
    assert len(data) - len(QuantCodec(bits).encode({"h": x, "lengths": torch.tensor([6, 4], dtype=torch.int32)})) \
        == 8 * (2 * 6 - 1)  # one (zero point, step) pair per token instead of per tensor
    decoded = codec.decode(data, like={"h": x, "lengths": None})["h"]
    rest = x[:, 1:]
    step = (rest.amax(-1) - rest.amin(-1)) / ((1 << bits) - 1)
    assert ((decoded[:, 1:] - rest).abs() <= step.unsqueeze(-1) / 2 * (1 + 1e-5)).all()
    per_tensor = QuantCodec(bits).decode(QuantCodec(bits).encode([x]), like=[x])[0]
    assert (per_tensor[:, 1:] - rest).abs().mean() > 4 * (decoded[:, 1:] - rest).abs().mean()


def test_normalized_adapter_ignores_the_scale_of_the_backbone_activations():
    from cosim.learn.side import ParallelAdapter

    torch.manual_seed(0)
    plain, normalized = ParallelAdapter(16, 4), ParallelAdapter(16, 4, normalize=True)
    normalized.load_state_dict(plain.state_dict())
    for adapter in (plain, normalized):
        torch.nn.init.normal_(adapter.up.weight)  # a trained adapter (up starts at zero)
    x = torch.randn(3, 5, 16)
    assert torch.allclose(normalized(1e4 * x), normalized(x), atol=1e-4)
    assert not torch.allclose(plain(1e4 * x), plain(x), atol=1.0)


@pytest.mark.claims
@pytest.mark.xfail(strict=True, reason="measured once (scenarios/mobillm_phone.yaml, 3 rounds x 20 batches of 16, "
                   "4-bit): MobiLLM 0.738 vs local_lora 0.794 held-out accuracy, 5.6 points behind")
def test_mobillm_converges_within_a_few_points_of_on_device_lora(tmp_path):
    """MiniLM, scenarios/mobillm_phone.yaml; baseline: on-device LoRA (`BASELINE`) on the same data."""
    from pathlib import Path

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "mobillm_phone.yaml"
    out = {"outputs.dir": str(tmp_path), "outputs.progress": False}
    mob = cosim.run(scenario, overrides=out, progress=False, plots=False)
    base = cosim.run(scenario, overrides={**out, "scheme": {"name": BASELINE, "rounds": 3, "local_steps": 20,
                                                             "batch_size": 16, "lr": 0.001}},
                     progress=False, plots=False)
    acc_mob, acc_base = mob.rounds.accuracy.iloc[-1], base.rounds.accuracy.iloc[-1]
    print(f"MobiLLM {acc_mob:.4f} vs {BASELINE} {acc_base:.4f}")
    assert acc_mob >= acc_base - 0.05


@pytest.mark.claims
@pytest.mark.xfail(strict=True, reason="measured once (MiniLM, 10 rounds x 20 batches of 16, 4-bit, roofline): the gap "
                   "does not close — after 3 rounds -0.048 / -0.060 / -0.060 (reduction 2 / 8 / 32), after 10 -0.084 / "
                   "-0.110 / -0.102 (mean of rounds 8-10 about -0.075 each); on-device LoRA climbs to 0.83, MobiLLM "
                   "stays at 0.70-0.80 whatever the side network's width")
def test_mobillm_gap_to_on_device_lora_over_more_rounds_and_side_sizes(tmp_path):
    """Issue 17 §4: MobiLLM against on-device LoRA over 10 rounds (scenarios/mobillm_phone.yaml), with side
    networks of reduction 2, 8 (shipped) and 32, as the claims row `mobillm_rounds` measures it: every gap
    printed; asserted: the best side network ends within the claim's margin of on-device LoRA."""
    from cosim.claims import CLAIMS
    from cosim.claims.runner import Runner

    out = CLAIMS["mobillm_rounds"].measure(Runner(tmp_path))
    print(f"\nmobillm_rounds: {out.number} — {'shown' if out.shown else 'not shown'}: {out.why}")
    assert out.shown, out.why
