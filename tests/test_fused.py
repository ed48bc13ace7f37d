"""The fused projection ops: reference = composition, cpp within the bounded-difference rule."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from aiflow_comm.codec.quantized import dequantize, quantize
from aiflow_comm.kernels import (
    available_backends,
    dequantize_project,
    dequantize_project_conv1x1,
    dequantize_project_linear,
    project_quantize,
    project_quantize_conv1x1,
    project_quantize_linear,
)
from aiflow_comm.kernels.reference import unpack_codes

HAS_CPP = "cpp" in available_backends("cpu")
needs_cpp = pytest.mark.skipif(not HAS_CPP, reason="aiflow_comm._C is not built")


def _codes(q) -> torch.Tensor:
    return unpack_codes(q.codes, q.layout)


def assert_codes_close(got, want, value_atol: float = 0.0) -> None:
    """Equal codes except a few (at most 0.1%, and at least 1 allowed), each one step off.

    Scales and zero points agree to ``rtol=1e-5``, or within ``value_atol``: pass
    :func:`_summation_bound` where the projection's values may differ by their summation order
    (a group whose values cancel to almost nothing can have any relative error).
    """
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got.scales, want.scales, rtol=1e-5, atol=value_atol)
    if want.zero_points is not None:
        torch.testing.assert_close(
            got.zero_points, want.zero_points, rtol=1e-5, atol=max(1e-6, value_atol)
        )
    diff = (_codes(got) - _codes(want)).abs()
    assert diff.numel() == 0 or int(diff.max()) <= 1
    assert int((diff != 0).sum()) <= max(1, diff.numel() // 1000)


def _summation_bound(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> float:
    """The most two float32 evaluations of ``x @ weight.T + bias``, in any summation order and
    with or without FMA, can differ by: each is within gamma_n (|x| @ |weight|.T + |bias|) of the
    exact value, n = in + 1 (Higham, Accuracy and Stability, 3.1). A scale or zero point moves by
    at most that much (symmetric: by it / qmax; asymmetric: by 2 x it / levels, levels >= 3)."""
    x, weight = x.reshape(-1, x.shape[-1]).double(), weight.double()
    n = x.shape[1] + 1
    gamma = n * 2.0**-24 / (1 - n * 2.0**-24)
    magnitude = x.abs() @ weight.abs().T
    if bias is not None:
        magnitude = magnitude + bias.double().abs()
    return 2 * gamma * float(magnitude.max()) if magnitude.numel() else 0.0


def _on_threads(count, run):
    """``run()`` with torch on ``count`` threads, the thread count restored after."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(count)
        return run()
    finally:
        torch.set_num_threads(threads)


def _projection(inp: int, out: int, dtype: torch.dtype, bias: bool, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    weight = (torch.randn(out, inp, generator=gen) / inp**0.5).to(dtype)
    return weight, (torch.randn(out, generator=gen).to(dtype) if bias else None)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [8, 4, 2])
def test_reference_is_the_composition(bits, symmetric):
    x = torch.randn(3, 7, 33)
    weight, bias = _projection(33, 20, torch.float32, True)
    got = project_quantize(x, weight, bias, bits, 8, symmetric=symmetric, backend="torch")
    want = quantize(x @ weight.T + bias, bits, 8, symmetric=symmetric, backend="torch")
    assert torch.equal(got.codes, want.codes) and torch.equal(got.scales, want.scales)
    assert got.shape == (3, 7, 20)
    decoded = dequantize_project(got, weight.T.contiguous(), backend="torch")
    assert torch.equal(decoded, dequantize(got) @ weight)


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("group_size", [4, 32, 128])
@pytest.mark.parametrize("rows,inp", [(1, 3), (7, 64), (33, 257)])
@pytest.mark.parametrize("out", [1, 5, 96, 130])
def test_cpp_matches_reference(rows, inp, out, group_size, bias, dtype):
    x = torch.randn(rows, inp).to(dtype)
    weight, b = _projection(inp, out, dtype, bias)
    for symmetric in (True, False):
        args = (x, weight, b, 8, group_size)
        want = project_quantize(*args, symmetric=symmetric, backend="torch")
        got = project_quantize(*args, symmetric=symmetric, backend="cpp")
        assert_codes_close(got, want, _summation_bound(x, weight, b))
        back = None if b is None else torch.randn(inp).to(dtype)
        y_want = dequantize_project(want, weight.T, back, backend="torch")
        y_got = dequantize_project(want, weight.T, back, backend="cpp")
        assert y_got.dtype == dtype
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(y_got, y_want, **tol)


