"""Single-antenna OFDM links over 3GPP TR 38.901 TDL and CDL channels, on Sionna's OFDM blocks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sionna.phy.channel import OFDMChannel as SionnaOFDMChannel
from sionna.phy.channel.tr38901 import CDL, TDL, ChannelCoefficientsGenerator, PanelArray
from sionna.phy.mapping import BinarySource, Mapper
from sionna.phy.mimo import StreamManagement
from sionna.phy.ofdm import (
    LSChannelEstimator,
    ResourceGrid,
    ResourceGridDemapper,
    ResourceGridMapper,
)
from torch import nn

from aiflow_comm.channel.awgn import AWGN
from aiflow_comm.channel.conventions import check_complex, precision_of, snr_db_to_no
from aiflow_comm.channel.randomness import seeded_block
from aiflow_comm.channel.state import ChannelState

__all__ = ["CSI_MODES", "INTERPOLATIONS", "OFDM_MODELS", "OFDM_PROFILES", "OFDMChannel"]

OFDM_MODELS = ("tdl", "cdl")
OFDM_PROFILES = ("A", "B", "C", "D", "E")
CSI_MODES = ("perfect", "ls")
INTERPOLATIONS = ("nn", "lin", "lin_time_avg")
DIRECTIONS = ("uplink", "downlink")

# The pilot sequence is fixed (known to the receiver) and the same for every instance, so the
# same seed gives the same output; Sionna's "kronecker" pattern would draw it from its global RNG.
_PILOT_SEED = 0


@dataclass(frozen=True)
class _Link:
    """Sionna's blocks for one device and precision."""

    grid: ResourceGrid
    mapper: ResourceGridMapper
    demapper: ResourceGridDemapper
    channel: SionnaOFDMChannel
    estimator: LSChannelEstimator | None


