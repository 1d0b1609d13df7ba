"""Twin mode (runtime.mode: twin, cosim.learn.twin): the same world without training gives the same
delays, bytes and FLOPs as a real run; what it cannot reproduce it refuses by name."""
from __future__ import annotations

import importlib
import importlib.util
import numpy as np
import pytest
import torch
import yaml

import cosim
from cosim.cli import main
from cosim.config import ScenarioError
from cosim.learn.compress import (CompressedCodec, CompressionConfig, ContentDependentSize, QuantCodec,
                                  TensorCodec)
from cosim.learn.twin import TwinMeter
from conftest import ROOT

#: the columns a twin must reproduce exactly (issue 14 §1), plus what follows from them
DELAY_COLUMNS = ["t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops", "energy_j", "mem_bytes"]
#: fingerprint cases whose scheme decides from learned values, and the field the refusal names
REFUSED = {"mavfl": "scheme.loss_weight"}
#: a few families in the default tier (< ~3 s each, real + twin): FedAvg with LoRA and moving
#: vehicles, split learning (activations up, gradients down), MobiLLM (quantized uplink)
FAST = ["quickstart", "split", "mobillm_phone"]


@pytest.fixture(autouse=True)
def _cold_store(tmp_path, monkeypatch):
    """Every test starts with an empty step-cost store of its own (cosim.learn.twin.CostStore)."""
    monkeypatch.setenv("COSIM_TWIN_CACHE_DIR", str(tmp_path / "twin-cache"))


