"""Recipe ``gaussian``: JSCC of i.i.d. Gaussian vectors over AWGN or Rayleigh fading, vs OPTA.

A :class:`~aiflow_comm.semantic.VectorJSCC` learns to send vectors of ``--dim`` i.i.d.
``N(0, 1)`` values (drawn afresh every step, seeded) through the channel with the MSE loss;
its signal-to-distortion ratio (:func:`~aiflow_comm.semantic.sdr_db`) on a fresh test set is
compared with Shannon's bound for this source (OPTA).

Bandwidth ratio. ``--ratio R`` counts *real* channel dimensions per real source value (two per
complex channel use), the convention of the JSCC literature on Gaussian sources: ``R = 1`` sends
``dim`` real values in ``dim / 2`` complex symbols, the point where uncoded (linear) transmission
with MMSE estimation is optimal. The library's ratio (complex uses per real value, DESIGN.md) is
``R / 2``: the model is ``VectorJSCC(dim, ratio=R / 2)``, and every row reports the ``R``
achieved after rounding ``R * dim / 2`` to whole symbols.

Bound. Rate-distortion of a unit-variance Gaussian source, ``1/2 log2(1 / D)`` bits per value,
cannot exceed ``R / 2`` complex channel uses times capacity ``C`` (bits per use), so
``SDR <= 10 log10(2^(R C))`` dB. Over AWGN, ``C = log2(1 + snr)`` gives ``opta_db =
R * 10 log10(1 + snr)``. Over Rayleigh fading (``h ~ CN(0, 1)``, a new gain per symbol, perfect
CSI at the receiver, MMSE equalization) ``C`` is the ergodic capacity
:func:`~aiflow_comm.channel.theory.ergodic_capacity_rayleigh`: an upper bound (``bound`` =
``"ergodic"``), not one that a finite-length scheme reaches.

Model. ``--hidden 0`` (default) is a linear encoder and decoder (one affine layer each), the
optimal form at ``R = 1``; ``--hidden H`` gives the library's MLPs (two hidden layers of width
``H``; use ``H >= 2 * dim``). The transmitter normalizes each vector's power, so the receiver
never learns the vector's norm: a linear scheme then loses ``snr / (2 dim (1 + snr))`` of
distortion, ``SDR = -10 log10(1 / (1 + snr) + snr / (2 dim (1 + snr)))``, 0.21 dB under OPTA at
20 dB for ``dim = 1024`` (the default) and 2.5 dB for ``dim = 64``. ``--adaptive`` trains one
model over the SNR range (each example's SNR uniform in ``--train-snr-db``) instead of one per
SNR; with ``--hidden H`` it is SNR-adaptive (SNR attention), while the linear model needs no
SNR input (the MMSE equalizer's scaling is the adaptation a linear scheme needs).

The SDR's 95% Monte-Carlo half-width ``sdr_ci_db`` comes from the per-vector signal and
distortion energies (delta method for the ratio of their sums).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aiflow_comm.recipes.runner import (
    check_positive,
    check_snr_values,
    torch_threads,
    tqdm_disable,
)
from aiflow_comm.semantic.metrics import one_plus_snr_db

__all__ = [
    "CHANNELS",
    "add_arguments",
    "format_table",
    "mc_interval_db",
    "opta_db",
    "plot",
    "run",
]

CHANNELS = ("awgn", "rayleigh")

_DEFAULT_SNR_DB = (0.0, 10.0, 20.0)
_SMOKE_DIM = 64
_SMOKE_STEPS = 30
_SMOKE_TEST_VECTORS = 512
_EVAL_CHUNK = 1024
_Z95 = 1.959963984540054


def opta_db(channel: str, ratio: float, snr_db: float) -> float:
    """Shannon's bound on the SDR (dB) of a unit-variance i.i.d. Gaussian source.

    ``ratio`` is ``R``, real channel dimensions per source value (``R / 2`` complex uses).
    ``SDR <= 10 log10(2^(R C))`` with ``C`` in bits per complex use: ``log2(1 + snr)`` over
    ``"awgn"`` (so ``R * 10 log10(1 + snr)``), the ergodic capacity with receiver CSI over
    ``"rayleigh"`` (per-symbol fading).

    >>> round(opta_db("awgn", 1.0, 10.0), 4), round(opta_db("rayleigh", 1.0, 0.0), 4)
    (10.4139, 2.5899)
    """
    from aiflow_comm.channel.theory import ergodic_capacity_rayleigh

    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}; got {channel!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio > 0:
        raise ValueError(f"ratio must be a number > 0 (real channel dims per value); got {ratio!r}")
    if channel == "awgn":
        return ratio * one_plus_snr_db(snr_db)
    capacity = float(ergodic_capacity_rayleigh(snr_db))  # bits per complex channel use
    return ratio * capacity * 10.0 * math.log10(2.0)


def mc_interval_db(signal: torch.Tensor, distortion: torch.Tensor) -> float:
    """95% Monte-Carlo half-width (dB) of ``10 log10(sum signal / sum distortion)``.

    ``signal`` and ``distortion`` hold one energy per test vector (``sum x^2`` and ``sum (x -
    x_hat)^2``). The ratio ``q = sum distortion / sum signal`` has standard error ``std(d_i - q
    s_i) / (sqrt(n) mean(s))`` (delta method); the half-width is ``1.96 * 10 / ln(10) *
    se / q``.

    >>> s = torch.full((4,), 2.0)
    >>> round(mc_interval_db(s, torch.tensor([0.1, 0.3, 0.1, 0.3])), 4)
    2.4572
    """
    if signal.shape != distortion.shape or signal.dim() != 1 or len(signal) < 2:
        raise ValueError(
            f"signal and distortion must be 1-d with the same length >= 2; got "
            f"{tuple(signal.shape)} and {tuple(distortion.shape)}"
        )
    s, d = signal.double(), distortion.double()
    q = d.sum() / s.sum()
    se = (d - q * s).std() / (math.sqrt(len(s)) * s.mean())
    return float(_Z95 * 10.0 / math.log(10.0) * se / q)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's own options (the runner adds ``--seed``, ``--json``, ``--out``...)."""
    parser.add_argument("--channel", choices=CHANNELS, default="awgn",
                        help="awgn, or rayleigh: flat fading, new CN(0,1) gain per symbol, "
                        "perfect CSI, MMSE equalizer (default awgn)")  # fmt: skip
    parser.add_argument(
        "--ratio", type=float, default=1.0, metavar="R",
        help="bandwidth ratio R: REAL channel dimensions per real source value (R=1: one "
        "complex symbol per two values; the library's ratio is R/2) (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--snr-db", nargs="+", type=float, default=None, metavar="S",
        help="SNRs (Es/N0 per complex symbol, dB): one model trained and evaluated at each "
        f"(default {' '.join(f'{s:g}' for s in _DEFAULT_SNR_DB)})",
    )  # fmt: skip
    parser.add_argument(
        "--adaptive", action="store_true",
        help="train one model over --train-snr-db (SNR uniform per example) and evaluate it "
        "at every --snr-db, instead of one model per SNR",
    )  # fmt: skip
    parser.add_argument(
        "--train-snr-db", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
        help="--adaptive training range (default: the smallest and largest --snr-db)",
    )  # fmt: skip
    parser.add_argument(
        "--dim", type=int, default=1024,
        help="source values per vector (default 1024: the per-vector power normalization "
        "hides each vector's norm, costing about 1/(2 dim) of distortion)",
    )  # fmt: skip
    parser.add_argument(
        "--hidden", type=int, default=0,
        help="0: linear encoder and decoder (default, optimal at R=1); H: MLPs with two "
        "hidden layers of width H (then --adaptive uses SNR attention)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=1000,
                        help="training steps per model (default 1000)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3,
                        help="Adam's peak learning rate, one-cycle schedule: 5%% warm-up, "
                        "cosine decay (default 3e-3)")  # fmt: skip
    parser.add_argument("--test-vectors", type=int, default=8192,
                        help="fresh test vectors per evaluation (default 8192)")  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads during the run (default 1: faster on a shared CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--smoke", action="store_true",
        help=f"dim <= {_SMOKE_DIM}, {_SMOKE_STEPS} steps, {_SMOKE_TEST_VECTORS} test vectors "
        "(for tests)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train one model per SNR (or one over the range with ``--adaptive``); evaluate each.

    Returns ``{"recipe": "gaussian", "options": ..., "results": rows, "seconds": ...}``, one
    row per (setting, SNR) with ``setting`` (``"per-snr"`` or ``"adaptive"``), ``channel``,
    ``ratio`` (achieved ``R``), ``snr_db``, ``sdr_db``, ``sdr_ci_db`` (95% half-width),
    ``opta_db``, ``gap_db = opta_db - sdr_db``, ``bound`` (``"opta"`` or ``"ergodic"``),
    ``train_snr_db`` and ``channel_uses`` (complex symbols per vector).
    """
    options = _options(args)
    with torch_threads(options["threads"]):
        return _run(options, tqdm_disable(args))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options and resolve the smoke and default values; raise ``ValueError``."""
    check_positive(args, "dim", "steps", "batch_size", "test_vectors", "threads")
    if args.test_vectors < 2:  # the SDR's confidence interval needs two
        raise ValueError(f"--test-vectors must be >= 2; got {args.test_vectors}")
    if args.hidden < 0:
        raise ValueError(f"--hidden must be >= 0 (0: linear model); got {args.hidden}")
    if not (math.isfinite(args.ratio) and args.ratio > 0):
        raise ValueError(
            f"--ratio must be a finite number > 0 (real channel dimensions per source value); "
            f"got {args.ratio}"
        )
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be a finite number > 0; got {args.lr}")
    snrs = list(_DEFAULT_SNR_DB if args.snr_db is None else dict.fromkeys(args.snr_db))
    if not snrs:
        raise ValueError("--snr-db needs at least one SNR (dB)")
    check_snr_values("--snr-db", snrs)
    low, high = (min(snrs), max(snrs)) if args.train_snr_db is None else args.train_snr_db
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"--train-snr-db needs finite LOW <= HIGH; got {low} {high}")
    dim = min(args.dim, _SMOKE_DIM) if args.smoke else args.dim
    return {
        "channel": args.channel,
        "ratio": args.ratio,
        "snr_db": snrs,
        "adaptive": args.adaptive,
        "train_snr_db": [low, high] if args.adaptive else None,
        "dim": dim,
        "hidden": args.hidden,
        "steps": min(args.steps, _SMOKE_STEPS) if args.smoke else args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "test_vectors": (
            min(args.test_vectors, _SMOKE_TEST_VECTORS) if args.smoke else args.test_vectors
        ),
        "threads": args.threads,
        "smoke": args.smoke,
        "seed": args.seed,
        "device": args.device,
    }


