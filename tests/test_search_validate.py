"""End to end: the plan the cost model picks is the fastest when heads and tails really run.

Tiers are set so that the optimum is clear (a device 20x slower than this machine, an edge as
fast, 2 MHz of link): at 25 dB sending the 4-bit input wins by 3.6x or more over the next
plan, at -20 dB running everything on the device by 2.2x or more (executed here; the cost
model predicts 1.6x or more). Times are CPU-time medians of interleaved rounds with one torch
thread, steady on a shared machine (docs/search.md).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from aiflow_comm.search import INPUT_CUT, Codec, LinkModel, Tier, measure_accuracy, profile_model
from aiflow_comm.search.models import SmallResNet, small_cnn
from aiflow_comm.search.validate import validate_plan_choice


@pytest.mark.parametrize("make", [small_cnn, SmallResNet], ids=["sequential-cnn", "resnet"])
def test_cost_model_choice_is_fastest_when_executed(make):
    torch.manual_seed(0)
    report = validate_plan_choice(
        make(), torch.randn(2, 3, 32, 32),
        Tier("device", time_scale=20.0), Tier("edge", time_scale=1.0),
        LinkModel(2e6, snr_db=[25.0, -20.0]), [Codec(32), Codec(4)],
        repeats=5, clock=time.process_time,
    )  # fmt: skip
    np.testing.assert_array_equal(report.sent_bits, report.predicted_bits)
    assert report.agree.all(), report.rows()
    assert report.same_plan.all(), report.rows()
    chosen = [report.plans[i] for i in report.chosen]
    assert chosen[0].cut == INPUT_CUT and chosen[0].bits == 4
    assert chosen[1].cut is None  # too slow a link: everything on the device


def test_projection_codecs_cannot_be_executed():
    with pytest.raises(ValueError, match="projections need trained modules"):
        validate_plan_choice(small_cnn(), torch.randn(1, 3, 32, 32), Tier("d", 1e9),
                             Tier("e", 1e10), LinkModel(1e6), [Codec(8, ratio=0.5)])  # fmt: skip


def _token_model() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(50, 16), torch.nn.Flatten(), torch.nn.Linear(7 * 16, 4)
    )
    return model.eval(), torch.randint(0, 50, (8, 7))


def test_token_ids_cross_the_input_cut_unchanged():
    # integer ids are neither cast nor quantized: 64 bits per int64 id, whatever the codec
    model, ids = _token_model()
    report = validate_plan_choice(
        model, ids, Tier("d", 1e5), Tier("e", 1e10), LinkModel(1e6, snr_db=[20.0]),
        [Codec(32), Codec(8)], repeats=1,
    )  # fmt: skip
    sent = {p.label: b for p, b in zip(report.plans, report.sent_bits, strict=True)}
    assert sent["<input>@32b"] == sent["<input>@8b"] == 64 * ids.numel()
    np.testing.assert_array_equal(report.sent_bits, report.predicted_bits)


def test_measure_accuracy_passes_token_ids_at_the_input_cut():
    # reference: the model's own predictions, so the lossless accuracy is 1 and an input cut
    # that sends the ids unchanged must keep it at any bit width
    model, ids = _token_model()
    with torch.no_grad():
        labels = model(ids).argmax(dim=-1)
    table = measure_accuracy(model, [(ids, labels)], [INPUT_CUT], [Codec(8), Codec(2)])
    assert table.lossless == 1.0
    assert table.values[(INPUT_CUT, Codec(8))][0] == table.values[(INPUT_CUT, Codec(2))][0] == 1.0


class _Masked(torch.nn.Module):
    """An optional second input: ``if mask is not None`` branches on whether it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

    def forward(self, x, mask=None):
        h = self.a(x)
        if mask is not None:
            h = h.masked_fill(mask, 0.0)
        return self.b(torch.relu(h))


def test_an_optional_input_is_profiled_and_sent_when_given():
    model, x = _Masked().eval(), torch.randn(3, 4)
    mask = torch.rand(3, 8) > 0.5
    names = [c.name for c in profile_model(model, x).cuts]
    assert names == [INPUT_CUT, "a", "relu"]
    with_mask = profile_model(model, (x, mask))
    assert [c.name for c in with_mask.cuts] == [INPUT_CUT, "a", "masked_fill", "relu"]
    assert with_mask.total_flops == 2 * 3 * (4 * 8 + 8 * 2)  # the two Linear layers, by hand
    report = validate_plan_choice(
        model, (x, mask), Tier("d", 1e5), Tier("e", 1e10), LinkModel(1e6, snr_db=[20.0]),
        [Codec(32)], repeats=1,
    )  # fmt: skip
    np.testing.assert_array_equal(report.sent_bits, report.predicted_bits)
