"""pytest-benchmark cases: the fused ops beside the matmul alone and the separate ops.

Compare the ``matmul`` case's time with ``separate`` and ``fused`` for each shape and op in one
run: ``test_fused`` projects and quantizes, ``test_dequantize`` decodes and projects back.
"""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.fused import SHAPES, dequantize_runs, fused_runs
from aiflow_comm.kernels import available_backends, project_quantize

BACKEND = available_backends("cpu")[0]


@pytest.fixture(scope="module", params=list(SHAPES), ids=list(SHAPES))
def problem(request):
    rows, inp, out = SHAPES[request.param]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inp, generator=generator)
    weight = torch.randn(out, inp, generator=generator) / inp**0.5
    return x, weight, torch.randn(out, generator=generator)


@pytest.mark.parametrize("variant", ["matmul", "separate", "fused"])
def test_fused(benchmark, problem, variant):
    benchmark(fused_runs(*problem, 8, 32, BACKEND)[variant])


@pytest.fixture(scope="module")
def quantized(problem):
    x, weight, bias = problem
    q = project_quantize(x, weight, bias, 8, 32, backend=BACKEND)
    generator = torch.Generator().manual_seed(1)
    back = torch.randn(x.shape[1], weight.shape[0], generator=generator) / weight.shape[0] ** 0.5
    return q, back, torch.randn(x.shape[1], generator=generator)


@pytest.mark.parametrize("variant", ["matmul", "separate", "fused"])
def test_dequantize(benchmark, quantized, variant):
    benchmark(dequantize_runs(*quantized, BACKEND)[variant])
