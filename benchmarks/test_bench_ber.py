"""pytest-benchmark cases: BER simulation throughput, DigitalLink against Sionna by hand.

Uncoded QPSK over per-symbol Rayleigh fading with perfect CSI, 2**20 bits a batch. Compare the
two cases' times in one run (target: the library at most 1.10x the hand-wired blocks);
``aiflow-comm bench ber`` prints the same comparison as a table.
"""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.ber import ROW_BITS, _by_hand, _library

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ROWS = (1 << 20) // ROW_BITS


@pytest.mark.parametrize("make", [_by_hand, _library], ids=["sionna_by_hand", "digital_link"])
def test_ber_throughput(benchmark, make) -> None:
    run = make(ROWS, 10.0, DEVICE)
    with torch.no_grad():
        ber = benchmark(run)
    assert 0.0 < ber < 0.1  # about 2.2e-2 at 10 dB: both simulate the same link
