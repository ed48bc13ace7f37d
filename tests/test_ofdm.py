"""The OFDM channel over TDL/CDL against its contract: shapes and padding, the state's h is the
channel applied, channel energy, noise variance, LS estimation error, Doppler, seeds, gradients."""

import math

import pytest
import torch

from aiflow_comm.channel.equalization import equalize
from aiflow_comm.channel.ofdm import OFDMChannel

Z = 5.0  # confidence-interval width in standard errors: these tests use fixed seeds
PER_FRAME = (
    12 * 72
)  # data REs of the default grid: 14 OFDM symbols, 2 pilot symbols, 72 subcarriers
NOISELESS_DB = 300.0  # no = 1e-30: noise far below float32 resolution of h * x


def symbols(batch: int, n: int, seed: int = 0, dtype=torch.complex64) -> torch.Tensor:
    """Unit-energy complex Gaussian symbols."""
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(2, batch, n, generator=g, dtype=torch.float64) / math.sqrt(2.0)
    return torch.complex(real[0], real[1]).to(dtype)


def energy(z: torch.Tensor) -> torch.Tensor:
    return z.real.double().square() + z.imag.double().square()


@pytest.mark.parametrize("n", [1, 100, PER_FRAME, PER_FRAME + 1, 3 * PER_FRAME - 5])
def test_shapes_and_padding_for_any_number_of_symbols(n: int) -> None:
    channel = OFDMChannel(csi="ls", generator=0)
    assert channel.data_symbols_per_frame == PER_FRAME
    x = symbols(3, n)
    y, state = channel(x, torch.tensor([0.0, 10.0, 20.0]), return_state=True)
    assert y.shape == state.h.shape == state.h_hat.shape == state.err_var.shape == (3, n)
    assert y.dtype == state.h.dtype == torch.complex64
    assert state.no.shape == (3, 1)
    # The padding carries no signal, so it does not leak into the output: y is h * x there too.
    y, state = OFDMChannel(generator=0)(x, NOISELESS_DB, return_state=True)
    assert torch.allclose(y, state.h * x, atol=1e-5)


def test_complex128_and_perfect_csi_state() -> None:
    x = symbols(2, 50, dtype=torch.complex128)
    y, state = OFDMChannel(generator=1)(x, 10.0, return_state=True)
    assert y.dtype == state.h.dtype == torch.complex128
    assert state.h_hat is None and state.err_var == 0.0
    assert float(state.no) == pytest.approx(0.1)


@pytest.mark.parametrize("model", ["tdl", "cdl"])
def test_state_h_is_the_channel_applied_at_each_data_re(model: str) -> None:
    # At an SNR where the noise vanishes, y = h x at every data RE, across frames: the h in
    # the state is the frequency response actually applied to each symbol.
    x = symbols(4, 2 * PER_FRAME + 7, seed=1)
    y, state = OFDMChannel(model, "C", speed=10.0, generator=2)(x, NOISELESS_DB, return_state=True)
    assert torch.allclose(y, state.h * x, atol=1e-5, rtol=1e-5)
    # The channel is frequency selective, and frames are independent realizations.
    frames = state.h[:, : 2 * PER_FRAME].reshape(4, 2, PER_FRAME)
    assert float((frames[:, 0] - frames[:, 1]).abs().mean()) > 0.3
    assert float(state.h[:, :72].abs().std(dim=1).mean()) > 0.05


def test_equalizing_with_the_state_recovers_x() -> None:
    x = symbols(2, 300, seed=2)
    y, state = OFDMChannel(csi="perfect", generator=3)(x, NOISELESS_DB, return_state=True)
    x_hat, _ = equalize(y, state, "zf")
    assert torch.allclose(x_hat, x, atol=1e-3)


@pytest.mark.parametrize("model", ["tdl", "cdl"])
def test_channel_energy_is_one_per_re_on_average(model: str) -> None:
    # Without normalization the model's own power: the profiles have unit total power and both
    # ends have single omnidirectional antennas, so E|h|^2 = 1. Frames are independent, so the
    # per-frame mean energies are i.i.d.: compare their mean with 1 within Z standard errors.
    frames = 300 if model == "tdl" else 60
    x = torch.ones(frames, PER_FRAME, dtype=torch.complex64)
    channel = OFDMChannel(model, "B", normalize_channel=False, generator=4)
    _, state = channel(x, NOISELESS_DB, return_state=True)
    per_frame = energy(state.h).mean(dim=1)
    standard_error = float(per_frame.std()) / math.sqrt(frames)
    assert abs(float(per_frame.mean()) - 1.0) <= Z * standard_error
    assert float(per_frame.std()) > 0.1  # frame-wide (slow) fading is there
    # Sionna's normalization makes every frame's mean energy over its whole grid exactly 1.
    _, state = OFDMChannel(model, "B", generator=4)(x, NOISELESS_DB, return_state=True)
    per_frame = energy(state.h).mean(dim=1)
    assert abs(float(per_frame.mean()) - 1.0) <= Z * float(per_frame.std()) / math.sqrt(frames)
    assert float(per_frame.std()) < 0.1


