"""Benchmark helpers: medians alone and in turns, and bytes counted read plus write."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.quant import bench_quant, format_table
from aiflow_comm.bench.timing import interleaved_medians, median_seconds


def test_median_seconds_is_the_median_of_the_runs():
    calls = []
    median_seconds(lambda: calls.append(1), torch.device("cpu"), repeats=5)
    assert len(calls) == 7  # two warm-up runs, then five timed


def test_interleaved_medians_time_every_run_in_turns():
    order = []
    runs = {name: (lambda name=name: order.append(name)) for name in ("a", "b")}
    times = interleaved_medians(runs, torch.device("cpu"), repeats=3, warmup=1)
    assert sorted(times) == ["a", "b"] and all(t > 0 for t in times.values())
    assert order == ["a", "b"] * 4


def test_bench_rows_count_bytes_read_and_written():
    rows = bench_quant(0.25, bits_list=(8,), dtypes=(torch.float32,), backends=["torch"],
                       compile_reference=False, repeats=2)  # fmt: skip
    quantize = next(r for r in rows if r.op == "quantize")
    values = 0.25 * 2**20 / 4
    moved = values * 4 + values + values / 128 * 4  # input, int8 codes, one float32 per group
    assert abs(quantize.gbps * 1e9 * quantize.seconds - moved) < 1e-3 * moved
    assert "quantize" in format_table(rows)


def test_train_step_bench_times_both_steps(capsys):
    import json

    from aiflow_comm.bench.train_step import bench_train_step, format_train_step
    from aiflow_comm.cli import main

    plain, linked = bench_train_step(batch=2, width=4, repeats=2)
    assert plain.cost_vs_plain == 1.0 and linked.seconds > 0
    assert "SplitLink" in format_train_step([plain, linked])
    assert main(["bench", "train-step", "--batch", "2", "--width", "4", "--repeats", "1",
                 "--json"]) == 0  # fmt: skip
    assert len(json.loads(capsys.readouterr().out)) == 2
    with pytest.raises(SystemExit, match="must be >= 1"):
        main(["bench", "train-step", "--batch", "0"])