@needs_cpp
@pytest.mark.parametrize("bits", [4, 2])
def test_cpp_large_and_packed(bits):
    x = torch.randn(3000, 96)
    weight, bias = _projection(96, 40, torch.float32, True)
    for symmetric in (True, False):
        want = project_quantize(x, weight, bias, bits, 16, symmetric=symmetric, backend="torch")
        got = project_quantize(x, weight, bias, bits, 16, symmetric=symmetric, backend="cpp")
        assert_codes_close(got, want)
        torch.testing.assert_close(
            dequantize_project(got, weight.T, backend="cpp"),
            dequantize_project(got, weight.T, backend="torch"),
            rtol=1e-5,
            atol=1e-5,
        )


# dequantize_project's skinny kernel (AVX-512 builds, float32 output): a packed panel of at most
# 512 KiB, any width, decoded rows multiplied in blocks of 24, straight into the output when its
# rows are whole vectors of 16, else through a tile.
@needs_cpp
@pytest.mark.parametrize("width", [1, 17, 64, 768])
@pytest.mark.parametrize("row_len", [1, 5, 96])
def test_cpp_dequantize_project_skinny(row_len, width):
    gen = torch.Generator().manual_seed(row_len * 1000 + width)
    weight = torch.randn(width, row_len, generator=gen) / row_len**0.5
    bias = torch.randn(width, generator=gen)
    for rows, bits, symmetric in ((8, 8, True), (25, 4, False), (100, 2, True)):
        x = torch.randn(rows, row_len, generator=gen)
        q = project_quantize(x, torch.eye(row_len), None, bits, 16, symmetric=symmetric)
        for b in (bias, None):
            want = dequantize_project(q, weight, b, backend="torch")
            got = dequantize_project(q, weight, b, backend="cpp")
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@needs_cpp
@pytest.mark.parametrize("view", ["transposed", "sliced", "expanded"])
def test_cpp_strided_inputs(view):
    base = torch.randn(40, 70)
    x = {
        "transposed": base.T[:, :33],
        "sliced": base[::3, 5:38],
        "expanded": base[:1, :33].expand(6, 33),
    }[view]
    weight, bias = _projection(33, 17, torch.float32, True)
    want = project_quantize(x.contiguous(), weight, bias, 8, 8, backend="torch")
    assert_codes_close(project_quantize(x, weight, bias, 8, 8, backend="cpp"), want)
    assert_codes_close(project_quantize(x, weight.T.contiguous().T, bias, 8, 8), want)


# The skinny kernel of fused_cpu.cpp (AVX-512 builds): float32 or float16/bfloat16 x, at most 256
# output features, the packed weight in L2, and 8 rows or more unless the weight is small. Its
# strips are 12, 8 or 6 rows of 1 to 4 vectors of 16 columns, with 8/4/2/1-row remainders.
@needs_cpp
@pytest.mark.parametrize("out", [5, 16, 17, 32, 33, 96])
@pytest.mark.parametrize("inp", [1, 7, 64, 256, 300])
def test_cpp_skinny_kernel(inp, out):
    gen = torch.Generator().manual_seed(inp * 1000 + out)
    weight = torch.randn(out, inp, generator=gen) / inp**0.5
    bias = torch.randn(out, generator=gen)
    group_sizes = (8, 32, 128, out + 3)  # the last: one group wider than the row
    case = 0
    for rows in (1, 5, 13, 1000):
        x = torch.randn(rows, inp, generator=gen)
        for bits in (8, 4, 2):
            for symmetric in (True, False):
                b = bias if case % 2 else None
                group_size = group_sizes[case % len(group_sizes)]
                case += 1
                args = (x, weight, b, bits, group_size)
                want = project_quantize(*args, symmetric=symmetric, backend="torch")
                got = project_quantize(*args, symmetric=symmetric, backend="cpp")
                assert_codes_close(got, want, _summation_bound(x, weight, b))


