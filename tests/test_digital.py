"""The digital link against closed-form BERs and Sionna's own blocks; the bit-flip surrogates;
bytes of the wire format over the link; seeds and bad input."""

import math

import numpy as np
import pytest
import torch
from sionna.phy.channel import AWGN as SionnaAWGN
from sionna.phy.fec.ldpc import LDPC5GDecoder, LDPC5GEncoder
from sionna.phy.mapping import BinarySource, Demapper, Mapper
from sionna.phy.utils import compute_ber, compute_bler, ebnodb2no

from aiflow_comm.channel import AWGN, RayleighFading, RicianFading
from aiflow_comm.channel.digital import (
    DigitalLink,
    LinkResult,
    bit_flip_ste,
    bits_to_bytes,
    bytes_to_bits,
    quantized_bit_flip_ste,
)
from aiflow_comm.channel.modulation import MODULATIONS
from aiflow_comm.channel.randomness import seeded_block
from aiflow_comm.channel.theory import ber_awgn, ber_rayleigh, ber_rician
from aiflow_comm.codec import QuantizedTensor, WireFormatError, fake_quantize, quantize

Z = 5.0  # confidence-interval width in standard errors: these tests use fixed seeds

# Eb/N0 (dB) where each uncoded modulation has a BER of about 3e-2 to 4e-2.
EBNO_AWGN = {"bpsk": 2.0, "qpsk": 2.0, "16qam": 5.0, "64qam": 9.0, "256qam": 13.0}
EBNO_RAYLEIGH = {"bpsk": 8.0, "qpsk": 8.0, "16qam": 11.0, "64qam": 14.0, "256qam": 18.0}


def random_bits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed))


def within_binomial_ci(errors: int, n: int, p: float) -> bool:
    return abs(errors / n - p) <= Z * math.sqrt(p * (1 - p) / n) + 1e-4


# uncoded BER against the closed forms


@pytest.mark.parametrize("modulation", MODULATIONS)
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_uncoded_ber_matches_theory(modulation: str, channel: str) -> None:
    if channel == "awgn":
        ebno, theory, make = EBNO_AWGN[modulation], ber_awgn, AWGN
    else:
        ebno, theory = EBNO_RAYLEIGH[modulation], ber_rayleigh

        def make(generator):
            return RayleighFading("symbol", generator=generator)

    link = DigitalLink(modulation, channel=make(generator=11 + MODULATIONS.index(modulation)))
    bits = random_bits(200, 1200)  # 240,000 bits: a multiple of every bits-per-symbol
    result = link(bits, link.snr_db_for(ebno))
    p = theory(modulation, ebno)
    assert 0.02 < p < 0.05
    assert result.num_bits == bits.numel() and result.channel_uses == 1200 // link.bits_per_symbol
    assert within_binomial_ci(result.bit_errors, result.num_bits, p), (result.ber, p)
    assert result.bit_errors == int((result.bits != bits).sum())
    assert result.num_blocks == 200 and result.block_errors == int(
        (result.bits != bits).any(1).sum()
    )
    assert link.surrogate_error_rate(link.snr_db_for(ebno)) == pytest.approx(p, rel=1e-12)


# LDPC-coded 64-QAM against the same Sionna blocks composed by hand

EBNO_CODED = 6.1  # in the waterfall of the (750, 1500) code with 64-QAM: BLER about 0.3


def sionna_reference(u: torch.Tensor, ebno_db: float, noise_seed: int) -> torch.Tensor:
    encoder = LDPC5GEncoder(750, 1500)
    decoder = LDPC5GDecoder(encoder, num_iter=20)
    mapper, demapper = Mapper("qam", 6), Demapper("app", "qam", 6)
    awgn = seeded_block(SionnaAWGN, torch.Generator().manual_seed(noise_seed))
    no = ebnodb2no(ebno_db, num_bits_per_symbol=6, coderate=750 / 1500)
    return decoder(demapper(awgn(mapper(encoder(u)), no), no))


def test_coded_link_is_the_sionna_chain_bit_for_bit() -> None:
    u = random_bits(24, 750, seed=3).float()
    link = DigitalLink("64qam", ldpc_k=750, ldpc_n=1500, generator=5)
    result = link(u, link.snr_db_for(EBNO_CODED))
    assert 0 < result.block_errors < result.num_blocks  # in the waterfall, not trivially equal
    assert torch.equal(result.bits, sionna_reference(u, EBNO_CODED, noise_seed=5))


