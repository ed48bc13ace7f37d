"""Execution plans (where to cut, which codec, offload or not) and their state-free costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aiflow_comm.search.link import LinkModel
from aiflow_comm.search.payload import Codec, payload_bits, projection_flops
from aiflow_comm.search.profiling import ModelProfile
from aiflow_comm.search.tiers import Tier

__all__ = ["Plan", "PlanCosts", "plan_costs"]


@dataclass(frozen=True)
class Plan:
    """Where a model runs: device only, device -> edge, or device -> edge -> cloud.

    Attributes:
        cut: the device -> edge cut (a :class:`~aiflow_comm.search.ModelProfile` cut name,
            ``"<input>"`` to send the input), or ``None``: everything runs on the device.
        codec: how the first hop sends (``None`` without offload).
        cut2: the edge -> cloud cut (at or after ``cut``), or ``None``: the edge finishes.
        codec2: how the second hop sends (``None`` without a second hop).

    >>> Plan("conv2", Codec(8)).label, Plan(None, None).label
    ('conv2@8b', 'device')
    """

    cut: str | None
    codec: Codec | None
    cut2: str | None = None
    codec2: Codec | None = None

    @property
    def offload(self) -> bool:
        """Whether the plan sends anything (``cut`` is not ``None``)."""
        return self.cut is not None

    @property
    def bits(self) -> int | None:
        """The first hop's bits (32: raw float32), ``None`` without offload."""
        return None if self.codec is None else self.codec.bits

    @property
    def bits2(self) -> int | None:
        """The second hop's bits, ``None`` without a second hop."""
        return None if self.codec2 is None else self.codec2.bits

    @property
    def hops(self) -> tuple[tuple[str, Codec], ...]:
        """``(cut, codec)`` of each hop, in order."""
        out = []
        if self.cut is not None and self.codec is not None:
            out.append((self.cut, self.codec))
        if self.cut2 is not None and self.codec2 is not None:
            out.append((self.cut2, self.codec2))
        return tuple(out)

    @property
    def label(self) -> str:
        """``"device"``, ``"cut@codec"``, or two hops joined by ``" -> "``."""
        if not self.hops:
            return "device"
        return " -> ".join(f"{cut}@{codec.label}" for cut, codec in self.hops)

    def as_dict(self) -> dict[str, object]:
        """``cut``, ``offload``, ``bits``, ``codec`` (its label), ``cut2`` and ``bits2``."""
        return {
            "cut": self.cut,
            "offload": self.offload,
            "bits": self.bits,
            "codec": None if self.codec is None else self.codec.label,
            "cut2": self.cut2,
            "bits2": self.bits2,
        }


@dataclass(frozen=True)
class PlanCosts:
    """Every plan and the parts of its cost that do not depend on the first link's state.

    Arrays have one entry per plan (``P``); ``tx2_s`` and ``failure2`` come from the
    edge -> cloud link at its own (first) SNR state.
    """

    plans: list[Plan]
    device_s: np.ndarray
    edge_s: np.ndarray
    cloud_s: np.ndarray
    payload_bits: np.ndarray
    payload2_bits: np.ndarray
    sends: np.ndarray
    tx2_s: np.ndarray
    failure2: np.ndarray


