"""Figures written to a file with matplotlib: BER curves, recipe results against SNR (SDR,
PSNR, accuracy) and split-point searches."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from aiflow_comm.channel.ber import BerPoint

__all__ = [
    "check_plot_path",
    "plot_accuracy_vs_snr",
    "plot_ber",
    "plot_psnr_vs_snr",
    "plot_sdr_vs_snr",
    "plot_search",
]


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "plotting needs matplotlib: pip install 'aiflow-comm[examples]'"
        ) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: str | Path) -> Path:
    """The file a ``plot_*`` function writes for ``path`` (``.png`` added when it has no
    suffix), its folder created: ``ValueError`` naming ``path`` when matplotlib cannot write
    that format or the folder cannot be created or written to. Call it before long work, so a
    bad path fails before the work instead of after it.

    >>> check_plot_path("figure.xyz")
    Traceback (most recent call last):
    ...
    ValueError: cannot plot to 'figure.xyz': matplotlib has no format 'xyz' (use png, pdf, svg...)
    """
    _pyplot()  # matplotlib present, or a clear ImportError
    from matplotlib.backend_bases import FigureCanvasBase

    target = Path(path)
    if not target.suffix:  # matplotlib would write path + ".png"
        target = target.with_suffix(".png")
    fmt = target.suffix[1:].lower()
    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(
            f"cannot plot to {str(path)!r}: matplotlib has no format {fmt!r} (use png, pdf, svg...)"
        )
    if fmt == "pgf" and shutil.which(_pyplot().rcParams["pgf.texsystem"]) is None:
        raise ValueError(
            f"cannot plot to {str(path)!r}: the pgf format needs "
            f"{_pyplot().rcParams['pgf.texsystem']}, which is not installed"
        )
    if target.is_dir():
        raise ValueError(f"cannot plot to {str(path)!r}: {str(target)!r} is a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot plot to {str(path)!r}: {error}") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot plot to {str(path)!r}: its folder is not writable")
    return target


def _save(figure, path: str | Path, suptitle: str = "") -> Path:
    """Lay out ``figure`` (under ``suptitle`` if given), write it to ``path``, close it;
    ``ValueError`` from :func:`check_plot_path` for a path it cannot write."""
    if suptitle:
        figure.suptitle(suptitle)
    figure.tight_layout()
    try:
        path = check_plot_path(path)
    except ValueError:
        _pyplot().close(figure)
        raise
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)
    return path


def plot_ber(points: Sequence[BerPoint], path: str | Path, title: str = "") -> Path:
    """Draw BER (and BLER when present) against Eb/N0 on a log scale, closed forms dashed.

    Points with no errors are left out of the log-scale curves (with none left, the axes say
    so). Returns the written path.

    >>> import tempfile
    >>> from aiflow_comm.channel.ber import BerPoint
    >>> points = [BerPoint(0.0, 0.08, 80, 1000, None, None, None, 0.0786),
    ...           BerPoint(4.0, 0.01, 10, 1000, None, None, None, 0.0125)]
    >>> plot_ber(points, Path(tempfile.mkdtemp()) / "ber").name  # no suffix: .png added
    'ber.png'
    """
    if not points:
        raise ValueError("points must hold at least one BerPoint")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.2))
    ebno = [p.ebno_db for p in points]

    def curve(values: list[float | None], label: str, style: str) -> bool:
        kept = [(e, v) for e, v in zip(ebno, values, strict=True) if v is not None and v > 0]
        if kept:
            axes.semilogy(*zip(*kept, strict=True), style, label=label)
        return bool(kept)

    drawn = [
        curve([p.ber for p in points], "BER (simulated)", "o-"),
        curve([p.theory_ber for p in points], "BER (closed form)", "k--"),
        curve([p.bler for p in points], "BLER (simulated)", "s-"),
    ]
    axes.set_xlabel("Eb/N0 (dB)")
    axes.set_ylabel("error rate")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if any(drawn):
        axes.legend()
    else:  # nothing to draw on a log scale: say why, over the Eb/N0 range simulated
        axes.set_xlim(min(ebno) - 1, max(ebno) + 1)
        axes.text(0.5, 0.5, "no errors at any Eb/N0", transform=axes.transAxes,
                  ha="center", va="center")  # fmt: skip
    return _save(figure, path)


def plot_accuracy_vs_snr(
    rows: Sequence[dict],
    path: str | Path,
    title: str = "",
    *,
    panel: str = "bits",
    color: str = "ratio",
    style: str = "setting",
) -> Path:
    """Draw accuracy against SNR: one panel per value of ``rows[i][panel]``, a curve per
    (``color``, ``style``) pair of values, its points sorted by ``snr_db``.

    ``rows`` are dicts with ``snr_db``, ``accuracy`` and the three named keys (a recipe's
    ``results``). Returns the written path.

    >>> import tempfile
    >>> rows = [{"setting": "joint", "bits": 4, "ratio": 1.0, "snr_db": s, "accuracy": a}
    ...         for s, a in ((0.0, 0.94), (20.0, 0.99))]
    >>> plot_accuracy_vs_snr(rows, Path(tempfile.mkdtemp()) / "digits.png").name
    'digits.png'
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    plt = _pyplot()
    panels = list(dict.fromkeys(row[panel] for row in rows))
    colors = list(dict.fromkeys(row[color] for row in rows))
    styles = list(dict.fromkeys(row[style] for row in rows))
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True, squeeze=False
    )
    for ax, value in zip(axes[0], panels, strict=True):
        for c, color_value in enumerate(colors):
            for s, style_value in enumerate(styles):
                curve = sorted(
                    (row["snr_db"], row["accuracy"])
                    for row in rows
                    if row[panel] == value and row[color] == color_value
                    and row[style] == style_value
                )  # fmt: skip
                if curve:
                    ax.plot(
                        *zip(*curve, strict=True),
                        ("o-", "s--", "^:", "d-.")[s % 4],
                        color=f"C{c % 10}",
                        label=f"{style_value}, {color} {color_value}",
                    )
        ax.set_title(f"{panel} {value}")
        ax.set_xlabel("SNR (dB)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize="small")
    return _save(figure, path, title)


def plot_psnr_vs_snr(
    rows: Sequence[dict],
    path: str | Path,
    title: str = "",
    *,
    curve: str = "scheme",
    train_snr_db: float | None = None,
) -> Path:
    """Draw PSNR against SNR: a curve per value of ``rows[i][curve]``, sorted by ``snr_db``.

    ``rows`` are dicts with ``snr_db``, ``psnr_db`` and ``curve`` (a recipe's ``results``);
    ``train_snr_db`` draws a dotted vertical line at the SNR the schemes were designed for.
    Returns the written path.

    >>> import tempfile
    >>> rows = [{"scheme": "jscc", "snr_db": 0.0, "psnr_db": 19.7},
    ...         {"scheme": "jscc", "snr_db": 10.0, "psnr_db": 25.4}]
    >>> plot_psnr_vs_snr(rows, Path(tempfile.mkdtemp()) / "images.png", train_snr_db=10.0).name
    'images.png'
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.2))
    for index, value in enumerate(dict.fromkeys(row[curve] for row in rows)):
        points = sorted((row["snr_db"], row["psnr_db"]) for row in rows if row[curve] == value)
        axes.plot(*zip(*points, strict=True), ("o-", "s--", "^:", "d-.")[index % 4], label=value)
    if train_snr_db is not None:
        axes.axvline(train_snr_db, color="0.5", linestyle=":", label="training SNR")
    axes.set_xlabel("SNR (dB)")
    axes.set_ylabel("PSNR (dB)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_search(
    result: object, path: str | Path, title: str = "", state: int | None = None
) -> Path:
    """Draw a split-point search (:class:`~aiflow_comm.search.SearchResult`): left, the latency
    breakdown (device, link, edge and cloud) of the best one-cut plan per cut in one channel
    ``state`` (default: the median SNR); right, every plan's expected latency against device
    energy, the Pareto front of those two joined. Returns the written path.

    >>> import tempfile, torch
    >>> from aiflow_comm.search import Codec, LinkModel, Tier, profile_model, search_plans
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> device = Tier("device", 1e6, power_w=1.0, tx_power_w=0.5)
    >>> result = search_plans(profile_model(model, torch.zeros(1, 64)), device,
    ...                       Tier("edge", 1e9), LinkModel(1e6, snr_db=[0.0, 20.0]), [Codec(8)])
    >>> plot_search(result, Path(tempfile.mkdtemp()) / "search.png").name
    'search.png'
    """
    import numpy as np

    if not result.plans:
        raise ValueError("result holds no plans")
    plt = _pyplot()
    if state is None:
        s = int(np.argsort(result.snr_db)[result.snr_db.size // 2])
    else:
        s = result.check_state(state)
    best: dict[str, int] = {}
    for p, plan in enumerate(result.plans):
        key = "device" if plan.cut is None else plan.cut
        better = key not in best or result.cost[p, s] < result.cost[best[key], s]
        if plan.cut2 is None and np.isfinite(result.cost[p, s]) and better:
            best[key] = p
    names = list(best)
    rows = [best[n] for n in names]
    parts = [
        ("device", result.device_s[rows]),
        ("link", result.tx_s[rows, s]),
        ("edge", result.edge_s[rows]),
        ("cloud", result.cloud_s[rows] + result.tx2_s[rows]),
    ]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bottom = np.zeros(len(rows))
    for label, values in parts:
        if np.any(values > 0):
            left.bar(range(len(rows)), 1e3 * values, bottom=1e3 * bottom, label=label)
            bottom += values
    left.set_xticks(range(len(rows)))
    left.set_xticklabels(
        [f"{n} {result.plans[r].codec.label if result.plans[r].codec else ''}"
         for n, r in zip(names, rows, strict=True)],
        rotation=70, fontsize="x-small",
    )  # fmt: skip
    left.set_ylabel("latency (ms)")
    left.set_title(f"best codec per cut at {result.snr_db[s]:g} dB")
    if rows:
        left.legend(fontsize="small")
    else:
        left.text(0.5, 0.5, "no feasible one-cut plan", transform=left.transAxes,
                  ha="center", va="center")  # fmt: skip
    lat, energy = result.mean(result.latency_s), result.mean(result.energy_j)
    ok = np.isfinite(lat) & np.isfinite(energy)
    right.scatter(1e3 * lat[ok], 1e3 * energy[ok], s=8, alpha=0.4, label="plans")
    front = result.pareto(with_accuracy=False)  # the front of the two quantities drawn
    if front.size:
        order = front[np.argsort(lat[front])]
        right.plot(1e3 * lat[order], 1e3 * energy[order], "r.-", label="Pareto front")
    # A log axis needs positive values: with every power 0 each energy is 0, and a model
    # whose FLOPs all count 0 runs on the device in 0 s.
    right.set_xscale("log" if (lat[ok] > 0).all() else "symlog", **_linthresh(lat[ok]))
    right.set_yscale("log" if (energy[ok] > 0).all() else "symlog", **_linthresh(energy[ok]))
    right.set_xlabel("expected latency (ms)")
    right.set_ylabel("expected device energy (mJ)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize="small")
    return _save(figure, path, title)


def _linthresh(values: np.ndarray) -> dict:
    """``symlog``'s linear range when some of ``values`` (seconds or joules, drawn in ms or
    mJ) are 0: down to the least positive one, or 1 when none is."""
    positive = values[values > 0]
    if positive.size == values.size:
        return {}
    return {"linthresh": 1e3 * float(positive.min()) if positive.size else 1.0}


def plot_sdr_vs_snr(
    rows: Sequence[dict],
    path: str | Path,
    title: str = "",
    *,
    bound: tuple[Sequence[float], Sequence[float]] | None = None,
    bound_label: str = "OPTA",
    curve: str = "setting",
) -> Path:
    """Draw SDR (dB) against SNR (dB): a curve per value of ``rows[i][curve]``, and a bound.

    ``rows`` are dicts with ``snr_db``, ``sdr_db``, optionally ``sdr_ci_db`` (drawn as error
    bars) and ``curve`` (a recipe's ``results``). ``bound`` is ``(snr_db, sdr_db)`` values of
    a bound (such as OPTA), drawn dashed as ``bound_label``. Returns the written path.

    >>> import tempfile
    >>> rows = [{"setting": "per-snr", "snr_db": 0.0, "sdr_db": 2.96, "sdr_ci_db": 0.004},
    ...         {"setting": "per-snr", "snr_db": 10.0, "sdr_db": 10.29, "sdr_ci_db": 0.004}]
    >>> path = Path(tempfile.mkdtemp()) / "gaussian.png"
    >>> plot_sdr_vs_snr(rows, path, bound=([0.0, 10.0], [3.01, 10.41])).name
    'gaussian.png'
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.2))
    if bound is not None:
        axes.plot(*bound, "k--", label=bound_label)
    for c, value in enumerate(dict.fromkeys(row.get(curve) for row in rows)):
        points = sorted(
            (row["snr_db"], row["sdr_db"], row.get("sdr_ci_db") or 0.0)
            for row in rows
            if row.get(curve) == value
        )
        snr, sdr, ci = zip(*points, strict=True)
        axes.errorbar(
            snr, sdr, yerr=ci, fmt="o-", color=f"C{c % 10}", capsize=3,
            label=str(value) if value is not None else "SDR",
        )  # fmt: skip
    axes.set_xlabel("SNR (dB)")
    axes.set_ylabel("SDR (dB)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _save(figure, path)
