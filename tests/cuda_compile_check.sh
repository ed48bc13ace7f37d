#!/usr/bin/env bash
# Compile-only check of the CUDA backend: csrc/quant_cuda.cu, csrc/fused_cuda.cu (with the launch
# helpers they share, csrc/cuda_launch.cuh, and the standalone kernel header
# csrc/quant_cuda_kernels.cuh) through nvcc against torch's headers, with the flags that
# torch.utils.cpp_extension and setup.py use, for sm_80 and sm_90; csrc/bindings.cpp with WITH_CUDA
# through the host compiler. Needs nvcc, not a GPU, and works with a CPU build of torch (whose
# wheel still ships the ATen/c10 CUDA headers).
#
#   bash tests/cuda_compile_check.sh            # exits non-zero on any error, or on a warning from our files
#   NVCC=/path/to/nvcc PYTHON=/path/to/python CUDA_STD=c++20 bash tests/cuda_compile_check.sh
#   EMULATE=1 bash tests/cuda_compile_check.sh  # also runs the kernels in a host emulator (g++, ~1 min)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
NVCC="${NVCC:-$(command -v nvcc || true)}"
[ -n "$NVCC" ] || NVCC=/usr/local/cuda/bin/nvcc
if [ ! -x "$NVCC" ]; then
  echo "cuda_compile_check: FAIL: nvcc not found (install the CUDA toolkit, or set NVCC=/path/to/nvcc)" >&2
  exit 1
fi
if [ -z "${CUDA_HOME:-}" ]; then  # the toolkit root: the one holding include/cuda_runtime.h
  for candidate in "$(dirname "$(dirname "$(readlink -f "$NVCC")")")" "$(dirname "$(dirname "$NVCC")")" /usr/local/cuda; do
    if [ -f "$candidate/include/cuda_runtime.h" ]; then
      CUDA_HOME="$candidate"
      break
    fi
  done
fi
[ -n "${CUDA_HOME:-}" ] && [ -f "$CUDA_HOME/include/cuda_runtime.h" ] \
  || { echo "cuda_compile_check: FAIL: no CUDA toolkit headers found (set CUDA_HOME)" >&2; exit 1; }
export CUDA_HOME
CUDA_STD="${CUDA_STD:-c++17}"   # setup.py passes -std=c++17 to nvcc
WORK="$(mktemp -d /tmp/aiflow_cuda_check.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "cuda_compile_check: $("$NVCC" --version | tail -n 2 | head -n 1) (CUDA_HOME=$CUDA_HOME)"
echo "cuda_compile_check: python $PY"

# Include dirs as torch.utils.cpp_extension computes them, the Python include dir, the ABI flag.
"$PY" - > "$WORK/torch_flags" <<'PY'
import os
import sysconfig
import torch
from torch.utils import cpp_extension
if cpp_extension.CUDA_HOME is None:  # a CPU build of torch does not look for the toolkit
    cpp_extension.CUDA_HOME = os.environ["CUDA_HOME"]
try:
    paths = cpp_extension.include_paths(device_type="cuda")
except TypeError:  # older torch: include_paths(cuda=True)
    paths = cpp_extension.include_paths(True)
for path in paths + [sysconfig.get_paths()["include"]]:
    print("-I" + path)
print("-D_GLIBCXX_USE_CXX11_ABI=%d" % int(torch._C._GLIBCXX_USE_CXX11_ABI))
print("# torch " + torch.__version__ + ", built with CUDA " + str(torch.version.cuda))
PY
grep '^#' "$WORK/torch_flags" | sed 's/^# /cuda_compile_check: /'
mapfile -t TORCH_FLAGS < <(grep -v '^#' "$WORK/torch_flags")
TORCH_INC="$(printf '%s\n' "${TORCH_FLAGS[@]}" | head -n 1 | sed 's/^-I//')"

# A CPU wheel of torch lacks c10/cuda/impl/cuda_cmake_macros.h, which the build of a CUDA wheel
# generates (it only defines C10_CUDA_BUILD_SHARED_LIBS, for Windows exports). Stand in for it here.
SHIM=()
if [ ! -f "$TORCH_INC/c10/cuda/impl/cuda_cmake_macros.h" ]; then
  mkdir -p "$WORK/shim/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$WORK/shim/c10/cuda/impl/cuda_cmake_macros.h"
  SHIM=("-I$WORK/shim")
  echo "cuda_compile_check: note: this torch has no c10/cuda/impl/cuda_cmake_macros.h (a CPU wheel); using a stand-in"
fi

# COMMON_NVCC_FLAGS of torch.utils.cpp_extension, then setup.py's nvcc flags and macros.
# shellcheck disable=SC2054  # the commas belong to -gencode arguments
NVCC_FLAGS=(
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
  -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr --compiler-options -fPIC
  -O3 "-std=$CUDA_STD" --fmad=false
  -DWITH_CUDA -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
)

