"""Channels, receivers and the analog link against their conventions: noise powers, fading
statistics, equalizer formulas in float64, power normalization, seeds and gradients."""

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from aiflow_comm.channel import (
    AWGN,
    ChannelState,
    OFDMChannel,
    RandomSource,
    RayleighFading,
    RicianFading,
    ebno_db_to_snr_db,
    equalize,
    normalize_power,
    snr_db_to_ebno_db,
    snr_db_to_no,
)
from aiflow_comm.channel.analog import AnalogLink, pair_to_complex, unpair_to_real

Z = 5.0  # confidence-interval width in standard errors: these tests use fixed seeds


def within_variance_ci(samples: torch.Tensor, variance: float) -> bool:
    """Sample variance of zero-mean real Gaussian samples against ``variance``."""
    n = samples.numel()
    estimate = float(samples.double().pow(2).mean())
    return abs(estimate - variance) <= Z * variance * math.sqrt(2.0 / n)


def within_mean_ci(samples: torch.Tensor, mean: float, std: float) -> bool:
    return abs(float(samples.double().mean()) - mean) <= Z * std / math.sqrt(samples.numel())


def ones(*shape: int, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    return torch.ones(*shape, dtype=dtype)


def test_every_exported_name_resolves() -> None:
    import aiflow_comm.channel as channel

    assert all(getattr(channel, name) is not None for name in channel.__all__)
    with pytest.raises(AttributeError, match="no attribute"):
        _ = channel.Rayleigh


# conventions


def test_snr_db_to_no_number_and_per_example() -> None:
    x = ones(3, 4, 5)
    assert float(snr_db_to_no(10.0, x)) == pytest.approx(0.1)
    no = snr_db_to_no(torch.tensor([0.0, 10.0, 20.0]), x)
    assert no.shape == (3, 1, 1) and no.dtype == torch.float32
    assert torch.allclose(no.flatten(), torch.tensor([1.0, 0.1, 0.01]))
    assert snr_db_to_no(torch.zeros(3, 4), x).shape == (3, 4, 1)
    assert snr_db_to_no(5, ones(2, dtype=torch.complex128)).dtype == torch.float64
    for scalar in (np.float32(10.0), np.int64(10)):  # NumPy scalars are numbers too
        assert float(snr_db_to_no(scalar, x)) == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [torch.zeros(4), torch.zeros(3, 5), torch.zeros(1, 3)])
def test_snr_db_of_the_wrong_shape_is_rejected(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="snr_db of shape"):
        snr_db_to_no(bad, ones(3, 4))


def test_snr_db_bad_values() -> None:
    with pytest.raises(ValueError, match="finite"):
        snr_db_to_no(float("nan"), ones(2))
    nan, inf = float("nan"), float("inf")
    for bad in (torch.tensor([10.0, nan]), torch.tensor(inf), torch.tensor(-inf), -400.0,
                torch.full((2,), -400.0), inf):  # fmt: skip
        with pytest.raises(ValueError, match="snr_db must be finite, and high enough"):
            snr_db_to_no(bad, ones(2, 3))
    with pytest.raises(ValueError, match=r"fits torch\.float64"):
        snr_db_to_no(-4000.0, ones(2, dtype=torch.complex128))
    assert float(snr_db_to_no(-400.0, ones(2, dtype=torch.complex128))) == pytest.approx(1e40)
    assert snr_db_to_no(torch.tensor([3, 5], dtype=torch.int32), ones(2, 3)).shape == (2, 1)
    with pytest.raises(TypeError, match="real tensor"):
        snr_db_to_no(torch.zeros(2, dtype=torch.complex64), ones(2))
    with pytest.raises(TypeError, match="number or a tensor"):
        snr_db_to_no("10", ones(2))


