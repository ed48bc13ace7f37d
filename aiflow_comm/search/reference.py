"""``exhaustive_search``: the plain Python loop over plans and states that specifies the search."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aiflow_comm.search.accuracy import AccuracyFn, AccuracyTable, plan_accuracy
from aiflow_comm.search.link import LinkModel
from aiflow_comm.search.payload import Codec, payload_bits, projection_flops
from aiflow_comm.search.planner import objective_weights
from aiflow_comm.search.plans import Plan, plan_costs
from aiflow_comm.search.profiling import ModelProfile
from aiflow_comm.search.tiers import Tier

__all__ = ["exhaustive_search", "plan_parts"]


def plan_parts(
    plan: Plan,
    profile: ModelProfile,
    device: Tier,
    edge: Tier,
    *,
    cloud: Tier | None = None,
    backhaul: LinkModel | None = None,
) -> dict[str, float]:
    """The state-free parts of one plan's cost, one number at a time.

    Returns ``device_s``, ``edge_s``, ``cloud_s``, ``bits`` (first hop, 0 without offload),
    ``tx2_s`` and ``failure2`` (second hop at the backhaul's first SNR state).
    """
    measured = profile.measured
    total_f = float(profile.total_flops)
    total_s = profile.total_s if measured else math.nan
    per_flop = total_s / total_f if measured and total_f > 0 else math.nan

    def proj_s(flops: float) -> float:  # no projection takes no time
        return flops * per_flop if flops > 0 else 0.0

    def run(tier: Tier, flops: float, seconds: float) -> float:
        return float(tier.compute_s(flops, seconds if measured else None))

    def head(cut: str) -> tuple[float, float]:
        c = profile.cut(cut)
        return float(c.head_flops), (c.head_s if measured else math.nan)

    out = {"device_s": 0.0, "edge_s": 0.0, "cloud_s": 0.0, "bits": 0.0, "tx2_s": 0.0}
    out["failure2"] = 0.0
    if plan.cut is None:
        out["device_s"] = run(device, total_f, total_s)
        return out
    tensors = profile.cut(plan.cut).tensors
    f1, s1 = head(plan.cut)
    p1 = float(projection_flops(tensors, plan.codec))
    out["bits"] = float(payload_bits(tensors, plan.codec))
    out["device_s"] = run(device, f1 + p1, s1 + proj_s(p1))
    if plan.cut2 is None:
        out["edge_s"] = run(edge, total_f - f1 + p1, total_s - s1 + proj_s(p1))
        return out
    tensors2 = profile.cut(plan.cut2).tensors
    f2, s2 = head(plan.cut2)
    p2 = float(projection_flops(tensors2, plan.codec2))
    pe = 0.0 if plan.cut2 == plan.cut else p1 + p2
    out["edge_s"] = run(edge, f2 - f1 + pe, s2 - s1 + proj_s(pe))
    out["cloud_s"] = run(cloud, total_f - f2 + p2, total_s - s2 + proj_s(p2))
    state = backhaul.link_state([backhaul.snr_db[0]])
    bits2 = float(payload_bits(tensors2, plan.codec2))
    out["tx2_s"] = bits2 * float(state.seconds_per_bit[0]) + float(state.fixed_s[0])
    out["failure2"] = float(state.failure_prob[0])
    return out


def exhaustive_search(
    profile: ModelProfile,
    device: Tier,
    edge: Tier,
    link: LinkModel,
    codecs: Sequence[Codec] = (Codec(32),),
    *,
    cloud: Tier | None = None,
    backhaul: LinkModel | None = None,
    snr_db: Sequence[float] | None = None,
    accuracy: AccuracyTable | AccuracyFn | None = None,
    min_accuracy: float | None = None,
    max_failure_prob: float | None = None,
    objective: str | Sequence[float] = "latency",
    local: bool = True,
) -> tuple[list[int], list[list[float]]]:
    """The best plan index per state and every plan's cost per state, by Python loops.

    The same plans (in the same order), formulas and constraints as
    :func:`~aiflow_comm.search.search_plans`: each plan's state-free parts from
    :func:`plan_parts`, each state's link coefficients from :meth:`LinkModel.link_state` on
    that one SNR, and then a loop over every state and plan in plain floats. Infeasible plans
    cost ``inf``; a state with no feasible plan gets ``-1``. The reference the vectorized
    search is tested against.

    >>> import torch
    >>> from torch import nn
    >>> from aiflow_comm.search import profile_model, search_plans
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(256, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> profile = profile_model(model, torch.zeros(1, 256))
    >>> device, edge = Tier("device", flops_per_s=1e5), Tier("edge", flops_per_s=1e9)
    >>> link = LinkModel(1e6, snr_db=[20.0, -20.0])
    >>> best, costs = exhaustive_search(profile, device, edge, link, [Codec(32), Codec(8)])
    >>> best, search_plans(profile, device, edge, link, [Codec(32), Codec(8)]).best.tolist()
    ([2, 0], [2, 0])
    """
    w_lat, w_energy, w_acc = objective_weights(objective)
    states = [float(s) for s in (link.snr_db if snr_db is None else snr_db)]
    plans = plan_costs(profile, codecs, device, edge, cloud=cloud, backhaul=backhaul,
                       local=local).plans  # fmt: skip
    parts = [plan_parts(p, profile, device, edge, cloud=cloud, backhaul=backhaul) for p in plans]
    acc = plan_accuracy(accuracy, plans, np.array(states)).tolist()
    best: list[int] = []
    costs: list[list[float]] = [[] for _ in plans]
    for s, snr in enumerate(states):
        state = link.link_state([snr], max_loss=max_failure_prob)
        per_bit, fixed = float(state.seconds_per_bit[0]), float(state.fixed_s[0])
        fail1 = float(state.failure_prob[0])
        index = -1
        for p, (plan, part) in enumerate(zip(plans, parts, strict=True)):
            tx = part["bits"] * per_bit + fixed if plan.offload else 0.0
            waiting = part["edge_s"] + part["tx2_s"] + part["cloud_s"]
            latency = part["device_s"] + waiting + tx
            energy = (
                device.power_w * part["device_s"] + device.idle_power_w * waiting
                + device.tx_power_w * tx
            )  # fmt: skip
            f1, f2 = (fail1 if plan.offload else 0.0), part["failure2"]
            failure = f1 + f2 - f1 * f2  # 1 - (1 - f1)(1 - f2), exact for one hop
            a = acc[p][s]
            ok = math.isfinite(latency) and math.isfinite(energy)
            if min_accuracy is not None:
                ok = ok and a >= min_accuracy
            if max_failure_prob is not None:
                ok = ok and failure <= max_failure_prob
            cost = w_lat * latency + w_energy * energy
            if w_acc > 0:
                cost = cost - w_acc * a
                ok = ok and math.isfinite(a)
            cost = cost if ok else math.inf
            costs[p].append(cost)
            if math.isfinite(cost) and (index < 0 or cost < costs[index][s]):
                index = p
        best.append(index)
    return best, costs
