"""Figures people would rather look at than read: BER curves (matplotlib, written to a file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiflow_comm.channel.ber import BerPoint

__all__ = ["plot_ber"]


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


def plot_ber(points: Sequence[BerPoint], path: str | Path, title: str = "") -> Path:
    """Draw BER (and BLER when present) against Eb/N0 on a log scale, closed forms dashed.

    Points with no errors are left out of the log-scale curves. Returns the written path.
    """
    if not points:
        raise ValueError("points must hold at least one BerPoint")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.2))
    ebno = [p.ebno_db for p in points]

    def curve(values: list[float | None], label: str, style: str) -> None:
        kept = [(e, v) for e, v in zip(ebno, values, strict=True) if v is not None and v > 0]
        if kept:
            axes.semilogy(*zip(*kept, strict=True), style, label=label)

    curve([p.ber for p in points], "BER (simulated)", "o-")
    curve([p.theory_ber for p in points], "BER (closed form)", "k--")
    curve([p.bler for p in points], "BLER (simulated)", "s-")
    axes.set_xlabel("Eb/N0 (dB)")
    axes.set_ylabel("error rate")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
