"""Turn the tensors a scheme sends into the real bytes that cross a link, and back.

The wire format is deliberately plain so its size is exactly predictable:

    message  = MESSAGE_HEADER_BYTES (magic u32, tensor count u32)
               + for each tensor: TENSOR_HEADER_BYTES + the tensor's raw bytes (C order)
    tensor header = dtype code u8, ndim u8, 6 pad bytes, up to 6 dims as u32 (unused dims 0)

so a (B, T, H) float32 activation costs 8 + 32 + B·T·H·4 bytes. Names are not sent: sender and
receiver agree on the order (a schema), as a real split-learning RPC would.

Three codecs share that framing idea; each has `encode(payload) -> bytes`, `decode(data, like)` and
`encode_with_error(payload) -> (bytes, relative error)`:

- `TensorCodec`: lossless, raw tensors (the default of a run);
- `QuantCodec`: min-max quantization of floating tensors (MobiLLM's low-bit uplink);
- `CompressedCodec`, built from a `CompressionConfig` (the scenario's `compression:` block):
  top-k sparsification → quantization of the kept values → lossless coding (zstd / zlib) of the
  whole message, composable, e.g. `{keep: 0.1, bits: 4, lossless: zstd}`.

The bytes a link carries are always `len(encoded)`; the distortion of a lossy message is measured
on the real decoded values (`relative_error`) and handed to the sender by `encode_with_error`.

`wire_bytes(payload)` is that length without encoding, from the tensors' shapes and dtypes alone,
for every codec whose output size follows from them (all but a lossless coder's, whose output
depends on the values: it raises `ContentDependentSize`). Twin mode (cosim.learn.twin) sizes its
transfers with it; a test checks it equals `len(encode(...))`.
"""
from __future__ import annotations

import math
import struct
import warnings
import zlib
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

try:  # zstd through the real library; zlib (standard library) stands in when it is missing
    import zstandard
except ImportError:  # pragma: no cover - zstandard is a declared dependency
    zstandard = None

MAGIC = 0xC051_0001
MESSAGE_HEADER_BYTES = 8
TENSOR_HEADER_BYTES = 32
_MAX_DIMS = 6
_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int8, torch.uint8,
           torch.bool, torch.float64]
_CODE = {dt: i for i, dt in enumerate(_DTYPES)}


class ContentDependentSize(ValueError):
    """A codec whose encoded size depends on the values, not only on the shapes (a lossless coder)."""


def _tensors(payload) -> list:
    return list(payload.values()) if isinstance(payload, dict) else list(payload)


_ITEMSIZE: dict[torch.dtype, int] = {}


def _itemsize(dtype: torch.dtype) -> int:
    """Bytes per element of `dtype` (looked up once per dtype)."""
    size = _ITEMSIZE.get(dtype)
    if size is None:
        size = _ITEMSIZE[dtype] = torch.empty((), dtype=dtype).element_size()
    return size


def _wire_dims(t: torch.Tensor) -> list[int]:
    """A tensor header's dims: the shape padded with zeros to `_MAX_DIMS` (more dims are refused)."""
    if t.dim() > _MAX_DIMS:
        raise ValueError(f"tensor with {t.dim()} dims; the wire format carries at most {_MAX_DIMS}")
    return list(t.shape) + [0] * (_MAX_DIMS - t.dim())


def payload_bytes(shapes_and_dtypes) -> int:
    """Size on the wire of a message of tensors with these (shape, dtype) pairs."""
    total = MESSAGE_HEADER_BYTES
    for shape, dtype in shapes_and_dtypes:
        total += TENSOR_HEADER_BYTES + math.prod(shape) * _itemsize(dtype)
    return total


class Codec:
    """What every codec shares: `round_trip`, the view of a send the engine needs."""

    def round_trip(self, payload) -> tuple[int, object, float]:
        """Sending `payload`: (the bytes on the wire, what the receiver decodes, the relative error
        of that against `payload`), from the real encoded message."""
        data = self.encode(payload)
        value = self.decode(data, like=payload)
        return len(data), value, self.error(payload, value)