def _channel(name: str, seed: int) -> nn.Module:
    """The recipe's channel: AWGN, or Rayleigh fading with a new gain per symbol."""
    from aiflow_comm.channel import AWGN, RayleighFading

    if name == "awgn":
        return AWGN(generator=seed)
    return RayleighFading("symbol", generator=seed)


def _model(o: dict[str, Any], seed: int) -> nn.Module:
    """A fresh ``VectorJSCC(dim, R / 2)``, weights drawn from ``seed``, MMSE equalizer."""
    from aiflow_comm.semantic import VectorJSCC

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VectorJSCC(
            o["dim"],
            o["ratio"] / 2,
            _channel(o["channel"], seed + 1),
            snr_adaptive=o["adaptive"] and o["hidden"] > 0,
            hidden=o["hidden"],
            equalizer="mmse",
        )
    return model.to(o["device"])


def _train(
    model: nn.Module,
    o: dict[str, Any],
    snr_db: tuple[float, float],
    seed: int,
    bar: Any,
) -> float:
    """Adam (one-cycle schedule) on the MSE of fresh N(0, 1) vectors; the last loss in dB.

    Each example's SNR is drawn uniformly in ``snr_db = (low, high)`` (a single value when
    ``low == high``).
    """
    device = torch.device(o["device"])
    generator = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=o["lr"])
    # A warm-up of 5% of the steps, but never one ending at step 0: at 20 steps torch's
    # OneCycleLR divided by the warm-up's zero length.
    steps = o["steps"]
    warmup = max(0.05, 2 / steps) if steps >= 4 else 0.05
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=o["lr"], total_steps=steps, pct_start=warmup
    )
    low, high = snr_db
    batch = o["batch_size"]
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(o["steps"]):
        x = torch.randn(batch, o["dim"], generator=generator, device=device)
        if low == high:
            snr: float | torch.Tensor = low
        else:
            snr = low + (high - low) * torch.rand(batch, generator=generator, device=device)
        loss = nn.functional.mse_loss(model(x, snr), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.update()
    model.eval()
    return -10.0 * math.log10(float(loss.detach()))


def _test_set(o: dict[str, Any]) -> torch.Tensor:
    """The fresh test vectors, the same for every model of the run."""
    device = torch.device(o["device"])
    generator = torch.Generator(device=device).manual_seed(o["seed"] + 9973)
    return torch.randn(o["test_vectors"], o["dim"], generator=generator, device=device)


def _evaluate(model: nn.Module, o: dict[str, Any], x: torch.Tensor, index: int) -> dict:
    """SDR of ``model`` on ``x`` at the ``index``-th SNR, with its Monte-Carlo interval.

    The channel is a fresh one seeded by the SNR's index: every model meets the same draws.
    """
    from aiflow_comm.semantic import sdr_db

    snr = o["snr_db"][index]
    model.channel = _channel(o["channel"], o["seed"] + 7919 + index)
    with torch.no_grad():
        estimate = torch.cat([model(chunk, snr) for chunk in x.split(_EVAL_CHUNK)])
    signal = x.double().pow(2).sum(dim=1)
    distortion = (x.double() - estimate.double()).pow(2).sum(dim=1)
    sdr = float(sdr_db(x, estimate))
    bound = opta_db(o["channel"], 2 * model.ratio, snr)
    return {
        "snr_db": snr,
        "sdr_db": round(sdr, 4),
        "sdr_ci_db": round(mc_interval_db(signal, distortion), 4),
        "opta_db": round(bound, 4),
        "gap_db": round(bound - sdr, 4),
        "bound": "opta" if o["channel"] == "awgn" else "ergodic",
    }


def _run(o: dict[str, Any], disable: bool | None) -> dict[str, Any]:
    from tqdm import tqdm

    start = time.perf_counter()
    seed = o["seed"]
    if o["adaptive"]:
        plans = [("adaptive", tuple(o["train_snr_db"]), list(range(len(o["snr_db"]))))]
    else:
        plans = [("per-snr", (s, s), [i]) for i, s in enumerate(o["snr_db"])]
    x_test = _test_set(o)
    bar = tqdm(total=len(plans) * o["steps"], desc="gaussian", unit="step", disable=disable)
    rows = []
    for index, (setting, train_snr, evaluated) in enumerate(plans):
        bar.set_postfix_str(f"{setting}, train SNR {train_snr[0]:g}..{train_snr[1]:g} dB")
        model = _model(o, seed + 101 * index)
        final_loss_db = _train(model, o, train_snr, seed + 101 * index + 2, bar)
        for i in evaluated:
            row = {
                "setting": setting,
                "channel": o["channel"],
                "ratio": 2 * model.ratio,
                "train_snr_db": list(train_snr),
                "channel_uses": model.channel_uses(x_test),
                "train_sdr_db": round(final_loss_db, 4),
            }
            row.update(_evaluate(model, o, x_test, i))
            rows.append(row)
    bar.close()
    return {
        "recipe": "gaussian",
        "options": o,
        "results": rows,
        "seconds": round(time.perf_counter() - start, 1),
    }


def format_table(result: dict[str, Any]) -> str:
    """SDR, its 95% interval, the bound and the gap per (setting, SNR)."""
    o = result["options"]
    rows = result["results"]
    ratio = rows[0]["ratio"] if rows else o["ratio"]
    channel = "Rayleigh fading (per symbol, CSIR, MMSE)" if o["channel"] == "rayleigh" else "AWGN"
    model = "linear" if o["hidden"] == 0 else f"MLP (hidden {o['hidden']})"
    bound = (
        "ergodic-capacity bound R*C*10log10(2)"
        if o["channel"] == "rayleigh"
        else "OPTA R*10log10(1+SNR)"
    )
    lines = [
        f"gaussian: N(0,1) vectors of {o['dim']} values over {channel}, R = {ratio:g} real "
        f"channel dims per value; {model} VectorJSCC, {o['steps']} steps each",
        f"bound: {bound}; gap = bound - SDR; +- is the 95% Monte-Carlo half-width over "
        f"{o['test_vectors']} test vectors ({result.get('seconds', 0):g} s)",
    ]
    header = f"{'setting':<9} {'SNR dB':>7} {'SDR dB':>8} {'+-':>6} {'bound dB':>8} {'gap dB':>7}"
    lines += [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['setting']:<9} {row['snr_db']:>7g} {row['sdr_db']:>8.3f} "
            f"{row['sdr_ci_db']:>6.3f} {row['opta_db']:>8.3f} {row['gap_db']:>7.3f}"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """SDR against SNR (with 95% intervals) per setting, and the bound as a curve."""
    from aiflow_comm.plotting import plot_sdr_vs_snr

    o = result["options"]
    rows = result["results"]
    ratio = rows[0]["ratio"] if rows else o["ratio"]
    low, high = min(o["snr_db"]), max(o["snr_db"])
    grid = [low + (high - low) * i / 100 for i in range(101)] if high > low else [low]
    bound = (grid, [opta_db(o["channel"], ratio, s) for s in grid])
    label = "ergodic-capacity bound" if o["channel"] == "rayleigh" else "OPTA"
    title = f"Gaussian source, {o['channel']}, R = {ratio:g}, dim {o['dim']}"
    return plot_sdr_vs_snr(rows, path, title, bound=bound, bound_label=label)
