"""The ``digits`` recipe: smoke runs (runner and CLI), its files, defaults and bad options."""

from __future__ import annotations

import json

import pytest
import torch

from aiflow_comm.cli import main as cli_main
from aiflow_comm.recipes import digits
from aiflow_comm.recipes.runner import build_parser, main

ROW_KEYS = {"setting", "bits", "ratio", "snr_db", "accuracy", "clean_accuracy", "payload_bits",
            "channel_uses"}  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    argv = ["--smoke", "--json", "--out", str(out), "--progress", "off", "--bits", "4", "2",
            "--ratios", "0.25"]  # fmt: skip
    assert main("digits", argv) == 0
    return out, json.loads((out / "digits.json").read_text())


def test_smoke_rows_cover_every_setting_and_snr(smoke):
    _, result = smoke
    assert result["recipe"] == "digits"
    options = result["options"]
    assert options["smoke"] and options["split_at"] == "pool" and options["channel"] == "rayleigh"
    assert options["link"] == "digital" and options["modulation"] == "qpsk"
    rows = result["results"]
    assert all(set(row) == ROW_KEYS for row in rows)
    assert sorted((r["setting"], r["bits"], r["snr_db"]) for r in rows) == sorted(
        (s, b, snr) for s in digits.SETTINGS for b in (4, 2) for snr in options["snr_db"]
    )
    assert all(0 <= r["accuracy"] <= 1 and 0 <= r["clean_accuracy"] <= 1 for r in rows)
    assert result["split"] == {"at": "pool", "shape": [32, 4, 4], "values": 512}


def test_smoke_payload_and_channel_uses(smoke):
    _, result = smoke
    for row in result["results"]:
        # 0.25 of 32 channels: 8x4x4 = 128 values; uncoded QPSK carries 2 bits per symbol. The
        # recipe keeps bit errors (on_error="keep"): only the packed codes cross the link.
        codes = 128 * row["bits"]
        assert row["payload_bits"] == codes
        assert row["channel_uses"] == row["payload_bits"] // 2


def test_smoke_files_and_printed_json(smoke, tmp_path, capsys):
    out, _ = smoke
    assert (out / "digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    argv = ["--smoke", "--json", "--no-plot", "--out", str(tmp_path), "--progress", "off",
            "--bits", "8", "--ratios", "1.0", "--snr-db", "3"]  # fmt: skip
    assert main("digits", argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "digits.json").read_text())
    assert not (tmp_path / "digits.png").exists()
    assert [r["snr_db"] for r in printed["results"]] == [3.0, 3.0]


def test_cli_train_digits_analog_awgn_prints_a_table(tmp_path, capsys):
    argv = ["train", "digits", "--smoke", "--no-plot", "--out", str(tmp_path), "--progress",
            "off", "--bits", "2", "--ratios", "0.5", "--link", "analog", "--channel", "awgn",
            "--split-at", "relu3", "--snr-db", "0", "10"]  # fmt: skip
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert "analog link over AWGN" in out and "cut after 'relu3'" in out
    lines = [
        line.split() for line in out.splitlines() if line.split()[:1] in (["joint"], ["no-channel"])
    ]
    assert len(lines) == 2 and all(line[1] == "2" and line[2] == "0.50" for line in lines)
    result = json.loads((tmp_path / "digits.json").read_text())
    # Analog: 16 of 32 channels x 4 x 4 = 256 values in 128 complex symbols.
    assert {r["channel_uses"] for r in result["results"]} == {128}


def test_defaults():
    args = build_parser("digits").parse_args([])
    assert (args.split_at, args.bits, args.ratios) == ("pool", [8, 4, 2], [1.0, 0.25])
    assert (args.channel, args.link, args.train_snr_db) == ("rayleigh", "digital", [0.0, 20.0])
    assert args.snr_db is None and not args.smoke


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--split-at", "nope"], "--split-at: at must name a cut point"),
        (["--split-at", "fc"], "the tail would be empty"),
        (["--ratios", "0"], "ratios must be in (0, 1]"),
        (["--ratios", "0.5", "-1"], "ratios must be in (0, 1]"),
        (["--ratios", "1.5"], "ratios must be in (0, 1]"),
        (["--train-snr-db", "10", "0"], "LOW <= HIGH"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--snr-db", "0", "-500"], "--snr-db values must be finite and above about -383 dB"),
    ],
)
def test_bad_options_exit_with_a_clear_message(argv, message, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main("digits", [*argv, "--smoke", "--out", str(tmp_path), "--progress", "off"])
    assert str(stop.value.code).startswith("digits: ") and message in str(stop.value.code)
    assert not (tmp_path / "digits.json").exists()


@pytest.mark.parametrize("bits", ["3", "16", "1"])
def test_bits_other_than_2_4_8_are_refused(bits, capsys):
    with pytest.raises(SystemExit) as stop:
        main("digits", ["--bits", bits, "--smoke"])
    assert stop.value.code == 2
    assert "--bits: invalid choice" in capsys.readouterr().err


def test_bottleneck_keeps_a_fraction_of_channels():
    encoder, decoder = digits.bottleneck((32, 4, 4), 0.25)
    z = encoder(torch.randn(5, 32, 4, 4))
    assert z.shape == (5, 128) and decoder(z).shape == (5, 32, 4, 4)
    encoder, decoder = digits.bottleneck((512,), 0.1)
    assert encoder(torch.randn(2, 512)).shape == (2, 51)
    with pytest.raises(ValueError, match="ratios must be in"):
        digits.bottleneck((32, 4, 4), 0.0)


def test_split_is_seeded():
    first = digits.load_digits_tensors(seed=3)
    again = digits.load_digits_tensors(seed=3)
    other = digits.load_digits_tensors(seed=4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    x_train, y_train, x_test, y_test = first
    assert x_train.shape[1:] == (1, 8, 8) and len(x_train) + len(x_test) == 1797
    assert len(y_test) == 359 and set(y_train.tolist()) == set(range(10))
    assert abs(float(x_train.mean())) < 1e-4


@pytest.mark.parametrize("fraction", [1e-4, 0.9999])
def test_a_test_fraction_that_empties_a_split_is_refused(fraction):
    with pytest.raises(ValueError, match="both splits need at least 2"):
        digits.load_digits_tensors(test_fraction=fraction)
