"""Image JSCC: a convolutional encoder and decoder pair (deep JSCC) for images over a channel."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from aiflow_comm.semantic._common import (
    check_positive_int,
    check_ratio,
    check_real,
    check_shape,
    check_symbols,
    decimal_times,
    halves_to_symbols,
    in_model_dtype,
    round_half_up,
    symbols_to_halves,
)
from aiflow_comm.semantic.jscc import JSCC
from aiflow_comm.semantic.snr_adaptive import SNRAdaptiveSequential

__all__ = ["DOWNSAMPLING", "ImageDecoder", "ImageEncoder", "ImageJSCC", "latent_channels"]

DOWNSAMPLING = 4
"""The encoder's spatial downsampling factor (two stride-2 convolutions): H and W divide by it."""

_KERNEL = 5


def latent_channels(channels: int, ratio: float) -> int:
    """Latent maps for ``channels`` image channels at the nearest achievable bandwidth ratio.

    The encoder outputs ``L`` maps of ``H/4 x W/4``, paired into ``L/2 * H*W/16`` complex
    symbols for ``C*H*W`` real values: ratio ``L / (32 C)``, the same for every image size.
    ``L = 2 * max(1, round(16 * C * ratio))`` (even, so the pairing is exact; halves round up).

    >>> latent_channels(3, 1 / 6), latent_channels(3, 1 / 12), latent_channels(1, 0.001)
    (16, 8, 2)
    """
    check_positive_int("channels", channels)
    return 2 * max(1, round_half_up(decimal_times(check_ratio(ratio), 16 * channels)))


class _ImageShape(nn.Module):
    """Sizes shared by the image encoder and decoder."""

    def __init__(self, channels: int, ratio: float, hidden: int) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.requested_ratio = check_ratio(ratio)
        self.hidden = check_positive_int("hidden", hidden)
        self.latent_channels = latent_channels(channels, ratio)

    @property
    def ratio(self) -> float:
        """The actual bandwidth ratio ``latent_channels / (32 * channels)``, any image size."""
        return self.latent_channels / (2 * DOWNSAMPLING**2 * self.channels)

    def channel_uses(self, shape: Sequence[int]) -> int:
        """Complex channel uses per example for images of shape ``(batch, C, H, W)``."""
        _, _, height, width = self.check_image_shape(shape, "shape")
        return self.latent_channels // 2 * (height // DOWNSAMPLING) * (width // DOWNSAMPLING)

    def check_image_shape(self, shape: Sequence[int], name: str) -> tuple[int, ...]:
        shape = check_shape(shape, name)
        if len(shape) != 4 or shape[1] != self.channels:
            raise ValueError(
                f"{name} must be (batch, {self.channels}, H, W) (channels={self.channels}); "
                f"got {shape}"
            )
        if any(s < DOWNSAMPLING or s % DOWNSAMPLING for s in shape[2:]):
            raise ValueError(
                f"{name}: H and W must be positive multiples of {DOWNSAMPLING} (the encoder "
                f"downsamples by {DOWNSAMPLING}); got H={shape[2]}, W={shape[3]}"
            )
        return shape

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, latent_channels={self.latent_channels}, "
            f"ratio={self.ratio:.4g}"
        )


def _stack(layers: list[nn.Module], hidden: int, snr_adaptive: bool) -> SNRAdaptiveSequential:
    stages = [nn.Sequential(layer, nn.PReLU(hidden)) for layer in layers]
    return SNRAdaptiveSequential(stages, [hidden] * len(stages) if snr_adaptive else None)


