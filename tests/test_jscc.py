"""JSCC models of ``aiflow_comm.semantic``: shapes, power normalization, bandwidth ratios,
gradients through every channel, SNR adaptation, a training sanity check, errors, metrics."""

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

import aiflow_comm.semantic as semantic
from aiflow_comm.channel import AWGN, OFDMChannel, RayleighFading
from aiflow_comm.semantic import (
    JSCC,
    ImageDecoder,
    ImageEncoder,
    ImageJSCC,
    SNRAttention,
    VectorDecoder,
    VectorEncoder,
    VectorJSCC,
    accuracy,
    latent_channels,
    opta_sdr_db,
    psnr_db,
    sdr_db,
)
from aiflow_comm.semantic.snr_adaptive import snr_column


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # tiny models: one thread is faster, and much faster on a shared, busy CPU
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def small_ofdm() -> OFDMChannel:
    return OFDMChannel(fft_size=12, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(1,), generator=0)


def energy_per_example(symbols: torch.Tensor) -> torch.Tensor:
    return symbols.abs().pow(2).mean(dim=1)


def test_every_exported_name_resolves() -> None:
    assert all(getattr(semantic, name) is not None for name in semantic.__all__)


# shapes, dtypes, power


def test_vector_shapes_and_dtypes() -> None:
    encoder, decoder = VectorEncoder(12, 0.5, hidden=16), VectorDecoder(12, 0.5, hidden=16)
    x = torch.randn(5, 12)
    symbols = encoder(x)
    assert symbols.shape == (5, 6) and symbols.dtype == torch.complex64
    out = decoder(symbols)
    assert out.shape == (5, 12) and out.dtype == torch.float32
    symbols64 = encoder.double()(x.double())
    assert symbols64.dtype == torch.complex128
    assert decoder.double()(symbols64).dtype == torch.float64


