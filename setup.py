"""Builds aiflow_comm._C: the C++ (CPU, OpenMP) kernels always, the CUDA kernels when possible.

The CUDA part is built when a CUDA toolchain (nvcc) is found and the installed torch is a CUDA
build; set AIFLOW_COMM_NO_CUDA=1 to skip it, or AIFLOW_COMM_NO_EXT=1 to build no extension at all
(the package then runs on its pure-PyTorch and Triton backends).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

CSRC = "csrc"
# Exactness needs IEEE arithmetic: no -ffast-math, no FMA contraction. -fno-trapping-math only lets
# the vectorizer turn comparisons into selects (results are unchanged: no code enables FP traps).
BASE_CXX_FLAGS = [
    "-O3",
    "-std=c++17",
    "-fopenmp",
    "-ffp-contract=off",
    "-fno-math-errno",
    "-fno-trapping-math",
]
NVCC_FLAGS = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "--fmad=false"]


def _say(message: str) -> None:
    print(f"aiflow-comm setup: {message}", file=sys.stderr)


def _cpu_flags() -> list[str]:
    """SIMD flags for the build machine's CPU (AIFLOW_COMM_CPU_FLAGS overrides, "" for none).

    The extension is built where it is installed; AVX2 and AVX-512 are used only when this CPU
    has them, so the library never carries instructions its own machine cannot run.
    """
    if "AIFLOW_COMM_CPU_FLAGS" in os.environ:
        return os.environ["AIFLOW_COMM_CPU_FLAGS"].split()
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split() for line in info if line.startswith("flags")), [])
    except OSError:
        return []
    have = set(flags)
    chosen = ["-mavx2", "-mf16c"] if {"avx2", "f16c"} <= have else []
    if chosen and {"avx512f", "avx512bw", "avx512vl"} <= have:
        chosen += ["-mavx512f", "-mavx512bw", "-mavx512vl"]  # narrowing stores (vpmovdb)
    return chosen


def _extensions() -> tuple[list, dict]:
    if os.environ.get("AIFLOW_COMM_NO_EXT") == "1":
        _say("AIFLOW_COMM_NO_EXT=1: building no extension (pure-PyTorch and Triton backends only)")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        _say(
            "torch is not installed in the build environment: skipping aiflow_comm._C "
            "(install torch first, then pip install --no-build-isolation)"
        )
        return [], {}
    sources = [
        f"{CSRC}/bindings.cpp",
        f"{CSRC}/quant_cpu.cpp",
        f"{CSRC}/fused_cpu.cpp",
        f"{CSRC}/packed_gemm.cpp",
        f"{CSRC}/gaussian_cpu.cpp",
    ]
    cxx_flags = BASE_CXX_FLAGS + _cpu_flags()
    _say(f"C++ flags: {' '.join(cxx_flags)}")
    cuda_home = cpp_extension.CUDA_HOME
    want_cuda = os.environ.get("AIFLOW_COMM_NO_CUDA") != "1"
    if want_cuda and torch.version.cuda and cuda_home:
        _say(f"building aiflow_comm._C with C++ (OpenMP) and CUDA kernels (CUDA_HOME={cuda_home})")
        extension = cpp_extension.CUDAExtension(
            "aiflow_comm._C",
            [*sources, f"{CSRC}/quant_cuda.cu", f"{CSRC}/fused_cuda.cu"],
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": NVCC_FLAGS},
            extra_link_args=["-fopenmp"],
        )
    else:
        reason = (
            "AIFLOW_COMM_NO_CUDA=1"
            if not want_cuda
            else "torch is a CPU build"
            if not torch.version.cuda
            else "no CUDA toolchain found"
        )
        _say(f"building aiflow_comm._C with C++ (OpenMP) kernels; skipping CUDA kernels: {reason}")
        extension = cpp_extension.CppExtension(
            "aiflow_comm._C",
            sources,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"],
        )
    return [extension], {"build_ext": cpp_extension.BuildExtension}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
