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