class TensorCodec(Codec):
    """Lossless framing of a dict (or list) of tensors; decode returns the same structure."""

    @staticmethod
    def error(sent, decoded) -> float:
        """The relative error of `decoded` against `sent`: 0, TensorCodec is lossless."""
        return 0.0

    @staticmethod
    def wire_bytes(payload) -> int:
        """`len(encode(payload))` from shapes and dtypes alone (see the wire format above)."""
        return MESSAGE_HEADER_BYTES + sum(TENSOR_HEADER_BYTES + t.numel() * t.element_size() for t in _tensors(payload))

    def encode(self, payload) -> bytes:
        tensors = list(payload.values()) if isinstance(payload, dict) else list(payload)
        parts = [struct.pack("<II", MAGIC, len(tensors))]
        for t in tensors:
            t = t.detach().contiguous().cpu()
            dims = _wire_dims(t)
            parts.append(struct.pack("<BB6x6I", _CODE[t.dtype], t.dim(), *dims))
            parts.append(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())
        return b"".join(parts)

    def encode_with_error(self, payload) -> tuple[bytes, float]:
        """`encode`, and the message's relative error: 0, TensorCodec is lossless."""
        return self.encode(payload), 0.0

    def round_trip(self, payload) -> tuple[int, object, float]:
        """What sending `payload` gives (`Codec.round_trip`), without writing and parsing the bytes:
        the framing's length follows from shapes and dtypes (`wire_bytes`, tested equal to
        `len(encode)`) and decoding lossless raw bytes gives the values back bit for bit, so the
        receiver gets a copy of each tensor. For a tiny BERT's adapters: ~0.07 ms a message against
        ~0.14 ms to write and parse it (about a tenth of the simulation's own time in a
        1,000-device round)."""
        tensors = _tensors(payload)
        copies = []
        for t in tensors:
            _wire_dims(t)    # a shape the wire format cannot carry is refused as in encode,
            _CODE[t.dtype]   # and so is a dtype
            copies.append(t.detach().cpu().clone(memory_format=torch.contiguous_format))
        value = dict(zip(payload.keys(), copies)) if isinstance(payload, dict) else copies
        return self.wire_bytes(tensors), value, 0.0

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
            nbytes = math.prod(shape) * _itemsize(dtype)
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
QUANT_BITS = (2, 4, 8)          # what QuantCodec accepts
CODE_BITS = (1, 2, 4, 8, 16)    # what `quantize` / `pack_codes` handle (CompressedCodec's `bits`)


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
        numel = math.prod(shape)
        rows = numel // shape[-1] if per_row and len(shape) and shape[-1] else 1
        total += quantized_tensor_bytes(numel, bits, rows)
    for shape, dtype in raw_shapes_and_dtypes:
        total += TENSOR_HEADER_BYTES + math.prod(shape) * _itemsize(dtype)
    return total


def quantize(x: torch.Tensor, bits: int, rng: np.random.Generator | None = None,
             per_row: bool = False) -> tuple[torch.Tensor, float | torch.Tensor, float | torch.Tensor]:
    """Min-max uniform codes of `x` (in [0, 2^bits - 1], flat; uint8 up to 8 bits, int32 for 16),
    its zero point and step: floats for one range per tensor, or float32 tensors of one per row
    (last dimension) with `per_row`. With `rng`, stochastic rounding; without, round to nearest."""
    if bits not in CODE_BITS:
        raise ValueError(f"bits={bits}; allowed: {CODE_BITS}")
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
    codes = q.clamp_(0, levels).to(torch.uint8 if bits <= 8 else torch.int32).reshape(-1)
    if per_row:
        return codes, lo.reshape(-1), scale.reshape(-1)
    return codes, float(lo.reshape(-1)[0]), float(scale.reshape(-1)[0])


def dequantize(codes: torch.Tensor, lo, scale) -> torch.Tensor:
    """Inverse of `quantize` (flat): per-row `lo`/`scale` tensors broadcast over their rows."""
    if isinstance(lo, torch.Tensor) and lo.numel() > 1:
        return (codes.float().reshape(lo.numel(), -1) * scale.unsqueeze(1) + lo.unsqueeze(1)).reshape(-1)
    return codes.float() * float(scale) + float(lo)


