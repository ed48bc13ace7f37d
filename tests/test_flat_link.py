"""The closed-form analog link over flat channels against the composed channel and equalizer
(same noise, float64), its custom backward against numerical gradients, and its statistics."""

import math

import pytest
import torch
from torch import nn

from aiflow_comm.channel import (
    AWGN,
    ChannelState,
    OFDMChannel,
    RayleighFading,
    RicianFading,
    equalize,
    normalize_power,
    snr_db_to_no,
)
from aiflow_comm.channel.analog import AnalogLink
from aiflow_comm.channel.flat_link import (
    equalized_estimate,
    equalized_response,
    flat_link,
    is_flat,
)

CHANNELS = {
    "awgn": lambda: AWGN(generator=1),
    "rayleigh-example": lambda: RayleighFading(generator=1),
    "rayleigh-block": lambda: RayleighFading(3, generator=1),
    "rayleigh-symbol": lambda: RayleighFading("symbol", generator=1),
    "rician": lambda: RicianFading(3.0, los_phase=None, generator=1),
}


def complex_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((*shape, 2), dtype=torch.float64, generator=generator)


def equalizer_factor(h: torch.Tensor | None, no: torch.Tensor, method: str) -> torch.Tensor:
    """``g`` written out independently of the library: 1, 1/h or conj(h) / (|h|^2 + no)."""
    h = torch.ones((), dtype=torch.complex128) if h is None else h
    if method == "none":
        return torch.ones_like(h)
    if method == "zf":
        return 1.0 / h
    return h.conj() / (h.abs() ** 2 + no)


