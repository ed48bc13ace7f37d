"""Vector JSCC: an MLP encoder and decoder pair for real vectors over a channel."""

from __future__ import annotations

import itertools
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

__all__ = ["VectorDecoder", "VectorEncoder", "VectorJSCC"]


class _VectorShape(nn.Module):
    """Sizes shared by the vector encoder and decoder: ``dim`` real values, ``k`` symbols."""

    def __init__(self, dim: int, ratio: float, hidden: int, snr_adaptive: bool) -> None:
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        self.requested_ratio = check_ratio(ratio)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an int >= 0 (0: a linear model); got {hidden!r}")
        if hidden == 0 and snr_adaptive:
            raise ValueError(
                "snr_adaptive=True needs hidden >= 1: SNR attention follows the hidden layers, "
                "and a linear model (hidden=0) has none"
            )
        self.hidden = hidden
        self.num_symbols = max(1, round_half_up(decimal_times(self.requested_ratio, dim)))

    @property
    def ratio(self) -> float:
        """The actual bandwidth ratio ``num_symbols / dim`` (complex uses per real value)."""
        return self.num_symbols / self.dim

    def channel_uses(self, shape: Sequence[int]) -> int:
        """Complex channel uses per example for a source of shape ``(batch, dim)``."""
        shape = check_shape(shape)
        if len(shape) != 2 or shape[1] != self.dim:
            raise ValueError(f"shape must be (batch, {self.dim}); got {shape}")
        return self.num_symbols

    def stages(self, width_in: int, snr_adaptive: bool) -> SNRAdaptiveSequential:
        """The hidden layers after an input of ``width_in`` values (none when ``hidden=0``)."""
        widths = [width_in, self.hidden, self.hidden] if self.hidden else [width_in]
        layers = [
            nn.Sequential(nn.Linear(a, b), nn.PReLU(b)) for a, b in itertools.pairwise(widths)
        ]
        return SNRAdaptiveSequential(layers, widths[1:] if snr_adaptive else None)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_symbols={self.num_symbols}, ratio={self.ratio:.4g}"