class ImageEncoder(_ImageShape):
    """Convolutional encoder (deep JSCC, Bourtsoulatze et al. 2019): images to complex symbols.

    Four 5x5 convolutions, the first two with stride 2, PReLU after the first three (each
    followed by an :class:`~aiflow_comm.semantic.SNRAttention` when ``snr_adaptive``, as in
    ADJSCC), the last giving :func:`latent_channels` maps of ``H/4 x W/4``. The first half of
    the maps are the real parts, the second half the imaginary parts of ``k = latent_channels/2
    * H*W/16`` complex symbols, scaled to unit average energy per symbol, per example.
    :attr:`ratio` is the achieved ``k / (C*H*W)``, the requested ratio rounded to a multiple
    of ``1 / (16 C)``.

    Args:
        channels: image channels ``C``.
        ratio: requested bandwidth ratio, complex channel uses per real value (> 0).
        hidden: filters of the hidden convolutions.
        snr_adaptive: condition the features on the SNR; then ``snr_db`` is required.

    Inputs: ``x`` real ``(batch, C, H, W)``, ``H`` and ``W`` multiples of 4; ``snr_db`` a
    number, a 0-d tensor or ``(batch,)`` (ignored unless ``snr_adaptive``). Output: complex
    ``(batch, k)``.

    >>> encoder = ImageEncoder(3, ratio=1 / 6, hidden=8)
    >>> x = torch.rand(2, 3, 8, 8)
    >>> encoder(x).shape, encoder.channel_uses(x.shape), encoder.ratio
    (torch.Size([2, 32]), 32, 0.16666666666666666)
    """

    def __init__(
        self,
        channels: int = 3,
        ratio: float = 1 / 6,
        *,
        hidden: int = 64,
        snr_adaptive: bool = False,
    ) -> None:
        super().__init__(channels, ratio, hidden)
        pad = _KERNEL // 2
        self.body = _stack(
            [
                nn.Conv2d(self.channels, hidden, _KERNEL, stride=2, padding=pad),
                nn.Conv2d(hidden, hidden, _KERNEL, stride=2, padding=pad),
                nn.Conv2d(hidden, hidden, _KERNEL, padding=pad),
            ],
            hidden,
            snr_adaptive,
        )
        self.head = nn.Conv2d(hidden, self.latent_channels, _KERNEL, padding=pad)

    @property
    def snr_adaptive(self) -> bool:
        """Whether the features are conditioned on the SNR."""
        return self.body.snr_adaptive

    def forward(self, x: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        check_real(x, "x", rank=4)
        self.check_image_shape(tuple(x.shape), "x.shape")
        return halves_to_symbols(self.head(self.body(in_model_dtype(x, self), snr_db)))


class ImageDecoder(_ImageShape):
    """Convolutional decoder mirroring :class:`ImageEncoder`: complex symbols to images.

    Four 5x5 transposed convolutions, the last two with stride 2, PReLU after the first three
    (each followed by SNR attention when ``snr_adaptive``), and a sigmoid: pixels in
    ``[0, 1]``.

    Inputs: ``symbols`` complex ``(batch, k)`` (equalized); ``snr_db`` as for the encoder;
    ``output_shape`` the images' shape ``(batch, C, H, W)``, which gives ``H`` and ``W`` (when
    ``None`` the image is taken as square, ``H = W``). Output: real ``(batch, C, H, W)``.

    >>> decoder = ImageDecoder(3, ratio=1 / 6, hidden=8)
    >>> decoder(torch.randn(2, 32, dtype=torch.complex64), output_shape=(2, 3, 8, 8)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        channels: int = 3,
        ratio: float = 1 / 6,
        *,
        hidden: int = 64,
        snr_adaptive: bool = False,
    ) -> None:
        super().__init__(channels, ratio, hidden)
        pad = _KERNEL // 2
        self.body = _stack(
            [
                nn.ConvTranspose2d(self.latent_channels, hidden, _KERNEL, padding=pad),
                nn.ConvTranspose2d(hidden, hidden, _KERNEL, padding=pad),
                nn.ConvTranspose2d(
                    hidden, hidden, _KERNEL, stride=2, padding=pad, output_padding=1
                ),
            ],
            hidden,
            snr_adaptive,
        )
        self.head = nn.Sequential(
            nn.ConvTranspose2d(
                hidden, self.channels, _KERNEL, stride=2, padding=pad, output_padding=1
            ),
            nn.Sigmoid(),
        )

    @property
    def snr_adaptive(self) -> bool:
        """Whether the features are conditioned on the SNR."""
        return self.body.snr_adaptive

    def latent_size(
        self, symbols: torch.Tensor, output_shape: Sequence[int] | None
    ) -> tuple[int, int]:
        """``(H/4, W/4)`` of the latent maps that ``symbols`` carry."""
        batch, k = symbols.shape
        if output_shape is not None:
            shape = self.check_image_shape(output_shape, "output_shape")
            if shape[0] != batch or self.channel_uses(shape) != k:
                raise ValueError(
                    f"symbols of shape {tuple(symbols.shape)} do not match output_shape "
                    f"{shape}: expected ({shape[0]}, {self.channel_uses(shape)})"
                )
            return shape[2] // DOWNSAMPLING, shape[3] // DOWNSAMPLING
        half = self.latent_channels // 2
        side = math.isqrt(k // half)
        if k % half or side * side * half != k:
            raise ValueError(
                f"symbols of shape {tuple(symbols.shape)} are not a square image's "
                f"{half} * (H/4)^2 symbols: pass output_shape=(batch, C, H, W)"
            )
        return side, side

    def forward(
        self,
        symbols: torch.Tensor,
        snr_db: float | torch.Tensor | None = None,
        *,
        output_shape: Sequence[int] | None = None,
    ) -> torch.Tensor:
        symbols = check_symbols(symbols, f"= {self.latent_channels // 2} * H/4 * W/4")
        symbols = in_model_dtype(symbols, self)
        height, width = self.latent_size(symbols, output_shape)
        maps = symbols_to_halves(symbols, (self.latent_channels // 2, height, width))
        return self.head(self.body(maps, snr_db))


class ImageJSCC(JSCC):
    """An :class:`ImageEncoder` and :class:`ImageDecoder` pair around a channel.

    Args:
        channels, ratio, hidden, snr_adaptive: as for :class:`ImageEncoder`.
        channel: default a fresh :class:`~aiflow_comm.channel.AWGN`.
        equalizer: ``"mmse"`` (default), ``"zf"`` or ``"none"``.

    >>> from aiflow_comm.channel import AWGN
    >>> model = ImageJSCC(3, ratio=1 / 12, hidden=8, channel=AWGN(generator=0))
    >>> x = torch.rand(2, 3, 8, 12)
    >>> model(x, snr_db=10.0).shape, model.channel_uses(x), model.ratio
    (torch.Size([2, 3, 8, 12]), 24, 0.08333333333333333)
    """

    def __init__(
        self,
        channels: int = 3,
        ratio: float = 1 / 6,
        channel: nn.Module | None = None,
        *,
        snr_adaptive: bool = False,
        hidden: int = 64,
        equalizer: str = "mmse",
    ) -> None:
        super().__init__(
            ImageEncoder(channels, ratio, hidden=hidden, snr_adaptive=snr_adaptive),
            ImageDecoder(channels, ratio, hidden=hidden, snr_adaptive=snr_adaptive),
            channel,
            equalizer=equalizer,
        )