def _small_integers(shape, gen, dtype=torch.float32):
    return torch.randint(-4, 5, shape, generator=gen).to(dtype)


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("inp,out", [(1, 5), (7, 17), (64, 32), (256, 33), (300, 96), (40, 256)])
def test_cpp_exact_where_the_projection_is_exact(inp, out, dtype):
    """Small integers: every partial sum is an integer below 2^24, exact in any order, so the
    codes, scales and zero points are the reference's bit for bit (all-zero rows included)."""
    gen = torch.Generator().manual_seed(inp + out)
    x = _small_integers((1000, inp), gen, dtype)
    x[::7] = 0
    weight = _small_integers((out, inp), gen)
    for rows, bias in ((x, None), (x, _small_integers((out,), gen)), (x[:13], None)):
        for bits, group_size, symmetric in ((8, 32, True), (4, 8, False), (2, 128, True)):
            args = (rows, weight, bias, bits, group_size)  # 13 rows: the dot-product form
            want = project_quantize(*args, symmetric=symmetric, backend="torch")
            got = project_quantize(*args, symmetric=symmetric, backend="cpp")
            assert torch.equal(got.codes, want.codes)
            assert torch.equal(got.scales, want.scales)
            if not symmetric:
                assert torch.equal(got.zero_points, want.zero_points)


# Fewer than 32 rows, on a weight of at most 1 MiB, take the skinny kernel's dot-product form
# (dot_strips.h): strips of 8, 4, 2, 1 rows by pairs of output features, lanes of 16 products, the
# weight's rows read as they lie.
@needs_cpp
@pytest.mark.parametrize("rows", [1, 3, 8, 15, 31])
@pytest.mark.parametrize("inp,out", [(1, 2), (7, 5), (16, 1), (300, 33), (768, 96), (4096, 64)])
def test_cpp_few_rows(rows, inp, out):
    gen = torch.Generator().manual_seed(rows * 10000 + inp + out)
    weight = (torch.randn(out, inp + 5, generator=gen) / inp**0.5)[:, 3 : inp + 3]  # rows apart
    bias = torch.randn(out, generator=gen)
    x = torch.randn(rows, inp, generator=gen)
    cases = (
        (x, weight, bias, 8, True),
        (x.bfloat16(), weight, None, 4, False),
        (x.half(), weight.half(), bias.half(), 2, True),
        (x, weight.T.contiguous().T, bias, 8, False),  # columns contiguous: copied to rows
    )
    for rows_x, w, b, bits, symmetric in cases:
        args = (rows_x, w, b, bits, 16)
        want = project_quantize(*args, symmetric=symmetric, backend="torch")
        got = project_quantize(*args, symmetric=symmetric, backend="cpp")
        assert_codes_close(got, want, _summation_bound(rows_x, w, b))


