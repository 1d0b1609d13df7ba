"""Turn the tensors a scheme sends into the real bytes that cross a link, and back.

The wire format is deliberately plain so its size is exactly predictable:

    message  = MESSAGE_HEADER_BYTES (magic u32, tensor count u32)
               + for each tensor: TENSOR_HEADER_BYTES + the tensor's raw bytes (C order)
    tensor header = dtype code u8, ndim u8, 6 pad bytes, up to 6 dims as u32 (unused dims 0)

so a (B, T, H) float32 activation costs 8 + 32 + B·T·H·4 bytes. Names are not sent: sender and
receiver agree on the order (a schema), as a real split-learning RPC would. Quantization,
sparsification and lossless coding plug in here as other codecs (later issues).
"""
from __future__ import annotations

import struct

import numpy as np
import torch

MAGIC = 0xC051_0001
MESSAGE_HEADER_BYTES = 8
TENSOR_HEADER_BYTES = 32
_MAX_DIMS = 6
_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8,
           torch.bool, torch.float64]
_CODE = {dt: i for i, dt in enumerate(_DTYPES)}


def payload_bytes(shapes_and_dtypes) -> int:
    """Size on the wire of a message of tensors with these (shape, dtype) pairs."""
    total = MESSAGE_HEADER_BYTES
    for shape, dtype in shapes_and_dtypes:
        total += TENSOR_HEADER_BYTES + int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
    return total


class TensorCodec:
    """Lossless framing of a dict (or list) of tensors; decode returns the same structure."""

    def encode(self, payload) -> bytes:
        tensors = list(payload.values()) if isinstance(payload, dict) else list(payload)
        parts = [struct.pack("<II", MAGIC, len(tensors))]
        for t in tensors:
            t = t.detach().contiguous().cpu()
            if t.dim() > _MAX_DIMS:
                raise ValueError(f"tensor with {t.dim()} dims; the wire format carries at most {_MAX_DIMS}")
            dims = list(t.shape) + [0] * (_MAX_DIMS - t.dim())
            parts.append(struct.pack("<BB6x6I", _CODE[t.dtype], t.dim(), *dims))
            parts.append(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())
        return b"".join(parts)

    def decode(self, data: bytes, like):
        """Rebuild the payload from bytes; `like` gives the structure (dict keys) the sender used."""
        magic, count = struct.unpack_from("<II", data, 0)
        if magic != MAGIC:
            raise ValueError("not a cosim tensor message")
        offset, tensors = MESSAGE_HEADER_BYTES, []
        for _ in range(count):
            code, ndim, *dims = struct.unpack_from("<BB6x6I", data, offset)
            offset += TENSOR_HEADER_BYTES
            dtype, shape = _DTYPES[code], dims[:ndim]
            nbytes = int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
            raw = bytearray(data[offset:offset + nbytes])
            offset += nbytes
            if dtype == torch.bfloat16:
                t = torch.frombuffer(raw, dtype=torch.uint8).view(torch.bfloat16) if nbytes else torch.empty(0, dtype=dtype)
            else:
                t = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
            tensors.append(t.reshape(shape))
        if isinstance(like, dict):
            return dict(zip(like.keys(), tensors))
        return tensors


# --- uniform min-max quantization (MobiLLM's low-bit activation uplink) ---------------------------
#
# Wire format of a QuantCodec message (little endian; exact size: `quantized_payload_bytes`):
#
#     message  = MESSAGE_HEADER_BYTES (QUANT_MAGIC u32, tensor count u32)
#                + for each tensor: TENSOR_HEADER_BYTES, then
#                  - a floating tensor: QUANT_PARAMS_BYTES (zero point `lo` f32, step `scale` f32) and
#                    ceil(numel · bits / 8) bytes of packed codes, or
#                  - any other tensor (lengths, ids): its raw bytes, as TensorCodec sends them
#     tensor header = dtype code u8, ndim u8, bits u8 (0 = raw), per-row flag u8, 4 pad bytes,
#                     up to 6 dims as u32
#     with the per-row flag set, QUANT_PARAMS_BYTES per row (the last dimension: one token's hidden
#     state) instead of one pair per tensor
#
# A floating tensor x is coded per tensor as q = round((x - lo) / scale) with lo = min x,
# scale = (max x - min x) / (2^bits - 1) (min-max uniform quantization, e.g. Jacob et al. CVPR 2018
# §2.1), q in [0, 2^bits - 1]; decoded as lo + q · scale. Deterministic rounding errs by at most
# scale / 2 per element, stochastic rounding (round up with probability equal to the fraction) by
# less than scale and is unbiased. Codes are packed little-end first: with 2 bits, four codes per
# byte, the first in the lowest two bits.
#
# Per-row ranges ("token" scale, as per-token activation quantization in ZeroQuant, Yao et al. 2022
# §4.1) matter for decoder LLMs: their residual stream carries "massive activations" (Sun et al.
# 2024) — in SmolLM2-135M one channel of the first token reaches 2.5e4 at block 15 while the other
# tokens stay below ~10^2 — so a single per-tensor range leaves the other tokens a step of ~200.

