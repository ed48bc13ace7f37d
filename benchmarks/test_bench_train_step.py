"""pytest-benchmark cases: one SGD step of a CIFAR-sized CNN, plain and with a SplitLink
(8-bit fake quantization and Rayleigh fading at the cut). Compare the two in one run (target:
at most 1.15x); ``aiflow-comm bench train-step`` prints the same comparison as a table."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.train_step import sgd_step, small_cnn
from aiflow_comm.channel import AnalogLink, RayleighFading
from aiflow_comm.split import SplitLink, SplitModel, split_model

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "plain":
        return small_cnn().to(DEVICE)
    cut = split_model(small_cnn(), "5")
    link = SplitLink(bits=8, group_size=128, snr_db=(0.0, 20.0), generator=0,
                     link=AnalogLink(RayleighFading(generator=0)))  # fmt: skip
    return SplitModel(cut.head, link, cut.tail).to(DEVICE).train()


@pytest.mark.parametrize("kind", ["plain", "split_link"])
def test_train_step(benchmark, kind: str) -> None:
    x = torch.randn(32, 3, 32, 32, device=DEVICE)
    y = torch.randint(0, 10, (32,), device=DEVICE)
    net = model(kind)
    before = [p.detach().clone() for p in net.parameters()]
    benchmark(sgd_step(net, x, y))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