@needs_cpp
def test_cpp_few_rows_same_codes_in_any_company():
    """A row's sums run in one order whichever strip, offset or thread count it meets."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(31, 300, generator=gen)
    weight, bias = _projection(300, 41, torch.float32, True)  # odd: a lone last column
    whole = _on_threads(2, lambda: project_quantize(x, weight, bias, 8, 16, backend="cpp"))
    for start, stop in ((0, 1), (3, 12), (5, 31), (8, 16), (30, 31)):
        part = project_quantize(x[start:stop], weight, bias, 8, 16, backend="cpp")
        assert torch.equal(part.codes, whole.codes[start:stop])
        assert torch.equal(part.scales, whole.scales[start:stop])
    one = _on_threads(1, lambda: project_quantize(x, weight, bias, 8, 16, backend="cpp"))
    assert torch.equal(one.codes, whole.codes) and torch.equal(one.scales, whole.scales)


@needs_cpp
@pytest.mark.parametrize("view", ["row_stride", "transposed", "expanded"])
def test_cpp_skinny_strided_inputs(view):
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(3000, 300, generator=gen)
    x = {
        "row_stride": base[::3, 5:261],
        "transposed": base[:256, :300].T,  # copied to unit last stride by rows_of
        "expanded": base[:1, :256].expand(50, 256),
    }[view]
    weight, bias = _projection(x.shape[1], 32, torch.float32, True)
    want = project_quantize(x.contiguous(), weight, bias, 8, 32, backend="torch")
    got = project_quantize(x, weight, bias, 8, 32, backend="cpp")
    assert_codes_close(got, want, _summation_bound(x, weight, bias))


@needs_cpp
@pytest.mark.parametrize("rows,inp,out", [(20, 4096, 64), (50, 512, 256), (30, 1024, 130)])
def test_cpp_skinny_wide_and_deep(rows, inp, out):
    """The kernel's limits: a 1 MiB single-chunk panel, 256 outputs (4 column chunks), and a
    shape just past them (the addmm path)."""
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, inp, generator=gen)
    weight, bias = _projection(inp, out, torch.float32, True, seed=rows)
    for symmetric in (True, False):
        want = project_quantize(x, weight, bias, 4, 32, symmetric=symmetric, backend="torch")
        got = project_quantize(x, weight, bias, 4, 32, symmetric=symmetric, backend="cpp")
        assert_codes_close(got, want, _summation_bound(x, weight, bias))


@needs_cpp
@pytest.mark.parametrize("out,stride", [(16, 16), (32, 48), (96, 96), (256, 256), (32, 0)])
def test_cpp_skinny_weight_read_in_place(out, stride):
    """A float32 weight stored transposed, whose columns are whole vectors (``stride`` floats
    apart), is the kernel's panel: read in place, it gives the packed weight's codes bit for bit.
    Other transposed weights (unaligned strides, odd widths, float16) are packed as before."""
    gen = torch.Generator().manual_seed(out + stride)
    inp = 300
    if stride:
        weight = (torch.randn(inp, stride, generator=gen) / inp**0.5)[:, :out].T
    else:  # every input feature with the same weights: stride 0
        weight = torch.randn(out, 1, generator=gen).expand(out, inp)
    assert weight.stride() == (1, stride)
    bias = torch.randn(out, generator=gen)
    x = torch.randn(100, inp, generator=gen)
    for rows, b, bits, symmetric in ((x, bias, 8, True), (x.bfloat16(), None, 4, False)):
        args = (rows, weight, b, bits, 16)  # bfloat16 rows: converted a strip at a time
        packed = project_quantize(
            rows, weight.contiguous(), *args[2:], symmetric=symmetric, backend="cpp"
        )
        got = project_quantize(*args, symmetric=symmetric, backend="cpp")
        assert torch.equal(got.codes, packed.codes) and torch.equal(got.scales, packed.scales)
        want = project_quantize(*args, symmetric=symmetric, backend="torch")
        assert_codes_close(got, want, _summation_bound(rows, weight, b))
    for other in (
        torch.randn(inp, 40, generator=gen)[:, :32].T,
        torch.randn(inp, 17, generator=gen).T,
        torch.randn(inp, 32, generator=gen).T.half(),
    ):
        other_bias = torch.randn(other.shape[0], generator=gen)
        want = project_quantize(x, other, other_bias, 8, 16, backend="torch")
        got = project_quantize(x, other, other_bias, 8, 16, backend="cpp")
        assert_codes_close(got, want, _summation_bound(x, other, other_bias))


# Past the skinny kernel (more than 256 outputs, or a panel over L2), with two blocks of rows or
# more, fused_cpu.cpp multiplies each block by a weight packed once for MKL (packed_gemm.cpp); the
# last block is short, and x's rows overlap (expanded: at::addmm instead) or stand apart.
PACKED_SHAPES = [(1100, 300, 300), (700, 2048, 600), (3000, 64, 1024)]


@needs_cpp
def test_cpp_packed_gemm_is_there_where_torch_links_mkl():
    from aiflow_comm import _C

    assert _C.packed_gemm_available() == torch.backends.mkl.is_available()


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rows,inp,out", PACKED_SHAPES)
def test_cpp_packed_weight_blocks(rows, inp, out, dtype):
    gen = torch.Generator().manual_seed(rows + inp)
    x = torch.randn(rows, inp, generator=gen).to(dtype)
    weight, bias = _projection(inp, out, dtype, True, seed=out)
    for b, bits, group_size, symmetric in ((bias, 8, 32, True), (None, 4, 100, False)):
        args = (x, weight, b, bits, group_size)
        want = project_quantize(*args, symmetric=symmetric, backend="torch")
        got = project_quantize(*args, symmetric=symmetric, backend="cpp")
        assert_codes_close(got, want, _summation_bound(x, weight, b))
        back, back_bias = _projection(out, inp, dtype, b is not None, seed=inp)
        y_got = dequantize_project(want, back, back_bias, backend="cpp")
        y_want = dequantize_project(want, back, back_bias, backend="torch")
        assert y_got.dtype == dtype
        tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(y_got, y_want, **tol)


@needs_cpp
@pytest.mark.parametrize("layout", ["transposed", "column_slice", "row_slice", "expanded"])
def test_cpp_packed_weight_layouts(layout):
    """MKL packs a weight with contiguous rows or columns where it lies (slices included); any
    other layout is copied first. Every layout gives the contiguous weight's codes."""
    gen = torch.Generator().manual_seed(4)
    inp, out = 300, 320
    weight = {
        "transposed": torch.randn(inp, out, generator=gen).T,
        "column_slice": torch.randn(inp, out + 13, generator=gen)[:, 5 : out + 5].T,
        "row_slice": torch.randn(out, inp + 9, generator=gen)[:, 9:],
        "expanded": torch.randn(out, 1, generator=gen).expand(out, inp),
    }[layout]
    x = torch.randn(1500, inp, generator=gen)
    want = project_quantize(x, weight.contiguous(), None, 8, 64, backend="cpp")
    got = project_quantize(x, weight, None, 8, 64, backend="cpp")
    assert torch.equal(got.codes, want.codes) and torch.equal(got.scales, want.scales)
    assert_codes_close(got, project_quantize(x, weight, None, 8, 64, backend="torch"),
                       _summation_bound(x, weight, None))  # fmt: skip
    back = weight.T if layout != "expanded" else torch.randn(inp, out, generator=gen)
    torch.testing.assert_close(
        dequantize_project(got, back, backend="cpp"),
        dequantize_project(got, back.contiguous(), backend="torch"),
        rtol=1e-5,
        atol=1e-5,
    )