QUANT_MAGIC = 0xC051_0002
QUANT_PARAMS_BYTES = 8
QUANT_BITS = (2, 4, 8)


def quantized_tensor_bytes(numel: int, bits: int, rows: int = 1) -> int:
    """Bytes a floating tensor of `numel` elements costs in a QuantCodec message at `bits`, with
    one (zero point, step) pair per tensor (rows = 1) or per row."""
    return TENSOR_HEADER_BYTES + QUANT_PARAMS_BYTES * rows + -(-int(numel) * bits // 8)


def quantized_payload_bytes(float_shapes, bits: int, raw_shapes_and_dtypes=(), per_row: bool = False) -> int:
    """Exact size of a QuantCodec message: floating tensors of `float_shapes` coded at `bits` (a
    range per tensor, or per row of the last dimension), plus raw (non-floating) tensors given as
    (shape, dtype)."""
    total = MESSAGE_HEADER_BYTES
    for shape in float_shapes:
        numel = int(np.prod(shape, dtype=np.int64))
        rows = numel // shape[-1] if per_row and len(shape) and shape[-1] else 1
        total += quantized_tensor_bytes(numel, bits, rows)
    for shape, dtype in raw_shapes_and_dtypes:
        total += TENSOR_HEADER_BYTES + int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
    return total


def quantize(x: torch.Tensor, bits: int, rng: np.random.Generator | None = None,
             per_row: bool = False) -> tuple[torch.Tensor, float | torch.Tensor, float | torch.Tensor]:
    """Min-max uniform codes of `x` (uint8 in [0, 2^bits - 1], flat), its zero point and step:
    floats for one range per tensor, or float32 tensors of one per row (last dimension) with
    `per_row`. With `rng`, stochastic rounding; without, round to nearest."""
    if bits not in QUANT_BITS:
        raise ValueError(f"bits={bits}; allowed: {QUANT_BITS}")
    levels = (1 << bits) - 1
    width = x.shape[-1] if per_row and x.dim() and x.shape[-1] else max(1, x.numel())
    rows = x.detach().float().reshape(-1, width) if x.numel() else x.detach().float().reshape(0, 1)
    lo = rows.amin(dim=1, keepdim=True) if rows.numel() else torch.zeros(1, 1)
    hi = rows.amax(dim=1, keepdim=True) if rows.numel() else torch.zeros(1, 1)
    scale = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(lo))
    u = (rows - lo) / scale
    if rng is None:
        q = torch.round(u)
    else:
        q = torch.floor(u + torch.from_numpy(rng.random(u.shape, dtype=np.float32)))
    codes = q.clamp_(0, levels).to(torch.uint8).reshape(-1)
    if per_row:
        return codes, lo.reshape(-1), scale.reshape(-1)
    return codes, float(lo.reshape(-1)[0]), float(scale.reshape(-1)[0])


def dequantize(codes: torch.Tensor, lo, scale) -> torch.Tensor:
    """Inverse of `quantize` (flat): per-row `lo`/`scale` tensors broadcast over their rows."""
    if isinstance(lo, torch.Tensor) and lo.numel() > 1:
        return (codes.float().reshape(lo.numel(), -1) * scale.unsqueeze(1) + lo.unsqueeze(1)).reshape(-1)
    return codes.float() * float(scale) + float(lo)


