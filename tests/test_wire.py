"""Wire format: bit-exact round trips; truncated or corrupted buffers always rejected."""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiflow_comm.codec import QuantizedTensor, WireFormatError, dequantize, quantize
from aiflow_comm.codec.wire import VERSION
from aiflow_comm.kernels import available_backends

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def quantized_tensors(draw) -> QuantizedTensor:
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    seed = draw(st.integers(0, 2**31))
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)
    return quantize(
        x,
        draw(st.sampled_from([2, 4, 8])),
        draw(st.integers(1, 12)),
        symmetric=draw(st.booleans()),
        backend="torch",
    )


def _same(a: QuantizedTensor, b: QuantizedTensor) -> bool:
    fields = ("shape", "dtype", "bits", "group_size", "scheme")
    zero_points = (a.zero_points is None and b.zero_points is None) or torch.equal(
        a.zero_points, b.zero_points
    )
    return (
        all(getattr(a, f) == getattr(b, f) for f in fields)
        and torch.equal(a.codes, b.codes)
        and torch.equal(a.scales, b.scales)
        and zero_points
    )


@SETTINGS
@given(quantized_tensors())
def test_round_trip_is_bit_exact(q):
    back = QuantizedTensor.from_bytes(q.to_bytes())
    assert _same(q, back)
    assert torch.equal(dequantize(back), dequantize(q))
    assert back.to_bytes() == q.to_bytes()


@SETTINGS
@given(quantized_tensors(), st.data())
def test_truncated_buffers_are_rejected(q, data):
    buf = q.to_bytes()
    cut = data.draw(st.integers(0, len(buf) - 1))
    with pytest.raises(WireFormatError):
        QuantizedTensor.from_bytes(buf[:cut])


@SETTINGS
@given(quantized_tensors(), st.data())
def test_corrupted_bytes_are_rejected(q, data):
    buf = bytearray(q.to_bytes())
    position = data.draw(st.integers(0, len(buf) - 1))
    buf[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(WireFormatError):
        QuantizedTensor.from_bytes(bytes(buf))


@SETTINGS
@given(quantized_tensors(), st.binary(min_size=1, max_size=16))
def test_appended_bytes_are_rejected(q, extra):
    with pytest.raises(WireFormatError):
        QuantizedTensor.from_bytes(q.to_bytes() + extra)


def _with_valid_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (4, bytes([VERSION + 1]), "version"),
        (5, bytes([7]), "scheme=7"),
        (6, bytes([3]), "bits=3"),
        (7, bytes([9]), "dtype=9"),
        (8, struct.pack("<I", 0), "group_size=0"),
        (8, struct.pack("<I", 2**31), "group_size=2147483648"),
        (12, bytes([0]), "ndim=0"),
        (16, struct.pack("<Q", 4), "needs"),
    ],
)
def test_header_fields_are_checked_even_with_a_valid_checksum(offset, value, match):
    body = quantize(torch.randn(3, 10), 4, 4).to_bytes()[:-4]
    corrupted = body[:offset] + value + body[offset + len(value) :]
    with pytest.raises(WireFormatError, match=match):
        QuantizedTensor.from_bytes(_with_valid_crc(corrupted))


def test_header_layout_is_little_endian_as_documented():
    q = quantize(torch.randn(2, 300), 4, 128, symmetric=False)
    buf = q.to_bytes()
    assert buf[:4] == b"AIFQ" and buf[4] == VERSION and buf[5] == 1 and buf[6] == 4
    assert struct.unpack_from("<I", buf, 8)[0] == 128 and buf[12] == 2
    assert struct.unpack_from("<2Q", buf, 16) == (2, 300)
    assert len(buf) == 16 + 16 + q.nbytes + 4
    assert struct.unpack_from("<I", buf, len(buf) - 4)[0] == zlib.crc32(buf[:-4])


def test_non_buffer_input_raises_type_error():
    with pytest.raises(TypeError, match="buf"):
        QuantizedTensor.from_bytes("AIFQ")


def test_non_finite_scales_are_neither_encoded_nor_decoded():
    x = torch.randn(2, 8)
    x[1, 2] = float("nan")
    for symmetric, field in ((True, "scales"), (False, "scales")):
        q = quantize(x, 8, 4, symmetric=symmetric, check_finite=False)
        with pytest.raises(ValueError, match=f"{field} hold NaN or Inf"):
            q.to_bytes()
    q = quantize(x.nan_to_num(), 8, 4, symmetric=False)
    broken = QuantizedTensor(
        q.codes, q.scales, q.zero_points.clone().fill_(float("inf")), q.shape, q.dtype, 8, 4,
        "asymmetric",
    )  # fmt: skip
    with pytest.raises(ValueError, match="zero points hold NaN or Inf"):
        broken.to_bytes()
    # A buffer whose CRC is valid but whose first scale is NaN (no encoder writes one).
    good = bytearray(q.to_bytes())
    scales_at = 16 + 8 * 2 + q.codes.numel()
    good[scales_at : scales_at + 4] = struct.pack("<f", float("nan"))
    good[-4:] = struct.pack("<I", zlib.crc32(bytes(good[:-4])))
    with pytest.raises(WireFormatError, match="scale is NaN or Inf"):
        QuantizedTensor.from_bytes(bytes(good))


def _message(shape: tuple[int, ...], scales: bytes = b"") -> bytes:
    """A symmetric 8-bit AIFQ message of ``shape``, group 4, zero payload but ``scales``."""
    body = b"AIFQ" + bytes([VERSION, 0, 8, 0]) + struct.pack("<I", 4) + bytes([len(shape), 0, 0, 0])
    body += struct.pack(f"<{len(shape)}Q", *shape) + scales
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("shape", [(0, 2**64 - 1), (2**63, 0), (2**33, 2**33, 0)])
def test_shapes_larger_than_a_tensor_are_wire_format_errors(shape):
    with pytest.raises(WireFormatError, match="larger than a tensor can be"):
        QuantizedTensor.from_bytes(_message(shape))


def test_an_empty_tensor_with_a_huge_row_decodes_without_allocating_the_row():
    # (0, 2**50): a valid message without payload; every backend decodes it to an empty tensor
    # (the reference once built index tensors as long as a row: petabytes).
    q = QuantizedTensor.from_bytes(_message((0, 2**50)))
    for backend in available_backends("cpu"):
        assert q.dequantize(backend=backend).shape == (0, 2**50)
    empty = torch.empty(0, 2**50)
    for symmetric in (True, False):
        encoded = quantize(empty, 4, 8, symmetric=symmetric, backend="torch")
        assert encoded.codes.shape == (0, 2**49) and encoded.scales.shape == (0, 2**47)
        assert dequantize(encoded, backend="torch").shape == (0, 2**50)


def test_negative_scales_and_strided_views():
    good = quantize(torch.randn(1, 4), 8, 4).to_bytes()
    body = bytearray(good[:-4])
    body[-4:] = struct.pack("<f", -1.0)  # the one scale
    with pytest.raises(WireFormatError, match="a scale is negative"):
        QuantizedTensor.from_bytes(bytes(body) + struct.pack("<I", zlib.crc32(bytes(body))))
    q = quantize(torch.randn(1, 4), 8, 4)  # what the reader rejects is never written
    negative = QuantizedTensor(q.codes, -q.scales, None, q.shape, q.dtype, 8, 4)
    with pytest.raises(ValueError, match="scales must be >= 0"):
        negative.to_bytes()
    strided = memoryview(bytes(b for byte in good for b in (byte, 0)))[::2]
    assert not strided.c_contiguous
    assert QuantizedTensor.from_bytes(strided).to_bytes() == good
