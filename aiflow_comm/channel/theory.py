"""Closed-form link theory: bit error rates, capacity and outage over AWGN and Rayleigh fading
(and bit error rates over Rician fading, by one well-conditioned integral).

Conventions (``docs/channels.md``): ``snr_db`` is Es/N0 in dB per complex symbol, ``ebno_db`` is
Eb/N0 in dB (convert with :func:`~aiflow_comm.channel.conventions.ebno_db_to_snr_db` and
:func:`~aiflow_comm.channel.modulation.bits_per_symbol`). Rayleigh gains are ``h ~ CN(0, 1)``,
flat, with perfect CSI at the receiver (coherent detection); results are averaged over ``h``.
Capacities are in bits per complex channel use.

Every function is vectorized with numpy broadcasting and computes in float64 (numpy and
``scipy.special`` only, no torch). Inputs are numbers, sequences or arrays; if every input is a
scalar (0-d) the result is a Python ``float``, otherwise a float64 ``np.ndarray`` of the
broadcast shape. Inputs must be finite: NaN or infinity raises ``ValueError``, and the formulas
are arranged so that finite inputs never give NaN (extreme SNRs give the exact limits).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy import special

from aiflow_comm.channel.modulation import bits_per_symbol, check_modulation

__all__ = [
    "ber_awgn",
    "ber_rayleigh",
    "ber_rician",
    "capacity_awgn",
    "ergodic_capacity_rayleigh",
    "outage_capacity_rayleigh",
    "outage_probability_rayleigh",
]

_DB_TO_LN = math.log(10.0) / 10.0  # ln(10**(db/10)) = db * _DB_TO_LN
_LN2 = math.log(2.0)
_ASYMPTOTIC_TERMS = 25  # exp(x) E1(x) ~ sum_n (-1)^n n! / x^(n+1), for x >= 50
_CRAIG_NODES = 96  # Gauss-Legendre nodes of Craig's integral over [0, pi/2] (ber_rician)


def ber_awgn(modulation: str | int, ebno_db: object) -> float | np.ndarray:
    """Exact bit error rate of Gray-coded ``modulation`` over AWGN with coherent detection.

    BPSK and QPSK: ``Q(sqrt(2 Eb/N0))``. Square M-QAM with binary-reflected Gray labels on each
    axis: the exact expression of Cho & Yoon (IEEE Trans. Commun., 2002), a signed sum of
    ``erfc((2i+1) sqrt(3 log2(M) Eb/N0 / (2 (M-1))))`` terms over the bit positions of the
    ``sqrt(M)``-PAM on each axis (not the nearest-neighbour approximation).

    Args:
        modulation: one of :data:`~aiflow_comm.channel.modulation.MODULATIONS` (any case) or a
            number of points (2, 4, 16, 64, 256).
        ebno_db: Eb/N0 in dB, a number or an array.

    >>> round(ber_awgn("bpsk", 0.0), 6)
    0.07865
    >>> ber_awgn("16qam", [0.0, 10.0]).round(6)
    array([0.140982, 0.001754])
    """
    weights, scales = _erfc_terms(check_modulation(modulation))
    ebno = _real_array(ebno_db, "ebno_db")
    with np.errstate(over="ignore"):
        gamma = np.exp(ebno * _DB_TO_LN)[..., None]
    out = (weights * special.erfc(np.sqrt(scales * gamma))).sum(axis=-1)
    return _result(out, ebno)


def ber_rayleigh(modulation: str | int, ebno_db: object) -> float | np.ndarray:
    """Bit error rate of Gray-coded ``modulation`` over flat Rayleigh fading, averaged over ``h``.

    ``h ~ CN(0, 1)`` with perfect CSI, so the instantaneous Eb/N0 is ``|h|^2 Eb/N0``,
    exponentially distributed with mean ``Eb/N0``. Each ``erfc(sqrt(a gamma))`` term of
    :func:`ber_awgn` averages to ``1 - sqrt(a g / (1 + a g))`` with ``g`` the mean Eb/N0
    (BPSK: ``(1 - sqrt(g / (1 + g))) / 2``), evaluated without cancellation at high SNR.

    >>> round(ber_rayleigh("bpsk", 10.0), 6)
    0.023269
    >>> ber_rayleigh("qpsk", [10.0, 30.0]).round(7)
    array([0.0232687, 0.0002498])
    """
    weights, scales = _erfc_terms(check_modulation(modulation))
    ebno = _real_array(ebno_db, "ebno_db")
    with np.errstate(over="ignore", divide="ignore"):
        x = scales * np.exp(ebno * _DB_TO_LN)[..., None]  # mean of a * gamma
        root = 1.0 / np.sqrt(1.0 + 1.0 / x)  # sqrt(x / (1 + x)), also at x = 0 and x = inf
        mean_erfc = 1.0 / (1.0 + x) / (1.0 + root)  # 1 - root, without cancellation
    out = (weights * mean_erfc).sum(axis=-1)
    return _result(out, ebno)


def ber_rician(modulation: str | int, ebno_db: object, k_factor: object) -> float | np.ndarray:
    """Bit error rate of Gray-coded ``modulation`` over flat Rician fading, averaged over ``h``.

    ``h = sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) CN(0, 1)`` (``E|h|^2 = 1``, ``K`` linear) with
    perfect CSI, so the line-of-sight phase does not matter. Each ``erfc(sqrt(a gamma))`` term of
    :func:`ber_awgn` is written as Craig's integral ``(2/pi) int_0^{pi/2} exp(-a gamma /
    sin^2 t) dt`` and averaged with the moment generating function of ``|h|^2`` (Simon and
    Alouini, Digital Communication over Fading Channels, 5.1),
    ``M(s) = (1+K)/(1+K+s g) exp(-K s g / (1+K+s g))``, ``g`` the mean Eb/N0; the integral
    over ``t`` is smooth and bounded, evaluated by 96-point Gauss-Legendre. ``K = 0`` is
    :func:`ber_rayleigh`, and a large ``K`` tends to :func:`ber_awgn`.

    >>> round(ber_rician("bpsk", 10.0, 0.0), 6)  # = ber_rayleigh("bpsk", 10.0)
    0.023269
    >>> [round(p, 6) for p in ber_rician("qpsk", 10.0, [1.0, 10.0, 1e6]).tolist()]
    [0.01821, 0.000701, 4e-06]
    """
    weights, scales = _erfc_terms(check_modulation(modulation))
    ebno = _real_array(ebno_db, "ebno_db")
    k = _real_array(k_factor, "k_factor")
    if (k < 0).any():
        raise ValueError(f"k_factor must be >= 0 (linear, not dB); got {_first(k < 0, k)}")
    nodes, node_weights = _craig_rule()
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        g = np.exp(ebno * _DB_TO_LN)[..., None, None]  # (..., 1, 1)
        kk = np.asarray(k)[..., None, None]
        x = scales[:, None] * g / np.sin(nodes) ** 2  # s g at s = a / sin^2 t: (..., terms, t)
        denominator = 1.0 + kk + x
        mgf = (1.0 + kk) / denominator * np.exp(-kk * x / denominator)
        mgf = np.where(np.isfinite(x), mgf, 0.0)  # an infinite Eb/N0: no error
    mean_erfc = (2.0 / np.pi) * (mgf * node_weights).sum(axis=-1)
    out = (weights * mean_erfc).sum(axis=-1)
    return _result(out, ebno, k)


@cache
def _craig_rule() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on ``[0, pi/2]``."""
    nodes, node_weights = np.polynomial.legendre.leggauss(_CRAIG_NODES)
    return (nodes + 1.0) * (np.pi / 4.0), node_weights * (np.pi / 4.0)