class VectorEncoder(_VectorShape):
    """MLP encoder: real vectors ``(batch, dim)`` to power-normalized complex symbols.

    ``k = max(1, round(ratio * dim))`` complex channel uses (halves rounded up, ``ratio`` read
    as the decimal it prints as: 0.58 x 25 gives 15); :attr:`ratio` is the achieved
    ``k / dim``. Two hidden layers (``Linear`` + ``PReLU``), each followed by an
    :class:`~aiflow_comm.semantic.SNRAttention` when ``snr_adaptive``; a linear layer gives
    ``2k`` values, paired into ``k`` complex symbols and scaled to unit average energy per
    symbol, per example (:func:`~aiflow_comm.channel.normalize_power`). ``hidden=0`` leaves
    out the hidden layers: one linear (affine) layer, then the power normalization.

    Args:
        dim: real source values per example.
        ratio: requested bandwidth ratio, complex channel uses per real value (> 0).
        hidden: width of the hidden layers; ``0`` for none (a linear encoder, which cannot be
            ``snr_adaptive``).
        snr_adaptive: condition the features on the SNR; then ``snr_db`` is required.

    Inputs: ``x`` real ``(batch, dim)``; ``snr_db`` a number, a 0-d tensor or ``(batch,)``
    (ignored unless ``snr_adaptive``). Output: complex ``(batch, k)`` (complex64 for a float32
    model).

    >>> encoder = VectorEncoder(10, ratio=0.5, hidden=32)
    >>> symbols = encoder(torch.randn(3, 10))
    >>> symbols.shape, symbols.dtype, [round(e, 4) for e in symbols.abs().pow(2).mean(1).tolist()]
    (torch.Size([3, 5]), torch.complex64, [1.0, 1.0, 1.0])
    """

    def __init__(
        self, dim: int, ratio: float, *, hidden: int = 256, snr_adaptive: bool = False
    ) -> None:
        super().__init__(dim, ratio, hidden, snr_adaptive)
        self.body = self.stages(self.dim, snr_adaptive)
        self.head = nn.Linear(self.hidden or self.dim, 2 * self.num_symbols)

    @property
    def snr_adaptive(self) -> bool:
        """Whether the features are conditioned on the SNR."""
        return self.body.snr_adaptive

    def forward(self, x: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        check_real(x, "x", rank=2)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (batch, {self.dim}); got {tuple(x.shape)}")
        return halves_to_symbols(self.head(self.body(in_model_dtype(x, self), snr_db)))


class VectorDecoder(_VectorShape):
    """MLP decoder: equalized complex symbols ``(batch, k)`` back to real ``(batch, dim)``.

    Mirrors :class:`VectorEncoder` (same ``dim``, ``ratio`` give the same ``k``): the real and
    imaginary parts, two hidden layers (``Linear`` + ``PReLU``, each followed by SNR attention
    when ``snr_adaptive``; none when ``hidden=0``: a linear decoder) and a linear output layer
    (unbounded: any real source).

    Inputs: ``symbols`` complex ``(batch, k)``; ``snr_db`` as for the encoder;
    ``output_shape`` optional, checked to be ``(batch, dim)``. Output: real ``(batch, dim)``.

    >>> decoder = VectorDecoder(10, ratio=0.5, hidden=32)
    >>> decoder(torch.randn(3, 5, dtype=torch.complex64)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self, dim: int, ratio: float, *, hidden: int = 256, snr_adaptive: bool = False
    ) -> None:
        super().__init__(dim, ratio, hidden, snr_adaptive)
        self.body = self.stages(2 * self.num_symbols, snr_adaptive)
        self.head = nn.Linear(self.hidden or 2 * self.num_symbols, self.dim)

    @property
    def snr_adaptive(self) -> bool:
        """Whether the features are conditioned on the SNR."""
        return self.body.snr_adaptive

    def forward(
        self,
        symbols: torch.Tensor,
        snr_db: float | torch.Tensor | None = None,
        *,
        output_shape: Sequence[int] | None = None,
    ) -> torch.Tensor:
        symbols = in_model_dtype(check_symbols(symbols, f"= {self.num_symbols}"), self)
        if symbols.shape[1] != self.num_symbols:
            raise ValueError(
                f"symbols must have shape (batch, {self.num_symbols}); got {tuple(symbols.shape)}"
            )
        if output_shape is not None and check_shape(output_shape, "output_shape") != (
            symbols.shape[0],
            self.dim,
        ):
            raise ValueError(
                f"output_shape must be ({symbols.shape[0]}, {self.dim}); got {tuple(output_shape)}"
            )
        values = symbols_to_halves(symbols, (self.num_symbols,))
        return self.head(self.body(values, snr_db))


class VectorJSCC(JSCC):
    """A :class:`VectorEncoder` and :class:`VectorDecoder` pair around a channel.

    Args:
        dim, ratio, hidden, snr_adaptive: as for :class:`VectorEncoder`.
        channel: default a fresh :class:`~aiflow_comm.channel.AWGN`.
        equalizer: ``"mmse"`` (default), ``"zf"`` or ``"none"``.

    >>> from aiflow_comm.channel import AWGN
    >>> model = VectorJSCC(16, ratio=1, hidden=32, snr_adaptive=True, channel=AWGN(generator=0))
    >>> model(torch.randn(4, 16), snr_db=torch.tensor([0.0, 5.0, 10.0, 20.0])).shape
    torch.Size([4, 16])
    """

    def __init__(
        self,
        dim: int,
        ratio: float,
        channel: nn.Module | None = None,
        *,
        snr_adaptive: bool = False,
        hidden: int = 256,
        equalizer: str = "mmse",
    ) -> None:
        super().__init__(
            VectorEncoder(dim, ratio, hidden=hidden, snr_adaptive=snr_adaptive),
            VectorDecoder(dim, ratio, hidden=hidden, snr_adaptive=snr_adaptive),
            channel,
            equalizer=equalizer,
        )