def test_coded_bler_matches_sionna_and_beats_uncoded() -> None:
    codewords = 300
    link = DigitalLink("64qam", ldpc_k=750, ldpc_n=1500, bp_iterations=20, generator=1)
    assert link.code_rate == 0.5 and link.bits_per_symbol == 6
    result = link(random_bits(codewords, 750, seed=1).float(), link.snr_db_for(EBNO_CODED))
    assert result.num_blocks == codewords and result.channel_uses == 250

    u = seeded_block(BinarySource, torch.Generator().manual_seed(2))([codewords, 750])
    u_hat = sionna_reference(u, EBNO_CODED, noise_seed=2)
    reference_bler = float(compute_bler(u, u_hat))
    # Two-proportion test: both BLERs estimate the same p from `codewords` blocks each.
    pooled = (result.block_errors + reference_bler * codewords) / (2 * codewords)
    assert 0.1 < pooled < 0.6
    sigma = math.sqrt(pooled * (1 - pooled) * 2 / codewords)
    assert abs(result.bler - reference_bler) <= Z * sigma, (result.bler, reference_bler)

    uncoded = DigitalLink("64qam", generator=4)
    raw = uncoded(random_bits(100, 1200, seed=4), uncoded.snr_db_for(EBNO_CODED))
    assert result.ber < raw.ber / 2, (result.ber, raw.ber, float(compute_ber(u, u_hat)))


@pytest.mark.parametrize("coded", [False, True])
def test_llrs_stay_finite_at_the_lowest_snrs(coded: bool) -> None:
    """Near -380 dB |y - s|**2 overflows float32 in the demapper: the LLRs came out NaN (all of
    them once decoded) and every decision 0, where no information means an LLR of 0."""
    link = DigitalLink("qpsk", ldpc_k=100, ldpc_n=200, generator=0) if coded else DigitalLink(
        "qpsk", generator=0)  # fmt: skip
    bits = torch.randint(0, 2, (4, 400), generator=torch.Generator().manual_seed(0))
    received = link(bits, -380.0)
    assert torch.isfinite(received.llr).all()
    assert 0.3 < float((received.bits != bits).float().mean()) < 0.7


def test_padding_to_codewords_and_symbols() -> None:
    link = DigitalLink("16qam", ldpc_k=100, ldpc_n=210, generator=0)
    bits = random_bits(3, 250, seed=6).bool()
    result = link(bits, 30.0)
    assert result.bits.dtype == torch.bool and torch.equal(result.bits, bits)
    assert result.num_blocks == 3 * 3 and result.channel_uses == math.ceil(3 * 210 / 4)
    assert result.channel_uses == link.channel_uses(250) and result.llr.shape == (3, 250)
    assert bool(((result.llr > 0) == bits).all())
    uncoded = DigitalLink("256qam", generator=0)
    odd = random_bits(2, 13, seed=7).to(torch.uint8)
    out = uncoded(odd, 40.0)
    assert out.bits.dtype == torch.uint8 and torch.equal(out.bits, odd)
    assert out.channel_uses == 2 and out.errors_per_example.tolist() == [0, 0]


def test_per_example_snr_and_maxlog_mmse() -> None:
    link = DigitalLink("16qam", equalizer="mmse", demapping="maxlog", generator=2)
    bits = random_bits(2, 40000, seed=8)
    result = link(bits, torch.tensor([0.0, 30.0]))
    low, high = result.errors_per_example.tolist()
    assert high == 0 and low > 0.1 * 40000
    assert isinstance(result, LinkResult) and result.ber == result.bit_errors / result.num_bits


def test_fading_link_with_rician_channel_at_high_snr() -> None:
    link = DigitalLink("64qam", channel=RicianFading(5.0, "symbol", generator=3))
    bits = random_bits(4, 600, seed=9)
    assert torch.equal(link(bits, 45.0).bits, bits)


@pytest.mark.parametrize("k_factor", [0.5, 3.0, 20.0])
def test_rician_surrogate_is_the_measured_uncoded_error_rate(k_factor) -> None:
    link = DigitalLink("16qam", channel=RicianFading(k_factor, "symbol", generator=4))
    bits = random_bits(8, 40000, seed=10)
    snr_db = 13.0
    p = link.surrogate_error_rate(snr_db)
    assert p == pytest.approx(ber_rician("16qam", snr_db - 10 * math.log10(4), k_factor))
    result = link(bits, snr_db)
    assert within_binomial_ci(result.bit_errors, result.num_bits, p)
    tensor_p = link.surrogate_error_rate(torch.tensor([snr_db, 30.0]))
    assert tensor_p.dtype == torch.float32 and tensor_p[0].item() == pytest.approx(p, rel=1e-6)


