"""pytest-benchmark case: the split-point search over every cut x 1000 channel states x 4 codecs.

A 129-step ``nn.Sequential`` MLP (128 cuts and the input: 517 plans with device-only),
1000 log-normal SNR states over Rayleigh block fading with retransmissions. Profiling is done
once, outside the timing; the timed call is :func:`~aiflow_comm.search.search_plans` (plan
costs, link states, the ``(P, S)`` evaluation and the argmin per state). Target: under 0.5 s
on a 2-core CPU. The result must equal the exhaustive Python loop over the same grid.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from aiflow_comm.search import (
    Codec,
    LinkModel,
    Tier,
    lognormal_snr_states,
    profile_model,
    search_plans,
)
from aiflow_comm.search.models import deep_mlp
from aiflow_comm.search.reference import exhaustive_search

TARGET_S = 0.5


@pytest.fixture(scope="module")
def grid():
    profile = profile_model(deep_mlp(depth=64), torch.zeros(1, 3, 32, 32))
    snr, weights = lognormal_snr_states(0.0, 12.0, 1000)
    link = LinkModel(5e6, snr.tolist(), "rayleigh", retransmissions=3, propagation_s=1e-3,
                     snr_weights=weights.tolist())  # fmt: skip
    device = Tier("device", 5e7, power_w=2.0, tx_power_w=1.0, idle_power_w=0.1)
    edge = Tier("edge", 1e11)
    codecs = [Codec(32), Codec(8), Codec(4), Codec(2)]
    return profile, device, edge, link, codecs


def test_search_every_cut_1000_states_4_codecs(benchmark, grid):
    profile, device, edge, link, codecs = grid
    assert len(profile.cuts) >= 51 and link.link_state().snr_db.size == 1000
    result = benchmark(search_plans, profile, device, edge, link, codecs)
    assert result.latency_s.shape == (1 + len(profile.cuts) * 4, 1000)
    start = time.perf_counter()
    search_plans(profile, device, edge, link, codecs)
    once = time.perf_counter() - start
    print(f"\nsearch: {result.latency_s.shape[0]} plans x 1000 states in {1e3 * once:.1f} ms "
          f"({once / TARGET_S:.2f} of the {TARGET_S} s target)")  # fmt: skip
    assert once < TARGET_S
    best, costs = exhaustive_search(profile, device, edge, link, codecs)
    assert result.best.tolist() == best
    np.testing.assert_allclose(result.cost, np.array(costs), rtol=1e-12)
    assert len(set(best)) > 2  # the best plan changes with the state
