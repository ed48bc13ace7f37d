"""Benchmark helpers: timings are positive and the copy bandwidth counts read plus write."""

from __future__ import annotations

import torch

from aiflow_comm.bench.quant import bench_quant, format_table
from aiflow_comm.bench.timing import copy_bandwidth, median_seconds


def test_median_seconds_is_the_median_of_the_runs():
    calls = []
    median_seconds(lambda: calls.append(1), torch.device("cpu"), repeats=5)
    assert len(calls) == 7  # two warm-up runs, then five timed


def test_copy_bandwidth_is_positive():
    assert copy_bandwidth(torch.ones(1024), repeats=3) > 0


def test_bench_rows_count_bytes_read_and_written():
    rows = bench_quant(0.25, bits_list=(8,), dtypes=(torch.float32,), backends=["torch"],
                       compile_reference=False, repeats=2)  # fmt: skip
    quantize = next(r for r in rows if r.op == "quantize")
    values = 0.25 * 2**20 / 4
    moved = values * 4 + values + values / 128 * 4  # input, int8 codes, one float32 per group
    assert abs(quantize.gbps * 1e9 * quantize.seconds - moved) < 1e-3 * moved
    assert "quantize" in format_table(rows)