def test_ofdm_surrogate_where_each_resource_element_fades_as_rayleigh() -> None:
    """NLOS profiles without per-frame normalization: every RE's gain is CN(0, 1), so the
    uncoded error rate is Rayleigh's (errors are correlated across REs: a wider tolerance)."""
    from aiflow_comm.channel import OFDMChannel

    grid = {"fft_size": 64, "num_ofdm_symbols": 14, "pilot_ofdm_symbol_indices": (2, 11)}
    channel = OFDMChannel("tdl", "B", normalize_channel=False, generator=2, **grid)
    link = DigitalLink("16qam", channel=channel)
    p = link.surrogate_error_rate(14.0)
    assert p == ber_rayleigh("16qam", 14.0 - 10 * math.log10(4))
    result = link(random_bits(16, 40000, seed=3), 14.0)
    assert result.ber == pytest.approx(p, rel=0.05)
    for other in (
        OFDMChannel("tdl", "B", generator=2, **grid),  # normalized frames: no closed form
        OFDMChannel("tdl", "D", normalize_channel=False, generator=2, **grid),  # line of sight
        OFDMChannel("tdl", "B", normalize_channel=False, csi="ls", generator=2, **grid),
    ):
        with pytest.raises(NotImplementedError, match="OFDMChannel"):
            DigitalLink("16qam", channel=other).surrogate_error_rate(14.0)


# bytes of the wire format over the link


def test_bytes_bits_round_trip_lsb_first() -> None:
    payload = bytes(range(256))
    bits = bytes_to_bits(payload)
    assert bits.dtype == torch.uint8 and bits.shape == (2048,)
    assert bits[8:16].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    assert bits_to_bytes(bits) == payload


@pytest.mark.parametrize(
    "link",
    [
        DigitalLink("qpsk", generator=0),
        DigitalLink("16qam", ldpc_k=500, ldpc_n=1000, generator=0),
    ],
    ids=["uncoded", "coded"],
)
def test_quantized_tensor_survives_a_clean_link(link: DigitalLink) -> None:
    q = quantize(torch.randn(4, 100, generator=torch.Generator().manual_seed(0)), 4, 32)
    payload = q.to_bytes()
    received, result = link.send_bytes(payload, snr_db=40.0)
    assert received == payload and result.bit_errors == 0
    assert result.num_bits == 8 * len(payload)
    decoded = QuantizedTensor.from_bytes(received)
    assert torch.equal(decoded.codes, q.codes) and torch.equal(decoded.scales, q.scales)
    assert torch.equal(decoded.dequantize(), q.dequantize())


def test_corrupted_payload_fails_the_crc() -> None:
    payload = quantize(torch.randn(4, 100), 8, 32).to_bytes()
    received, result = DigitalLink("qpsk", generator=1).send_bytes(payload, snr_db=3.0)
    assert result.bit_errors > 0 and received != payload
    with pytest.raises(WireFormatError):
        QuantizedTensor.from_bytes(received)


# the differentiable surrogates


def test_bit_flip_ste_extremes_and_gradient() -> None:
    bits = random_bits(8, 64, seed=10).float().requires_grad_()
    assert torch.equal(bit_flip_ste(bits, 0.0), bits.detach())
    flipped = bit_flip_ste(bits, 1.0)
    assert torch.equal(flipped, 1 - bits.detach())
    weights = torch.randn(8, 64)
    (flipped * weights).sum().backward()
    assert torch.equal(bits.grad, weights)


def test_bit_flip_ste_rate_seed_and_per_example_p() -> None:
    bits = torch.zeros(4, 50000)
    p = torch.tensor([[0.0], [0.01], [0.1], [0.5]])
    out = bit_flip_ste(bits, p, generator=3)
    for row, rate in zip(out, p.flatten().tolist(), strict=True):
        assert within_binomial_ci(int(row.sum()), row.numel(), rate), (float(row.mean()), rate)
    assert torch.equal(out, bit_flip_ste(bits, p, generator=3))
    assert not torch.equal(out, bit_flip_ste(bits, p, generator=4))
    half = bit_flip_ste(bits.half(), 0.25, generator=torch.Generator().manual_seed(0))
    assert half.dtype == torch.float16


