"""``search_plans``: the best plan per channel state, vectorized over plans and states."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from aiflow_comm.search.accuracy import AccuracyFn, AccuracyTable, plan_accuracy
from aiflow_comm.search.link import LinkModel
from aiflow_comm.search.payload import Codec
from aiflow_comm.search.plans import PlanCosts, plan_costs
from aiflow_comm.search.profiling import ModelProfile
from aiflow_comm.search.result import SearchResult
from aiflow_comm.search.tiers import Tier

__all__ = ["OBJECTIVES", "objective_weights", "search_plans"]

OBJECTIVES = ("latency", "energy")


def objective_weights(objective: str | Sequence[float]) -> tuple[float, float, float]:
    """``(w_latency, w_energy, w_accuracy)``: cost = ``w_l s + w_e J - w_a accuracy``.

    >>> objective_weights("energy"), objective_weights((1.0, 0.5, 0.1))
    ((0.0, 1.0, 0.0), (1.0, 0.5, 0.1))
    """
    if isinstance(objective, str):
        if objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {OBJECTIVES} or weights (w_latency, w_energy, "
                f"w_accuracy); got {objective!r}"
            )
        return (1.0, 0.0, 0.0) if objective == "latency" else (0.0, 1.0, 0.0)
    try:  # a number or a mapping is not three weights: say so rather than numpy's message
        if isinstance(objective, Mapping):
            raise TypeError
        weights = tuple(float(w) for w in objective)
    except (TypeError, ValueError):
        raise TypeError(
            f"objective must be one of {OBJECTIVES} or three weights (w_latency, w_energy, "
            f"w_accuracy); got {objective!r}"
        ) from None
    if len(weights) != 3 or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(
            f"objective weights must be three finite numbers >= 0 (latency, energy, accuracy); "
            f"got {objective!r}"
        )
    if not any(weights[:2]):
        raise ValueError("objective weights must weigh latency or energy (not only accuracy)")
    return weights  # type: ignore[return-value]


def search_plans(
    profile: ModelProfile,
    device: Tier,
    edge: Tier,
    link: LinkModel,
    codecs: Sequence[Codec] = (Codec(32),),
    *,
    cloud: Tier | None = None,
    backhaul: LinkModel | None = None,
    snr_db: object = None,
    weights: object = None,
    accuracy: AccuracyTable | Mapping | AccuracyFn | None = None,
    min_accuracy: float | None = None,
    max_failure_prob: float | None = None,
    objective: str | Sequence[float] = "latency",
    local: bool = True,
) -> SearchResult:
    """Cost every plan in every channel state of ``link`` and pick the best per state.

    Plans (:func:`~aiflow_comm.search.plans.plan_costs`): device only (``local``), one cut
    device -> edge per cut and codec, and with ``cloud`` and ``backhaul`` two cuts
    device -> edge -> cloud. In state ``s`` (first link at ``snr_db[s]``), plan ``p`` costs

    * ``latency = device_s + tx_s + edge_s + tx2_s + cloud_s``, ``tx_s`` from
      :meth:`LinkModel.link_state` (0 without offload), ``tx2_s`` from ``backhaul`` at its first
      SNR state (the backhaul does not change with the first link's state);
    * ``energy = device.power_w * device_s + device.tx_power_w * tx_s
      + device.idle_power_w * (edge_s + tx2_s + cloud_s)`` (the device's);
    * ``failure = 1 - (1 - failure_1) (1 - failure_2)``;
    * ``cost = w_l latency + w_e energy - w_a accuracy`` (:func:`objective_weights`).

    A plan is feasible where latency and energy are finite, ``accuracy >= min_accuracy`` and
    ``failure <= max_failure_prob`` (each when given). The best plan of a state has the least
    cost (the first in plan order on ties). The result and output are not returned to the
    device (not modelled); codec compute other than projections is not modelled either.

    With ``max_failure_prob`` the link chooses its rate per state among those whose loss meets
    it (:meth:`LinkModel.link_state`'s ``max_loss``: under block fading, a slower MCS or
    Shannon rate that keeps ``p**M`` within the target), so a reliability target does not rule
    out offloading that a lower rate would allow. With a backhaul, the two hops' losses combine
    and the plan's total is filtered again.

    Everything after :func:`plan_costs` is numpy over ``(P, S)`` arrays: one pass per state
    set, no Python loop over plans or states (:func:`~aiflow_comm.search.exhaustive_search`
    is the loop it is checked against).

    Args:
        snr_db, weights: channel states and their probabilities; default ``link.snr_db`` and
            ``link.weights``.
        accuracy: an :class:`AccuracyTable`, a mapping ``{(cut, bits): accuracy}`` (key
            ``None``: the uncompressed accuracy) or ``accuracy(plan, snr_db)``.

    >>> from torch import nn
    >>> import torch
    >>> from aiflow_comm.search import profile_model
    >>> model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 4), nn.Linear(4, 2))
    >>> profile = profile_model(model, torch.ones(1, 64))
    >>> result = search_plans(profile, Tier("device", 1e6), Tier("edge", 1e9),
    ...                       LinkModel(1e4, snr_db=[-5.0, 20.0]), [Codec(32), Codec(8)])
    >>> [row["plan"] for row in result.policy()]
    ['device', '<input>@8b']
    """
    if not isinstance(profile, ModelProfile):
        raise TypeError(f"profile must be a ModelProfile (profile_model); got {profile!r}")
    for name, tier in (("device", device), ("edge", edge), ("cloud", cloud)):
        if not (isinstance(tier, Tier) or (name == "cloud" and tier is None)):
            raise TypeError(f"{name} must be a Tier; got {tier!r}")
    for name, value in (("link", link), ("backhaul", backhaul)):
        if not (isinstance(value, LinkModel) or (name == "backhaul" and value is None)):
            raise TypeError(f"{name} must be a LinkModel; got {value!r}")
    w_lat, w_energy, w_acc = objective_weights(objective)
    snr, prob = _states(link, snr_db, weights)
    if min_accuracy is not None and accuracy is None:
        raise ValueError("min_accuracy needs accuracy: a table or a callable")
    if min_accuracy is not None and not (
        isinstance(min_accuracy, numbers.Real)
        and not isinstance(min_accuracy, bool)
        and math.isfinite(min_accuracy)
    ):
        raise ValueError(f"min_accuracy must be a finite number or None; got {min_accuracy!r}")
    if max_failure_prob is not None and not (
        isinstance(max_failure_prob, numbers.Real)
        and not isinstance(max_failure_prob, bool)
        and 0.0 <= max_failure_prob <= 1.0
    ):
        raise ValueError(
            f"max_failure_prob must be a number in [0, 1] or None; got {max_failure_prob!r}"
        )
    costs = plan_costs(profile, codecs, device, edge, cloud=cloud, backhaul=backhaul, local=local)
    acc = plan_accuracy(accuracy, costs.plans, snr)
    if w_acc > 0 and accuracy is None:
        raise ValueError("an objective that weighs accuracy needs accuracy: a table or callable")
    return _evaluate(costs, link, snr, prob, device, acc, (w_lat, w_energy, w_acc),
                     min_accuracy, max_failure_prob)  # fmt: skip


def _evaluate(
    costs: PlanCosts,
    link: LinkModel,
    snr: np.ndarray,
    prob: np.ndarray,
    device: Tier,
    acc: np.ndarray,
    weights: tuple[float, float, float],
    min_accuracy: float | None,
    max_failure_prob: float | None,
) -> SearchResult:
    state = link.link_state(snr, max_loss=max_failure_prob)
    sends = costs.sends[:, None]
    with np.errstate(invalid="ignore"):
        tx = np.where(
            sends, costs.payload_bits[:, None] * state.seconds_per_bit + state.fixed_s, 0.0
        )
        waiting = costs.edge_s + costs.tx2_s + costs.cloud_s
        latency = (costs.device_s + waiting)[:, None] + tx
        energy = (device.power_w * costs.device_s + device.idle_power_w * waiting)[
            :, None
        ] + device.tx_power_w * tx
        # A part that never ends (a dead link) costs infinite energy at any power: at 0 W (a
        # tier's default) the product is NaN.
        energy = np.where(np.isinf(latency), np.inf, energy)
        # 1 - (1 - f1)(1 - f2), as f1 + f2 - f1 f2: a single hop's loss exactly (1 - (1 - f)
        # rounds 1e-3 up to 1.0000000000000009e-3, over a target the link just met)
        fail1, fail2 = np.where(sends, state.failure_prob, 0.0), costs.failure2[:, None]
        failure = fail1 + fail2 - fail1 * fail2
        feasible = np.isfinite(latency) & np.isfinite(energy)
        if min_accuracy is not None:
            feasible &= acc >= min_accuracy
        if max_failure_prob is not None:
            feasible &= failure <= max_failure_prob
        w_lat, w_energy, w_acc = weights
        cost = w_lat * latency + w_energy * energy
        if w_acc > 0:
            cost = cost - w_acc * acc
            feasible &= np.isfinite(acc)
    cost = np.where(feasible, cost, np.inf)
    best = np.argmin(cost, axis=0)
    best = np.where(np.isfinite(cost[best, np.arange(snr.size)]), best, -1)
    return SearchResult(
        costs.plans, snr, prob, costs.device_s, costs.edge_s, costs.cloud_s, costs.tx2_s,
        costs.payload_bits, costs.payload2_bits, tx, latency, energy, failure, acc, feasible,
        cost, best,
    )  # fmt: skip


def _states(link: LinkModel, snr_db: object, weights: object) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(snr_db, str | bytes):  # numpy reads "10" as 10.0; LinkModel refuses it too
        raise TypeError(f"snr_db must be a number or a sequence of numbers; got {snr_db!r}")
    snr = np.atleast_1d(np.asarray(link.snr_db if snr_db is None else snr_db, dtype=np.float64))
    if snr.ndim != 1 or snr.size == 0 or not np.all(np.isfinite(snr)):
        raise ValueError(f"snr_db must be finite numbers, one per state; got {snr_db!r}")
    if weights is not None:
        prob = np.asarray(weights, dtype=np.float64)
    else:
        prob = link.weights if snr_db is None else np.full(snr.size, 1.0 / snr.size)
    if prob.shape != snr.shape or not np.all(np.isfinite(prob) & (prob >= 0)) or prob.sum() <= 0:
        raise ValueError(
            f"weights must be {snr.size} finite numbers >= 0, not all zero; got {weights!r}"
        )
    return snr, prob / prob.sum()
