"""WHALE-FL (wireless- and heterogeneity-aware FL with adaptive subnetworks): every round each device
picks the size of the subnetwork it trains from a utility of its current compute and link conditions
(cosim.world.conditions) and the training stage. `scheme.subnetwork` says what a size is:

- `rank` (default): nested LoRA rank slices of the shared adapters: a device of rank r_i ≤ r trains
  the first r_i rows of every A and the first r_i columns of every B (and the head); it downloads
  and uploads only that slice, so its bytes and memory follow r_i — its step time barely does (the
  frozen backbone's forward and backward dominate: measured on MiniLM, issue 17 §4).
- `depth`: the adapters of the top k_i blocks (and the head), the paper's subnetwork extraction
  along depth (trainable top blocks). Backward stops below the lowest trained block, so the step
  time follows k_i as well as the training state, the saved activations and the upload (the top
  k_i blocks' adapters); the download is every adapter, since the forward pass runs through all
  of them.

The server averages each slice (rank slice or block's adapters) over the devices that trained it
(sample weighted); a slice nobody trained keeps its value. `scheme.assignment: fixed` is the
baseline: the size the same utility gives at the device's full capacity, kept for the whole run.

Utility of size r for device i at time t in round k of K (r ∈ `ranks` or `depths`, R = the largest;
the formulas say rank, a depth is used the same way):

    κ_i(t) = min(compute_share_i(t), radio_share_i(t))          # its bottleneck share now, (0, 1]
    σ_k    = 0.5 + 0.5 · (k − 1) / max(K − 1, 1)                  # training stage: 0.5 early → 1 late
    U(r)   = σ_k · log(1 + r) / log(1 + R) − β · (r / R) / κ_i(t)

the first term the (concave) value of a larger subnetwork, worth more late in training; the second
its time cost, proportional to its size over the share of compute and link the device has now.
The chosen rank is the argmax of U among the ranks that fit the device's memory at that moment:
the slice's training state + the step's saved activations (measured) must be at most what is free,
capacity · compute_share(t) − held (the weights are held from the start; assumption: background
load takes memory in the same share as compute). A device where nothing fits sits the round out.

(Assumption for `depth`: the time cost is proportional to k/K like a rank's, though a step's
forward pass is the same at every depth — the utility is the paper's shape, not a fitted time model.)

Reproduces: WHALE-FL: adaptive subnetworks reach the target sooner than fixed sizes —
scenarios/whale_fl.yaml, tests/test_mavfl_claims.py::test_whale_fl_adaptive_reaches_target_sooner_than_fixed
"""
from __future__ import annotations

import math
from functools import partial
from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..learn.aggregate import merge, weighted_mean_by_key
from ..learn.training import State, optimizer_slots, tensor_bytes
from ..world.events import declare
from .base import LoraRequired, SchemeConfig, scheme
from .common import aggregate, client_update, local_step, round_loop


declare("subnetwork", "marker", "a device was assigned a sub-network size (WHALE-FL)", by="whale_fl")


class WhaleFlConfig(LoraRequired, SchemeConfig):
    name: str = "whale_fl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    assignment: Literal["adaptive", "fixed"] = "adaptive"
    subnetwork: Literal["rank", "depth"] = Field(
        "rank", description="what a subnetwork's size is: its LoRA rank (nested rank slices) or its depth "
                            "(the adapters of the top k blocks train; backward stops below them)")
    ranks: list[int] | None = Field(None, description="candidate subnetwork ranks; default 1, 2, 4, … up to lora.r")
    depths: list[int] | None = Field(None, description="candidate trainable top blocks (subnetwork: depth); "
                                                       "default 1, 2, 4, … up to the model's depth")
    cost_weight: float = Field(0.25, ge=0, description="beta: weight of the time cost in the utility")

    def problems(self, depth, source, device_profiles) -> list[str]:
        problems = super().problems(depth, source, device_profiles)
        if self.ranks and not candidate_ranks(self):   # every subnetwork is a slice of the rank-r adapters
            problems.append(f"scheme.ranks: no rank inside the adapters (given {self.ranks}); allowed: "
                            f"1 to lora.r = {self.lora.r}")
        if self.depths and not candidate_depths(self, depth):
            problems.append(f"scheme.depths: no block count inside the model (given {self.depths}); allowed: "
                            f"1 to the model's depth = {depth}")
        return problems


def rank_of(key: str) -> int | None:
    """Which axis of a parameter is its rank axis: 0 for lora_A, 1 for lora_B, None otherwise."""
    if ".lora_A." in key:
        return 0
    if ".lora_B." in key:
        return 1
    return None


