"""SplitLink: the bytes path in eval mode, differentiable surrogates in training, every link."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from aiflow_comm.channel import (
    AWGN,
    AnalogLink,
    DigitalLink,
    OFDMChannel,
    RayleighFading,
    RicianFading,
)
from aiflow_comm.codec import QuantizedTensor, fake_quantize, quantize
from aiflow_comm.kernels import dequantize_project_linear, project_quantize_linear
from aiflow_comm.split import SplitLink, SplitModel, split_model
from aiflow_comm.split.link import _fusable


def projection_pair(channels: int = 16, reduced: int = 4) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return nn.Linear(channels, reduced), nn.Linear(reduced, channels)


def links() -> dict[str, nn.Module | None]:
    small_ofdm = OFDMChannel(fft_size=12, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(1,),
                             generator=0)  # fmt: skip
    return {
        "perfect": None,
        "analog-awgn": AnalogLink(AWGN(generator=0)),
        "analog-rayleigh": AnalogLink(RayleighFading(4, generator=0), equalizer="zf"),
        "analog-ofdm": AnalogLink(small_ofdm),
        "digital-awgn": DigitalLink("16qam", generator=0),
        "digital-rayleigh": DigitalLink("qpsk", channel=RayleighFading("symbol", generator=0)),
        "digital-rician": DigitalLink("qpsk", channel=RicianFading(3.0, "symbol", generator=0)),
        "digital-ofdm": DigitalLink("qpsk", channel=OFDMChannel(
            fft_size=12, num_ofdm_symbols=4, pilot_ofdm_symbol_indices=(1,),
            normalize_channel=False, generator=0)),
    }  # fmt: skip


def test_eval_forward_is_the_bytes_path_bit_for_bit() -> None:
    encoder, decoder = projection_pair()
    link = SplitLink(bits=4, group_size=3, encoder=encoder, decoder=decoder).eval()
    features = torch.randn(5, 7, 16)
    payload = link.encode(features)
    assert isinstance(payload, bytes)
    assert torch.equal(link(features), link.decode(payload))


def test_training_forward_is_fake_quantization_with_the_encoder() -> None:
    encoder, decoder = projection_pair()
    link = SplitLink(bits=8, group_size=4, encoder=encoder, decoder=decoder).train()
    features = torch.randn(3, 16)
    expected = decoder(fake_quantize(encoder(features), 8, 4))
    assert torch.equal(link(features), expected)


@pytest.mark.parametrize("name", list(links()))
def test_gradients_reach_the_head_through_every_link(name: str) -> None:
    link = links()[name]
    head, tail = nn.Linear(10, 16), nn.Linear(16, 3)
    encoder, decoder = projection_pair()
    split = SplitLink(bits=8, group_size=4, encoder=encoder, decoder=decoder, link=link,
                      snr_db=None if link is None else (0.0, 20.0), generator=1)  # fmt: skip
    model = SplitModel(head, split, tail).train()
    model(torch.randn(6, 10)).pow(2).sum().backward()
    for module in (head, encoder, decoder, tail):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_snr_range_is_drawn_per_example() -> None:
    split = SplitLink(link=AnalogLink(), snr_db=(-5.0, 15.0), generator=0)
    snr = split.draw_snr_db(1000, torch.device("cpu"))
    assert snr.shape == (1000,) and float(snr.min()) >= -5 and float(snr.max()) <= 15
    assert abs(float(snr.mean()) - 5.0) < 5 * 20 / math.sqrt(12 * 1000)
    assert split.draw_snr_db(3, torch.device("cpu"), snr_db=7.0) == 7.0


def test_digital_eval_at_high_snr_delivers_the_bytes_exactly() -> None:
    features = torch.randn(4, 32)
    perfect = SplitLink(bits=8, group_size=16).eval()
    digital = SplitLink(bits=8, group_size=16, link=DigitalLink("16qam", generator=0),
                        snr_db=40.0).eval()  # fmt: skip
    assert torch.equal(digital(features), perfect(features)) and digital.erasures == 0


def test_digital_eval_at_low_snr_erases_failed_packets() -> None:
    features = torch.randn(4, 32) + 3.0
    digital = SplitLink(bits=8, group_size=16, link=DigitalLink("16qam", generator=0),
                        snr_db=0.0).eval()  # fmt: skip
    received = digital(features)
    assert digital.erasures == 4 and torch.equal(received, torch.zeros_like(received))


def test_digital_eval_keeping_errors_flips_code_bits_only() -> None:
    features = torch.randn(8, 64)
    clean = SplitLink(bits=8, group_size=16).eval()(features)
    keep = SplitLink(bits=8, group_size=16, link=DigitalLink("qpsk", generator=0), snr_db=4.0,
                     on_error="keep").eval()  # fmt: skip
    received = keep(features)
    assert keep.erasures == 0 and not torch.equal(received, clean)
    scales = quantize(features, 8, 16).scales.repeat_interleave(16, 1)
    steps = (received - clean) / scales  # whole quantization steps: only codes changed
    assert float((steps - steps.round()).abs().max()) < 1e-3
    assert float((steps != 0).float().mean()) < 0.5
    with pytest.raises(ValueError, match="on_error"):
        SplitLink(on_error="ignore")


def test_same_seed_same_training_output_over_a_digital_surrogate() -> None:
    def run() -> torch.Tensor:
        split = SplitLink(bits=4, group_size=8, link=DigitalLink("qpsk"), snr_db=(0.0, 6.0),
                          generator=5)  # fmt: skip
        return split.train()(torch.linspace(-1, 1, 64).reshape(2, 32))

    first = run()
    assert torch.equal(first, run())
    clean = fake_quantize(torch.linspace(-1, 1, 64).reshape(2, 32), 4, 8)
    assert not torch.equal(first, clean)  # bits were flipped at a few dB


def test_payload_and_channel_uses_per_example() -> None:
    features = torch.randn(3, 4, 16)
    encoder, _ = projection_pair()
    split = SplitLink(bits=4, group_size=4, encoder=encoder)
    assert split.payload_bits(features) == 8 * len(split.encode(features[:1]))
    assert split.channel_uses(features) is None
    digital = SplitLink(bits=4, group_size=4, encoder=encoder, link=DigitalLink("16qam"),
                        snr_db=10.0)  # fmt: skip
    assert digital.channel_uses(features) == math.ceil(digital.payload_bits(features) / 4)
    analog = SplitLink(bits=None, encoder=encoder, link=AnalogLink(), snr_db=10.0)
    assert analog.channel_uses(features) == 8 and analog.payload_bits(features) == 32 * 16


@pytest.mark.parametrize("bits", [4, None])
def test_measuring_in_training_mode_leaves_a_batchnorm_encoder_alone(bits: int | None) -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8))
    split = SplitLink(bits=bits, group_size=4, encoder=encoder, link=AnalogLink(), snr_db=10.0)
    features = torch.randn(3, 16) * 5 + 3
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    # One example through a training BatchNorm1d raised; it also moved the running statistics.
    assert split.payload_bits(features) == split.eval().payload_bits(features)
    assert split.train().channel_uses(features) == 4
    assert split.training and encoder[1].training
    assert all(torch.equal(v, state[k]) for k, v in encoder.state_dict().items())


@pytest.mark.parametrize("name", list(links()))
def test_an_empty_batch_passes_every_link_in_both_modes(name: str) -> None:
    encoder, decoder = projection_pair()
    split = SplitLink(bits=4, group_size=4, encoder=encoder, decoder=decoder, link=links()[name],
                      snr_db=10.0)  # fmt: skip
    for training in (True, False):
        assert split.train(training)(torch.randn(0, 3, 16)).shape == (0, 3, 16)
    with pytest.raises(ValueError, match="at least one example"):
        split.payload_bits(torch.randn(0, 3, 16))
    with pytest.raises(ValueError, match="at least one example"):
        split.channel_uses(torch.randn(0, 3, 16))


def test_split_model_with_a_split_link_on_a_cnn() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip
    split = split_model(model, "1")
    joint = SplitModel(split.head, SplitLink(bits=8, group_size=64), split.tail).eval()
    x = torch.randn(2, 1, 8, 8)
    assert (joint(x) - model(x)).abs().max() < 0.05


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"bits": 3}, ValueError, "bits"),
        ({"link": nn.Identity(), "snr_db": 1.0}, TypeError, "AnalogLink, a DigitalLink"),
        ({"bits": None, "link": DigitalLink(), "snr_db": 1.0}, ValueError, "give bits"),
        ({"link": AnalogLink()}, ValueError, "needs snr_db"),
        ({"link": AnalogLink(), "snr_db": (10.0, 0.0)}, ValueError, "low <= high"),
        ({"snr_db": "10 dB"}, TypeError, "snr_db must be"),
        ({"snr_db": ("0 dB", 10.0)}, TypeError, r"snr_db range must be two numbers"),
        ({"snr_db": (None, 10.0)}, TypeError, r"snr_db range must be two numbers"),
        ({"encoder": lambda x: x}, TypeError, "encoder must be"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SplitLink(**kwargs)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        SplitLink()(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        SplitLink()(torch.ones(4))
    with pytest.raises(ValueError, match="need quantization"):
        SplitLink(bits=None).encode(torch.ones(2, 4))
    conv = SplitLink(bits=8, group_size=4, encoder=nn.Conv2d(4, 2, 1))
    for features in (torch.ones(2, 4, 5), torch.ones(1, 2, 4, 5, 5)):
        for training in (True, False):
            with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
                conv.train(training)(features)
        with pytest.raises(ValueError, match=r"\(batch, channels, height, width\)"):
            conv.encode(features)


def codes_within_one_step(fused: QuantizedTensor, plain: QuantizedTensor) -> bool:
    """Same layout, scales within float error, codes equal but for a few one step off."""
    rows = plain.scales.shape[0]
    a, b = (q.dequantize().double().reshape(rows, -1) for q in (fused, plain))
    step = plain.scales.double().repeat_interleave(plain.group_size, -1)[:, : a.shape[-1]]
    off = ((a - b).abs() / step).reshape(-1)
    return fused.shape == plain.shape and float(off.max()) < 1.01 and float(off.mean()) < 0.01


def test_a_linear_encoder_and_decoder_run_fused_in_deployment() -> None:
    encoder, decoder = projection_pair(channels=64, reduced=24)
    link = SplitLink(bits=4, group_size=8, encoder=encoder, decoder=decoder).eval()
    features = torch.randn(6, 5, 64)
    payload = link.encode(features)
    fused = project_quantize_linear(features, encoder, 4, 8)
    assert payload == fused.to_bytes()
    assert codes_within_one_step(fused, quantize(encoder(features).detach(), 4, 8))
    decoded = link.decode(payload)
    assert torch.equal(decoded, dequantize_project_linear(fused, decoder))
    assert torch.allclose(decoded, decoder(fused.dequantize()), atol=1e-5)
    assert torch.equal(link(features), decoded)


@pytest.mark.parametrize("kernel", [1, 3])
def test_a_conv_encoder_groups_along_channels(kernel: int) -> None:
    torch.manual_seed(1)
    encoder = nn.Conv2d(32, 16, kernel, padding=kernel // 2)
    decoder = nn.Conv2d(16, 32, 1)
    link = SplitLink(bits=8, group_size=16, encoder=encoder, decoder=decoder)
    features = torch.randn(2, 32, 5, 7)
    z = encoder(features)
    trained = decoder(fake_quantize(z.movedim(1, -1), 8, 16).movedim(-1, 1))
    assert link.group_dim == 1 and torch.equal(link.train()(features), trained)

    link.eval()
    q = QuantizedTensor.from_bytes(link.encode(features))
    assert q.shape == (2, 5, 7, 16) and q.group_size == 16  # channels-last, one group per pixel
    assert codes_within_one_step(q, quantize(z.detach().movedim(1, -1), 8, 16))
    out = link(features)
    assert out.shape == (2, 32, 5, 7) and torch.equal(out, link.decode(link.encode(features)))
    assert (out - trained).abs().max() < 0.05 * trained.abs().max()


def test_a_conv_encoder_over_a_digital_link_at_high_snr_equals_the_perfect_link() -> None:
    torch.manual_seed(2)
    encoder, decoder = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
    perfect = SplitLink(bits=8, group_size=4, encoder=encoder, decoder=decoder).eval()
    digital = SplitLink(bits=8, group_size=4, encoder=encoder, decoder=decoder, snr_db=40.0,
                        link=DigitalLink("16qam", generator=0)).eval()  # fmt: skip
    features = torch.randn(3, 8, 4, 4)
    sent = QuantizedTensor.from_bytes(perfect.encode(features))
    assert torch.allclose(digital(features), decoder(sent.dequantize().movedim(-1, 1)), atol=1e-5)
    assert digital.erasures == 0
    assert torch.allclose(digital(features), perfect(features), atol=1e-5)


def test_training_through_an_in_place_decoder():
    """The decoder may open with ReLU(inplace=True): fake quantization hands it a fresh tensor."""
    decoder = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(64, 8))
    link = SplitLink(bits=4, group_size=16, decoder=decoder).train()
    x = torch.randn(4, 64, requires_grad=True)
    link(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_keep_mode_counts_the_codes_it_sends() -> None:
    """With on_error="keep" only the packed codes cross the link: 4 bits x 64 values."""
    keep = SplitLink(bits=4, group_size=16, link=DigitalLink("qpsk"), snr_db=10.0,
                     on_error="keep")  # fmt: skip
    features = torch.randn(2, 64)
    assert keep.payload_bits(features) == 4 * 64 and keep.channel_uses(features) == 4 * 64 // 2
    erase = SplitLink(bits=4, group_size=16, link=DigitalLink("qpsk"), snr_db=10.0)
    assert erase.payload_bits(features) == 8 * len(erase.encode(features[:1]))


def test_forward_snr_values_are_checked() -> None:
    digital = SplitLink(bits=4, group_size=16, link=DigitalLink("qpsk", generator=0),
                        snr_db=10.0)  # fmt: skip
    features = torch.randn(3, 32)
    for mode in (digital.train, digital.eval):
        mode()
        with pytest.raises(ValueError, match=r"one value or one per example \(3\); got shape"):
            digital(features, snr_db=torch.tensor([30.0, 30.0, 30.0, -5.0, 7.0]))
        with pytest.raises(TypeError, match="forward's snr_db must be a number or a real tensor"):
            digital(features, snr_db=(0.0, 10.0))
        with pytest.raises(ValueError, match="snr_db must be finite"):
            digital(features, snr_db=float("nan"))
        assert digital(features, snr_db=np.float32(30.0)).shape == (3, 32)
    assert SplitLink(bits=4, link=AnalogLink(), snr_db=np.int64(10)).snr_db == 10.0


def test_one_snr_value_in_a_tensor_of_shape_1_and_nan_named() -> None:
    """A (1,)-shaped SNR was refused over an AnalogLink, with the inner complex shape quoted;
    a NaN in a tensor SNR was reported as 'ebno_db' by the digital surrogate."""
    analog = SplitLink(bits=4, group_size=8, link=AnalogLink(RayleighFading(generator=0)),
                       snr_db=10.0, generator=0)  # fmt: skip
    features = torch.randn(4, 32)
    assert analog(features, snr_db=torch.tensor([5.0])).shape == (4, 32)
    digital = SplitLink(bits=4, group_size=8, link=DigitalLink(generator=0), snr_db=10.0)
    with pytest.raises(ValueError, match=r"snr_db must be finite; got \[nan, 10.0\]"):
        digital.train()(torch.randn(2, 8), snr_db=torch.tensor([float("nan"), 10.0]))
    with pytest.raises(ValueError, match="group_size"):  # checked without bits too
        SplitLink(bits=None, group_size=0)


def test_digital_eval_decodes_with_the_fused_decoder() -> None:
    """Over a DigitalLink eval decoded the packets, then ran the decoder on the floats: never
    the fused dequantize_project that decode() runs."""
    torch.manual_seed(3)
    encoder, decoder = nn.Linear(32, 16), nn.Linear(16, 32)
    digital = SplitLink(bits=8, group_size=8, encoder=encoder, decoder=decoder,
                        link=DigitalLink("16qam", generator=0), snr_db=40.0).eval()  # fmt: skip
    features = torch.randn(3, 32)
    want = torch.cat([digital.decode(digital.encode(f[None])) for f in features])
    assert torch.equal(digital(features), want) and digital.erasures == 0


@pytest.mark.filterwarnings("ignore")
def test_training_over_a_channel_without_a_surrogate_says_what_to_do() -> None:
    """The error told the user to pass a measured error rate, which SplitLink cannot take."""
    ofdm = DigitalLink("qpsk", channel=OFDMChannel("tdl", "A", generator=0))
    link = SplitLink(bits=4, group_size=8, link=ofdm, snr_db=30.0).train()
    with pytest.raises(NotImplementedError, match="SplitLink trains over a DigitalLink by"):
        link(torch.randn(3, 40))


def test_keep_mode_over_an_analog_link_counts_the_message() -> None:
    analog = SplitLink(bits=4, group_size=16, link=AnalogLink(), snr_db=10.0, on_error="keep")
    features = torch.randn(2, 64)
    assert analog.payload_bits(features) == 8 * len(analog.encode(features[:1]))


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv1x1"])
def test_eval_under_autocast_returns_autocast_dtype_as_training_does(conv):
    """The fused decoder of eval mode returns what the decoder itself returns under autocast."""
    torch.manual_seed(0)
    if conv:
        link = SplitLink(8, 8, encoder=nn.Conv2d(16, 8, 1), decoder=nn.Conv2d(8, 16, 1))
        x = torch.randn(2, 16, 4, 4)
    else:
        link = SplitLink(8, 8, encoder=nn.Linear(16, 8), decoder=nn.Linear(8, 16))
        x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = link.train()(x)
        deployed = link.eval()(x)
    assert trained.dtype == deployed.dtype == torch.bfloat16
    assert link.eval()(x).dtype == torch.float32  # autocast off: float32 as before
    # The fused encoder's codes are recorded as the encoder's own output would be; with the
    # decoder left out, eval returned float32 while training returned bfloat16.
    encoder_only = SplitLink(8, 8, encoder=link.encoder)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert encoder_only.eval()(x).dtype == torch.bfloat16
        assert QuantizedTensor.from_bytes(encoder_only.encode(x)).dtype == torch.bfloat16
        assert encoder_only.train()(x).dtype == torch.bfloat16


def _spectral_norm_after_a_step() -> nn.Module:
    encoder = nn.utils.spectral_norm(nn.Linear(32, 16))
    encoder(torch.randn(2, 32))
    with torch.no_grad():  # an optimizer step: the weight used is recomputed by a pre-hook
        encoder.weight_orig.mul_(3.0).add_(1.0)
    return encoder


class _ReluLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


def _hooked_linear() -> nn.Module:
    encoder = nn.Linear(32, 16)
    encoder.register_forward_hook(lambda module, args, out: out * 0.5)
    return encoder


def _parametrized_linear() -> nn.Module:
    class Doubled(nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return 2 * weight

    encoder = nn.Linear(32, 16)
    nn.utils.parametrize.register_parametrization(encoder, "weight", Doubled())
    return encoder


@pytest.mark.parametrize(
    "make", [_spectral_norm_after_a_step, lambda: _ReluLinear(32, 16), _hooked_linear],
    ids=["spectral-norm", "subclass", "forward-hook"],
)  # fmt: skip
def test_eval_sends_what_the_encoder_computes_when_it_is_not_a_plain_layer(make):
    """Only an nn.Linear / 1x1 nn.Conv2d running the stock forward without hooks is fused in
    eval mode: the fused ops read .weight and .bias, so anything else runs its own forward."""
    torch.manual_seed(0)
    encoder = make()
    link = SplitLink(bits=8, group_size=16, encoder=encoder).eval()
    features = torch.randn(4, 32)
    with torch.no_grad():
        expected = quantize(encoder(features), 8, 16).dequantize()
        assert torch.equal(link(features), expected)


@pytest.mark.parametrize(
    "make",
    [_parametrized_linear, lambda: nn.modules.linear.NonDynamicallyQuantizableLinear(32, 16)],
    ids=["parametrized", "renamed-subclass"],
)
def test_eval_fuses_layers_that_compute_as_a_plain_one(make):
    """A parametrized weight (read through its property) and a subclass with the stock forward
    are fused: the same values up to the summation order, within one quantization step."""
    torch.manual_seed(0)
    encoder = make()
    link = SplitLink(bits=8, group_size=16, encoder=encoder).eval()
    features = torch.randn(4, 32)
    assert _fusable(encoder) == "linear"
    with torch.no_grad():
        q = quantize(encoder(features), 8, 16)
        sent = link._quantized(features)
        assert torch.allclose(sent.dequantize(), q.dequantize(), rtol=0,
                              atol=float(q.scales.max()) * 1.01)  # fmt: skip
