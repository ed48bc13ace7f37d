#!/usr/bin/env bash
# One prepared GPU check of the quantization backends, for a machine with an NVIDIA GPU (H100/H200),
# nvcc and a CUDA build of torch. It downloads nothing. Steps, most informative first:
#   1. the card (nvidia-smi) and the Python environment: .venv, made if missing from a python3 that
#      has a CUDA torch (--system-site-packages: its torch, triton and pytest);
#   2. builds aiflow_comm._C with its CUDA kernels (pip install -e . --no-build-isolation --no-deps),
#      for this card's architecture only;
#   3. an inline exactness check: aiflow_comm._C.quantize_cuda/dequantize_cuda and
#      aiflow_comm.kernels.triton_quant against aiflow_comm.kernels.reference run on the CPU (as
#      tests/test_backends_exact.py does), bit for bit, over shapes, group sizes, bits, schemes,
#      seeds, dtypes and unaligned rows; bad arguments raise; empty inputs. The cuda pass runs
#      and prints its result first: the triton pass compiles kernels for each group size (in the
#      first GPU run it did not finish within a 90 s timeout);
#   3b. the fused ops (project_quantize, dequantize_project) of the triton and cuda backends against
#      the torch reference run on the CPU, within the bound of tests/test_fused.py (a few codes,
#      at most 0.1%, each one step off; scales close), over odd shapes, group sizes (wider than a
#      tile, larger than the row), bits, schemes, dtypes, bias or not, strided inputs and the
#      shapes of `aiflow-comm bench fused`; bad arguments of the cuda entry points raise;
#   4. timings (triton.testing.do_bench, median) of bf16 -> int8 and int4, group 128, symmetric,
#      on a 256 MiB input, quantize and dequantize: torch eager reference, torch.compile(reference),
#      triton, cuda, and a device-to-device copy of the same input; GB/s counts bytes read + bytes
#      written, and each row gives its fraction of the copy's GB/s;
#   4b. `aiflow-comm bench fused --device cuda` for the triton and cuda backends, float32 and
#      bfloat16: fused projection+quantize beside the matmul alone and the matmul followed by the
#      plain quantize op of the same backend (do_bench medians), on the bench's three shapes;
#      with --no-finite-check first (check_finite=False: no NaN/Inf check, which reads the scales
#      back, a device sync per call), then with the check;
#   4c. a torch.profiler table of the kernels the cuda fused op launches, beside addmm;
#   5. pytest -q tests -k "cuda or triton";
#   6. compute-sanitizer memcheck of the CUDA kernels (plain and fused) on small cases.
# Every step runs; the script exits non-zero at the end if any failed (at once if the environment
# or the build is unusable). With $OUT set, the logs and the table (.md, .json) are written there.
# About 6 to 10 minutes on an H100; SKIP_COMPILE=1, SKIP_EXACT=1 (step 3), SKIP_FUSED=1 (3b, 4b,
# 4c), SKIP_BENCH=1 (4), SKIP_PYTEST=1, SKIP_SANITIZER=1 shorten it. Within one 600 s call of a
# short lease, the fused target first: SKIP_EXACT=1 SKIP_BENCH=1 SKIP_PYTEST=1 SKIP_SANITIZER=1.
# The build needs setuptools >= 77; a lent machine without internet gets it carried from here:
#   echo /.whl/ >> .git/info/exclude
#   .venv/bin/python -m pip download -q --no-deps --only-binary=:all: -d .whl setuptools==80.9.0
# then, with .whl carried, prefix the command with
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1;
#
#   bash benchmarks/gpu_check.sh
#   VENV=/path/venv BASE_PYTHON=/path/python3 bash benchmarks/gpu_check.sh   # VENV=none: no venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
BASE_PYTHON="${BASE_PYTHON:-python3}"
SCRATCH="$(mktemp -d /tmp/aiflow_gpu_check.XXXXXX)"
LOGS="${OUT:-$SCRATCH}"  # at most 11 files land here: 9 logs and the table (.md, .json)
mkdir -p "$LOGS"
FAILED=()
T0=$SECONDS

say() { echo "gpu_check [$((SECONDS - T0))s]: $*"; }
fail() { say "FAIL: $*"; FAILED+=("$*"); }
die() { say "FATAL: $*"; exit 1; }
# run_logged LOG SECONDS SHOWN COMMAND...: COMMAND (stdout and stderr) under `timeout SECONDS`, into
# $LOGS/LOG and onto the screen: its last SHOWN lines when it ends, or SHOWN=all: every line as it
# comes. Sets rc to COMMAND's exit status (124: it ran past SECONDS) and never stops the script.
run_logged() {
  local log="$1" seconds="$2" shown="$3"
  shift 3
  set +e
  if [ "$shown" = all ]; then
    PYTHONUNBUFFERED=1 timeout "$seconds" "$@" 2>&1 | tee "$LOGS/$log"
    rc=${PIPESTATUS[0]}
  else
    PYTHONUNBUFFERED=1 timeout "$seconds" "$@" 2>&1 | tee "$LOGS/$log" | tail -n "$shown"
    rc=${PIPESTATUS[0]}
  fi
  set -e
}

# ---- 1. the card and the environment ------------------------------------------------------------
command -v nvidia-smi > /dev/null || die "nvidia-smi not found: this script needs a machine with an NVIDIA GPU"
GPU_NAME="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
say "GPU: $GPU_NAME ($(nvidia-smi --query-gpu=memory.total,driver_version --format=csv,noheader | head -n 1))"
command -v nvcc > /dev/null || [ -x /usr/local/cuda/bin/nvcc ] || die "nvcc not found: the CUDA kernels cannot be built"

