"""Joint source-channel coding model: a learned encoder and decoder around a channel."""

from __future__ import annotations

import torch
from torch import nn

from aiflow_comm.channel.equalization import EQUALIZERS, equalize

__all__ = ["JSCC"]


class JSCC(nn.Module):
    """Encoder, channel, equalizer and decoder as one differentiable module.

    ``forward(x, snr_db)`` runs ``symbols = encoder(x, snr_db)`` (complex ``(batch, k)``,
    unit average energy per symbol and example), ``y, state = channel(symbols, snr_db,
    return_state=True)``, ``x_hat, _ = equalize(y, state, equalizer)`` and
    ``decoder(x_hat, snr_db, output_shape=x.shape)``. Any encoder and decoder following that
    protocol fit; :class:`VectorJSCC` and :class:`ImageJSCC` build the library's pairs. SNR-free
    encoders and decoders receive ``snr_db`` and ignore it.

    Args:
        encoder: real source ``(batch, ...)`` to complex symbols ``(batch, k)``; its
            ``channel_uses(shape)`` and ``ratio`` back :meth:`channel_uses` and :attr:`ratio`.
        decoder: equalized symbols ``(batch, k)`` to the source's shape.
        channel: :class:`~aiflow_comm.channel.AWGN` (default, a fresh one),
            :class:`~aiflow_comm.channel.RayleighFading`, ``RicianFading``, ``OFDMChannel``...
        equalizer: ``"mmse"`` (default), ``"zf"`` or ``"none"``; uses the channel state's ``h``
            (perfect CSI) or ``h_hat`` (estimated).

    Inputs: ``x`` the source, real ``(batch, ...)``; ``snr_db`` Es/N0 in dB per complex symbol,
    a number or one value per example ``(batch,)``. Output: the reconstruction, shaped like
    ``x``.

    >>> from aiflow_comm.semantic import VectorDecoder, VectorEncoder
    >>> from aiflow_comm.channel import AWGN
    >>> model = JSCC(VectorEncoder(8, 0.5), VectorDecoder(8, 0.5), AWGN(generator=0))
    >>> x = torch.randn(4, 8)
    >>> model(x, snr_db=10.0).shape, model.channel_uses(x), model.ratio
    (torch.Size([4, 8]), 4, 0.5)
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        channel: nn.Module | None = None,
        *,
        equalizer: str = "mmse",
    ) -> None:
        super().__init__()
        for name, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, nn.Module):
                raise TypeError(f"{name} must be an nn.Module; got {type(value).__name__}")
        if channel is not None and not isinstance(channel, nn.Module):
            raise TypeError(f"channel must be an nn.Module or None; got {type(channel).__name__}")
        if equalizer not in EQUALIZERS:
            raise ValueError(f"equalizer must be one of {EQUALIZERS}; got {equalizer!r}")
        if channel is None:
            from aiflow_comm.channel.awgn import AWGN  # imports Sionna: only when needed

            channel = AWGN()
        self.encoder = encoder
        self.decoder = decoder
        self.channel = channel
        self.equalizer = equalizer

    def channel_uses(self, x: torch.Tensor) -> int:
        """Complex channel uses per example for the source ``x`` (batch first)."""
        return int(self.encoder.channel_uses(tuple(x.shape)))

    @property
    def ratio(self) -> float:
        """The encoder's bandwidth ratio: complex channel uses per real source value."""
        return float(self.encoder.ratio)

    def forward(self, x: torch.Tensor, snr_db: float | torch.Tensor) -> torch.Tensor:
        symbols = self.encoder(x, snr_db)
        received, state = self.channel(symbols, snr_db, return_state=True)
        estimate, _ = equalize(received, state, self.equalizer)
        return self.decoder(estimate, snr_db, output_shape=tuple(x.shape))

    def extra_repr(self) -> str:
        return f"equalizer={self.equalizer!r}"
