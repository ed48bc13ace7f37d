"""The fused projection ops: reference = composition, cpp within the bounded-difference rule."""

from __future__ import annotations

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


def assert_codes_close(got, want) -> None:
    """Equal codes except a few (at most 0.1%, and at least 1 allowed), each one step off."""
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got.scales, want.scales, rtol=1e-5, atol=0)
    if want.zero_points is not None:
        torch.testing.assert_close(got.zero_points, want.zero_points, rtol=1e-5, atol=1e-6)
    diff = (_codes(got) - _codes(want)).abs()
    assert diff.numel() == 0 or int(diff.max()) <= 1
    assert int((diff != 0).sum()) <= max(1, diff.numel() // 1000)


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
        assert_codes_close(got, want)
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
    with pytest.raises(ValueError, match="NaN or Inf"):
        project_quantize(torch.full((2, 8), float("nan")), weight, backend="torch")
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


@needs_cpp
def test_compiles_fullgraph():
    weight, bias = _projection(16, 8, torch.float32, True)

    def roundtrip(x):
        q = project_quantize(x, weight, bias, 8, 4)
        return dequantize_project(q, weight.T.contiguous())

    x = torch.randn(6, 16)
    torch.testing.assert_close(torch.compile(roundtrip, fullgraph=True)(x), roundtrip(x))
