"""Additive white Gaussian noise at a given SNR, on Sionna's ``AWGN`` block."""

from __future__ import annotations

import torch
from sionna.phy.channel import AWGN as SionnaAWGN
from torch import nn

from aiflow_comm.channel.conventions import check_complex, precision_of, snr_db_to_no
from aiflow_comm.channel.randomness import RandomSource, seeded_block
from aiflow_comm.channel.state import ChannelState

__all__ = ["AWGN"]


class AWGN(nn.Module):
    """Complex AWGN channel: ``y = x + n``, ``n ~ CN(0, no)``, ``no = 10**(-snr_db/10)``.

    The noise variance is ``no`` per complex symbol and ``no/2`` per real dimension, so for
    unit-energy symbols ``snr_db`` is Es/N0.

    Args:
        generator: an int seed, a ``torch.Generator`` (on the input's device) or ``None`` for
            Sionna's global generator.

    Inputs: ``x`` complex64/complex128 of any shape; ``snr_db`` a number or a tensor of one
    value per example (a prefix of ``x``'s shape). Output: ``y`` shaped like ``x``, and with
    ``return_state=True`` also the :class:`ChannelState` (``h`` is ``None``).

    >>> channel = AWGN(generator=0)
    >>> x = torch.ones(4, 1000, dtype=torch.complex64)
    >>> y = channel(x, snr_db=10.0)
    >>> round(float((y - x).abs().pow(2).mean()), 1)
    0.1
    """

    def __init__(self, *, generator: int | torch.Generator | None = None) -> None:
        super().__init__()
        self.random = RandomSource(generator)
        self._blocks: dict[tuple[torch.device, str], nn.Module] = {}

    def noise_block(self, like: torch.Tensor) -> nn.Module:
        """Sionna's ``AWGN`` block for ``like``'s device and precision, on our generator."""
        key = (like.device, precision_of(like))
        if key not in self._blocks:
            self._blocks[key] = seeded_block(
                SionnaAWGN,
                self.random.generator(like.device),
                precision=key[1],
                device=str(like.device),
            )
        return self._blocks[key]

    def forward(
        self, x: torch.Tensor, snr_db: float | torch.Tensor, *, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, ChannelState]:
        check_complex(x)
        no = snr_db_to_no(snr_db, x)
        y = self.noise_block(x)(x, no)
        return (y, ChannelState(no=no)) if return_state else y