status=0
OURS="(quant_cuda(_kernels)?\.cuh?|fused_cuda(_kernels)?\.cuh?|cuda_launch\.cuh|bindings\.cpp|quant\.h)[(:]"  # our files in compiler messages
compile() {  # compile NAME SOURCE EXTRA_FLAGS...
  local name="$1" src="$2"
  shift 2
  local start=$SECONDS
  echo "cuda_compile_check: compiling $name ..."
  if ! "${COMPILER:-$NVCC}" "$@" -c "$src" -o "$WORK/$name.o" > "$WORK/$name.log" 2>&1; then
    cat "$WORK/$name.log" >&2
    echo "cuda_compile_check: FAIL: $name does not compile" >&2
    status=1
    return
  fi
  # Warnings from torch's own headers are not ours; any in our files fails the check.
  if grep -E "$OURS" "$WORK/$name.log" | grep -qiE "warning|error"; then
    grep -E -A3 "$OURS" "$WORK/$name.log" >&2
    echo "cuda_compile_check: FAIL: warnings in our sources ($name)" >&2
    status=1
    return
  fi
  echo "cuda_compile_check: ok: $name ($((SECONDS - start)) s, object $(stat -c %s "$WORK/$name.o") bytes)"
}

# 1. The extension's CUDA translation units, as setup.py builds them, and the bindings that
#    register them (WITH_CUDA), through the host compiler with setup.py's portable C++ flags.
compile quant_cuda "$ROOT/csrc/quant_cuda.cu" "${NVCC_FLAGS[@]}" "${TORCH_FLAGS[@]}" "${SHIM[@]}" -I"$ROOT/csrc"
compile fused_cuda "$ROOT/csrc/fused_cuda.cu" "${NVCC_FLAGS[@]}" "${TORCH_FLAGS[@]}" "${SHIM[@]}" -I"$ROOT/csrc"
COMPILER="${CXX:-c++}" compile bindings_with_cuda "$ROOT/csrc/bindings.cpp" -O0 -std=c++17 -fPIC -Wall \
  -DWITH_CUDA -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_C "${TORCH_FLAGS[@]}" -I"$ROOT/csrc"

# The objects link into one library (no symbol defined twice), and the CUDA entry points that the
# bindings call are defined by the CUDA objects under the same (mangled) names.
if [ "$status" -eq 0 ]; then
  if ! "$NVCC" -shared "$WORK/quant_cuda.o" "$WORK/fused_cuda.o" "$WORK/bindings_with_cuda.o" \
      -o "$WORK/_C.so" > "$WORK/link.log" 2>&1; then
    cat "$WORK/link.log" >&2
    echo "cuda_compile_check: FAIL: the CUDA objects and the bindings do not link together" >&2
    status=1
  fi
  missing="$(comm -23 <(nm -u "$WORK/bindings_with_cuda.o" | awk '{print $2}' | grep -E '(quantize|project)_cuda' | sort -u) \
    <(nm --defined-only "$WORK/quant_cuda.o" "$WORK/fused_cuda.o" | awk '{print $3}' | sort -u))"
  if [ -n "$missing" ]; then
    echo "cuda_compile_check: FAIL: the bindings call CUDA functions that no .cu file defines:" >&2
    echo "$missing" | c++filt >&2
    status=1
  else
    echo "cuda_compile_check: ok: the objects link; the bindings' CUDA entry points are defined"
  fi
fi

# 2. The kernel header on its own: no torch on the include path, every kernel instantiated.
cat > "$WORK/kernels_only.cu" <<'CU'
#include "fused_cuda_kernels.cuh"
template <class Tag> static void instantiate(const void** out, int& k) {
  for (int bits = 2; bits <= 8; bits *= 2) {
    for (int sym = 0; sym < 2; ++sym) {
      for (int stoch = 0; stoch < 2; ++stoch) {
        const qc::QuantKernels q = qc::quant_kernels_for<Tag>(bits, sym != 0, stoch != 0);
        out[k++] = reinterpret_cast<const void*>(q.team);
        out[k++] = reinterpret_cast<const void*>(q.block);
      }
      out[k++] = reinterpret_cast<const void*>(qc::dequant_kernel_for<Tag>(bits, sym != 0));
      for (int tm = 1; tm <= 4; tm += 3) {
        out[k++] = reinterpret_cast<const void*>(qc::fused_kernel_for<Tag>(bits, sym != 0, tm));
      }
    }
  }
}
const void* g_kernels[192];
int instantiate_all() {
  int k = 0;
  instantiate<qc::TagF32>(g_kernels, k);
  instantiate<qc::TagF16>(g_kernels, k);
  instantiate<qc::TagBF16>(g_kernels, k);
  return k;
}
CU
compile kernels_only "$WORK/kernels_only.cu" \
  -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
  -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr -O3 "-std=$CUDA_STD" --fmad=false \
  -gencode arch=compute_90,code=sm_90 -Xptxas -warn-spills,-warn-lmem-usage -I"$ROOT/csrc"

