"""The split-federated family (splitfed v1/v2, splitlora) and its baseline fedlora: the same
model as FedLoRA in different time, memory and bytes; server memory per client (v1) or shared
(v2); byte-exact activations, gradients and adapters; and `cosim compare` over them."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.compare import _time_to_target
from cosim.learn.compress import MESSAGE_HEADER_BYTES, TENSOR_HEADER_BYTES
from cosim.schemes import SCHEMES
from conftest import ROOT, tiny_scenario

BATCH, TOKENS, HIDDEN = 8, 32, 64  # tiny.yaml: batch_size 8, max_length 32; tiny-bert hidden 64
SUMMARY = ["sim_time_s", "final_accuracy", "final_loss", "rounds", "bytes_up", "bytes_down", "energy_j",
           "device_flops", "server_flops", "device_peak_memory_bytes", "server_peak_memory_bytes"]


def _run(raw, **overrides):
    return cosim.run(raw, overrides=overrides, progress=False, plots=False)


def _devices(tmp_path, n: int) -> dict:
    raw = tiny_scenario(tmp_path)
    raw["devices"] = [{"count": n, "profile": "jetson-nano"}]
    return raw


def test_the_family_is_registered_and_listed(capsys):
    assert {"fedlora", "splitlora", "splitfed"} <= set(SCHEMES)
    assert main(["schemes"]) == 0
    listed = capsys.readouterr().out
    for name in ("fedlora", "splitlora", "splitfed"):
        assert f"\n{name} " in f"\n{listed}"


def test_splitlora_learns_the_same_model_as_fedlora_with_less_on_the_device(tiny):
    fed = _run(tiny, **{"scheme.name": "fedlora", "scheme.rounds": 3})
    split = _run(tiny, **{"scheme.name": "splitlora", "scheme.cut_layer": 2, "scheme.rounds": 3})
    # SplitFed v1 with LoRA is FedAvg of the same adapters, computed in two places: bit-identical
    pd.testing.assert_series_equal(fed.rounds.accuracy, split.rounds.accuracy)
    pd.testing.assert_series_equal(fed.rounds.loss, split.rounds.loss)
    f, s = fed.summary, split.summary
    assert s["device_flops"] < f["device_flops"]
    assert s["device_peak_memory_bytes"] < f["device_peak_memory_bytes"]
    assert s["server_flops"] > f["server_flops"]
    assert (s["bytes_up"], s["bytes_down"]) != (f["bytes_up"], f["bytes_down"])
    assert s["sim_time_s"] != f["sim_time_s"]


def test_splitfed_v1_equals_splitlora_and_full_finetuning_trains(tiny):
    v1 = _run(tiny, **{"scheme.name": "splitfed", "scheme.variant": "v1"})
    lora = _run(tiny, **{"scheme.name": "splitlora"})
    pd.testing.assert_frame_equal(v1.events, lora.events)
    full = _run(tiny, **{"scheme.name": "splitfed", "scheme.variant": "v2", "scheme.lora": None})
    assert full.summary["rounds"] == 2 and math.isfinite(full.summary["final_loss"])
    assert full.summary["bytes_up"] > v1.summary["bytes_up"]  # the whole device part travels, not adapters


def _upload_bytes(result) -> int:
    """The largest sum of device-part uploads the fed server holds in one round."""
    ev = result.events
    return int(ev[ev.kind == "model_up"].groupby("round").bytes.sum().max())


@pytest.mark.parametrize("lora", [{"r": 8}, None], ids=["lora", "full"])
def test_splitfed_v1_server_memory_grows_with_clients_and_v2_does_not(tmp_path, lora):
    """v1 holds a server-side copy (and optimizer state) per client; v2 one shared part. Both
    hold the round's device-part uploads until the fed server averages them (that buffer grows
    with N in both variants), so v2's peak, less those uploads, is the same for every N."""
    peaks = {}
    for variant in ("v1", "v2"):
        for n in (2, 4, 8):
            r = _run(_devices(tmp_path, n),
                     **{"scheme.name": "splitfed", "scheme.variant": variant, "scheme.lora": lora})
            peaks[variant, n] = (r.summary["server_peak_memory_bytes"], _upload_bytes(r))
    model_memory = {k: peak - up for k, (peak, up) in peaks.items()}
    assert model_memory["v1", 2] < model_memory["v1", 4] < model_memory["v1", 8]
    assert model_memory["v2", 2] == model_memory["v2", 4] == model_memory["v2", 8]
    assert peaks["v2", 8][0] < peaks["v1", 8][0]


