"""WHALE-FL: every device's subnetwork fits its memory at the moment it is chosen, nested LoRA rank
slices average over exactly the devices that trained them, and a slice's size sets its bytes."""
from __future__ import annotations

import re

import pytest
import torch

import cosim
from cosim.schemes.whale_fl import aggregate_blocks, aggregate_nested, choose_rank, slice_state, utility, WhaleFlConfig
from conftest import tiny_scenario

A, B, HEAD = "x.lora_A.default.weight", "x.lora_B.default.weight", "head.weight"


def test_nested_slices_average_over_the_devices_that_trained_them():
    g = {A: torch.full((3, 2), 9.0), B: torch.full((2, 3), 9.0), HEAD: torch.zeros(1, 2)}
    low = {A: torch.tensor([[1.0, 1.0]]), B: torch.tensor([[1.0], [1.0]]), HEAD: torch.tensor([[4.0, 4.0]])}
    mid = {A: torch.tensor([[3.0, 3.0], [5.0, 5.0]]), B: torch.tensor([[3.0, 5.0], [3.0, 5.0]]),
           HEAD: torch.tensor([[0.0, 8.0]])}
    out = aggregate_nested(g, [low, mid], [1.0, 3.0])
    # row 0: (1·1 + 3·3) / 4 = 2.5; row 1: only `mid` trained it → 5; row 2: nobody → keeps 9
    torch.testing.assert_close(out[A], torch.tensor([[2.5, 2.5], [5.0, 5.0], [9.0, 9.0]]))
    torch.testing.assert_close(out[B], torch.tensor([[2.5, 5.0, 9.0], [2.5, 5.0, 9.0]]))
    torch.testing.assert_close(out[HEAD], torch.tensor([[1.0, 7.0]]))  # (4·1 + 0·3)/4, (4·1 + 8·3)/4
    sliced = slice_state(g, 2)
    assert sliced[A].shape == (2, 2) and sliced[B].shape == (2, 2) and sliced[HEAD].shape == (1, 2)


def test_utility_shrinks_the_subnetwork_when_conditions_worsen():
    cfg = WhaleFlConfig()
    ranks = [1, 2, 4, 8]
    assert choose_rank(cfg, ranks, 1.0, 1.0, lambda r: True) == 8
    assert choose_rank(cfg, ranks, 0.25, 1.0, lambda r: True) < 8
    assert choose_rank(cfg, ranks, 1.0, 1.0, lambda r: r <= 2) == 2          # memory caps it
    assert choose_rank(cfg, ranks, 1.0, 1.0, lambda r: False) is None
    assert utility(4, 8, 1.0, 1.0, 0.25) > utility(4, 8, 1.0, 0.5, 0.25)      # larger nets worth more late


def _run(tmp_path, assignment):
    raw = tiny_scenario(tmp_path)
    # 16 MB of memory: at half the compute share (background load) there is 8 MB free, less than the
    # tiny model's ~11 MB, so the device has to sit out; at full share every rank fits
    raw["profiles"] = {"small": {"peak_flops": 236e9, "utilization": 0.3, "memory_bytes": 16e6,
                                 "compute_power_w": 10.0}}
    raw["devices"] = [{"count": 4, "profile": "small", "conditions": {
        "kind": "markov", "step_s": 0.05, "compute": {"levels": [0.5, 1.0], "stay": 0.5},
        "radio": {"levels": [0.2, 1.0], "stay": 0.5}}}]
    raw["scheme"] = {"name": "whale_fl", "rounds": 4, "local_steps": 2, "batch_size": 8, "assignment": assignment}
    return cosim.run(raw, progress=False, plots=False)


@pytest.mark.parametrize("assignment", ["adaptive", "fixed"])
def test_every_chosen_subnetwork_fits_memory_at_that_moment(tmp_path, assignment):
    r = _run(tmp_path, assignment)
    ev = r.events
    picks = [dict(re.findall(r"(\w+)=(\S+)", d)) for d in ev[ev.kind == "subnetwork"].detail]
    chosen = [p for p in picks if p["rank"] != "None"]
    assert chosen and any(p["rank"] == "None" for p in picks)         # the memory constraint binds
    for p in chosen:
        assert int(p["need"]) <= int(p["free"]) <= 16e6 * float(p["compute_share"])
    for p in picks:
        if p["rank"] == "None":
            assert float(p["compute_share"]) == 0.5
    # a device uploads exactly its slice: fewer bytes for a smaller rank
    up = ev[ev.kind == "model_up"]
    if assignment == "adaptive" and len({p["rank"] for p in chosen}) > 1:
        ranks = [int(re.search(r"rank=(\d+)", d).group(1)) for d in ev[ev.kind == "train"].detail]
        assert min(ranks) < max(ranks)
        assert up.bytes.min() < up.bytes.max()


def test_blocks_average_over_the_devices_that_trained_them_and_the_rest_keep_their_value():
    low, high = "blocks.0.lora_A.default.weight", "blocks.1.lora_A.default.weight"
    g = {low: torch.full((2,), 9.0), high: torch.full((2,), 9.0), HEAD: torch.zeros(1, 2)}
    top_only = {high: torch.full((2,), 1.0), HEAD: torch.full((1, 2), 4.0)}
    both = {low: torch.full((2,), 5.0), high: torch.full((2,), 3.0), HEAD: torch.full((1, 2), 8.0)}
    out = aggregate_blocks(g, [top_only, both], [1.0, 3.0])
    torch.testing.assert_close(out[high], torch.full((2,), 2.5))      # (1·1 + 3·3) / 4
    torch.testing.assert_close(out[low], torch.full((2,), 5.0))       # only `both` trained it
    torch.testing.assert_close(out[HEAD], torch.full((1, 2), 7.0))
    assert aggregate_blocks(g, [top_only], [1.0])[low].eq(9.0).all()  # nobody trained it: kept


def _fixed_depth(tmp_path, depth: int):
    raw = tiny_scenario(tmp_path / f"depth{depth}")
    raw["model"]["tiny"] = {"layers": 4}
    raw["devices"] = [{"count": 2, "profile": "jetson-nano"}]
    raw["scheme"] = {"name": "whale_fl", "subnetwork": "depth", "assignment": "fixed", "depths": [depth],
                     "rounds": 1, "local_steps": 2, "batch_size": 8}
    ev = cosim.run(raw, progress=False, plots=False).events
    train = ev[ev.kind == "train"]
    assert set(train.detail) == {f"depth={depth}"}
    return train, ev[ev.kind == "model_up"], ev[ev.kind == "model_down"]


def test_a_shallower_subnetwork_steps_faster_and_uploads_only_its_top_blocks(tmp_path):
    """Depth subnetworks (issue 17 §4): backward stops below the top k blocks, so step FLOPs and
    time follow k (a LoRA rank barely moves them); the upload is the top k blocks' adapters and
    the head, the download every adapter (the forward pass runs through all of them)."""
    train1, up1, down1 = _fixed_depth(tmp_path, 1)
    train4, up4, down4 = _fixed_depth(tmp_path, 4)
    assert train1.flops.max() < 0.75 * train4.flops.min()
    assert (train1.t_end - train1.t_start).max() < (train4.t_end - train4.t_start).min()
    assert up1.bytes.max() < 0.5 * up4.bytes.min()
    assert set(down1.bytes) == set(down4.bytes) == set(up4.bytes)   # depth 4 = every block: all of it
