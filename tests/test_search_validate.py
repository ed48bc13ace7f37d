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

from aiflow_comm.search import INPUT_CUT, Codec, LinkModel, Tier
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