def test_noise_variance_is_no_per_re() -> None:
    # |y - h x|^2 is exponential with mean no: its sample mean has standard error no / sqrt(N).
    x = symbols(8, 2 * PER_FRAME, seed=3)
    snr_db = torch.tensor([0.0, 10.0] * 4)
    y, state = OFDMChannel(csi="ls", generator=5)(x, snr_db, return_state=True)
    residual = energy(y - state.h * x)
    for first, no in [(0, 1.0), (1, 0.1)]:
        samples = residual[first::2]
        assert abs(float(samples.mean()) - no) <= Z * no / math.sqrt(samples.numel())
    assert torch.allclose(state.no.flatten(), 10 ** (-snr_db / 10))


def test_ls_estimation_error_falls_with_snr_and_matches_err_var() -> None:
    # Static channel, nearest-pilot interpolation: every data RE takes the LS estimate of one
    # pilot RE, whose error is CN(0, no / |p|^2) = CN(0, no) (unit QPSK pilots). The errors are
    # independent across pilot REs, of which there are 2 * 72 per frame.
    batch = 40
    channel = OFDMChannel(csi="ls", interpolation="nn", generator=6)
    x = symbols(batch, PER_FRAME, seed=4)
    independent = batch * 2 * 72
    mses = []
    for snr_db in (0.0, 10.0, 20.0):
        no = 10 ** (-snr_db / 10)
        _, state = channel(x, snr_db, return_state=True)
        assert torch.allclose(state.err_var, torch.full_like(state.err_var, no))
        mse = float(energy(state.h_hat - state.h).mean())
        assert abs(mse - no) <= Z * no / math.sqrt(independent)
        mses.append(mse)
    assert mses[0] > mses[1] > mses[2]
    # Linear interpolation also works, its error also falls with the SNR.
    linear = OFDMChannel(csi="ls", interpolation="lin", speed=30.0, generator=6)
    errors = [
        float(energy(state.h_hat - state.h).mean())
        for state in (linear(x, s, return_state=True)[1] for s in (0.0, 20.0))
    ]
    assert errors[0] > errors[1]


def test_static_channel_without_doppler_varies_with_speed() -> None:
    x = symbols(16, PER_FRAME, seed=5)
    static = OFDMChannel(speed=0.0, generator=7)
    _, state = static(x, NOISELESS_DB, return_state=True)
    h = state.h.reshape(16, 12, 72)  # (example, data OFDM symbol, subcarrier)
    assert torch.allclose(h, h[:, :1].expand_as(h), atol=1e-6)
    moving = OFDMChannel(speed=100.0, generator=7)
    _, state = moving(x, NOISELESS_DB, return_state=True)
    h = state.h.reshape(16, 12, 72)
    assert float((h[:, -1] - h[:, 0]).abs().mean()) > 0.1


def test_data_resource_elements_skip_the_pilot_symbols() -> None:
    channel = OFDMChannel(num_ofdm_symbols=5, fft_size=8, pilot_ofdm_symbol_indices=(0, 3))
    positions = channel.data_resource_elements
    assert positions.shape == (channel.data_symbols_per_frame, 2) == (24, 2)
    assert sorted(set(positions[:, 0].tolist())) == [1, 2, 4]
    assert positions[:9].tolist() == [[1, k] for k in range(8)] + [[2, 0]]
    no_pilots = OFDMChannel(pilot_ofdm_symbol_indices=())
    assert no_pilots.data_symbols_per_frame == 14 * 72


