"""Benchmark helpers: medians alone and in turns, and bytes counted read plus write."""

from __future__ import annotations

import pytest
import torch

from aiflow_comm.bench.fused import bench_fused
from aiflow_comm.bench.quant import bench_quant, format_table
from aiflow_comm.bench.timing import (
    interleaved_medians,
    interleaved_samples,
    median_seconds,
    paired_ratio,
)


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


def test_interleaved_samples_keep_each_turn_and_paired_ratio_is_per_turn():
    clock = iter(range(1000))
    runs = {"a": lambda: next(clock), "b": lambda: next(clock)}
    samples = interleaved_samples(runs, "cpu", repeats=4)
    assert [len(times) for times in samples.values()] == [4, 4]
    # A drift between turns: "b" twice as slow as "a" in every turn, the turns 10x apart.
    fast_then_slow = [1.0, 10.0, 100.0, 1000.0, 1.0]
    doubled = [2 * t for t in fast_then_slow]
    assert paired_ratio(doubled, fast_then_slow) == 2.0
    assert paired_ratio([3.0, 1.0], [1.0, 1.0]) == 2.0  # an even count: the middle two's mean
    with pytest.raises(ValueError, match="same turns; got 2 and 1"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="got 0 and 0"):
        paired_ratio([], [])


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


def test_timing_helpers_refuse_no_repeats_and_take_device_strings():
    """repeats=0 raised IndexError from an empty median, a device string AttributeError, a NaN
    sample length a conversion error."""
    assert median_seconds(lambda: None, "cpu", repeats=1, warmup=0) > 0
    assert sorted(interleaved_medians({"a": lambda: None}, "cpu", repeats=1)) == ["a"]
    with pytest.raises(ValueError, match="repeats must be an int >= 1; got 0"):
        median_seconds(lambda: None, torch.device("cpu"), repeats=0)
    with pytest.raises(ValueError, match="repeats must be an int >= 1; got 0"):
        interleaved_medians({"a": lambda: None}, torch.device("cpu"), repeats=0)
    with pytest.raises(ValueError, match="min_sample_seconds must be finite"):
        interleaved_medians({"a": lambda: None}, "cpu", 1, min_sample_seconds=float("nan"))


def test_bench_helpers_refuse_devices_that_are_not_here():
    """A device string torch cannot parse, the meta device, or CUDA without CUDA: a
    ValueError naming it (RuntimeError or AssertionError from deep inside torch before)."""
    from aiflow_comm.bench.ber import bench_ber
    from aiflow_comm.bench.timing import resolve_device
    from aiflow_comm.bench.train_step import bench_train_step

    assert resolve_device("cpu") == torch.device("cpu")
    bad = ["nosuch", "meta"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in bad:
        with pytest.raises(ValueError, match=f"device '{device}'"):
            resolve_device(device)
    with pytest.raises(ValueError, match="device 'meta'"):
        bench_train_step(batch=1, width=1, repeats=1, device="meta")
    with pytest.raises(ValueError, match="device 'nosuch'"):
        bench_ber(num_bits=2048, repeats=1, device="nosuch")
    with pytest.raises(ValueError, match="device 'meta'"):
        bench_fused({"tiny": (8, 4, 2)}, group_size=2, repeats=1, backend="torch", device="meta")
    with pytest.raises(ValueError, match="device 'nosuch'"):
        bench_quant(0.01, device="nosuch", compile_reference=False, repeats=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size_mib": float("nan")}, "size_mib must be a finite number > 0"),
        ({"size_mib": float("inf")}, "size_mib must be a finite number > 0"),
        ({"size_mib": -1.0}, "size_mib must be a finite number > 0"),
        ({"repeats": 0}, "repeats and group_size must be >= 1"),
        ({"group_size": 0}, "repeats and group_size must be >= 1"),
        ({"backends": ["nosuch"]}, r"backends \['nosuch'\] cannot be timed on cpu"),
        ({"backends": ["triton"]}, r"backends \['triton'\] cannot be timed on cpu"),
    ],
)
def test_bench_quant_checks_its_arguments(kwargs, message):
    """It timed a one-row input for a negative size, raised IndexError for repeats=0 and
    ZeroDivisionError for group_size=0, and returned no rows for a backend it cannot time."""
    options = {"size_mib": 0.01, "dtypes": (torch.float32,), "bits_list": (8,),
               "compile_reference": False, "repeats": 1, **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        bench_quant(**options)


def test_bench_fused_with_no_shapes_times_none(monkeypatch):
    """An empty shapes dict is falsy: ``shapes or SHAPES`` timed every default shape."""
    from aiflow_comm.bench import fused

    monkeypatch.setattr(fused, "SHAPES", {"default": (4, 4, 2)})
    assert fused.bench_fused({}, group_size=2, repeats=1, backend="torch") == []
    assert len(fused.bench_fused(None, group_size=2, repeats=1, backend="torch")) == 2


def test_long_benches_show_progress_on_request(capsys):
    bench_fused({"tiny": (8, 4, 2)}, group_size=2, repeats=1, backend="torch", progress=True)
    assert "bench fused" in capsys.readouterr().err
    bench_quant(0.01, bits_list=(8,), compile_reference=False, repeats=1, progress=True)
    assert "bench quant" in capsys.readouterr().err
    bench_fused({"tiny": (8, 4, 2)}, group_size=2, repeats=1, backend="torch", progress=False)
    assert capsys.readouterr().err == ""