# 3. Optional (EMULATE=1, or EMULATE=full / EMULATE=stress): run the kernel bodies on the host. The
#    header compiles with QC_HOST_EMULATION under g++; a small emulator runs each CUDA thread of a
#    block as a std::thread (warp shuffles and votes through barriers), launches with the kernel
#    and grid choices of csrc/cuda_launch.cuh, and the results are compared bit for bit with
#    aiflow_comm.kernels.reference (run on the CPU). This checks the indexing, packing, reductions
#    and arithmetic without a GPU; it cannot check what only the hardware does (memory model,
#    occupancy, speed).
if [ "${EMULATE:-0}" != "0" ] && [ "$status" -eq 0 ]; then
  EMU_MODE=quick
  case "${EMULATE}" in full) EMU_MODE=full ;; stress) EMU_MODE="stress ${EMU_CASES:-2000} ${EMU_SEED:-7}" ;; esac
  cat > "$WORK/emu.cpp" <<'EMU_CPP'
// Host emulator for csrc/quant_cuda_kernels.cuh: runs the real kernel bodies on host threads,
// one std::thread per CUDA thread of a block, blocks one after another.
#define QC_HOST_EMULATION 1
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>
#include <algorithm>

namespace emu {
struct Warp {
  std::barrier<> bar{32};
  float slot[32];
  bool vote[32];
};
struct Block {
  std::unique_ptr<std::barrier<>> bar;
  std::vector<std::unique_ptr<Warp>> warps;
};
thread_local int t_tid, t_bid;
thread_local Warp* t_warp;
int g_bdim, g_gdim;
Block* g_block;
}  // namespace emu

int qc_emu_thread_idx() { return emu::t_tid; }
int qc_emu_block_idx() { return emu::t_bid; }
int qc_emu_block_dim() { return emu::g_bdim; }
int qc_emu_grid_dim() { return emu::g_gdim; }
float qc_emu_shfl_xor(float v, int m) {
  const int lane = emu::t_tid & 31;
  emu::t_warp->slot[lane] = v;
  emu::t_warp->bar.arrive_and_wait();
  const float r = emu::t_warp->slot[lane ^ m];
  emu::t_warp->bar.arrive_and_wait();
  return r;
}
bool qc_emu_warp_any(bool p) {
  const int lane = emu::t_tid & 31;
  emu::t_warp->vote[lane] = p;
  emu::t_warp->bar.arrive_and_wait();
  bool any = false;
  for (int i = 0; i < 32; ++i) any = any || emu::t_warp->vote[i];
  emu::t_warp->bar.arrive_and_wait();
  return any;
}
void qc_emu_syncthreads() { emu::g_block->bar->arrive_and_wait(); }

#include "fused_cuda_kernels.cuh"

template <class F>
static void launch(unsigned grid, int block, F body) {
  emu::g_bdim = block;
  emu::g_gdim = static_cast<int>(grid);
  for (unsigned b = 0; b < grid; ++b) {
    emu::Block blk;
    blk.bar = std::make_unique<std::barrier<>>(block);
    for (int w = 0; w < block / 32; ++w) blk.warps.push_back(std::make_unique<emu::Warp>());
    emu::g_block = &blk;
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (int t = 0; t < block; ++t) {
      threads.emplace_back([&, t, b] {
        emu::t_tid = t;
        emu::t_bid = static_cast<int>(b);
        emu::t_warp = blk.warps[t / 32].get();
        body();
      });
    }
    for (auto& th : threads) th.join();
  }
}

template <class Tag>
static void run_quant(const qc::QuantParams& p, int bits, bool sym, bool stoch, int block, int resident, int force_block_kernel) {
  const qc::QuantKernels k = qc::quant_kernels_for<Tag>(bits, sym, stoch);
  const int64_t groups = p.rows * p.num_groups;
  if (p.group_size <= qc::kRegisterGroupMax && !force_block_kernel) {
    const int team = qc::quantize_team_size(p.group_size);
    const unsigned grid = qc::grid_size(groups, block / team, resident);
    launch(grid, block, [&] { k.team(p, team); });
  } else {
    const int threads = force_block_kernel > 1 ? force_block_kernel : qc::quantize_block_threads(p.group_size, Tag::kSize);
    const unsigned grid = qc::grid_size(groups, 1, resident);
    launch(grid, threads, [&] { k.block(p); });
  }
}

