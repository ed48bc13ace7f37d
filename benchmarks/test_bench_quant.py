"""pytest-benchmark cases: quantize/dequantize per backend beside a copy and torch.compile.

Run with ``make bench``. Compare the ``copy`` case's time with each backend's in one run; the
ratios, not the absolute numbers, are what carries between machines.
"""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.kernels import available_backends, dequantize_packed, quantize_packed
from aiflow_comm.kernels.reference import quantize_reference

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BACKENDS = [b for b in available_backends(DEVICE) if not (b == "triton" and DEVICE == "cpu")]
ROWS, ROW_LEN = 4096, 4096  # 64 MiB of float32


@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=str)
def features(request) -> torch.Tensor:
    return torch.randn(ROWS, ROW_LEN, device=DEVICE).to(request.param)


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def test_copy(benchmark, features):
    out = torch.empty_like(features)
    benchmark(lambda: (out.copy_(features), _sync()))


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_quantize(benchmark, features, backend, bits):
    benchmark(lambda: (quantize_packed(features, bits, 128, backend=backend), _sync()))


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dequantize(benchmark, features, backend, bits):
    codes, scales, zero_points = quantize_packed(features, bits, 128, backend="torch")
    benchmark(
        lambda: (
            dequantize_packed(
                codes, scales, zero_points, bits, 128, ROW_LEN, True, features.dtype, backend
            ),
            _sync(),
        )
    )


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_compiled_reference(benchmark, features, bits):
    compiled = torch.compile(lambda x: quantize_reference(x, bits, 128, True), dynamic=False)
    compiled(features)
    benchmark(lambda: (compiled(features), _sync()))