def test_ebno_and_snr_conversions() -> None:
    assert ebno_db_to_snr_db(0.0, 4, 0.5) == pytest.approx(10 * math.log10(2))
    assert snr_db_to_ebno_db(ebno_db_to_snr_db(3.0, 6, 0.75), 6, 0.75) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="code_rate"):
        ebno_db_to_snr_db(0.0, 2, 1.5)
    with pytest.raises(ValueError, match="bits_per_symbol"):
        ebno_db_to_snr_db(0.0, 0)
    # A string failed inside the addition, NaN and inf passed through.
    with pytest.raises(TypeError, match="ebno_db must be a number"):
        ebno_db_to_snr_db("3", 2)
    with pytest.raises(ValueError, match="ebno_db must be finite; got nan"):
        ebno_db_to_snr_db(float("nan"), 2)
    with pytest.raises(ValueError, match="snr_db must be finite; got inf"):
        snr_db_to_ebno_db(float("inf"), 2)
    with pytest.raises(TypeError, match="snr_db must be a real floating-point tensor"):
        snr_db_to_ebno_db(torch.tensor([3]), 2)
    assert torch.equal(ebno_db_to_snr_db(torch.tensor([0.0]), 1), torch.tensor([0.0]))


def test_normalize_power_per_example_and_zero_example() -> None:
    x = torch.randn(5, 7, 9, dtype=torch.complex128) * torch.arange(5).reshape(5, 1, 1)
    y, gain = normalize_power(x)
    energy = y.abs().pow(2).mean(dim=(1, 2))
    assert torch.allclose(energy[1:], torch.ones(4, dtype=torch.float64))
    assert float(energy[0]) == 0.0 and torch.isfinite(y).all()
    assert torch.allclose(y * gain, x)
    with pytest.raises(ValueError, match="batch_dims"):
        normalize_power(x, batch_dims=3)


@pytest.mark.parametrize(
    ("magnitude", "dtype"),
    [(1e-36, torch.complex64), (1e-20, torch.complex64), (1e-7, torch.complex64),
     (1e18, torch.complex64), (1e30, torch.complex64),
     # float64 squares: 1e160 overflowed (gain inf), 1e-200 vanished (gain at the floor)
     (1e160, torch.complex128), (1e-200, torch.complex128), (1e-300, torch.complex128)],
)  # fmt: skip
def test_normalize_power_at_any_magnitude(magnitude: float, dtype: torch.dtype) -> None:
    """Below an RMS of 1e-6 the gain was floored there (1e-7: energy 0.01, the SNR 20 dB below
    the one asked); past about 1e18 the float32 sum of squares overflowed (energy 0, gain inf)."""
    x = torch.randn(3, 1000, dtype=dtype, generator=torch.Generator().manual_seed(0))
    y, gain = normalize_power(x * magnitude)
    energy = y.abs().pow(2).mean(dim=1)
    torch.testing.assert_close(energy, torch.ones(3, dtype=energy.dtype), rtol=1e-4, atol=0)
    torch.testing.assert_close(gain.flatten() / magnitude, x.abs().pow(2).mean(1).sqrt())


@pytest.mark.parametrize("magnitude", [1.0, 1e160, 1e-200])
def test_analog_link_keeps_the_snr_of_float64_features_at_any_magnitude(magnitude: float):
    """At 1e-200 the noise vanished (relative error 0 at 10 dB), at 1e160 it was infinite."""
    features = torch.randn(4, 2000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = AnalogLink(AWGN(generator=0), equalizer="zf")(features * magnitude, 10.0) / magnitude
    error = ((out - features).pow(2).mean() / features.pow(2).mean()).item()
    assert error == pytest.approx(0.1, rel=0.1)  # noise power 10 dB below the signal's


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(3, dtype=torch.float16), [1j]])
def test_channels_reject_non_complex_input(bad: object) -> None:
    for channel in (AWGN(), RayleighFading(), RicianFading(1.0)):
        with pytest.raises(TypeError, match=r"complex64 or complex128|torch\.Tensor"):
            channel(bad, 10.0)


# randomness


def test_random_source_validation() -> None:
    with pytest.raises(TypeError, match="generator must be"):
        RandomSource("seed")
    with pytest.raises(ValueError, match="seed must be"):
        RandomSource(-1)
    assert RandomSource(None).generator("cpu") is None
    generator = torch.Generator()
    assert RandomSource(generator).generator("cpu") is generator
    with pytest.raises(ValueError, match="on the input's device"):
        RandomSource(generator).generator("meta")


