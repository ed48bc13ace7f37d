"""Top-k sparsification: selection, exact round trips, Triton == reference, the AIFS wire format."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aiflow_comm.codec import (
    QuantizedTensor,
    SparseQuantizedTensor,
    WireFormatError,
    dequantize,
    from_bytes,
    quantize,
    sparsify,
)
from aiflow_comm.codec.sparse_wire import SPARSE_VERSION
from aiflow_comm.kernels import available_backends, topk_dequantize_packed, topk_quantize_packed
from aiflow_comm.kernels.topk import _topk_quantize_op
from aiflow_comm.kernels.topk_reference import topk_dequantize_reference, topk_quantize_reference

SETTINGS = settings(max_examples=60, deadline=None)
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _triton_devices() -> list[str]:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [d for d in devices if "triton" in available_backends(d)]


TRITON = pytest.mark.parametrize("device", _triton_devices())


def _kept_numpy(x: torch.Tensor, k: int, group_size: int) -> tuple[np.ndarray, list[list[int]]]:
    """Independent selection in float64: the kept mask ``(R, D)``, each row's in-group indices."""
    rows = x.reshape(-1, x.shape[-1]).to(torch.float64).numpy()
    mask = np.zeros(rows.shape, dtype=bool)
    indices = []
    for r, row in enumerate(rows):
        row_indices = []
        for start in range(0, row.shape[0], group_size):
            magnitude = np.abs(row[start : start + group_size])
            position = np.arange(magnitude.shape[0])
            order = np.lexsort((position, -magnitude))  # larger first, then lower index
            chosen = np.sort(order[:k])
            mask[r, start + chosen] = True
            row_indices.extend(chosen.tolist())
        indices.append(row_indices)
    return mask, indices