has_cuda_torch() { "$1" -c "import torch, sys; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)" 2> /dev/null; }
PY=""
if [ "$VENV" = "none" ]; then  # install into BASE_PYTHON itself (a throwaway machine)
  PY="$(command -v "$BASE_PYTHON" || true)"
  if [ -z "$PY" ] || ! has_cuda_torch "$PY"; then
    die "VENV=none: BASE_PYTHON=$BASE_PYTHON has no CUDA torch seeing a GPU"
  fi
elif [ -x "$VENV/bin/python" ]; then
  has_cuda_torch "$VENV/bin/python" || die "$VENV exists but its torch is not a CUDA build seeing a GPU; point VENV at another folder (made from BASE_PYTHON=$BASE_PYTHON), or VENV=none"
  PY="$VENV/bin/python"
  say "using $VENV"
else
  command -v "$BASE_PYTHON" > /dev/null || die "BASE_PYTHON=$BASE_PYTHON not found"
  has_cuda_torch "$BASE_PYTHON" || die "$BASE_PYTHON has no CUDA torch seeing a GPU; set BASE_PYTHON to a python that has one"
  say "creating $VENV from $BASE_PYTHON (its packages: torch, triton, pytest, pip, setuptools; nothing downloaded)"
  if "$BASE_PYTHON" -m venv --without-pip --system-site-packages "$VENV"; then
    # BASE_PYTHON's site-packages by a .pth file: --system-site-packages alone reaches the base
    # interpreter's, not those of a venv that BASE_PYTHON may be. No pip of its own either, so that
    # an old bundled setuptools cannot shadow BASE_PYTHON's (pyproject.toml needs setuptools>=77).
    BASE_SITE="$("$BASE_PYTHON" -c "import site; print('\n'.join(site.getsitepackages()))")"
    VENV_SITE="$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
    printf '%s\n' "$BASE_SITE" > "$VENV_SITE/_aiflow_base_site.pth"
    has_cuda_torch "$VENV/bin/python" || die "the new $VENV does not see $BASE_PYTHON's CUDA torch"
    PY="$VENV/bin/python"
  else
    rm -rf "$VENV"
    PY="$(command -v "$BASE_PYTHON")"
    say "python -m venv failed: installing into $PY itself instead"
  fi