def plan_costs(
    profile: ModelProfile,
    codecs: Sequence[Codec],
    device: Tier,
    edge: Tier,
    *,
    cloud: Tier | None = None,
    backhaul: LinkModel | None = None,
    local: bool = True,
) -> PlanCosts:
    """Enumerate the plans and cost their compute and fixed parts.

    Plans, in this order: device only (when ``local``); for each cut (``"<input>"`` first) and
    each codec, device -> edge; with ``cloud`` and ``backhaul``, for each pair of cuts
    ``cut <= cut2`` and codecs, device -> edge -> cloud (with ``cut == cut2`` the edge relays
    the payload as received, so ``codec2 == codec``). Compute seconds come from
    :meth:`Tier.compute_s` on the FLOPs (and measured times) of each side; a projection
    codec adds its encoder to the sender and its decoder to the receiver.
    """
    if isinstance(codecs, Codec):  # a frozen dataclass, not iterable: say what to pass
        raise TypeError(f"codecs must be a sequence of Codec objects, e.g. [{codecs!r}]; got one")
    if not codecs:
        raise ValueError("codecs must hold at least one Codec")
    for c in codecs:
        if not isinstance(c, Codec):
            raise TypeError(f"codecs must hold Codec objects; got {c!r}")
    if (cloud is None) != (backhaul is None):
        raise ValueError("two cuts need both cloud (a Tier) and backhaul (a LinkModel), or neither")
    cuts = profile.cuts
    k, c = len(cuts), len(codecs)
    head_flops = np.array([cut.head_flops for cut in cuts], dtype=np.float64)
    total_flops = float(profile.total_flops)
    measured = profile.measured
    head_s = np.array([cut.head_s if measured else np.nan for cut in cuts], dtype=np.float64)
    total_s = profile.total_s if measured else np.nan
    # this machine's seconds per FLOP, for the projections (not in the measured steps)
    per_flop = (total_s / total_flops) if measured and total_flops > 0 else np.nan
    bits = np.array([[payload_bits(cut.tensors, co) for co in codecs] for cut in cuts], float)
    proj = np.array([[projection_flops(cut.tensors, co) for co in codecs] for cut in cuts], float)
    if measured and total_flops == 0 and (proj > 0).any():
        raise ValueError(
            "the measured profile's model does no FLOPs, so it gives no seconds per FLOP to price "
            "the projection codecs by: profile it without measure=True, or drop the projections"
        )

    def proj_s(flops: np.ndarray) -> np.ndarray:  # no projection takes no time (not 0 * NaN)
        return np.where(flops > 0, flops * per_flop, 0.0)

    def run(tier: Tier, flops: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        return np.asarray(tier.compute_s(flops, seconds if measured else None), dtype=np.float64)

    plans: list[Plan] = []
    parts: list[tuple[np.ndarray, ...]] = []
    if local:
        plans.append(Plan(None, None))
        zero = np.zeros(1)
        dev = run(device, np.array([total_flops]), np.array([total_s]))
        parts.append((dev, zero, zero, zero, zero, np.zeros(1, bool)))
    # one cut: device runs head(i) and the encoder, edge the decoder and tail(i)
    i, j = np.divmod(np.arange(k * c), c)
    plans += [Plan(cuts[a].name, codecs[b]) for a, b in zip(i, j, strict=True)]
    p = proj[i, j]
    dev = run(device, head_flops[i] + p, head_s[i] + proj_s(p))
    edge_s = run(edge, total_flops - head_flops[i] + p, total_s - head_s[i] + proj_s(p))
    zero = np.zeros(len(i))
    parts.append((dev, edge_s, zero, bits[i, j], zero, np.ones(len(i), bool)))
    if cloud is not None:
        i, j, i2, j2 = _two_cut_grid(k, c)
        plans += [
            Plan(cuts[a].name, codecs[b], cuts[a2].name, codecs[b2])
            for a, b, a2, b2 in zip(i, j, i2, j2, strict=True)
        ]
        p, p2 = proj[i, j], proj[i2, j2]
        relay = i == i2
        p_edge = np.where(relay, 0.0, p + p2)
        dev = run(device, head_flops[i] + p, head_s[i] + proj_s(p))
        edge_s = run(
            edge, head_flops[i2] - head_flops[i] + p_edge, head_s[i2] - head_s[i] + proj_s(p_edge)
        )
        cloud_s = run(cloud, total_flops - head_flops[i2] + p2, total_s - head_s[i2] + proj_s(p2))
        parts.append((dev, edge_s, cloud_s, bits[i, j], bits[i2, j2], np.ones(len(i), bool)))
    device_s, edge_all, cloud_all, bits1, bits2, sends = (
        np.concatenate(x) for x in zip(*parts, strict=True)
    )
    if backhaul is None:
        tx2, fail2 = np.zeros_like(bits2), np.zeros_like(bits2)
    else:
        state = backhaul.link_state(backhaul.snr_db[:1])
        tx2 = np.where(bits2 > 0, state.tx_s(bits2)[:, 0], 0.0)
        fail2 = np.where(bits2 > 0, state.failure_prob[0], 0.0)
    return PlanCosts(plans, device_s, edge_all, cloud_all, bits1, bits2, sends, tx2, fail2)


def _two_cut_grid(k: int, c: int) -> tuple[np.ndarray, ...]:
    """Indices ``(cut, codec, cut2, codec2)`` of the two-cut plans, ``cut`` major."""
    rows = []
    for a in range(k):
        for b in range(c):
            rows.append((a, b, a, b))  # relay: same cut, same codec
            for a2 in range(a + 1, k):
                rows.extend((a, b, a2, b2) for b2 in range(c))
    grid = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return tuple(grid.T)