@pytest.mark.parametrize("name", sorted(CHANNELS))
@pytest.mark.parametrize("equalizer", ["none", "zf", "mmse"])
@pytest.mark.parametrize("denormalize", [True, False])
def test_matches_the_composed_channel_and_equalizer_with_the_same_noise(
    name: str, equalizer: str, denormalize: bool
) -> None:
    x = torch.randn(5, 13, dtype=torch.complex128) * torch.tensor([[0.1], [1], [3], [10], [1e3]])
    snr_db = torch.tensor([-3.0, 0.0, 7.0, 15.0, 30.0], dtype=torch.float64)
    channel = CHANNELS[name]()
    h = channel.gains(x) if isinstance(channel, RayleighFading) else None
    no = snr_db_to_no(snr_db, x)
    signal, deviation = equalized_response(h, no, equalizer)
    z = complex_noise(x.shape, seed=3)
    signal, deviation = signal.expand(x.shape), deviation.expand(x.shape)
    flat = equalized_estimate(torch.view_as_real(x), signal, deviation, z, denormalize)

    g = equalizer_factor(h, no, equalizer)
    w = deviation * torch.view_as_complex(z) / g  # the channel noise for which g w = deviation z
    u, gain = normalize_power(x)
    received = (u if h is None else h * u) + w
    composed, _ = equalize(received, ChannelState(no=no, h=h), equalizer)
    composed = composed * gain if denormalize else composed
    assert torch.allclose(torch.view_as_complex(flat), composed, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("complex_signal", [False, True])
@pytest.mark.parametrize("per_symbol", [False, True])
@pytest.mark.parametrize("denormalize", [True, False])
def test_backward_matches_numerical_gradients(
    complex_signal: bool, per_symbol: bool, denormalize: bool
) -> None:
    generator = torch.Generator().manual_seed(0)
    pairs = torch.randn(3, 4, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    width = 4 if per_symbol else 1
    dtype = torch.complex128 if complex_signal else torch.float64
    signal = torch.randn(3, width, dtype=dtype, generator=generator)
    deviation = torch.rand(3, width, dtype=torch.float64, generator=generator) + 0.1
    noise = torch.randn(3, 4, 2, dtype=torch.float64, generator=generator)
    signal.requires_grad_(True)
    deviation.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p, s, d: equalized_estimate(p, s, d, noise, denormalize),
        (pairs, signal, deviation),
    )


def test_an_all_zero_example_gets_finite_gradients() -> None:
    pairs = torch.zeros(2, 3, 2, dtype=torch.float64)
    pairs[1] = 1.0
    pairs.requires_grad_(True)
    ones, half = torch.ones(2, 1, dtype=torch.float64), torch.full((2, 1), 0.5, dtype=torch.float64)
    for denormalize in (True, False):
        out = equalized_estimate(pairs, ones, half, torch.ones(2, 3, 2, dtype=torch.float64),
                                 denormalize)  # fmt: skip
        (grad,) = torch.autograd.grad(out.sum(), pairs)
        assert torch.isfinite(grad).all() and torch.isfinite(out).all()


@pytest.mark.parametrize("magnitude", [1e-30, 1e-7, 1e25])
@pytest.mark.parametrize("denormalize", [True, False])
def test_features_of_any_magnitude_see_the_snr_asked(magnitude: float, denormalize: bool) -> None:
    """Features below an RMS of 1e-6 were sent below unit power (1e-7: a relative error of 5
    at 10 dB instead of 0.1), past 1e19 the sum of squares overflowed (a non-finite output), and
    below 1e-19 without denormalization the gradient overflowed."""
    x = torch.randn(8, 4096, generator=torch.Generator().manual_seed(1)) * magnitude
    x.requires_grad_(True)
    link = AnalogLink(AWGN(generator=0), equalizer="zf", denormalize=denormalize)
    y = link(x, 10.0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(grad).all()
    sent = x.detach().double()
    if not denormalize:  # unit energy per complex symbol: pairs of values
        sent = sent / (sent.pow(2).sum(1, keepdim=True) / (sent.shape[1] / 2)).sqrt()
    relative = float((y.detach().double() - sent).pow(2).mean() / sent.pow(2).mean())
    assert abs(relative - 0.1) < 0.01  # zero forcing over AWGN: the error is no = 0.1


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_error_variance_is_the_equalized_noise(name: str) -> None:
    """Zero-forcing error over AWGN and fading: ``no * gain^2 / |h|^2`` per real dimension x 2."""
    x = torch.randn(64, 4000, dtype=torch.complex128)
    channel = CHANNELS[name]()
    estimate = flat_link(x, channel, 10.0, "zf", True)
    reference = CHANNELS[name]()  # the same seed: the same gains, drawn first
    h = reference.gains(x) if isinstance(reference, RayleighFading) else torch.ones(())
    _, gain = normalize_power(x)
    normalized_error = (estimate - x) * h.abs() / gain
    variance = float(torch.view_as_real(normalized_error).pow(2).mean())
    n = normalized_error.numel() * 2
    assert abs(variance - 0.05) <= 5 * 0.05 * math.sqrt(2 / n)


def test_same_seed_same_output_and_float32_runs() -> None:
    x = torch.randn(4, 100, dtype=torch.complex64)
    first = flat_link(x, RayleighFading(generator=5), 5.0, "mmse", True)
    again = flat_link(x, RayleighFading(generator=5), 5.0, "mmse", True)
    other = flat_link(x, RayleighFading(generator=6), 5.0, "mmse", True)
    assert first.dtype == torch.complex64 and torch.equal(first, again)
    assert not torch.equal(first, other)


def test_analog_link_takes_the_flat_path_only_for_flat_channels() -> None:
    ofdm = OFDMChannel(fft_size=12, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(1,))
    assert all(is_flat(make()) for make in CHANNELS.values())
    assert not is_flat(ofdm) and not is_flat(nn.Identity())

    class Louder(AWGN):
        def forward(self, x, snr_db, *, return_state=False):
            return super().forward(2 * x, snr_db, return_state=return_state)

    assert not is_flat(Louder())
    x = torch.randn(3, 8)
    link = AnalogLink(AWGN(generator=0), equalizer="zf")
    assert torch.allclose(link(x, 80.0), x, atol=1e-3)


def test_flat_link_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(batch, n\)"):
        flat_link(torch.ones(2, 3, 4, dtype=torch.complex64), AWGN(), 0.0, "zf", True)


@pytest.mark.parametrize("name", ["awgn", "rayleigh-example", "rayleigh-symbol", "rician"])
@pytest.mark.parametrize("equalizer", ["none", "zf", "mmse"])
@pytest.mark.parametrize("denormalize", [True, False])
def test_the_snr_gets_its_gradient(name: str, equalizer: str, denormalize: bool) -> None:
    """A learned SNR (or power) gets the gradient of the flat path, as of the composed one."""
    x = torch.randn(3, 6, dtype=torch.complex128, generator=torch.Generator().manual_seed(2))
    snr_db = torch.tensor([0.0, 5.0, 12.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: torch.view_as_real(flat_link(x, CHANNELS[name](), s, equalizer, denormalize)),
        (snr_db,),
    )
    link = AnalogLink(CHANNELS[name](), equalizer=equalizer)
    features = torch.randn(3, 16)
    (link(features, snr_db.float()) - features).pow(2).sum().backward()
    assert snr_db.grad is not None and bool(torch.isfinite(snr_db.grad).all())