def slice_state(state: State, rank: int) -> State:
    """The nested subnetwork of rank `rank`: first rows of every A, first columns of every B."""
    out = {}
    for k, v in state.items():
        axis = rank_of(k)
        out[k] = v if axis is None else v.narrow(axis, 0, min(rank, v.shape[axis])).clone()
    return out


def aggregate_nested(global_state: State, states: list[State], weights: list[float]) -> State:
    """Average each rank slice over the devices that trained it (weights: sample counts); a rank
    slice nobody trained keeps the global value; other parameters are a plain weighted mean."""
    out = {}
    for k, g in global_state.items():
        axis = rank_of(k)
        num = torch.zeros_like(g, dtype=torch.float64)
        den = torch.zeros(g.shape[axis] if axis is not None else 1, dtype=torch.float64, device=g.device)
        for s, w in zip(states, weights):
            v = s[k].to(torch.float64)
            if axis is None:
                num += w * v
                den += w
            else:
                r = v.shape[axis]
                num.narrow(axis, 0, r).add_(w * v)
                den[:r] += w
        if axis is None:
            out[k] = (num / den).to(g.dtype)
            continue
        shape = [1] * g.dim()
        shape[axis] = -1
        d = den.view(shape)
        out[k] = torch.where(d > 0, num / d.clamp_min(1e-300), g.to(torch.float64)).to(g.dtype)
    return out


def utility(rank: int, max_rank: int, share: float, stage: float, cost_weight: float) -> float:
    """U(r) of the module doc."""
    return stage * math.log1p(rank) / math.log1p(max_rank) - cost_weight * (rank / max_rank) / share


def stage_of(rnd: int, rounds: int) -> float:
    return 0.5 + 0.5 * (rnd - 1) / max(rounds - 1, 1)


def candidate_ranks(cfg: WhaleFlConfig) -> list[int]:
    return _candidates(cfg.ranks, cfg.lora.r)


def candidate_depths(cfg: WhaleFlConfig, depth: int) -> list[int]:
    return _candidates(cfg.depths, depth)


def _candidates(given: list[int] | None, top: int) -> list[int]:
    """The sizes given that lie in [1, top], or 1, 2, 4, … up to `top`."""
    if given:
        return sorted({r for r in given if 1 <= r <= top})
    sizes, r = [], 1
    while r < top:
        sizes.append(r)
        r *= 2
    return sizes + [top]


def top_block_names(learner, k: int) -> set[str]:
    """The trainable parameters of a depth-k subnetwork: the top k blocks' adapters, and what sits
    above every block (the classification head)."""
    return set(learner.trainable_names(learner.model.depth - k))   # the part [depth - k, depth) holds the head


def aggregate_blocks(global_state: State, states: list[State], weights: list[float]) -> State:
    """Depth subnetworks: each parameter averaged over the devices that uploaded it (weights:
    sample counts); one nobody trained keeps the global value."""
    return merge(global_state, weighted_mean_by_key(list(zip(states, weights))))


