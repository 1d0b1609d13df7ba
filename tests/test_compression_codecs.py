"""Codecs on real tensors: what a researcher relies on when a scenario sets `compression:` —
the bytes on the wire are the real encoded message, shrink as keep/bits shrink, the receiver gets
the sender's structure back, and the distortion it sees is measured, not assumed."""
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cosim.learn.compress import (COMPRESSED_HEADER_BYTES, TENSOR_HEADER_BYTES, CompressedCodec,
                                  CompressionConfig, TensorCodec, QuantCodec, kept_count, make_codec,
                                  relative_error)

ACTIVATION_SHAPE = (4, 16, 96)     # (batch, tokens, hidden): a small split-learning activation


def codec(seed: int = 0, **fields) -> CompressedCodec:
    return CompressedCodec(CompressionConfig(**fields), np.random.default_rng(seed))


def round_trip(c, payload):
    data, error = c.encode_with_error(payload)
    return data, error, c.decode(data, like=payload)


def activation(seed: int = 0, shape=ACTIVATION_SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def distinct_magnitudes(shape, seed: int = 0) -> torch.Tensor:
    """Values whose magnitudes are all different (so "the k largest" is one well-defined set)."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    mags = (torch.randperm(n, generator=g).float() + 1.0) / n
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (mags * signs).reshape(shape)


# --- lossless ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lossless", ["zstd", "zlib"])
def test_lossless_only_config_round_trips_exactly(lossless):
    x = {"h": activation(), "mask": torch.ones(4, 16, dtype=torch.bool)}
    data, error, y = round_trip(codec(lossless=lossless), x)
    assert torch.equal(y["h"], x["h"]) and torch.equal(y["mask"], x["mask"])
    assert error == 0.0


def test_keep_one_and_no_bits_carries_tensor_codec_values():
    x = [activation(), activation(1).half(), activation(2).to(torch.bfloat16), activation(3).double(),
         torch.arange(7, dtype=torch.int64)]
    reference = TensorCodec().decode(TensorCodec().encode(x), like=x)
    _, error, y = round_trip(codec(keep=1.0), x)
    for a, b in zip(reference, y):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert error == 0.0


def _bits(t: torch.Tensor) -> list[int]:
    return t.reshape(-1).view(torch.uint8).tolist()


def test_tensor_codec_round_trip_is_what_its_bytes_give_the_receiver():
    """A send through the default codec skips writing and parsing the bytes (Codec.round_trip):
    the byte count and every decoded value must be what the real message gives, bit for bit."""
    wide = activation(4, (3, 5)).t()                      # not contiguous
    special = torch.tensor([float("nan"), -0.0, float("inf"), 1e-45])
    grad = activation(5, (2, 3)).requires_grad_()
    for x in ({"h": activation(), "mask": torch.rand(4, 16) > 0.5, "w": wide, "g": grad},
              [activation(1).half(), activation(2).to(torch.bfloat16), activation(3).double(),
               torch.arange(7, dtype=torch.int32), torch.zeros(0, 8), torch.tensor(2.5), special],
              (torch.randn(2, 1, 3, 1, 2, 1), torch.arange(9, dtype=torch.uint8))):
        c = TensorCodec()
        data = c.encode(x)
        reference = c.decode(data, like=x)
        nbytes, y, error = c.round_trip(x)
        assert nbytes == len(data) and error == 0.0 and type(y) is type(reference)
        if isinstance(x, dict):
            assert list(y) == list(reference)
            y, reference = list(y.values()), list(reference.values())
        for a, b in zip(reference, y):
            assert a.dtype == b.dtype and a.shape == b.shape and a.is_contiguous() and b.is_contiguous()
            assert not b.requires_grad and _bits(a) == _bits(b)
        for sent, got in zip(x.values() if isinstance(x, dict) else x, y):   # a copy, not the sender's tensor
            assert got.untyped_storage().data_ptr() != sent.untyped_storage().data_ptr() or got.numel() == 0
    with pytest.raises(ValueError, match="at most 6"):
        TensorCodec().round_trip([torch.zeros((1,) * 7)])
    with pytest.raises(KeyError):
        TensorCodec().round_trip([torch.zeros(2, dtype=torch.complex64)])


def test_uncompressed_scenario_keeps_tensor_codec_bytes():
    x = {"h": activation()}
    assert isinstance(make_codec(None), TensorCodec)
    assert make_codec(CompressionConfig(keep=1.0)).encode(x) == TensorCodec().encode(x)
    assert isinstance(make_codec(CompressionConfig(bits=8), np.random.default_rng(0)), CompressedCodec)


def test_zstd_shrinks_a_compressible_tensor_and_round_trips():
    x = torch.zeros(64, 384)
    x[::7, ::5] = activation(shape=(10, 77))                  # 3 % of entries nonzero
    plain, _, _ = round_trip(codec(), [x])
    coded, _, y = round_trip(codec(lossless="zstd"), [x])
    assert len(coded) < len(plain) / 5
    assert torch.equal(y[0], x)
    # sparse low-bit codes compress too: the bitmap index and 4-bit codes are far from random bytes
    sparse, _, _ = round_trip(codec(keep=0.1, bits=4), [activation()])
    sparse_zstd, _, y = round_trip(codec(keep=0.1, bits=4, lossless="zstd"), [activation()])
    assert len(sparse_zstd) < 0.9 * len(sparse)
    assert torch.count_nonzero(y[0]) <= kept_count(y[0].numel(), 0.1)


# --- top-k ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.001, 0.05, 0.1, 0.5, 0.7, 0.99])
def test_top_k_per_tensor_keeps_exactly_the_ceil_keep_n_largest_magnitudes(keep):
    x = distinct_magnitudes(ACTIVATION_SHAPE)
    n = x.numel()
    k = math.ceil(round(keep * n, 9))
    _, _, (y,) = round_trip(codec(keep=keep), [x])
    kept = y != 0
    assert int(kept.sum()) == k == kept_count(n, keep)
    threshold = x.abs().reshape(-1).topk(k).values[-1]
    assert torch.equal(kept, x.abs() >= threshold)
    assert torch.equal(y[kept], x[kept])                       # kept values exact without bits


def test_kept_count_is_ceil_of_keep_times_n():
    assert kept_count(10, 0.7) == 7                            # not 8 from 0.7 · 10 = 7.000000000000001
    assert kept_count(10, 0.25) == 3
    assert kept_count(1000, 0.1) == 100
    assert kept_count(3, 1e-6) == 1                            # never nothing of a non-empty tensor
    assert kept_count(5, None) == 5


def test_top_k_per_row_keeps_each_rows_largest_magnitudes():
    x = distinct_magnitudes((3, 5, 40))
    keep = 0.1
    _, _, (y,) = round_trip(codec(keep=keep, keep_per="row"), [x])
    rows_x, rows_y = x.reshape(-1, 40), y.reshape(-1, 40)
    k = math.ceil(keep * 40)
    assert torch.equal((rows_y != 0).sum(dim=1), torch.full((15,), k))
    for rx, ry in zip(rows_x, rows_y):
        top = set(rx.abs().topk(k).indices.tolist())
        assert set(torch.nonzero(ry).reshape(-1).tolist()) == top
        assert torch.equal(ry[list(top)], rx[list(top)])


def test_per_row_top_k_spreads_the_budget_over_tokens_unlike_per_tensor():
    x = activation(shape=(8, 64))
    x[0] *= 100                                                # one "massive" token
    _, _, (per_tensor,) = round_trip(codec(keep=0.1), [x])
    _, _, (per_row,) = round_trip(codec(keep=0.1, keep_per="row"), [x])
    assert int((per_tensor[1:] != 0).sum()) == 0               # the budget all went to token 0
    assert bool(((per_row[1:] != 0).sum(dim=1) == math.ceil(0.1 * 64)).all())


# --- size and distortion ----------------------------------------------------------------------------

def test_wire_bytes_shrink_with_keep_and_bits_to_the_expected_size():
    x = [activation()]
    n = x[0].numel()                                           # 6144 values, 24 KiB as float32
    size = {cfg: len(codec(**dict(cfg)).encode(x)) for cfg in [
        (), (("bits", 16),), (("bits", 8),), (("bits", 4),), (("bits", 2),), (("bits", 1),),
        (("keep", 0.5),), (("keep", 0.1),), (("keep", 0.01),), (("keep", 0.1), ("bits", 4))]}
    dense = size[()]
    assert dense == COMPRESSED_HEADER_BYTES + TENSOR_HEADER_BYTES + 4 * n
    for bits in (16, 8, 4, 2, 1):
        assert size[(("bits", bits),)] == pytest.approx(n * bits / 8, rel=0.01, abs=64)
    assert dense > size[(("bits", 16),)] > size[(("bits", 8),)] > size[(("bits", 4),)] \
        > size[(("bits", 2),)] > size[(("bits", 1),)]
    # kept float32 values + an index (bitmap of n bits, or 2-byte positions when sparser than 1/16)
    assert size[(("keep", 0.5),)] == pytest.approx(0.5 * n * 4 + n / 8, rel=0.02)
    assert size[(("keep", 0.1),)] == pytest.approx(0.1 * n * 4 + n / 8, rel=0.02)
    assert size[(("keep", 0.01),)] == pytest.approx(0.01 * n * (4 + 2), rel=0.2, abs=64)
    assert dense > size[(("keep", 0.5),)] > size[(("keep", 0.1),)] > size[(("keep", 0.01),)]
    assert size[(("keep", 0.1), ("bits", 4))] == pytest.approx(0.1 * n / 2 + n / 8, rel=0.05, abs=64)


def test_relative_error_grows_as_keep_and_bits_shrink():
    x = [activation()]
    err = lambda **f: codec(**f).encode_with_error(x)[1]      # noqa: E731
    by_bits = [err(bits=b) for b in (16, 8, 4, 2, 1)]
    by_keep = [err(keep=k) for k in (1.0, 0.5, 0.1, 0.01)]
    assert by_bits == sorted(by_bits) and len(set(by_bits)) == 5
    assert by_keep == sorted(by_keep) and by_keep[0] == 0.0 and len(set(by_keep)) == 4
    assert by_bits[0] < 1e-3 and 0.005 < by_bits[1] < 0.05   # 16-bit codes ≈ exact, 8-bit ≈ 1 %
    assert err(keep=0.1, bits=4) > err(keep=0.1) > 0


def test_sender_error_is_what_the_receiver_measures():
    x = {"h": activation(), "grad": activation(1, (96, 96)) * 1e-3, "ids": torch.arange(5)}
    c = codec(keep=0.2, keep_per="row", bits=4, range_per="row", lossless="zstd")
    data, error, y = round_trip(c, x)
    measured = [relative_error(x[k], y[k]) for k in ("h", "grad")]
    assert c.last_errors[:2] == pytest.approx(measured, rel=1e-12) and c.last_errors[2] is None
    assert error == c.last_error == pytest.approx(max(measured), rel=1e-12)
    assert error == pytest.approx(relative_error(x, y), rel=1e-12)


def test_existing_codecs_report_their_error_too():
    x = [activation()]
    assert TensorCodec().encode_with_error(x) == (TensorCodec().encode(x), 0.0)
    q = QuantCodec(8)
    data, error = q.encode_with_error(x)
    assert data == q.encode(x) and error == pytest.approx(relative_error(x[0], q.decode(data, x)[0]))
    assert 0 < error < 0.02


def test_relative_error_definition():
    x = torch.tensor([3.0, 4.0])
    assert relative_error(x, torch.tensor([3.0, 3.0])) == pytest.approx(0.2)
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_error(torch.zeros(3), torch.ones(3)) == math.inf


def test_per_row_ranges_keep_ordinary_tokens_precise_beside_an_outlier_token():
    x = activation(shape=(16, 96))
    x[0] *= 1000                                               # a "massive activation" token
    _, _, (per_tensor,) = round_trip(codec(bits=8), [x])
    _, _, (per_row,) = round_trip(codec(bits=8, range_per="row"), [x])
    assert relative_error(x[1:], per_tensor[1:]) > 1.0          # a step of ~30 swamps values of ~1
    assert relative_error(x[1:], per_row[1:]) < 0.02            # 8-bit precision for every token


# --- what travels, and how ---------------------------------------------------------------------------

def test_non_float_tensors_travel_untouched_and_structure_is_kept():
    payload = {"h": activation(), "lengths": torch.tensor([16, 9, 3, 1], dtype=torch.int32),
               "labels": torch.tensor([0, 2, 1, 1]), "mask": torch.rand(4, 16) > 0.5,
               "bytes": torch.arange(9, dtype=torch.uint8)}
    _, _, y = round_trip(codec(keep=0.05, bits=2, lossless="zstd"), payload)
    assert list(y) == list(payload)
    for key in ("lengths", "labels", "mask", "bytes"):
        assert y[key].dtype == payload[key].dtype and torch.equal(y[key], payload[key])
    assert y["h"].shape == payload["h"].shape and y["h"].dtype == torch.float32
    as_list = list(payload.values())
    y_list = codec(keep=0.05, bits=2).decode(codec(keep=0.05, bits=2).encode(as_list), like=as_list)
    assert isinstance(y_list, list) and [t.shape for t in y_list] == [t.shape for t in as_list]


def test_edge_shapes_round_trip():
    payload = [torch.tensor(2.5), torch.zeros(0, 8), torch.randn(1), torch.randn(2, 1, 3, 1, 2, 1)]
    _, _, y = round_trip(codec(keep=0.5, keep_per="row", bits=4, lossless="zlib"), payload)
    assert [t.shape for t in y] == [t.shape for t in payload]
    assert float(y[0]) == pytest.approx(2.5)                   # a single value is its own range


def test_same_seed_same_bytes_and_different_seed_different_rounding():
    x = [activation()]
    cfg = dict(keep=0.3, bits=4, lossless="zstd")
    assert codec(7, **cfg).encode(x) == codec(7, **cfg).encode(x)
    assert codec(7, **cfg).encode(x) != codec(8, **cfg).encode(x)
    nearest = dict(cfg, stochastic_rounding=False)
    assert CompressedCodec(CompressionConfig(**nearest)).encode(x) == CompressedCodec(CompressionConfig(**nearest)).encode(x)


def test_stochastic_rounding_without_an_rng_is_refused():
    with pytest.raises(ValueError, match="rng"):
        CompressedCodec(CompressionConfig(bits=4))


# --- bad configs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field", [
    ({"keep": 0}, "keep"), ({"keep": 1.5}, "keep"), ({"keep": -0.1}, "keep"),
    ({"bits": 3}, "bits"), ({"bits": 32}, "bits"), ({"bits": True}, "bits"),
    ({"lossless": "gzip"}, "lossless"), ({"keep_per": "column"}, "keep_per"),
    ({"level": 3}, "level"), ({"lossless": "zlib", "level": 12}, "level"),
    ({"keep": 0.1, "range_per": "row"}, "range_per"), ({"topk": 0.1}, "topk"),
])
def test_bad_config_is_refused_naming_the_field(fields, field):
    with pytest.raises(ValidationError) as info:
        CompressionConfig(**fields)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_scenario_style_config_is_accepted():
    cfg = CompressionConfig.model_validate({"keep": 0.1, "bits": 4, "lossless": "zstd"})
    assert cfg.lossy and not cfg.identity
    assert CompressionConfig().identity


# --- property: any shape, dtype, keep, bits ---------------------------------------------------------

def check_codec_property(shape, dtype, bits, keep, keep_per, range_per, stochastic, lossless, magnitude, seed):
    """decode(encode(x)) has x's shape and dtype, at most the kept count of nonzeros, the sender's
    reported error, and (keeping everything) an error within the quantizer's guarantee."""
    if range_per == "row" and keep_per == "tensor" and keep is not None and keep < 1:
        range_per = "tensor"                                   # refused combination (tested above)
    cfg = CompressionConfig(keep=keep, keep_per=keep_per, bits=bits, range_per=range_per,
                            stochastic_rounding=stochastic, lossless=lossless)
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * magnitude).to(dtype)
    c = CompressedCodec(cfg, np.random.default_rng(seed))
    data, error, (y,) = round_trip(c, [x])
    assert y.shape == x.shape and y.dtype == x.dtype
    assert error == pytest.approx(relative_error(x, y), rel=1e-12, abs=0)
    width = x.shape[-1]
    k = kept_count(width, keep) * (x.numel() // width) if keep_per == "row" else kept_count(x.numel(), keep)
    assert int(torch.count_nonzero(y)) <= k
    if keep not in (None, 1.0):
        return
    # keep everything: the only error is quantization's, below one step per element
    # (half a step rounding to nearest), plus the rounding of the result to x's dtype
    xf = x.double()
    if bits is None:
        assert torch.equal(y, x)
        return
    rows = xf.reshape(-1, width) if range_per == "row" else xf.reshape(1, -1)
    step = (rows.amax(dim=1) - rows.amin(dim=1)) / ((1 << bits) - 1)
    per_element = step if stochastic else step / 2
    bound = math.sqrt(float((per_element ** 2 * rows.shape[1]).sum()))
    norm = float(torch.linalg.vector_norm(xf))
    tolerance = torch.finfo(dtype).eps * norm + 1e-6 * math.sqrt(x.numel()) * float(xf.abs().max())
    assert float(torch.linalg.vector_norm(xf - y.double())) <= bound * (1 + 1e-4) + tolerance


try:
    from hypothesis import given, settings, strategies as st
except ImportError:                                            # the `test` extra installs it
    given = None

if given is None:
    def test_property_shapes_dtypes_and_quantization_bound():
        pytest.skip("hypothesis not installed (pip install -e '.[test]')")
else:
    @settings(max_examples=80, deadline=None)
    @given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
           dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
           bits=st.sampled_from([None, 1, 2, 4, 8, 16]), keep=st.sampled_from([None, 1.0, 0.5, 0.1]),
           keep_per=st.sampled_from(["tensor", "row"]), range_per=st.sampled_from(["tensor", "row"]),
           stochastic=st.booleans(), lossless=st.sampled_from(["none", "zstd", "zlib"]),
           magnitude=st.sampled_from([1e-2, 1.0, 1e2]), seed=st.integers(0, 2**16))
    def test_property_shapes_dtypes_and_quantization_bound(**case):
        check_codec_property(**case)
