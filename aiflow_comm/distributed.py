"""Helpers for data-parallel training with channel noise: one seeded generator per rank."""

from __future__ import annotations

import numbers

import torch.distributed as dist

__all__ = ["rank_seed"]


def rank_seed(seed: int) -> int:
    """``seed + rank`` under ``torch.distributed`` (``seed`` without it).

    Give each rank's channels and links their own stream of noise, reproducibly: build them
    with ``generator=rank_seed(seed)``. Every rank then draws different noise for its shard of
    the global batch, and a rerun draws the same.

    >>> rank_seed(7)  # no process group here
    7
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    seed = int(seed)
    if dist.is_available() and dist.is_initialized():
        return seed + dist.get_rank()
    return seed
