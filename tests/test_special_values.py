"""Every backend's raw kernels on special groups: zeros, ties, subnormals, overflow, NaN/Inf."""

from __future__ import annotations

import itertools

import pytest
import torch

from aiflow_comm.kernels import available_backends
from aiflow_comm.kernels.backends import kernels_of
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FAST = [(b, d) for d in DEVICES for b in available_backends(d) if b != "torch"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (interpreter) on inf and overflow
@pytest.mark.parametrize(("backend", "device"), FAST)
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_special_groups(backend, device, bits, symmetric):
    """Zero, constant, tie, subnormal, huge, overflowing groups match; non-finite: NaN scale.

    In a group holding NaN or Inf only the NaN scale is specified (callers raise on it).
    """
    ties = [127.0, 0.5, 1.5, 2.5, -2.5, -0.5, 3.5, 0.0]
    finite = [
        [0.0] * 8,
        [-0.0, 0.0] * 4,
        [3.0] * 8,
        ties,
        [t / 8 for t in ties],
        [1e-40, -3e-41, 5e-39, 0.0, 2e-45, -1e-45, 7e-42, 1e-38],
        [-3e38, 3e38, 1.0, -1.0, 0.0, 2e38, -2e38, 5.0],
        [1e30, -2e29, 3e28, 4e27, 0.0, -1e30, 6e29, 7e29],
    ]
    nan, inf = float("nan"), float("inf")
    bad = [[nan] + [1.0] * 7, [inf] + [1.0] * 7, [-inf] + [2.0] * 7, [inf, -inf] + [0.0] * 6]
    rows = [finite[:4] + bad[:2], finite[4:] + bad[2:]]
    x = torch.tensor([list(itertools.chain(*groups)) for groups in rows], device=device)
    quantize, dequantize = kernels_of(backend)
    group_ok = torch.tensor([[True] * 4 + [False] * 2] * 2)
    value_ok = group_ok.repeat_interleave(8, dim=1)
    for seed in (-1, 0):
        codes, scales, zero_points = (t.cpu() for t in quantize(x, bits, 8, symmetric, seed))
        want_codes, want_scales, want_zeros = quantize_reference(x.cpu(), bits, 8, symmetric, seed)
        assert torch.equal(scales[group_ok], want_scales[group_ok])
        assert scales[~group_ok].isnan().all()
        byte_ok = group_ok.repeat_interleave(bits, dim=1)  # a group of 8 values takes `bits` bytes
        assert torch.equal(codes[byte_ok], want_codes[byte_ok])
        if not symmetric:
            assert torch.equal(zero_points[group_ok], want_zeros[group_ok])
        args = (codes, scales, zero_points, bits, 8, 48, symmetric, torch.float32)
        decoded = dequantize(*(t.to(device) for t in args[:3]), *args[3:]).cpu()
        want = dequantize_reference(*args)[value_ok]  # 0 * inf scale: NaN in both
        torch.testing.assert_close(decoded[value_ok], want, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(("backend", "device"), FAST)
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_empty(backend, device, shape):
    x = torch.empty(shape, device=device)
    quantize, dequantize = kernels_of(backend)
    for symmetric in (True, False):
        got = quantize(x, 4, 3, symmetric, -1)
        want = quantize_reference(x.cpu(), 4, 3, symmetric)
        assert [t.shape for t in got] == [t.shape for t in want]
        out = dequantize(*got, 4, 3, shape[1], symmetric, torch.bfloat16)
        assert out.shape == shape and out.dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)  # native, torch.isfinite
def test_all_finite_finds_every_nan_and_inf(dtype):
    from aiflow_comm.kernels.ops import all_finite

    values = torch.randn(7, 33).to(dtype)
    assert all_finite(values) and all_finite(values[:, ::3]) and all_finite(values[:0])
    for bad in (float("nan"), float("inf"), float("-inf")):
        for index in ((0, 0), (3, 17), (6, 32)):
            spoiled = values.clone()
            spoiled[index] = bad
            assert not all_finite(spoiled) and not all_finite(spoiled.T)
    big = torch.finfo(dtype).max
    assert all_finite(torch.tensor([big, -big, 0.0, 1e-45]).to(dtype))
