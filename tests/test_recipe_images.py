"""The ``images`` recipe: smoke run, held-out photos, digital budget, packets, bad options."""

from __future__ import annotations

import json

import pytest
import torch

from aiflow_comm.recipes import images
from aiflow_comm.recipes.runner import main
from aiflow_comm.semantic import psnr_db


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("images")
    assert main("images", ["--smoke", "--json", "--out", str(out), "--progress", "off"]) == 0
    return out, json.loads((out / "images.json").read_text())


def test_smoke_writes_rows_for_both_schemes(smoke, capsys):
    out, result = smoke
    assert (out / "images.png").stat().st_size > 0
    assert result["recipe"] == "images"
    rows = result["results"]
    snrs = result["options"]["snr_db"]
    assert len(snrs) == 2
    assert sorted((r["scheme"], r["snr_db"]) for r in rows) == sorted(
        (scheme, s) for scheme in ("jscc", "digital") for s in snrs
    )
    for row in rows:
        assert 0 < row["psnr_db"] <= images.PSNR_CAP_DB
        assert row["channel"] == "awgn" and row["train_snr_db"] == 10.0
    assert {r["channel_uses"] for r in rows} == {result["jscc"]["channel_uses"]}


def test_smoke_holds_out_whole_photos(smoke):
    _, result = smoke
    data = result["data"]
    assert set(data["test_photos"]) == set(images.DEFAULT_TEST_PHOTOS)
    assert not set(data["train_photos"]) & set(data["test_photos"])
    assert set(data["train_photos"]) | set(data["test_photos"]) == set(images.PHOTOS)


def test_smoke_digital_payload_fits_the_channel_uses(smoke):
    _, result = smoke
    digital, jscc = result["digital"], result["jscc"]
    assert digital["channel_uses"] == jscc["channel_uses"] == 512  # 32x32x3 values, ratio 1/6
    bits_per_symbol = {"qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}[digital["modulation"]]
    assert digital["ldpc_n"] == digital["channel_uses"] * bits_per_symbol
    assert digital["ldpc_k"] == digital["payload_bits"] <= 0.95 * digital["ldpc_n"]
    assert digital["search"], "link adaptation tried no candidate"
    for row in result["results"]:
        if row["scheme"] == "digital":
            assert row["payload_bits"] == digital["payload_bits"]
            assert 0 <= row["packet_loss"] <= 1


def test_test_patches_are_tiles_of_the_given_photos():
    photo = torch.arange(3 * 8 * 12, dtype=torch.float32).reshape(3, 8, 12)
    tiles = images.tile_patches([photo], 4, None, torch.Generator().manual_seed(0))
    assert tiles.shape == (6, 3, 4, 4)
    assert torch.equal(tiles[4], photo[:, 4:8, 4:8])
    some = images.tile_patches([photo], 4, 2, torch.Generator().manual_seed(0))
    assert all(any(torch.equal(s, t) for t in tiles) for s in some)


def test_source_code_packets_round_trip_and_losses_are_concealed():
    coarse = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    x = torch.nn.functional.interpolate(coarse, size=16, mode="bilinear")  # a smooth image
    code = images.SourceCode(size=16, luma=16, bits=8)
    packets = code.encode(x)
    assert packets.dtype == torch.uint8 and packets.shape == (5, code.payload_bits // 8)
    colour = torch.tensor([0.1, 0.2, 0.3])
    clean, lost = code.decode(packets, colour)
    assert not lost.any()
    assert psnr_db(x, clean).min() > 25  # 8 bits; chroma at 8x8, upsampled
    damaged = packets.clone()
    damaged[2, 3] ^= 0x10
    received, lost = code.decode(damaged, colour)
    assert lost.tolist() == [False, False, True, False, False]
    assert torch.equal(received[2], colour.view(3, 1, 1).expand(3, 16, 16))
    assert torch.equal(received[[0, 1, 3, 4]], clean[[0, 1, 3, 4]])


def test_digital_scheme_picks_the_smallest_fitting_modulation():
    code = images.SourceCode(size=32, luma=8, bits=4)  # 480 payload bits
    scheme = images.DigitalScheme.fitting(code, 512)
    assert scheme.modulation == "qpsk" and scheme.code_rate == 480 / 1024
    assert images.DigitalScheme.fitting(code, 300).modulation == "16qam"  # 480/600 > 2/3
    assert images.DigitalScheme.fitting(code, 60) is None  # rate > 0.95 even on 256-QAM
    assert images.DigitalScheme.fitting(code, 5000) is None  # rate < 1/5 even on QPSK


def test_digital_scheme_leaves_out_codes_sionna_cannot_build():
    """Over 3840 bits Sionna's base graph 1 needs a rate above 1/3: train images --patch 64
    --ratio 1 chose k=5904, n=24576 and failed after training."""
    from aiflow_comm.channel import DigitalLink

    code = images.SourceCode(size=64, luma=18, bits=8)  # 3984 payload bits
    assert images.DigitalScheme.fitting(code, 8300) is None  # QPSK at rate 0.24: no such code
    scheme = images.DigitalScheme.fitting(code, 5000)  # QPSK at rate 0.40
    assert scheme is not None and scheme.modulation == "qpsk"
    assert DigitalLink("qpsk", ldpc_k=3984, ldpc_n=scheme.ldpc_n).codec_blocks("cpu")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--patch", "30"], "--patch must be a multiple of 4"),
        (["--ratio", "2"], "--ratio must be in (0, 1]"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--target-bler", "1.5"], "--target-bler must be in [0, 1)"),
        (["--test-photos", *images.PHOTOS], "must leave at least one"),
        (["--snr-db", "nan"], "--snr-db values must be finite"),
        (["--snr-db", "-500"], "--snr-db values must be finite and above about -383 dB"),
    ],
)
def test_bad_options_exit_with_a_clear_message(tmp_path, argv, message):
    with pytest.raises(SystemExit) as stop:
        main("images", [*argv, "--smoke", "--out", str(tmp_path)])
    assert message in str(stop.value.code)


@pytest.mark.parametrize("argv", [["--ratio", "one"], ["--test-photos", "lena"]])
def test_unparsable_options_exit_with_usage(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main("images", [*argv, "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert "error" in capsys.readouterr().err