def test_image_shapes_dtypes_and_range() -> None:
    encoder, decoder = ImageEncoder(3, 1 / 6, hidden=8), ImageDecoder(3, 1 / 6, hidden=8)
    x = torch.rand(2, 3, 8, 12)
    symbols = encoder(x)
    assert symbols.shape == (2, 3 * 8 * 12 // 6) and symbols.dtype == torch.complex64
    with torch.no_grad():
        out = decoder(symbols, output_shape=x.shape)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    square = torch.rand(2, 3, 16, 16)
    assert decoder(encoder(square)).shape == square.shape  # square: output_shape optional


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_unit_energy_per_example(scale: float) -> None:
    x = torch.randn(4, 10) * torch.tensor([[1.0], [10.0], [0.1], [5.0]]) * scale
    energy = energy_per_example(VectorEncoder(10, 1.0, hidden=16)(x))
    assert torch.allclose(energy, torch.ones(4), atol=1e-5)
    images = torch.rand(3, 1, 8, 8) * torch.tensor([1.0, 100.0, 0.01]).view(3, 1, 1, 1) * scale
    energy = energy_per_example(ImageEncoder(1, 0.25, hidden=8)(images))
    assert torch.allclose(energy, torch.ones(3), atol=1e-5)


def test_adaptive_encoders_keep_unit_energy() -> None:
    snr = torch.tensor([-5.0, 0.0, 10.0, 30.0])
    energy = energy_per_example(
        VectorEncoder(6, 2.0, hidden=8, snr_adaptive=True)(torch.randn(4, 6), snr)
    )
    assert torch.allclose(energy, torch.ones(4), atol=1e-5)
    energy = energy_per_example(
        ImageEncoder(3, 1 / 12, hidden=8, snr_adaptive=True)(torch.rand(4, 3, 8, 8), snr)
    )
    assert torch.allclose(energy, torch.ones(4), atol=1e-5)


# bandwidth ratio


@pytest.mark.parametrize(
    ("dim", "ratio", "k"),
    [(10, 1.0, 10), (10, 0.5, 5), (10, 0.25, 3), (10, 0.01, 1), (7, 1 / 3, 2), (4, 2.0, 8)],
)
def test_vector_ratio_and_symbol_count(dim: int, ratio: float, k: int) -> None:
    model = VectorJSCC(dim, ratio, AWGN(generator=0), hidden=8)
    x = torch.randn(3, dim)
    assert model.encoder.num_symbols == model.decoder.num_symbols == k
    assert model.encoder(x).shape == (3, k)
    assert model.channel_uses(x) == k
    assert model.ratio == pytest.approx(k / dim)
    assert model(x, 10.0).shape == x.shape


@pytest.mark.parametrize(
    ("dim", "ratio", "k"),
    [(25, 0.58, 15), (45, 0.7, 32), (50, 0.29, 15), (50, 0.57, 29), (8, 0.5, 4), (3, 1 / 3, 1)],
)
def test_symbol_counts_round_decimal_halves_up(dim: int, ratio: float, k: int) -> None:
    """0.58 x 25 is 14.499999999999998 in binary: 14 channel uses where the documented
    rounding of 14.5 (halves up) gives 15."""  # fmt: skip
    assert VectorEncoder(dim, ratio).num_symbols == k


@pytest.mark.parametrize(
    ("channels", "ratio", "latent", "height", "width"),
    [
        (3, 1 / 6, 16, 8, 8),
        (3, 1 / 12, 8, 12, 8),
        (3, 0.1, 10, 8, 16),
        (1, 0.5, 16, 4, 4),
        (1, 1e-4, 2, 8, 8),
    ],
)
def test_image_ratio_matches_symbol_count(
    channels: int, ratio: float, latent: int, height: int, width: int
) -> None:
    assert latent_channels(channels, ratio) == latent
    model = ImageJSCC(channels, ratio, AWGN(generator=0), hidden=8)
    x = torch.rand(2, channels, height, width)
    k = model.encoder(x).shape[1]
    assert k == model.channel_uses(x) == model.encoder.channel_uses(x.shape)
    assert model.ratio == pytest.approx(k / (channels * height * width))
    assert model.ratio == pytest.approx(latent / (32 * channels))
    # the achieved ratio is the multiple of 1/(16 C) nearest the request
    assert abs(model.ratio - ratio) <= 1 / (32 * channels) + 1e-12 or latent == 2
    assert model(x, 10.0).shape == x.shape


# gradients through the channels


@pytest.mark.parametrize(
    "make_channel",
    [lambda: AWGN(generator=0), lambda: RayleighFading(generator=0), small_ofdm],
    ids=["awgn", "rayleigh", "ofdm"],
)
@pytest.mark.parametrize("snr_adaptive", [False, True])
def test_gradients_reach_the_encoder(make_channel, snr_adaptive: bool) -> None:
    vector = VectorJSCC(8, 1.0, make_channel(), hidden=16, snr_adaptive=snr_adaptive)
    image = ImageJSCC(1, 0.25, make_channel(), hidden=4, snr_adaptive=snr_adaptive)
    snr = torch.tensor([5.0, 15.0])
    for model, x in ((vector, torch.randn(2, 8)), (image, torch.rand(2, 1, 8, 8))):
        model(x, snr).pow(2).mean().backward()
        for name, parameter in model.encoder.named_parameters():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
        first = next(model.encoder.parameters())
        assert float(first.grad.abs().sum()) > 0


@pytest.mark.parametrize("equalizer", ["none", "zf", "mmse"])
def test_equalizer_choice(equalizer: str) -> None:
    model = VectorJSCC(4, 1.0, RayleighFading(generator=0), hidden=8, equalizer=equalizer)
    assert model.equalizer == equalizer
    assert model(torch.randn(3, 4), 10.0).shape == (3, 4)


def test_default_channel_is_awgn() -> None:
    assert isinstance(VectorJSCC(4, 1.0, hidden=8).channel, AWGN)
    assert isinstance(ImageJSCC(hidden=4).channel, AWGN)


# SNR adaptation


def test_per_example_snr_equals_scalar_snr_row_by_row() -> None:
    encoder = VectorEncoder(6, 1.0, hidden=8, snr_adaptive=True)
    decoder = ImageDecoder(1, 0.25, hidden=4, snr_adaptive=True)
    x, symbols = torch.randn(3, 6), torch.randn(3, 4, dtype=torch.complex64)
    snr = torch.tensor([0.0, 10.0, 25.0])
    batched, images = encoder(x, snr), decoder(symbols, snr)
    for i in range(3):
        value = float(snr[i])
        assert torch.allclose(batched[i], encoder(x[i : i + 1], value)[0], atol=1e-6)
        assert torch.allclose(images[i], decoder(symbols[i : i + 1], value)[0], atol=1e-6)


@pytest.mark.parametrize("model_type", ["vector", "image"])
def test_adaptive_output_depends_on_snr_through_attention(model_type: str) -> None:
    def build(snr_adaptive: bool) -> JSCC:
        if model_type == "vector":
            return VectorJSCC(6, 1.0, hidden=16, snr_adaptive=snr_adaptive)
        return ImageJSCC(1, 0.25, hidden=4, snr_adaptive=snr_adaptive)

    x = torch.randn(2, 6) if model_type == "vector" else torch.rand(2, 1, 8, 8)

    def output(model: JSCC, snr_db: float) -> torch.Tensor:
        model.channel = AWGN(generator=0)  # the same noise draw for both SNRs
        with torch.no_grad():
            return model(x, snr_db)

    # at 80 and 120 dB the noise is negligible: only the attention can tell them apart
    adaptive, plain = build(True), build(False)
    adaptive_change = float((output(adaptive, 80.0) - output(adaptive, 120.0)).abs().max())
    plain_change = float((output(plain, 80.0) - output(plain, 120.0)).abs().max())
    assert adaptive_change > 1e-4
    assert adaptive_change > 50 * plain_change
    # the encoder alone and the decoder alone both use the SNR
    symbols = adaptive.encoder(x, 0.0)
    assert not torch.allclose(symbols, adaptive.encoder(x, 20.0))
    kwargs = {"output_shape": x.shape}
    assert not torch.allclose(
        adaptive.decoder(symbols, 0.0, **kwargs), adaptive.decoder(symbols, 20.0, **kwargs)
    )


def test_plain_models_ignore_snr_and_adaptive_ones_require_it() -> None:
    x = torch.randn(2, 6)
    plain = VectorEncoder(6, 1.0, hidden=8)
    assert torch.equal(plain(x), plain(x, 30.0))
    assert not plain.snr_adaptive
    adaptive = VectorEncoder(6, 1.0, hidden=8, snr_adaptive=True)
    assert adaptive.snr_adaptive
    with pytest.raises(ValueError, match=r"snr_db is required"):
        adaptive(x)
    with pytest.raises(ValueError, match=r"one value per example \(shape \(2,\)\)"):
        adaptive(x, torch.zeros(3))
    with pytest.raises(ValueError, match=r"finite"):
        adaptive(x, math.nan)
    with pytest.raises(TypeError, match=r"snr_db must be a number"):
        adaptive(x, "10")


def test_attention_factors_are_between_zero_and_one() -> None:
    attention = SNRAttention(5)
    features = torch.randn(3, 5, 4, 4)
    with torch.no_grad():
        out = attention(features, torch.tensor([0.0, 10.0, 20.0]))
    assert out.shape == features.shape
    ratio = out / features
    assert float(ratio.min()) > 0 and float(ratio.max()) < 1
    with pytest.raises(ValueError, match=r"features must have shape \(batch, 5, \.\.\.\)"):
        attention(torch.randn(3, 4, 2, 2), 0.0)


def test_hidden_zero_gives_linear_encoder_and_decoder() -> None:
    model = VectorJSCC(6, 0.5, AWGN(generator=0), hidden=0)
    encoder, decoder = model.encoder, model.decoder
    assert len(encoder.body.stages) == 0 and len(decoder.body.stages) == 0  # no hidden layers
    assert (encoder.head.in_features, encoder.head.out_features) == (6, 6)
    assert (decoder.head.in_features, decoder.head.out_features) == (6, 6)
    # before the power normalization the encoder is affine; the decoder is affine
    a, b = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        lin = encoder.head
        assert torch.allclose(lin(a + b) + lin(torch.zeros(2, 6)), lin(a) + lin(b), atol=1e-6)
        s, t = torch.randn(2, 3, dtype=torch.complex64), torch.randn(2, 3, dtype=torch.complex64)
        zero = torch.zeros(2, 3, dtype=torch.complex64)
        assert torch.allclose(decoder(s + t) + decoder(zero), decoder(s) + decoder(t), atol=1e-5)
    symbols = encoder(torch.randn(4, 6))
    assert torch.allclose(energy_per_example(symbols), torch.ones(4))
    assert model(torch.randn(4, 6), 10.0).shape == (4, 6)
    with pytest.raises(ValueError, match=r"snr_adaptive=True needs hidden >= 1"):
        VectorJSCC(6, 0.5, hidden=0, snr_adaptive=True)
    with pytest.raises(ValueError, match=r"hidden must be an int >= 0 \(0: a linear model\)"):
        VectorEncoder(6, 0.5, hidden=-1)


# training sanity


def test_vector_jscc_learns_gaussian_vectors_over_awgn() -> None:
    generator = torch.Generator().manual_seed(1)
    model = VectorJSCC(8, 1.0, AWGN(generator=2), hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        x = torch.randn(256, 8, generator=generator)
        loss = (model(x, 10.0) - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x = torch.randn(2048, 8, generator=generator)
    with torch.no_grad():
        sdr = {snr: float(sdr_db(x, model(x, snr))) for snr in (0.0, 10.0, 20.0)}
    assert sdr[10.0] > 5.0
    assert sdr[20.0] > sdr[0.0]
    # nothing beats Shannon: the channel really is in the loop
    assert all(value < opta_sdr_db(model.ratio, snr) for snr, value in sdr.items())


# errors


@pytest.mark.parametrize("ratio", [0, -0.5, math.nan, math.inf])
def test_bad_ratio(ratio: float) -> None:
    for build in (
        lambda: VectorEncoder(4, ratio),
        lambda: VectorDecoder(4, ratio),
        lambda: ImageEncoder(3, ratio),
        lambda: ImageDecoder(3, ratio),
        lambda: VectorJSCC(4, ratio),
    ):
        with pytest.raises(ValueError, match=r"ratio must be a finite number > 0.*got"):
            build()
    with pytest.raises(TypeError, match=r"ratio must be a number"):
        VectorEncoder(4, True)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match=r"dim must be an int >= 1; got 0"):
        VectorEncoder(0, 1.0)
    with pytest.raises(ValueError, match=r"hidden must be an int >= 1; got 0"):
        ImageEncoder(3, 0.1, hidden=0)
    with pytest.raises(ValueError, match=r"channels must be an int >= 1; got 2.0"):
        ImageEncoder(2.0, 0.1)


def test_bad_image_inputs() -> None:
    encoder = ImageEncoder(3, 1 / 6, hidden=4)
    with pytest.raises(ValueError, match=r"H and W must be positive multiples of 4.*H=10, W=8"):
        encoder(torch.rand(1, 3, 10, 8))
    with pytest.raises(ValueError, match=r"multiples of 4.*H=8, W=6"):
        encoder.channel_uses((1, 3, 8, 6))
    with pytest.raises(ValueError, match=r"must have 4 dimensions; got shape \(3, 8, 8\)"):
        encoder(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\) \(channels=3\); got \(1, 1, 8, 8\)"):
        encoder(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match=r"real floating-point tensor; got torch.int64"):
        encoder(torch.ones(1, 3, 8, 8, dtype=torch.long))
    decoder = ImageDecoder(3, 1 / 6, hidden=4)
    symbols = torch.randn(1, 48, dtype=torch.complex64)  # 8 * (H/4 * W/4) = 48: 8x12 or 12x8
    with pytest.raises(ValueError, match=r"not a square image's.*pass output_shape"):
        decoder(symbols)
    assert decoder(symbols, output_shape=(1, 3, 8, 12)).shape == (1, 3, 8, 12)
    with pytest.raises(ValueError, match=r"do not match output_shape.*expected \(1, 32\)"):
        decoder(symbols, output_shape=(1, 3, 8, 8))
    with pytest.raises(TypeError, match=r"symbols must be complex64 or complex128"):
        decoder(torch.randn(1, 48))


def test_bad_vector_inputs() -> None:
    encoder, decoder = VectorEncoder(6, 0.5, hidden=8), VectorDecoder(6, 0.5, hidden=8)
    with pytest.raises(ValueError, match=r"x must have 2 dimensions; got shape \(2, 3, 2\)"):
        encoder(torch.randn(2, 3, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\); got \(2, 5\)"):
        encoder(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"symbols must have shape \(batch, 3\); got \(2, 4\)"):
        decoder(torch.randn(2, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"output_shape must be \(2, 6\); got \(2, 7\)"):
        decoder(torch.randn(2, 3, dtype=torch.complex64), output_shape=(2, 7))
    with pytest.raises(ValueError, match=r"shape must be \(batch, 6\); got \(2, 7\)"):
        encoder.channel_uses((2, 7))


def test_bad_jscc_arguments() -> None:
    encoder, decoder = VectorEncoder(4, 1.0, hidden=8), VectorDecoder(4, 1.0, hidden=8)
    with pytest.raises(ValueError, match=r"equalizer must be one of.*got 'lmmse'"):
        JSCC(encoder, decoder, AWGN(), equalizer="lmmse")
    with pytest.raises(TypeError, match=r"channel must be an nn.Module or None; got str"):
        JSCC(encoder, decoder, "awgn")
    with pytest.raises(TypeError, match=r"encoder must be an nn.Module; got function"):
        JSCC(lambda x, s: x, decoder)
    assert isinstance(JSCC(encoder, decoder, nn.Identity()).channel, nn.Identity)


# metrics


def test_psnr_by_hand() -> None:
    reference = torch.zeros(2, 1, 2, 2)
    estimate = torch.stack([torch.full((1, 2, 2), 0.5), torch.full((1, 2, 2), 0.1)])
    # MSE 0.25 -> 10 log10(1 / 0.25) = 6.0206; MSE 0.01 -> 20 dB
    assert psnr_db(reference, estimate).tolist() == pytest.approx([6.0206, 20.0], abs=1e-4)
    assert float(psnr_db(reference, estimate * 255, max_value=255.0)[1]) == pytest.approx(20.0)
    with pytest.raises(ValueError, match=r"same shape"):
        psnr_db(reference, estimate[:1])
    for bad in (0, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"max_value must be a finite number > 0; got"):
            psnr_db(reference, estimate, max_value=bad)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_say_what_to_run_in(dtype: torch.dtype) -> None:
    model = VectorJSCC(6, 0.5, hidden=8).to(dtype)
    with pytest.raises(TypeError, match=r"run the model in float32"):
        model(torch.randn(2, 6, dtype=dtype), 10.0)


@pytest.mark.parametrize("snr_db", [-300.0, -20.0, 0.0, 13.0, 300.0, 3100.0])
def test_opta_at_any_finite_snr(snr_db: float) -> None:
    """10**(snr_db/10) overflowed past about 3083 dB: `train gaussian --snr-db 4000` ended in
    an OverflowError traceback after training (and 1 + 1e-30 lost a tiny SNR's capacity)."""
    from decimal import Decimal, getcontext

    from aiflow_comm.recipes.gaussian import opta_db
    from aiflow_comm.semantic.metrics import one_plus_snr_db

    getcontext().prec = 60
    exact = float(10 * (1 + Decimal(10) ** (Decimal(snr_db) / 10)).log10())
    assert one_plus_snr_db(snr_db) == pytest.approx(exact, rel=1e-12, abs=1e-300)
    assert opta_sdr_db(0.5, snr_db) == pytest.approx(exact, rel=1e-12, abs=1e-300)
    assert opta_db("awgn", 2.0, snr_db) == pytest.approx(2 * exact, rel=1e-12, abs=1e-300)
    assert one_plus_snr_db(1e10) == 1e10  # far past Decimal's range: the asymptote


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_inputs_of_another_float_dtype_meet_the_models(dtype: torch.dtype) -> None:
    """A float64 array from NumPy (or float16 data) failed inside the first layer: 'mat1 and
    mat2 must have the same dtype'."""
    torch.manual_seed(0)
    vector = VectorJSCC(8, 0.5, AWGN(generator=0), hidden=8)
    x = torch.randn(2, 8)
    want = vector.encoder(x.to(dtype).float())
    torch.testing.assert_close(vector.encoder(x.to(dtype)), want)
    assert vector(x.to(dtype), 10.0).dtype == torch.float32
    symbols = want.to(torch.complex128)
    torch.testing.assert_close(vector.decoder(symbols), vector.decoder(want), rtol=1e-6, atol=1e-6)
    image = ImageJSCC(3, 1 / 6, AWGN(generator=0), hidden=8)
    assert image(torch.rand(2, 3, 8, 8).to(dtype), 10.0).dtype == torch.float32


def test_opta_refuses_infinite_arguments_and_takes_numpy_numbers() -> None:
    assert opta_sdr_db(0.5, np.float32(3.0)) == pytest.approx(opta_sdr_db(0.5, 3.0))
    with pytest.raises(ValueError, match="ratio must be a finite number > 0"):
        opta_sdr_db(math.inf, 3.0)
    with pytest.raises(ValueError, match="snr_db must be finite"):
        opta_sdr_db(0.5, math.nan)
    model = VectorJSCC(8, np.float32(0.5), hidden=8)  # NumPy numbers are numbers
    assert model(torch.randn(2, 8), np.float32(10.0)).shape == (2, 8)


def test_sdr_by_hand() -> None:
    # signal 9 + 16 = 25, distortion 0 + 1 = 1: 10 log10(25) = 13.9794 dB
    assert float(sdr_db(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 3.0]]))) == pytest.approx(
        13.9794, abs=1e-4
    )
    # pooled over the batch: signal 1 + 1, distortion 1 + 0 -> 10 log10(2)
    value = sdr_db(torch.tensor([[1.0], [1.0]]), torch.tensor([[0.0], [1.0]]))
    assert float(value) == pytest.approx(3.0103, abs=1e-4)


def test_accuracy_by_hand() -> None:
    logits = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match=r"logits must be"):
        accuracy(logits, torch.tensor([0, 1]))