template <class Tag>
static void run_dequant(qc::DequantParams p, int bits, bool sym, int block, int resident) {
  const qc::DequantKernel k = qc::dequant_kernel_for<Tag>(bits, sym);
  const int64_t items = qc::plan_dequantize(p, Tag::kSize);  // as qc::launch_dequantize does
  const unsigned grid = qc::grid_size(items, block / p.team, resident);
  launch(grid, block, [&] { k(p); });
}

extern "C" {

int64_t emu_row_bytes(int64_t row_len, int64_t bits, int64_t group_size) {
  return qc::row_layout(row_len, bits, group_size).row_bytes;
}

float emu_uniform_noise(int64_t seed, int64_t index) {
  return aiflow_noise::uniform(static_cast<uint32_t>(static_cast<uint64_t>(seed) & 0xffffffffu), index);
}

// dtype: 0 float32, 1 float16, 2 bfloat16. Outputs contiguous.
int emu_quantize(const void* x, int dtype, int64_t rows, int64_t row_len, int64_t x_row_stride, int64_t bits,
                 int64_t group_size, int symmetric, int64_t seed, uint8_t* codes, float* scales,
                 float* zero_points, int block, int resident, int force_block_kernel) {
  const qc::RowLayout l = qc::row_layout(row_len, bits, group_size);
  if (rows == 0 || row_len == 0) return 0;
  qc::QuantParams p{};
  p.x = x;
  p.x_row_stride = rows > 1 ? x_row_stride : 0;
  p.rows = rows;
  qc::set_layout(p, l);
  p.codes = codes;
  p.codes_row_stride = l.row_bytes;
  p.scales = scales;
  p.scales_row_stride = l.num_groups;
  p.zero_points = symmetric ? nullptr : zero_points;
  p.zero_points_row_stride = symmetric ? 0 : l.num_groups;
  p.seed = static_cast<uint32_t>(static_cast<uint64_t>(seed) & 0xffffffffu);
  const int64_t den = symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
  p.scale_div = static_cast<float>(den);
  const bool stoch = seed >= 0;
  switch (dtype) {
    case 0: run_quant<qc::TagF32>(p, (int)bits, symmetric, stoch, block, resident, force_block_kernel); break;
    case 1: run_quant<qc::TagF16>(p, (int)bits, symmetric, stoch, block, resident, force_block_kernel); break;
    default: run_quant<qc::TagBF16>(p, (int)bits, symmetric, stoch, block, resident, force_block_kernel); break;
  }
  return 0;
}

// The fused projection kernel (fused_cuda_kernels.cuh) on (rows, in) x of `dtype` (row stride
// x_row_stride), a contiguous float32 (width, in) weight and a bias or null, `tm` rows a warp, on
// `grid` blocks. Outputs contiguous.
int emu_project_quantize(const void* x, int dtype, int64_t rows, int64_t in, int64_t x_row_stride,
                         const float* weight, const float* bias, int64_t width, int64_t bits,
                         int64_t group_size, int symmetric, uint8_t* codes, float* scales,
                         float* zero_points, int tm, int grid) {
  const qc::RowLayout l = qc::row_layout(width, bits, group_size);
  qc::FusedParams f{};
  f.x = x;
  f.x_row_stride = rows > 1 ? x_row_stride : 0;
  f.in_features = in;
  f.weight = weight;
  f.bias = bias;
  qc::set_layout(f.q, l);
  f.q.rows = rows;
  f.q.codes = codes;
  f.q.codes_row_stride = l.row_bytes;
  f.q.scales = scales;
  f.q.scales_row_stride = l.num_groups;
  f.q.zero_points = symmetric ? nullptr : zero_points;
  f.q.zero_points_row_stride = symmetric ? 0 : l.num_groups;
  f.q.scale_div = static_cast<float>(symmetric ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1);
  f.team = qc::quantize_team_size(f.q.group_size);
  qc::FusedKernel k;
  switch (dtype) {
    case 0: k = qc::fused_kernel_for<qc::TagF32>((int)bits, symmetric, tm); break;
    case 1: k = qc::fused_kernel_for<qc::TagF16>((int)bits, symmetric, tm); break;
    default: k = qc::fused_kernel_for<qc::TagBF16>((int)bits, symmetric, tm); break;
  }
  launch(static_cast<unsigned>(grid), qc::kFusedThreads, [&] { k(f); });
  return 0;
}

int emu_dequantize(const uint8_t* codes, int64_t codes_row_stride, const float* scales, int64_t scales_row_stride,
                   const float* zero_points, int64_t zp_row_stride, int64_t rows, int64_t row_len, int64_t bits,
                   int64_t group_size, int symmetric, int dtype, void* out, int block, int resident) {
  const qc::RowLayout l = qc::row_layout(row_len, bits, group_size);
  if (rows == 0 || row_len == 0) return 0;
  qc::DequantParams p{};
  p.codes = codes;
  p.codes_row_stride = rows > 1 ? codes_row_stride : 0;
  p.scales = scales;
  p.scales_row_stride = rows > 1 ? scales_row_stride : 0;
  p.zero_points = symmetric ? nullptr : zero_points;
  p.zero_points_row_stride = (symmetric || rows <= 1) ? 0 : zp_row_stride;
  p.out = out;
  p.out_row_stride = row_len;
  p.rows = rows;
  qc::set_layout(p, l);
  switch (dtype) {
    case 0: run_dequant<qc::TagF32>(p, (int)bits, symmetric, block, resident); break;
    case 1: run_dequant<qc::TagF16>(p, (int)bits, symmetric, block, resident); break;
    default: run_dequant<qc::TagBF16>(p, (int)bits, symmetric, block, resident); break;
  }
  return 0;
}
}
EMU_CPP
  cat > "$WORK/test_emu.py" <<'EMU_PY'
