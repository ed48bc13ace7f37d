"""``aiflow-comm bench fused``: the fused ops beside the matmul alone and the separate ops.

Each shape is timed twice: ``project_quantize`` from ``in`` to ``out`` features (the device's
encoder) and ``dequantize_project`` from ``out`` back to ``in`` (the edge's decoder).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from aiflow_comm.bench.timing import interleaved_samples, paired_ratio, resolve_device
from aiflow_comm.codec.quantized import QuantizedTensor, dequantize
from aiflow_comm.kernels import quantize_packed
from aiflow_comm.kernels.fused import dequantize_project, project_quantize, resolve_fused_backend

__all__ = [
    "SHAPES",
    "FusedBenchRow",
    "bench_fused",
    "dequantize_runs",
    "format_fused_table",
    "fused_runs",
]

# Split points: (rows, in_features, out_features): a ResNet stage 32 x 56 x 56 x 256 -> 32
# channels, ViT-B tokens 197 x 768 -> 96, and a 4096 x 4096 -> 512 projection.
SHAPES = {
    "conv 32x56x56x256->32": (32 * 56 * 56, 256, 32),
    "vit 197x768->96": (197, 768, 96),
    "mlp 4096x4096->512": (4096, 4096, 512),
}

# A CPU sample lasts at least this long: the ViT shape's calls take ~0.15 ms each.
_SAMPLE_SECONDS = 2e-3


@dataclass
class FusedBenchRow:
    """One shape and op: median seconds of the matmul alone, the separate ops and the fused op,
    and the fused op's time over the others' (medians of the ratios within a turn)."""

    shape: str
    op: str
    rows: int
    in_features: int
    out_features: int
    backend: str
    device: str
    dtype: str
    transposed_weights: bool
    check_finite: bool
    matmul_seconds: float
    separate_seconds: float
    fused_seconds: float
    fused_over_matmul: float
    fused_over_separate: float

    def as_dict(self) -> dict:
        return asdict(self)


def fused_runs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, bits: int,
               group_size: int, backend: str, check_finite: bool = True) -> dict:  # fmt: skip
    """The three calls to time: ``matmul`` (addmm into a preallocated output of ``x``'s dtype),
    ``separate`` (that matmul, then the plain quantize op of ``backend``) and ``fused``
    (:func:`project_quantize` with ``backend``); both quantizing calls with ``check_finite``.

    Example:
        >>> runs = fused_runs(torch.randn(8, 4), torch.randn(3, 4), torch.zeros(3), 8, 2, "torch")
        >>> sorted(runs)
        ['fused', 'matmul', 'separate']
    """
    out = x.new_empty(x.shape[0], weight.shape[0])
    weight_t = weight.T
    return {
        "matmul": lambda: torch.addmm(bias, x, weight_t, out=out),
        "separate": lambda: quantize_packed(
            torch.addmm(bias, x, weight_t, out=out),
            bits,
            group_size,
            backend=backend,
            check_finite=check_finite,
        ),
        "fused": lambda: project_quantize(
            x, weight, bias, bits, group_size, backend=backend, check_finite=check_finite
        ),
    }


def dequantize_runs(q: QuantizedTensor, weight: torch.Tensor, bias: torch.Tensor,
                    backend: str) -> dict:  # fmt: skip
    """The three calls to time for :func:`dequantize_project`: ``matmul`` (``F.linear`` of the
    already decoded ``q``), ``separate`` (the plain dequantize op of ``backend``, then
    ``F.linear``) and ``fused``. Every call returns a new tensor, as the fused op must.

    Example:
        >>> q = project_quantize(torch.randn(8, 4), torch.eye(4), group_size=2, backend="torch")
        >>> sorted(dequantize_runs(q, torch.randn(3, 4), torch.zeros(3), "torch"))
        ['fused', 'matmul', 'separate']
    """
    decoded = dequantize(q, backend=backend)
    linear = torch.nn.functional.linear
    return {
        "matmul": lambda: linear(decoded, weight, bias),
        "separate": lambda: linear(dequantize(q, backend=backend), weight, bias),
        "fused": lambda: dequantize_project(q, weight, bias, backend=backend),
    }


def bench_fused(
    shapes: dict[str, tuple[int, int, int]] | None = None,
    bits: int = 8,
    group_size: int = 32,
    repeats: int = 9,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    transposed_weights: bool = False,
    check_finite: bool = True,
    progress: bool | None = None,
) -> list[FusedBenchRow]:
    """Time :func:`fused_runs` and :func:`dequantize_runs` per shape on ``device``, with bias:
    the three calls take turns (:func:`~aiflow_comm.bench.timing.interleaved_samples`), the
    seconds are medians and the ratios medians of each turn's ratio
    (:func:`~aiflow_comm.bench.timing.paired_ratio`; on CUDA, ratios of medians).

    ``shapes`` maps names to ``(rows, in_features, out_features)``; ``None`` takes
    :data:`SHAPES`.

    ``backend`` is a fused backend (``cpp``, ``triton``, ``cuda``, ``torch``) or ``auto``, the
    fastest one usable on ``device``; ``x``, the weights and the biases are of ``dtype``. With
    ``transposed_weights`` every weight ``(out, in)`` is stored transposed (``weight.T``
    contiguous), as a deployment may keep a frozen encoder: the ``cpp`` skinny kernel then reads
    it without packing. ``check_finite=False`` times the quantizing calls without their NaN/Inf
    check, which on a GPU is a device sync per call. On CUDA the times are
    ``triton.testing.do_bench`` medians (device events). ``progress``: a bar on stderr, one step
    per shape and op (``None``: only on a terminal).

    Example:
        >>> rows = bench_fused({"tiny": (8, 4, 2)}, group_size=2, repeats=1, backend="torch")
        >>> [(row.op, row.backend) for row in rows]
        [('project_quantize', 'torch'), ('dequantize_project', 'torch')]
    """
    if repeats < 1 or group_size < 1:
        raise ValueError(f"repeats and group_size must be >= 1; got {repeats}, {group_size}")
    device = resolve_device(device)
    backend = resolve_fused_backend(backend, device)
    rows = []
    generator = torch.Generator().manual_seed(0)
    chosen = SHAPES if shapes is None else shapes
    quiet = None if progress is None else not progress
    bar = tqdm(total=2 * len(chosen), desc="bench fused", unit="op", disable=quiet)
    for name, (count, inp, out) in chosen.items():
        x = torch.randn(count, inp, generator=generator)
        weight = torch.randn(out, inp, generator=generator) / inp**0.5
        bias = torch.randn(out, generator=generator)
        back = torch.randn(inp, out, generator=generator) / out**0.5
        back_bias = torch.randn(inp, generator=generator)
        x, weight, bias, back, back_bias = (
            t.to(device, dtype) for t in (x, weight, bias, back, back_bias)
        )
        if transposed_weights:
            weight, back = weight.T.contiguous().T, back.T.contiguous().T
        q = project_quantize(x, weight, bias, bits, group_size, backend=backend)
        for op, runs in (
            (
                "project_quantize",
                fused_runs(x, weight, bias, bits, group_size, backend, check_finite),
            ),
            ("dequantize_project", dequantize_runs(q, back, back_bias, backend)),
        ):
            samples = interleaved_samples(runs, device, repeats, min_sample_seconds=_SAMPLE_SECONDS)
            seconds = {name: statistics.median(times) for name, times in samples.items()}
            rows.append(
                FusedBenchRow(
                    name,
                    op,
                    count,
                    inp,
                    out,
                    backend,
                    str(device),
                    str(dtype).removeprefix("torch."),
                    transposed_weights,
                    check_finite,
                    seconds["matmul"],
                    seconds["separate"],
                    seconds["fused"],
                    paired_ratio(samples["fused"], samples["matmul"]),
                    paired_ratio(samples["fused"], samples["separate"]),
                )
            )
            bar.update(1)
    bar.close()
    return rows


def format_fused_table(rows: list[FusedBenchRow]) -> str:
    """A text table: milliseconds per variant and the fused op's ratios."""
    lines = [
        f"{'shape':<24}{'op':<20}{'backend':>8}{'matmul ms':>11}{'separate ms':>13}"
        f"{'fused ms':>10}{'fused/matmul':>14}{'fused/separate':>16}"
    ]
    for r in rows:
        lines.append(
            f"{r.shape:<24}{r.op:<20}{r.backend:>8}{r.matmul_seconds * 1e3:>11.3f}"
            f"{r.separate_seconds * 1e3:>13.3f}{r.fused_seconds * 1e3:>10.3f}"
            f"{r.fused_over_matmul:>14.2f}{r.fused_over_separate:>16.2f}"
        )
    return "\n".join(lines)