fi
case "$PY" in /*) ;; *) PY="$ROOT/$PY" ;; esac
"$PY" - <<'PY'
import torch
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}), {p.name}, "
      f"sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB")
try:
    import triton
    print(f"gpu_check: triton {triton.__version__}")
except ImportError:
    print("gpu_check: triton is not installed")
PY

# ---- 2. build the extension with its CUDA kernels ----------------------------------------------
TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}"
export TORCH_CUDA_ARCH_LIST
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
say "building aiflow_comm._C (TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST, log: $LOGS/build.log)"
BUILD_START=$SECONDS
if ! "$PY" -m pip install -v -e . --no-build-isolation --no-deps > "$LOGS/build.log" 2>&1; then
  tail -n 60 "$LOGS/build.log"
  die "the build failed (full log: $LOGS/build.log)"
fi
grep -E "aiflow-comm setup:" "$LOGS/build.log" || true
"$PY" -c "import torch, aiflow_comm._C as C, sys; sys.exit(0 if getattr(C, 'with_cuda', False) else 1)" \
  || die "aiflow_comm._C was built without its CUDA kernels (see 'aiflow-comm setup:' in $LOGS/build.log)"
say "built in $((SECONDS - BUILD_START)) s, with CUDA kernels"

# ---- 3. exactness and argument checks -----------------------------------------------------------
cat > "$SCRATCH/exact_check.py" <<'PY'
"""Exact equality of the CUDA and Triton backends with the reference (run on the CPU)."""
import os
import random
import sys

import torch

import aiflow_comm._C as C
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

SMALL = os.environ.get("EXACT_SMALL") == "1"  # under compute-sanitizer: cuda only, few cases
dev = torch.device("cuda")
failures, checked, gpu_ref_differs = [], 0, 0
T = None
if not SMALL:
    try:
        from aiflow_comm.kernels import triton_quant as T
    except Exception as error:  # noqa: BLE001
        failures.append(f"cannot import aiflow_comm.kernels.triton_quant: {error!r}")


def same(a, b):
    """Equal shapes and dtypes, equal values (-0 == +0), NaN where the other has NaN."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.cpu(), b.cpu()
    if a.dtype.is_floating_point:
        na, nb = torch.isnan(a), torch.isnan(b)
        return torch.equal(na, nb) and torch.equal(a.masked_fill(na, 0), b.masked_fill(nb, 0))
    return torch.equal(a, b)


def inputs(rows, length, dtype, kind, gen, offset):
    if kind == "normal":
        x = torch.randn(rows, length + offset, generator=gen) * torch.logspace(-3, 3, rows)[:, None]
    elif kind == "zeros":
        x = torch.zeros(rows, length + offset)
        x[rows // 2:, ::3] = 2.5
    elif kind == "ties":
        x = torch.randint(-300, 300, (rows, length + offset), generator=gen).float() / 2
    elif kind == "specials":
        x = torch.randn(rows, length + offset, generator=gen)
        m = torch.rand(rows, length + offset, generator=gen)
        x[m < 0.01] = float("nan")
        x[(m >= 0.01) & (m < 0.02)] = float("inf")
        x[(m >= 0.02) & (m < 0.03)] = -float("inf")
    else:  # wide: subnormal to near overflow
        e = torch.randint(-149, 127, (rows, length + offset), generator=gen).float()
        x = torch.exp2(e) * torch.randn(rows, length + offset, generator=gen).clamp(-1.9, 1.9)
    return x.to(dtype).to(dev)[:, offset:]  # offset > 0: rows not 16-byte aligned, stride > D


def check(tag, backend, expect, got, names=("codes", "scales", "zero_points")):
    global checked
    checked += 1
    for name, e, g in zip(names, expect, got, strict=True):
        if not same(e, g):
            failures.append(f"{backend} {name} {tag}")
            return False
    return True


def run_cuda(x, tag, gs, bits, sym, seed, kind):
    """The cuda backend on one case; returns the reference's outputs (None under SMALL)."""
    global gpu_ref_differs
    length = x.shape[1]
    cu = C.quantize_cuda(x, bits, gs, sym, seed)
    if SMALL:  # sanitizer run: exercise the kernels and the decode, compare nothing
        for odt in (torch.float32, torch.bfloat16, torch.float16):
            C.dequantize_cuda(cu[0], cu[1], cu[2], bits, gs, length, sym, odt)
        return None
    expect = quantize_reference(x.cpu(), bits, gs, sym, seed)
    check(tag, "cuda", expect, cu)
    if kind != "specials":  # informational: the reference run on the CUDA tensor itself
        on_gpu = quantize_reference(x, bits, gs, sym, seed)
        gpu_ref_differs += not all(same(e, g) for e, g in zip(expect, on_gpu, strict=True))
        for odt in (torch.float32, torch.bfloat16, torch.float16):
            want = dequantize_reference(*expect, bits, gs, length, sym, odt)
            got = C.dequantize_cuda(*[t.to(dev) for t in expect], bits, gs, length, sym, odt)
            if not same(want, got):
                failures.append(f"cuda dequantize {odt} {tag}")
    return expect


def run_triton(x, tag, gs, bits, sym, seed, kind, expect):
    """The triton backend on one case (each group size compiles its own kernels: slow)."""
    length = x.shape[1]
    got = T.quantize_triton(x.contiguous(), bits, gs, sym, seed)
    if torch.isnan(expect[1]).any():  # codes of a NaN/Inf group are unspecified for callers
        check(tag, "triton", expect[1:2], got[1:2], names=("scales",))
    else:
        check(tag, "triton", expect, got)
    if kind == "specials":
        return
    for odt in (torch.float32, torch.bfloat16, torch.float16):
        want = dequantize_reference(*expect, bits, gs, length, sym, odt)
        got = T.dequantize_triton(*[t.to(dev) for t in expect], bits, gs, length, sym, odt)
        if not same(want, got):
            failures.append(f"triton dequantize {odt} {tag}")


rng = random.Random(1234)
gen = torch.Generator().manual_seed(1234)
cases = []
for gs in (1, 2, 3, 7, 8, 16, 31, 32, 64, 100, 128, 256, 500, 512, 513, 1024, 2048, 5000):
    for bits in (2, 4, 8):
        for sym in (True, False):
            length = rng.choice([gs, 2 * gs + 1, 3 * gs, max(1, gs // 2), 4096]) if gs < 5000 else 12000
            cases.append((rng.choice([1, 2, 5]), length, gs, bits, sym, rng.choice([-1, -1, 0, 123456789, 2**32 - 1]),
                          rng.choice([torch.float32, torch.float16, torch.bfloat16]),
                          rng.choice(["normal", "normal", "zeros", "ties", "wide", "specials"]), rng.choice([0, 0, 1, 3])))
for dtype in (torch.float32, torch.float16, torch.bfloat16):  # the benchmark's configurations
    for bits in (4, 8):
        for sym in (True, False):
            cases.append((64, 4096, 128, bits, sym, -1, dtype, "normal", 0))
            cases.append((8, 4096, 128, bits, sym, 7, dtype, "normal", 0))
if SMALL:
    cases = cases[::4]
# The cuda pass first, and its summary printed at once: the triton pass compiles kernels for every
# group size, bits and scheme, and may run past the step's timeout.
prepared = []
for rows, length, gs, bits, sym, seed, dtype, kind, offset in cases:
    x = inputs(rows, length, dtype, kind, gen, offset)
    tag = f"R={rows} D={length} gs={gs} bits={bits} sym={sym} seed={seed} {dtype} {kind} offset={offset}"
    prepared.append((x, tag, gs, bits, sym, seed, kind, run_cuda(x, tag, gs, bits, sym, seed, kind)))
torch.cuda.synchronize()
if not SMALL:
    print(f"exact_check: cuda: {checked} quantize comparisons over {len(cases)} cases, "
          f"{len(failures)} failures so far", flush=True)

if not SMALL:
    # Argument checks: each bad call raises a RuntimeError (never a crash).
    x = torch.randn(4, 64, device=dev)
    codes, scales, zps = C.quantize_cuda(x, 4, 16, False, -1)
    bad_calls = {
        "cpu tensor": lambda: C.quantize_cuda(x.cpu(), 8, 16, True, -1),
        "1-D x": lambda: C.quantize_cuda(x[0], 8, 16, True, -1),
        "3-D x": lambda: C.quantize_cuda(x.view(2, 2, 64), 8, 16, True, -1),
        "int x": lambda: C.quantize_cuda(x.int(), 8, 16, True, -1),
        "float64 x": lambda: C.quantize_cuda(x.double(), 8, 16, True, -1),
        "last stride 2": lambda: C.quantize_cuda(x[:, ::2], 8, 16, True, -1),
        "bits 3": lambda: C.quantize_cuda(x, 3, 16, True, -1),
        "group 0": lambda: C.quantize_cuda(x, 8, 0, True, -1),
        "codes cpu": lambda: C.dequantize_cuda(codes.cpu(), scales, zps, 4, 16, 64, False, torch.float32),
        "codes float": lambda: C.dequantize_cuda(codes.float(), scales, zps, 4, 16, 64, False, torch.float32),
        "codes width": lambda: C.dequantize_cuda(codes[:, :-1], scales, zps, 4, 16, 64, False, torch.float32),
        "row_len": lambda: C.dequantize_cuda(codes, scales, zps, 4, 16, 65, False, torch.float32),
        "row_len < 0": lambda: C.dequantize_cuda(codes, scales, zps, 4, 16, -1, False, torch.float32),
        "scales shape": lambda: C.dequantize_cuda(codes, scales[:, :-1], zps, 4, 16, 64, False, torch.float32),
        "scales dtype": lambda: C.dequantize_cuda(codes, scales.half(), zps, 4, 16, 64, False, torch.float32),
        "scales cpu": lambda: C.dequantize_cuda(codes, scales.cpu(), zps, 4, 16, 64, False, torch.float32),
        "zero_points empty": lambda: C.dequantize_cuda(codes, scales, torch.empty(0, device=dev), 4, 16, 64, False, torch.float32),
        "dtype int": lambda: C.dequantize_cuda(codes, scales, zps, 4, 16, 64, False, torch.int32),
        "dequant bits 5": lambda: C.dequantize_cuda(codes, scales, zps, 5, 16, 64, False, torch.float32),
    }
    for name, call in bad_calls.items():
        try:
            call()
            failures.append(f"argument check: {name} did not raise")
        except RuntimeError:
            pass
    # Empty inputs give empty outputs of the reference's shapes.
    for shape in ((0, 5), (3, 0), (0, 0)):
        e = torch.empty(shape, device=dev)
        for sym in (True, False):
            expect = quantize_reference(e.cpu(), 8, 4, sym)
            got = C.quantize_cuda(e, 8, 4, sym, -1)
            if not all(a.shape == b.shape for a, b in zip(expect, got, strict=True)):
                failures.append(f"empty input {shape} sym={sym}: shapes {[tuple(t.shape) for t in got]}")
            out = C.dequantize_cuda(*got, 8, 4, shape[1], sym, torch.bfloat16)
            if tuple(out.shape) != shape:
                failures.append(f"empty dequantize {shape}: shape {tuple(out.shape)}")

torch.cuda.synchronize()
if SMALL:
    print(f"exact_check (small, for compute-sanitizer): {len(cases)} cases ran")
    sys.exit(0)
print(f"exact_check: cuda, argument checks and empty inputs: {len(failures)} failures", flush=True)
for line in failures[:40]:
    print("  FAIL", line, flush=True)
if T is not None:
    before = len(failures)
    for i, (x, tag, gs, bits, sym, seed, kind, expect) in enumerate(prepared):
        run_triton(x, tag, gs, bits, sym, seed, kind, expect)
        if i % 20 == 19:
            print(f"exact_check: triton: {i + 1}/{len(prepared)} cases, {len(failures) - before} failures",
                  flush=True)
    torch.cuda.synchronize()
    for line in failures[before:before + 40]:
        print("  FAIL", line)
print(f"exact_check: {checked} quantize comparisons over {len(cases)} cases, {len(failures)} failures")
print(f"exact_check: note: the reference run on the CUDA tensor differs from the CPU reference in {gpu_ref_differs} "
      f"of {len(cases)} cases (torch computes `tensor / int` as a multiply by a reciprocal on CUDA)")
sys.exit(1 if failures else 0)
PY
if [ "${SKIP_EXACT:-0}" != "1" ]; then
  say "exactness check against the reference (log: $LOGS/exact_check.log)"
  run_logged exact_check.log "${CHECK_TIMEOUT:-300}" 45 "$PY" "$SCRATCH/exact_check.py"
  [ "$rc" -eq 0 ] || fail "exactness check (rc $rc, log $LOGS/exact_check.log)"
fi

# ---- 3b. the fused ops: triton and cuda against the reference ------------------------------------
cat > "$SCRATCH/fused_check.py" <<'PY'
"""project_quantize / dequantize_project on the GPU against the torch reference run on the CPU."""
import faulthandler
import os
import random
import sys

import torch

import aiflow_comm._C as C
from aiflow_comm.codec.quantized import quantize
from aiflow_comm.kernels.fused import dequantize_project, project_quantize, resolve_fused_backend
from aiflow_comm.kernels.reference import unpack_codes

SMALL = os.environ.get("FUSED_SMALL") == "1"  # under compute-sanitizer: cuda only, few cases
faulthandler.enable()  # a crash prints the Python stack (which call) before the process dies
dev = torch.device("cuda")
torch.backends.cuda.matmul.allow_tf32 = False  # the bound is for float32 matmuls (not TF32)
failures, checked, differing_codes = [], 0, 0
backends = []
for name in ("cuda",) if SMALL else ("triton", "cuda"):
    try:
        backends.append(resolve_fused_backend(name, dev))
    except ValueError as error:
        failures.append(f"{name}: no fused kernel on cuda: {error}")


def codes_problems(got, want):
    """What breaks the bound of tests/test_fused.py (empty when the codes are close enough)."""
    global differing_codes
    if got.shape != want.shape or got.codes.shape != want.codes.shape:
        return [f"shape {got.shape} / codes {tuple(got.codes.shape)}"]
    diff = (unpack_codes(got.codes.cpu(), got.layout) - unpack_codes(want.codes, want.layout)).abs()
    differing = int((diff != 0).sum())
    differing_codes += differing
    problems = []
    if diff.numel() and int(diff.max()) > 1:
        problems.append(f"a code {int(diff.max())} steps off")
    if differing > max(1, diff.numel() // 1000):
        problems.append(f"{differing} of {diff.numel()} codes differ")
    if not torch.allclose(got.scales.cpu(), want.scales, rtol=1e-5, atol=0):
        problems.append("scales differ")
    if want.zero_points is not None and not torch.allclose(
        got.zero_points.cpu(), want.zero_points, rtol=1e-5, atol=1e-6
    ):
        problems.append("zero points differ")
    return problems


def run(backend, rows, inp, out, group, bits, sym, dtype, bias, view, gen):
    global checked
    tag = f"{backend} R={rows} in={inp} out={out} gs={group} bits={bits} sym={sym} {dtype} bias={bias} {view}"
    x = torch.randn(rows, inp + 3, generator=gen).to(dtype)
    x = {"contiguous": x[:, :inp].contiguous(), "sliced": x[:, 3:], "transposed": x[:, :inp].T.contiguous().T}[view]
    w = (torch.randn(out, inp, generator=gen) / inp**0.5).to(dtype)
    b = torch.randn(out, generator=gen).to(dtype) if bias else None
    on = [None if t is None else t.to(dev) for t in (x, w, b)]
    want = project_quantize(x, w, b, bits, group, symmetric=sym, backend="torch")
    got = project_quantize(*on, bits, group, symmetric=sym, backend=backend)
    if SMALL:
        dequantize_project(got, on[1].T.contiguous(), None, backend=backend)
        return
    checked += 1
    for problem in codes_problems(got, want):
        failures.append(f"project_quantize {tag}: {problem}")
    receiver = (torch.randn(inp, out, generator=gen) / out**0.5).to(dtype)
    back = torch.randn(inp, generator=gen).to(dtype) if bias else None
    y_want = dequantize_project(want, receiver, back, backend="torch")
    y_got = dequantize_project(want.to(dev), receiver.to(dev), None if back is None else back.to(dev), backend=backend)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    try:
        torch.testing.assert_close(y_got.cpu(), y_want, **tol)
    except AssertionError as error:
        failures.append(f"dequantize_project {tag}: {str(error).splitlines()[0]}")


rng = random.Random(5)
gen = torch.Generator().manual_seed(5)
shapes = [(1, 7, 5), (3, 33, 40), (17, 33, 130), (300, 96, 40), (6000, 64, 520), (257, 1000, 96),
          (5000, 70, 128), (4500, 33, 129)]  # the fused kernel: 4 rows a warp, widest; cuBLAS
cases = []
groups = [8, 32, 128, 300, 512]
for k, shape in enumerate(shapes):
    for group in (groups[k % 5], groups[(k + 2) % 5], groups[(k + 4) % 5]):
        cases.append((*shape, group, rng.choice([2, 4, 8]), rng.random() < 0.5,
                      rng.choice([torch.float32, torch.float16, torch.bfloat16]), rng.random() < 0.7,
                      rng.choice(["contiguous", "contiguous", "sliced", "transposed"])))
for rows, inp, out in ((32 * 56 * 56, 256, 32), (197, 768, 96), (4096, 4096, 512)):  # bench fused
    for dtype in (torch.float32, torch.bfloat16):
        cases.append((rows, inp, out, 32, 8, True, dtype, True, "contiguous"))
if SMALL:
    cases = [c for c in cases if c[0] * max(c[1], c[2]) < 200_000][::3]
for backend in backends:
    for case in cases:
        try:  # one failing case (an exception, a CUDA error) must not hide the others
            run(backend, *case, gen=gen)
        except Exception as error:  # noqa: BLE001
            failures.append(f"{backend} {case}: {type(error).__name__}: {str(error)[:200]}")

if not SMALL:
    # Argument checks of the cuda entry points: each bad call raises a RuntimeError.
    x, w, b = torch.randn(4, 16, device=dev), torch.randn(8, 16, device=dev), torch.randn(8, device=dev)
    codes, scales, zps = C.quantize_cuda(torch.randn(4, 16, device=dev), 4, 8, False, -1)
    bad_calls = {
        "x on cpu": lambda: C.project_quantize_cuda(x.cpu(), w, b, 8, 4, True),
        "weight on cpu": lambda: C.project_quantize_cuda(x, w.cpu(), b, 8, 4, True),
        "bias on cpu": lambda: C.project_quantize_cuda(x, w, b.cpu(), 8, 4, True),
        "weight in_features": lambda: C.project_quantize_cuda(x, w[:, :15], b, 8, 4, True),
        "bias length": lambda: C.project_quantize_cuda(x, w, b[:7], 8, 4, True),
        "3-D x": lambda: C.project_quantize_cuda(x.view(2, 2, 16), w, b, 8, 4, True),
        "int x": lambda: C.project_quantize_cuda(x.int(), w, b, 8, 4, True),
        "int weight": lambda: C.project_quantize_cuda(x, w.int(), b, 8, 4, True),
        "bits 3": lambda: C.project_quantize_cuda(x, w, b, 3, 4, True),
        "group 0": lambda: C.project_quantize_cuda(x, w, b, 8, 0, True),
        "codes on cpu": lambda: C.dequantize_project_cuda(codes.cpu(), scales, zps, 4, 8, 16, False, w, b, torch.float32),
        "codes width": lambda: C.dequantize_project_cuda(codes[:, :-1], scales, zps, 4, 8, 16, False, w, b, torch.float32),
        "codes last stride": lambda: C.dequantize_project_cuda(codes.repeat(1, 2)[:, ::2], scales, zps, 4, 8, 16, False, w, b, torch.float32),
        "scales shape": lambda: C.dequantize_project_cuda(codes, scales[:, :1], zps, 4, 8, 16, False, w, b, torch.float32),
        "scales dtype": lambda: C.dequantize_project_cuda(codes, scales.half(), zps, 4, 8, 16, False, w, b, torch.float32),
        "zero_points empty": lambda: C.dequantize_project_cuda(codes, scales, torch.empty(0, device=dev), 4, 8, 16, False, w, b, torch.float32),
        "row_len": lambda: C.dequantize_project_cuda(codes, scales, zps, 4, 8, 17, False, w, b, torch.float32),
        "weight columns": lambda: C.dequantize_project_cuda(codes, scales, zps, 4, 8, 16, False, w[:, :8], b, torch.float32),
        "dtype int": lambda: C.dequantize_project_cuda(codes, scales, zps, 4, 8, 16, False, w, b, torch.int32),
    }
    for name, call in bad_calls.items():
        print(f"fused_check: bad call {name!r}", flush=True)  # the last one printed, if it crashes
        try:
            call()
            failures.append(f"argument check: {name} did not raise")
        except RuntimeError:
            pass
    # Autocast must not reach the float32 projection (cuBLAS in float16 would move codes); 200
    # output features take the cuBLAS path of the cuda backend.
    xa, wa = torch.randn(300, 64, device=dev), torch.randn(200, 64, device=dev) / 8
    for backend in backends:
        plain = project_quantize(xa, wa, None, 8, 16, backend=backend)
        with torch.autocast("cuda", dtype=torch.float16):
            cast = project_quantize(xa, wa, None, 8, 16, backend=backend)
        if not torch.equal(plain.codes, cast.codes):
            failures.append(f"{backend} autocast moved {int((plain.codes != cast.codes).sum())} codes")
    # Empty and degenerate inputs, through every backend.
    for backend in backends:
        q = project_quantize(torch.empty(0, 16, device=dev), w, b, 8, 4, backend=backend)
        if q.codes.shape != (0, 8) or q.scales.shape != (0, 2):
            failures.append(f"{backend} empty rows: codes {tuple(q.codes.shape)}")
        got = project_quantize(torch.empty(3, 0, device=dev), torch.empty(8, 0, device=dev), b, 8, 4, backend=backend)
        problems = codes_problems(got, quantize(b.cpu().expand(3, 8), 8, 4, backend="torch"))
        failures += [f"{backend} no input features: {p}" for p in problems]
        y = dequantize_project(got, torch.empty(5, 8, device=dev), torch.ones(5, device=dev), backend=backend)
        if tuple(y.shape) != (3, 5):
            failures.append(f"{backend} dequantize_project shape {tuple(y.shape)}")

torch.cuda.synchronize()
if SMALL:  # fails when a case failed or no backend ran: memcheck must not pass on nothing
    print(f"fused_check (small, for compute-sanitizer): {len(cases)} cases x {backends}, "
          f"{len(failures)} failures")
    for line in failures[:10]:
        print("  FAIL", line)
    sys.exit(1 if failures or not backends else 0)
print(f"fused_check: {checked} comparisons over {len(cases)} cases x {backends}, {len(failures)} failures; "
      f"{differing_codes} codes differ from the reference's in all")
for line in failures[:40]:
    print("  FAIL", line)
sys.exit(1 if failures else 0)
PY
if [ "${SKIP_FUSED:-0}" != "1" ]; then
  say "fused ops against the reference (log: $LOGS/fused_check.log)"
  run_logged fused_check.log "${FUSED_TIMEOUT:-240}" 45 "$PY" "$SCRATCH/fused_check.py"
  [ "$rc" -eq 0 ] || fail "fused ops check (rc $rc, log $LOGS/fused_check.log)"
fi

# ---- 4. timings ---------------------------------------------------------------------------------
cat > "$SCRATCH/bench.py" <<'PY'
"""bf16 -> int8 / int4 (group 128, symmetric) on 256 MiB: GB/s and fraction of a D2D copy."""
import functools
import json
import os
import sys

import torch
from triton.testing import do_bench

import aiflow_comm._C as C
from aiflow_comm.kernels.layout import GroupLayout
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

try:
    from aiflow_comm.kernels import triton_quant as T
except Exception as error:  # noqa: BLE001
    T = None
    print(f"bench: FAIL: cannot import aiflow_comm.kernels.triton_quant: {error!r}")

ROWS, D, G = 32768, 4096, 128  # 2**27 bfloat16 values = 256 MiB
dev = torch.device("cuda")
x = torch.randn(ROWS, D, device=dev, dtype=torch.bfloat16)
name = torch.cuda.get_device_name(0)


def bench(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=25, rep=200, return_mode="median")  # ms


copy_dst = torch.empty_like(x)
copy_ms = bench(lambda: copy_dst.copy_(x))
copy_bytes = 2 * x.numel() * x.element_size()
copy_gbs = copy_bytes / copy_ms / 1e6
rows, errors = [], []
rows.append(("copy (D2D)", "-", "device-to-device copy", copy_ms, copy_gbs, 1.0))

compiled_q = compiled_d = None
if os.environ.get("SKIP_COMPILE") != "1":
    compiled_q = torch.compile(quantize_reference, dynamic=False)
    compiled_d = torch.compile(dequantize_reference, dynamic=False)

for bits in (8, 4):
    layout = GroupLayout.of(x.shape, bits, G)
    meta = ROWS * layout.num_groups * 4  # float32 scales (symmetric: no zero points)
    q_bytes = x.numel() * 2 + ROWS * layout.row_bytes + meta
    d_bytes = ROWS * layout.row_bytes + meta + x.numel() * 2
    codes, scales, zps = C.quantize_cuda(x, bits, G, True, -1)
    head = quantize_reference(x[:1024].cpu(), bits, G, True)  # a sanity check on the input itself
    if not (torch.equal(codes[:1024].cpu(), head[0]) and torch.equal(scales[:1024].cpu(), head[1])):
        errors.append(f"cuda int{bits} output differs from the reference on the benchmark input")
    backends = [("torch eager (reference)", quantize_reference, dequantize_reference)]
    if compiled_q is not None:
        backends.append(("torch.compile(reference)", compiled_q, compiled_d))
    if T is not None:
        backends.append(("triton", T.quantize_triton, T.dequantize_triton))
    backends.append(("cuda", lambda *a: C.quantize_cuda(*a, -1), C.dequantize_cuda))
    packed = (codes, scales, zps, bits, G, D, True, torch.bfloat16)
    for impl, quant, dequant in backends:
        qf = functools.partial(quant, x, bits, G, True)
        df = functools.partial(dequant, *packed)
        for op, fn, nbytes in (("quantize", qf, q_bytes), ("dequantize", df, d_bytes)):
            try:
                ms = bench(fn)
                gbs = nbytes / ms / 1e6
                rows.append((f"{op} bf16<->int{bits}", f"{nbytes / 2**20:.0f} MiB", impl, ms, gbs, gbs / copy_gbs))
                print(f"bench: {op:10s} int{bits} {impl:26s} {ms:8.3f} ms {gbs:8.0f} GB/s "
                      f"{gbs / copy_gbs:6.1%} of copy", flush=True)
            except Exception as error:  # noqa: BLE001
                rows.append((f"{op} bf16<->int{bits}", "-", impl, float("nan"), float("nan"), float("nan")))
                print(f"bench: {op} int{bits} {impl}: ERROR {error!r}"[:400], flush=True)
                if impl in ("cuda", "triton"):
                    errors.append(f"{impl} {op} int{bits}: {error!r}"[:200])
        torch.cuda.empty_cache()

lines = [f"GPU: {name}; torch {torch.__version__}; input {ROWS}x{D} bfloat16 ({x.numel() * 2 / 2**20:.0f} MiB), "
         f"group {G}, symmetric; "
         "median of triton.testing.do_bench; GB/s = (bytes read + bytes written) / time",
         "", "| op | bytes moved | implementation | median ms | GB/s | of copy |", "| --- | --- | --- | --- | --- | --- |"]
for op, moved, impl, ms, gbs, frac in rows:
    lines.append(f"| {op} | {moved} | {impl} | {ms:.3f} | {gbs:.0f} | {frac:.1%} |")
table = "\n".join(lines)
print()
print(table)
out = os.environ.get("OUT")
if out:
    with open(os.path.join(out, "gpu_check_bench.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out, "gpu_check_bench.json"), "w") as f:
        json.dump({"gpu": name, "torch": torch.__version__, "rows": [
            dict(op=r[0], bytes=r[1], impl=r[2], ms=r[3], gbs=r[4], fraction_of_copy=r[5]) for r in rows]}, f, indent=1)
for e in errors:
    print("bench: FAIL:", e)
sys.exit(1 if errors else 0)
PY
if [ "${SKIP_BENCH:-0}" != "1" ]; then
  say "timings (log: $LOGS/bench.log)"
  run_logged bench.log "${BENCH_TIMEOUT:-420}" all "$PY" "$SCRATCH/bench.py"
  [ "$rc" -eq 0 ] || fail "timings (rc $rc, log $LOGS/bench.log)"
fi

# ---- 4b. fused projection+quantize timings (aiflow-comm bench fused) ----------------------------
if [ "${SKIP_FUSED:-0}" != "1" ]; then
  say "bench fused: triton and cuda on the GPU (log: $LOGS/fused_bench.log)"
  run_logged fused_bench.log "${FUSED_BENCH_TIMEOUT:-180}" all "$PY" - <<'PY'
import sys

import torch

# What `aiflow-comm bench fused --device cuda --backend B --dtype D` runs, without the CLI's imports.
from aiflow_comm.bench.fused import bench_fused, format_fused_table

failed = []
# Without the NaN/Inf check (no device sync per call) first: the figures the target is about.
runs = [("cuda", "float32", False), ("cuda", "bfloat16", False), ("triton", "float32", False)]
runs += [(b, d, True) for d in ("float32", "bfloat16") for b in ("cuda", "triton")]
for backend, dtype, check in runs:
    flag = "" if check else " --no-finite-check"
    print(f"\nbench fused --device cuda --backend {backend} --dtype {dtype}{flag} (bits 8, group size 32)", flush=True)
    try:
        rows = bench_fused(backend=backend, device="cuda", dtype=getattr(torch, dtype), check_finite=check)
        print(format_fused_table(rows), flush=True)
    except Exception as error:  # noqa: BLE001
        print(f"bench fused: FAIL: {backend} {dtype}: {error!r}"[:400], flush=True)
        failed.append(f"{backend} {dtype}")
sys.exit(1 if failed else 0)
PY
  [ "$rc" -eq 0 ] || fail "bench fused (rc $rc, log $LOGS/fused_bench.log)"

  # 4c. Where the fused cuda op's time goes: the kernels it launches and their device times.
  say "profile of the cuda fused op (log: $LOGS/fused_profile.log)"
  run_logged fused_profile.log "${FUSED_PROFILE_TIMEOUT:-120}" all "$PY" - <<'PY'
import torch
from torch.profiler import ProfilerActivity, profile

from aiflow_comm.bench.fused import SHAPES
from aiflow_comm.kernels.fused import dequantize_project, project_quantize

torch.backends.cuda.matmul.allow_tf32 = False
for name, (rows, inp, out) in SHAPES.items():
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(rows, inp, device="cuda", dtype=dtype)
        w = torch.randn(out, inp, device="cuda", dtype=dtype) / inp**0.5
        b = torch.randn(out, device="cuda", dtype=dtype)
        back = torch.randn(inp, out, device="cuda", dtype=dtype) / out**0.5
        q = project_quantize(x, w, b, 8, 32, backend="cuda", check_finite=False)
        for op, call in (
            ("project_quantize", lambda: project_quantize(x, w, b, 8, 32, backend="cuda", check_finite=False)),
            ("dequantize_project", lambda: dequantize_project(q, back, None, backend="cuda")),
            ("addmm", lambda: torch.addmm(b, x, w.T)),
        ):
            for _ in range(3):
                call()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(10):
                    call()
                torch.cuda.synchronize()
            print(f"\n== {name} {str(dtype).removeprefix('torch.')} {op} (10 calls)", flush=True)
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=6), flush=True)
PY
  [ "$rc" -eq 0 ] || fail "profile of the fused op (rc $rc, log $LOGS/fused_profile.log)"
fi

# ---- 5. the test suite's CUDA and Triton tests ---------------------------------------------------
if [ "${SKIP_PYTEST:-0}" != "1" ]; then
  say "pytest -q tests -k 'cuda or triton' (log: $LOGS/pytest.log)"
  # PYTEST_PATHS: test files to collect (default all of tests/, or without Sionna, which the
  # channel tests import, the kernel tests only)
  if [ -z "${PYTEST_PATHS:-}" ] && ! "$PY" -c "import sionna.phy" > /dev/null 2>&1; then
    PYTEST_PATHS="tests/test_fused_triton.py tests/test_backends_exact.py tests/test_fused.py"
    say "no Sionna here: pytest collects $PYTEST_PATHS"
  fi
  # shellcheck disable=SC2086
  run_logged pytest.log "${PYTEST_TIMEOUT:-360}" 25 "$PY" -m pytest -q -p no:cacheprovider \
    ${PYTEST_PATHS:-tests} -k "cuda or triton"
  case $rc in
    0) say "pytest passed" ;;
    5) say "pytest selected no test (rc 5)" ;;
    124) fail "pytest ran past ${PYTEST_TIMEOUT:-360} s" ;;
    *) fail "pytest failed (rc $rc, log $LOGS/pytest.log)" ;;
  esac
fi

# ---- 6. compute-sanitizer memcheck of the CUDA kernels ----------------------------------------
# memcheck WHAT LABEL SMALL SCRIPT LOG: the small cases of $SCRATCH/SCRIPT (run with SMALL=1) under
# compute-sanitizer memcheck; a run past SANITIZER_TIMEOUT is not counted as a failure.
memcheck() {
  local what="$1" label="$2" small="$3" script="$4" log="$5"
  say "compute-sanitizer memcheck of $what on small cases (log: $LOGS/$log)"
  run_logged "$log" "${SANITIZER_TIMEOUT:-240}" 5 env "$small=1" "$SANITIZER" --tool memcheck \
    --error-exitcode 3 "$PY" "$SCRATCH/$script"
  case $rc in
    0) say "compute-sanitizer$label: no error" ;;
    124) say "compute-sanitizer$label ran past ${SANITIZER_TIMEOUT:-240} s: not counted as a failure" ;;
    *) fail "compute-sanitizer memcheck of $what (rc $rc, log $LOGS/$log)" ;;
  esac
}
if [ "${SKIP_SANITIZER:-0}" != "1" ]; then
  SANITIZER="$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null || true)"
  if [ -z "$SANITIZER" ]; then
    say "compute-sanitizer not found: skipping the memcheck run"
  else
    memcheck "the CUDA kernels" "" EXACT_SMALL exact_check.py sanitizer.log
    if [ "${SKIP_FUSED:-0}" != "1" ]; then
      memcheck "the fused cuda ops" " (fused)" FUSED_SMALL fused_check.py sanitizer_fused.log
    fi
  fi
fi

# ---- summary ------------------------------------------------------------------------------------
say "logs in $LOGS"
if [ ${#FAILED[@]} -ne 0 ]; then
  say "FAILED steps:"
  for f in "${FAILED[@]}"; do echo "  - $f"; done
  exit 1
fi
say "all steps passed on $GPU_NAME"