def _tied_input(rows: int, length: int, seed: int) -> torch.Tensor:
    """Values from a small set (many ties in magnitude, signed zeros included) and some noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (rows, length), generator=g).float()
    x = torch.where((x == 0) & (torch.arange(length) % 2 == 1), -0.0, x)
    noisy = torch.rand(rows, length, generator=g) < 0.3
    return torch.where(noisy, torch.randn(rows, length, generator=g) * 4, x)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 17), (2, 130)])
@pytest.mark.parametrize(("group_size", "k"), [(1, 1), (4, 1), (4, 3), (5, 2), (8, 8), (16, 40)])
def test_selection_matches_an_independent_float64_implementation(shape, group_size, k):
    x = _tied_input(*shape, seed=shape[1] * 31 + group_size * 7 + k)
    mask, indices = _kept_numpy(x, k, group_size)
    s = sparsify(x, k, 8, group_size, backend="torch")
    assert s.indices.tolist() == indices
    dense = s.dequantize()
    assert torch.equal(dense[torch.from_numpy(~mask)], torch.zeros(int((~mask).sum())))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_round_trip_is_exact_for_the_kept_values_and_zero_elsewhere(dtype, bits, symmetric):
    x = (torch.randn(3, 2, 45, generator=torch.Generator().manual_seed(bits)) * 5).to(dtype)
    group_size, k = 16, 5  # 45 = 16 + 16 + 13: a short last group
    mask, _ = _kept_numpy(x, k, group_size)
    kept = torch.from_numpy(mask).view(x.shape)
    s = SparseQuantizedTensor.from_bytes(
        sparsify(x, k, bits, group_size, symmetric=symmetric).to_bytes()
    )
    # The kept values alone, quantized in groups of k: what each kept position must decode to.
    alone = quantize(x[kept].view(6, 15), bits, k, symmetric=symmetric)
    dense = s.dequantize()
    assert dense.dtype == dtype and dense.shape == x.shape
    assert torch.equal(dense[kept], dequantize(alone).flatten())
    assert torch.equal(dense[~kept], torch.zeros(int((~kept).sum()), dtype=dtype))
    assert torch.equal(s.codes, alone.codes) and torch.equal(s.scales, alone.scales)


@pytest.mark.parametrize("symmetric", [True, False])
def test_k_at_least_the_group_size_is_group_quantization(symmetric):
    x = torch.randn(4, 37)
    dense = quantize(x, 4, 8, symmetric=symmetric)
    for k in (8, 9, 1000):
        s = sparsify(x, k, 4, 8, symmetric=symmetric)
        assert s.indices.tolist() == [list(range(8)) * 4 + list(range(5))] * 4
        assert torch.equal(s.codes, dense.codes) and torch.equal(s.scales, dense.scales)
        assert torch.equal(s.dequantize(), dequantize(dense))


def test_all_zero_groups_keep_the_first_indices_and_decode_to_zeros():
    s = sparsify(torch.zeros(2, 10), 3, 4, 4)
    assert s.indices.tolist() == [[0, 1, 2, 0, 1, 2, 0, 1]] * 2
    assert torch.equal(s.scales, torch.zeros(2, 3))
    assert torch.equal(s.dequantize(), torch.zeros(2, 10))


def test_symmetric_scale_is_the_whole_groups_scale():
    x = torch.randn(5, 64)
    assert torch.equal(sparsify(x, 3, 8, 16).scales, quantize(x, 8, 16).scales)


def test_large_groups_use_int16_indices_and_empty_tensors_work():
    x = torch.randn(2, 700)
    s = sparsify(x, 50, 8, 300)
    assert s.indices.dtype == torch.int16 and s.indices.shape == (2, 150)
    assert torch.equal(s.indices.long(), torch.tensor(_kept_numpy(x, 50, 300)[1]))
    assert from_bytes(s.to_bytes()).dequantize().shape == (2, 700)
    for shape in [(0, 5), (3, 0)]:
        empty = sparsify(torch.zeros(shape), 2, 4, 4)
        assert SparseQuantizedTensor.from_bytes(empty.to_bytes()).dequantize().shape == shape


def test_an_empty_tensor_with_a_huge_row_neither_sparsifies_nor_decodes_the_row():
    # No rows: nothing is allocated per value of a row (the reference once built index tensors
    # as long as a row, and a valid AIFS message of shape (0, 2**50) could not be decoded).
    s = sparsify(torch.empty(0, 2**50), 4, 8, 128, backend="torch")
    assert s.indices.shape == s.codes.shape == (0, 2**45) and s.scales.shape == (0, 2**43)
    message = SparseQuantizedTensor.from_bytes(s.to_bytes())
    for backend in available_backends("cpu"):
        assert message.dequantize(backend=backend).shape == (0, 2**50)


def test_a_group_wider_than_the_row_is_the_row_with_its_own_index_width():
    x = torch.randn(3, 50)
    whole = topk_quantize_packed(x, 5, 8, 50, backend="torch")
    wide = topk_quantize_packed(x, 5, 8, 2**30, backend="torch")  # nothing padded to 2**30
    assert wide[0].dtype == torch.int32 and torch.equal(wide[0].long(), whole[0].long())
    assert all(torch.equal(a, b) for a, b in zip(wide[1:], whole[1:], strict=True))
    decoded = topk_dequantize_packed(*wide, k=5, bits=8, group_size=2**30, row_len=50)
    assert torch.equal(
        decoded, topk_dequantize_packed(*whole, k=5, bits=8, group_size=50, row_len=50)
    )


def test_other_decode_backends_give_the_same_tensor():
    s = sparsify(torch.randn(3, 50), 4, 4, 16, symmetric=False)
    expect = s.dequantize(backend="torch")
    for backend in available_backends("cpu"):
        assert torch.equal(s.dequantize(torch.float16, backend=backend), expect.half())


def test_fake_implementation_and_schema():
    x = torch.randn(3, 20)
    for symmetric in (True, False):
        torch.library.opcheck(_topk_quantize_op.op, (x, 3, 4, 8, symmetric, "torch"))


# Triton: exactly the reference's indices, codes, scales and zero points.


def _assert_triton_is_reference(x, k, bits, group_size, symmetric):
    expect = topk_quantize_reference(x.cpu(), k, bits, group_size, symmetric)
    got = topk_quantize_packed(x, k, bits, group_size, symmetric, backend="triton")
    for name, e, g in zip(("indices", "codes", "scales", "zero_points"), expect, got, strict=True):
        assert e.dtype == g.dtype and torch.equal(e, g.cpu()), (
            f"{name} differ: {tuple(x.shape)} {k=} {bits=} {group_size=} {symmetric=}"
        )
    decoded = topk_dequantize_packed(
        *got, k, bits, group_size, x.shape[-1], symmetric, x.dtype, backend="torch"
    )
    reference = topk_dequantize_reference(
        *expect, k, bits, group_size, x.shape[-1], symmetric, x.dtype
    )
    assert torch.equal(decoded.cpu(), reference)


def _strided(rows: int, length: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A column-sliced input with all-zero groups, ties and a wide value range."""
    wide = _tied_input(rows, length + 5, seed=length) * torch.logspace(-3, 3, rows)[:, None]
    wide[:, :5] = 0.0
    return wide.to(dtype).to(device)[:, 1 : length + 1]