@pytest.mark.parametrize(
    "make",
    [
        lambda g: AWGN(generator=g),
        lambda g: RayleighFading("symbol", generator=g),
        lambda g: RicianFading(2.0, 3, los_phase=None, generator=g),
    ],
)
def test_same_seed_same_output_other_seed_other_output(make) -> None:
    x = torch.randn(4, 32, dtype=torch.complex64)
    first, again, other = make(11)(x, 5.0), make(11)(x, 5.0), make(12)(x, 5.0)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # Seeds apart by a multiple of 2**32 drew one stream (torch's CPU generator keeps 32 bits).
    outputs = [make(11 + k * 2**32)(x, 5.0) for k in (0, 1, 2, 2**20)]
    assert not any(torch.equal(a, b) for i, a in enumerate(outputs) for b in outputs[i + 1 :])
    assert torch.equal(make(11 + 2**32)(x, 5.0), outputs[1])
    generator = torch.Generator().manual_seed(3)
    channel = make(generator)
    y1 = channel(x, 5.0)
    generator.manual_seed(3)
    assert torch.equal(channel(x, 5.0), y1)


# AWGN


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_awgn_noise_is_no_over_two_per_real_dimension(dtype: torch.dtype) -> None:
    x = torch.zeros(8, 20000, dtype=dtype)
    snr_db = 6.0
    y, state = AWGN(generator=1)(x, snr_db, return_state=True)
    no = 10 ** (-snr_db / 10)
    assert y.dtype == dtype and state.h is None
    assert float(state.no) == pytest.approx(no)
    assert within_variance_ci(y.real, no / 2) and within_variance_ci(y.imag, no / 2)
    assert within_mean_ci(y.real * y.imag, 0.0, no / 2)  # real and imaginary parts uncorrelated


def test_awgn_per_example_snr() -> None:
    snr_db = torch.tensor([-5.0, 0.0, 10.0, 30.0])
    y = AWGN(generator=2)(torch.zeros(4, 50000, dtype=torch.complex64), snr_db)
    for row, snr in zip(y, snr_db.tolist(), strict=True):
        assert within_variance_ci(torch.view_as_real(row), 10 ** (-snr / 10) / 2)


def test_awgn_gradient_reaches_input() -> None:
    x = torch.randn(3, 10, dtype=torch.complex64, requires_grad=True)
    AWGN(generator=0)(x, 0.0).abs().pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# fading


@pytest.mark.parametrize("coherence", ["example", 5, "symbol"])
def test_rayleigh_gains_are_cn01_and_follow_the_coherence(coherence: object) -> None:
    x = ones(4000, 12)
    y, state = RayleighFading(coherence, generator=3)(x, 200.0, return_state=True)
    h = state.h.expand_as(x)
    assert torch.allclose(y, h * x, atol=1e-6)  # 200 dB: the output is the applied gain
    first = h[:, 0]
    assert within_mean_ci(first.abs().pow(2), 1.0, 1.0)  # |h|^2 ~ Exp(1): mean 1, std 1
    assert within_mean_ci(first.real, 0.0, math.sqrt(0.5))
    assert within_mean_ci((first * first).real, 0.0, 0.5)  # circular: E[h^2] = 0
    if coherence == "example":
        assert torch.equal(h, h[:, :1].expand_as(h))
    elif coherence == 5:
        blocks = [h[:, 0:5], h[:, 5:10], h[:, 10:12]]
        assert all(torch.equal(b, b[:, :1].expand_as(b)) for b in blocks)
        assert not torch.equal(h[:, 0], h[:, 5])
    else:
        assert not torch.equal(h[:, 0], h[:, 1])


def test_rayleigh_noise_is_added_after_the_gain() -> None:
    x = torch.randn(16, 4096, dtype=torch.complex128)
    y, state = RayleighFading("symbol", generator=4)(x, 3.0, return_state=True)
    noise = y - state.h * x
    assert within_variance_ci(torch.view_as_real(noise), 10 ** (-0.3) / 2)


