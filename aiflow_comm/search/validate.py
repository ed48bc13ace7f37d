"""``validate_plan_choice``: run every plan's head and tail here and check the cost model's pick."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from aiflow_comm.codec import QuantizedTensor, quantize
from aiflow_comm.search.link import LinkModel
from aiflow_comm.search.payload import RAW_BITS, Codec
from aiflow_comm.search.planner import search_plans
from aiflow_comm.search.plans import Plan
from aiflow_comm.search.profiling import (
    INPUT_CUT,
    ModelProfile,
    model_steps,
    profile_model,
    threads,
)
from aiflow_comm.search.tiers import Tier
from aiflow_comm.split import split_model
from aiflow_comm.split.points import ExampleInput, evaluating, example_inputs

__all__ = ["ValidationReport", "calibrated_tier", "validate_plan_choice"]


def calibrated_tier(tier: Tier, profile: ModelProfile) -> Tier:
    """``tier`` with a ``time_scale`` that turns this machine's measured times into its own.

    This machine runs ``profile.total_flops / profile.total_s`` FLOP/s on the model; a tier
    of ``flops_per_s`` gets ``time_scale = that / flops_per_s``. A tier that already has a
    ``time_scale`` is returned unchanged.
    """
    if tier.time_scale is not None:
        return tier
    if not profile.measured or not profile.total_s:
        raise ValueError("calibration needs a measured profile: profile_model(..., measure=True)")
    here = profile.total_flops / profile.total_s
    return dataclasses.replace(tier, time_scale=here / tier.flops_per_s)


@dataclass
class ValidationReport:
    """Predicted against executed latency for every one-cut plan and state.

    Attributes:
        plans: the plans (device only first, then each cut and codec).
        snr_db: the channel states.
        predicted_s: ``(P, S)`` latency from the cost model (:func:`search_plans`).
        executed_s: ``(P, S)`` executed latency: measured head and tail medians here, scaled by
            the tiers' ``time_scale``, plus the link's expected time for the bytes really sent.
        sent_bits, predicted_bits: ``(P,)`` bits the codec produced and the cost model's bits.
        chosen: ``(S,)`` the cost model's plan; fastest: ``(S,)`` the fastest executed plan.
        rtol: tolerance of :attr:`agree`.
    """

    plans: list[Plan]
    snr_db: np.ndarray
    predicted_s: np.ndarray
    executed_s: np.ndarray
    sent_bits: np.ndarray
    predicted_bits: np.ndarray
    chosen: np.ndarray
    fastest: np.ndarray
    rtol: float

    @property
    def same_plan(self) -> np.ndarray:
        """``(S,)``: the cost model chose exactly the fastest executed plan."""
        return self.chosen == self.fastest

    @property
    def agree(self) -> np.ndarray:
        """``(S,)``: the chosen plan, executed, is within ``rtol`` of the fastest executed one.

        Plans the cost model cannot tell apart (a cut before or after a ReLU: same payload,
        near-zero compute) differ by timing noise only; ``rtol`` keeps them from counting as
        disagreements.
        """
        s = np.arange(self.snr_db.size)
        return (
            self.executed_s[self.chosen, s] <= (1.0 + self.rtol) * self.executed_s[self.fastest, s]
        )

    def rows(self) -> list[dict[str, Any]]:
        """Per state: the chosen and fastest plans with their predicted and executed latency."""
        out = []
        for s, (c, f) in enumerate(zip(self.chosen, self.fastest, strict=True)):
            out.append({
                "snr_db": float(self.snr_db[s]),
                "chosen": self.plans[c].label,
                "fastest": self.plans[f].label,
                "chosen_predicted_s": float(self.predicted_s[c, s]),
                "chosen_executed_s": float(self.executed_s[c, s]),
                "fastest_executed_s": float(self.executed_s[f, s]),
                "agree": bool(self.agree[s]),
            })  # fmt: skip
        return out


def validate_plan_choice(
    model: nn.Module,
    example_input: ExampleInput,
    device: Tier,
    edge: Tier,
    link: LinkModel,
    codecs: Sequence[Codec] = (Codec(32),),
    *,
    snr_db: object = None,
    repeats: int = 7,
    rtol: float = 0.05,
    num_threads: int | None = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> ValidationReport:
    """Check end to end that the plan the cost model picks is the fastest one when executed.

    1. Build every one-cut plan for real: ``split_model`` at each cut, the head's features
       encoded by the codec (``quantize(...).to_bytes()``, or raw float32) and decoded.
    2. Time, in ``repeats`` interleaved rounds after a warm-up (so that a machine slowing
       down or speeding up affects every measurement alike): one profiling pass of the model's
       steps (:func:`model_steps`), every head, and every tail on its decoded features.
       Medians over the rounds.
    3. Cost model: the profile with the median step times, the tiers calibrated to this
       machine (:func:`calibrated_tier`), :func:`search_plans` over one cut and device only.
    4. Executed latency = ``head * device.time_scale + link.tx_s(bits sent)
       + tail * edge.time_scale``: measured runs, the link's delay simulated from the same
       :class:`LinkModel` (its expected time). Per state, compare the cost model's choice
       with the fastest executed plan.

    Codec time (quantize and pack) is left out on both sides, as the cost model leaves it
    out. Projection codecs are not executable here (they need trained modules). Timing runs
    with ``num_threads`` torch threads and ``clock``: on a shared, loaded machine use
    ``num_threads=1`` and ``clock=time.process_time`` (CPU time), since wall-clock runs of a
    few milliseconds there include the time other processes held the core. For a meaningful
    check pick tiers and a link whose best plan beats the next distinct one by more than the
    timing noise (a slow device, a fast edge, a link whose rate makes the payload matter).
    """
    for codec in codecs:
        if codec.ratio != 1.0:
            raise ValueError(f"codec {codec.label}: projections need trained modules to execute")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    inputs = example_inputs(example_input)
    profile = profile_model(model, inputs)
    steps = model_steps(model, num_inputs=len(inputs))
    heads: dict[str, Callable[[], Any]] = {}
    tails: dict[tuple[str, Codec], tuple[Callable[[], Any], int]] = {}
    with evaluating(model), threads(num_threads):
        for cut in profile.cuts:
            if cut.name == INPUT_CUT:
                features: Any = inputs
                tail: Callable[[Any], Any] = lambda f: model(*f)  # noqa: E731
            else:
                split = split_model(model, cut.name, inputs)
                heads[cut.name] = lambda split=split: split.head(*inputs)
                features, tail = split.head(*inputs), split.tail
            for codec in codecs:
                received, bits = _send(features, codec)
                tails[(cut.name, codec)] = (lambda t=tail, r=received: t(r)), bits
        heads["<device>"] = lambda: model(*inputs)
        runs: list[Callable[[], Any]] = [*heads.values(), *(f for f, _ in tails.values())]
        rounds = [_timed_round(steps, inputs, runs, clock) for _ in range(repeats + 1)][1:]
    step_s = np.median(np.stack([r[0] for r in rounds]), axis=0)
    run_s = dict(zip(range(len(runs)), np.median(np.stack([r[1] for r in rounds]), axis=0),
                     strict=True))  # fmt: skip
    head_s = dict(zip(heads, (run_s[i] for i in range(len(heads))), strict=True))
    tail_s = {key: run_s[len(heads) + i] for i, key in enumerate(tails)}

    profile = profile.with_seconds(step_s)
    device, edge = calibrated_tier(device, profile), calibrated_tier(edge, profile)
    result = search_plans(profile, device, edge, link, codecs, snr_db=snr_db)
    state = link.link_state(result.snr_db)
    executed = np.empty_like(result.latency_s)
    sent = np.zeros(len(result.plans))
    for p, plan in enumerate(result.plans):
        if plan.cut is None:
            executed[p] = device.compute_s(0.0, head_s["<device>"])
            continue
        head = 0.0 if plan.cut == INPUT_CUT else head_s[plan.cut]
        sent[p] = tails[(plan.cut, plan.codec)][1]
        tail_here = tail_s[(plan.cut, plan.codec)]
        executed[p] = (
            device.compute_s(0.0, head) + state.tx_s(sent[p]) + edge.compute_s(0.0, tail_here)
        )
    fastest = np.argmin(executed, axis=0)
    return ValidationReport(
        result.plans, result.snr_db, result.latency_s, executed, sent,
        result.payload_bits.astype(float), result.best, fastest, rtol,
    )  # fmt: skip


def _timed_round(
    steps: Any,
    inputs: tuple[torch.Tensor, ...],
    runs: list[Callable[[], Any]],
    clock: Callable[[], float],
) -> tuple[np.ndarray, np.ndarray]:
    """One round: a profiling pass of the steps, then each run once, timed."""
    step_s = steps.seconds(inputs, 1, clock)
    times = np.empty(len(runs))
    for i, run in enumerate(runs):
        start = clock()
        run()
        times[i] = clock() - start
    return step_s, times


def _send(features: Any, codec: Codec) -> tuple[Any, int]:
    """Every crossing tensor through the codec for real: ``(decoded features, bits sent)``.

    Tensors that are not floating point (token ids, masks) cross unchanged at their own width,
    as a split model's link passes them and :func:`~aiflow_comm.search.payload_bits` prices them.
    """
    if isinstance(features, torch.Tensor):
        if not features.is_floating_point():
            return features, 8 * features.element_size() * features.numel()
        if codec.bits == RAW_BITS:
            return features.float(), RAW_BITS * features.numel()
        message = quantize(features, codec.bits, codec.group_size,
                           symmetric=codec.symmetric).to_bytes()  # fmt: skip
        decoded = QuantizedTensor.from_bytes(message).dequantize().to(features.dtype)
        return decoded, 8 * len(message)
    parts = [_send(f, codec) for f in features]
    return tuple(f for f, _ in parts), sum(b for _, b in parts)