SHAPES = [(1, 1), (3, 7), (2, 17), (1, 1025)]
GROUPS_K = [(1, 1), (4, 3), (5, 2), (16, 5), (128, 17), (32, 64)]


@TRITON
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_triton_equals_reference(device, dtype, shape, bits):
    x = _strided(*shape, dtype, device)
    cases = GROUPS_K
    if device == "cpu":
        # The interpreter is slow: each test takes two (group_size, k), the tests together all.
        n = DTYPES.index(dtype) + 3 * SHAPES.index(shape) + bits
        cases = [GROUPS_K[n % len(GROUPS_K)], GROUPS_K[(n + 3) % len(GROUPS_K)]]
    for group_size, k in cases:
        for symmetric in (True, False):
            _assert_triton_is_reference(x, k, bits, group_size, symmetric)


@TRITON
@pytest.mark.parametrize("symmetric", [True, False])
def test_a_nan_group_keeps_to_its_own_slots(device, symmetric, monkeypatch):
    """Every NaN ranked 0 (it compares false with everything), so a group holding NaNs kept
    more than k values and stored them past its slots: into the next group's (on a GPU, in any
    order: a finite group overwritten) or, for the last group, past the end of the outputs."""
    from aiflow_comm.kernels.topk_triton import topk_quantize_triton  # the kernel: no check

    guarded = []

    def with_guard(self, shape, *, dtype=None, **kwargs):  # 16 elements of 77 behind each
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        count = math.prod(shape)
        buffer = torch.full((count + 16,), 77, dtype=dtype or self.dtype, device=self.device)
        guarded.append((buffer, count))
        return buffer[:count].view(shape)

    monkeypatch.setattr(torch.Tensor, "new_empty", with_guard)
    nan = float("nan")
    x = torch.tensor([[2.0, -7.0, 4.0, 5.0, nan, nan, nan, 1.0]], device=device)
    indices, codes, scales, _ = topk_quantize_triton(x, 1, 8, 4, symmetric)
    monkeypatch.undo()
    assert guarded and all((buffer[count:] == 77).all() for buffer, count in guarded)
    want = topk_quantize_packed(x[:, :4].cpu(), 1, 8, 4, symmetric, backend="torch")
    assert indices.cpu()[0, 0] == want[0][0, 0] and codes.cpu()[0, 0] == want[1][0, 0]
    assert torch.equal(scales.cpu()[0, :1], want[2][0])


