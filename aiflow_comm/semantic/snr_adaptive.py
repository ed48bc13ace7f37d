"""SNR-adaptive channel attention (ADJSCC's attention feature module) and stacks using it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SNRAdaptiveSequential", "SNRAttention", "snr_column"]


def snr_column(snr_db: float | torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The SNR in dB as a ``(batch, 1)`` tensor with ``like``'s dtype and device.

    ``snr_db`` is a number, a 0-d tensor or one value per example (shape ``(batch,)``);
    ``like``'s first dimension is the batch.

    >>> snr_column(10.0, torch.zeros(2, 5)).tolist()
    [[10.0], [10.0]]
    """
    batch = like.shape[0]
    if snr_db is None:
        raise ValueError(
            "snr_db is required by an SNR-adaptive model (snr_adaptive=True): pass a number or "
            "one value per example; got None"
        )
    if isinstance(snr_db, bool) or not isinstance(snr_db, (numbers.Real, torch.Tensor)):
        raise TypeError(f"snr_db must be a number or a tensor; got {type(snr_db).__name__}")
    if not isinstance(snr_db, torch.Tensor):
        if not math.isfinite(snr_db):
            raise ValueError(f"snr_db must be finite; got {snr_db}")
        return torch.full((batch, 1), float(snr_db), dtype=like.dtype, device=like.device)
    if snr_db.is_complex():
        raise TypeError(f"snr_db must be a real tensor; got {snr_db.dtype}")
    if snr_db.dim() > 1 or (snr_db.dim() == 1 and snr_db.shape[0] != batch):
        raise ValueError(
            f"snr_db must be a number, a 0-d tensor or one value per example (shape ({batch},)); "
            f"got shape {tuple(snr_db.shape)}"
        )
    if snr_db.device.type == "cpu" and not bool(torch.isfinite(snr_db).all()):
        raise ValueError(f"snr_db must be finite; got {snr_db.tolist()}")
    return snr_db.to(dtype=like.dtype, device=like.device).reshape(-1, 1).expand(batch, 1)


class SNRAttention(nn.Module):
    """Scale feature channels by factors predicted from their means and the SNR (ADJSCC's AF).

    Xu et al., "Wireless image transmission using deep source channel coding with attention
    modules" (2021): the context is each channel's mean over the spatial positions,
    concatenated with the SNR; a two-layer MLP ending in a sigmoid turns it into one factor in
    ``(0, 1)`` per channel, which multiplies the channel. The SNR enters as ``snr_db /
    snr_scale_db`` so that typical values (0 to 30 dB) are of order one.

    Args:
        channels: feature channels ``C`` (the units of an MLP layer, the maps of a conv layer).
        hidden: width of the MLP's hidden layer; default ``max(8, channels // 2)``.
        snr_scale_db: the SNR's scale in dB.

    Inputs: ``features`` real ``(batch, C, ...)`` (no trailing dimensions: each unit is its
    own mean); ``snr_db`` a number, a 0-d tensor or ``(batch,)``. Output: ``features`` scaled,
    same shape.

    >>> attention = SNRAttention(4)
    >>> attention(torch.ones(2, 4, 3, 3), torch.tensor([0.0, 20.0])).shape
    torch.Size([2, 4, 3, 3])
    """

    def __init__(
        self, channels: int, hidden: int | None = None, snr_scale_db: float = 10.0
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an int >= 1; got {channels!r}")
        hidden = max(8, channels // 2) if hidden is None else hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be an int >= 1 or None; got {hidden!r}")
        if isinstance(snr_scale_db, bool) or not isinstance(snr_scale_db, numbers.Real):
            raise TypeError(f"snr_scale_db must be a number > 0; got {type(snr_scale_db).__name__}")
        if not (math.isfinite(snr_scale_db) and snr_scale_db > 0):
            raise ValueError(f"snr_scale_db must be a finite number > 0; got {snr_scale_db}")
        self.channels = channels
        self.snr_scale_db = float(snr_scale_db)
        self.mlp = nn.Sequential(
            nn.Linear(channels + 1, hidden),
            nn.ReLU(),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, features: torch.Tensor, snr_db: float | torch.Tensor | None) -> torch.Tensor:
        if features.dim() < 2 or features.shape[1] != self.channels:
            raise ValueError(
                f"features must have shape (batch, {self.channels}, ...); "
                f"got {tuple(features.shape)}"
            )
        context = features.flatten(2).mean(dim=2) if features.dim() > 2 else features
        snr = snr_column(snr_db, features) / self.snr_scale_db
        factors = self.mlp(torch.cat([context, snr], dim=1))
        return features * factors.reshape(factors.shape + (1,) * (features.dim() - 2))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, snr_scale_db={self.snr_scale_db}"


class SNRAdaptiveSequential(nn.Module):
    """Stages run in order, each followed by an :class:`SNRAttention` when SNR-adaptive.

    Args:
        stages: the modules (each ``features -> features``), typically layer + activation.
        channels: the channels each stage outputs (one per stage) to give every stage an
            attention module, or ``None`` for a plain stack that ignores the SNR.

    Inputs: ``x`` and ``snr_db`` (a number, a 0-d tensor or ``(batch,)``; may be ``None`` when
    not adaptive). Output: the last stage's (attended) output.

    >>> stack = SNRAdaptiveSequential([nn.Linear(3, 5), nn.Linear(5, 2)], channels=[5, 2])
    >>> stack(torch.ones(4, 3), 10.0).shape
    torch.Size([4, 2])
    """

    def __init__(self, stages: Sequence[nn.Module], channels: Sequence[int] | None = None) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.attention: nn.ModuleList | None = None
        if channels is not None:
            if len(channels) != len(self.stages):
                raise ValueError(
                    f"channels must give one count per stage ({len(self.stages)}); "
                    f"got {len(channels)}"
                )
            self.attention = nn.ModuleList(SNRAttention(c) for c in channels)

    @property
    def snr_adaptive(self) -> bool:
        """Whether the stages are followed by SNR attention."""
        return self.attention is not None

    def forward(self, x: torch.Tensor, snr_db: float | torch.Tensor | None = None) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.attention is not None:
                x = self.attention[i](x, snr_db)
        return x
