"""WHALE-FL (wireless- and heterogeneity-aware FL with adaptive subnetworks): every round each device
picks the size of the subnetwork it trains from a utility of its current compute and link conditions
(cosim.world.conditions) and the training stage. Subnetworks are nested LoRA rank slices of the
shared adapters: a device of rank r_i ≤ r trains the first r_i rows of every A and the first r_i
columns of every B (and the head); it downloads and uploads only that slice, so its bytes, FLOPs and
memory follow r_i. The server averages each rank slice over the devices that trained it (sample
weighted); a slice nobody trained keeps its value. `scheme.assignment: fixed` is the baseline: the
rank the same utility gives at the device's full capacity, kept for the whole run.

Utility of rank r for device i at time t in round k of K (r ∈ `ranks`, R = the largest):

    κ_i(t) = min(compute_share_i(t), radio_share_i(t))          # its bottleneck share now, (0, 1]
    σ_k    = 0.5 + 0.5 · (k − 1) / max(K − 1, 1)                  # training stage: 0.5 early → 1 late
    U(r)   = σ_k · log(1 + r) / log(1 + R) − β · (r / R) / κ_i(t)

the first term the (concave) value of a larger subnetwork, worth more late in training; the second
its time cost, proportional to its size over the share of compute and link the device has now.
The chosen rank is the argmax of U among the ranks that fit the device's memory at that moment:
the slice's training state + the step's saved activations (measured) must be at most what is free,
capacity · compute_share(t) − held (the weights are held from the start; assumption: background
load takes memory in the same share as compute). A device where nothing fits sits the round out.

Reproduces: WHALE-FL: adaptive subnetworks reach the target sooner than fixed sizes —
scenarios/whale_fl.yaml, tests/test_mavfl_claims.py::test_whale_fl_adaptive_reaches_target_sooner_than_fixed
"""
from __future__ import annotations

import math
from functools import partial
from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..learn.training import State, optimizer_slots, tensor_bytes
from ..world.events import declare
from .base import LoraRequired, SchemeConfig, scheme
from .common import aggregate, client_update, local_step, round_loop


declare("subnetwork", "marker", "a device was assigned a sub-network size (WHALE-FL)", by="whale_fl")


class WhaleFlConfig(LoraRequired, SchemeConfig):
    name: str = "whale_fl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    assignment: Literal["adaptive", "fixed"] = "adaptive"
    ranks: list[int] | None = Field(None, description="candidate subnetwork ranks; default 1, 2, 4, … up to lora.r")
    cost_weight: float = Field(0.25, ge=0, description="beta: weight of the time cost in the utility")

    def problems(self, depth, source, device_profiles) -> list[str]:
        problems = super().problems(depth, source, device_profiles)
        if self.ranks and not candidate_ranks(self):   # every subnetwork is a slice of the rank-r adapters
            problems.append(f"scheme.ranks: no rank inside the adapters (given {self.ranks}); allowed: "
                            f"1 to lora.r = {self.lora.r}")
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
    top = cfg.lora.r
    if cfg.ranks:
        return sorted({r for r in cfg.ranks if 1 <= r <= top})
    ranks, r = [], 1
    while r < top:
        ranks.append(r)
        r *= 2
    return ranks + [top]


class Sizer:
    """Memory a device needs for a rank on top of what it holds (its weights are held from the start,
    cosim.run): the slice's parameters, gradients and optimizer state + the measured activations."""

    def __init__(self, sim, global_state: State):
        self.sim, self.learner = sim, sim.learner
        self.global_state = global_state
        self.activations: int = 0   # the largest saved-activation bytes measured so far (0 before any)

    def need_bytes(self, rank: int) -> int:
        sliced = slice_state(self.global_state, rank)
        slots = 1 + optimizer_slots(self.learner.optimizer)
        return tensor_bytes(sliced.values()) * (1 + slots) + self.activations

    def measured(self, cost) -> None:
        """Remember the largest saved-activation footprint a training step has measured."""
        self.activations = max(self.activations, cost.saved_activation_bytes)

    @staticmethod
    def free_bytes(dev, t_s: float) -> float:
        return dev.memory.capacity_bytes * dev.conditions.compute_share(t_s) - dev.memory.total


def choose_rank(cfg: WhaleFlConfig, ranks: list[int], share: float, stage: float, fits) -> int | None:
    """argmax of U over the ranks that fit (None when none does)."""
    ok = [r for r in ranks if fits(r)]
    if not ok:
        return None
    return max(ok, key=lambda r: (utility(r, ranks[-1], share, stage, cfg.cost_weight), -r))


@scheme("whale_fl", config=WhaleFlConfig,
        summary="WHALE-FL: each device picks a nested LoRA-rank subnetwork per round from its conditions")
def run(sim, cfg: WhaleFlConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())
    ranks = candidate_ranks(cfg)

    def initial():
        """(the global model, its memory sizer, the fixed baseline's ranks)."""
        global_state = learner.initial_state()
        # fixed: the baseline's rank per device at full capacity (share 1, all memory), kept
        return global_state, Sizer(sim, global_state), {}

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
                             detail=f"rank={rank} share={share:.3f} "
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
            global_state = yield from aggregate(sim, server, updates, combine=partial(aggregate_nested, global_state))
            sizer.global_state = global_state
        sim.close_round(rnd, global_state, [u[2] for u in updates], clients=len(plan), updates=len(updates),
                        mean_rank=sum(r for _, r in plan) / len(plan) if plan else float("nan"))
        return global_state, sizer, fixed

    yield from round_loop(sim, initial, one_round)


def subnetwork_update(sim, cfg: WhaleFlConfig, dev, server, global_state: State, rank: int, sizer: Sizer):
    """One device's round on its rank slice: FedAvg's client round on the slice, remembering the
    largest activation footprint measured so far for the memory check. (A step's FLOP key is its
    local model's trainable shapes, which carry the rank.)"""
    return (yield from client_update(sim, cfg, dev, server, slice_state(global_state, rank),
                                     step=lambda local: local_step(sim, dev, local, detail=f"rank={rank}",
                                                                   after_step=sizer.measured)))
