"""Bytes a real step moves through memory: the roofline's second axis, counted op by op.

Each aten op the step dispatches (forward, backward, optimizer: whatever runs inside the counted
call) reads its tensor inputs and writes its tensor outputs once; their bytes sum to the step's
memory traffic. That is the unfused, no-cache-reuse traffic of an eager-mode step — the regime of
small batches on phones, Raspberry Pis and Jetsons, where every op round-trips DRAM — and an upper
bound where a runtime fuses ops or a cache holds an operand. Ops that only re-describe memory
(views, reshapes, transposes, `detach`) move nothing and are not counted; a tensor given twice to
one op is read once; an embedding lookup reads the rows it returns, not its whole table. Counted like FLOPs, once per step signature (cosim.learn.accounting).
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_aten = torch.ops.aten
#: Ops that return a view (or only metadata) of their input: no bytes move.
_NO_TRAFFIC = {
    _aten.view.default, _aten._unsafe_view.default, _aten.reshape.default, _aten.t.default,
    _aten.transpose.int, _aten.permute.default, _aten.expand.default, _aten.squeeze.dim, _aten.squeeze.default,
    _aten.unsqueeze.default, _aten.slice.Tensor, _aten.select.int, _aten.as_strided.default, _aten.detach.default,
    _aten.alias.default, _aten.split.Tensor, _aten.split_with_sizes.default, _aten.unbind.int, _aten.chunk.default,
    _aten.lift_fresh.default, _aten.empty.memory_format, _aten.empty_like.default, _aten.empty_strided.default,
}


def _bytes(tensors, seen: set) -> int:
    total = 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


class TrafficCounter(TorchDispatchMode):
    """Under it, `bytes_moved` grows by each op's input bytes read plus output bytes written."""

    def __init__(self):
        super().__init__()
        self.bytes_moved = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = getattr(func, "overloadpacket", None)
        if func in _NO_TRAFFIC or (packet is not None and getattr(packet, "__name__", "") in ("view", "_unsafe_view")):
            return out
        outputs, _ = tree_flatten(out)
        if func is _aten.embedding.default:   # a lookup reads the rows it returns, not the whole table
            self.bytes_moved += _bytes(args[1:2], set()) + 2 * _bytes(outputs, set())
            return out
        inputs, _ = tree_flatten((args, kwargs or {}))
        self.bytes_moved += _bytes(inputs, set()) + _bytes(outputs, set())
        return out
