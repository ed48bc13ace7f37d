"""Pareto fronts: the points no other point beats in every objective (all minimized)."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_front"]


def pareto_front(points: object) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (``(N, M)``, every column minimized).

    Row ``q`` dominates row ``p`` when ``q <= p`` in every column and ``q < p`` in one. Rows
    with NaN or +inf are left out; equal rows are all kept. Indices come sorted by the first
    column (then the others). Rows are scanned in lexicographic order, where a dominating row
    always comes first, against the front found so far: ``O(N F M)`` for a front of ``F``.

    >>> pareto_front([[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [4.0, 1.0]]).tolist()
    [0, 1, 3]
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-d array (N, M); got shape {pts.shape}")
    valid = np.flatnonzero(np.all(np.isfinite(pts), axis=1))
    order = valid[np.lexsort(pts[valid].T[::-1])]
    front: list[int] = []
    kept = np.empty((0, pts.shape[1]))
    for i in order:
        p = pts[i]
        if kept.size and np.any(np.all(kept <= p, axis=1) & np.any(kept < p, axis=1)):
            continue
        front.append(int(i))
        kept = np.vstack([kept, p])
    return np.array(front, dtype=np.int64)
