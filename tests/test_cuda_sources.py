"""The CUDA sources compile with nvcc against torch's headers (when nvcc is installed).

A machine without a GPU cannot run the kernels; this checks that csrc/quant_cuda.cu,
csrc/fused_cuda.cu and their kernel header build for sm_80 and sm_90, and that they link with the
bindings compiled WITH_CUDA (about four minutes on two cores); benchmarks/gpu_check.sh runs the
kernels where there is a GPU, and `EMULATE=1 bash tests/cuda_compile_check.sh` runs the kernel
bodies on the host.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "cuda_compile_check.sh"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_sources_compile():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