@pytest.mark.parametrize("overrides", [{"scheme.name": "splitlora"},
                                       {"scheme.name": "splitfed", "scheme.variant": "v2"},
                                       {"scheme.name": "splitfed", "scheme.variant": "v1", "scheme.lora": None}],
                         ids=["splitlora", "splitfed-v2", "splitfed-v1-full"])
def test_every_activation_gradient_and_adapter_transfer_is_its_real_payload(tiny, overrides):
    cut = 2
    r = _run(tiny, **overrides, **{"scheme.cut_layer": cut})
    ev = r.events
    activation = BATCH * TOKENS * HIDDEN * 4  # float32
    up = MESSAGE_HEADER_BYTES + 3 * TENSOR_HEADER_BYTES + activation + BATCH * 4 + BATCH * 8  # + lengths, labels
    down = MESSAGE_HEADER_BYTES + TENSOR_HEADER_BYTES + activation
    assert set(ev[ev.kind == "activation"].bytes) == {up}
    assert set(ev[ev.kind == "gradient"].bytes) == {down}
    # 4 devices x 2 rounds x 2 local steps, one activation and one gradient each
    assert (ev.kind == "activation").sum() == (ev.kind == "gradient").sum() == 4 * 2 * 2
    sim = cosim.build(cosim.load(tiny, overrides))
    learner = sim.learner
    part = [learner._params[n] for n in learner.trainable_names(0, cut)]
    device_part = MESSAGE_HEADER_BYTES + sum(TENSOR_HEADER_BYTES + p.numel() * p.element_size() for p in part)
    assert set(ev[ev.kind.isin(["model_up", "model_down"])].bytes) == {device_part}
    assert all(p.dtype == torch.float32 for p in part)


def test_lora_schemes_refuse_lora_null_naming_the_field(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text((ROOT / "scenarios" / "tiny.yaml").read_text())
    for name in ("fedlora", "splitlora"):
        code = main(["validate", str(path), "--set", f"scheme.name={name}", "--set", "scheme.lora=null"])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT
        assert "scheme.lora" in err and name in err


def test_compare_gives_one_row_per_scheme_with_the_summary_columns(tiny):
    tiny["scheme"] = {**tiny["scheme"], "cut_layer": 2}  # splitlora's knob; dropped for fedlora
    table = cosim.compare(tiny, ["splitlora", "fedlora"])
    assert list(table.index) == ["splitlora", "fedlora"]
    assert set(SUMMARY) <= set(table.columns) and "time_to_target_s" in table.columns
    assert table.time_to_target_s.isna().all()  # no stop.target_accuracy in the scenario
    assert (table.rounds == 2).all()
    assert table.loc["splitlora", "final_accuracy"] == table.loc["fedlora", "final_accuracy"]
    out = table.attrs["dir"]
    assert (out / "comparison.png").is_file()
    assert list(pd.read_csv(out / "comparison.csv").scheme) == ["splitlora", "fedlora"]


def test_time_to_target_is_the_first_round_end_at_or_above_the_target():
    rounds = pd.DataFrame({"sim_time_s": [0.0, 5.0, 9.0, 12.0], "accuracy": [0.5, 0.69, 0.71, 0.70]})
    assert _time_to_target(rounds, 0.7) == 9.0
    assert math.isnan(_time_to_target(rounds, 0.9)) and math.isnan(_time_to_target(rounds, None))


def test_compare_refuses_unknown_schemes_and_typos_with_exit_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text((ROOT / "scenarios" / "tiny.yaml").read_text())
    assert main(["compare", str(path), "--schemes", "fedlora,nope"]) == EXIT_BAD_INPUT
    assert "nope" in capsys.readouterr().err
    assert main(["compare", str(path), "--schemes", "fedlora", "--set", "scheme.cut_layr=2"]) == EXIT_BAD_INPUT
    assert "scheme.cut_layr" in capsys.readouterr().err