@pytest.mark.parametrize("k_factor", [0.0, 1.0, 10.0])
def test_rician_gain_statistics(k_factor: float) -> None:
    phase = 0.7
    _, state = RicianFading(k_factor, "symbol", los_phase=phase, generator=5)(
        ones(100, 1000), 20.0, return_state=True
    )
    h = state.h.flatten()
    los = math.sqrt(k_factor / (k_factor + 1))
    scattered_std = math.sqrt(1 / (k_factor + 1) / 2)  # per real dimension
    assert within_mean_ci(h.real, los * math.cos(phase), scattered_std)
    assert within_mean_ci(h.imag, los * math.sin(phase), scattered_std)
    assert abs(float(h.abs().pow(2).double().mean()) - 1.0) < 0.02


def test_rician_random_los_phase_lasts_a_coherence_block() -> None:
    _, state = RicianFading(10.0, 4, los_phase=None, generator=0)(
        ones(3, 10), 30.0, return_state=True
    )
    blocks = [state.h[:, 0:4], state.h[:, 4:8], state.h[:, 8:10]]
    assert all(torch.equal(b, b[:, :1].expand_as(b)) for b in blocks)
    assert not torch.equal(state.h[:, 0], state.h[:, 4])


def test_a_coherence_block_longer_than_the_example_costs_nothing() -> None:
    # The gains were repeated coherence times before being cut to the example's length: a
    # block of 2**62 symbols overflowed, one of 10**7 took gigabytes for 16 symbols.
    x = ones(3, 16)
    _, state = RayleighFading(2**62, generator=0)(x, 20.0, return_state=True)
    _, example = RayleighFading("example", generator=0)(x, 20.0, return_state=True)
    assert state.h.shape == (3, 16)
    assert torch.equal(state.h, example.h.expand_as(state.h))  # the same single draw each
    _, state = RicianFading(2.0, 10**12, los_phase=None, generator=0)(x, 20.0, return_state=True)
    assert torch.equal(state.h, state.h[:, :1].expand_as(state.h))


def test_rician_random_los_phase_without_a_generator_draws_from_sionna() -> None:
    # generator=None means Sionna's global generator for every draw: the LoS phase came from
    # torch's global one instead, so Sionna's seed did not reproduce the channel.
    from sionna.phy import config

    rng = config.torch_rng("cpu")
    saved = rng.get_state()
    gains = []
    try:
        for extra in (1, 2):
            rng.set_state(saved)
            torch.rand(extra)  # someone else draws from torch's global generator
            channel = RicianFading(3.0, "symbol", los_phase=None)
            gains.append(channel(ones(2, 8), 30.0, return_state=True)[1].h)
    finally:
        rng.set_state(saved)
    assert torch.equal(gains[0], gains[1])


def test_rician_random_los_phase_is_zero_mean() -> None:
    _, state = RicianFading(50.0, "symbol", los_phase=None, generator=6)(
        ones(200, 500), 20.0, return_state=True
    )
    assert abs(complex(state.h.mean())) < 0.02
    assert abs(float(state.h.abs().pow(2).mean()) - 1.0) < 0.02


@pytest.mark.parametrize("bad", ["block", 0, -3, 2.5, True])
def test_bad_coherence(bad: object) -> None:
    with pytest.raises(ValueError, match="coherence must be"):
        RayleighFading(bad)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_bad_k_factor(bad: float) -> None:
    with pytest.raises(ValueError, match="k_factor"):
        RicianFading(bad)
    with pytest.raises(TypeError, match="k_factor"):
        RicianFading("10 dB")
    with pytest.raises(TypeError, match="los_phase must be a number"):
        RicianFading(1.0, los_phase="a")


def test_fading_gradient_reaches_input() -> None:
    for channel in (RayleighFading(generator=0), RicianFading(3.0, 2, generator=0)):
        x = torch.randn(3, 10, dtype=torch.complex64, requires_grad=True)
        channel(x, 10.0).abs().pow(2).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


# equalization


