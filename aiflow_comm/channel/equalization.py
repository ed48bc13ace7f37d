"""Receiver equalization of flat (per-symbol) channels: none, zero forcing, or MMSE."""

from __future__ import annotations

import torch

from aiflow_comm.channel.complex_ops import energy, scale
from aiflow_comm.channel.state import ChannelState

__all__ = ["EQUALIZERS", "equalize"]

EQUALIZERS = ("none", "zf", "mmse")


def equalize(
    y: torch.Tensor, state: ChannelState, method: str = "mmse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Estimate the transmitted symbols from ``y = h x + n`` with the receiver's gains.

    Uses ``state.receiver_h`` (``h`` with perfect CSI, ``h_hat`` when estimated) and
    ``no_total = no + err_var`` (noise plus channel-estimation error). For unit-energy symbols:

    * ``"none"``: ``x_hat = y``; ``no_eff = no_total``.
    * ``"zf"``: ``x_hat = y / h``; ``no_eff = no_total / |h|^2`` (unbiased).
    * ``"mmse"``: ``x_hat = conj(h) y / (|h|^2 + no_total)``, the minimum-mean-square-error
      estimate (biased towards 0); ``no_eff = no_total / (|h|^2 + no_total)`` is its error variance.

    Returns ``(x_hat, no_eff)`` with ``no_eff`` broadcastable to ``x_hat``. A channel without
    fading (``h is None``) gives ``x_hat = y`` for ``none`` and ``zf``, and ``y / (1 + no)`` for
    ``mmse``. Differentiable.

    >>> h = torch.tensor([2j])
    >>> state = ChannelState(no=torch.tensor(0.0), h=h)
    >>> x_hat, no_eff = equalize(h * torch.tensor([1 + 0j]), state, "zf")
    >>> x_hat, no_eff
    (tensor([1.+0.j]), tensor([0.]))
    """
    if method not in EQUALIZERS:
        raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {method!r}")
    no_total = state.no + state.err_var
    h = state.receiver_h
    if method == "none":
        return y, no_total
    if h is None:
        h = torch.ones((), dtype=y.dtype, device=y.device)
    gain = energy(h)
    if method == "zf":  # y / h = conj(h) y / |h|^2
        return scale(h.conj() * y, 1.0 / gain), no_total / gain
    denominator = gain + no_total
    return scale(h.conj() * y, 1.0 / denominator), no_total / denominator
