"""Flat fading channels: Rayleigh and Rician gains per example, per block or per symbol."""

from __future__ import annotations

import math

import torch
from sionna.phy.utils import complex_normal, rand
from torch import nn

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.conventions import check_complex, precision_of, snr_db_to_no
from aiflow_comm.channel.state import ChannelState

__all__ = ["RayleighFading", "RicianFading"]

Coherence = str | int


def _check_coherence(coherence: Coherence) -> Coherence:
    if coherence in ("example", "symbol"):
        return coherence
    if isinstance(coherence, int) and not isinstance(coherence, bool) and coherence >= 1:
        return coherence
    raise ValueError(
        f"coherence must be 'example', 'symbol' or a block length >= 1 (symbols); got {coherence!r}"
    )


class RayleighFading(nn.Module):
    """Flat Rayleigh fading with AWGN: ``y = h * x + n``, ``h ~ CN(0, 1)`` (``E|h|^2 = 1``).

    The last dimension of ``x`` holds the symbols of an example (or of a stream); the first
    dimension indexes examples. ``coherence`` says how long a gain lasts:

    * ``"example"``: one gain per example, shared by all its symbols (block fading);
    * an int ``N``: a new gain every ``N`` symbols along the last dimension (the last block may
      be short);
    * ``"symbol"``: a new gain per symbol (fast fading).

    The channel only applies ``h``; equalization is the receiver's choice
    (:func:`aiflow_comm.channel.equalize`), with ``h`` from the returned state (perfect CSI).

    Args:
        coherence: see above. Default ``"example"``.
        generator: an int seed, a ``torch.Generator`` or ``None`` (Sionna's global generator).

    Inputs: ``x`` complex of shape ``(batch, ..., n)``; ``snr_db`` a number or one value per
    example. Output ``y`` like ``x``; with ``return_state=True`` also a :class:`ChannelState`
    whose ``h`` broadcasts against ``y``.

    >>> channel = RayleighFading(coherence=4, generator=0)
    >>> y, state = channel(torch.ones(2, 10, dtype=torch.complex64), 20.0, return_state=True)
    >>> y.shape, state.h.shape
    (torch.Size([2, 10]), torch.Size([2, 10]))
    """

    def __init__(
        self, coherence: Coherence = "example", *, generator: int | torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.coherence = _check_coherence(coherence)
        self.noise = AWGN(generator=generator)

    def block_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """The shape of one draw per coherence block of ``x`` (see :meth:`spread`)."""
        if x.dim() < 1:
            raise ValueError("x must have at least one dimension (the symbols)")
        if self.coherence == "example":
            return (x.shape[0],) + (1,) * (x.dim() - 1) if x.dim() > 1 else (1,)
        if self.coherence == "symbol":
            return tuple(x.shape)
        return (*x.shape[:-1], max(1, math.ceil(x.shape[-1] / self.coherence)))

    def spread(self, draws: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Draws of :meth:`block_shape`, each repeated over its block: broadcastable to ``x``."""
        if isinstance(self.coherence, int):  # index, not repeat: a long block costs nothing
            block = torch.arange(x.shape[-1], device=draws.device) // self.coherence
            return draws.index_select(-1, block)
        return draws

    def scattered_gains(self, x: torch.Tensor) -> torch.Tensor:
        """CN(0, 1) gains for ``x`` following the coherence setting, broadcastable to ``x``."""
        gains = complex_normal(
            self.block_shape(x),
            precision=precision_of(x),
            device=x.device,
            generator=self.noise.random.generator(x.device),
        )
        return self.spread(gains, x)

    def gains(self, x: torch.Tensor) -> torch.Tensor:
        """The complex gains ``h`` this channel applies to ``x``."""
        return self.scattered_gains(x)

    def forward(
        self, x: torch.Tensor, snr_db: float | torch.Tensor, *, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, ChannelState]:
        check_complex(x)
        no = snr_db_to_no(snr_db, x)
        h = self.gains(x)
        y = self.noise.noise_block(x)(h * x, no)
        return (y, ChannelState(no=no, h=h)) if return_state else y


class RicianFading(RayleighFading):
    """Flat Rician fading with AWGN: ``h = sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) g``.

    ``g ~ CN(0, 1)`` is the scattered part.

    ``E|h|^2 = 1`` for every ``K``; ``k_factor=0`` is Rayleigh fading and a large ``K`` tends to
    AWGN. ``los_phase`` is the line-of-sight phase ``phi`` in radians (``None``: drawn uniformly
    per coherence block). Everything else is as in :class:`RayleighFading`.

    >>> channel = RicianFading(k_factor=10.0, generator=0)
    >>> y = channel(torch.ones(3, 8, dtype=torch.complex128), snr_db=15.0)
    >>> y.dtype
    torch.complex128
    """

    def __init__(
        self,
        k_factor: float,
        coherence: Coherence = "example",
        *,
        los_phase: float | None = 0.0,
        generator: int | torch.Generator | None = None,
    ) -> None:
        super().__init__(coherence, generator=generator)
        if isinstance(k_factor, bool) or not isinstance(k_factor, (int, float)):
            raise TypeError(
                f"k_factor must be a number (linear, not dB); got {type(k_factor).__name__}"
            )
        if not (math.isfinite(k_factor) and k_factor >= 0):
            raise ValueError(f"k_factor must be a finite number >= 0 (linear); got {k_factor}")
        if los_phase is not None and (
            isinstance(los_phase, bool) or not isinstance(los_phase, (int, float))
        ):
            raise TypeError(f"los_phase must be a number (radians) or None; got {los_phase!r}")
        if los_phase is not None and not math.isfinite(los_phase):
            raise ValueError(f"los_phase must be finite radians or None; got {los_phase}")
        self.k_factor = float(k_factor)
        self.los_phase = los_phase

    def gains(self, x: torch.Tensor) -> torch.Tensor:
        scattered = self.scattered_gains(x)
        los_amplitude = math.sqrt(self.k_factor / (self.k_factor + 1.0))
        if self.los_phase is None:  # one phase per coherence block, as the scattered gain
            uniform = rand(  # None: Sionna's global generator, as for the scattered part
                self.block_shape(x),
                generator=self.noise.random.generator(x.device),
                device=x.device,
                dtype=scattered.real.dtype,
            )
            phase = self.spread(2 * math.pi * uniform, x)
            los = los_amplitude * torch.polar(torch.ones_like(phase), phase)
        else:
            los = los_amplitude * complex(math.cos(self.los_phase), math.sin(self.los_phase))
        return los + math.sqrt(1.0 / (self.k_factor + 1.0)) * scattered