def capacity_awgn(snr_db: object) -> float | np.ndarray:
    """Shannon capacity of the complex AWGN channel, ``log2(1 + snr)`` bits per channel use.

    >>> capacity_awgn(0.0), capacity_awgn([10.0, 20.0]).round(4)
    (1.0, array([3.4594, 6.6582]))
    """
    snr = _real_array(snr_db, "snr_db")
    return _result(np.logaddexp(0.0, snr * _DB_TO_LN) / _LN2, snr)


def ergodic_capacity_rayleigh(snr_db: object) -> float | np.ndarray:
    """Ergodic capacity of flat Rayleigh fading with CSI at the receiver, bits per channel use.

    ``E[log2(1 + |h|^2 snr)] = log2(e) exp(1/snr) E1(1/snr)`` with ``E1`` the exponential
    integral. The product ``exp(x) E1(x)`` is taken from its asymptotic series for
    ``x = 1/snr >= 50`` (where ``exp(x)`` would overflow) and from ``-euler_gamma - ln(x)`` plus
    its first-order term for ``x <= 1e-10``, so every finite ``snr_db`` gives a finite result.

    >>> round(ergodic_capacity_rayleigh(0.0), 6)
    0.860347
    >>> ergodic_capacity_rayleigh([-20.0, 40.0]).round(6)
    array([ 0.014285, 12.456356])
    """
    snr_db_arr = _real_array(snr_db, "snr_db")
    ln_snr = np.atleast_1d(snr_db_arr * _DB_TO_LN)
    with np.errstate(over="ignore", under="ignore"):
        snr = np.exp(ln_snr)
    scaled_e1 = np.empty_like(ln_snr)  # exp(x) E1(x), x = 1 / snr
    low = snr <= 1.0 / 50.0
    high = ln_snr >= 10.0 * math.log(10.0)
    mid = ~(low | high)
    u = snr[low]
    series = np.zeros_like(u)
    for n in range(_ASYMPTOTIC_TERMS - 1, -1, -1):  # Horner: u (0! - 1! u + 2! u^2 - ...)
        series = (-1) ** n * math.factorial(n) * u + series * u
    scaled_e1[low] = series
    x = 1.0 / snr[mid]
    scaled_e1[mid] = np.exp(x) * special.exp1(x)
    ln = ln_snr[high]
    with np.errstate(under="ignore"):
        x = np.exp(-ln)
    scaled_e1[high] = -np.euler_gamma + ln + x * (1.0 - np.euler_gamma + ln)
    return _result(scaled_e1.reshape(snr_db_arr.shape) / _LN2, snr_db_arr)


