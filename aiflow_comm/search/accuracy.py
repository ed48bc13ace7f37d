"""Accuracy of plans: a user's table (per cut and codec, optionally per SNR) or measured here."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from aiflow_comm.search.payload import Codec
from aiflow_comm.search.plans import Plan
from aiflow_comm.search.profiling import INPUT_CUT

__all__ = ["AccuracyFn", "AccuracyTable", "measure_accuracy", "plan_accuracy"]

AccuracyFn = Callable[[Plan, np.ndarray], "float | np.ndarray"]
Key = tuple[str, "int | Codec"]


class AccuracyTable:
    """Accuracy per ``(cut, bits)`` (or ``(cut, Codec)``), constant or tabulated against SNR.

    A plan's accuracy is the lowest over its lossy hops (a codec other than raw float32 without
    projection); a plan with no lossy hop (device only, raw floats) has ``lossless``, the
    model's own accuracy. A hop missing from the table has accuracy NaN: a search with
    ``min_accuracy`` excludes it (nothing shows that it is accurate enough).

    Args:
        values: ``{(cut, bits): accuracy}``; with ``snr_db``, each value is a sequence, one per
            SNR, interpolated linearly in dB (held constant outside).
        lossless: the uncompressed model's accuracy, or ``None`` (NaN).
        snr_db: the SNRs the values were measured at, increasing, or ``None``.

    >>> table = AccuracyTable({("conv2", 8): 0.91, ("conv2", 4): 0.85}, lossless=0.92)
    >>> table(Plan("conv2", Codec(4)), np.array([0.0, 10.0]))
    array([0.85, 0.85])
    >>> float(table(Plan(None, None), np.zeros(1))[0])
    0.92
    """

    def __init__(
        self,
        values: Mapping[Key, float | Sequence[float]],
        *,
        lossless: float | None = None,
        snr_db: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(f"values must map (cut, bits) to accuracy; got {type(values).__name__}")
        self.snr_db = None if snr_db is None else np.asarray(snr_db, dtype=np.float64)
        if self.snr_db is not None and (
            self.snr_db.ndim != 1
            or self.snr_db.size == 0
            or not np.all(np.isfinite(self.snr_db))
            or np.any(np.diff(self.snr_db) <= 0)
        ):
            raise ValueError(f"snr_db must be increasing finite numbers; got {snr_db!r}")
        self.values: dict[Key, np.ndarray] = {}
        for key, value in values.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
                raise ValueError(f"keys must be (cut, bits) or (cut, Codec) pairs; got {key!r}")
            arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
            expected = 1 if self.snr_db is None else self.snr_db.size
            if arr.shape != (expected,) or not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"accuracy of {key!r} must hold {expected} finite value(s) (one per "
                    f"snr_db); got {value!r}"
                )
            self.values[key] = arr
        self.lossless = math.nan if lossless is None else float(lossless)
        if lossless is not None and not math.isfinite(self.lossless):
            raise ValueError(f"lossless must be a finite accuracy or None; got {lossless!r}")

    def hop(self, cut: str, codec: Codec, snr_db: np.ndarray) -> np.ndarray:
        """Accuracy with one lossy hop at ``cut``, per state of ``snr_db`` (NaN if unknown)."""
        value = self.values.get((cut, codec))
        if value is None:
            value = self.values.get((cut, codec.bits))
        if value is None:
            return np.full(snr_db.shape, math.nan)
        if self.snr_db is None:
            return np.full(snr_db.shape, value[0])
        return np.interp(snr_db, self.snr_db, value)

    def __call__(self, plan: Plan, snr_db: np.ndarray) -> np.ndarray:
        out = np.full(np.shape(snr_db), self.lossless)
        lossy = [(cut, codec) for cut, codec in plan.hops if not codec.lossless]
        if lossy:
            out = np.minimum.reduce([self.hop(cut, codec, snr_db) for cut, codec in lossy])
        return out


def plan_accuracy(
    accuracy: AccuracyTable | Mapping[Key, float] | AccuracyFn | None,
    plans: Sequence[Plan],
    snr_db: np.ndarray,
) -> np.ndarray:
    """Accuracy of every plan in every state, shape ``(P, S)`` (NaN without a model).

    A plain mapping becomes an :class:`AccuracyTable` (``lossless`` from its key ``None`` if
    present); a callable is called as ``accuracy(plan, snr_db)`` and may return one number or
    one per state.
    """
    if accuracy is None:
        return np.full((len(plans), snr_db.size), math.nan)
    if isinstance(accuracy, Mapping):
        values = {k: v for k, v in accuracy.items() if k is not None}
        accuracy = AccuracyTable(values, lossless=accuracy.get(None))
    if not callable(accuracy):
        raise TypeError(
            f"accuracy must be an AccuracyTable, a mapping or a callable; got {accuracy!r}"
        )
    cache: dict[tuple, np.ndarray] = {}
    out = np.empty((len(plans), snr_db.size))
    for p, plan in enumerate(plans):
        key = (plan.cut, plan.codec, plan.cut2, plan.codec2)
        if key not in cache:
            cache[key] = _per_state(accuracy(plan, snr_db), plan, snr_db.shape)
        out[p] = cache[key]
    return out


def _per_state(value: object, plan: Plan, shape: tuple[int, ...]) -> np.ndarray:
    """An accuracy callable's answer as one number per state, or a ``ValueError`` that says
    what it returned (a bare NumPy cast or broadcast error names neither)."""
    try:
        values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape not in ((), (1,), shape):
        raise ValueError(
            f"accuracy(plan, snr_db) must return one number or {shape[0]} (one per state); "
            f"for plan {plan.label!r} it returned {value!r}"
        )
    return np.broadcast_to(values, shape)


@torch.no_grad()
def measure_accuracy(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    cuts: Sequence[str],
    codecs: Sequence[Codec],
    *,
    link: nn.Module | None = None,
    snr_db: Sequence[float] | None = None,
) -> AccuracyTable:
    """Top-1 accuracy of ``model`` cut at each of ``cuts`` with a ``SplitLink`` per codec.

    Each (cut, codec) runs ``split_model(model, cut)`` with ``SplitLink(bits, group_size,
    link=link, snr_db=s)`` in eval mode (real quantization, bytes over ``link``) on every
    ``(inputs, labels)`` batch of ``data``, at each SNR ``s`` of ``snr_db`` (``None``: no
    link). Raw float32 codecs are lossless over a perfect link and skipped there. Projection
    codecs (``ratio < 1``) need a trained projection: measure them yourself.

    Returns an :class:`AccuracyTable` (``lossless``: the uncut model's accuracy).

    >>> model = nn.Sequential(nn.Identity(), nn.Identity())
    >>> data = [(torch.eye(2).repeat(4, 1), torch.tensor([0, 1] * 4))]
    >>> table = measure_accuracy(model, data, cuts=["0"], codecs=[Codec(8, group_size=2)])
    >>> table.lossless, table(Plan("0", Codec(8, group_size=2)), np.zeros(1))
    (1.0, array([1.]))
    """
    from aiflow_comm.split import SplitLink, SplitModel, split_model

    if link is not None and not snr_db:
        raise ValueError("a link needs snr_db: the SNRs (dB) to measure at")
    batches = list(data)
    if not batches:
        raise ValueError("data must hold at least one (inputs, labels) batch")
    snrs = list(snr_db) if link is not None else [None]
    training = model.training
    model.eval()
    try:
        lossless = _top1(model, batches)
        values: dict[Key, list[float]] = {}
        for cut in cuts:
            # the input cut as a split with an empty head: its link, like every cut's, passes
            # tensors that are not floating point (token ids) unchanged
            split = (
                SplitModel(nn.Identity(), None, model) if cut == INPUT_CUT
                else split_model(model, cut)
            )  # fmt: skip
            for codec in codecs:
                if codec.ratio != 1.0:
                    raise ValueError(
                        f"codec {codec.label} has a projection (ratio {codec.ratio}); "
                        "it must be trained: measure it yourself and pass a table"
                    )
                if codec.lossless and link is None:
                    continue
                bits = None if codec.bits == 32 else codec.bits
                row = []
                for s in snrs:
                    hop = SplitLink(bits, codec.group_size, link=link, snr_db=s,
                                    symmetric=codec.symmetric).eval()  # fmt: skip
                    split.link = hop
                    row.append(_top1(split, batches))
                values[(cut, codec)] = row
    finally:
        model.train(training)
    return AccuracyTable(values, lossless=lossless, snr_db=snr_db if link is not None else None)


def _top1(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct = total = 0
    for x, y in batches:
        correct += int((model(x).argmax(dim=-1) == y).sum())
        total += int(y.numel())
    return correct / total
