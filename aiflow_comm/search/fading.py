"""Distribution of the power gain ``|h|^2`` of flat fading: CDF and quantile points."""

from __future__ import annotations

import math
import numbers
from functools import cache

import numpy as np
from scipy import special

__all__ = [
    "FADINGS",
    "QUANTILE_POINTS",
    "RICIAN_K_MAX",
    "RICIAN_NORMAL_K",
    "gain_at_logit",
    "gain_cdf",
    "gain_logit",
    "gain_quantiles",
]

FADINGS = ("none", "rayleigh", "rician")
QUANTILE_POINTS = 512
# From this K on, gain_logit and gain_at_logit take a Rician |h|^2 as normal (its skewness is
# 0.02 at K = 1e4): SciPy's noncentral chi-square quantiles take ~15 ms each at K = 1e8.
RICIAN_NORMAL_K = 1e4
# Rician factors above this are computed as this one: SciPy's noncentral chi-square gives NaN
# quantiles from about K = 3e10, and at 1e8 |h|^2 is already 1 within 0.05% (std sqrt(2 / K)).
RICIAN_K_MAX = 1e8


def _stats():
    from scipy import stats  # slow to import: only Rician fading needs it

    return stats


def check_fading(fading: str, rician_k: float) -> None:
    """Raise ``ValueError`` for an unknown ``fading`` or a negative or non-finite ``rician_k``."""
    if fading not in FADINGS:
        raise ValueError(f"fading must be one of {FADINGS}; got {fading!r}")
    if not (
        isinstance(rician_k, numbers.Real)
        and not isinstance(rician_k, bool)
        and 0.0 <= rician_k < float("inf")
    ):
        raise ValueError(f"rician_k must be a finite number >= 0 (linear K); got {rician_k!r}")


def gain_cdf(x: object, fading: str, rician_k: float = 0.0) -> np.ndarray:
    """``P[|h|^2 < x]`` with ``E|h|^2 = 1`` (``docs/channels.md``).

    ``none``: ``|h|^2 = 1``. ``rayleigh``: ``1 - exp(-x)``. ``rician`` with linear factor
    ``K``: ``2 (K + 1) |h|^2`` is noncentral chi-square with 2 degrees of freedom and
    noncentrality ``2 K``.

    >>> gain_cdf([0.5, 2.0], "rayleigh").round(4)
    array([0.3935, 0.8647])
    """
    check_fading(fading, rician_k)
    x = np.asarray(x, dtype=np.float64)
    if fading == "none":
        return (x > 1.0).astype(np.float64)
    if fading == "rayleigh":
        return -np.expm1(-np.maximum(x, 0.0))
    k = min(rician_k, RICIAN_K_MAX)
    return _stats().ncx2.cdf(2.0 * (k + 1.0) * x, 2, 2.0 * k)


@cache
def _quantiles(fading: str, rician_k: float, n: int) -> np.ndarray:
    u = (np.arange(n) + 0.5) / n
    if fading == "none":
        out = np.ones(n)
    elif fading == "rayleigh":
        out = -np.log1p(-u)
    else:
        out = _stats().ncx2.ppf(u, 2, 2.0 * rician_k) / (2.0 * (rician_k + 1.0))
    out.flags.writeable = False
    return out


def gain_quantiles(fading: str, rician_k: float = 0.0, n: int = QUANTILE_POINTS) -> np.ndarray:
    """``n`` equally likely points of ``|h|^2``: its quantiles at ``(i + 1/2) / n``.

    ``mean(f(gain_quantiles(...)))`` is the midpoint rule for ``E[f(|h|^2)]``; the link model
    uses it for expectations without a closed form (Rician capacity, BLER curves under fading).

    >>> round(float(gain_quantiles("rayleigh").mean()), 3)
    0.999
    """
    check_fading(fading, rician_k)
    return _quantiles(fading, min(float(rician_k), RICIAN_K_MAX), int(n))


def gain_logit(x: object, fading: str, rician_k: float = 0.0) -> np.ndarray:
    """``log(F / (1 - F))`` of ``F = P[|h|^2 < x]``, from log-CDF and log-survival.

    Accurate in both tails (``1 - F`` is not formed by subtraction): deep fades, where a
    coded link's errors come from at high SNR, have ``F`` far below the float64 epsilon of 1.
    Only for ``rayleigh`` and ``rician``.

    >>> gain_logit([1e-12, 50.0], "rayleigh").round(3)
    array([-27.631,  50.   ])
    """
    check_fading(fading, rician_k)
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore"):
        if fading == "rayleigh":
            return np.log(-np.expm1(-x)) + x
        k = min(rician_k, RICIAN_K_MAX)
        if k >= RICIAN_NORMAL_K:
            z = (x - 1.0) / _rician_std(k)
            return special.log_ndtr(z) - special.log_ndtr(-z)
        y, nc = 2.0 * (k + 1.0) * x, 2.0 * k
        return _stats().ncx2.logcdf(y, 2, nc) - _stats().ncx2.logsf(y, 2, nc)


def gain_at_logit(t: object, fading: str, rician_k: float = 0.0) -> np.ndarray:
    """The gain ``x`` with ``gain_logit(x) = t``: the quantile at ``1 / (1 + exp(-t))``.

    The lower half from the CDF's inverse, the upper half from the survival function's, so
    that both tails keep their precision. Only for ``rayleigh`` and ``rician``.

    >>> gain_at_logit([-27.631, 50.0], "rayleigh").round(3)
    array([ 0., 50.])
    """
    check_fading(fading, rician_k)
    t = np.asarray(t, dtype=np.float64)
    lower, upper = special.expit(-np.abs(t)), t > 0  # the smaller tail's probability
    if fading == "rayleigh":
        return np.where(upper, -np.log(lower), -np.log1p(-lower))
    k = min(rician_k, RICIAN_K_MAX)
    if k >= RICIAN_NORMAL_K:
        deviation = _rician_std(k) * special.ndtri(lower)  # <= 0: the lower tail's side
        return np.maximum(np.where(upper, 1.0 - deviation, 1.0 + deviation), 0.0)
    stats = _stats()
    y = np.where(upper, stats.ncx2.isf(lower, 2, 2.0 * k), stats.ncx2.ppf(lower, 2, 2.0 * k))
    return y / (2.0 * (k + 1.0))


def _rician_std(k: float) -> float:
    """The standard deviation of a Rician ``|h|^2`` of mean 1: ``sqrt(1 + 2K) / (1 + K)``."""
    return math.sqrt(1.0 + 2.0 * k) / (1.0 + k)
