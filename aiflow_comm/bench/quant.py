"""``aiflow-comm bench quant``: quantize and dequantize throughput of every usable backend."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from aiflow_comm.bench.timing import interleaved_medians, median_seconds, resolve_device
from aiflow_comm.kernels import (
    GroupLayout,
    available_backends,
    dequantize_packed,
    quantize_packed,
)
from aiflow_comm.kernels.reference import dequantize_reference, quantize_reference

__all__ = ["QuantBenchRow", "bench_quant", "format_table"]

ROW_LEN = 4096


@dataclass
class QuantBenchRow:
    """One (backend, dtype, bits, op) measurement; bandwidths count bytes read plus written.

    ``seconds`` times the op as users call it (it allocates its outputs). ``buffers_seconds``
    times the same kernel writing into preallocated buffers, where the backend offers that (the
    ``cpp`` one): the like-for-like comparison with a copy into a preallocated buffer, since on
    the CPU a fresh multi-MiB allocation costs page faults of its own. ``gbps`` and
    ``copy_fraction`` use ``buffers_seconds`` when present, else ``seconds``.
    """

    backend: str
    device: str
    dtype: str
    bits: int
    group_size: int
    op: str
    input_mib: float
    seconds: float
    buffers_seconds: float | None
    gbps: float
    copy_gbps: float
    copy_fraction: float
    compiled_reference_seconds: float | None
    speedup_vs_compiled: float | None

    def as_dict(self) -> dict:
        return asdict(self)


Runs = dict[str, Callable[[], object]]


def _runs(x: torch.Tensor, bits: int, group_size: int, backend: str) -> Runs:
    """The quantize and dequantize calls to time, on ``x`` and on its codes."""
    codes, scales, zero_points = quantize_packed(x, bits, group_size, backend="torch")
    length = x.shape[-1]
    if backend == "compiled-reference":
        quantize = torch.compile(
            lambda t: quantize_reference(t, bits, group_size, True), fullgraph=True, dynamic=False
        )
        dequantize = torch.compile(
            lambda c, s, z: dequantize_reference(c, s, z, bits, group_size, length, True, x.dtype),
            fullgraph=True,
            dynamic=False,
        )
        return {
            "quantize": lambda: quantize(x),
            "dequantize": lambda: dequantize(codes, scales, zero_points),
        }
    return {
        "quantize": lambda: quantize_packed(x, bits, group_size, backend=backend),
        "dequantize": lambda: dequantize_packed(
            codes, scales, zero_points, bits, group_size, length, True, x.dtype, backend
        ),
    }


def _buffer_runs(x: torch.Tensor, bits: int, group_size: int, backend: str) -> Runs:
    """The same kernels writing into preallocated outputs, for backends that offer it."""
    if backend != "cpp":
        return {}
    native = importlib.import_module("aiflow_comm._C")
    codes, scales, zero_points = quantize_packed(x, bits, group_size, backend="torch")
    out = torch.empty_like(x)
    length = x.shape[-1]
    return {
        "quantize": lambda: native.quantize_cpu_out(
            x, bits, group_size, True, -1, codes, scales, zero_points
        ),
        "dequantize": lambda: native.dequantize_cpu_out(
            codes, scales, zero_points, bits, group_size, length, True, out
        ),
    }


def _bench_input(
    x: torch.Tensor,
    bits: int,
    group_size: int,
    backends: list[str],
    compile_reference: bool,
    repeats: int,
) -> list[QuantBenchRow]:
    out = torch.empty_like(x)
    layout = GroupLayout.of(x.shape, bits, group_size)
    moved = x.numel() * x.element_size() + layout.rows * (layout.row_bytes + 4 * layout.num_groups)
    baseline = {}
    if compile_reference:
        for op, run in _runs(x, bits, group_size, "compiled-reference").items():
            baseline[op] = median_seconds(run, x.device, repeats)
    rows = []
    for backend in backends:
        buffer_runs = _buffer_runs(x, bits, group_size, backend)
        for op, run in _runs(x, bits, group_size, backend).items():
            # The op, its buffered kernel and a copy take turns: all see the same machine load.
            timed = {"op": run, "copy": lambda: out.copy_(x)}
            if op in buffer_runs:
                timed["buffers"] = buffer_runs[op]
            medians = interleaved_medians(timed, x.device, repeats)
            seconds, buffered = medians["op"], medians.get("buffers")
            copy_gbps = 2 * x.numel() * x.element_size() / medians["copy"] / 1e9
            gbps = moved / (buffered or seconds) / 1e9
            reference = baseline.get(op)
            rows.append(
                QuantBenchRow(
                    backend,
                    x.device.type,
                    str(x.dtype).removeprefix("torch."),
                    bits,
                    group_size,
                    op,
                    x.numel() * x.element_size() / 2**20,
                    seconds,
                    buffered or None,
                    gbps,
                    copy_gbps,
                    gbps / copy_gbps,
                    reference,
                    None if reference is None else reference / seconds,
                )
            )
    return rows


def bench_quant(
    size_mib: float = 64.0,
    device: str = "cpu",
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16),
    bits_list: tuple[int, ...] = (8, 4),
    group_size: int = 128,
    backends: list[str] | None = None,
    compile_reference: bool = True,
    repeats: int = 10,
    progress: bool | None = None,
) -> list[QuantBenchRow]:
    """Time quantize and dequantize on a ``size_mib`` input per backend, dtype and bit width.

    Each op takes turns with a plain copy of the input into a preallocated buffer (the
    memory-bandwidth floor), so its fraction of the copy's bandwidth compares the two under the
    same machine load; unless ``compile_reference`` is false, ``torch.compile`` of the reference
    runs on the same input.
    Triton is skipped on the CPU, where it only runs interpreted. ``ValueError`` for a
    ``size_mib`` that is not a finite number > 0, ``repeats`` or ``group_size`` < 1, a device
    that is not here, or a name in ``backends`` that cannot be timed on it. ``progress``: a bar
    on stderr, one step per dtype and bit width (``None``: only on a terminal).

    Example:
        >>> rows = bench_quant(0.25, bits_list=(8,), compile_reference=False, repeats=2)
        >>> sorted({r.op for r in rows})
        ['dequantize', 'quantize']
    """
    if not (isinstance(size_mib, int | float) and math.isfinite(size_mib) and size_mib > 0):
        raise ValueError(f"size_mib must be a finite number > 0; got {size_mib!r}")
    if repeats < 1 or group_size < 1:
        raise ValueError(f"repeats and group_size must be >= 1; got {repeats}, {group_size}")
    where = resolve_device(device)
    usable = [b for b in available_backends(where) if not (b == "triton" and where.type == "cpu")]
    if isinstance(backends, str):
        backends = [backends]
    unusable = [] if backends is None else [b for b in backends if b not in usable]
    if unusable:
        raise ValueError(
            f"backends {unusable} cannot be timed on {where.type} here; usable: {usable}"
            + (" (triton runs only interpreted on the CPU)" if "triton" in unusable else "")
        )
    chosen = usable if backends is None else list(dict.fromkeys(backends))
    rows: list[QuantBenchRow] = []
    quiet = None if progress is None else not progress
    bar = tqdm(total=len(dtypes) * len(bits_list), desc="bench quant", unit="case", disable=quiet)
    for dtype in dtypes:
        numel = int(size_mib * 2**20) // (torch.finfo(dtype).bits // 8)
        x = torch.randn(max(1, numel // ROW_LEN), ROW_LEN, device=where).to(dtype)
        for bits in bits_list:
            rows += _bench_input(x, bits, group_size, chosen, compile_reference, repeats)
            bar.update(1)
    bar.close()
    return rows


def format_table(rows: list[QuantBenchRow]) -> str:
    """A fixed-width text table of ``rows``."""
    header = (
        f"{'backend':<8} {'dtype':<9} {'bits':>4} {'op':<10} {'ms':>8} {'ms buf':>7} "
        f"{'GB/s':>7} {'copy GB/s':>9} {'of copy':>7} {'vs compile':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        speedup = "-" if r.speedup_vs_compiled is None else f"{r.speedup_vs_compiled:.2f}x"
        buffered = "-" if r.buffers_seconds is None else f"{r.buffers_seconds * 1e3:.2f}"
        lines.append(
            f"{r.backend:<8} {r.dtype:<9} {r.bits:>4} {r.op:<10} {r.seconds * 1e3:>8.2f} "
            f"{buffered:>7} {r.gbps:>7.2f} {r.copy_gbps:>9.2f} {r.copy_fraction:>7.0%} "
            f"{speedup:>10}"
        )
    notes = [
        "ms: the op as called (allocates its outputs); ms buf: the kernel into preallocated",
        "buffers; GB/s and 'of copy' use ms buf where given, against a copy into a preallocated",
        "buffer; 'vs compile': torch.compile of the reference over the op (>1: faster).",
    ]
    return "\n".join(lines + notes)