@TRITON
def test_triton_on_non_contiguous_layouts_and_wide_groups(device):
    base = torch.randn(4, 6, 40, device=device)
    for x in (base.transpose(0, 1), base[:, ::2, :], base.permute(2, 0, 1), base[..., 3:35]):
        _assert_triton_is_reference(x, 3, 4, 16, True)
    _assert_triton_is_reference(torch.randn(2, 300, device=device), 7, 2, 300, False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on NaN and overflow
@pytest.mark.parametrize(
    ("backend", "device"), [("torch", "cpu"), *[("triton", d) for d in _triton_devices()]]
)
def test_non_finite_values_raise_even_when_not_kept(backend, device):
    for bad in (float("nan"), float("inf")):
        x = torch.tensor([[100.0, bad, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]], device=device)
        with pytest.raises(ValueError, match="NaN or Inf"):
            sparsify(x, 1, 8, 4, backend=backend)
    wide = torch.tensor([[3e38, -3e38]], device=device)
    with pytest.raises(ValueError, match="overflows"):
        sparsify(wide, 2, 8, 2, symmetric=False, backend=backend)


@TRITON
def test_triton_rejects_groups_over_its_limit_and_auto_picks_torch_on_the_cpu(device):
    with pytest.raises(ValueError, match="group_size"):
        topk_quantize_packed(torch.randn(1, 5000, device=device), 4, 8, 4097, backend="triton")
    x = torch.randn(2, 33)
    assert torch.equal(sparsify(x, 3).indices, sparsify(x, 3, backend="torch").indices)


# Wire format.


@st.composite
def sparse_tensors(draw) -> SparseQuantizedTensor:
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31))
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3).to(dtype)
    return sparsify(
        x,
        draw(st.integers(1, 12)),
        draw(st.sampled_from([2, 4, 8])),
        draw(st.sampled_from([1, 2, 3, 5, 8, 12, 300])),
        symmetric=draw(st.booleans()),
        backend="torch",
    )


def _same(a: SparseQuantizedTensor, b: SparseQuantizedTensor) -> bool:
    fields = ("shape", "dtype", "bits", "group_size", "k", "scheme")
    zero_points = (a.zero_points is None and b.zero_points is None) or torch.equal(
        a.zero_points, b.zero_points
    )
    tensors = ("codes", "scales", "indices")
    return (
        all(getattr(a, f) == getattr(b, f) for f in fields)
        and all(torch.equal(getattr(a, t), getattr(b, t)) for t in tensors)
        and a.indices.dtype == b.indices.dtype
        and zero_points
    )


@SETTINGS
@given(sparse_tensors())
def test_wire_round_trip_is_bit_exact(s):
    buf = s.to_bytes()
    back = SparseQuantizedTensor.from_bytes(buf)
    assert _same(s, back) and _same(s, from_bytes(buf))
    assert torch.equal(back.dequantize(), s.dequantize())
    assert back.to_bytes() == buf
    assert len(buf) == 20 + 8 * len(s.shape) + s.nbytes + 4


@SETTINGS
@given(sparse_tensors(), st.data())
def test_truncated_buffers_are_rejected(s, data):
    buf = s.to_bytes()
    cut = data.draw(st.integers(0, len(buf) - 1))
    with pytest.raises(WireFormatError):
        SparseQuantizedTensor.from_bytes(buf[:cut])
    with pytest.raises(WireFormatError):
        from_bytes(buf[:cut])


@SETTINGS
@given(sparse_tensors(), st.data())
def test_corrupted_bytes_are_rejected(s, data):
    buf = bytearray(s.to_bytes())
    position = data.draw(st.integers(0, len(buf) - 1))
    buf[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(WireFormatError):
        SparseQuantizedTensor.from_bytes(bytes(buf))


@SETTINGS
@given(sparse_tensors(), st.binary(min_size=1, max_size=16))
def test_appended_bytes_are_rejected(s, extra):
    with pytest.raises(WireFormatError):
        SparseQuantizedTensor.from_bytes(s.to_bytes() + extra)


def _with_valid_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (4, bytes([SPARSE_VERSION + 1]), "version"),
        (5, bytes([2]), "scheme=2"),
        (6, bytes([3]), "bits=3"),
        (7, bytes([3]), "dtype=3"),
        (8, struct.pack("<I", 0), "group_size=0"),
        (8, struct.pack("<I", 2**31), "group_size=2147483648"),
        (12, struct.pack("<I", 0), "k=0"),
        (16, bytes([2]), "index width=2"),
        (17, bytes([0]), "ndim=0"),
        (18, b"\1", "ndim"),
        (20, struct.pack("<Q", 4), "needs"),
        (12, struct.pack("<I", 2), "needs"),
    ],
)
def test_header_fields_are_checked_even_with_a_valid_checksum(offset, value, match):
    body = sparsify(torch.randn(3, 10), 3, 4, 4).to_bytes()[:-4]
    corrupted = body[:offset] + value + body[offset + len(value) :]
    with pytest.raises(WireFormatError, match=match):
        SparseQuantizedTensor.from_bytes(_with_valid_crc(corrupted))