def test_equalizers_match_float64_formulas() -> None:
    generator = torch.Generator().manual_seed(0)
    h = torch.randn(6, 5, dtype=torch.complex128, generator=generator)
    y = torch.randn(6, 5, dtype=torch.complex128, generator=generator)
    no = torch.full((6, 1), 0.3, dtype=torch.float64)
    state = ChannelState(no=no, h=h)
    x_zf, no_zf = equalize(y, state, "zf")
    x_mmse, no_mmse = equalize(y, state, "mmse")
    x_none, no_none = equalize(y, state, "none")
    for i in range(6):
        for j in range(5):
            hij, yij = complex(h[i, j]), complex(y[i, j])
            gain = abs(hij) ** 2
            assert complex(x_zf[i, j]) == pytest.approx(yij / hij)
            assert float(no_zf[i, j]) == pytest.approx(0.3 / gain)
            assert complex(x_mmse[i, j]) == pytest.approx(hij.conjugate() * yij / (gain + 0.3))
            assert float(no_mmse[i, j]) == pytest.approx(0.3 / (gain + 0.3))
    assert torch.equal(x_none, y) and torch.equal(no_none, no)


def test_equalizer_uses_the_estimate_and_its_error() -> None:
    h, h_hat = torch.tensor([1 + 0j]), torch.tensor([2 + 0j])
    state = ChannelState(no=torch.tensor(0.1), h=h, h_hat=h_hat, err_var=0.3)
    x_hat, no_eff = equalize(torch.tensor([4 + 0j]), state, "zf")
    assert complex(x_hat) == 2 and float(no_eff) == pytest.approx(0.4 / 4)


def test_mmse_without_fading_and_bad_method() -> None:
    x_hat, no_eff = equalize(torch.tensor([1.1 + 0j]), ChannelState(no=torch.tensor(0.1)), "mmse")
    assert complex(x_hat) == pytest.approx(1.0) and float(no_eff) == pytest.approx(0.1 / 1.1)
    with pytest.raises(ValueError, match="equalizer must be one of"):
        equalize(torch.tensor([1j]), ChannelState(no=torch.tensor(0.1)), "ml")


def test_zf_recovers_symbols_through_fading_at_high_snr() -> None:
    x = torch.randn(10, 64, dtype=torch.complex64)
    y, state = RayleighFading("symbol", generator=7)(x, 120.0, return_state=True)
    x_hat, _ = equalize(y, state, "zf")
    assert torch.allclose(x_hat, x, atol=1e-3)


# analog link


class Recorder(nn.Module):
    """A perfect channel that keeps what it was sent."""

    def forward(self, x, snr_db, *, return_state=False):
        self.sent = x.detach().clone()
        state = ChannelState(no=snr_db_to_no(snr_db, x))
        return (x, state) if return_state else x


