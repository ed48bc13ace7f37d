"""The aiflow-comm command: version, demo table, bench quant table and JSON, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import aiflow_comm
from aiflow_comm.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert aiflow_comm.__version__ in capsys.readouterr().out


def test_demo_prints_digits_split_points_and_quantization_tables(capsys):
    assert main(["demo", "--smoke"]) == 0
    out = capsys.readouterr().out
    digits, rest = out.split("Payload per example at each split point", 1)
    points, photos = rest.split("Quantizing the scikit-image sample photos", 1)
    settings = [line.split()[0] for line in digits.splitlines() if line.split()[:1]]
    assert settings.count("joint") == settings.count("no-channel") == 2  # 4 and 2 bits
    assert "Rayleigh fading" in digits
    tables = [line.split() for line in points.splitlines()]
    cuts = {t[-7]: t[-4:] for t in tables if len(t) >= 7 and all(v.isdigit() for v in t[-4:])}
    assert {"(input)", "conv1", "pool", "flatten"} <= set(cuts)
    assert int(cuts["pool"][0]) == 32 * 512 > int(cuts["pool"][1]) > int(cuts["pool"][2])
    assert "* pool" in points
    rows = [line.split() for line in photos.splitlines() if line.strip()[:1].isdigit()]
    assert sorted({int(r[0]) for r in rows}) == [2, 4, 8]
    psnr = {(int(r[0]), r[1]): float(r[4]) for r in rows}
    assert psnr[(8, "asymmetric")] > psnr[(4, "asymmetric")] > psnr[(2, "asymmetric")] > 10


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_demo_json_is_strict(capsys):
    """Groups of one value can decode exactly: a PSNR of inf, printed as Infinity (not JSON)."""
    main(["demo", "--smoke", "--json", "--group-size", "1"])
    result = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert None in {r["psnr_db"] for r in result["quantization"]}


def test_demo_json(capsys):
    main(["demo", "--smoke", "--json"])
    result = json.loads(capsys.readouterr().out, parse_constant=_refuse)
    assert set(result) == {"digits", "split_points", "quantization"}
    rows = result["quantization"]
    assert {r["bits"] for r in rows} == {2, 4, 8}
    assert all(r["compression"] > 1 for r in rows)
    digits = result["digits"]
    assert digits["recipe"] == "digits" and digits["options"]["channel"] == "rayleigh"
    assert {(r["setting"], r["bits"]) for r in digits["results"]} == {
        (s, b) for s in ("joint", "no-channel") for b in (4, 2)
    }
    assert all({"snr_db", "accuracy"} <= set(r) for r in digits["results"])
    points = {p["name"]: p for p in result["split_points"]}
    assert points["pool"]["values"] == 512 and points["pool"]["float32_bits"] == 16384
    assert points["pool"]["bits_8"] > points["pool"]["bits_4"] > points["pool"]["bits_2"]


def test_bench_quant_json(capsys):
    main(["bench", "quant", "--size-mib", "0.25", "--no-compile", "--repeats", "2", "--json",
          "--bits", "4", "--dtypes", "bfloat16"])  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert {r["op"] for r in rows} == {"quantize", "dequantize"}
    assert all(r["bits"] == 4 and r["dtype"] == "bfloat16" and r["gbps"] > 0 for r in rows)
    assert all(r["speedup_vs_compiled"] is None for r in rows)


def test_bench_quant_table(capsys):
    main(["bench", "quant", "--size-mib", "0.25", "--no-compile", "--repeats", "2",
          "--bits", "8", "--dtypes", "float32", "--backends", "torch"])  # fmt: skip
    out = capsys.readouterr().out
    assert "of copy" in out and "torch" in out


def test_bench_fused_flags(capsys):
    main(["bench", "fused", "--device", "cpu", "--repeats", "1", "--transposed-weights",
          "--no-finite-check", "--bits", "4", "--group-size", "16"])  # fmt: skip
    out = capsys.readouterr().out
    assert "weights stored transposed, no NaN/Inf check" in out and "vit 197x768->96" in out
    main(["bench", "fused", "--device", "cpu", "--repeats", "1", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6 and all(r["check_finite"] and not r["transposed_weights"] for r in rows)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "quant", "--bits", "3"],
        ["bench", "quant", "--size-mib", "-1"],
        ["bench", "quant", "--dtypes", "int8"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_with_an_error(argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code != 0


def test_console_script_entry_point_runs():
    result = subprocess.run(
        [sys.executable, "-m", "aiflow_comm.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "aiflow-comm" in result.stdout


def test_demo_checks_its_group_size_before_training():
    with pytest.raises(SystemExit, match="--group-size: group_size must be in"):
        main(["demo", "--group-size", "0"])


def test_demo_split_point_sizes_count_every_tensor_crossing_a_cut():
    import torch
    from torch import nn

    from aiflow_comm.demo import format_split_point_table, split_point_sizes

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 16), nn.Linear(16, 16), nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x))
            return self.c(h + self.b(h))

    rows = {r["name"]: r for r in split_point_sizes(Residual(), torch.zeros(1, 4), (8,))}
    single = rows["a"]
    # After b, its output and the skip h cross: two messages (only the first was counted).
    assert rows["b"]["shape"] == [[16], [16]] and rows["b"]["values"] == 32
    assert rows["b"]["float32_bits"] == 2 * single["float32_bits"]
    assert rows["b"]["bits_8"] == 2 * single["bits_8"]
    assert "16+16" in format_split_point_table(list(rows.values()), marked="b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "quant", "--size-mib", "nan"], "--size-mib finite"),
        (["bench", "quant", "--size-mib", "inf"], "--size-mib finite"),
        (["bench", "quant", "--size-mib", "0.01", "--backends", "nosuch"], "cannot be timed"),
        (["bench", "quant", "--size-mib", "0.01", "--device", "nosuch"], "device 'nosuch'"),
        (["bench", "quant", "--size-mib", "1e9", "--no-compile"], "bench quant: out of memory"),
        (["bench", "ber", "--device", "nosuch"], "bench ber: device 'nosuch'"),
        (["bench", "fused", "--device", "meta"], "bench fused: device 'meta'"),
        (["bench", "train-step", "--device", "meta"], "bench train-step: device 'meta'"),
        (["ber", "--num-bits", "2000", "--device", "nosuch"], "ber: device 'nosuch'"),
        (["demo", "--smoke", "--seed", "-1"], r"demo: --seed must be in \[0, 2\*\*62\)"),
        # A seed near 2**63 failed after training: the demo adds offsets to it per link.
        (["demo", "--smoke", "--seed", str(2**63 - 10)], "demo: --seed must be in"),
    ],
)
def test_user_errors_exit_with_one_line_not_a_traceback(argv, message):
    """Each raised an exception from deep inside (ValueError, RuntimeError, AssertionError,
    IndexError): a Python traceback for a typing mistake."""
    with pytest.raises(SystemExit, match=message) as stop:
        main(argv)
    assert isinstance(stop.value.code, str) and "\n" not in stop.value.code


def test_ber_plot_path_is_checked_before_the_simulation(capsys, tmp_path):
    """A plot file matplotlib cannot write raised a traceback after the whole simulation."""
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("")
    for path in (tmp_path / "ber.xyz", tmp_path / "file" / "ber.png"):
        with pytest.raises(SystemExit, match=r"ber: --plot: cannot plot to"):
            main(["ber", "--num-bits", "2000", "--plot", str(path)])
        assert capsys.readouterr().out == ""  # nothing simulated


def test_ber_plot_without_any_error_draws_no_warning(tmp_path):
    """With no errors at any point nothing is drawn on the log scale: legend() warned."""
    pytest.importorskip("matplotlib")
    import warnings

    from aiflow_comm.channel.ber import BerPoint
    from aiflow_comm.plotting import plot_ber

    points = [BerPoint(30.0, 0.0, 0, 2048, None, None, None, 0.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_ber(points, tmp_path / "zero.png").stat().st_size > 1000


def _fake_run(result):
    def run(args):
        return result

    return run


def test_train_out_is_checked_before_training(monkeypatch, tmp_path):
    """An --out that is a file raised FileExistsError's traceback after the training."""
    from aiflow_comm.recipes import gaussian

    ran = []
    monkeypatch.setattr(gaussian, "run", lambda args: ran.append(args) or {})
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=r"gaussian: --out .*a file, not a folder"):
        main(["train", "gaussian", "--smoke", "--out", str(tmp_path / "file")])
    with pytest.raises(SystemExit, match=r"gaussian: --out .*results'"):
        main(["train", "gaussian", "--smoke", "--out", str(tmp_path / "file" / "results")])
    assert not ran
    with pytest.raises(SystemExit, match="gaussian: --device 'meta'"):
        main(["train", "gaussian", "--smoke", "--out", str(tmp_path), "--device", "meta"])


