"""Analog link: real features sent as power-normalized complex symbols over a channel."""

from __future__ import annotations

import math

import torch
from torch import nn

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.complex_ops import scale
from aiflow_comm.channel.conventions import normalize_power, snr_db_to_no
from aiflow_comm.channel.equalization import EQUALIZERS, equalize
from aiflow_comm.channel.flat_link import flat_link, is_flat

__all__ = ["AnalogLink", "pair_to_complex", "unpair_to_real"]


def pair_to_complex(features: torch.Tensor) -> torch.Tensor:
    """Pair the real values of each example into complex symbols: ``(batch, ...) -> (batch, n)``.

    The values of an example are flattened, padded with one zero if their count is odd, and
    taken two at a time as real and imaginary parts: ``n = ceil(values / 2)`` channel uses.
    Float16 and bfloat16 are computed in float32; float64 gives complex128.

    >>> pair_to_complex(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[1.+2.j, 3.+0.j]])
    """
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor; got {type(features).__name__}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a real floating-point tensor; got {features.dtype}")
    if features.dim() < 2:
        raise ValueError(
            f"features must have a batch dimension and at least one more; got shape "
            f"{tuple(features.shape)}"
        )
    real = features.double() if features.dtype == torch.float64 else features.float()
    flat = real.flatten(1)  # reshape(batch, -1) fails on an empty batch
    if flat.shape[1] % 2:
        flat = nn.functional.pad(flat, (0, 1))
    return torch.view_as_complex(flat.unflatten(1, (-1, 2)).contiguous())


def unpair_to_real(symbols: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pair_to_complex`: complex ``(batch, n)`` back to ``like``'s shape, dtype.

    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> unpair_to_real(pair_to_complex(x), x)
    tensor([[1., 2., 3.]])
    """
    flat = torch.view_as_real(symbols).flatten(1)
    values = math.prod(like.shape[1:])
    return flat[:, :values].reshape(like.shape).to(like.dtype)


class AnalogLink(nn.Module):
    """Send real features over a channel as complex symbols, differentiably.

    Per example: pair the values into complex symbols (:func:`pair_to_complex`), scale them to
    unit average energy per symbol (so ``snr_db`` is the Es/N0 of what is sent), pass them
    through ``channel``, equalize with the channel's state (perfect CSI, or the estimate an OFDM
    channel returns), undo the scaling, and unpair. The per-example power factor is treated as
    side information delivered without error (one float per example); ``denormalize=False``
    skips it and returns the unit-power estimate, as a learned JSCC decoder expects. Over the
    flat channels (AWGN, Rayleigh, Rician) the whole chain runs in closed form on real views
    (:func:`~aiflow_comm.channel.flat_link.flat_link`), equal in law to the composition.

    Args:
        channel: a channel module taking ``(symbols (batch, n), snr_db, return_state=True)``:
            :class:`AWGN` (default), :class:`RayleighFading`, :class:`RicianFading`,
            ``OFDMChannel``.
        equalizer: ``"mmse"`` (default), ``"zf"`` or ``"none"``.
        denormalize: multiply the received symbols back by the transmitter's power factor.

    Inputs: ``features`` real ``(batch, ...)`` (float32, float64, float16, bfloat16); ``snr_db``
    a number or one value per example. Output: features of the same shape and dtype.

    >>> link = AnalogLink(AWGN(generator=0), equalizer="zf")
    >>> x = torch.randn(8, 3, 16, 16)
    >>> y = link(x, snr_db=30.0)
    >>> y.shape, link.channel_uses(x), bool(((y - x).pow(2).mean() / x.pow(2).mean()) < 0.01)
    (torch.Size([8, 3, 16, 16]), 384, True)
    """

    def __init__(
        self,
        channel: nn.Module | None = None,
        *,
        equalizer: str = "mmse",
        denormalize: bool = True,
    ) -> None:
        super().__init__()
        if channel is not None and not isinstance(channel, nn.Module):
            raise TypeError(f"channel must be an nn.Module or None; got {type(channel).__name__}")
        if equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {equalizer!r}")
        if not isinstance(denormalize, bool):
            raise TypeError(f"denormalize must be True or False; got {denormalize!r}")
        self.channel = channel if channel is not None else AWGN()
        self.equalizer = equalizer
        self.denormalize = denormalize

    @staticmethod
    def channel_uses(features: torch.Tensor) -> int:
        """Complex channel uses per example for ``features``: ``ceil(values per example / 2)``."""
        return math.ceil(math.prod(features.shape[1:]) / 2)

    # torch.compile runs the link eagerly (a graph break): dynamo cannot make fake tensors of
    # the complex views of real pairs it works on ("last dimension of size 2").
    @torch.compiler.disable
    def forward(self, features: torch.Tensor, snr_db: float | torch.Tensor) -> torch.Tensor:
        if isinstance(snr_db, torch.Tensor) and snr_db.dim() > 1:  # symbols are internal
            raise ValueError(
                "snr_db must be a number or one value per example, shape (batch,); got shape "
                f"{tuple(snr_db.shape)}"
            )
        sent = pair_to_complex(features)
        if sent.numel() == 0:  # no example, or examples of no values: nothing to send
            snr_db_to_no(snr_db, sent)  # but a bad SNR is refused as on any other input
            return unpair_to_real(sent, features)
        if is_flat(self.channel):
            received = flat_link(sent, self.channel, snr_db, self.equalizer, self.denormalize)
            return unpair_to_real(received, features)
        symbols, gain = normalize_power(sent)
        received, state = self.channel(symbols, snr_db, return_state=True)
        estimate, _ = equalize(received, state, self.equalizer)
        if self.denormalize:
            estimate = scale(estimate, gain)
        return unpair_to_real(estimate, features)