def _tool():
    spec = importlib.util.spec_from_file_location("fingerprint", ROOT / "tools" / "fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()
ELIGIBLE = [c for c in TOOL.CASES if c not in REFUSED]


def _case(case: str, out_dir) -> tuple[dict, dict]:
    """The fingerprint tool's tiny scenario of `case` and its overrides."""
    extra = dict(TOOL.CASES[case])
    raw = yaml.safe_load((ROOT / "scenarios" / f"{extra.pop('file', case)}.yaml").read_text())
    if "scheme" in extra:
        raw["scheme"] = extra.pop("scheme")
    return TOOL.shrink(raw, str(out_dir)), extra


def _both(raw: dict, extra: dict):
    real = cosim.run(raw, overrides={**extra, "runtime.mode": "real"}, progress=False, plots=False)
    twin = cosim.run(raw, overrides={**extra, "runtime.mode": "twin"}, progress=False, plots=False)
    return real, twin


def _assert_same_delays(real, twin) -> None:
    a, b = real.events[DELAY_COLUMNS], twin.events[DELAY_COLUMNS]
    assert len(a) == len(b) and len(a) > 0
    assert a.equals(b), (a.compare(b) if a.shape == b.shape else (a.tail(), b.tail()))


@pytest.mark.parametrize("case", FAST)
def test_twin_gives_the_real_runs_delays_bytes_and_flops(case, tmp_path):
    _assert_same_delays(*_both(*_case(case, tmp_path)))


def test_twin_sizes_top_k_and_quantized_uploads_like_the_real_encoder(tmp_path):
    raw, extra = _case("fedavg", tmp_path)
    raw["scheme"]["compression"] = {"keep": 0.1, "keep_per": "row", "bits": 4, "range_per": "row"}
    real, twin = _both(raw, extra)
    assert (real.events.kind == "model_up").any()
    _assert_same_delays(real, twin)


@pytest.mark.exhaustive
@pytest.mark.parametrize("case", [c for c in ELIGIBLE if c not in FAST])
def test_every_eligible_scheme_gives_the_real_delays_in_twin_mode(case, tmp_path):
    _assert_same_delays(*_both(*_case(case, tmp_path)))


def test_mavfl_selecting_on_delay_and_participation_alone_is_a_twin(tmp_path):
    raw, extra = _case("mavfl", tmp_path)
    raw["scheme"]["loss_weight"] = 0.0
    _assert_same_delays(*_both(raw, extra))


def test_a_twin_scores_nothing_and_its_tables_summary_and_plots_say_so(tmp_path):
    from cosim.plots import plot_run

    raw, extra = _case("tiny", tmp_path)
    twin = cosim.run(raw, overrides={**extra, "runtime.mode": "twin"}, progress=False, plots=False)
    assert len(twin.rounds) == 3   # round 0 and two trained rounds
    assert twin.rounds[["loss", "accuracy", "eval_loss"]].isna().all().all()
    assert twin.summary["mode"] == "twin"
    assert twin.summary["final_accuracy"] is None and twin.summary["final_loss"] is None
    assert "n/a" in repr(twin)
    plot_run(twin.dir, which=["delay_accuracy", "timeline", "memory", "energy"])
    assert (twin.dir / "delay_accuracy.png").is_file() and (twin.dir / "timeline.png").is_file()


def test_a_step_signature_runs_once_and_is_replayed_without_running_again():
    meter, calls = TwinMeter(), []

    def step(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape)
        return (x @ x.T).relu()

    a, b, c = torch.randn(4, 8), torch.randn(4, 8), torch.randn(6, 8)
    first, cost = meter.run(("device", meter.signature(step, (a,), {})), step, a)
    again, cost_again = meter.run(("device", meter.signature(step, (b,), {})), step, b)
    other, cost_other = meter.run(("device", meter.signature(step, (c,), {})), step, c)
    assert calls == [a.shape, c.shape]   # b has a's signature: not run
    assert again is first and cost_again is cost and cost.flops == 2 * 4 * 8 * 4
    assert other.shape == (6, 6) and cost_other.flops == 2 * 6 * 8 * 6
    assert meter.replayed == 1 and meter.measured == 2


def _tensor(shape, dtype, rng) -> torch.Tensor:
    if dtype.is_floating_point:
        return torch.tensor(rng.standard_normal(shape), dtype=torch.float32).to(dtype)
    if dtype == torch.bool:
        return torch.tensor(rng.random(shape) > 0.5)
    return torch.tensor(rng.integers(0, 1000, shape)).to(dtype)


def test_wire_bytes_from_shapes_are_the_encoded_length_for_every_shape_determined_codec():
    rng = np.random.default_rng(3)
    codecs = [TensorCodec(), *(QuantCodec(bits, rng, per_row=per_row) for bits in (2, 4, 8) for per_row in (False, True))]
    for keep, keep_per, bits, range_per in [(None, "tensor", None, "tensor"), (0.01, "tensor", None, "tensor"),
                                            (0.3, "row", 4, "row"), (0.9, "tensor", 8, "tensor"),
                                            (0.05, "row", 16, "tensor"), (None, "tensor", 1, "row"),
                                            (0.5, "tensor", 2, "tensor")]:
        codecs.append(CompressedCodec(CompressionConfig(keep=keep, keep_per=keep_per, bits=bits, range_per=range_per),
                                      rng))
    shapes = [(), (0,), (1,), (7,), (5, 9), (2, 3, 17), (1, 70_000), (300, 300)]
    dtypes = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.bool]
    for codec in codecs:
        for shape in shapes:
            for dtype in dtypes:
                if dtype == torch.bfloat16 and (shape == () or 0 in shape):
                    continue   # a 0-dim or empty bfloat16 tensor: the encoders themselves cannot view it as bytes
                message = {"x": _tensor(shape, dtype, rng), "lengths": torch.tensor([3, 5], dtype=torch.int32)}
                assert codec.wire_bytes(message) == len(codec.encode(message)), (codec, shape, dtype)


def test_a_lossless_coders_size_is_not_guessed_from_shapes():
    codec = CompressedCodec(CompressionConfig(keep=0.1, bits=8, lossless="zstd"), np.random.default_rng(0))
    with pytest.raises(ContentDependentSize):
        codec.wire_bytes([torch.zeros(4, 4)])


