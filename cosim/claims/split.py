"""Claims rows of the split family: split learning, SplitFed, SplitLoRA, SplitFrozen, heterogeneous
SFL, three-tier split LoRA, SFT and split KD."""
from __future__ import annotations

from . import Outcome, claim
from .federated import COMPARE_FL, _vs_fedavg
from .runner import curve, final_accuracy

COMPARE_SPLIT = "scenarios/compare_split.yaml"
#: SplitFrozen's reduction of device-side computation against FedLoRA and SplitLoRA
SPLITFROZEN_CUT = 0.868
#: hetero SFL's reduction of server memory against SplitFed
HETERO_SFL_MEMORY_CUT = 0.79
#: SFT's reductions of fine-tuning delay and communication against split fine-tuning
SFT_DELAY_CUT, SFT_BYTES_CUT = 0.802, 0.936


def device_flops_per_sample(result, batch_size: int) -> float:
    """Device FLOPs per trained sample: one device forward (split family) or local training step
    (federated) per micro-batch of `scheme.batch_size`."""
    ev = result.events
    devices = set(result.nodes[result.nodes.role == "device"].node)
    steps = int((ev.node.isin(devices) & ev.kind.isin(["fwd", "train"])).sum())
    return float(result.summary["device_flops"]) / (steps * batch_size)


def _peak(result, role: str) -> int:
    """The largest memory peak of the nodes of `role` (device, edge, cloud)."""
    nodes = result.nodes
    return int(nodes[nodes.role == role].peak_memory_bytes.max())


@claim("split", paper="Gupta & Raskar 2018; Vepakomma et al. 2018 (split learning)",
       says="split learning trains a shared model without raw data leaving the device; with one class per "
            "device it ends above FedAvg (issue 8's setting)",
       scenario=COMPARE_FL,
       test="tests/test_fl_claims.py::test_sequential_split_learning_ends_above_fedavg_with_one_class_per_client")
def split(runner) -> Outcome:
    return _vs_fedavg(runner, "split", {"name": "split", "cut_layer": 2}, "split learning above FedAvg")


@claim("splitfed", paper="Thapa et al., AAAI 2022 (SplitFed)",
       says="clients in parallel (SplitFed) train faster than sequential split learning, at comparable accuracy",
       scenario="scenarios/splitfed.yaml",
       test="tests/test_claims.py::test_claim_is_shown")
def splitfed(runner) -> Outcome:
    fed = runner.run("splitfed", "scenarios/splitfed.yaml", {"name": "splitfed"})
    seq = runner.run("split-splitfed", "scenarios/splitfed.yaml", {"name": "split"})
    t_fed, t_seq = fed.summary["sim_time_s"], seq.summary["sim_time_s"]
    a, b = final_accuracy(fed), final_accuracy(seq)
    return Outcome(number=f"{t_fed:.1f} s vs split learning {t_seq:.1f} s ({t_fed / t_seq:.2f}x); accuracy "
                          f"{a:.3f} vs {b:.3f}",
                   shown=t_fed < t_seq, why=f"parallel turns take {t_fed / t_seq:.2f}x the sequential time for the "
                                            f"same rounds (accuracy {a - b:+.3f})",
                   curves={"splitfed": curve(fed), "split": curve(seq)}, x_label="simulated time (s)")


@claim("splitlora", paper="Lin et al., 2024 (SplitLoRA)",
       says="split-federated LoRA learns FedLoRA's model with a fraction of the device's compute and memory",
       scenario=COMPARE_SPLIT,
       test="tests/test_split_family.py::test_splitlora_learns_the_same_model_as_fedlora_with_less_on_the_device")
def splitlora(runner) -> Outcome:
    ours, fed = runner.run("splitlora", COMPARE_SPLIT, {"name": "splitlora"}), runner.run("fedlora", COMPARE_SPLIT,
                                                                                           {"name": "fedlora"})
    batch = runner.scheme("splitlora")["batch_size"]
    flops = device_flops_per_sample(ours, batch) / device_flops_per_sample(fed, batch)
    memory = ours.summary["device_peak_memory_bytes"] / fed.summary["device_peak_memory_bytes"]
    a, b = final_accuracy(ours), final_accuracy(fed)
    return Outcome(number=f"device FLOPs/sample {flops:.2f}x, device peak memory {memory:.2f}x FedLoRA's; accuracy "
                          f"{a:.3f} vs {b:.3f}; time {ours.summary['sim_time_s']:.1f} s vs {fed.summary['sim_time_s']:.1f} s",
                   shown=flops < 1 and memory < 1 and abs(a - b) < 1e-6,
                   why=f"same model (accuracy {a - b:+.4f}) at {flops:.2f}x the device FLOPs", unit="x FedLoRA",
                   bars={"device FLOPs/sample": flops, "device peak memory": memory})