def test_surrogate_error_rate_of_a_tensor_drives_bit_flips() -> None:
    link = DigitalLink("qpsk", channel=RayleighFading("symbol"))
    snr = torch.tensor([5.0, 20.0])
    p = link.surrogate_error_rate(snr)
    expected = [ber_rayleigh("qpsk", s - 10 * math.log10(2)) for s in (5.0, 20.0)]
    assert p.shape == (2,) and p.dtype == torch.float32
    assert p.tolist() == pytest.approx(expected, rel=1e-6)
    out = bit_flip_ste(torch.zeros(2, 100000), p[:, None], generator=0)
    assert within_binomial_ci(int(out[0].sum()), 100000, expected[0])


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantized_bit_flips_extremes_and_gradient(symmetric: bool, bits: int) -> None:
    x = torch.randn(3, 50, generator=torch.Generator().manual_seed(bits)).requires_grad_()
    clean = fake_quantize(x, bits, 16, symmetric=symmetric)
    assert torch.equal(quantized_bit_flip_ste(x, bits, 16, p=0.0, symmetric=symmetric), clean)
    q = quantize(x.detach(), bits, 16, symmetric=symmetric)
    step = q.scales.repeat_interleave(16, dim=1)[:, :50]
    inverted = quantized_bit_flip_ste(x, bits, 16, p=1.0, symmetric=symmetric)
    if symmetric:  # code c = v + 2**(bits-1) becomes 2**bits - 1 - c: value v becomes -1 - v
        expected = -q.dequantize() - step
    else:  # code c becomes 2**bits - 1 - c: value c*s + z becomes (2**bits - 1)*s + 2z - value
        expected = (2**bits - 1) * step + 2 * q.zero_points.repeat_interleave(16, dim=1)[:, :50]
        expected = expected - q.dequantize()
    assert torch.allclose(inverted, expected, atol=1e-5)
    weights = torch.randn(3, 50)
    (inverted * weights).sum().backward()
    assert torch.equal(x.grad, weights)


def test_quantized_bit_flip_rate_on_the_codes() -> None:
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    q = quantize(x, 8, 128)
    step = q.scales.repeat_interleave(128, dim=1)
    codes = torch.round(q.dequantize() / step).to(torch.int32) + 128
    noisy = quantized_bit_flip_ste(x, 8, 128, p=0.05, generator=7)
    noisy_codes = torch.round(noisy / step).to(torch.int32) + 128
    flipped_bits = sum(int(((codes ^ noisy_codes) >> i & 1).sum()) for i in range(8))
    assert within_binomial_ci(flipped_bits, codes.numel() * 8, 0.05)
    assert torch.equal(noisy, quantized_bit_flip_ste(x, 8, 128, p=0.05, generator=7))


def test_quantized_bit_flips_with_a_group_wider_than_the_row_and_an_empty_batch() -> None:
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(2))
    wide = quantized_bit_flip_ste(x, 4, 2**30, p=0.3, generator=1)  # nothing padded to 2**30
    assert torch.equal(wide, quantized_bit_flip_ste(x, 4, 10, p=0.3, generator=1))
    assert quantized_bit_flip_ste(torch.randn(0, 10), 4, 8, p=0.3).shape == (0, 10)


# seeds and bad input