class OFDMChannel(nn.Module):
    """SISO OFDM link over a TR 38.901 TDL or CDL channel, with AWGN and optional LS estimation.

    A *frame* is one Sionna ``ResourceGrid`` (one slot): ``num_ofdm_symbols`` OFDM symbols of
    ``fft_size`` subcarriers, no guard carriers, no DC null. The OFDM symbols listed in
    ``pilot_ofdm_symbol_indices`` carry pilots on every subcarrier (Sionna's ``"kronecker"``
    pattern, a fixed pseudo-random QPSK sequence of unit energy, the same for every instance);
    the other resource elements (REs) carry data, ``data_symbols_per_frame =
    (num_ofdm_symbols - len(pilot_ofdm_symbol_indices)) * fft_size`` of them, in time-major
    order (OFDM symbol by OFDM symbol, subcarriers in increasing order; see
    :attr:`data_resource_elements`).

    The ``n`` symbols of an example fill ``ceil(n / data_symbols_per_frame)`` frames; the last
    one is padded with zeros, and the padding is dropped from the output. **Every frame is an
    independent channel realization** (of every example, too): frames are not consecutive in
    time, so the channel fades from block to block. Within a frame the channel is
    frequency-selective (the model's power delay profile) and, with ``speed > 0``, varies from
    one OFDM symbol to the next (Doppler); it is constant over one OFDM symbol (no
    inter-carrier or inter-symbol interference: Sionna's frequency-domain ``OFDMChannel``).

    Per RE, ``y = h * x + n`` with ``n ~ CN(0, no)`` and ``no = 10**(-snr_db/10)``: ``snr_db``
    is Es/N0 per RE for unit-energy symbols. With ``normalize_channel=True`` (default, Sionna's
    option) each frame's channel is scaled so that the mean of ``|h|^2`` over its REs is exactly
    1, which removes the slow fading of the frame as a whole (only the variation across
    subcarriers and OFDM symbols remains); with ``False`` the model's own power is kept
    (``E|h|^2 = 1`` in expectation: the profiles are normalized and both ends use single
    omnidirectional antennas).

    The channel only applies ``h``; equalization is the receiver's choice
    (:func:`aiflow_comm.channel.equalize`, per RE, as for the flat channels). With
    ``return_state=True`` the :class:`ChannelState` holds the true frequency response ``h`` at
    each data RE; with ``csi="ls"`` also ``h_hat``, Sionna's least-squares estimate from the
    pilots interpolated to the data REs (``interpolation``: ``"nn"`` nearest pilot, ``"lin"``
    linear, ``"lin_time_avg"`` linear in frequency and averaged over pilot symbols), and
    ``err_var``, the estimator's error variance (``no / |p|^2`` at the pilots, interpolated).

    Args:
        model: ``"tdl"`` (tapped delay line) or ``"cdl"`` (clustered delay line).
        profile: ``"A"`` to ``"E"`` (``"D"`` and ``"E"`` have a line-of-sight path).
        delay_spread: RMS delay spread in seconds, which scales the profile's delays.
        carrier_frequency: in Hz.
        speed: terminal speed in m/s (Doppler); for CDL its direction is drawn per realization.
        fft_size: subcarriers per OFDM symbol.
        subcarrier_spacing: in Hz.
        num_ofdm_symbols: OFDM symbols per frame.
        pilot_ofdm_symbol_indices: OFDM symbols that carry pilots; may be empty only with
            ``csi="perfect"``.
        csi: ``"perfect"`` (the receiver knows ``h``) or ``"ls"`` (LS estimate from pilots).
        interpolation: how the LS estimate reaches the data REs (``csi="ls"`` only).
        cyclic_prefix_length: in samples; ``None`` uses NR's normal-CP ratio,
            ``round(fft_size * 144 / 2048)``. It sets the OFDM symbol duration (the time between
            Doppler samples); the channel has no inter-symbol interference either way.
        direction: ``"uplink"`` or ``"downlink"`` (CDL only: which end transmits).
        normalize_channel: see above.
        generator: an int seed, a ``torch.Generator`` (on the input's device) or ``None`` for
            the global generators. Channel realizations and noise both draw from it.

    Inputs: ``x`` complex64/complex128 of shape ``(batch, n)``, ``n >= 1`` data symbols per
    example; ``snr_db`` a number, a 0-d tensor or one value per example (shape ``(batch,)``).
    Output: ``y`` of shape ``(batch, n)``, not equalized; with ``return_state=True`` also the
    :class:`ChannelState`: ``no`` broadcastable to ``y``, ``h`` of shape ``(batch, n)``,
    ``h_hat`` and ``err_var`` of shape ``(batch, n)`` with ``csi="ls"``, else ``None`` and ``0``.
    Differentiable with respect to ``x``.

    >>> channel = OFDMChannel("tdl", "A", csi="ls", generator=0)
    >>> channel.data_symbols_per_frame
    864
    >>> x = torch.ones(2, 1000, dtype=torch.complex64)
    >>> y, state = channel(x, snr_db=20.0, return_state=True)
    >>> y.shape, state.h.shape, state.h_hat.shape
    (torch.Size([2, 1000]), torch.Size([2, 1000]), torch.Size([2, 1000]))
    """

    def __init__(
        self,
        model: str = "tdl",
        profile: str = "A",
        *,
        delay_spread: float = 100e-9,
        carrier_frequency: float = 3.5e9,
        speed: float = 0.0,
        fft_size: int = 72,
        subcarrier_spacing: float = 30e3,
        num_ofdm_symbols: int = 14,
        pilot_ofdm_symbol_indices: Sequence[int] = (2, 11),
        csi: str = "perfect",
        interpolation: str = "nn",
        cyclic_prefix_length: int | None = None,
        direction: str = "uplink",
        normalize_channel: bool = True,
        generator: int | torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_choice("model", model, OFDM_MODELS)
        _check_choice("profile", profile, OFDM_PROFILES)
        _check_choice("csi", csi, CSI_MODES)
        _check_choice("interpolation", interpolation, INTERPOLATIONS)
        _check_choice("direction", direction, DIRECTIONS)
        self.delay_spread = _positive("delay_spread", delay_spread, "seconds")
        self.carrier_frequency = _positive("carrier_frequency", carrier_frequency, "Hz")
        self.subcarrier_spacing = _positive("subcarrier_spacing", subcarrier_spacing, "Hz")
        if isinstance(speed, bool) or not isinstance(speed, (int, float)):
            raise TypeError(f"speed must be a number (m/s); got {type(speed).__name__}")
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be a finite number >= 0 (m/s); got {speed}")
        self.fft_size = _positive_int("fft_size", fft_size)
        self.num_ofdm_symbols = _positive_int("num_ofdm_symbols", num_ofdm_symbols)
        if cyclic_prefix_length is None:
            cyclic_prefix_length = round(fft_size * 144 / 2048)
        if (
            isinstance(cyclic_prefix_length, bool)
            or not isinstance(cyclic_prefix_length, int)
            or not 0 <= cyclic_prefix_length <= fft_size
        ):
            raise ValueError(
                f"cyclic_prefix_length must be an int in [0, fft_size={fft_size}] or None; "
                f"got {cyclic_prefix_length!r}"
            )
        if not isinstance(normalize_channel, bool):
            raise TypeError(
                f"normalize_channel must be a bool; got {type(normalize_channel).__name__}"
            )
        self.model = model
        self.profile = profile
        self.speed = float(speed)
        self.pilot_ofdm_symbol_indices = _check_pilots(
            pilot_ofdm_symbol_indices, num_ofdm_symbols, csi
        )
        self.csi = csi
        self.interpolation = interpolation
        self.cyclic_prefix_length = cyclic_prefix_length
        self.direction = direction
        self.normalize_channel = normalize_channel
        self.noise = AWGN(generator=generator)
        self._links: dict[tuple[torch.device, str], _Link] = {}

    @property
    def data_symbols_per_frame(self) -> int:
        """Data REs in one frame (resource grid): the symbols one channel realization carries."""
        data_ofdm_symbols = self.num_ofdm_symbols - len(self.pilot_ofdm_symbol_indices)
        return data_ofdm_symbols * self.fft_size

    @property
    def data_resource_elements(self) -> torch.Tensor:
        """``(OFDM symbol, subcarrier)`` of each data RE of a frame, in the order symbols fill it.

        An int64 tensor of shape ``(data_symbols_per_frame, 2)``: data symbol ``i`` of an
        example sits in frame ``i // data_symbols_per_frame`` at RE
        ``data_resource_elements[i % data_symbols_per_frame]``.
        """
        grid = self.link_blocks(torch.zeros((), dtype=torch.complex64)).grid
        data = grid.build_type_grid()[0, 0] == 0
        return torch.nonzero(data.cpu(), as_tuple=False)

    def link_blocks(self, like: torch.Tensor) -> _Link:
        """Sionna's blocks (resource grid, mapper, channel, estimator) for ``like``'s device
        and precision, drawing from this channel's generator; built once and cached."""
        key = (like.device, precision_of(like))
        if key not in self._links:
            # Built under inference_mode, the blocks' tensors would be inference tensors, which
            # no later training step could save for backward.
            with torch.inference_mode(False):
                self._links[key] = self._build_link(*key)
        return self._links[key]

    def _build_link(self, device: torch.device, precision: str) -> _Link:
        dev = str(device)
        generator = self.noise.random.generator(device)
        pilots = list(self.pilot_ofdm_symbol_indices)
        grid = ResourceGrid(
            num_ofdm_symbols=self.num_ofdm_symbols,
            fft_size=self.fft_size,
            subcarrier_spacing=self.subcarrier_spacing,
            cyclic_prefix_length=self.cyclic_prefix_length,
            pilot_pattern="kronecker" if pilots else None,
            pilot_ofdm_symbol_indices=pilots or None,
            precision=precision,
            device=dev,
        )
        if pilots:
            grid.pilot_pattern.pilots = _qpsk_pilots(grid.pilot_pattern.num_pilot_symbols)
        if self.model == "tdl":
            channel_model = seeded_block(
                TDL,
                generator,
                self.profile,
                delay_spread=self.delay_spread,
                carrier_frequency=self.carrier_frequency,
                min_speed=self.speed,
                precision=precision,
                device=dev,
            )
        else:
            channel_model = self._cdl(generator, precision, dev)
        channel = SionnaOFDMChannel(
            channel_model,
            grid,
            normalize_channel=self.normalize_channel,
            return_channel=True,
            precision=precision,
            device=dev,
        )
        estimator = None
        if self.csi == "ls":
            estimator = LSChannelEstimator(
                grid, interpolation_type=self.interpolation, precision=precision, device=dev
            )
        return _Link(
            grid=grid,
            mapper=ResourceGridMapper(grid, precision=precision, device=dev),
            demapper=ResourceGridDemapper(
                grid, StreamManagement(np.ones([1, 1]), 1), precision=precision, device=dev
            ),
            channel=channel,
            estimator=estimator,
        )

    def _cdl(self, generator: torch.Generator | None, precision: str, device: str) -> CDL:
        def antenna() -> PanelArray:
            return PanelArray(
                num_rows_per_panel=1,
                num_cols_per_panel=1,
                polarization="single",
                polarization_type="V",
                antenna_pattern="omni",
                carrier_frequency=self.carrier_frequency,
                precision=precision,
                device=device,
            )

        ut_array, bs_array = antenna(), antenna()
        cdl = seeded_block(
            CDL,
            generator,
            self.profile,
            self.delay_spread,
            self.carrier_frequency,
            ut_array=ut_array,
            bs_array=bs_array,
            direction=self.direction,
            min_speed=self.speed,
            max_speed=self.speed,
            precision=precision,
            device=device,
        )
        # CDL draws its random phases in an inner ChannelCoefficientsGenerator, built on
        # Sionna's global RNG: rebuild it, with the same arguments, on our generator.
        uplink = self.direction == "uplink"
        tx_array, rx_array = (ut_array, bs_array) if uplink else (bs_array, ut_array)
        cdl._cir_gen = seeded_block(
            ChannelCoefficientsGenerator,
            generator,
            carrier_frequency=self.carrier_frequency,
            tx_array=tx_array,
            rx_array=rx_array,
            subclustering=False,
            precision=precision,
            device=device,
        )
        return cdl

    def forward(
        self, x: torch.Tensor, snr_db: float | torch.Tensor, *, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, ChannelState]:
        check_complex(x)
        if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(
                "x must have shape (batch, n) with batch >= 1 and n >= 1 data symbols; "
                f"got shape {tuple(x.shape)}"
            )
        if isinstance(snr_db, torch.Tensor) and snr_db.dim() > 1:
            raise ValueError(
                f"snr_db must be a number, a 0-d tensor or one value per example (shape "
                f"({x.shape[0]},)); got shape {tuple(snr_db.shape)}"
            )
        no = snr_db_to_no(snr_db, x)
        batch, n = x.shape
        per_frame = self.data_symbols_per_frame
        frames = math.ceil(n / per_frame)
        link = self.link_blocks(x)

        padded = torch.cat([x, x.new_zeros(batch, frames * per_frame - n)], dim=1)
        grid = link.mapper(padded.reshape(batch * frames, 1, 1, per_frame))
        received, h_freq = link.channel(grid)
        no_frames = no.reshape(()) if no.numel() == 1 else no.reshape(batch)
        if no_frames.dim() == 1:
            no_frames = no_frames.repeat_interleave(frames)
        received = self.noise.noise_block(x)(received, no_frames)

        def data_res(grid_values: torch.Tensor) -> torch.Tensor:
            # [batch * frames, 1, 1, symbols, subcarriers] -> (batch, n)
            return link.demapper(grid_values).reshape(batch, frames * per_frame)[:, :n]

        y = data_res(received)
        if not return_state:
            return y
        h = data_res(h_freq[:, :, :, 0, 0])
        if link.estimator is None:
            return y, ChannelState(no=no, h=h)
        h_hat, err_var = link.estimator(received, no_frames)
        err_var = err_var.expand(h_hat.shape)
        return y, ChannelState(
            no=no,
            h=h,
            h_hat=data_res(h_hat[:, :, :, 0, 0]),
            err_var=data_res(err_var[:, :, :, 0, 0]),
        )

    def extra_repr(self) -> str:
        return (
            f"model={self.model!r}, profile={self.profile!r}, "
            f"delay_spread={self.delay_spread}, speed={self.speed}, fft_size={self.fft_size}, "
            f"num_ofdm_symbols={self.num_ofdm_symbols}, "
            f"pilot_ofdm_symbol_indices={self.pilot_ofdm_symbol_indices}, csi={self.csi!r}"
        )


def _qpsk_pilots(num_pilots: int) -> torch.Tensor:
    """A fixed QPSK sequence of shape ``(1, 1, num_pilots)``, from Sionna's source and mapper."""
    source = seeded_block(
        BinarySource,
        torch.Generator().manual_seed(_PILOT_SEED),
        precision="double",
        device="cpu",
    )
    mapper = Mapper("qam", 2, precision="double", device="cpu")
    return mapper(source([1, 1, 2 * num_pilots]))


def _check_choice(name: str, value: object, accepted: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"{name} must be one of {accepted}; got {value!r}")


def _positive(name: str, value: object, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number ({unit}); got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0 ({unit}); got {value}")
    return float(value)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return value


def _check_pilots(indices: Sequence[int], num_ofdm_symbols: int, csi: str) -> tuple[int, ...]:
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence):
        raise TypeError(
            f"pilot_ofdm_symbol_indices must be a sequence of ints; got {type(indices).__name__}"
        )
    indices = tuple(indices)
    accepted = f"distinct ints in [0, num_ofdm_symbols={num_ofdm_symbols})"
    if any(isinstance(i, bool) or not isinstance(i, int) for i in indices):
        raise ValueError(f"pilot_ofdm_symbol_indices must be {accepted}; got {indices}")
    if any(not 0 <= i < num_ofdm_symbols for i in indices) or len(set(indices)) != len(indices):
        raise ValueError(f"pilot_ofdm_symbol_indices must be {accepted}; got {indices}")
    if len(indices) >= num_ofdm_symbols:
        raise ValueError(
            f"pilot_ofdm_symbol_indices {indices} leave no OFDM symbol for data "
            f"(num_ofdm_symbols={num_ofdm_symbols})"
        )
    if not indices and csi == "ls":
        raise ValueError("csi='ls' needs pilots: pilot_ofdm_symbol_indices must not be empty")
    return indices
