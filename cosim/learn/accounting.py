"""Count what a real step costs: FLOPs (torch's FlopCounterMode) and the bytes of activations it
saves for backward (autograd's saved-tensor hooks), cached by the step's signature.

The first call with a given signature runs under the counters; later calls with the same
signature run bare and reuse the counts, so accounting costs nothing in steady state. Counting,
not host timing, makes simulated durations identical on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable

import time

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class StepCost:
    flops: float
    saved_activation_bytes: int


class StepMeter:
    """FLOP and saved-activation counter with a cache keyed by step signature."""

    def __init__(self):
        self._cache: dict[Hashable, StepCost] = {}
        self._param_storages: set[int] = set()
        self.measured = 0  # how many signatures were counted (for tests and the overhead benchmark)
        self.host_s = 0.0  # host seconds inside steps: only for the overhead benchmark, never the clock

    def exclude_parameters(self, module: torch.nn.Module) -> None:
        """Weights saved for backward are resident weights, not activations: don't count them twice."""
        self._param_storages.update(p.untyped_storage().data_ptr() for p in module.parameters())

    def cost(self, key: Hashable) -> StepCost | None:
        return self._cache.get(key)

    def run(self, key: Hashable, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, StepCost]:
        t0 = time.perf_counter()
        try:
            return self._run(key, fn, *args, **kwargs)
        finally:
            self.host_s += time.perf_counter() - t0

    def _run(self, key: Hashable, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, StepCost]:
        cached = self._cache.get(key)
        if cached is not None:
            return fn(*args, **kwargs), cached
        seen: set[int] = set()
        saved = 0

        def pack(t: torch.Tensor):
            nonlocal saved
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in seen and ptr not in self._param_storages:
                seen.add(ptr)
                saved += storage.nbytes()
            return t

        counter = FlopCounterMode(display=False)
        with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            result = fn(*args, **kwargs)
        cost = StepCost(float(counter.get_total_flops()), saved)
        self._cache[key] = cost
        self.measured += 1
        return result, cost