@claim("splitfrozen", paper="SplitFrozen (split learning with the device-side model frozen), 2025",
       says="device-side computation −86.8 % against FedLoRA and SplitLoRA",
       scenario=COMPARE_SPLIT,
       test="tests/test_splitfrozen.py::test_device_flops_per_sample_is_the_papers_fraction_of_fedlora")
def splitfrozen(runner) -> Outcome:
    one_round = {"rounds": 1}
    frozen = runner.run("splitfrozen-1round", COMPARE_SPLIT, {"name": "splitfrozen", **one_round}, quick_rounds=1)
    fed = runner.run("fedlora-1round", COMPARE_SPLIT, {"name": "fedlora", **one_round}, quick_rounds=1)
    sl = runner.run("splitlora-1round", COMPARE_SPLIT, {"name": "splitlora", **one_round}, quick_rounds=1)
    batch, cut = runner.scheme("splitfrozen-1round")["batch_size"], runner.scheme("splitfrozen-1round")["cut_layer"]
    ours = device_flops_per_sample(frozen, batch)
    vs_fed, vs_sl = ours / device_flops_per_sample(fed, batch), ours / device_flops_per_sample(sl, batch)
    paper = 1 - SPLITFROZEN_CUT
    return Outcome(number=f"device FLOPs/sample {vs_fed:.3f}x FedLoRA's (−{1 - vs_fed:.1%}), {vs_sl:.3f}x SplitLoRA's "
                          f"(−{1 - vs_sl:.1%})",
                   shown=vs_fed <= paper and vs_sl <= paper,
                   why=(f"against FedLoRA {'within' if vs_fed <= paper else 'short of'} the paper's {paper:.3f}x "
                        f"(the device runs {cut} blocks forward only, FedLoRA every block "
                        f"forward and backward); against SplitLoRA a frozen forward is ~half of forward + backward "
                        f"of the same blocks ({vs_sl:.3f}x), whatever the cut"),
                   unit="x the baseline's device FLOPs/sample",
                   bars={"vs FedLoRA": vs_fed, "vs SplitLoRA": vs_sl, "paper (−86.8 %)": paper})


@claim("hetero_sfl", paper="edge-assisted heterogeneous split-federated LoRA, arXiv 2506.02940 / 2503.13819",
       says="server memory −79 % against SplitFed (a server-side model per client)",
       scenario="scenarios/hetero_sfl.yaml",
       test="tests/test_hetero_sfl.py::test_server_peak_against_splitfed_v1_full_copies_and_adapter_copies")
def hetero_sfl(runner) -> Outcome:
    ours = runner.run("hetero_sfl", "scenarios/hetero_sfl.yaml", {"name": "hetero_sfl", "rounds": 1}, quick_rounds=1)
    peaks = {"hetero_sfl": ours.summary["server_peak_memory_bytes"]}
    for copies in ("full", "adapters"):
        r = runner.run(f"splitfed-v1-{copies}", "scenarios/hetero_sfl.yaml",
                       {"name": "splitfed", "variant": "v1", "cut_layer": 1, "server_copies": copies, "rounds": 1},
                       quick_rounds=1, drop=("order",))
        peaks[f"SplitFed v1, {copies} copies"] = r.summary["server_peak_memory_bytes"]
    full, adapters = peaks["SplitFed v1, full copies"], peaks["SplitFed v1, adapters copies"]
    cut_full, cut_adapters = 1 - peaks["hetero_sfl"] / full, 1 - peaks["hetero_sfl"] / adapters
    clients = len(ours.nodes[ours.nodes.role == "device"])
    return Outcome(number=f"server peak {peaks['hetero_sfl'] / 1e6:.1f} MB vs SplitFed v1 {full / 1e6:.1f} MB with full "
                          f"copies ({-cut_full:+.1%}) and {adapters / 1e6:.1f} MB with adapter copies ({-cut_adapters:+.1%})",
                   shown=cut_full >= HETERO_SFL_MEMORY_CUT,
                   why=(f"{clients} clients: hetero SFL holds one whole model (embedding included), SplitFed one "
                        "server-side part (cut 1) per client; the saving grows with the clients"),
                   unit="MB", bars={k: v / 1e6 for k, v in peaks.items()})


