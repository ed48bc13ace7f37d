"""``aiflow-comm bench train-step``: a training step with a SplitLink (fake quantization and a
Rayleigh fading channel at the cut) against a plain training step of the same model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from aiflow_comm.bench.timing import interleaved_medians, resolve_device

__all__ = ["TrainStepRow", "bench_train_step", "format_train_step", "sgd_step", "small_cnn"]


@dataclass
class TrainStepRow:
    """Median seconds of one SGD step (forward, backward, update) and the ratio to plain."""

    name: str
    seconds: float
    cost_vs_plain: float

    def as_dict(self) -> dict:
        return asdict(self)


def small_cnn(width: int = 64) -> nn.Sequential:
    """A CIFAR-sized CNN; the cut used here is after child ``"5"`` (``width*2`` x 16 x 16)."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10),
    )  # fmt: skip


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """A function running one SGD step (forward, cross-entropy, backward, update) of ``model``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def run() -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return run


def bench_train_step(
    batch: int = 32, width: int = 64, repeats: int = 9, device: str | torch.device = "cpu"
) -> list[TrainStepRow]:
    """Time a plain step and a step with ``SplitLink(bits=8, link=AnalogLink(Rayleigh))`` at the
    cut, alternately in one run. Target (issue 4): the SplitLink step at most 1.15x plain.

    >>> [r.name for r in bench_train_step(batch=2, width=4, repeats=1)]
    ['plain', 'SplitLink (8-bit fake quantization + Rayleigh)']
    """
    from aiflow_comm.channel import AnalogLink, RayleighFading
    from aiflow_comm.split import SplitLink, SplitModel, split_model

    if batch < 1 or width < 1 or repeats < 1:
        raise ValueError("batch, width and repeats must be >= 1")
    device = resolve_device(device)
    torch.manual_seed(0)
    plain = small_cnn(width).to(device)
    cut = split_model(small_cnn(width), "5")
    link = SplitLink(bits=8, group_size=128, snr_db=(0.0, 20.0), generator=0,
                     link=AnalogLink(RayleighFading(generator=0)))  # fmt: skip
    linked = SplitModel(cut.head, link, cut.tail).to(device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    names = ("plain", "SplitLink (8-bit fake quantization + Rayleigh)")
    runs = dict(zip(names, (sgd_step(plain, x, y), sgd_step(linked, x, y)), strict=True))
    seconds = interleaved_medians(runs, device, repeats)
    return [TrainStepRow(n, t, t / seconds[names[0]]) for n, t in seconds.items()]


def format_train_step(rows: list[TrainStepRow]) -> str:
    """A plain-text table of :func:`bench_train_step`'s rows."""
    lines = [f"{'training step':<50} {'ms':>8} {'cost':>6}"]
    lines += [f"{r.name:<50} {r.seconds * 1e3:8.1f} {r.cost_vs_plain:6.3f}" for r in rows]
    return "\n".join(lines)