@pytest.mark.parametrize("indices", [[0, 2, 1], [0, 1, 4], [0, 0, 1]])
def test_indices_out_of_order_or_range_are_rejected_even_with_a_valid_checksum(indices):
    s = sparsify(torch.randn(1, 4), 3, 8, 4)
    body = s.to_bytes()[:-4]
    corrupted = body[: -len(indices)] + bytes(indices)
    with pytest.raises(WireFormatError, match="indices"):
        SparseQuantizedTensor.from_bytes(_with_valid_crc(corrupted))
    negative = sparsify(torch.randn(1, 400), 2, 8, 400).to_bytes()[:-4]
    with pytest.raises(WireFormatError, match="indices"):
        from_bytes(_with_valid_crc(negative[:-4] + struct.pack("<2h", -1, 5)))


@pytest.mark.parametrize("indices", [[2, 4, 2, 3], [1, 0, 0, 1], [0, 1, 0, 9]])
def test_to_bytes_refuses_indices_from_bytes_would_refuse(indices):
    """A hand-built tensor with an index past its group (decoded into the next group) or out of
    order was written, and its own bytes then failed to read back."""
    s = sparsify(torch.arange(1.0, 9.0).reshape(1, 8), 2, 8, 4)
    bad = SparseQuantizedTensor(s.codes, s.scales, None, torch.tensor([indices], dtype=torch.uint8),
                                s.shape, s.dtype, s.bits, s.group_size, s.k)  # fmt: skip
    with pytest.raises(WireFormatError, match="invalid indices"):
        bad.to_bytes()
    assert SparseQuantizedTensor.from_bytes(s.to_bytes()).indices.tolist() == s.indices.tolist()
    with pytest.raises(ValueError, match="indices must ascend strictly"):
        bad.dequantize()  # decoded in memory: a value in the wrong group, or a scatter error


def test_decoding_at_another_row_length_refuses_indices_past_the_short_last_group():
    """Decoded at row_len 7, the kept index 3 of the last group (now 3 long) was dropped."""
    packed = topk_quantize_packed(torch.arange(1.0, 9.0).reshape(1, 8), 2, 8, 4)
    assert topk_dequantize_packed(*packed, 2, 8, 4, 8).nonzero()[:, 1].tolist() == [2, 3, 6, 7]
    with pytest.raises(ValueError, match="indices must ascend strictly"):
        topk_dequantize_packed(*packed, 2, 8, 4, 7)
    for row_len in (8.0, -1, True):
        with pytest.raises(ValueError, match="row_len must be an int >= 0"):
            topk_dequantize_packed(*packed, 2, 8, 4, row_len)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_the_dense_tensor_is_contiguous_when_the_last_group_is_short(dtype):
    """A float32 decode was a view of rows padded to whole groups (2 x 8 floats for 2 x 7)."""
    x = torch.randn(2, 3, 7, dtype=dtype)
    dense = sparsify(x, 2, 8, 4).dequantize()
    assert dense.is_contiguous() and dense.shape == x.shape and dense.dtype == dtype
    assert dense.untyped_storage().nbytes() == x.numel() * x.element_size()


@pytest.mark.parametrize("dtype", [torch.int32, torch.float64, torch.complex64])
def test_decoding_to_a_non_float_dtype_is_refused(dtype):
    """dequantize(torch.int32) truncated the values silently (quantize's decoder refused it)."""
    s = sparsify(torch.randn(2, 8), 2, 8, 4)
    with pytest.raises(TypeError, match="dtype must be float32, float16 or bfloat16"):
        s.dequantize(dtype)