"""Compare the host emulation of csrc/quant_cuda_kernels.cuh with aiflow_comm.kernels.reference."""
import ctypes
import os
import random
import sys
import time

import torch

ROOT = os.environ["AIFLOW_ROOT"]
sys.path.insert(0, ROOT)
from aiflow_comm.kernels import reference as R  # noqa: E402
from aiflow_comm.kernels.layout import GroupLayout  # noqa: E402

lib = ctypes.CDLL(os.environ["EMU_LIB"])
i64, i32, vp = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
lib.emu_row_bytes.restype = i64; lib.emu_row_bytes.argtypes = [i64, i64, i64]
lib.emu_uniform_noise.restype = ctypes.c_float; lib.emu_uniform_noise.argtypes = [i64, i64]
lib.emu_quantize.argtypes = [vp, i32, i64, i64, i64, i64, i64, i32, i64, vp, vp, vp, i32, i32, i32]
lib.emu_dequantize.argtypes = [vp, i64, vp, i64, vp, i64, i64, i64, i64, i64, i32, i32, vp, i32, i32]
lib.emu_project_quantize.argtypes = [vp, i32, i64, i64, i64, vp, vp, i64, i64, i64, i32, vp, vp, vp, i32, i32]
DT = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}

def emu_quant(x, bits, gs, sym, seed, block=64, resident=3, force_block=0):
    Rr, D = x.shape
    lay = GroupLayout(rows=Rr, row_len=D, bits=bits, group_size=gs)
    rb = lib.emu_row_bytes(D, bits, gs)
    assert rb == lay.row_bytes, (rb, lay.row_bytes, D, bits, gs)
    codes = torch.full((Rr, rb), 0xAB, dtype=torch.uint8)  # poison
    scales = torch.full((Rr, lay.num_groups), 12345.0)
    zps = torch.empty(0) if sym else torch.full((Rr, lay.num_groups), 777.0)
    lib.emu_quantize(x.data_ptr(), DT[x.dtype], Rr, D, x.stride(0), bits, gs, int(sym), seed,
                     codes.data_ptr(), scales.data_ptr(), zps.data_ptr() if not sym else None, block, resident, force_block)
    return codes, scales, zps

def emu_dequant(codes, scales, zps, bits, gs, D, sym, dtype, block=64, resident=3):
    Rr = codes.shape[0]
    out = torch.full((Rr, D), 999.0, dtype=dtype)
    lib.emu_dequantize(codes.data_ptr(), codes.stride(0) if codes.dim() == 2 else 0, scales.data_ptr(), scales.stride(0),
                       None if sym else zps.data_ptr(), 0 if sym else zps.stride(0), Rr, D, bits, gs, int(sym), DT[dtype],
                       out.data_ptr(), block, resident)
    return out

