"""The analog link over a flat channel (AWGN, Rayleigh, Rician), in closed form on real views.

For ``y = h u + w`` with ``w ~ CN(0, no)``, ``u = x / gamma`` the power-normalized symbols and
an equalizer ``g`` (``1``, ``1/h`` or ``conj(h) / (|h|^2 + no)``), the equalized and
denormalized estimate is ``gamma g y = (g h) x + gamma g w``. Given ``h``, ``g w`` is circularly
symmetric Gaussian, so it equals ``|g| w'`` in distribution with ``w'`` drawn afresh: the link
draws real Gaussian noise and applies two real (or, without equalization, one complex) factors
per symbol, instead of complex products and their backward. The outputs follow exactly the law
of the composed channel and equalizer (``tests/test_channel.py`` checks it against them with the
same noise), at a fraction of the cost.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.complex_ops import energy
from aiflow_comm.channel.conventions import rms_floor, root_mean_square, snr_db_to_no
from aiflow_comm.channel.fading import RayleighFading
from aiflow_comm.channel.noise import standard_normal

__all__ = ["equalized_response", "flat_link", "is_flat"]

_FLAT_FORWARDS = (AWGN.forward, RayleighFading.forward)


def is_flat(channel: nn.Module) -> bool:
    """Whether ``channel`` is one of the library's flat channels, with their own ``forward``.

    >>> is_flat(AWGN()), is_flat(RayleighFading()), is_flat(nn.Identity())
    (True, True, False)
    """
    return getattr(type(channel), "forward", None) in _FLAT_FORWARDS


def equalized_response(
    h: torch.Tensor | None, no: torch.Tensor, equalizer: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g h, |g| sqrt(no / 2))``: the signal factor and the noise deviation per real dimension.

    ``g`` is the equalizer's factor for gains ``h`` (``None``: no fading) and noise variance
    ``no``. The signal factor is real for ``"zf"`` and ``"mmse"`` and equals ``h`` for ``"none"``.

    >>> a, s = equalized_response(None, torch.tensor(0.25), "mmse")
    >>> float(a), round(float(s), 4)
    (0.800000011920929, 0.2828)
    """
    deviation = torch.sqrt(no / 2)
    if h is None:
        if equalizer == "mmse":
            return 1.0 / (1.0 + no), deviation / (1.0 + no)
        return torch.ones_like(no), deviation
    if equalizer == "none":
        return h, deviation.expand(h.shape)
    gain = energy(h)
    if equalizer == "zf":
        return torch.ones_like(gain), deviation / gain.sqrt()
    return gain / (gain + no), gain.sqrt() * deviation / (gain + no)