def test_header_layout_is_little_endian_as_documented():
    s = sparsify(torch.randn(2, 300), 40, 4, 128, symmetric=False)
    buf = s.to_bytes()
    assert buf[:4] == b"AIFS" and buf[4] == SPARSE_VERSION and buf[5] == 1 and buf[6] == 4
    assert buf[7] == 0 and struct.unpack_from("<II", buf, 8) == (128, 40)
    assert buf[16] == 1 and buf[17] == 2 and buf[18:20] == b"\0\0"
    assert struct.unpack_from("<2Q", buf, 20) == (2, 300)
    codes, scales = 2 * 60, 2 * 3 * 4  # 40 + 40 + 40 kept values a row, 4 bits
    index_start = 36 + codes + 2 * scales
    assert buf[index_start : index_start + 120] == bytes(s.indices[0].tolist())
    assert len(buf) == index_start + 2 * 120 + 4
    assert struct.unpack_from("<I", buf, len(buf) - 4)[0] == zlib.crc32(buf[:-4])


def test_each_reader_rejects_the_other_format_and_from_bytes_reads_both():
    x = torch.randn(2, 20)
    dense, sparse = quantize(x).to_bytes(), sparsify(x, 4).to_bytes()
    with pytest.raises(WireFormatError, match="magic"):
        QuantizedTensor.from_bytes(sparse)
    with pytest.raises(WireFormatError, match="magic"):
        SparseQuantizedTensor.from_bytes(dense)
    assert isinstance(from_bytes(dense), QuantizedTensor)
    assert isinstance(from_bytes(sparse), SparseQuantizedTensor)
    with pytest.raises(WireFormatError, match="magic"):
        from_bytes(b"AIFX" + sparse[4:])
    with pytest.raises(TypeError, match="buf"):
        from_bytes("AIFS")


# Bad inputs.


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "k must be >= 1"),
        ({"k": -2}, ValueError, "k must be >= 1"),
        ({"k": 2.0}, TypeError, "k must be a positive int"),
        ({"k": True}, TypeError, "k must be a positive int"),
        ({"k": 2**32}, ValueError, "k must be at most"),
        ({"bits": 3}, ValueError, "bits"),
        ({"bits": "8"}, TypeError, "bits"),
        ({"group_size": 0}, ValueError, "group_size"),
        ({"backend": "cpp"}, ValueError, "backend"),
        ({"x": torch.ones(2, 4, dtype=torch.int32)}, TypeError, "x must have dtype"),
        ({"x": [1.0, 2.0]}, TypeError, "x must be a torch.Tensor"),
        ({"x": torch.tensor(1.0)}, ValueError, "0-d"),
        ({"x": torch.tensor([[1.0, float("nan")]])}, ValueError, "NaN"),
        ({"x": torch.tensor([[1.0, 2.0, 3.0, float("inf")]])}, ValueError, "NaN or Inf"),
    ],
)
def test_bad_inputs_raise_errors_naming_the_argument(kwargs, error, match):
    args = {"x": torch.randn(2, 8), "k": 2, "bits": 8, "group_size": 2, "backend": "torch"} | kwargs
    with pytest.raises(error, match=match):
        sparsify(args.pop("x"), args.pop("k"), **args)


def test_inconsistent_fields_are_rejected():
    s = sparsify(torch.randn(2, 8), 2, 8, 4)
    with pytest.raises(ValueError, match=r"indices must be torch\.uint8"):
        SparseQuantizedTensor(s.codes, s.scales, None, s.indices.long(), s.shape, s.dtype, 8, 4, 2)
    with pytest.raises(ValueError, match="codes must be"):
        SparseQuantizedTensor(s.codes, s.scales, None, s.indices, s.shape, s.dtype, 8, 4, 3)
    with pytest.raises(ValueError, match="zero_points"):
        SparseQuantizedTensor(s.codes, s.scales, s.scales, s.indices, s.shape, s.dtype, 8, 4, 2)
    with pytest.raises(ValueError, match="indices must be"):
        topk_dequantize_packed(s.indices[:1], s.codes, s.scales, torch.empty(0), 2, 8, 4, 8)
