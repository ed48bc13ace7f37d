"""``LinkModel``: the expected time to send a payload over a fading link, with retransmissions."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from aiflow_comm.channel.theory import (
    ergodic_capacity_rayleigh,
    outage_capacity_rayleigh,
    outage_probability_rayleigh,
)
from aiflow_comm.search.fading import (
    RICIAN_K_MAX,
    _stats,
    check_fading,
    gain_at_logit,
    gain_cdf,
    gain_logit,
    gain_quantiles,
)
from aiflow_comm.search.mcs import NR_CQI_TABLE, BlerCurve, McsTable

__all__ = ["COHERENCE", "MCS_NAMES", "LinkModel", "LinkState", "lognormal_snr_states"]

COHERENCE = ("block", "fast")
MCS_NAMES = {"shannon": None, "nr-cqi": NR_CQI_TABLE}
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class LinkState:
    """Per channel state (arrays of shape ``(S,)``): the rate chosen and what an attempt costs.

    Attributes:
        snr_db: the states' mean SNR (Es/N0, dB).
        efficiency: bits/s/Hz of the rate used (0: the link cannot carry anything).
        error_prob: probability that one attempt fails (outage and residual BLER).
        attempts: expected number of attempts (``inf`` where every attempt fails: the payload
            never arrives, so sending it costs infinite time).
        failure_prob: probability that every allowed attempt fails.
        seconds_per_bit: ``attempts / (bandwidth * efficiency)`` (``inf`` at efficiency 0).
        fixed_s: ``(2 * attempts - 1) * propagation_s``.
    """

    snr_db: np.ndarray
    efficiency: np.ndarray
    error_prob: np.ndarray
    attempts: np.ndarray
    failure_prob: np.ndarray
    seconds_per_bit: np.ndarray
    fixed_s: np.ndarray

    def tx_s(self, bits: object) -> np.ndarray:
        """Expected seconds to send ``bits``: shape ``bits.shape + (S,)``."""
        size = np.asarray(bits, dtype=np.float64)[..., None]
        if not np.all(np.isfinite(size) & (size >= 0)):  # a negative size gives negative time
            raise ValueError(f"bits must be finite numbers >= 0; got {bits!r}")
        with np.errstate(invalid="ignore"):  # 0 bits over a dead link: 0 x inf, set below
            sending = np.where(size > 0, size * self.seconds_per_bit, 0.0)
        return sending + self.fixed_s


@dataclass(frozen=True)
class LinkModel:
    """A wireless (or wired) link: bandwidth, SNR states, fading, rate choice, retransmissions.

    **Channel states.** ``snr_db`` is one mean SNR (Es/N0 in dB, ``docs/channels.md``) or a
    sequence of them, one per channel state, with probabilities ``snr_weights`` (default
    equal): the SNR distribution. The transmitter knows the state (the mean SNR), not the
    fade ``h`` of the attempt it makes.

    **Rate** (spectral efficiency ``eta`` bits/s/Hz; ``bandwidth_hz`` complex symbols per second):

    * ``fading="none"``: Shannon ``eta = log2(1 + snr)``, never fails; an MCS table: the best
      entry whose threshold is at most the SNR, failing with the table's ``bler``; a
      :class:`~aiflow_comm.search.BlerCurve`: its rate, failing with its BLER at the SNR.
    * block fading (``coherence="block"``: one fade per attempt, each retransmission an
      independent fade): an attempt at rate ``R`` fails in outage, when
      ``log2(1 + snr |h|^2) < R`` (MCS: the instantaneous SNR is under the entry's threshold;
      then the entry's ``bler`` on top). The transmitter picks the rate of highest goodput
      ``R (1 - p(R))`` (Shannon over Rayleigh: ``R = W(snr) / ln 2``, Lambert W; over
      Rician: the best of 512 quantile rates; MCS: the best entry, or none, ``eta = 0``, when
      every entry's goodput is 0), or with ``target_outage``
      the highest rate whose outage is at most that. Rayleigh outage and outage capacity come
      from :mod:`aiflow_comm.channel.theory`. A BLER curve (measured on AWGN) is averaged
      over the fade by Gauss-Legendre in the fade's probability (:func:`average_bler`),
      deep fades included.
    * fast fading (``coherence="fast"``: a codeword sees many fades, perfect CSI at the
      receiver): the ergodic capacity ``C = E[log2(1 + snr |h|^2)]`` (Rayleigh from theory,
      Rician by the midpoint rule) for Shannon, never failing; an MCS table is read at the
      AWGN SNR of equal capacity, ``2**C - 1``; a BLER curve is read at the mean SNR (it
      should be measured on the same fast-fading channel).

    **Time.** With ``p`` the failure probability of one attempt and ``M = retransmissions + 1``
    attempts allowed (unlimited with ``None``), the expected attempts are
    ``A = (1 - p**M) / (1 - p)`` and the payload is lost with probability ``p**M``; at ``p = 1``
    nothing ever arrives and ``A = inf`` (the plan is infeasible, whatever ``M``). Each attempt
    takes ``bits / (bandwidth_hz * eta)`` seconds of airtime; a failed attempt costs a round
    trip ``2 * propagation_s`` more (the NACK), the last one a single ``propagation_s``:
    ``tx_s = A * bits / (bandwidth_hz * eta) + (2 A - 1) * propagation_s``.

    Args:
        bandwidth_hz: > 0.
        snr_db: a number or a sequence of channel states, dB.
        fading: ``"none"``, ``"rayleigh"`` or ``"rician"`` (``rician_k`` linear).
        coherence: ``"block"`` or ``"fast"`` (ignored without fading).
        mcs: ``"shannon"``, ``"nr-cqi"`` (:data:`~aiflow_comm.search.NR_CQI_TABLE`), an
            :class:`~aiflow_comm.search.McsTable` or a :class:`~aiflow_comm.search.BlerCurve`.
        retransmissions: retransmissions allowed after the first attempt (``None``: unlimited).
        propagation_s: one-way propagation (and processing) delay, >= 0.
        target_outage: pick rates by outage (block fading) instead of goodput; in ``(0, 1)``.
        snr_weights: probabilities of the states (normalized), or ``None`` for equal.

    >>> link = LinkModel(1e6, snr_db=[0.0, 10.0])
    >>> link.link_state().efficiency.round(3), link.tx_s(1e6).round(3)
    (array([1.   , 3.459]), array([1.   , 0.289]))
    """

    bandwidth_hz: float
    snr_db: float | Sequence[float] = 20.0
    fading: str = "none"
    coherence: str = "block"
    mcs: str | McsTable | BlerCurve = "shannon"
    retransmissions: int | None = 3
    propagation_s: float = 0.0
    rician_k: float = 10.0
    target_outage: float | None = None
    snr_weights: Sequence[float] | None = None

    def __post_init__(self) -> None:
        b = self.bandwidth_hz
        if isinstance(b, bool) or not isinstance(b, numbers.Real) or not math.isfinite(b) or b <= 0:
            raise ValueError(f"bandwidth_hz must be a finite number > 0 (Hz); got {b!r}")
        object.__setattr__(self, "snr_db", _states(self.snr_db))
        check_fading(self.fading, self.rician_k)
        if self.coherence not in COHERENCE:
            raise ValueError(f"coherence must be one of {COHERENCE}; got {self.coherence!r}")
        if isinstance(self.mcs, str):
            if self.mcs not in MCS_NAMES:
                raise ValueError(
                    f"mcs must be one of {tuple(MCS_NAMES)}, an McsTable or a BlerCurve; "
                    f"got {self.mcs!r}"
                )
        elif not isinstance(self.mcs, McsTable | BlerCurve):
            raise TypeError(f"mcs must be a name, an McsTable or a BlerCurve; got {self.mcs!r}")
        r = self.retransmissions
        if r is not None and (isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 0):
            raise ValueError(f"retransmissions must be an int >= 0 or None; got {r!r}")
        p = self.propagation_s
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(p) or p < 0:
            raise ValueError(f"propagation_s must be a finite number >= 0 (s); got {p!r}")
        t = self.target_outage
        if t is not None and not (isinstance(t, numbers.Real) and 0.0 < t < 1.0):
            raise ValueError(f"target_outage must be in (0, 1) or None; got {t!r}")
        if self.snr_weights is not None:
            w = np.asarray(self.snr_weights, dtype=np.float64)
            if w.shape != (len(self.snr_db),) or not np.all(np.isfinite(w)) or (w < 0).any():
                raise ValueError(
                    f"snr_weights must hold {len(self.snr_db)} finite numbers >= 0 (one per "
                    f"state); got {self.snr_weights!r}"
                )
            if w.sum() <= 0:
                raise ValueError("snr_weights must not all be zero")
            object.__setattr__(self, "snr_weights", tuple(float(v) for v in w / w.sum()))

    @property
    def weights(self) -> np.ndarray:
        """Probability of each state of ``snr_db``."""
        if self.snr_weights is None:
            return np.full(len(self.snr_db), 1.0 / len(self.snr_db))
        return np.asarray(self.snr_weights)

    @property
    def table(self) -> McsTable | BlerCurve | None:
        """The MCS table or BLER curve in use (``None`` for Shannon)."""
        return MCS_NAMES[self.mcs] if isinstance(self.mcs, str) else self.mcs

    def link_state(self, snr_db: object = None, *, max_loss: float | None = None) -> LinkState:
        """The rate, failure and time coefficients at ``snr_db`` (default: the model's states).

        ``max_loss`` (a reliability target, e.g. the search's ``max_failure_prob``): under
        block fading with retransmissions capped at ``M - 1``, the rate is chosen among those
        whose payload loss ``p**M`` is at most ``max_loss``, the highest goodput among them
        (or ``target_outage``'s rule); none (``eta = 0``) when no rate meets it. A BLER curve's
        fixed rate, fast fading and no fading offer no choice: their loss is what it is.
        """
        snr = np.atleast_1d(np.asarray(self.snr_db if snr_db is None else snr_db, float))
        if snr.ndim != 1 or not np.all(np.isfinite(snr)):
            raise ValueError(f"snr_db must be finite numbers (one per state); got {snr_db!r}")
        bound = None  # the largest attempt failure probability the loss target allows
        if max_loss is not None:
            if isinstance(max_loss, bool) or not (
                isinstance(max_loss, numbers.Real) and 0.0 <= max_loss <= 1.0
            ):
                raise ValueError(f"max_loss must be a number in [0, 1] or None; got {max_loss!r}")
            if self.retransmissions is not None and max_loss < 1.0:
                bound = float(max_loss) ** (1.0 / (self.retransmissions + 1))
        eff, p = self._rate(snr, bound)
        p = np.clip(np.where(eff > 0, p, 1.0), 0.0, 1.0)
        if self.retransmissions is None:
            with np.errstate(divide="ignore"):
                attempts = np.where(p < 1.0, 1.0 / (1.0 - p), np.inf)
            failure = np.where(p < 1.0, 0.0, 1.0)
        else:
            m = self.retransmissions + 1
            failure = p**m
            if bound is not None:  # p <= bound means p**m <= max_loss: no rounding over it
                failure = np.where(p <= bound, np.minimum(failure, max_loss), failure)
            # an attempt that always fails never delivers: it takes forever, as uncapped
            with np.errstate(divide="ignore", invalid="ignore"):
                attempts = np.where(p < 1.0, (1.0 - failure) / (1.0 - p), np.inf)
        with np.errstate(divide="ignore"):
            per_bit = np.where(eff > 0, attempts / (self.bandwidth_hz * eff), np.inf)
        # Attempts without end take forever, with or without a propagation delay (inf * 0).
        with np.errstate(invalid="ignore"):  # the branch not taken computes inf * 0
            fixed = np.where(
                np.isfinite(attempts), (2.0 * attempts - 1.0) * self.propagation_s, np.inf
            )
        return LinkState(snr, eff, p, attempts, failure, per_bit, fixed)

    def tx_s(self, bits: object, snr_db: object = None) -> np.ndarray:
        """Expected seconds to send ``bits`` in each state: shape ``bits.shape + (S,)``."""
        return self.link_state(snr_db).tx_s(bits)

    def _rate(self, snr_db: np.ndarray, bound: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``(efficiency, failure probability of one attempt)`` per state; under block fading
        the rate keeps that probability at most ``bound`` (``None``: no bound)."""
        table = self.table
        snr = 10.0 ** (snr_db / 10.0)
        zeros = np.zeros_like(snr)
        if self.fading == "none":
            if table is None:
                return np.log2(1.0 + snr), zeros
            if isinstance(table, McsTable):
                return table.efficiency_at(snr_db), zeros + table.bler
            return zeros + table.efficiency, table.bler_at(snr_db)
        if self.coherence == "fast":
            if isinstance(table, BlerCurve):
                return zeros + table.efficiency, table.bler_at(snr_db)
            if self.fading == "rayleigh":
                capacity = np.asarray(ergodic_capacity_rayleigh(snr_db))
            else:
                gains = gain_quantiles("rician", self.rician_k)
                capacity = np.log2(1.0 + snr[:, None] * gains).mean(axis=1)
            if table is None:
                return capacity, zeros
            return table.efficiency_at(
                10.0 * np.log10(np.expm1(capacity * _LN2))
            ), zeros + table.bler
        return self._block_rate(snr_db, snr, table, bound)

    def _block_rate(
        self,
        snr_db: np.ndarray,
        snr: np.ndarray,
        table: McsTable | BlerCurve | None,
        bound: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rate choice and attempt failure under block fading (see the class docstring), the
        attempt failure at most ``bound``: goodput is unimodal in the rate and outage grows with
        it, so the best rate within the bound is the unbounded choice or the bound's rate."""
        k, eps = min(self.rician_k, RICIAN_K_MAX), self.target_outage
        if isinstance(table, BlerCurve):
            p = average_bler(table, snr_db, self.fading, k)
            return np.full_like(snr, table.efficiency), p
        if isinstance(table, McsTable):
            thresholds = 10.0 ** (np.asarray(table.snr_db) / 10.0)
            outage = gain_cdf(thresholds / snr[:, None], self.fading, k)  # (S, entries)
            p = 1.0 - (1.0 - outage) * (1.0 - table.bler)
            eff = np.asarray(table.efficiency)
            allowed = p <= (1.0 if bound is None else bound)
            if eps is None:  # the best goodput, or none (-1) where no entry ever delivers
                goodput = np.where(allowed, eff * (1.0 - p), 0.0)
                best = np.where(goodput.max(axis=1) > 0, np.argmax(goodput, axis=1), -1)
            else:  # the highest entry within the outage target, or none (-1)
                ok = (outage <= eps) & allowed
                best = np.where(
                    ok.any(axis=1), ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1), -1
                )
            rows = np.arange(len(snr))
            chosen = np.where(best >= 0, eff[best], 0.0)
            return chosen, np.where(best >= 0, p[rows, best], 1.0)
        if self.fading == "rayleigh":
            if eps is None:
                rate = special.lambertw(snr).real / _LN2
            else:
                rate = np.asarray(outage_capacity_rayleigh(eps, snr_db))
            if bound is not None:
                within = np.asarray(outage_capacity_rayleigh(bound, snr_db)) if bound > 0 else 0.0
                rate = np.minimum(rate, within)
            p = np.asarray(outage_probability_rayleigh(rate, snr_db))
            # a rate capped at the bound's outage capacity is within it (up to rounding)
            return rate, p if bound is None else np.minimum(p, bound)
        if eps is not None or bound is not None:
            level = min(1.0 if eps is None else eps, 1.0 if bound is None else bound)
            gain = _stats().ncx2.ppf(level, 2, 2.0 * k) / (2.0 * (k + 1.0))
            rate = np.log2(1.0 + snr * gain)
            if eps is None:  # the goodput choice where it is within the bound
                free, free_outage = self._rician_goodput_rate(snr, k)
                rate = np.where(free_outage <= level, free, rate)
            p = gain_cdf(np.expm1(rate * _LN2) / snr, "rician", k)
            # the rate is the quantile at level (or one of lower outage): within it
            return rate, np.minimum(p, level)
        return self._rician_goodput_rate(snr, k)

    @staticmethod
    def _rician_goodput_rate(snr: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
        """The best goodput of 512 quantile rates under Rician block fading, and its outage."""
        n = 512
        levels = (np.arange(n) + 0.5) / n  # outage probability of each candidate rate
        rates = np.log2(1.0 + snr[:, None] * gain_quantiles("rician", k, n))
        best = np.argmax(rates * (1.0 - levels), axis=1)
        return rates[np.arange(len(snr)), best], levels[best]


_LOGIT_SPAN = 40.0  # |h|^2 quantiles beyond logit +-40 hold probability 4e-18: left out
_LOGIT_STEP = 8.0  # the integrand is smooth on this scale between the curve's points
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(16)


def average_bler(curve: BlerCurve, snr_db: np.ndarray, fading: str, rician_k: float) -> np.ndarray:
    """``E[curve.bler_at(snr_db + 10 log10 |h|^2)]`` over block fading, per state.

    At high SNR the average comes from deep fades (``|h|^2`` of 1e-4 and less) that equally
    likely quantiles miss, so it is integrated over the fade's probability in logit
    coordinates, ``t = log(F / (1 - F))`` (``dF = F (1 - F) dt``), which spread both tails:
    16-point Gauss-Legendre on pieces of ``t`` (8 wide on ``[-40, 40]``), split where the
    curve's points fall (its kinks), so each piece integrates a smooth function (relative
    error ~1e-9 against adaptive quadrature).
    """
    x = np.asarray(curve.snr_db)
    points = gain_logit(10.0 ** ((x - snr_db[:, None]) / 10.0), fading, rician_k)
    grid = np.arange(-_LOGIT_SPAN, _LOGIT_SPAN + _LOGIT_STEP / 2, _LOGIT_STEP)
    edges = np.sort(np.concatenate([
        np.clip(points, -_LOGIT_SPAN, _LOGIT_SPAN), np.broadcast_to(grid, (snr_db.size, grid.size))
    ], axis=1), axis=1)  # fmt: skip
    mid, half = (edges[:, 1:] + edges[:, :-1]) / 2, (edges[:, 1:] - edges[:, :-1]) / 2
    t = mid[..., None] + half[..., None] * _GAUSS_NODES  # (S, pieces, nodes)
    gain_db = 10.0 * np.log10(gain_at_logit(t, fading, rician_k))
    density = special.expit(t) * special.expit(-t)
    values = curve.bler_at(snr_db[:, None, None] + gain_db) * density
    return np.sum(half * (values @ _GAUSS_WEIGHTS), axis=1)


def _states(snr_db: object) -> float | tuple[float, ...]:
    if isinstance(snr_db, str | bytes):  # iterable, but not numbers: "12" is not (1, 2)
        raise TypeError(f"snr_db must be a number or a sequence of numbers; got {snr_db!r}")
    if isinstance(snr_db, numbers.Real) and not isinstance(snr_db, bool):
        if not math.isfinite(snr_db):
            raise ValueError(f"snr_db must be finite (dB); got {snr_db!r}")
        return (float(snr_db),)
    try:
        values = tuple(float(v) for v in snr_db)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(
            f"snr_db must be a number or a sequence of numbers; got {snr_db!r}"
        ) from None
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"snr_db must hold at least one finite value (dB); got {snr_db!r}")
    return values


def lognormal_snr_states(mean_db: float, std_db: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` equally likely SNR states of log-normal shadowing: ``N(mean_db, std_db)`` quantiles.

    Returns ``(snr_db, weights)``, the quantiles at ``(i + 1/2) / n`` and ``1/n`` each; pass
    them as ``LinkModel(snr_db=..., snr_weights=...)``.

    >>> lognormal_snr_states(10.0, 4.0, 3)[0].round(2)
    array([ 6.13, 10.  , 13.87])
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1 (not a bool); got {n!r}")
    if not (math.isfinite(mean_db) and math.isfinite(std_db) and std_db >= 0):
        raise ValueError(f"mean_db must be finite and std_db >= 0; got {mean_db!r}, {std_db!r}")
    snr = mean_db + std_db * _stats().norm.ppf((np.arange(n) + 0.5) / n)
    return snr, np.full(n, 1.0 / n)
