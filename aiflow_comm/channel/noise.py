"""Counter-based Gaussian noise: value ``i`` of a draw is a pure function of ``(seed, i)``.

On the CPU, ``torch.randn`` draws about one float32 sample every 4 ns on one core (a serial
Mersenne twister); the analog link needs one per real feature value per training step. This
generator hashes a counter instead, so the C++ kernel (``csrc/gaussian_cpu.cpp``) fills a tensor
in parallel and vectorized, with the same numbers for any number of threads.
:func:`counter_normal_reference` is the specification, in float32 torch ops; the kernel
reproduces it bit for bit (``tests/test_noise.py``).

Word ``i`` of a draw is ``bits(seed, i) = H(H(lo ^ k) ^ k2)``, ``H`` the ``lowbias32`` hash,
``lo`` and ``hi`` the 32-bit halves of ``i``, ``k = H(hi ^ seed)`` and ``k2 = H(k ^ 0x9E3779B9)``.
The seed enters inside and outside the inner hash: keyed by an XOR alone (``H(lo ^ k)``, the
scheme of stochastic rounding's :func:`~aiflow_comm.kernels.reference.hash_bits`), every seed
would draw a permutation of one sequence, and draws whose keys differ in a few low bits would
share most of their values; the second round also removes a small correlation of neighbouring
words. Pair ``p`` of a draw takes the words ``a = bits(seed, 2p)`` and ``b = bits(seed, 2p + 1)``:

* radius ``r = sqrt(-2 log u)`` with ``u = (a + 1) * 2**-32`` in float32, in ``(0, 1]`` (so the
  smallest radius above 0 is about 3.5e-4: a probability of 6e-8 is moved); ``log`` is evaluated
  as ``e log 2 + 2 atanh((m - 1) / (m + 1))`` for ``u = m 2**e``, ``m`` in ``[sqrt(1/2), sqrt(2))``,
  the series to ``s**9`` (truncation below 1e-9);
* angle ``theta = (q + 1/2) pi / 2 + psi``: quadrant ``q`` the top 2 bits of ``b``, ``psi`` in
  ``[-pi/4, pi/4)`` from its low 30 bits; ``sin psi`` and ``cos psi`` by their Taylor series to
  ``psi**9`` and ``psi**8`` (truncation below 3e-8);
* values ``2p`` and ``2p + 1`` are ``r cos theta`` and ``r sin theta`` (Box-Muller): independent
  standard normals, up to float32 rounding; ``|z|`` reaches 6.66 at most.
"""

from __future__ import annotations

import importlib
import math

import torch
from sionna.phy.utils import normal, randint

from aiflow_comm.kernels.reference import hash32

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9

__all__ = ["counter_normal_reference", "normal_bits", "standard_normal"]

_F32 = torch.float32
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_HALF_PI = math.pi / 2
_LOG_SERIES = (1 / 3, 1 / 5, 1 / 7, 1 / 9)  # 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...)
_SIN_SERIES = (-1 / 6, 1 / 120, -1 / 5040, 1 / 362880)
_COS_SERIES = (-1 / 2, 1 / 24, -1 / 720, 1 / 40320)


def _native():
    try:
        module = importlib.import_module("aiflow_comm._C")
    except ImportError:
        return None
    return module if hasattr(module, "counter_normal_cpu") else None


_NATIVE = _native()


def normal_bits(seed: int, index: torch.Tensor) -> torch.Tensor:
    """The 32-bit words of the draw for ``seed`` at int64 ``index`` (held in int64), see above.

    Example:
        >>> bits = normal_bits(7, torch.arange(4))
        >>> bool(((bits >= 0) & (bits < 2**32)).all())
        True
    """
    index = index.to(torch.int64)
    key = hash32((index >> 32) ^ (seed & _MASK32))
    return hash32(hash32((index & _MASK32) ^ key) ^ hash32(key ^ _GOLDEN))


def _horner(t: torch.Tensor, series: tuple[float, ...]) -> torch.Tensor:
    """``1 + t (c0 + t (c1 + ... t c_last))`` in float32, innermost first."""
    acc = torch.full_like(t, series[-1])
    for c in reversed(series[:-1]):
        acc = acc * t + c
    return acc * t + 1.0


def _log_unit(u: torch.Tensor) -> torch.Tensor:
    """``log u`` for float32 ``u`` in ``(0, 1]``, by the documented series."""
    bits = u.view(torch.int32)
    exponent = (bits >> 23) - 127
    mantissa = ((bits & 0x7FFFFF) | 0x3F800000).view(_F32)
    big = mantissa > _SQRT2
    mantissa = torch.where(big, mantissa * 0.5, mantissa)
    exponent = exponent + big.to(torch.int32)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    s2 = s * s
    series = torch.full_like(s2, _LOG_SERIES[-1])
    for c in reversed(_LOG_SERIES[:-1]):
        series = series * s2 + c
    series = series * s2
    return exponent.to(_F32) * _LN2 + (2.0 * s + (2.0 * s) * series)


def counter_normal_reference(
    numel: int, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``numel`` standard normal float32 values for ``seed``: the specification (see above).

    Example:
        >>> z = counter_normal_reference(100_000, seed=1)
        >>> abs(float(z.mean())) < 0.02, abs(float(z.var()) - 1) < 0.02
        (True, True)
    """
    pairs = (numel + 1) // 2
    index = torch.arange(pairs, device=device, dtype=torch.int64) * 2
    a, b = normal_bits(seed, index), normal_bits(seed, index + 1)
    u = (a.to(_F32) + 1.0) * 2.0**-32
    # torch's vectorized float32 sqrt is not always correctly rounded; the float64 root of a
    # float32 value, rounded to float32, is (53 >= 2 * 24 + 2 bits).
    radius = torch.sqrt((_log_unit(u) * -2.0).double()).float()
    quadrant = b >> 30
    psi = ((b & 0x3FFFFFFF).to(_F32) * 2.0**-30 - 0.5) * _HALF_PI
    t = psi * psi
    sin_psi, cos_psi = psi * _horner(t, _SIN_SERIES), _horner(t, _COS_SERIES)
    c, s = (cos_psi - sin_psi) * (1 / _SQRT2), (cos_psi + sin_psi) * (1 / _SQRT2)
    turns = torch.stack((c, -s, -c, s))  # cos(theta) for quadrants 0..3; sin is one turn back
    x = turns.gather(0, quadrant.unsqueeze(0))[0]
    y = turns.gather(0, ((quadrant + 3) % 4).unsqueeze(0))[0]
    return torch.stack((radius * x, radius * y), dim=-1).reshape(-1)[:numel]


def standard_normal(
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype = _F32,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard normal noise of ``shape``: the counter-based kernel for float32 on the CPU.

    The kernel's seed is drawn from ``generator`` (``None``: Sionna's global one), so a seeded
    generator gives the same noise on every run. Other dtypes and devices, a build without the
    C++ extension, and ``torch.compile`` draw with Sionna's ``normal`` (``torch.randn``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> standard_normal((2, 3), generator=g).shape
        torch.Size([2, 3])
    """
    device = torch.device(device)
    fast = dtype == _F32 and device.type == "cpu" and _NATIVE is not None
    if not fast or torch.compiler.is_compiling():
        return normal(shape, dtype=dtype, device=device, generator=generator)
    seed = int(randint(0, 2**31, (1,), device=device, generator=generator))
    out = torch.empty(shape, dtype=_F32)
    _NATIVE.counter_normal_cpu(out, seed)
    return out
