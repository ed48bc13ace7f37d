"""Timing helpers: median wall time on the CPU, device events on CUDA, copy bandwidth."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["copy_bandwidth", "median_seconds"]


def median_seconds(
    fn: Callable[[], object], device: torch.device, repeats: int = 10, warmup: int = 2
) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after ``warmup`` warm-up runs.

    On CUDA this is ``triton.testing.do_bench``'s median (device events); on the CPU, wall time.

    Example:
        >>> median_seconds(lambda: sum(range(100)), torch.device("cpu"), repeats=3) > 0
        True
    """
    if device.type == "cuda":
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


def copy_bandwidth(x: torch.Tensor, repeats: int = 10) -> float:
    """Bytes per second of ``out.copy_(x)`` (bytes read plus bytes written), measured now."""
    out = torch.empty_like(x)
    seconds = median_seconds(lambda: out.copy_(x), x.device, repeats)
    return 2 * x.numel() * x.element_size() / seconds
