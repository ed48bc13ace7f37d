"""Recipe ``gaussian``: the bound's formulas by hand, the Monte-Carlo interval, a run through
the command line (JSON and PNG), a short linear run near OPTA, the ratio mapping, bad options."""

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from aiflow_comm.channel.theory import capacity_awgn, ergodic_capacity_rayleigh
from aiflow_comm.recipes import gaussian
from aiflow_comm.recipes.gaussian import mc_interval_db, opta_db
from aiflow_comm.recipes.runner import main


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_json(capsys: pytest.CaptureFixture, tmp_path: Path, *argv: str) -> dict:
    assert main("gaussian", ["--json", "--out", str(tmp_path), *argv]) == 0
    return json.loads(capsys.readouterr().out)


# the bound


def test_opta_by_hand() -> None:
    # R real channel dims per value: R * 10 log10(1 + snr) over AWGN
    assert opta_db("awgn", 1.0, 10.0) == pytest.approx(10 * math.log10(11))
    assert opta_db("awgn", 1.0, 0.0) == pytest.approx(10 * math.log10(2))
    assert opta_db("awgn", 2.0, 20.0) == pytest.approx(20 * math.log10(101))
    assert opta_db("awgn", 0.5, 10.0) == pytest.approx(5 * math.log10(11))
    # the same derivation through capacity, 1/2 log2(1/D) <= R/2 * C: SDR <= 10 log10(2^(R C))
    for ratio, snr in ((1.0, 0.0), (0.5, 7.0), (2.0, 20.0)):
        via_capacity = 10 * math.log10(2 ** (ratio * float(capacity_awgn(snr))))
        assert opta_db("awgn", ratio, snr) == pytest.approx(via_capacity)
    # Rayleigh, per-symbol fading with CSIR: the ergodic capacity, 0.860347 bit/use at 0 dB
    assert opta_db("rayleigh", 1.0, 0.0) == pytest.approx(0.860347 * 10 * math.log10(2), 1e-6)
    assert opta_db("rayleigh", 2.0, 10.0) == pytest.approx(
        2 * float(ergodic_capacity_rayleigh(10.0)) * 10 * math.log10(2)
    )
    # fading costs capacity (Jensen): below the AWGN bound at the same average SNR
    assert all(opta_db("rayleigh", 1.0, s) < opta_db("awgn", 1.0, s) for s in (0.0, 10.0, 20.0))


def test_bad_bound_arguments() -> None:
    with pytest.raises(ValueError, match=r"channel must be one of .*got 'rician'"):
        opta_db("rician", 1.0, 10.0)
    with pytest.raises(ValueError, match=r"ratio must be a number > 0.*got 0"):
        opta_db("awgn", 0, 10.0)


def test_mc_interval_by_hand() -> None:
    # q = 0.1, residuals d - q s = -0.1, 0.1, -0.1, 0.1: sd 0.11547, se 0.11547 / (2 * 2)
    signal, distortion = torch.full((4,), 2.0), torch.tensor([0.1, 0.3, 0.1, 0.3])
    expected = 1.959964 * 10 / math.log(10) * (math.sqrt(0.04 / 3) / 4) / 0.1
    assert mc_interval_db(signal, distortion) == pytest.approx(expected, rel=1e-6)
    assert mc_interval_db(signal, 0.1 * signal) == 0.0  # a constant ratio: no uncertainty
    # 100 times more vectors: a 10 times narrower interval
    many = mc_interval_db(signal.repeat(100), distortion.repeat(100))
    assert many == pytest.approx(expected / 10 * math.sqrt(300 / 399), rel=1e-6)
    with pytest.raises(ValueError, match=r"same length >= 2"):
        mc_interval_db(signal, distortion[:3])


# runs


def test_smoke_run_writes_json_and_png(capsys, tmp_path) -> None:
    result = run_json(capsys, tmp_path, "--smoke")
    assert result["recipe"] == "gaussian"
    assert result == json.loads((tmp_path / "gaussian.json").read_text())
    assert (tmp_path / "gaussian.png").stat().st_size > 0
    o = result["options"]
    assert (o["channel"], o["ratio"], o["snr_db"], o["dim"], o["hidden"]) == (
        "awgn", 1.0, [0.0, 10.0, 20.0], 64, 0
    )  # fmt: skip
    rows = result["results"]
    assert [r["snr_db"] for r in rows] == [0.0, 10.0, 20.0]
    for row in rows:
        assert row["setting"] == "per-snr" and row["bound"] == "opta"
        assert row["ratio"] == 1.0 and row["channel_uses"] == 32  # 64 values, 32 symbols
        assert row["opta_db"] == pytest.approx(opta_db("awgn", 1.0, row["snr_db"]), abs=1e-4)
        assert row["gap_db"] == pytest.approx(row["opta_db"] - row["sdr_db"], abs=2e-4)
        assert 0 < row["sdr_ci_db"] < 0.5


