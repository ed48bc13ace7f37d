"""The CUDA sources compile with nvcc against torch's headers (when nvcc is installed).

A machine without a GPU cannot run the kernels; this checks that csrc/quant_cuda.cu,
csrc/fused_cuda.cu and their kernel headers build for sm_80 and sm_90, and that they link with the
bindings compiled WITH_CUDA (about six minutes on two cores), then runs the kernel bodies on the
host (`EMULATE=1`: a g++ emulator of threads, warps and shared memory, under a minute) against the
reference: the quantize and dequantize kernels bit for bit, the fused projection kernel bit for bit
where every sum is exact and within one step otherwise. benchmarks/gpu_check.sh runs the kernels
where there is a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "cuda_compile_check.sh"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_sources_compile():
    env = {**os.environ, "EMULATE": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1500, env=env
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