def pack_codes(codes: torch.Tensor, bits: int) -> bytes:
    """Pack uint8 codes of `bits` each into bytes (8 // bits codes per byte, first in the low bits)."""
    per = 8 // bits
    c = codes.reshape(-1).numpy().astype(np.uint8)
    pad = (-len(c)) % per
    if pad:
        c = np.concatenate([c, np.zeros(pad, np.uint8)])
    c = c.reshape(-1, per)
    out = np.zeros(len(c), np.uint8)
    for j in range(per):
        out |= c[:, j] << np.uint8(j * bits)
    return out.tobytes()


def unpack_codes(data: bytes, bits: int, numel: int) -> torch.Tensor:
    per, mask = 8 // bits, (1 << bits) - 1
    packed = np.frombuffer(data, dtype=np.uint8)
    c = np.stack([(packed >> np.uint8(j * bits)) & np.uint8(mask) for j in range(per)], axis=1).reshape(-1)
    return torch.from_numpy(c[:numel].copy())


class QuantCodec:
    """Lossy codec: floating tensors min-max quantized to `bits` (8, 4 or 2) and packed into real
    bytes, with one range per tensor or per row (`per_row`: per token of a hidden-state tensor);
    other tensors travel raw. Stochastic rounding draws from `rng` (a named sim stream)."""

    def __init__(self, bits: int = 8, rng: np.random.Generator | None = None, per_row: bool = False):
        if bits not in QUANT_BITS:
            raise ValueError(f"bits={bits}; allowed: {QUANT_BITS}")
        self.bits, self.rng, self.per_row = bits, rng, per_row

    def encode(self, payload) -> bytes:
        tensors = list(payload.values()) if isinstance(payload, dict) else list(payload)
        parts = [struct.pack("<II", QUANT_MAGIC, len(tensors))]
        for t in tensors:
            t = t.detach().contiguous().cpu()
            if t.dim() > _MAX_DIMS:
                raise ValueError(f"tensor with {t.dim()} dims; the wire format carries at most {_MAX_DIMS}")
            dims = list(t.shape) + [0] * (_MAX_DIMS - t.dim())
            bits = self.bits if t.is_floating_point() else 0
            per_row = bool(bits and self.per_row and t.dim() and t.shape[-1])
            parts.append(struct.pack("<BBBB4x6I", _CODE[t.dtype], t.dim(), bits, per_row, *dims))
            if bits:
                codes, lo, scale = quantize(t, bits, self.rng, per_row=per_row)
                if per_row:
                    parts.append(torch.stack([lo, scale], dim=1).numpy().astype("<f4").tobytes())
                else:
                    parts.append(struct.pack("<ff", lo, scale))
                parts.append(pack_codes(codes, bits))
            else:
                parts.append(t.numpy().tobytes())
        return b"".join(parts)

    def decode(self, data: bytes, like):
        magic, count = struct.unpack_from("<II", data, 0)
        if magic != QUANT_MAGIC:
            raise ValueError("not a cosim quantized message")
        offset, tensors = MESSAGE_HEADER_BYTES, []
        for _ in range(count):
            code, ndim, bits, per_row, *dims = struct.unpack_from("<BBBB4x6I", data, offset)
            offset += TENSOR_HEADER_BYTES
            dtype, shape = _DTYPES[code], dims[:ndim]
            numel = int(np.prod(shape, dtype=np.int64))
            if bits:
                rows = numel // shape[-1] if per_row else 1
                params = np.frombuffer(data, dtype="<f4", count=2 * rows, offset=offset).reshape(rows, 2)
                lo, scale = torch.from_numpy(params[:, 0].copy()), torch.from_numpy(params[:, 1].copy())
                offset += QUANT_PARAMS_BYTES * rows
                nbytes = -(-numel * bits // 8)
                codes = unpack_codes(data[offset:offset + nbytes], bits, numel)
                t = dequantize(codes, lo, scale).to(dtype)
            else:
                nbytes = numel * torch.empty((), dtype=dtype).element_size()
                raw = bytearray(data[offset:offset + nbytes])
                t = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
            offset += nbytes
            tensors.append(t.reshape(shape))
        if isinstance(like, dict):
            return dict(zip(like.keys(), tensors))
        return tensors