def test_short_linear_run_at_ratio_1_gets_near_opta(capsys, tmp_path) -> None:
    argv = (
        "--dim",
        "64",
        "--steps",
        "200",
        "--lr",
        "1e-2",
        "--snr-db",
        "10",
        "--test-vectors",
        "2048",
    )
    (row,) = run_json(capsys, tmp_path, *argv, "--no-plot")["results"]
    # the linear ceiling with per-vector power normalization is 0.32 dB under OPTA at dim 64
    assert row["gap_db"] < 1.0
    assert row["sdr_db"] - row["sdr_ci_db"] <= row["opta_db"]  # nothing beats Shannon


def test_adaptive_rayleigh_run_uses_the_ergodic_bound(capsys, tmp_path) -> None:
    argv = ("--smoke", "--adaptive", "--channel", "rayleigh", "--hidden", "16", "--no-plot")
    result = run_json(capsys, tmp_path, *argv, "--snr-db", "0", "10")
    assert result["options"]["train_snr_db"] == [0.0, 10.0]
    rows = result["results"]
    assert [(r["setting"], r["snr_db"], r["bound"]) for r in rows] == [
        ("adaptive", 0.0, "ergodic"), ("adaptive", 10.0, "ergodic")
    ]  # fmt: skip
    for row in rows:
        assert row["opta_db"] == pytest.approx(opta_db("rayleigh", 1.0, row["snr_db"]), abs=1e-4)


@pytest.mark.parametrize(("ratio", "uses"), [("0.5", 16), ("2", 64), ("0.25", 8)])
def test_ratio_counts_real_dimensions(capsys, tmp_path, ratio: str, uses: int) -> None:
    argv = ("--smoke", "--steps", "1", "--snr-db", "10", "--no-plot", "--ratio", ratio)
    (row,) = run_json(capsys, tmp_path, *argv)["results"]
    # R real dimensions per value: R * 64 / 2 complex symbols for 64 values
    assert row["channel_uses"] == uses and row["ratio"] == float(ratio)
    assert row["opta_db"] == pytest.approx(opta_db("awgn", float(ratio), 10.0), abs=1e-4)


@pytest.mark.parametrize("steps", ["3", "20"])
def test_any_number_of_steps_trains(capsys, tmp_path, steps: str) -> None:
    """At 20 steps the one-cycle warm-up ended at step 0: ZeroDivisionError in torch."""
    argv = ("--smoke", "--steps", steps, "--snr-db", "10", "--no-plot", "--dim", "8")
    out = run_json(capsys, tmp_path, *argv)
    (row,) = out["results"]
    assert out["options"]["steps"] == int(steps) and math.isfinite(row["sdr_db"])


def test_table_output(capsys, tmp_path) -> None:
    assert main("gaussian", ["--smoke", "--steps", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "OPTA R*10log10(1+SNR)" in out and "gap dB" in out and "gaussian.png" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ratio", "0"], r"gaussian: --ratio must be a finite number > 0.*got 0.0"),
        (["--ratio", "-1"], r"--ratio must be a finite number > 0.*got -1.0"),
        (["--steps", "0"], r"--steps must be >= 1; got 0"),
        (["--hidden", "-1"], r"--hidden must be >= 0 \(0: linear model\); got -1"),
        (["--adaptive", "--train-snr-db", "10", "0"], r"LOW <= HIGH; got 10.0 0.0"),
        (["--snr-db", "nan"], r"--snr-db values must be finite"),
        # Refused only once the first model met it, after the others had trained.
        (["--snr-db", "10", "-500"], r"--snr-db values must be finite and above about -383 dB"),
        (["--test-vectors", "1"], r"--test-vectors must be >= 2; got 1"),
        (["--device", "banana"], r"gaussian: --device 'banana'"),
    ],
)
def test_bad_options(tmp_path, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main("gaussian", ["--smoke", "--out", str(tmp_path), *argv])


def test_empty_snr_list(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as error:
        main("gaussian", ["--smoke", "--out", str(tmp_path), "--snr-db"])
    assert error.value.code == 2
    assert "--snr-db: expected at least one argument" in capsys.readouterr().err


def test_module_exports() -> None:
    assert all(callable(getattr(gaussian, name)) for name in gaussian.__all__ if name != "CHANNELS")
    assert gaussian.CHANNELS == ("awgn", "rayleigh")
