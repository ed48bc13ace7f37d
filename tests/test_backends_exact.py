"""Every fast backend produces exactly the reference's codes, scales, zero points and decodings."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.kernels import available_backends, dequantize_packed, quantize_packed
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAST = [(b, d) for d in DEVICES for b in available_backends(d) if b != "torch"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (rows, row_len): the odd sizes of the acceptance list, one or several rows.
SHAPES = [(1, 1), (3, 7), (2, 17), (2, 1025), (1, 8193)]
GROUPS = [1, 3, 4, 7, 32, 128, 5000]
SEEDS = [-1, 0, 123456789, 2**32 - 1]


def _interpreted(backend: str, device: str) -> bool:
    return backend == "triton" and device == "cpu"


def _inputs(rows: int, length: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """A strided (column-sliced) input with a few all-zero groups and a wide value range."""
    g = torch.Generator().manual_seed(rows * 100003 + length)
    wide = torch.randn(rows, length + 5, generator=g) * torch.logspace(-3, 3, rows)[:, None]
    wide[:, :4] = 0.0
    return wide.to(dtype).to(device)[:, 1 : length + 1]


def _assert_same(backend, device, x, bits, group, symmetric, seed):
    expect = quantize_reference(x.cpu(), bits, group, symmetric, seed)
    got = quantize_packed(x, bits, group, symmetric, seed, backend=backend)
    for name, e, g in zip(("codes", "scales", "zero_points"), expect, got, strict=True):
        assert torch.equal(e, g.cpu()), f"{name} differ: {backend} {x.shape} {bits=} {group=}"
    decoded = dequantize_packed(*got, bits, group, x.shape[-1], symmetric, x.dtype, backend=backend)
    reference = dequantize_reference(*expect, bits, group, x.shape[-1], symmetric, x.dtype)
    assert torch.equal(decoded.cpu(), reference)


@pytest.mark.parametrize(("backend", "device"), FAST)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_codes_equal_reference(backend, device, dtype, shape, bits):
    x = _inputs(*shape, dtype, device)
    cases = [(g, s) for g in GROUPS for s in SEEDS]
    if _interpreted(backend, device):
        # The interpreter is slow: each test takes one (group, seed), the tests together all.
        k = DTYPES.index(dtype) + 3 * SHAPES.index(shape) + bits
        cases = [(GROUPS[k % len(GROUPS)], SEEDS[k % len(SEEDS)])]
    for group, seed in cases:
        for symmetric in (True, False):
            _assert_same(backend, device, x, bits, group, symmetric, seed)


@pytest.mark.parametrize(("backend", "device"), FAST)
def test_non_contiguous_layouts(backend, device):
    base = torch.randn(4, 6, 40).to(device)
    for x in (base.transpose(0, 1), base[:, ::2, :], base.permute(2, 0, 1), base[..., 3:35]):
        for bits in (4, 8):
            _assert_same(backend, device, x, bits, 16, True, -1)


@pytest.mark.parametrize(("backend", "device"), FAST)
def test_all_zero_and_constant_groups(backend, device):
    x = torch.zeros(3, 64, device=device)
    x[1, 32:] = 2.5
    for symmetric in (True, False):
        _assert_same(backend, device, x, 4, 32, symmetric, -1)
        codes, scales, zero_points = quantize_packed(x, 4, 32, symmetric, backend=backend)
        decoded = dequantize_packed(
            codes, scales, zero_points, 4, 32, 64, symmetric, backend=backend
        )
        assert torch.equal(decoded[0], x[0])
        if not symmetric:
            assert torch.equal(decoded[1], x[1])


@pytest.mark.parametrize(("backend", "device"), FAST)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_raises(backend, device, bad):
    x = torch.randn(2, 300, device=device)
    x[1, 257] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_packed(x, 8, 128, backend=backend)


@pytest.mark.parametrize(("backend", "device"), FAST)
def test_row_offsets_beyond_int32(backend, device):
    """Row 1 starts 2**31 + 64 elements into the storage: int32 index math would wrap."""
    if device != "cpu":
        pytest.skip("the virtual-memory trick below needs host memory")
    stride = 2**31 + 64
    storage = torch.empty(stride + 256, dtype=torch.bfloat16)  # virtual: only two pages touched
    x = storage.as_strided((2, 256), (stride, 1))
    x[0] = torch.linspace(-1, 1, 256)
    x[1] = torch.linspace(3, -5, 256)
    _assert_same(backend, device, x, 8, 128, True, -1)
    _assert_same(backend, device, x, 4, 64, False, 7)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf / inf
@pytest.mark.parametrize(("backend", "device"), FAST)
@pytest.mark.parametrize("group", [16, 48, 128, 256])
def test_whole_blocks_of_16(backend, device, group):
    """Groups of whole 16-value blocks (the CPU's AVX-512 path): quotients on and next to ties,
    odd, tiny, subnormal and huge scales, constant groups, NaN."""
    g = torch.Generator().manual_seed(group)
    halves = torch.randint(-254, 255, (9, 2 * group), generator=g) / 2
    scales = torch.tensor([1.0, 1 / 3, 3.0, 0.1, 7e-3, 1e-30, 1e36, 2.0**-140, 2.5])[:, None]
    x = halves * scales
    x[:, ::group] = 127 * scales  # 8-bit symmetric: the scale is (about) `scales`
    x[-1] = 2.5
    cases = [(d, b) for d in (torch.float32, torch.bfloat16) for b in (2, 4, 8)]
    for dtype, bits in cases[2:3] if _interpreted(backend, device) else cases:
        for symmetric in (True, False):
            _assert_same(backend, device, x.to(dtype).to(device), bits, group, symmetric, -1)
    x[1, group + 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        quantize_packed(x.to(device), 8, group, backend=backend)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf - inf
@pytest.mark.parametrize(("backend", "device"), [("torch", "cpu"), *FAST])
@pytest.mark.parametrize("symmetric", [True, False])
def test_unchecked_non_finite_groups_decode_non_finite(backend, device, symmetric):
    """``check_finite=False`` never raises: a group holding NaN or Inf, or an asymmetric range
    over float32's, gets a non-finite scale and decodes to non-finite values only; every other
    group is exactly the reference's."""
    x = torch.randn(3, 96)
    x[0, 5], x[1, 40], x[1, 70] = float("nan"), float("inf"), -float("inf")
    x[2, 64:] = torch.tensor([3e38, -3e38]).repeat(16)  # asymmetric: max - min overflows
    codes, scales, zero_points = quantize_packed(
        x.to(device), 8, 32, symmetric, backend=backend, check_finite=False
    )
    decoded = dequantize_packed(codes, scales, zero_points, 8, 32, 96, symmetric, backend=backend)
    decoded, scales = decoded.cpu(), scales.cpu()
    bad = torch.zeros(3, 3, dtype=torch.bool)
    bad[0, 0] = bad[1, 1] = bad[1, 2] = True
    bad[2, 2] = not symmetric
    assert torch.equal(~torch.isfinite(scales), bad)
    by_value = bad.repeat_interleave(32, dim=1)
    assert not torch.isfinite(decoded[by_value]).any()
    clean = x.masked_fill(by_value, 0.0)
    want = dequantize_reference(
        *quantize_reference(clean, 8, 32, symmetric, -1), 8, 32, 96, symmetric, torch.float32
    )
    assert torch.equal(decoded[~by_value], want[~by_value])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf - inf
@pytest.mark.parametrize(("backend", "device"), FAST)
def test_unchecked_non_finite_groups_are_the_references_bit_for_bit(backend, device):
    """With ``check_finite=False`` a group holding NaN or Inf gets the reference's codes, scale
    and zero point too: the minimum of a group with a NaN is NaN (torch's amin), whichever sign
    the NaN has, and every code of such an asymmetric group is 0."""
    nan, inf = float("nan"), float("inf")
    x = torch.tensor(
        [
            [nan, 3.0, 5.0, 7.0, 1.0, nan, 2.0, 3.0],
            [-nan, 3.0, 5.0, 7.0, inf, 3.0, nan, 7.0],
            [1.0, 2.0, inf, 4.0, -inf, 1.0, 2.0, 3.0],
            [nan, nan, nan, nan, -inf, -inf, inf, inf],
        ]
    )
    for dtype in (torch.float32, torch.bfloat16):
        for bits in (2, 4, 8):
            for symmetric in (True, False):
                expect = quantize_reference(x.to(dtype), bits, 4, symmetric, -1)
                got = quantize_packed(
                    x.to(dtype).to(device), bits, 4, symmetric, backend=backend, check_finite=False
                )
                for name, e, g in zip(("codes", "scales", "zero_points"), expect, got, strict=True):
                    assert torch.equal(e, g.cpu()) or torch.allclose(
                        e, g.cpu(), rtol=0, atol=0, equal_nan=True
                    ), f"{name}: {backend} {dtype} {bits=} {symmetric=}"


@pytest.mark.parametrize(("backend", "device"), FAST)
def test_signed_zero_groups_give_the_references_bytes(backend, device):
    """A group whose max or min is zero, holding both +0.0 and -0.0: the zero point (and scale)
    was +0.0 in one backend and -0.0 in another, which torch.equal does not see but the wire
    bytes and their CRC do. The spec makes a zero max or min +0.0."""
    zero, neg = 0.0, -0.0
    x = torch.tensor(
        [
            [zero, neg, zero, neg],
            [neg, zero, neg, zero],
            [zero, neg, 1.0, 2.0],
            [neg, neg, neg, neg],
            [-1.0, neg, -2.0, zero],
        ]
    )
    for dtype in DTYPES:
        for bits in (2, 4, 8):
            expect = quantize_reference(x.to(dtype), bits, 4, False, -1)
            got = quantize_packed(x.to(dtype).to(device), bits, 4, False, backend=backend)
            for name, e, g in zip(("codes", "scales", "zero_points"), expect, got, strict=True):
                bits_e = e.view(torch.int32) if e.dtype == torch.float32 else e
                bits_g = g.cpu().view(torch.int32) if g.dtype == torch.float32 else g.cpu()
                assert torch.equal(bits_e, bits_g), f"{name}: {backend} {dtype} {bits=}"
            for stat in expect[1:]:
                assert not torch.signbit(stat[stat == 0]).any()