def same(a, b):
    """Bitwise-equal floats, except NaN vs NaN (any payload) and -0 vs +0."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    an, bn = torch.isnan(a), torch.isnan(b)
    if not torch.equal(an, bn):
        return False
    return torch.equal(torch.where(an, 0, a), torch.where(bn, 0, b))

def make_x(Rr, D, dtype, kind, gen):
    if kind == "normal":
        x = torch.randn(Rr, D, generator=gen) * (10 ** torch.empty(Rr, 1).uniform_(-3, 3, generator=gen))
    elif kind == "specials":
        x = torch.randn(Rr, D, generator=gen)
        m = torch.rand(Rr, D, generator=gen)
        x[m < 0.02] = float("nan"); x[(m >= 0.02) & (m < 0.04)] = float("inf"); x[(m >= 0.04) & (m < 0.06)] = -float("inf")
        x[(m >= 0.06) & (m < 0.15)] = 0.0; x[(m >= 0.15) & (m < 0.2)] = -0.0
    elif kind == "zeros_const":
        x = torch.zeros(Rr, D); x[Rr // 2:] = 3.25; x[:, ::7] = -0.0
    elif kind == "wide":  # huge dynamic range incl. subnormals and near-overflow
        e = torch.randint(-149, 128, (Rr, D), generator=gen).float()
        x = torch.sign(torch.randn(Rr, D, generator=gen)) * torch.exp2(e) * (1 + torch.rand(Rr, D, generator=gen))
        x = torch.nan_to_num(x, posinf=3e38, neginf=-3e38)
    elif kind == "ties":  # many values exactly at k + 0.5 times a power-of-two scale
        k = torch.randint(-300, 300, (Rr, D), generator=gen).float() / 2
        x = k * 2.0 ** torch.randint(-5, 5, (Rr, 1), generator=gen).float()
    elif kind == "tiny":
        x = torch.randn(Rr, D, generator=gen) * 1e-39
    elif kind == "huge":
        x = torch.randn(Rr, D, generator=gen) * 1e37
    return x.to(dtype)

failures = 0
def check(name, ok):
    global failures
    if not ok:
        failures += 1
        print("FAIL", name, flush=True)

def run_case(Rr, D, gs, bits, sym, seed, dtype, kind, gen, stride_pad=0, offset=0, block=64, resident=3, force_block=0):
    base = make_x(Rr, D + stride_pad + offset, dtype, kind, gen)
    x = base[:, offset:offset + D]
    assert x.stride(1) == 1
    rc, rs, rz = R.quantize_reference(x, bits, gs, sym, seed)
    ec, es, ez = emu_quant(x, bits, gs, sym, seed, block, resident, force_block)
    tag = f"R={Rr} D={D} gs={gs} bits={bits} sym={sym} seed={seed} {dtype} {kind} pad={stride_pad} off={offset} block={block} fb={force_block}"
    ok = torch.equal(rc, ec) and same(rs, es) and (sym and ez.numel() == 0 or same(rz, ez))
    if not ok:
        bad_codes = (rc != ec).nonzero()[:5].tolist() if rc.shape == ec.shape else "shape"
        bad_s = (~((rs == es) | (rs.isnan() & es.isnan()))).nonzero()[:5].tolist()
        print("  codes diff at", bad_codes, "scales diff at", bad_s)
        if bad_s:
            i, j = bad_s[0]; print("  scale ref", rs[i, j].item(), "emu", es[i, j].item())
        if not sym:
            bad_z = (~((rz == ez) | (rz.isnan() & ez.isnan()))).nonzero()[:5].tolist(); print("  zp diff at", bad_z)
    check("quant " + tag, ok)
    # dequantize (the reference of the same codes)
    for odt in (torch.float32, torch.bfloat16, torch.float16):
        rd = R.dequantize_reference(rc, rs, rz, bits, gs, D, sym, odt)
        ed = emu_dequant(rc, rs, rz, bits, gs, D, sym, odt, block, resident)
        okd = same(rd, ed)
        if not okd:
            bad = (~((rd == ed) | (rd.isnan() & ed.isnan()))).nonzero()[:5].tolist(); print("  dequant diff at", bad)
        check(f"dequant {odt} " + tag, okd)

t0 = time.time()
gen = torch.Generator().manual_seed(0)
# 1) the noise hash, including indices >= 2**32
idx = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**32 + 5, 2**40 + 12345, 2**62 + 99, 123456789012]
idx += [random.Random(1).randrange(0, 2**63) for _ in range(200)]
for seed in (0, 1, 12345, 2**32 - 1, 2**32 + 7, 2**40 + 3):
    ref = R.uniform_noise(seed, torch.tensor(idx, dtype=torch.int64))
    emu = torch.tensor([lib.emu_uniform_noise(seed, i) for i in idx], dtype=torch.float32)
    check(f"noise seed={seed}", torch.equal(ref, emu))
print("noise ok", flush=True)

mode = sys.argv[1] if len(sys.argv) > 1 else "quick"
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
cases = []
if mode in ("quick", "full"):
    # deterministic coverage of group sizes (team sizes 1..32 and block kernel), bits, schemes, dtypes
    for gs in (1, 2, 3, 5, 8, 16, 31, 32, 33, 64, 100, 128, 129, 256, 512, 1000, 1024, 1025, 2048, 3000):
        for bits in (2, 4, 8):
            for sym in (True, False):
                D = rng.choice([gs * 2 + rng.randrange(0, gs + 1), gs * 3, max(1, gs - 1), gs + 1])
                D = min(D, 7000)
                Rr = rng.choice([1, 2, 3, 5])
                seed = rng.choice([-1, -1, 0, 7, 2**33 + 5])
                dtype = rng.choice([torch.float32, torch.float16, torch.bfloat16])
                kind = rng.choice(["normal", "normal", "specials", "wide", "ties", "zeros_const"])
                cases.append(dict(Rr=Rr, D=D, gs=gs, bits=bits, sym=sym, seed=seed, dtype=dtype, kind=kind,
                                  stride_pad=rng.choice([0, 0, 3, 16]), offset=rng.choice([0, 0, 1, 3])))
    # every kind x dtype at the benchmark shape family
    for kind in ("normal", "specials", "zeros_const", "wide", "ties", "tiny", "huge"):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for sym in (True, False):
                for seed in (-1, 3):
                    cases.append(dict(Rr=4, D=384, gs=128, bits=rng.choice([2, 4, 8]), sym=sym, seed=seed, dtype=dtype, kind=kind))
    # the block (large-group) kernel forced on small groups, and 256-thread blocks
    for gs in (1, 7, 128, 300):
        cases.append(dict(Rr=3, D=gs * 2 + 1, gs=gs, bits=4, sym=False, seed=-1, dtype=torch.bfloat16, kind="specials", force_block=1))
        cases.append(dict(Rr=3, D=gs * 2 + 1, gs=gs, bits=8, sym=True, seed=5, dtype=torch.float32, kind="normal", force_block=96))
        cases.append(dict(Rr=2, D=gs * 3 + 5, gs=gs, bits=2, sym=False, seed=-1, dtype=torch.float16, kind="wide", force_block=512))
    for gs in (4, 128, 1024, 2000):
        cases.append(dict(Rr=9, D=gs * 3 - 1, gs=gs, bits=8, sym=True, seed=-1, dtype=torch.bfloat16, kind="normal", block=256, resident=2))
    # group_size >= D, tiny shapes
    for (Rr, D, gs) in ((1, 1, 1), (1, 1, 128), (3, 5, 1000), (2, 7, 7), (1, 3000, 100000), (6, 1, 4)):
        for bits in (2, 4, 8):
            cases.append(dict(Rr=Rr, D=D, gs=gs, bits=bits, sym=bits != 4, seed=-1, dtype=torch.float16, kind="normal"))
if mode in ("full", "stress"):
    for _ in range(300 if mode == "full" else int(sys.argv[2])):
        gs = rng.choice([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 200, 256, 384, 512, 768, 1024, 1500, 4096])
        D = rng.randrange(1, 3 * gs + 3) if gs < 1500 else rng.randrange(1, 2 * gs + 3)
        cases.append(dict(Rr=rng.randrange(1, 6), D=D, gs=gs, bits=rng.choice([2, 4, 8]), sym=rng.random() < 0.5,
                          seed=rng.choice([-1, -1, 0, 99, 2**35 + 1]), dtype=rng.choice([torch.float32, torch.float16, torch.bfloat16]),
                          kind=rng.choice(["normal", "specials", "wide", "ties", "zeros_const", "tiny", "huge"]),
                          stride_pad=rng.choice([0, 1, 8]), offset=rng.choice([0, 1, 2, 8]),
                          block=rng.choice([32, 64, 64, 256]), resident=rng.choice([1, 2, 3, 7])))
print(len(cases), "cases", flush=True)
for i, c in enumerate(cases):
    run_case(gen=gen, **c)
    if i % 25 == 0:
        print(f"  {i}/{len(cases)} {time.time() - t0:.0f}s failures={failures}", flush=True)


def emu_project(x, w, b, bits, gs, sym, tm, grid):
    rows, inp = x.shape
    width = w.shape[0]
    lay = GroupLayout(rows=rows, row_len=width, bits=bits, group_size=gs)
    codes = torch.full((rows, lay.row_bytes), 0xAB, dtype=torch.uint8)
    scales = torch.full((rows, lay.num_groups), 12345.0)
    zps = torch.empty(0) if sym else torch.full((rows, lay.num_groups), 777.0)
    lib.emu_project_quantize(x.data_ptr(), DT[x.dtype], rows, inp, x.stride(0), w.data_ptr(),
                             None if b is None else b.data_ptr(), width, bits, gs, int(sym),
                             codes.data_ptr(), scales.data_ptr(), None if sym else zps.data_ptr(), tm, grid)
    return codes, scales, zps


def fused_case(rows, inp, width, gs, bits, sym, dtype, bias, tm, grid, integers, x_pad=0):
    """The fused kernel against quantize_reference(x.float() @ w.T + b): bit for bit when every
    partial sum is an exact small integer; else every code within one step, scales close."""
    if integers:
        x = torch.randint(-4, 5, (rows, inp + x_pad), generator=gen).to(dtype)
        w = torch.randint(-4, 5, (width, inp), generator=gen).float()
        b = torch.randint(-4, 5, (width,), generator=gen).float() if bias else None
    else:
        x = torch.randn(rows, inp + x_pad, generator=gen).to(dtype)
        w = torch.randn(width, inp, generator=gen) / max(inp, 1) ** 0.5
        b = torch.randn(width, generator=gen) if bias else None
    x = x[:, :inp]
    y = x.float() @ w.T + (b if b is not None else 0)
    rc, rs, rz = R.quantize_reference(y, bits, gs, sym, -1)
    ec, es, ez = emu_project(x, w, b, bits, gs, sym, tm, grid)
    tag = f"fused rows={rows} in={inp} width={width} gs={gs} bits={bits} sym={sym} {dtype} bias={bias} tm={tm} grid={grid} int={integers}"
    lay = GroupLayout(rows=rows, row_len=width, bits=bits, group_size=gs)
    diff = (R.unpack_codes(ec, lay).int() - R.unpack_codes(rc, lay).int()).abs()
    if integers:
        ok = torch.equal(rc, ec) and same(rs, es) and (sym or same(rz, ez))
    else:
        ok = int(diff.max()) <= 1 and torch.allclose(es, rs, rtol=1e-5, atol=1e-6)
        ok = ok and (sym or torch.allclose(ez, rz, rtol=1e-5, atol=1e-5))
    if not ok:
        print("  codes differing:", int((diff != 0).sum()), "max", int(diff.max()))
    check(tag, ok)


fused = 0
if mode in ("quick", "full"):
    for rows, inp, width, gs in ((1, 1, 1, 1), (5, 7, 5, 4), (9, 33, 17, 8), (40, 64, 32, 32),
                                 (70, 300, 96, 32), (33, 40, 128, 128), (3, 0, 20, 7), (17, 96, 127, 1000)):
        for bits, sym in ((8, True), (4, False), (2, True)):
            for dtype in (torch.float32, torch.bfloat16, torch.float16):
                for integers in (True, False):
                    tm = 4 if rows > 32 else 1
                    grid = 1 if (rows + bits) % 3 == 0 else 2  # grid-stride over row blocks
                    fused_case(rows, inp, width, gs, bits, sym, dtype, (rows + inp) % 2 == 0, tm, grid,
                               integers, x_pad=3 if dtype == torch.float16 else 0)
                    fused += 1
    print(f"fused ok so far: {fused} cases, failures={failures}", flush=True)
print(f"done: {len(cases)} + {fused} fused cases, {failures} failures, {time.time() - t0:.0f}s")
sys.exit(1 if failures else 0)
EMU_PY
  echo "cuda_compile_check: building the host emulator of the kernels ..."
  CUDA_INC="$CUDA_HOME/include"
  if ! g++ -std=c++20 -O2 -fPIC -shared -ffp-contract=off -Wall -Wextra -Wno-unknown-pragmas \
      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
      -D__CUDA_NO_HALF2_OPERATORS__ -I"$ROOT/csrc" -I"$CUDA_INC" "$WORK/emu.cpp" -o "$WORK/libemu.so" -lpthread \
      > "$WORK/emu_build.log" 2>&1 || grep -qE "warning" "$WORK/emu_build.log"; then
    cat "$WORK/emu_build.log" >&2
    echo "cuda_compile_check: FAIL: the host emulator does not build cleanly" >&2
    status=1
  else
    echo "cuda_compile_check: emulating the kernels against the reference ($EMU_MODE) ..."
    # shellcheck disable=SC2086
    if AIFLOW_ROOT="$ROOT" EMU_LIB="$WORK/libemu.so" "$PY" "$WORK/test_emu.py" $EMU_MODE > "$WORK/emu.log" 2>&1; then
      echo "cuda_compile_check: ok: emulation ($(tail -n 1 "$WORK/emu.log"))"
    else
      tail -n 40 "$WORK/emu.log" >&2
      echo "cuda_compile_check: FAIL: the emulated kernels differ from the reference" >&2
      status=1
    fi
  fi
fi

if [ "$status" -ne 0 ]; then
  echo "cuda_compile_check: FAILED"
  exit 1
fi
EMU_NOTE=""
[ "${EMULATE:-0}" = "0" ] || EMU_NOTE="; host emulation ($EMULATE) matches the reference"
echo "cuda_compile_check: PASSED (csrc/quant_cuda.cu and csrc/fused_cuda.cu for sm_80 and sm_90, -std=$CUDA_STD; bindings with WITH_CUDA; kernel header standalone$EMU_NOTE)"
