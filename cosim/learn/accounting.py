"""Count what a real step costs: FLOPs (torch's FlopCounterMode), the bytes it moves through memory
(cosim.learn.traffic, for the roofline) and the bytes of activations it saves for backward
(autograd's saved-tensor hooks), cached by the step's signature.

The first call with a given signature runs under the counters; later calls with the same
signature run bare and reuse the counts, so accounting costs nothing in steady state. Counting,
not host timing, makes simulated durations identical on every machine.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from .traffic import ATTENTION_BACKWARD, ATTENTION_FORWARD, TrafficCounter

#: FLOP formulas torch's counter lacks: its fused-attention formulas (flash-attention paper's
#: 4·b·h·s_q·s_k·d forward, 2.5x backward) cover the CUDA kernels, not the CPU's flash kernel, which
#: it counted as 0 FLOPs; the same formulas for every backend keep a CUDA run's count the CPU run's.
def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                              **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


_ATTENTION_FLOPS = {**{op.overloadpacket: _attention_flops for op in ATTENTION_FORWARD},
                    **{op.overloadpacket: _attention_backward_flops for op in ATTENTION_BACKWARD}}


@dataclass(frozen=True)
class StepCost:
    flops: float
    saved_activation_bytes: int
    #: bytes read and written by the step's ops (cosim.learn.traffic); 0: not counted (FLOPs alone time it)
    bytes_moved: int = 0


_measuring = 0


def measuring() -> bool:
    """Whether a step is being counted now (memoized host work must then really run)."""
    return _measuring > 0


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

    @staticmethod
    def signature(fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple:
        """The cache key of a step: `fn`'s qualified name, the signature of the object it is bound to
        (a model part: its trainable parameters) and the shapes of its arguments (`shape_signature`).
        Two calls with the same signature cost the same FLOPs; anything that changes the cost must
        show in it (or the caller passes `key=` to `Node.compute`)."""
        owner = getattr(fn, "__self__", None)
        func = getattr(fn, "__func__", fn)
        name = getattr(func, "__qualname__", None) or type(func).__qualname__
        return (name, None if owner is None else shape_signature(owner), shape_signature(args),
                shape_signature(kwargs))

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

        counter, traffic = FlopCounterMode(display=False, custom_mapping=_ATTENTION_FLOPS), TrafficCounter()

        def pack(t: torch.Tensor):
            nonlocal saved
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in seen and ptr not in self._param_storages and ptr not in traffic.bookkeeping:
                seen.add(ptr)
                saved += storage.nbytes()
            return t

        global _measuring
        _measuring += 1
        try:
            with counter, traffic, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                result = fn(*args, **kwargs)
        finally:
            _measuring -= 1
        cost = StepCost(float(counter.get_total_flops()), saved, traffic.bytes_moved)
        self._cache[key] = cost
        self.measured += 1
        return result, cost


def shape_signature(x) -> Hashable:
    """What of `x` decides a step's cost: tensors by shape, dtype and whether they want a gradient;
    containers by their items; objects with `cost_signature()` (a batch, a model part) by theirs;
    plain numbers and strings by value; other objects by their type (their state must not change
    the cost, or the caller passes a key)."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), x.dtype, x.requires_grad)
    if isinstance(x, (list, tuple)):
        return tuple(shape_signature(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, shape_signature(v)) for k, v in x.items())
    method = getattr(x, "cost_signature", None)
    if method is not None:
        return method()
    if isinstance(x, np.ndarray):
        return ("array", x.shape, x.dtype.str)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__qualname__, *(shape_signature(getattr(x, f.name)) for f in dataclasses.fields(x)))
    if callable(x):
        return getattr(x, "__qualname__", type(x).__qualname__)
    return type(x).__qualname__
