"""What a channel applied to its input: gains, noise variance, and the receiver's estimate."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ChannelState"]


@dataclass(frozen=True)
class ChannelState:
    """The channel state behind an output ``y = h * x + n``.

    Attributes:
        no: noise variance per complex symbol, broadcastable to ``y``.
        h: complex gains broadcastable to ``y``; ``None`` for a channel without fading (AWGN).
        h_hat: the receiver's estimate of ``h`` (for example least-squares from pilots);
            ``None`` when the receiver knows ``h`` (perfect CSI).
        err_var: variance of the estimation error ``h - h_hat`` (zero with perfect CSI).
    """

    no: torch.Tensor
    h: torch.Tensor | None = None
    h_hat: torch.Tensor | None = None
    err_var: torch.Tensor | float = 0.0

    @property
    def receiver_h(self) -> torch.Tensor | None:
        """The gains the receiver works with: ``h_hat`` when estimated, else ``h``."""
        return self.h_hat if self.h_hat is not None else self.h