@needs_cpp
@pytest.mark.parametrize("view", ["row_stride", "expanded"])
def test_cpp_packed_weight_strided_rows(view):
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(2000, 400, generator=gen)
    x = {"row_stride": base[::2, 7:307], "expanded": base[:1, :300].expand(900, 300)}[view]
    weight, bias = _projection(300, 320, torch.float32, True)
    want = project_quantize(x.contiguous(), weight, bias, 8, 64, backend="torch")
    got = project_quantize(x, weight, bias, 8, 64, backend="cpp")
    assert_codes_close(got, want, _summation_bound(x, weight, bias))


@needs_cpp
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("rows,inp,out", [(1000, 768, 32), (300, 64, 300)])
def test_cpp_cancelling_projection_decodes_within_rounding_error(rows, inp, out, symmetric):
    """x @ weight.T is exactly zero (each product has its negative): every computed value is
    rounding error, so codes are arbitrary, but both backends decode to within that error."""
    gen = torch.Generator().manual_seed(rows)
    half = torch.randn(rows, inp // 2, generator=gen)
    half_weight = torch.randn(out, inp // 2, generator=gen)
    perm = torch.randperm(inp // 2, generator=gen)
    x = torch.cat([half, half[:, perm]], dim=1)
    weight = torch.cat([half_weight, -half_weight[:, perm]], dim=1)
    bound = _summation_bound(x, weight, None)
    for backend in ("torch", "cpp"):
        q = project_quantize(x, weight, None, 8, 32, symmetric=symmetric, backend=backend)
        assert float(q.dequantize().abs().max()) <= bound


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpp_same_codes_for_any_thread_count(dtype):
    """Each row's sums run in one order whichever task and strip it falls in: the threads take
    chunks of rows from a shared counter, so which thread takes a row changes from call to call."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(997, 200, generator=gen).to(dtype)
    weight, bias = _projection(200, 40, torch.float32, True)
    one = _on_threads(1, lambda: project_quantize(x, weight, bias, 8, 16, backend="cpp"))
    for _ in range(3):
        many = _on_threads(2, lambda: project_quantize(x, weight, bias, 8, 16, backend="cpp"))
        assert torch.equal(one.codes, many.codes) and torch.equal(one.scales, many.scales)


@needs_cpp
def test_cpp_dequantize_project_same_for_any_thread_count():
    gen = torch.Generator().manual_seed(4)
    q = project_quantize(torch.randn(997, 40, generator=gen), torch.eye(40), None, 8, 16)
    weight, bias = _projection(40, 200, torch.float32, True)
    one = _on_threads(1, lambda: dequantize_project(q, weight, bias, backend="cpp"))
    for _ in range(3):
        many = _on_threads(2, lambda: dequantize_project(q, weight, bias, backend="cpp"))
        assert torch.equal(one, many)


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpp", marks=needs_cpp)])
def test_linear_helpers(backend):
    layer, receiver = nn.Linear(24, 12), nn.Linear(12, 30)
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        want = quantize(layer(x), 8, 4, backend="torch")
        got = project_quantize_linear(x, layer, 8, 4, backend=backend)
        assert_codes_close(got, want)
        torch.testing.assert_close(
            dequantize_project_linear(got, receiver, backend=backend), receiver(dequantize(got))
        )


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpp", marks=needs_cpp)])
@pytest.mark.parametrize("memory", [torch.contiguous_format, torch.channels_last], ids=str)
def test_conv1x1_helpers(backend, memory):
    conv, receiver = nn.Conv2d(16, 6, 1), nn.Conv2d(6, 10, kernel_size=1, bias=False)
    x = torch.randn(2, 16, 5, 7).to(memory_format=memory)
    with torch.no_grad():
        got = project_quantize_conv1x1(x, conv, 8, 3, backend=backend)
        assert got.shape == (2, 5, 7, 6)
        assert_codes_close(got, quantize(conv(x).permute(0, 2, 3, 1), 8, 3, backend="torch"))
        y = dequantize_project_conv1x1(got, receiver, backend=backend)
        assert y.shape == (2, 10, 5, 7) and y.is_contiguous(memory_format=torch.channels_last)
        decoded = dequantize(got).permute(0, 3, 1, 2)
        torch.testing.assert_close(y, receiver(decoded), rtol=1e-5, atol=1e-5)


def test_bad_inputs_raise():
    x, weight = torch.randn(4, 8), torch.randn(3, 8)
    with pytest.raises(ValueError, match=r"weight must have shape \(out_features, 8\)"):
        project_quantize(x, torch.randn(3, 9))
    with pytest.raises(ValueError, match=r"bias must be None or have shape \(3,\)"):
        project_quantize(x, weight, torch.randn(4))
    with pytest.raises(TypeError, match="weight must have dtype"):
        project_quantize(x, weight.to(torch.int32))
    with pytest.raises(TypeError, match="x must have dtype"):
        project_quantize(x.to(torch.int64), weight)
    with pytest.raises(ValueError, match="backend must be 'auto' or one of"):
        project_quantize(x, weight, backend="numpy")
    with pytest.raises(ValueError, match="backend 'cuda' has no fused kernel for tensors on cpu"):
        project_quantize(x, weight, backend="cuda")
    with pytest.raises(ValueError, match="bits must be one of"):
        project_quantize(x, weight, bits=3)
    with pytest.raises(ValueError, match=r"group_size must be in \[1, 2147483647\]"):
        project_quantize(x, weight, group_size=2**63 - 1)
    with pytest.raises(TypeError, match="weight must be a dense tensor"):
        project_quantize(x, weight.to_sparse())
    with pytest.raises(TypeError, match="x must be a dense tensor"):
        project_quantize(x.to_sparse(), weight)
    nested = torch.nested.nested_tensor([torch.randn(2, x.shape[1]), torch.randn(3, x.shape[1])])
    with pytest.raises(TypeError, match="x must be a dense tensor"):  # a strided layout
        project_quantize(nested, weight)
    for backend in ("torch", "cpp"):
        with pytest.raises(ValueError, match="NaN or Inf"):
            project_quantize(torch.full((2, 8), float("nan")), weight, backend=backend)
    q = project_quantize(x, weight, group_size=2)
    with pytest.raises(ValueError, match=r"weight must have shape \(out_features, 3\)"):
        dequantize_project(q, weight)
    with pytest.raises(TypeError, match="q must be a QuantizedTensor"):
        dequantize_project(x, weight)
    with pytest.raises(ValueError, match=r"conv.kernel_size must be \(1, 1\)"):
        project_quantize_conv1x1(torch.randn(1, 8, 4, 4), nn.Conv2d(8, 4, 3))
    with pytest.raises(ValueError, match=r"conv\.groups must be 1"):
        project_quantize_conv1x1(torch.randn(1, 8, 4, 4), nn.Conv2d(8, 4, 1, groups=2))
    with pytest.raises(ValueError, match=r"conv.stride must be \(1, 1\)"):
        project_quantize_conv1x1(torch.randn(1, 8, 4, 4), nn.Conv2d(8, 4, 1, stride=2))
    with pytest.raises(ValueError, match=r"x must be \(N, 8, H, W\)"):
        project_quantize_conv1x1(torch.randn(1, 7, 4, 4), nn.Conv2d(8, 4, 1))
    with pytest.raises(TypeError, match=r"linear must be a torch\.nn\.Linear"):
        project_quantize_linear(x, nn.Conv2d(8, 4, 1))


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpp", marks=needs_cpp)])
def test_groups_wider_than_the_row_and_empty_inputs(backend):
    """A group_size past the row is one group of the row (the same bytes, nothing padded to
    group_size); empty inputs of any strides give empty outputs."""
    gen = torch.Generator().manual_seed(5)
    x, weight = torch.randn(6, 40, generator=gen), torch.randn(24, 40, generator=gen)
    whole = project_quantize(x, weight, None, 4, 24, symmetric=False, backend=backend)
    for group_size in (25, 2**31 - 1):
        wide = project_quantize(x, weight, None, 4, group_size, symmetric=False, backend=backend)
        assert wide.group_size == group_size
        assert torch.equal(wide.codes, whole.codes) and torch.equal(wide.scales, whole.scales)
        torch.testing.assert_close(
            dequantize_project(wide, weight.T, backend=backend),
            dequantize_project(whole, weight.T, backend=backend),
        )
    empty = torch.randn(0, 80, generator=gen)[:, ::2]  # strides (80, 2)
    q = project_quantize(empty, weight, None, 8, 8, backend=backend)
    assert q.shape == (0, 24) and q.codes.shape == (0, 24)
    assert dequantize_project(q, weight.T, backend=backend).shape == (0, 40)
    assert quantize(empty, 8, 8, backend=backend).dequantize().shape == (0, 40)


def test_meta_tensors_take_the_fake_implementation():
    x, weight = torch.empty(5, 16, device="meta"), torch.empty(8, 16, device="meta")
    q = project_quantize(x, weight, None, 8, 4)
    assert q.codes.is_meta and q.codes.shape == (5, 8) and q.scales.shape == (5, 2)
    assert dequantize_project(q, torch.empty(3, 8, device="meta")).shape == (5, 3)


@needs_cpp
def test_compiles_fullgraph():
    weight, bias = _projection(16, 8, torch.float32, True)

    def roundtrip(x):
        q = project_quantize(x, weight, bias, 8, 4)
        return dequantize_project(q, weight.T.contiguous())

    x = torch.randn(6, 16)
    torch.testing.assert_close(torch.compile(roundtrip, fullgraph=True)(x), roundtrip(x))


_FIRST_CALL_COMPILED = """
import warnings, torch
from aiflow_comm.kernels import dequantize_project, project_quantize
weight = torch.randn(8, 16)
def roundtrip(x):
    return dequantize_project(project_quantize(x, weight, None, 8, 4), weight.T.contiguous())
with warnings.catch_warnings():
    warnings.filterwarnings("error", ".*lru_cache")
    torch.compile(roundtrip, fullgraph=True)(torch.randn(4, 16))
"""


def test_a_first_call_under_compile_does_not_warn():
    """In a fresh process, the first fused call traced by torch.compile went through a
    functools.cache (the usable backends) and Dynamo warned of silent incorrectness."""
    run = subprocess.run([sys.executable, "-c", _FIRST_CALL_COMPILED], capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_autocast_leaves_the_float32_projection_alone(backend):
    """Under CPU autocast the torch backend (the specification) multiplied in bfloat16: 14% of
    its codes moved, and dequantize_project drifted by 1e-2."""
    x, weight, bias = torch.randn(40, 64), torch.randn(300, 64) / 8, torch.randn(300)
    q = project_quantize(x, weight, bias, 8, 16, backend=backend)
    y = dequantize_project(q, weight.T.contiguous(), backend=backend)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q_autocast = project_quantize(x, weight, bias, 8, 16, backend=backend)
        y_autocast = dequantize_project(q, weight.T.contiguous(), backend=backend)
    assert torch.equal(q_autocast.codes, q.codes) and torch.equal(q_autocast.scales, q.scales)
    assert y_autocast.dtype == torch.float32 and torch.equal(y_autocast, y)


@pytest.mark.parametrize("out_features", [4, 300])  # the skinny kernel, the blocked path
@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_non_finite_projections_are_rejected(out_features: int, backend: str) -> None:
    x, weight = torch.randn(64, 16), torch.randn(out_features, 16)
    bad_x, bad_weight = x.clone(), weight.clone()
    bad_x[37, 3] = float("inf")
    bad_weight[-1, 0] = float("nan")
    for args in ((bad_x, weight), (x, bad_weight), (x * 1e30, weight * 1e30)):  # last: overflow
        with pytest.raises(ValueError, match="NaN or Inf"):
            project_quantize(*args, backend=backend)


@pytest.mark.parametrize("out_features", [4, 300])
@pytest.mark.parametrize("backend", ["torch", pytest.param("cpp", marks=needs_cpp)])
def test_unchecked_non_finite_projections_give_non_finite_scales(out_features, backend):
    """``check_finite=False`` (a GPU loop's policy: no device sync) returns instead of raising;
    the rows holding the bad value have non-finite scales, the others the checked codes, and
    the wire format refuses the tensor."""
    x, weight = torch.randn(64, 16), torch.randn(out_features, 16)
    bad_x = x.clone()
    bad_x[37, 3] = float("inf")
    q = project_quantize(bad_x, weight, None, 8, 4, backend=backend, check_finite=False)
    finite = torch.isfinite(q.scales)
    assert not finite[37].any() and finite[torch.arange(64) != 37].all()
    clean = project_quantize(x[:37], weight, None, 8, 4, backend=backend)
    assert torch.equal(q.codes[:37], clean.codes) and torch.equal(q.scales[:37], clean.scales)
    with pytest.raises(ValueError, match="scales hold NaN or Inf"):
        q.to_bytes()
    layer = nn.Linear(16, out_features)
    with torch.no_grad():
        layer.weight.copy_(weight)
    quiet = project_quantize_linear(bad_x, layer, 8, 4, backend=backend, check_finite=False)
    assert not torch.isfinite(quiet.scales[37]).any()
    with pytest.raises(ValueError, match="NaN or Inf"):
        project_quantize_linear(bad_x, layer, 8, 4, backend=backend)


def test_a_same_padded_pointwise_conv_is_a_projection():
    conv = nn.Conv2d(8, 4, 1, padding="same")
    x = torch.randn(2, 8, 3, 5)
    q = project_quantize_conv1x1(x, conv, 8, 4, backend="torch")
    want = project_quantize(x.permute(0, 2, 3, 1), conv.weight[:, :, 0, 0], conv.bias, 8, 4,
                            backend="torch")  # fmt: skip
    assert torch.equal(q.codes, want.codes) and torch.equal(q.scales, want.scales)


def _fields(q):
    return (q.codes, q.scales, q.zero_points, q.shape, q.dtype, q.bits, q.group_size, q.scheme)


def _same(a, b) -> bool:
    return all(
        torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
        for u, v in zip(_fields(a), _fields(b), strict=True)
    )


@needs_cpp
@pytest.mark.parametrize(
    "case",
    ["plain", "3-d", "transposed", "parameter", "requires_grad", "no_bias", "bf16", "wide_group"],
)
def test_the_eager_cpu_shortcut_equals_the_checked_path(case, monkeypatch):
    """project_quantize calls the cpp kernel straight from eager code (6 us less a call): its
    results must be the custom op's, field for field."""
    import aiflow_comm.kernels.fused as fused

    x = torch.randn(5, 40, 24) if case == "3-d" else torch.randn(40, 24)
    x = torch.randn(24, 40).T if case == "transposed" else x
    weight, bias = _projection(24, 20, torch.float32, case != "no_bias")
    if case == "parameter":
        weight, bias = nn.Parameter(weight), nn.Parameter(bias)
    if case == "requires_grad":
        x.requires_grad_()
    if case == "bf16":
        x, weight = x.bfloat16(), weight.bfloat16()
    group = 1000 if case == "wide_group" else 8
    for symmetric in (True, False):
        fast = project_quantize(x, weight, bias, 4, group, symmetric=symmetric)
        with monkeypatch.context() as patch:  # the op the shortcut stands in for
            patch.setattr(fused, "_plain_cpu_call", lambda *args: False)
            checked = project_quantize(x, weight, bias, 4, group, symmetric=symmetric)
        assert _same(fast, checked) and not fast.scales.requires_grad


@needs_cpp
def test_the_eager_cpu_shortcut_is_taken_and_refusals_fall_back(monkeypatch):
    """Plain eager CPU calls skip the custom op; what the kernel refuses goes the checked way,
    whose errors name the argument."""
    import aiflow_comm.kernels.fused as fused

    x, (weight, bias) = torch.randn(6, 16), _projection(16, 8, torch.float32, True)

    def no_op(*args):
        raise AssertionError("the checked path ran")

    monkeypatch.setattr(fused, "_check_projection", no_op)  # the checked path's first check
    project_quantize(x, weight, bias, 8, 4)
    project_quantize(x, nn.Parameter(weight), bias, 8, 4, backend="cpp")
    with pytest.raises(AssertionError, match="the checked path ran"):
        project_quantize(x, weight, bias, 8, 4, symmetric=np.True_)  # not a bool: checked
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"weight must have shape \(out_features, 16\)"):
        project_quantize(x, weight[:, :15], bias, 8, 4)
    with pytest.raises(TypeError, match="weight must have dtype"):
        project_quantize(x, weight.double(), bias, 8, 4)
    with pytest.raises(ValueError, match="NaN or Inf"):
        project_quantize(x, weight, bias * float("nan"), 8, 4)