def pack_codes(codes: torch.Tensor, bits: int) -> bytes:
    """Pack codes of `bits` each into bytes (8 // bits codes per byte, first in the low bits;
    16-bit codes as little-endian uint16)."""
    if bits == 16:
        return codes.reshape(-1).numpy().astype("<u2").tobytes()
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
    """Inverse of `pack_codes`: the first `numel` codes (uint8, or int32 for 16 bits)."""
    if bits == 16:
        return torch.from_numpy(np.frombuffer(data, dtype="<u2", count=numel).astype(np.int32))
    per, mask = 8 // bits, (1 << bits) - 1
    packed = np.frombuffer(data, dtype=np.uint8)
    c = np.stack([(packed >> np.uint8(j * bits)) & np.uint8(mask) for j in range(per)], axis=1).reshape(-1)
    return torch.from_numpy(c[:numel].copy())


class QuantCodec(Codec):
    """Lossy codec: floating tensors min-max quantized to `bits` (8, 4 or 2) and packed into real
    bytes, with one range per tensor or per row (`per_row`: per token of a hidden-state tensor);
    other tensors travel raw. Stochastic rounding draws from `rng` (a named sim stream)."""

    @staticmethod
    def error(sent, decoded) -> float:
        """The largest relative error ‖x − x̂‖/‖x‖ of a floating tensor of the message."""
        return relative_error(sent, decoded)

    def __init__(self, bits: int = 8, rng: np.random.Generator | None = None, per_row: bool = False):
        if bits not in QUANT_BITS:
            raise ValueError(f"bits={bits}; allowed: {QUANT_BITS}")
        self.bits, self.rng, self.per_row = bits, rng, per_row

    def wire_bytes(self, payload) -> int:
        """`len(encode(payload))` from shapes and dtypes alone (see the wire format above)."""
        total = MESSAGE_HEADER_BYTES
        for t in _tensors(payload):
            if not t.is_floating_point():
                total += TENSOR_HEADER_BYTES + t.numel() * t.element_size()
                continue
            numel = t.numel()
            per_row = bool(self.per_row and t.dim() and t.shape[-1])
            rows = numel // t.shape[-1] if per_row and numel else 1   # `quantize` keeps one pair for an empty tensor
            total += quantized_tensor_bytes(numel, self.bits, rows)
        return total

    def encode(self, payload) -> bytes:
        tensors = list(payload.values()) if isinstance(payload, dict) else list(payload)
        parts = [struct.pack("<II", QUANT_MAGIC, len(tensors))]
        for t in tensors:
            t = t.detach().contiguous().cpu()
            dims = _wire_dims(t)
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

    def encode_with_error(self, payload) -> tuple[bytes, float]:
        """`encode`, and the largest relative error ‖x − x̂‖/‖x‖ of a floating tensor of the
        message as the receiver decodes it (measured by decoding the bytes)."""
        data = self.encode(payload)
        return data, relative_error(payload, self.decode(data, like=payload))

    def decode(self, data: bytes, like):
        magic, count = struct.unpack_from("<II", data, 0)
        if magic != QUANT_MAGIC:
            raise ValueError("not a cosim quantized message")
        offset, tensors = MESSAGE_HEADER_BYTES, []
        for _ in range(count):
            code, ndim, bits, per_row, *dims = struct.unpack_from("<BBBB4x6I", data, offset)
            offset += TENSOR_HEADER_BYTES
            dtype, shape = _DTYPES[code], dims[:ndim]
            numel = math.prod(shape)
            if bits:
                rows = numel // shape[-1] if per_row else 1
                params = np.frombuffer(data, dtype="<f4", count=2 * rows, offset=offset).reshape(rows, 2)
                lo, scale = torch.from_numpy(params[:, 0].copy()), torch.from_numpy(params[:, 1].copy())
                offset += QUANT_PARAMS_BYTES * rows
                nbytes = -(-numel * bits // 8)
                codes = unpack_codes(data[offset:offset + nbytes], bits, numel)
                t = dequantize(codes, lo, scale).to(dtype)
            else:
                nbytes = numel * _itemsize(dtype)
                raw = bytearray(data[offset:offset + nbytes])
                t = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
            offset += nbytes
            tensors.append(t.reshape(shape))
        if isinstance(like, dict):
            return dict(zip(like.keys(), tensors))
        return tensors


# --- distortion -------------------------------------------------------------------------------------

def relative_error(original, decoded) -> float:
    """‖x − x̂‖₂ / ‖x‖₂ of a decoded tensor (0 for an all-zero x that came back all zero, inf if it
    did not); for a dict / list of tensors, the largest over its floating tensors (0 if none).
    Computed in float64, so it measures the codec, not the arithmetic."""
    if isinstance(original, dict):
        original, decoded = list(original.values()), list(decoded.values())
    if isinstance(original, (list, tuple)):
        errors = [relative_error(x, y) for x, y in zip(original, decoded) if x.is_floating_point()]
        return max(errors, default=0.0)
    x = original.detach().cpu().to(torch.float64).reshape(-1)
    y = decoded.detach().cpu().to(torch.float64).reshape(-1)
    diff, norm = float(torch.linalg.vector_norm(x - y)), float(torch.linalg.vector_norm(x))
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm


# --- composable compression: top-k → quantization → lossless coding --------------------------------
#
# Wire format of a CompressedCodec message (little endian; its size is `len(encode(...))`):
#
#     message  = COMPRESSED_HEADER_BYTES (COMPRESSED_MAGIC u32, tensor count u32, coder u8, 3 pad)
#                + body, passed whole through the lossless coder (0 none, 1 zstd frame, 2 zlib stream)
#     body     = for each tensor: TENSOR_HEADER_BYTES, then
#                - a sparse tensor (top-k kept fewer than all values): the kept count u32 (per row
#                  with the per-row flag: each row keeps the same number), then the index of the
#                  kept values, then the kept values, or
#                - a dense tensor: all its values;
#                values = QUANT_PARAMS_BYTES (zero point f32, step f32) per tensor, or per row with
#                the range-per-row flag, then ceil(count · bits / 8) bytes of codes packed as
#                `pack_codes` does (16-bit codes as uint16); with bits = 0 the values in the
#                tensor's own dtype, as TensorCodec sends them. Non-floating tensors (lengths,
#                labels, masks) are always dense with bits = 0: they travel untouched.
#     tensor header = dtype code u8, ndim u8, bits u8 (0 = not quantized), index kind u8,
#                     flags u8 (bit 0: top-k per row, bit 1: one quantization range per row),
#                     3 pad bytes, up to 6 dims as u32
#     index kind    = 0 dense (no index); 1 / 2 sorted positions as u16 / u32 (flat positions, or
#                     positions within the row with top-k per row); 3 a bitmap of numel bits
#                     (np.packbits, little bit order). The sender picks whichever of u16/u32
#                     positions (narrowest that fits) and bitmap is smaller: positions cost
#                     2–4 bytes per kept value, a bitmap 1/8 byte per element, so a bitmap wins
#                     above a density of 1/16 (u16) or 1/32 (u32).
#
# Kept values are always in ascending flat order (row-major), whatever the index kind.
#
# Top-k (magnitude) sparsification keeps k = ceil(keep · n) values per tensor (n = numel) or per row
# (n = the last dimension), e.g. Aji & Heafield, EMNLP 2017; Lin et al., "Deep Gradient
# Compression", ICLR 2018. Then `quantize` codes the kept values: with `bits`, the per-element
# error is below one step (stochastic rounding, unbiased) or half a step (nearest), so for keep = 1
# ‖x − x̂‖₂ ≤ step · sqrt(n) (per row: sqrt(Σ_rows width · step_row²)). bits = 16 means 16-bit
# min-max codes like every other width (not IEEE float16): one rule for all widths, no overflow of
# large activations, and a step of range / 65535.

COMPRESSED_MAGIC = 0xC051_0003
COMPRESSED_HEADER_BYTES = 12
SPARSE_COUNT_BYTES = 4
LOSSLESS_CODERS = ("none", "zstd", "zlib")
_CODER = {name: i for i, name in enumerate(LOSSLESS_CODERS)}
_DENSE, _POS16, _POS32, _BITMAP = 0, 1, 2, 3
_FLAG_TOPK_ROW, _FLAG_RANGE_ROW = 1, 2
ZSTD_DEFAULT_LEVEL = 3    # zstandard's own default
ZLIB_DEFAULT_LEVEL = 6    # zlib's own default (Z_DEFAULT_COMPRESSION)
_LEVELS = {"zstd": (1, 22), "zlib": (0, 9)}
_KEEP_ROUNDING = 9        # decimals: keep · n is rounded before ceil, so 0.7 · 10 keeps 7, not 8


def kept_count(n: int, keep: float | None) -> int:
    """How many of `n` values top-k keeps: ceil(keep · n), at least 1 of a non-empty set."""
    if keep is None or n == 0:
        return int(n)
    return min(int(n), max(1, math.ceil(round(keep * n, _KEEP_ROUNDING))))


class CompressionConfig(BaseModel):
    """How a message is compressed on the wire: top-k sparsification, then quantization of the
    kept values, then lossless coding of the whole message. Everything unset = TensorCodec's
    raw bytes. Example (scenario YAML): `compression: {keep: 0.1, bits: 4, lossless: zstd}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: float | None = Field(
        None, gt=0, le=1,
        description="top-k keep ratio in (0, 1]: the fraction of each floating tensor's values (or "
                    "of each row's, see keep_per) kept, largest magnitudes first; the others arrive "
                    "as 0. None = dense (keep everything, no index sent).")
    keep_per: Literal["tensor", "row"] = Field(
        "tensor",
        description="unit top-k counts over: 'tensor' keeps ceil(keep·numel) of the whole tensor, "
                    "'row' keeps ceil(keep·width) of every row (row = the last dimension, e.g. one "
                    "token's hidden state).")
    bits: Literal[1, 2, 4, 8, 16] | None = Field(
        None,
        description="width in bits of the min-max codes the kept values are quantized to (1, 2, 4, "
                    "8 or 16; 16 = 16-bit codes, not float16). None = values sent in the tensor's "
                    "own dtype (float32 stays float32).")
    range_per: Literal["tensor", "row"] = Field(
        "tensor",
        description="quantization range: one (zero point, step) pair of float32 per tensor, or "
                    "one per row (per-token scale, for activations with outlier tokens).")
    stochastic_rounding: bool = Field(
        True,
        description="quantize with stochastic (unbiased) rounding drawn from the codec's rng; "
                    "False rounds to nearest. Only used with bits.")
    lossless: Literal["none", "zstd", "zlib"] = Field(
        "none",
        description="lossless coder of the whole encoded message: 'zstd' (zstandard library), "
                    "'zlib' (standard library) or 'none'.")
    level: int | None = Field(
        None,
        description="compression level of the lossless coder: zstd 1..22, zlib 0..9; None = the "
                    "coder's default (zstd 3, zlib 6).")

    @field_validator("bits", mode="before")
    @classmethod
    def _bits_not_bool(cls, bits):
        if isinstance(bits, bool):
            raise ValueError(f"bits={bits!r}; allowed: 1, 2, 4, 8, 16 or null")
        return bits

    @field_validator("range_per")
    @classmethod
    def _range_fits_keep(cls, range_per, info):
        keep, keep_per = info.data.get("keep"), info.data.get("keep_per")
        if range_per == "row" and keep_per == "tensor" and keep is not None and keep < 1:
            raise ValueError("range_per='row' with keep_per='tensor' and keep < 1: rows would keep "
                             "different numbers of values; use keep_per='row' or range_per='tensor'")
        return range_per

    @field_validator("level")
    @classmethod
    def _level_fits_coder(cls, level, info):
        lossless = info.data.get("lossless")
        if level is None or lossless is None:
            return level
        if lossless == "none":
            raise ValueError(f"level={level} given but lossless='none': set lossless to 'zstd' or "
                             "'zlib', or leave level out")
        lo, hi = _LEVELS[lossless]
        if not lo <= level <= hi:
            raise ValueError(f"level={level} for lossless={lossless!r}; allowed: {lo}..{hi}")
        return level

    @property
    def lossy(self) -> bool:
        """Whether decoded values can differ from the sent ones."""
        return (self.keep is not None and self.keep < 1) or self.bits is not None

    @property
    def identity(self) -> bool:
        """Whether this config is exactly TensorCodec's raw framing (nothing to compress)."""
        return not self.lossy and self.lossless == "none"


def make_codec(config: CompressionConfig | None, rng: np.random.Generator | None = None):
    """The codec for a scenario's `compression:` block: TensorCodec when there is nothing to
    compress (so uncompressed runs keep TensorCodec's bytes exactly), else a CompressedCodec."""
    if config is None or config.identity:
        return TensorCodec()
    return CompressedCodec(config, rng)


def _raw_bytes(t: torch.Tensor) -> bytes:
    return t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()


def _from_raw(data, offset: int, dtype: torch.dtype, count: int) -> tuple[torch.Tensor, int]:
    nbytes = count * _itemsize(dtype)
    if not nbytes:
        return torch.empty(0, dtype=dtype), offset
    raw = bytearray(data[offset:offset + nbytes])
    if dtype == torch.bfloat16:
        return torch.frombuffer(raw, dtype=torch.uint8).view(torch.bfloat16), offset + nbytes
    return torch.frombuffer(raw, dtype=dtype), offset + nbytes


class CompressedCodec(Codec):
    """Lossy/lossless codec built from a `CompressionConfig`: top-k by magnitude (per tensor or
    per row, indices really encoded), min-max quantization of the kept values, lossless coding
    (zstd / zlib) of the whole message. Non-floating tensors travel untouched. Stochastic rounding
    draws from `rng` (a named sim stream, e.g. `sim.rng("compression")`), so the bytes are a
    function of the payload and the rng state.

    Distortion: `encode` records, for the message it just made, `last_errors` (relative error of
    each tensor as the receiver will decode it; None for a non-floating tensor) and `last_error`
    (their maximum); `encode_with_error(payload)` returns `(bytes, last_error)` in one call."""

    def __init__(self, config: CompressionConfig | None = None, rng: np.random.Generator | None = None):
        self.config = config if config is not None else CompressionConfig()
        cfg = self.config
        if cfg.bits is not None and cfg.stochastic_rounding and rng is None:
            raise ValueError("stochastic_rounding needs an rng (e.g. sim.rng('compression')); "
                             "pass one or set stochastic_rounding=False")
        self.rng = rng if cfg.bits is not None and cfg.stochastic_rounding else None
        self.coder = cfg.lossless
        if self.coder == "zstd" and zstandard is None:  # pragma: no cover - zstandard is a dependency
            warnings.warn("lossless='zstd' but the zstandard package is not installed: coding with "
                          "zlib instead (pip install zstandard)", RuntimeWarning, stacklevel=2)
            self.coder = "zlib"
        if self.coder == "zstd":
            self._zstd = zstandard.ZstdCompressor(level=cfg.level or ZSTD_DEFAULT_LEVEL)
        self.last_error: float = 0.0
        self.last_errors: list[float | None] = []

    # -- sender --------------------------------------------------------------------------------------
    def error(self, sent, decoded) -> float:
        """The largest relative error ‖x − x̂‖/‖x‖ of a floating tensor of the message (0 if lossless)."""
        return relative_error(sent, decoded) if self.config.lossy else 0.0

    def wire_bytes(self, payload) -> int:
        """`len(encode(payload))` from shapes and dtypes alone: top-k counts, index kinds and code
        widths all follow from them. Raises `ContentDependentSize` with a lossless coder, whose
        output length depends on the values."""
        if self.coder != "none":
            raise ContentDependentSize(f"lossless={self.coder!r}: the coded size depends on the values")
        return COMPRESSED_HEADER_BYTES + sum(self._tensor_wire_bytes(t) for t in _tensors(payload))

    def _tensor_wire_bytes(self, t: torch.Tensor) -> int:
        """What `_encode_tensor` writes for `t`, counted (its branches, in its order)."""
        cfg, numel, size = self.config, t.numel(), t.element_size()
        if not t.is_floating_point() or numel == 0:
            return TENSOR_HEADER_BYTES + numel * size
        width = t.shape[-1] if t.dim() else 1
        rows = numel // width
        topk_row = cfg.keep_per == "row"
        n = width if topk_row else numel
        k = kept_count(n, cfg.keep)
        sparse = k < n
        index = 0
        if sparse:
            count = rows * k if topk_row else k
            positions, bitmap = count * (2 if n <= 1 << 16 else 4), -(-numel // 8)   # the smaller is sent
            index = SPARSE_COUNT_BYTES + (bitmap if bitmap < positions else positions)
        else:
            count = numel
        if cfg.bits:
            range_row = cfg.range_per == "row" and (topk_row or not sparse)
            codes = count * 2 if cfg.bits == 16 else -(-count // (8 // cfg.bits))
            values = QUANT_PARAMS_BYTES * (rows if range_row else 1) + codes
        else:
            values = count * size
        return TENSOR_HEADER_BYTES + index + values

    def encode(self, payload) -> bytes:
        tensors = list(payload.values()) if isinstance(payload, dict) else list(payload)
        parts, errors = [], []
        for t in tensors:
            part, error = self._encode_tensor(t.detach().contiguous().cpu())
            parts.append(part)
            errors.append(error)
        self.last_errors = errors
        self.last_error = max((e for e in errors if e is not None), default=0.0)
        body = b"".join(parts)
        if self.coder == "zstd":
            body = self._zstd.compress(body)
        elif self.coder == "zlib":
            level = self.config.level if self.config.level is not None else ZLIB_DEFAULT_LEVEL
            body = zlib.compress(body, level)
        return struct.pack("<IIB3x", COMPRESSED_MAGIC, len(tensors), _CODER[self.coder]) + body

    def encode_with_error(self, payload) -> tuple[bytes, float]:
        """`encode`, and the largest relative error ‖x − x̂‖/‖x‖ of a floating tensor of the
        message as the receiver decodes it (0 for a lossless config)."""
        data = self.encode(payload)
        return data, self.last_error

    def _encode_tensor(self, t: torch.Tensor) -> tuple[bytes, float | None]:
        cfg = self.config
        dims = _wire_dims(t)
        numel = t.numel()
        if not t.is_floating_point() or numel == 0:
            header = struct.pack("<BBBBB3x6I", _CODE[t.dtype], t.dim(), 0, _DENSE, 0, *dims)
            return header + _raw_bytes(t), (0.0 if t.is_floating_point() else None)
        width = t.shape[-1] if t.dim() else 1
        rows = numel // width
        topk_row = cfg.keep_per == "row"
        k = kept_count(width if topk_row else numel, cfg.keep)
        sparse = k < (width if topk_row else numel)
        flat = t.reshape(-1)

        index = b""
        if sparse:
            if topk_row:
                pos = torch.topk(t.reshape(rows, width).abs(), k, dim=1, sorted=False).indices
                pos = torch.from_numpy(np.sort(pos.numpy(), axis=1))   # (rows, k), ascending in row
                flat_pos = (pos + torch.arange(rows).unsqueeze(1) * width).reshape(-1)
                limit = width
            else:
                pos = torch.from_numpy(np.sort(torch.topk(flat.abs(), k, sorted=False).indices.numpy()))
                flat_pos = pos
                limit = numel
            values = flat[flat_pos]
            count = rows * k if topk_row else k
            bitmap_bytes = -(-numel // 8)
            pos_kind, pos_dtype = (_POS16, "<u2") if limit <= 1 << 16 else (_POS32, "<u4")
            if bitmap_bytes < count * np.dtype(pos_dtype).itemsize:
                kind = _BITMAP
                mask = np.zeros(numel, dtype=bool)
                mask[flat_pos.numpy()] = True
                index = np.packbits(mask, bitorder="little").tobytes()
            else:
                kind = pos_kind
                index = pos.reshape(-1).numpy().astype(pos_dtype).tobytes()
            index = struct.pack("<I", k) + index
        else:
            kind, values, flat_pos = _DENSE, flat, None

        range_row = cfg.range_per == "row" and (topk_row or not sparse)
        flags = (_FLAG_TOPK_ROW if topk_row and sparse else 0) | (_FLAG_RANGE_ROW if range_row and cfg.bits else 0)
        bits = cfg.bits or 0
        if bits:
            per_row_values = values.reshape(rows, -1) if range_row else values
            codes, lo, scale = quantize(per_row_values, bits, self.rng, per_row=range_row)
            if range_row:
                params = torch.stack([lo, scale], dim=1).numpy().astype("<f4").tobytes()
            else:
                params = struct.pack("<ff", lo, scale)
            payload = params + pack_codes(codes, bits)
            decoded_values = dequantize(codes, lo, scale).to(t.dtype)
        else:
            payload = _raw_bytes(values)
            decoded_values = values
        header = struct.pack("<BBBBB3x6I", _CODE[t.dtype], t.dim(), bits, kind, flags, *dims)
        if not (bits or sparse):
            return header + index + payload, 0.0
        if flat_pos is None:
            decoded = decoded_values.reshape(-1)
        else:
            decoded = torch.zeros(numel, dtype=t.dtype)
            decoded[flat_pos] = decoded_values
        return header + index + payload, relative_error(flat, decoded)

    # -- receiver ------------------------------------------------------------------------------------
    def decode(self, data: bytes, like):
        """Rebuild the payload from bytes; `like` gives the structure (dict keys) the sender used.
        Dropped values come back as 0."""
        magic, count, coder = struct.unpack_from("<IIB3x", data, 0)
        if magic != COMPRESSED_MAGIC:
            raise ValueError("not a cosim compressed message")
        body = memoryview(data)[COMPRESSED_HEADER_BYTES:]
        if coder == _CODER["zstd"]:
            if zstandard is None:  # pragma: no cover
                raise RuntimeError("message coded with zstd but the zstandard package is not installed")
            body = zstandard.ZstdDecompressor().decompress(body)
        elif coder == _CODER["zlib"]:
            body = zlib.decompress(body)
        else:
            body = bytes(body)
        offset, tensors = 0, []
        for _ in range(count):
            t, offset = self._decode_tensor(body, offset)
            tensors.append(t)
        if isinstance(like, dict):
            return dict(zip(like.keys(), tensors))
        return tensors

    @staticmethod
    def _decode_tensor(body: bytes, offset: int) -> tuple[torch.Tensor, int]:
        code, ndim, bits, kind, flags, *dims = struct.unpack_from("<BBBBB3x6I", body, offset)
        offset += TENSOR_HEADER_BYTES
        dtype, shape = _DTYPES[code], dims[:ndim]
        numel = math.prod(shape)
        width = shape[-1] if ndim else 1
        rows = numel // width if width else 0
        flat_pos = None
        if kind == _DENSE:
            count = numel
        else:
            (k,), offset = struct.unpack_from("<I", body, offset), offset + SPARSE_COUNT_BYTES
            count = rows * k if flags & _FLAG_TOPK_ROW else k
            if kind == _BITMAP:
                nbytes = -(-numel // 8)
                mask = np.unpackbits(np.frombuffer(body, np.uint8, nbytes, offset), count=numel, bitorder="little")
                flat_pos = torch.from_numpy(np.flatnonzero(mask))
            else:
                pos_dtype = "<u2" if kind == _POS16 else "<u4"
                nbytes = count * np.dtype(pos_dtype).itemsize
                pos = torch.from_numpy(np.frombuffer(body, pos_dtype, count, offset).astype(np.int64))
                if flags & _FLAG_TOPK_ROW:
                    pos = (pos.reshape(rows, k) + torch.arange(rows).unsqueeze(1) * width).reshape(-1)
                flat_pos = pos
            offset += nbytes
        if bits:
            n_params = rows if flags & _FLAG_RANGE_ROW else 1
            params = np.frombuffer(body, dtype="<f4", count=2 * n_params, offset=offset).reshape(n_params, 2)
            offset += QUANT_PARAMS_BYTES * n_params
            nbytes = -(-count * bits // 8)
            codes = unpack_codes(body[offset:offset + nbytes], bits, count)
            offset += nbytes
            if flags & _FLAG_RANGE_ROW:
                lo, scale = torch.from_numpy(params[:, 0].copy()), torch.from_numpy(params[:, 1].copy())
            else:
                lo, scale = float(params[0, 0]), float(params[0, 1])
            values = dequantize(codes, lo, scale).to(dtype)
        else:
            values, offset = _from_raw(body, offset, dtype, count)
        if flat_pos is None:
            return values.reshape(shape), offset
        out = torch.zeros(numel, dtype=dtype)
        out[flat_pos] = values
        return out.reshape(shape), offset