def test_same_seed_same_bits_other_seed_other_bits() -> None:
    bits = random_bits(4, 3000, seed=12)

    def run(seed: int) -> torch.Tensor:
        link = DigitalLink("16qam", ldpc_k=300, ldpc_n=600, generator=seed)
        return link(bits, 7.0).llr

    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"modulation": "8psk"}, ValueError, "modulation"),
        ({"modulation": 3.0}, TypeError, "modulation"),
        ({"ldpc_k": 100}, ValueError, "ldpc_k and ldpc_n"),
        ({"ldpc_k": 5, "ldpc_n": 10}, ValueError, "ldpc_k=5, ldpc_n=10"),
        ({"ldpc_k": 196, "ldpc_n": 200}, ValueError, "ldpc_k=196, ldpc_n=200"),
        ({"ldpc_k": 100, "ldpc_n": 1000}, ValueError, "ldpc_k=100, ldpc_n=1000"),
        ({"ldpc_k": 100.0, "ldpc_n": 200}, TypeError, "ldpc_k"),
        ({"equalizer": "dfe"}, ValueError, "equalizer"),
        ({"demapping": "exact"}, ValueError, "demapping"),
        ({"bp_iterations": 0}, ValueError, "bp_iterations"),
        ({"channel": "awgn"}, TypeError, "channel"),
    ],
)
@pytest.mark.filterwarnings("ignore:Effective coderate:UserWarning")
def test_bad_construction(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        DigitalLink(**kwargs)


@pytest.mark.filterwarnings("ignore:Effective coderate")  # Sionna's, for these sizes
@pytest.mark.parametrize(("k", "n"), [(100, 106), (12, 13)])
def test_codes_that_do_not_decode_without_noise_are_refused(k: int, n: int) -> None:
    """Sionna accepts these sizes, but its decoder never recovers them: BLER 1 at 100 dB."""
    bits = torch.randint(0, 2, (4, 2 * k), generator=torch.Generator().manual_seed(0))
    with pytest.raises(
        ValueError, match=rf"ldpc_k={k}, ldpc_n={n} .* does not decode even without noise"
    ):
        DigitalLink("qpsk", ldpc_k=k, ldpc_n=n, generator=0)(bits, 100.0)
    assert DigitalLink("qpsk", ldpc_k=100, ldpc_n=120, generator=0)(bits, 100.0).bler == 0.0


def test_numpy_integer_code_sizes() -> None:
    """np.int64 sizes (from a NumPy sweep) were refused as not ints."""
    link = DigitalLink("qpsk", ldpc_k=np.int64(100), ldpc_n=np.int64(200))
    assert (link.ldpc_k, link.ldpc_n) == (100, 200) and type(link.ldpc_k) is int


@pytest.mark.parametrize(
    ("bits", "snr_db", "error", "match"),
    [
        (torch.tensor([[0.0, 0.5]]), 10.0, ValueError, "only 0 and 1; got 0.5"),
        (torch.tensor([[0, 2]]), 10.0, ValueError, "only 0 and 1; got 2"),
        (torch.tensor([[float("nan"), 1.0]]), 10.0, ValueError, "only 0 and 1"),
        (torch.zeros(2, 4, dtype=torch.complex64), 10.0, TypeError, "complex64"),
        (torch.zeros(8), 10.0, ValueError, r"bits\[None\]"),
        (torch.zeros(2, 3, 4), 10.0, ValueError, "2-D"),
        (torch.zeros(2, 0), 10.0, ValueError, "at least one bit"),
        ([[0, 1]], 10.0, TypeError, "list"),
        (torch.zeros(2, 4), torch.zeros(3), ValueError, r"shape \(2,\); got shape \(3,\)"),
        (torch.zeros(2, 4), torch.zeros(2, 2), ValueError, "one value per example"),
        (torch.zeros(2, 4), float("nan"), ValueError, "snr_db must be finite"),
    ],
)
def test_bad_inputs(bits: object, snr_db: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        DigitalLink("qpsk", generator=0)(bits, snr_db)


def test_channel_uses_rejects_a_bad_number_of_bits() -> None:
    # A negative or fractional count came back as a negative or rounded number of symbols.
    link = DigitalLink("qpsk", ldpc_k=100, ldpc_n=200)
    assert link.channel_uses(0) == 0 and link.channel_uses(250) == 300
    with pytest.raises(ValueError, match="num_bits must be >= 0; got -5"):
        link.channel_uses(-5)
    for bad in (2.5, "250", True):
        with pytest.raises(TypeError, match="num_bits must be an int"):
            link.channel_uses(bad)


def test_bad_surrogate_arguments() -> None:
    with pytest.raises(ValueError, match="p must be a probability"):
        bit_flip_ste(torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bit_flip_ste(torch.zeros(3), torch.tensor([0.1, -0.1, 0.2]))
    with pytest.raises(ValueError, match="broadcast"):
        bit_flip_ste(torch.zeros(3), torch.tensor([0.1, 0.2]))
    with pytest.raises(TypeError, match="floating-point"):
        bit_flip_ste(torch.zeros(3, dtype=torch.uint8), 0.1)
    with pytest.raises(TypeError, match="p must be"):
        bit_flip_ste(torch.zeros(3), "0.1")
    with pytest.raises(TypeError, match="bytes"):
        DigitalLink().send_bytes("text", 10.0)
    with pytest.raises(ValueError, match="one value per example"):
        DigitalLink().send_bytes(b"x", torch.tensor([10.0, 20.0]))
