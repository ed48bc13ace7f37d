"""Timing helpers: median wall time on the CPU (alone or in turns), device events on CUDA."""

from __future__ import annotations

import math
import numbers
import statistics
import time
from collections.abc import Callable

import torch

__all__ = [
    "interleaved_medians",
    "interleaved_samples",
    "median_seconds",
    "paired_ratio",
    "resolve_device",
]


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here: the CPU, or a CUDA device when
    CUDA is available (``cuda:N`` with ``N`` below the device count). ``ValueError`` otherwise,
    its message starting ``device 'NAME'``.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device 'gpu' is not 'cpu', 'cuda' or 'cuda:N'
    """
    try:
        where = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        where = None
    if where is None or where.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(device)!r} is not 'cpu', 'cuda' or 'cuda:N'")
    if where.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r}: CUDA is not available here")
        if where.index is not None and where.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    return where


def _check_repeats(repeats: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")


def median_seconds(
    fn: Callable[[], object], device: str | torch.device, repeats: int = 10, warmup: int = 2
) -> float:
    """Median seconds of ``fn()`` over ``repeats`` (>= 1) runs after ``warmup`` warm-up runs.

    On CUDA this is ``triton.testing.do_bench``'s median (device events); on the CPU, wall time.

    Example:
        >>> median_seconds(lambda: sum(range(100)), torch.device("cpu"), repeats=3) > 0
        True
    """
    _check_repeats(repeats)
    if torch.device(device).type == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, return_mode="median") / 1e3
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def interleaved_samples(
    runs: dict[str, Callable[[], object]],
    device: str | torch.device,
    repeats: int = 10,
    warmup: int = 1,
    min_sample_seconds: float = 0.0,
) -> dict[str, list[float]]:
    """``repeats`` samples of seconds per call of each run, the runs taking turns (on the CPU),
    so that all of them see the same machine load: on a shared VM it drifts over seconds, which
    skews ratios of runs timed one after the other. Sample ``i`` of every run comes from turn
    ``i`` (see :func:`paired_ratio`). On CUDA each run has one sample, its
    :func:`median_seconds`.

    A sample is one call, or with ``min_sample_seconds`` as many back-to-back calls as fill that
    long (counted once per run after the warm-up): a single call of a few hundred microseconds
    is at the mercy of the timer and of whatever ran just before it. ``repeats`` must be >= 1
    and ``min_sample_seconds`` a finite number (``ValueError`` otherwise).

    Example:
        >>> samples = interleaved_samples({"a": lambda: 1, "b": lambda: 2}, "cpu", 3)
        >>> {name: len(times) for name, times in samples.items()}
        {'a': 3, 'b': 3}
    """
    _check_repeats(repeats)
    if not math.isfinite(min_sample_seconds):
        raise ValueError(f"min_sample_seconds must be finite; got {min_sample_seconds!r}")
    device = torch.device(device)
    if device.type == "cuda":
        return {name: [median_seconds(run, device, repeats)] for name, run in runs.items()}
    for _ in range(warmup):
        for run in runs.values():
            run()
    calls = {name: _calls_filling(run, min_sample_seconds) for name, run in runs.items()}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                run()
            samples[name].append((time.perf_counter() - start) / calls[name])
    return samples


def interleaved_medians(
    runs: dict[str, Callable[[], object]],
    device: str | torch.device,
    repeats: int = 10,
    warmup: int = 1,
    min_sample_seconds: float = 0.0,
) -> dict[str, float]:
    """The median of each run's :func:`interleaved_samples` (same arguments).

    Example:
        >>> times = interleaved_medians({"a": lambda: 1, "b": lambda: 2}, torch.device("cpu"), 3)
        >>> sorted(times)
        ['a', 'b']
    """
    samples = interleaved_samples(runs, device, repeats, warmup, min_sample_seconds)
    return {name: statistics.median(times) for name, times in samples.items()}


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over turns of ``numerator[i] / denominator[i]``: two runs' time ratio from
    :func:`interleaved_samples`, each turn's pair timed under the same load. When the machine's
    speed drifts between turns, the ratio of the two medians may pair a fast turn of one run with
    a slow turn of the other. ``ValueError`` for lists of other lengths or empty ones.

    Example:
        >>> paired_ratio([2.0, 4.0, 9.0], [1.0, 4.0, 3.0])
        2.0
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(
            f"numerator and denominator must be samples of the same turns; got "
            f"{len(numerator)} and {len(denominator)} samples"
        )
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def _calls_filling(run: Callable[[], object], seconds: float) -> int:
    """How many calls of ``run`` take about ``seconds`` (at least one), from one timed call."""
    if seconds <= 0:
        return 1
    start = time.perf_counter()
    run()
    return max(1, math.ceil(seconds / max(time.perf_counter() - start, 1e-9)))
