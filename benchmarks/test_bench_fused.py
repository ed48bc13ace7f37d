"""pytest-benchmark cases: fused projection+quantize beside the matmul alone and the separate ops.

Compare the ``matmul`` case's time with ``separate`` and ``fused`` for each shape in one run.
"""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.fused import SHAPES, fused_runs
from aiflow_comm.kernels import available_backends

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