@pytest.mark.parametrize("case, changes, field", [
    ("mavfl", {}, "scheme.loss_weight"),
    ("sequential_fl", {"scheme.order": "grab"}, "scheme.order"),
    ("split", {"scheme.order": "grab"}, "scheme.order"),
    ("fedavg", {"scheme.compression": {"keep": 0.1, "bits": 8, "lossless": "zstd"}}, "scheme.compression.lossless"),
    ("tiny", {"stop": {"target_accuracy": 0.8}}, "stop.target_accuracy"),
])
def test_twin_mode_refuses_decisions_that_read_learned_values_naming_the_field(case, changes, field, tmp_path):
    raw, extra = _case(case, tmp_path)
    changes = dict(changes)
    if "stop" in changes:
        raw["stop"] = changes.pop("stop")
    with pytest.raises(ScenarioError) as err:
        cosim.load(raw, {**extra, **changes, "runtime.mode": "twin"})
    assert any(line.startswith(field + ":") and "twin" in line for line in err.value.problems), err.value.problems
    cosim.load(raw, {**extra, **changes})   # the same scenario runs for real


def test_sft_control_is_refused_in_twin_mode(tmp_path):
    raw = yaml.safe_load((ROOT / "scenarios" / "sft.yaml").read_text())
    with pytest.raises(ScenarioError) as err:
        cosim.load(raw, {"runtime.mode": "twin"})
    assert any(p.startswith("control.controller:") and "twin" in p for p in err.value.problems)


def test_the_command_line_runs_a_twin_and_exits_2_on_a_refused_one(tmp_path, capsys):
    raw, _ = _case("tiny", tmp_path)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--set", "runtime.mode=twin", "--quiet", "--no-plots"]) == 0
    assert "not scored" in capsys.readouterr().out
    raw, _ = _case("mavfl", tmp_path)
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", str(path), "--set", "runtime.mode=twin", "--quiet"]) == 2
    assert "scheme.loss_weight" in capsys.readouterr().err


@pytest.fixture
def twin_meters(monkeypatch) -> list:
    """Every TwinMeter the runs of a test build, in order (to read what each measured or replayed)."""
    meters = []

    class Spy(TwinMeter):
        def __init__(self, *args):
            super().__init__(*args)
            meters.append(self)

    monkeypatch.setattr(importlib.import_module("cosim.run"), "TwinMeter", Spy)   # (cosim.run the name is the function)
    return meters


def test_a_second_twin_of_the_same_setup_runs_no_step_and_gives_the_same_delays(tmp_path, twin_meters):
    meters = twin_meters
    raw, extra = _case("quickstart", tmp_path)
    real, cold = _both(raw, extra)
    warm = cosim.run(raw, overrides={**extra, "runtime.mode": "twin", "seed": 8}, progress=False, plots=False)
    again = cosim.run(raw, overrides={**extra, "seed": 8}, progress=False, plots=False)
    assert meters[0].measured > 0 and meters[1].measured == 0 and meters[1].loaded == meters[0].measured
    _assert_same_delays(real, cold)
    _assert_same_delays(again, warm)   # another seed: other batches and channels, the same stored costs


def test_only_results_that_rebuild_from_shapes_are_stored():
    from cosim.learn.twin import result_spec

    leaf = torch.zeros(2, 3, requires_grad=True)
    assert result_spec((1.5, {"w": leaf, "n": torch.ones(4, dtype=torch.int64)})) is not None
    assert result_spec(leaf * 2) is None   # the output of a graph: a later backward needs the graph
    assert result_spec([object()]) is None


def test_a_twin_runs_each_step_signature_once_however_many_rounds(tmp_path, twin_meters):
    meters = twin_meters
    raw, extra = _case("quickstart", tmp_path)
    for rounds in (2, 6):   # (rounds are part of the store's fingerprint: the second run starts cold too)
        cosim.run(raw, overrides={**extra, "runtime.mode": "twin", "scheme.rounds": rounds}, progress=False,
                  plots=False)
    (short, long_) = meters
    assert long_.measured <= short.measured + 2   # at most a bucket length the first two rounds did not draw
    assert long_.replayed > 2 * short.replayed
