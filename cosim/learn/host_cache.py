"""Memoized pure work on the host: a frozen forward of the same tokens under the same frozen weights
gives the same tensors, so the host computes it once (issue: fast real compute, item 5).

Only the host saves time: `Node.compute` still charges the simulated device the step's counted
FLOPs and duration every time (a scheme that caches on the device, as PAE MobiLLM does, says so
itself). A hit returns the very tensors computed before, so no table changes. Entries are evicted
least recently used beyond a byte budget (`runtime.host_cache_mb`); while the StepMeter counts a
step's FLOPs the cache is bypassed, so a count is never taken from a cached call.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Hashable

import torch

from .accounting import measuring


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v) for v in value)
    return 0


def tokens_key(*tensors: torch.Tensor) -> bytes:
    """A digest of token tensors' shapes and contents (what a frozen forward reads)."""
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(repr((tuple(t.shape), t.dtype)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.digest()


class HostCache:
    """LRU memo of pure results within `budget_bytes` (0: off)."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: Hashable | Callable[[], Hashable], compute: Callable[[], object]):
        """`compute()`'s result, from the cache when `key` was computed before. `key` may be a
        callable: then it is derived only when the cache is in use (hashing tokens costs)."""
        if self.budget_bytes <= 0 or measuring():
            return compute()
        if callable(key):
            key = key()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]
        self.misses += 1
        value = compute()
        size = _nbytes(value)
        if size <= self.budget_bytes:
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.budget_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return value