def test_pairing_round_trip_odd_sizes() -> None:
    for shape in [(2, 1), (3, 7), (2, 3, 5, 5)]:
        x = torch.randn(shape)
        symbols = pair_to_complex(x)
        assert symbols.shape == (shape[0], math.ceil(math.prod(shape[1:]) / 2))
        assert torch.equal(unpair_to_real(symbols, x), x)
    with pytest.raises(TypeError, match="real floating-point"):
        pair_to_complex(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch dimension"):
        pair_to_complex(torch.ones(3))


def test_analog_link_normalizes_each_example_to_unit_power() -> None:
    recorder = Recorder()
    x = torch.randn(6, 3, 11) * torch.tensor([0.01, 1, 100, 3, 7, 1e3]).reshape(6, 1, 1)
    y = AnalogLink(recorder, equalizer="zf")(x, 10.0)
    energy = recorder.sent.abs().pow(2).mean(dim=1)
    assert torch.allclose(energy, torch.ones(6), rtol=1e-5)
    assert torch.allclose(y, x, rtol=1e-5)
    raw = AnalogLink(recorder, equalizer="zf", denormalize=False)(x, 10.0)
    assert torch.allclose(raw.pow(2).reshape(6, -1).sum(1) / 17, torch.ones(6), rtol=1e-5)


def test_analog_link_error_is_the_channel_noise() -> None:
    x = torch.randn(64, 2000, dtype=torch.float64)
    snr_db = 10.0
    y = AnalogLink(AWGN(generator=8), equalizer="zf")(x, snr_db)
    gain_sq = x.pow(2).mean(dim=1, keepdim=True) * 2  # energy per complex symbol
    scaled_error = (y - x) / gain_sq.sqrt()
    assert within_variance_ci(scaled_error, 10 ** (-snr_db / 10) / 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_analog_link_keeps_shape_and_dtype(dtype: torch.dtype) -> None:
    x = torch.randn(2, 3, 5).to(dtype)
    y = AnalogLink(RayleighFading(generator=0))(x, torch.tensor([5.0, 25.0]))
    assert y.shape == x.shape and y.dtype == dtype


@pytest.mark.parametrize(
    "channel",
    [
        AWGN(generator=0),
        RayleighFading(4, generator=0),
        RicianFading(2.0, generator=0),
        OFDMChannel(
            fft_size=12, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(1,), csi="ls", generator=0
        ),
    ],
    ids=["awgn", "rayleigh", "rician", "ofdm-ls"],
)
@pytest.mark.parametrize("equalizer", ["none", "zf", "mmse"])
def test_gradients_reach_the_transmitter_through_every_channel(channel, equalizer) -> None:
    encoder = nn.Linear(8, 6)
    x = torch.randn(4, 8)
    out = AnalogLink(channel, equalizer=equalizer)(encoder(x), 10.0)
    out.pow(2).sum().backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.abs().sum() > 0


def test_analog_link_bad_arguments() -> None:
    with pytest.raises(ValueError, match="equalizer must be one of"):
        AnalogLink(equalizer="ml")
    with pytest.raises(TypeError, match="channel must be"):
        AnalogLink(channel="awgn")
    with pytest.raises(ValueError, match="snr_db of shape"):
        AnalogLink()(torch.randn(4, 6), torch.zeros(3))
    with pytest.raises(ValueError, match=r"one value per example, shape \(batch,\)"):
        AnalogLink()(torch.randn(4, 10), torch.zeros(4, 5))
    with pytest.raises(TypeError, match="denormalize must be True or False"):
        AnalogLink(denormalize="no")


@pytest.mark.parametrize("channel", [AWGN, RayleighFading, lambda **kw: RayleighFading(3, **kw)])
def test_analog_link_sends_nothing_for_examples_without_values(channel) -> None:
    link = AnalogLink(channel(generator=0))
    for shape in ((2, 0), (0, 5), (3, 0, 4)):
        assert link(torch.randn(shape), 10.0).shape == shape


@pytest.mark.parametrize(
    "make",
    [
        lambda: AWGN(generator=1),
        lambda: RayleighFading(generator=2),
        lambda: RicianFading(2.0, generator=5),
        lambda: OFDMChannel(
            "cdl", "C", fft_size=16, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(0,), generator=3
        ),
    ],
    ids=["awgn", "rayleigh", "rician", "ofdm-cdl"],
)
def test_seeded_channels_pickle_and_go_on_drawing_the_same(make):
    """A seeded channel holds Sionna blocks of a class made at run time: pickling (torch.save of
    a whole model, multiprocessing) must rebuild them, generator state included."""
    channel = make()
    x = torch.ones(2, 40, dtype=torch.complex64)
    channel(x, 10.0)
    restored = pickle.loads(pickle.dumps(channel))
    assert torch.equal(restored(x, 10.0), channel(x, 10.0))


@pytest.mark.parametrize("features", [torch.zeros(0, 4), torch.zeros(3, 0)])
def test_analog_link_checks_the_snr_of_an_empty_input_too(features: torch.Tensor) -> None:
    """An empty input returned before the SNR was read: NaN or a mismatched shape passed."""
    link = AnalogLink(AWGN(generator=0))
    assert link(features, 10.0).shape == features.shape
    with pytest.raises(ValueError, match="snr_db must be finite"):
        link(features, float("nan"))
    with pytest.raises(ValueError, match=r"snr_db of shape \(5,\) does not match"):
        link(features, torch.zeros(5))