@claim("three_tier", paper="three-tier split LoRA across user, edge and cloud, after arXiv 2501.13318",
       says="the cloud holds its part once, below a two-tier server that keeps a server-side copy per user",
       scenario="scenarios/three_tier.yaml",
       test="tests/test_three_tier.py::test_cloud_holds_its_part_once_below_a_two_tier_server_per_user")
def three_tier(runner) -> Outcome:
    three = runner.run("three_tier", "scenarios/three_tier.yaml", {"name": "three_tier", "rounds": 1}, quick_rounds=1)
    c1 = runner.scheme("three_tier")["cut_layers"][0]
    two = runner.run("splitlora-three_tier", "scenarios/three_tier.yaml",
                     {"name": "splitlora", "cut_layer": c1, "rounds": 1}, quick_rounds=1)
    cloud, server = _peak(three, "cloud"), two.summary["server_peak_memory_bytes"]
    return Outcome(number=f"cloud peak {cloud / 1e6:.1f} MB vs two-tier SplitLoRA server {server / 1e6:.1f} MB "
                          f"({cloud / server:.2f}x)",
                   shown=cloud < server, why=f"one copy of blocks [{c1}, depth) against one per user", unit="MB",
                   bars={"three-tier cloud": cloud / 1e6, "two-tier server (SplitLoRA)": server / 1e6})


@claim("sft", paper="SFT, arXiv 2501.09237",
       says="fine-tuning delay −80.2 % and communication −93.6 % against split fine-tuning, accuracy kept",
       scenario="scenarios/compare_sft.yaml",
       test="tests/test_sft_claims.py::test_sft_cuts_delay_and_bytes_against_uncompressed_fixed_cut")
def sft(runner) -> Outcome:
    def equal(raw):
        raw["control"] = {**raw.get("control", {}), "controller": "equal"}
        for key in [k for k in raw["control"] if k != "controller"]:
            raw["control"].pop(key)

    base = runner.run("sft-uncompressed", "scenarios/compare_sft.yaml", {"name": "sft"}, edit=equal)
    ours = runner.run("sft", "scenarios/compare_sft.yaml", {"name": "sft"})
    delay = 1 - ours.summary["sim_time_s"] / base.summary["sim_time_s"]
    sent = lambda r: r.summary["bytes_up"] + r.summary["bytes_down"]   # noqa: E731
    traffic = 1 - sent(ours) / sent(base)
    a, b = final_accuracy(ours), final_accuracy(base)
    return Outcome(number=f"delay −{delay:.1%}, bytes −{traffic:.1%}; accuracy {a:.3f} vs {b:.3f}",
                   shown=delay >= SFT_DELAY_CUT and traffic >= SFT_BYTES_CUT and a >= b - 0.03,
                   why=f"against uncompressed fixed-cut split fine-tuning (paper −{SFT_DELAY_CUT:.1%} / "
                       f"−{SFT_BYTES_CUT:.1%})", unit="reduction",
                   bars={"delay cut": delay, "bytes cut": traffic, "paper delay cut": SFT_DELAY_CUT,
                         "paper bytes cut": SFT_BYTES_CUT})


@claim("split_kd", paper="split knowledge distillation for IoT, arXiv 2501.17164",
       says="a small device-side student learns from the split teacher's soft targets (raw data stays on the "
            "device) better than from its labels alone",
       scenario="scenarios/split_kd.yaml", test="tests/test_claims.py::test_claim_is_shown")
def split_kd(runner) -> Outcome:
    kd = runner.run("split_kd", "scenarios/split_kd.yaml", {"name": "split_kd"})
    plain = runner.run("split_kd-labels-only", "scenarios/split_kd.yaml", {"name": "split_kd", "kd_weight": 0.0})
    a, b = final_accuracy(kd), final_accuracy(plain)
    return Outcome(number=f"student accuracy {a:.3f} with soft targets vs {b:.3f} from labels only",
                   shown=a > b, why=f"distillation {'helps' if a > b else 'does not help'} the student ({a - b:+.3f})",
                   curves={"KD (kd_weight 0.5)": curve(kd), "labels only": curve(plain)}, x_label="simulated time (s)")