def _times(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Real view ``x`` (``(..., 2)``) times a per-symbol factor, complex or real."""
    if factor.is_complex():
        return torch.view_as_real(torch.view_as_complex(x) * factor)
    return x * factor.unsqueeze(-1)


def _per_example_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum(a * b)`` over all but the first dimension, shaped ``(batch, 1, ...)``."""
    dot = torch.linalg.vecdot(a.flatten(1), b.flatten(1))
    return dot.reshape(a.shape[0], *(1,) * (a.dim() - 1))


def _factor_gradient(grad: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """The gradient of ``_times(x, factor)`` with respect to ``factor`` (``(batch, 1)`` or
    ``(batch, n)``, real or complex), given the output's gradient ``grad``."""
    if factor.is_complex():
        product = (
            torch.view_as_complex(grad.contiguous()) * torch.view_as_complex(x.contiguous()).conj()
        )
    else:
        product = (grad * x).sum(-1)
    return product.sum(1, keepdim=True) if factor.shape[1] == 1 else product


class _EqualizedEstimate(torch.autograd.Function):
    """``signal * x + gamma * deviation * noise`` (or ``signal * x / gamma + deviation * noise``
    without denormalization), ``gamma`` the root mean energy per symbol of each example of
    ``x``; two passes forward and three backward for ``x``'s gradient, plus one for each of
    ``signal`` and ``deviation`` when they need one (an SNR being learned)."""

    @staticmethod
    def forward(ctx, pairs, signal, deviation, noise, denormalize, eps):
        count = math.prod(pairs.shape[1:-1])
        rms = root_mean_square(pairs, tuple(range(1, pairs.dim())))
        floor = rms_floor(pairs.dtype, eps)
        gamma = rms.clamp_min(floor)
        # ``signal`` and ``deviation`` are per symbol (``(batch, m)``): add the real axis.
        deviation = deviation.unsqueeze(-1)
        if denormalize:
            out = _times(pairs, signal).addcmul_(noise, gamma * deviation)
        else:
            out = _times(pairs, signal / gamma.squeeze(-1)).addcmul_(noise, deviation)
        live = (rms > floor).to(pairs.dtype)
        ctx.save_for_backward(pairs, signal, deviation, noise, gamma, live)
        ctx.denormalize, ctx.count = denormalize, max(count, 1)
        return out

    @staticmethod
    def backward(ctx, grad):
        pairs, signal, deviation, noise, gamma, live = ctx.saved_tensors
        grad_signal = grad_deviation = None
        if ctx.needs_input_grad[1]:
            sent = pairs if ctx.denormalize else pairs / gamma
            grad_signal = _factor_gradient(grad, sent, signal)
        if ctx.needs_input_grad[2]:
            scaled = noise * gamma if ctx.denormalize else noise
            grad_deviation = _factor_gradient(grad, scaled, deviation.squeeze(-1))
        back = signal.conj() if signal.is_complex() else signal
        # d gamma / d x = x / (count * gamma) where gamma is not clamped; x / gamma (of unit
        # power) first, so that a tiny gamma never divides anything twice.
        unit = pairs / gamma
        if ctx.denormalize:
            weighted = noise if deviation.shape[1] == 1 else noise * deviation
            scale = deviation[:, :1] if deviation.shape[1] == 1 else 1.0
            pull = _per_example_dot(grad, weighted) * scale * live / ctx.count
            grad_x = _times(grad, back).addcmul_(unit, pull)
        else:
            through = _times(grad, back / gamma.squeeze(-1))  # the gradient of x / gamma ...
            pull = _per_example_dot(through, unit) * live / ctx.count
            grad_x = through.addcmul_(unit, -pull)  # ... projected
        return grad_x, grad_signal, grad_deviation, None, None, None


def equalized_estimate(
    pairs: torch.Tensor,
    signal: torch.Tensor,
    deviation: torch.Tensor,
    noise: torch.Tensor,
    denormalize: bool = True,
    eps: float | None = None,
) -> torch.Tensor:
    """The link's output for real views ``pairs`` ``(batch, n, 2)`` and a given ``noise``.

    ``signal`` (real or complex) and ``deviation`` (real) are :func:`equalized_response`'s
    factors, shaped ``(batch, 1)`` or ``(batch, n)``. Differentiable in all three (``signal``
    and ``deviation`` carry an SNR's gradient). ``eps``: the floor of the normalizing gain, as
    in :func:`~aiflow_comm.channel.conventions.normalize_power`.

    >>> pairs = torch.ones(1, 2, 2)
    >>> out = equalized_estimate(pairs, torch.ones(1, 1), torch.zeros(1, 1), torch.randn(1, 2, 2))
    >>> torch.equal(out, pairs)
    True
    """
    return _EqualizedEstimate.apply(pairs, signal, deviation, noise, denormalize, eps)


def flat_link(
    symbols: torch.Tensor,
    channel: nn.Module,
    snr_db: float | torch.Tensor,
    equalizer: str,
    denormalize: bool,
) -> torch.Tensor:
    """Normalize, send over flat ``channel``, equalize and (optionally) denormalize, in one go.

    ``symbols`` is complex ``(batch, n)``; the result is shaped like it. Differentiable in
    ``symbols`` and in a tensor ``snr_db``. Equal in law to
    :class:`~aiflow_comm.channel.AnalogLink`'s composed path.

    >>> x = torch.randn(4, 64, dtype=torch.complex64)
    >>> y = flat_link(x, AWGN(generator=0), 40.0, "zf", True)
    >>> bool(((y - x).abs().pow(2).mean() / x.abs().pow(2).mean()) < 1e-3)
    True
    """
    if symbols.dim() != 2:
        raise ValueError(f"symbols must be complex (batch, n); got shape {tuple(symbols.shape)}")
    pairs = torch.view_as_real(symbols)
    no = snr_db_to_no(snr_db, symbols)
    h = channel.gains(symbols) if isinstance(channel, RayleighFading) else None
    signal, deviation = equalized_response(h, no, equalizer)
    batch = symbols.shape[0]
    signal, deviation = (f.reshape(-1, f.shape[-1] if f.dim() else 1) for f in (signal, deviation))
    signal, deviation = (f.expand(batch, f.shape[-1]) for f in (signal, deviation))
    random = channel.noise.random if isinstance(channel, RayleighFading) else channel.random
    noise = standard_normal(
        pairs.shape, dtype=pairs.dtype, device=pairs.device,
        generator=random.generator(pairs.device),
    )  # fmt: skip
    return torch.view_as_complex(equalized_estimate(pairs, signal, deviation, noise, denormalize))
