"""How a server combines what clients upload: pure functions of parameter states.

Kept apart from the schemes (Flower's strategy / aggregate split): a scheme decides *whose*
states to combine and *when*; these functions only say *how*.
"""
from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


def weighted_mean(states: list[State], weights: list[float]) -> State:
    """Weighted mean of parameter states, weights normalised to sum to one (FedAvg, McMahan et al.
    2017, Algorithm 1: weights = client sample counts). Every state has the keys of the first."""
    w = torch.tensor(weights, dtype=torch.float64)
    w = (w / w.sum()).tolist()
    # Σ_i w_i·s_i in client order, one multi-tensor op per client over all keys (a thousand clients'
    # tiny adapters were 76,000 separate ops, each paying the meter's dispatch on first count)
    keys = list(states[0])
    total = torch._foreach_mul([states[0][k] for k in keys], w[0])
    for wi, s in zip(w[1:], states[1:]):
        torch._foreach_add_(total, torch._foreach_mul([s[k] for k in keys], wi))
    return dict(zip(keys, total))


def merge(*parts: State) -> State:
    """One model state from the states of its parts (a device's bottom, a server's top, …); a key
    in a later part overrides the same key in an earlier one."""
    merged: State = {}
    for part in parts:
        merged.update(part)
    return merged


def weighted_mean_by_key(contributions: list[tuple[State, float | dict[str, float]]]) -> State:
    """Per-parameter weighted mean when holders hold different parts of the model (heterogeneous
    cuts: a block lives on the devices that cut above it and on the server for the others).

    Each contribution is (state, weight) with weight a number, or a dict of per-key weights (a
    key weighted 0 or missing there does not count). Every key takes the weighted mean over the
    contributions that hold it with a positive weight."""
    totals: dict[str, float] = {}
    sums: State = {}
    for state, weight in contributions:
        for k, v in state.items():
            w = weight.get(k, 0.0) if isinstance(weight, dict) else float(weight)
            if w <= 0:
                continue
            sums[k] = sums[k] + w * v if k in sums else w * v
            totals[k] = totals.get(k, 0.0) + w
    return {k: sums[k] / totals[k] for k in sums}