def test_train_json_is_strict_when_training_diverges(monkeypatch, capsys, tmp_path):
    """A diverged run's NaN metrics were written as NaN: not JSON, and readers refuse it."""
    from aiflow_comm.recipes import gaussian

    nan = float("nan")
    result = {"recipe": "gaussian", "results": [{"snr_db": 5.0, "sdr_db": nan}], "x": [nan]}
    monkeypatch.setattr(gaussian, "run", _fake_run(result))

    def strict(text: str) -> dict:
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    assert main(["train", "gaussian", "--out", str(tmp_path), "--json", "--no-plot"]) == 0
    printed = strict(capsys.readouterr().out)
    assert printed["results"] == [{"snr_db": 5.0, "sdr_db": None}] and printed["x"] == [None]
    assert strict((tmp_path / "gaussian.json").read_text()) == printed


@pytest.mark.parametrize("recipe", ["gaussian", "digits", "images"])
@pytest.mark.parametrize("seed", [-1, 2**63 - 50])  # the second passed, then failed after training
def test_train_seed_is_checked_alike_for_every_recipe(recipe, seed):
    message = rf"{recipe}: --seed must be in \[0, 2\*\*62\); got {seed}"
    with pytest.raises(SystemExit, match=message):
        main(["train", recipe, "--smoke", "--seed", str(seed), "--no-plot"])