def test_opta_by_hand() -> None:
    # ratio 1 at 10 dB: 2 * 10 log10(11) = 20.828 dB; ratio 1/2 at 0 dB: 10 log10(2)
    assert opta_sdr_db(1.0, 10.0) == pytest.approx(20 * math.log10(11))
    assert opta_sdr_db(0.5, 0.0) == pytest.approx(10 * math.log10(2))
    with pytest.raises(ValueError, match=r"ratio must be a finite number > 0; got 0"):
        opta_sdr_db(0, 10.0)


def test_psnr_needs_a_batch_dimension_and_snr_tensors_must_be_finite() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        psnr_db(torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match=r"snr_db must be finite; got \[nan, 10.0\]"):
        snr_column(torch.tensor([float("nan"), 10.0]), torch.zeros(2, 3))


def test_metrics_refuse_arrays_complex_tensors_and_odd_max_values_naming_them() -> None:
    x = torch.rand(2, 3)
    # Arrays raised AttributeError; complex tensors lost their imaginary parts in silence.
    for call, name in (
        (lambda: psnr_db(x.numpy(), x), "reference"),
        (lambda: sdr_db(x, x.numpy()), "estimate"),
        (lambda: accuracy(x.numpy(), torch.tensor([0, 1])), "logits"),
        (lambda: accuracy(x, [0, 1]), "labels"),
    ):
        with pytest.raises(TypeError, match=rf"{name} must be a torch.Tensor; got"):
            call()
    z = torch.complex(x, x)
    with pytest.raises(TypeError, match=r"reference must be a real tensor; got torch.complex64"):
        psnr_db(z, z)
    with pytest.raises(TypeError, match=r"estimate must be a real tensor"):
        sdr_db(x, z)
    for bad in ("1", True):
        with pytest.raises(TypeError, match=r"max_value must be a number > 0; got"):
            psnr_db(x, x, max_value=bad)
    assert psnr_db(x, x + 0.1, max_value=torch.tensor(1.0)).tolist() == pytest.approx([20.0] * 2)
    # A tensor of one peak per example failed in math.isfinite ("only one element tensors").
    with pytest.raises(ValueError, match=r"max_value must be a number or a one-value tensor"):
        psnr_db(x, x + 0.1, max_value=torch.tensor([1.0, 2.0]))
    assert psnr_db(x, x + 0.1, max_value=torch.tensor([1.0])).tolist() == pytest.approx([20.0] * 2)


def test_attention_refuses_a_scale_that_is_not_a_number_naming_it() -> None:
    for bad in ("10", None, True):
        with pytest.raises(TypeError, match=r"snr_scale_db must be a number > 0; got"):
            SNRAttention(4, snr_scale_db=bad)
    assert SNRAttention(4, snr_scale_db=np.float32(5.0)).snr_scale_db == 5.0