def outage_probability_rayleigh(rate: object, snr_db: object) -> float | np.ndarray:
    """Probability that flat Rayleigh fading cannot carry ``rate`` bits per channel use.

    ``P[log2(1 + |h|^2 snr) < rate] = 1 - exp(-(2**rate - 1) / snr)``, since ``|h|^2`` is
    exponential with mean 1. ``rate >= 0``; ``rate`` and ``snr_db`` broadcast together.

    >>> round(outage_probability_rayleigh(1.0, 10.0), 6)
    0.095163
    >>> outage_probability_rayleigh([0.0, 2.0], 20.0).round(6)
    array([0.      , 0.029554])
    """
    rate_arr = _real_array(rate, "rate")
    if (rate_arr < 0).any():
        raise ValueError(
            f"rate must be >= 0 bits per channel use; got {_first(rate_arr < 0, rate_arr)}"
        )
    snr = _real_array(snr_db, "snr_db")
    with np.errstate(divide="ignore", over="ignore"):
        threshold = rate_arr * _LN2 + np.log(-np.expm1(-rate_arr * _LN2))  # ln(2**rate - 1)
        out = -np.expm1(-np.exp(threshold - snr * _DB_TO_LN))
    return _result(out, rate_arr, snr)


def outage_capacity_rayleigh(epsilon: object, snr_db: object) -> float | np.ndarray:
    """Largest rate whose outage probability over flat Rayleigh fading is at most ``epsilon``.

    ``log2(1 - snr ln(1 - epsilon))``, the inverse in ``rate`` of
    :func:`outage_probability_rayleigh`. ``epsilon`` is in ``(0, 1)``; it broadcasts with
    ``snr_db``.

    >>> round(outage_capacity_rayleigh(0.01, 20.0), 6)
    1.003626
    >>> outage_capacity_rayleigh([0.01, 0.1], 10.0).round(4)
    array([0.1382, 1.0382])
    """
    eps = _real_array(epsilon, "epsilon")
    if ((eps <= 0) | (eps >= 1)).any():
        bad = _first((eps <= 0) | (eps >= 1), eps)
        raise ValueError(f"epsilon must be in the open interval (0, 1); got {bad}")
    snr = _real_array(snr_db, "snr_db")
    ln_gain = np.log(-np.log1p(-eps)) + snr * _DB_TO_LN  # ln(-snr ln(1 - epsilon))
    return _result(np.logaddexp(0.0, ln_gain) / _LN2, eps, snr)


@cache
def _erfc_terms(modulation: str) -> tuple[np.ndarray, np.ndarray]:
    """``(w, a)`` with ``BER = sum_i w_i erfc(sqrt(a_i Eb/N0))`` over AWGN (Cho & Yoon, 2002).

    Square M-QAM with Gray labels is two independent ``sqrt(M)``-PAMs; for ``I``-PAM the
    ``k``-th bit errs with probability ``(1/I) sum_{i=0}^{(1-2^-k) I - 1} (-1)^floor(i 2^(k-1)
    / I) (2^(k-1) - floor(i 2^(k-1) / I + 1/2)) erfc((2i+1) sqrt(3 log2(M) Eb/N0 / (2(M-1))))``;
    the BER is the mean over the ``log2(I)`` bits. BPSK: ``w = 1/2``, ``a = 1``.
    """
    m = 2 ** bits_per_symbol(modulation)
    if m == 2:
        return np.full(1, 0.5), np.ones(1)
    levels = math.isqrt(m)  # I, points per axis
    bits = levels.bit_length() - 1  # log2(I)
    weights = np.zeros(levels - 1)
    for k in range(1, bits + 1):
        half = 2 ** (k - 1)
        for i in range(levels - levels // 2**k):  # i <= (1 - 2^-k) I - 1
            sign = -1 if (i * half // levels) % 2 else 1
            weights[i] += sign * (half - (2 * i * half + levels) // (2 * levels))
    weights /= levels * bits
    scales = (2 * np.arange(levels - 1) + 1) ** 2 * (3.0 * math.log2(m) / (2.0 * (m - 1)))
    keep = weights != 0
    return weights[keep], scales[keep]


def _real_array(value: object, name: str) -> np.ndarray:
    """``value`` as a finite float64 array, or ``TypeError``/``ValueError`` naming ``name``."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(
            f"{name} must be a real number or array; got {type(value).__name__}"
        ) from exc
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or array; got dtype {raw.dtype}")
    arr = raw.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"{name} must be finite; got {_first(~finite, arr)}")
    return arr


def _first(mask: np.ndarray, arr: np.ndarray) -> str:
    """The first value of ``arr`` where ``mask`` holds, with its index for arrays."""
    if arr.ndim == 0:
        return str(arr.item())
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"{arr[index]} at index {index}"


def _result(out: np.ndarray, *inputs: np.ndarray) -> float | np.ndarray:
    """A Python float when every input is 0-d, else a float64 array of the broadcast shape."""
    if all(x.ndim == 0 for x in inputs):
        return float(np.asarray(out).reshape(()))
    return np.asarray(out, dtype=np.float64)