class Sizer:
    """Memory a device needs for a subnetwork on top of what it holds (its weights are held from the
    start, cosim.run): the trained parameters, their gradients and optimizer state + the measured
    activations. A rank slice counts the largest activations measured so far (a rank barely changes
    them); a depth the ones measured at that depth, or — before one was — the most per trained
    block measured so far times its blocks (saved activations grow with the blocks backward runs
    through)."""

    def __init__(self, sim, cfg: WhaleFlConfig, global_state: State):
        self.sim, self.learner, self.by_depth = sim, sim.learner, cfg.subnetwork == "depth"
        self.global_state = global_state
        self.activations: int = 0   # the largest saved-activation bytes measured so far (0 before any)
        self.activations_at: dict[int, int] = {}   # depth: the largest measured at each depth

    def trained(self, size: int) -> State:
        """The parameters a subnetwork of `size` trains (the part it uploads)."""
        if not self.by_depth:
            return slice_state(self.global_state, size)
        names = top_block_names(self.learner, size)
        return {k: v for k, v in self.global_state.items() if k in names}

    def need_bytes(self, size: int) -> int:
        slots = 1 + optimizer_slots(self.learner.optimizer)
        return tensor_bytes(self.trained(size).values()) * (1 + slots) + self.activation_bytes(size)

    def activation_bytes(self, size: int) -> int:
        if not self.by_depth:
            return self.activations
        if size in self.activations_at:
            return self.activations_at[size]
        return max((b * size // k for k, b in self.activations_at.items()), default=0)

    def measured(self, cost, size: int) -> None:
        """Remember the largest saved-activation footprint a training step (of a `size` subnetwork) measured."""
        self.activations = max(self.activations, cost.saved_activation_bytes)
        self.activations_at[size] = max(self.activations_at.get(size, 0), cost.saved_activation_bytes)

    @staticmethod
    def free_bytes(dev, t_s: float) -> float:
        return dev.memory.capacity_bytes * dev.conditions.compute_share(t_s) - dev.memory.total


def choose_rank(cfg: WhaleFlConfig, ranks: list[int], share: float, stage: float, fits) -> int | None:
    """argmax of U over the sizes (ranks or depths) that fit (None when none does)."""
    ok = [r for r in ranks if fits(r)]
    if not ok:
        return None
    return max(ok, key=lambda r: (utility(r, ranks[-1], share, stage, cfg.cost_weight), -r))


@scheme("whale_fl", config=WhaleFlConfig,
        summary="WHALE-FL: each device picks a subnetwork (LoRA rank slice or top blocks) per round from its "
                "conditions")
def run(sim, cfg: WhaleFlConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())
    by_depth = cfg.subnetwork == "depth"
    ranks = candidate_depths(cfg, learner.model.depth) if by_depth else candidate_ranks(cfg)
    combine = aggregate_blocks if by_depth else aggregate_nested

    def initial():
        """(the global model, its memory sizer, the fixed baseline's sizes)."""
        global_state = learner.initial_state()
        # fixed: the baseline's size per device at full capacity (share 1, all memory), kept
        return global_state, Sizer(sim, cfg, global_state), {}

    def one_round(rnd, state):
        global_state, sizer, fixed = state
        plan = []
        for dev in sim.select(cfg.participants):
            t = sim.now
            share = min(dev.conditions.compute_share(t), dev.conditions.radio_share(t))
            free = sizer.free_bytes(dev, t)
            fits = lambda r: sizer.need_bytes(r) <= free  # noqa: E731
            if cfg.assignment == "fixed":
                if dev.name not in fixed:
                    full = dev.memory.capacity_bytes - dev.memory.total
                    fixed[dev.name] = choose_rank(cfg, ranks, 1.0, 1.0, lambda r: sizer.need_bytes(r) <= full)
                rank = fixed[dev.name] if fixed[dev.name] and fits(fixed[dev.name]) else None
            else:
                rank = choose_rank(cfg, ranks, share, stage_of(rnd, cfg.rounds), fits)
            need = sizer.need_bytes(rank) if rank else 0
            sim.trace.record(t, t, dev.name, "subnetwork", mem_bytes=need,
                             detail=f"{cfg.subnetwork}={rank} share={share:.3f} "
                                    f"compute_share={dev.conditions.compute_share(t):.3f} need={need} free={int(free)}")
            if rank:
                plan.append((dev, rank))
        if not plan:   # nobody can train now: wait for the conditions to change
            wait_s = min(d.conditions.next_change_s(sim.now) for d in sim.devices) - sim.now
            yield sim.timeout(wait_s if 0 < wait_s < float("inf") else 1.0)
        gathered = yield from sim.gather(subnetwork_update(sim, cfg, dev, server, global_state, rank, sizer)
                                         for dev, rank in plan)
        updates = gathered.results
        if updates:
            global_state = yield from aggregate(sim, server, updates, combine=partial(combine, global_state))
            sizer.global_state = global_state
        sim.close_round(rnd, global_state, [u[2] for u in updates], clients=len(plan), updates=len(updates),
                        **{f"mean_{cfg.subnetwork}": sum(r for _, r in plan) / len(plan) if plan else float("nan")})
        return global_state, sizer, fixed

    yield from round_loop(sim, initial, one_round)


def subnetwork_update(sim, cfg: WhaleFlConfig, dev, server, global_state: State, size: int, sizer: Sizer):
    """One device's round on its subnetwork: FedAvg's client round on the rank slice (downloaded and
    uploaded alone), or on the whole adapter state with only the top `size` blocks' trained (and
    uploaded); remembering the activation footprint measured for the memory check. (A step's FLOP
    key is its local model's trainable shapes and flags, which carry the rank or depth.)"""
    step = lambda local: local_step(sim, dev, local, detail=f"{cfg.subnetwork}={size}",  # noqa: E731
                                    after_step=lambda cost: sizer.measured(cost, size))
    if cfg.subnetwork == "depth":
        trained = set(sizer.trained(size))
        return (yield from client_update(sim, cfg, dev, server, global_state, step=step,
                                         trains=trained.__contains__))
    return (yield from client_update(sim, cfg, dev, server, slice_state(global_state, rank=size), step=step))
