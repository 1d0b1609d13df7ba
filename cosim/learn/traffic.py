"""Bytes a real step moves through memory: the roofline's second axis, counted op by op.

Each aten op the step dispatches (forward, backward, optimizer: whatever runs inside the counted
call) reads its tensor inputs and writes its tensor outputs once; their bytes sum to the step's
memory traffic. That is the unfused, no-cache-reuse traffic of an eager-mode step — the regime of
small batches on phones, Raspberry Pis and Jetsons, where every op round-trips DRAM — and an upper
bound where a runtime fuses ops or a cache holds an operand. Ops that only re-describe memory
(views, reshapes, transposes, `detach`) move nothing and are not counted; a tensor given twice to
one op is read once; an embedding lookup reads the rows it returns, not its whole table. Counted like FLOPs, once per step signature (cosim.learn.accounting).

The count must not depend on the host's device (runtime.device: a CUDA run's tables are the CPU
run's), yet torch picks other kernels there: a fused attention of another backend (flash for CPU;
memory-efficient or flash on CUDA), each with its own bookkeeping outputs (log-sum-exp, RNG state),
and the optimizers' multi-tensor (`_foreach_`) form instead of one op per tensor. So fused attention
counts what every backend must touch — q, k, v and the output (backward: the output's gradient, q,
k, v, the output and the three gradients) — and a `_foreach_` op counts what its one-tensor ops
would: each list element read, an in-place op's elements written, a lone tensor operand (the step
increment) as the number it stands for. Reading a scalar back to the host (`.item()`) moves nothing.
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


def _ops(*names: str) -> set:
    """The default overloads of the aten ops of these names that this torch build has."""
    return {getattr(_aten, n).default for n in names if hasattr(_aten, n)}


_ATTENTION = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
              "_scaled_dot_product_flash_attention", "_scaled_dot_product_cudnn_attention")
#: forward args start (q, k, v); backward args start (grad_out, q, k, v); the first output(s) are the
#: result (backward: grad_q, grad_k, grad_v), the rest each backend's bookkeeping
ATTENTION_FORWARD = _ops(*_ATTENTION)
ATTENTION_BACKWARD = _ops(*(n + "_backward" for n in _ATTENTION))


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
        #: storages of fused attention's bookkeeping outputs: backend-specific, so not counted as
        #: activations saved for backward either (cosim.learn.accounting)
        self.bookkeeping: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = getattr(func, "overloadpacket", None)
        name = getattr(packet, "__name__", "")
        if func in _NO_TRAFFIC or func is _aten._local_scalar_dense.default or name in ("view", "_unsafe_view"):
            return out
        outputs, _ = tree_flatten(out)
        if func is _aten.embedding.default:   # a lookup reads the rows it returns, not the whole table
            self.bytes_moved += _bytes(args[1:2], set()) + 2 * _bytes(outputs, set())
        elif func in ATTENTION_FORWARD:
            self.bytes_moved += _bytes(args[:3], set()) + _bytes(outputs[:1], set())
            self.bookkeeping.update(t.untyped_storage().data_ptr() for t in outputs[1:] if isinstance(t, torch.Tensor))
        elif func in ATTENTION_BACKWARD:
            # grad_out, q, k, v read, the output read (its bytes are grad_out's), grad q, k, v written
            self.bytes_moved += _bytes(args[:4], set()) + _bytes(args[:1], set()) + _bytes(outputs[:3], set())
        elif name.startswith("_foreach_"):
            lists = [a for a in args if isinstance(a, (list, tuple))]
            seen: set[int] = set()
            read = sum(_bytes(items, seen) for items in lists)
            written = _bytes(lists[0], set()) if name.endswith("_") else _bytes(outputs, set())
            self.bytes_moved += read + written
        else:
            inputs, _ = tree_flatten((args, kwargs or {}))
            self.bytes_moved += _bytes(inputs, set()) + _bytes(outputs, set())
        return out
