"""Rate tables of a link: modulation-and-coding schemes (5G NR CQI) and measured BLER curves."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NR_CQI_TABLE", "BlerCurve", "McsTable"]


def _floats(name: str, values: Sequence[float]) -> tuple[float, ...]:
    if isinstance(values, str | bytes):  # iterated, "01" would read as (0.0, 1.0)
        raise TypeError(f"{name} must be a sequence of numbers; got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers; got {values!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must hold at least one finite number; got {values!r}")
    return out


@dataclass(frozen=True)
class McsTable:
    """Link adaptation by table: each entry needs ``snr_db`` to carry ``efficiency`` bits/s/Hz.

    The transmitter picks one entry per channel state (see
    :class:`~aiflow_comm.search.LinkModel`). An attempt at an entry succeeds when the
    instantaneous SNR is at or above its threshold, and then still fails with probability
    ``bler`` (the block error rate link adaptation aims at, 10% in 5G NR).

    Attributes:
        snr_db: thresholds, increasing.
        efficiency: spectral efficiencies in bits/s/Hz, increasing.
        bler: residual block error rate of an attempt above its threshold, in ``[0, 1)``.
        name: a label for reports.

    >>> NR_CQI_TABLE.efficiency_at([-10.0, 0.5, 30.0])
    array([0.    , 0.6016, 5.5547])
    """

    snr_db: tuple[float, ...]
    efficiency: tuple[float, ...]
    bler: float = 0.1
    name: str = "mcs"

    def __post_init__(self) -> None:
        snr = _floats("snr_db", self.snr_db)
        eff = _floats("efficiency", self.efficiency)
        object.__setattr__(self, "snr_db", snr)
        object.__setattr__(self, "efficiency", eff)
        if len(snr) != len(eff):
            raise ValueError(
                f"snr_db and efficiency must have the same length; got {len(snr)} and {len(eff)}"
            )
        if np.any(np.diff(snr) <= 0) or np.any(np.diff(eff) <= 0) or eff[0] <= 0:
            raise ValueError("snr_db and efficiency must be positive and strictly increasing")
        if not (
            isinstance(self.bler, numbers.Real)
            and not isinstance(self.bler, bool)
            and 0.0 <= self.bler < 1.0
        ):
            raise ValueError(f"bler must be a number in [0, 1); got {self.bler!r}")

    def efficiency_at(self, snr_db: object) -> np.ndarray:
        """The efficiency of the best entry whose threshold is at most ``snr_db`` (0 if none)."""
        snr = np.asarray(snr_db, dtype=np.float64)
        index = np.searchsorted(np.asarray(self.snr_db), snr, side="right") - 1
        eff = np.concatenate([[0.0], np.asarray(self.efficiency)])
        return eff[index + 1]


_NR_EFFICIENCY = (0.1523, 0.2344, 0.3770, 0.6016, 0.8770, 1.1758, 1.4766, 1.9141)
_NR_EFFICIENCY += (2.4063, 2.7305, 3.3223, 3.9023, 4.5234, 5.1152, 5.5547)
_NR_SNR_DB = (-6.7, -4.7, -2.3, 0.2, 2.4, 4.3, 5.9, 8.1, 10.3, 11.7, 14.1, 16.3, 18.7, 21.0, 22.7)
NR_CQI_TABLE = McsTable(_NR_SNR_DB, _NR_EFFICIENCY, bler=0.1, name="nr-cqi1")
"""5G NR CQI table 1 (3GPP TS 38.214 Table 5.2.2.1-2, QPSK to 64QAM): the efficiencies are
the standard's; the SNR thresholds are *approximate* AWGN SNRs for 10% BLER as commonly used
in system-level studies (they are not specified by 3GPP and vary with receiver and block
length). CQI 0 (out of range) is the 0 below the first threshold."""


@dataclass(frozen=True)
class BlerCurve:
    """A digital link with one fixed rate and its measured block error rate against SNR.

    ``bler_at(snr_db)`` interpolates ``log10(bler)`` linearly in dB between the points and
    holds the end values outside them (a zero BLER counts as ``1e-9``). Measure it on AWGN for
    ``fading="none"`` or block fading (the link model averages it over the fade), or on the
    per-symbol fading channel itself for fast fading (used as is).

    Attributes:
        efficiency: information bits per complex channel use (bits per symbol x code rate).
        snr_db, bler: the curve (Es/N0 in dB, increasing; block error rates).

    >>> curve = BlerCurve(2.0, (0.0, 2.0), (0.5, 0.005))
    >>> curve.bler_at([-5.0, 1.0, 9.0]).round(4)
    array([0.5  , 0.05 , 0.005])
    """

    efficiency: float
    snr_db: tuple[float, ...]
    bler: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (
            isinstance(self.efficiency, numbers.Real)
            and not isinstance(self.efficiency, bool)
            and math.isfinite(self.efficiency)
            and self.efficiency > 0
        ):
            raise ValueError(
                "efficiency must be a finite number > 0 (bits per channel use); got "
                f"{self.efficiency!r}"
            )
        snr = _floats("snr_db", self.snr_db)
        bler = _floats("bler", self.bler)
        object.__setattr__(self, "snr_db", snr)
        object.__setattr__(self, "bler", bler)
        if len(snr) != len(bler):
            raise ValueError(
                f"snr_db and bler must have the same length; got {len(snr)}, {len(bler)}"
            )
        if np.any(np.diff(snr) <= 0):
            raise ValueError(f"snr_db must be strictly increasing; got {snr}")
        if not all(0.0 <= b <= 1.0 for b in bler):
            raise ValueError(f"bler values must be in [0, 1]; got {bler}")

    @classmethod
    def from_points(
        cls, points: Sequence[object], bits_per_symbol: int, code_rate: float
    ) -> BlerCurve:
        """From the ``BerPoint`` s of :func:`~aiflow_comm.channel.ber.simulate_ber` (coded).

        Eb/N0 becomes Es/N0: ``+ 10 log10(bits_per_symbol * code_rate)``.
        """
        efficiency = bits_per_symbol * code_rate
        kept = [p for p in points if getattr(p, "bler", None) is not None]
        if not kept:
            raise ValueError("points must hold coded results (bler not None); run with LDPC")
        offset = 10.0 * math.log10(efficiency)
        return cls(efficiency, tuple(p.ebno_db + offset for p in kept), tuple(p.bler for p in kept))

    def bler_at(self, snr_db: object) -> np.ndarray:
        """Interpolated block error rate at ``snr_db`` (any shape)."""
        log_bler = np.log10(np.maximum(np.asarray(self.bler), 1e-9))
        return 10.0 ** np.interp(np.asarray(snr_db, dtype=np.float64), self.snr_db, log_bler)