@pytest.mark.parametrize(
    ("model", "profile", "direction"), [("tdl", "E", "uplink"), ("cdl", "D", "downlink")]
)
def test_same_seed_same_output(model: str, profile: str, direction: str) -> None:
    x = symbols(3, 500, seed=6)

    def run_seeded(seed):
        channel = OFDMChannel(
            model, profile, speed=3.0, direction=direction, csi="ls", generator=seed
        )
        return channel(x, 5.0, return_state=True)

    (y1, s1), (y2, s2), (y3, _) = run_seeded(11), run_seeded(11), run_seeded(12)
    assert torch.equal(y1, y2) and torch.equal(s1.h, s2.h) and torch.equal(s1.h_hat, s2.h_hat)
    assert not torch.equal(y1, y3)
    gen_a, gen_b = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    channel_a = OFDMChannel(model, profile, direction=direction, generator=gen_a)
    channel_b = OFDMChannel(model, profile, direction=direction, generator=gen_b)
    assert torch.equal(channel_a(x, 5.0), channel_b(x, 5.0))


def test_gradient_reaches_x() -> None:
    # L = sum |y|^2 with y = h x + n: PyTorch's gradient for a real loss is 2 conj(h) y.
    x = symbols(2, PER_FRAME + 10, seed=7).requires_grad_()
    y, state = OFDMChannel(generator=8)(x, 10.0, return_state=True)
    energy(y).sum().backward()
    assert x.grad is not None
    expected = 2 * state.h.conj() * y.detach()
    assert torch.allclose(x.grad, expected.to(x.grad.dtype), atol=1e-4)


@pytest.mark.parametrize("csi", ["perfect", "ls"])
def test_a_first_use_under_inference_mode_leaves_training_possible(csi: str) -> None:
    """The Sionna blocks built on first use under inference_mode held inference tensors: every
    later training step raised 'Inference tensors cannot be saved for backward'."""
    channel = OFDMChannel(generator=3, csi=csi)
    x = symbols(2, PER_FRAME, seed=1)
    with torch.inference_mode():
        assert channel(x, 10.0).is_inference()
    x = x.clone().requires_grad_()
    energy(channel(x, 10.0)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "rayleigh"}, ValueError, "model must be one of"),
        ({"profile": "F"}, ValueError, "profile must be one of"),
        ({"model": "cdl", "profile": "a"}, ValueError, "profile must be one of"),
        ({"csi": "lmmse"}, ValueError, "csi must be one of"),
        ({"interpolation": "cubic"}, ValueError, "interpolation must be one of"),
        ({"direction": "sideways"}, ValueError, "direction must be one of"),
        ({"pilot_ofdm_symbol_indices": (2, 14)}, ValueError, r"\[0, num_ofdm_symbols=14\)"),
        ({"pilot_ofdm_symbol_indices": (-1,)}, ValueError, "pilot_ofdm_symbol_indices"),
        ({"pilot_ofdm_symbol_indices": (2, 2)}, ValueError, "distinct"),
        ({"pilot_ofdm_symbol_indices": 2}, TypeError, "sequence of ints"),
        ({"pilot_ofdm_symbol_indices": (), "csi": "ls"}, ValueError, "needs pilots"),
        (
            {"num_ofdm_symbols": 2, "pilot_ofdm_symbol_indices": (0, 1)},
            ValueError,
            "no OFDM symbol for data",
        ),
        ({"speed": -1.0}, ValueError, "speed must be"),
        ({"delay_spread": 0.0}, ValueError, "delay_spread must be"),
        ({"fft_size": 0}, ValueError, "fft_size must be"),
        ({"cyclic_prefix_length": 100}, ValueError, "cyclic_prefix_length"),
        ({"generator": "seed"}, TypeError, "generator must be"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        OFDMChannel(**kwargs)


def test_bad_inputs_raise() -> None:
    channel = OFDMChannel(generator=0)
    with pytest.raises(TypeError, match="complex64 or complex128"):
        channel(torch.ones(2, 10), 10.0)
    with pytest.raises(ValueError, match=r"shape \(batch, n\).*got shape \(10,\)"):
        channel(torch.ones(10, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match=r"got shape \(2, 0\)"):
        channel(torch.ones(2, 0, dtype=torch.complex64), 10.0)
    with pytest.raises(ValueError, match="snr_db of shape"):
        channel(torch.ones(2, 10, dtype=torch.complex64), torch.zeros(3))
    with pytest.raises(ValueError, match=r"one value per example.*got shape \(2, 10\)"):
        channel(torch.ones(2, 10, dtype=torch.complex64), torch.zeros(2, 10))
    with pytest.raises(ValueError, match="snr_db must be finite"):
        channel(torch.ones(2, 10, dtype=torch.complex64), float("nan"))
