"""``SearchResult``: every plan in every channel state, the best per state, policy, Pareto front."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiflow_comm.search.pareto import pareto_front
from aiflow_comm.search.plans import Plan

__all__ = ["SearchResult"]


@dataclass
class SearchResult:
    """Every plan in every channel state (arrays ``(P, S)`` unless said), and the choices.

    Attributes:
        plans: the ``P`` plans (:func:`~aiflow_comm.search.plans.plan_costs` order).
        snr_db, weights: the ``S`` states of the first link and their probabilities.
        device_s, edge_s, cloud_s, tx2_s: ``(P,)`` compute seconds per tier, backhaul seconds.
        payload_bits, payload2_bits: ``(P,)`` bits on the first and second hop.
        tx_s: expected seconds on the first link; ``latency_s`` the sum of all parts.
        energy_j: device energy; failure_prob: probability the payload is lost on a hop.
        accuracy: per plan and state (NaN: unknown); feasible: meets every constraint.
        cost: the objective (``inf`` where infeasible); best: ``(S,)`` index of the best
            plan per state, ``-1`` where no plan is feasible.
    """

    plans: list[Plan]
    snr_db: np.ndarray
    weights: np.ndarray
    device_s: np.ndarray
    edge_s: np.ndarray
    cloud_s: np.ndarray
    tx2_s: np.ndarray
    payload_bits: np.ndarray
    payload2_bits: np.ndarray
    tx_s: np.ndarray
    latency_s: np.ndarray
    energy_j: np.ndarray
    failure_prob: np.ndarray
    accuracy: np.ndarray
    feasible: np.ndarray
    cost: np.ndarray
    best: np.ndarray

    def check_state(self, state: object) -> int:
        """``state`` if it indexes a channel state (an int in ``[0, S)``), else ``TypeError``
        or ``ValueError`` saying which are valid.

        Example:
            >>> SearchResult.__new__(SearchResult).check_state("1")
            Traceback (most recent call last):
            ...
            TypeError: state must be an int index of a channel state; got '1'
        """
        if isinstance(state, bool) or not isinstance(state, int | np.integer):
            raise TypeError(f"state must be an int index of a channel state; got {state!r}")
        if not 0 <= state < self.snr_db.size:
            raise ValueError(
                f"state must be in [0, {self.snr_db.size}) (one per SNR of the search: "
                f"{self.snr_db.tolist()} dB); got {state}"
            )
        return int(state)

    def best_plan(self, state: int = 0) -> Plan | None:
        """The best plan in ``state`` (``None`` when none is feasible)."""
        index = int(self.best[self.check_state(state)])
        return None if index < 0 else self.plans[index]

    def record(self, plan: int, state: int) -> dict[str, Any]:
        """One plan in one state as a JSON-ready dict (NaN and inf become ``None``)."""
        row: dict[str, Any] = {"snr_db": float(self.snr_db[state]), "index": plan}
        row.update(self.plans[plan].as_dict())
        row["plan"] = self.plans[plan].label
        row["payload_bits"] = int(self.payload_bits[plan])
        row["payload2_bits"] = int(self.payload2_bits[plan])
        for name in ("latency_s", "tx_s", "energy_j", "failure_prob", "accuracy", "cost"):
            row[name] = _number(getattr(self, name)[plan, state])
        for name in ("device_s", "edge_s", "cloud_s", "tx2_s"):
            row[name] = _number(getattr(self, name)[plan])
        row["feasible"] = bool(self.feasible[plan, state])
        return row

    def records(self) -> list[dict[str, Any]]:
        """Every plan in every state, plan-major."""
        return [self.record(p, s) for p in range(len(self.plans)) for s in range(self.snr_db.size)]

    def best_records(self) -> list[dict[str, Any]]:
        """The best plan of each state (``{"snr_db": ..., "plan": None}`` where none fits)."""
        return [
            self.record(int(b), s) if b >= 0 else {"snr_db": float(self.snr_db[s]), "plan": None}
            for s, b in enumerate(self.best)
        ]

    def policy(self) -> list[dict[str, Any]]:
        """The SNR -> plan table: states sorted by SNR, neighbours with the same plan merged.

        Each row: ``snr_db_min``, ``snr_db_max`` (the states' range), ``index`` and ``plan``.
        """
        rows: list[dict[str, Any]] = []
        for s in np.argsort(self.snr_db, kind="stable"):
            index = int(self.best[s])
            snr = float(self.snr_db[s])
            if rows and rows[-1]["index"] == index:
                rows[-1]["snr_db_max"] = snr
                continue
            plan = None if index < 0 else self.plans[index].label
            rows.append({"snr_db_min": snr, "snr_db_max": snr, "index": index, "plan": plan})
        return rows

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Per plan, ``values`` ``(plans, states)`` averaged over the states of positive
        probability: an infinite value in a state of probability 0 stays out (``inf * 0`` would
        make the mean NaN)."""
        live = self.weights > 0
        return values[:, live] @ self.weights[live]

    def expected(self) -> dict[str, Any]:
        """Expected values under the SNR distribution (``weights``).

        ``policy``: adapting the plan to each state (the best per state), with
        ``infeasible_prob`` the probability of a state where no plan fits (left out of the
        means). ``fixed``: the one plan of least expected cost among plans feasible in every
        state with positive probability (``None`` if there is none).
        """
        ok = self.best >= 0
        w = self.weights * ok
        mass = w.sum()
        policy: dict[str, Any] = {"infeasible_prob": _number(self.weights[~ok].sum())}
        rows, cols = self.best[ok], np.flatnonzero(ok)
        for name in ("latency_s", "energy_j", "failure_prob", "accuracy", "cost"):
            value = getattr(self, name)[rows, cols] @ w[ok] / mass if mass > 0 else math.nan
            policy[name] = _number(value)
        live = self.weights > 0
        expected_cost = np.where(self.feasible[:, live].all(axis=1), self.mean(self.cost), np.inf)
        fixed = None
        if np.isfinite(expected_cost).any():
            index = int(np.argmin(expected_cost))
            fixed = {"index": index, "plan": self.plans[index].label}
            for name in ("latency_s", "energy_j", "failure_prob", "accuracy", "cost"):
                fixed[name] = _number(self.mean(getattr(self, name)[index : index + 1])[0])
        return {"policy": policy, "fixed": fixed}

    def accuracy_known(self, state: int | None = None) -> bool:
        """Whether some plan has an accuracy (expected, or in ``state``): then
        :meth:`pareto` weighs it."""
        acc = self.mean(self.accuracy) if state is None else self.accuracy[:, state]
        return bool(np.isfinite(acc).any())

    def pareto(self, state: int | None = None, *, with_accuracy: bool = True) -> np.ndarray:
        """Plan indices on the Pareto front of (latency, device energy, -accuracy).

        In one ``state``, among the plans feasible there; with ``state=None``, of the expected
        values, among plans feasible in every state with positive probability. Accuracy counts
        only when some plan has one (unknown accuracy is then the worst) and ``with_accuracy``
        (``False``: the front of latency and energy alone, as a plot of the two shows it).
        """
        if state is not None:
            state = self.check_state(state)
        if state is None:
            ok = self.feasible[:, self.weights > 0].all(axis=1)
            lat, energy = self.mean(self.latency_s), self.mean(self.energy_j)
            acc = self.mean(self.accuracy)
        else:
            ok = self.feasible[:, state]
            lat, energy = self.latency_s[:, state], self.energy_j[:, state]
            acc = self.accuracy[:, state]
        columns = [lat, energy]
        if with_accuracy and self.accuracy_known(state):
            columns.append(np.where(np.isfinite(acc), -acc, np.finfo(float).max))
        points = np.stack(columns, axis=1)
        points[~ok] = np.inf
        return pareto_front(points)


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
