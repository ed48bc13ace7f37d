"""Closed-form theory against independent references: brute force, quadrature, Monte Carlo."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from aiflow_comm.channel.modulation import MODULATIONS, bits_per_symbol, check_modulation
from aiflow_comm.channel.theory import (
    ber_awgn,
    ber_rayleigh,
    ber_rician,
    capacity_awgn,
    ergodic_capacity_rayleigh,
    outage_capacity_rayleigh,
    outage_probability_rayleigh,
)

EBNO_DB = [0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 20.0]


def gray_square_constellation(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Points and bit labels of Gray-coded BPSK or square QAM, built from scratch.

    Each axis carries a sqrt(M)-PAM at -(L-1), ..., -1, 1, ..., L-1 labelled with the
    binary-reflected Gray code of the level index; the label is the I bits then the Q bits.
    """
    if bits == 1:
        return np.array([-1.0 + 0j, 1.0 + 0j]), np.array([[0], [1]])
    axis_bits = bits // 2
    levels = 2**axis_bits
    coords = 2.0 * np.arange(levels) - (levels - 1)
    gray = np.arange(levels) ^ (np.arange(levels) >> 1)
    axis_labels = (gray[:, None] >> np.arange(axis_bits - 1, -1, -1)) & 1
    points, labels = [], []
    for i in range(levels):
        for q in range(levels):
            points.append(coords[i] + 1j * coords[q])
            labels.append(np.concatenate([axis_labels[i], axis_labels[q]]))
    return np.array(points), np.array(labels)


def axis_decision_probabilities(coords: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(P, levels)``: ``P[j, l]`` is the chance that level ``j`` plus N(0, sigma^2) noise
    falls in the decision interval of level ``l``.


    The nearest-level intervals are bounded by the midpoints. Each probability is formed from
    the tail on the side away from the sent level, so tiny probabilities keep full precision.
    """
    levels = np.unique(coords)
    edges = np.concatenate([[-np.inf], (levels[1:] + levels[:-1]) / 2, [np.inf]])
    probs = np.empty((levels.size, levels.size))
    for j, x in enumerate(levels):
        lo, hi = (edges[:-1] - x) / sigma, (edges[1:] - x) / sigma
        for ell in range(levels.size):
            if lo[ell] >= 0:
                probs[j, ell] = stats.norm.sf(lo[ell]) - stats.norm.sf(hi[ell])
            elif hi[ell] <= 0:
                probs[j, ell] = stats.norm.cdf(hi[ell]) - stats.norm.cdf(lo[ell])
            else:
                probs[j, ell] = 1.0 - stats.norm.sf(-lo[ell]) - stats.norm.sf(hi[ell])
    return probs, levels


def brute_force_ber(points: np.ndarray, labels: np.ndarray, ebno_db: float) -> float:
    """Exact BER of ML detection of a square-grid constellation over complex AWGN.

    The nearest-point regions of a square grid are rectangles, so the probability of deciding
    point ``s'`` given ``s`` is the product of one interval probability per axis. The BER is
    the mean over sent points of the expected number of wrong label bits, over the bits.
    """
    bits = labels.shape[1]
    es = np.mean(np.abs(points) ** 2)
    n0 = es / (bits * 10.0 ** (ebno_db / 10.0))
    sigma = math.sqrt(n0 / 2.0)  # per real dimension
    p_i, levels_i = axis_decision_probabilities(points.real, sigma)
    p_q, levels_q = axis_decision_probabilities(points.imag, sigma)
    index_i = np.searchsorted(levels_i, points.real)
    index_q = np.searchsorted(levels_q, points.imag)
    transition = p_i[index_i][:, index_i] * p_q[index_q][:, index_q]  # [sent, decided]
    assert np.allclose(transition.sum(axis=1), 1.0)
    hamming = (labels[:, None, :] != labels[None, :, :]).sum(axis=-1)
    return float((transition * hamming).sum(axis=1).mean() / bits)


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_ber_awgn_matches_brute_force_on_own_gray_constellation(modulation):
    points, labels = gray_square_constellation(bits_per_symbol(modulation))
    expected = [brute_force_ber(points, labels, e) for e in EBNO_DB]
    np.testing.assert_allclose(ber_awgn(modulation, EBNO_DB), expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_ber_awgn_matches_brute_force_on_sionna_constellation(bits):
    """The formula holds for the labels of Sionna's QAM mapper, which the links use."""
    mapping = pytest.importorskip("sionna.phy.mapping")
    points = np.asarray(mapping.qam(bits, normalize=False, precision="double"))
    labels = (np.arange(2**bits)[:, None] >> np.arange(bits - 1, -1, -1)) & 1
    expected = [brute_force_ber(points, labels, e) for e in (0.0, 8.0, 16.0)]
    np.testing.assert_allclose(ber_awgn(2**bits, [0.0, 8.0, 16.0]), expected, rtol=1e-9, atol=0)


def test_ber_awgn_known_values():
    # BPSK at 0 dB: Q(sqrt(2)) = 0.0786496035...
    assert ber_awgn("bpsk", 0.0) == pytest.approx(0.07864960352514258, rel=1e-12)
    # 16-QAM at 10 dB: 1.7542e-3 (brute force above), a little over the nearest-neighbour
    # approximation (3/4) Q(sqrt(8)) = 1.7537e-3.
    assert ber_awgn("16qam", 10.0) == pytest.approx(1.7542e-3, rel=1e-4)
    nearest = 0.75 * stats.norm.sf(math.sqrt(8.0))
    assert 0 < ber_awgn("16qam", 10.0) - nearest < 1e-6
    np.testing.assert_allclose(ber_awgn("qpsk", EBNO_DB), ber_awgn("bpsk", EBNO_DB), rtol=1e-14)


def rayleigh_by_quadrature(modulation: str, ebno_db: float) -> float:
    """Average of the AWGN BER over an exponential Eb/N0 with mean ``ebno_db``, by ``quad``.

    Integrates over ``u = ln(t)``, ``t = |h|^2``, so the mass near ``t ~ 1/Eb/N0`` at high SNR
    is resolved; the integrand is ``BER(Eb/N0 * t) exp(-t) t``.
    """

    def integrand(u: float) -> float:
        t = math.exp(u)
        return ber_awgn(modulation, ebno_db + 10.0 * u / math.log(10.0)) * math.exp(-t) * t

    value, _ = integrate.quad(integrand, -60.0, 5.0, epsabs=0.0, epsrel=1e-11, limit=400)
    return value


@pytest.mark.parametrize("modulation", MODULATIONS)
def test_ber_rayleigh_matches_quadrature(modulation):
    points = [-5.0, 0.0, 10.0, 20.0, 35.0]
    expected = [rayleigh_by_quadrature(modulation, e) for e in points]
    np.testing.assert_allclose(ber_rayleigh(modulation, points), expected, rtol=1e-6, atol=0)


def rician_by_quadrature(modulation: str, ebno_db: float, k: float) -> float:
    """The AWGN BER averaged over ``|h|^2`` with the Rician law of ``E|h|^2 = 1`` by adaptive
    quadrature on pieces: ``2 (K + 1) |h|^2`` is noncentral chi-square, 2 degrees of freedom,
    noncentrality ``2 K``."""

    def integrand(t: float) -> float:
        density = stats.ncx2.pdf(2.0 * (k + 1.0) * t, 2, 2.0 * k) * 2.0 * (k + 1.0)
        return ber_awgn(modulation, ebno_db + 10.0 * math.log10(max(t, 1e-300))) * density

    edges = [0.0, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 1.0, 2.0, 4.0, 10.0, 50.0]
    return sum(
        integrate.quad(integrand, a, b, epsabs=0.0, epsrel=1e-11, limit=400)[0]
        for a, b in itertools.pairwise(edges)
    )


@pytest.mark.parametrize("modulation", ["bpsk", "16qam", "256qam"])
def test_ber_rician_matches_quadrature_and_its_limits(modulation):
    points = [0.0, 10.0, 20.0]
    for k in (0.5, 3.0, 30.0):
        expected = [rician_by_quadrature(modulation, e, k) for e in points]
        np.testing.assert_allclose(ber_rician(modulation, points, k), expected, rtol=1e-6)
    grid = [-5.0, 0.0, 10.0, 20.0, 35.0]
    rayleigh, awgn = ber_rayleigh(modulation, grid), ber_awgn(modulation, grid[:3])
    np.testing.assert_allclose(ber_rician(modulation, grid, 0.0), rayleigh, rtol=1e-12)
    np.testing.assert_allclose(ber_rician(modulation, grid[:3], 1e9), awgn, rtol=1e-5)
    # Between the two, falling with K at a fixed Eb/N0.
    by_k = ber_rician(modulation, 15.0, [0.0, 1.0, 10.0, 100.0])
    assert np.all(np.diff(by_k) < 0) and ber_awgn(modulation, 15.0) < by_k[-1]


def test_ber_rician_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ber_rician("qpsk", 4000.0, 2.0) == 0.0
        assert ber_rician("qpsk", -4000.0, 2.0) == pytest.approx(0.5)
        assert ber_rician("64qam", 10.0, 1e300) == pytest.approx(ber_awgn("64qam", 10.0))
    assert ber_rician("bpsk", [[0.0], [10.0]], [1.0, 2.0, 3.0]).shape == (2, 3)
    with pytest.raises(ValueError, match="k_factor"):
        ber_rician("bpsk", 10.0, -1.0)
    with pytest.raises(ValueError, match="k_factor"):
        ber_rician("bpsk", 10.0, float("nan"))


def test_ber_rayleigh_bpsk_closed_form_and_asymptote():
    g = 10.0 ** (np.array([0.0, 10.0, 20.0]) / 10.0)
    np.testing.assert_allclose(
        ber_rayleigh("bpsk", [0.0, 10.0, 20.0]), 0.5 * (1 - np.sqrt(g / (1 + g))), rtol=1e-12
    )
    # High SNR: 1 / (4 Eb/N0), where 1 - sqrt(g / (1 + g)) would cancel catastrophically.
    assert ber_rayleigh("bpsk", 100.0) * 4e10 == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("ber", [ber_awgn, ber_rayleigh])
def test_ber_monotone_and_limits(ber):
    grid = np.linspace(-10.0, 40.0, 101)
    for modulation in MODULATIONS:
        values = ber(modulation, grid)
        assert np.all(np.diff(values) <= 0)
        assert np.all(np.diff(values[values > 0]) < 0)  # AWGN underflows to 0 past ~35 dB
        assert ber(modulation, -200.0) == pytest.approx(0.5, rel=1e-9)
    # Denser constellations are worse at the same Eb/N0 (BPSK and QPSK are equal).
    orders = np.stack([ber(m, grid[10:70]) for m in MODULATIONS[1:]])
    assert np.all(np.diff(orders, axis=0) > 0)


def test_fading_costs_bit_errors():
    grid = np.linspace(0.0, 30.0, 31)
    for modulation in MODULATIONS:
        assert np.all(ber_rayleigh(modulation, grid) > ber_awgn(modulation, grid))


def test_extreme_inputs_stay_finite_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for modulation in MODULATIONS:
            assert ber_awgn(modulation, 4000.0) == 0.0
            assert ber_awgn(modulation, -4000.0) == pytest.approx(0.5)
            assert 0.0 < ber_rayleigh(modulation, 300.0) < 1e-29
            assert ber_rayleigh(modulation, 4000.0) == 0.0
            assert ber_rayleigh(modulation, -4000.0) == pytest.approx(0.5)
        assert capacity_awgn(4000.0) == pytest.approx(4000.0 * math.log2(10.0) / 10.0)
        assert capacity_awgn(-4000.0) == 0.0
        gap = np.euler_gamma / math.log(2.0)
        assert ergodic_capacity_rayleigh(4000.0) == pytest.approx(
            4000.0 * math.log2(10.0) / 10.0 - gap, rel=1e-14
        )
        assert ergodic_capacity_rayleigh(-4000.0) == 0.0
        assert outage_probability_rayleigh(2000.0, 10.0) == 1.0
        assert outage_probability_rayleigh(2000.0, 4000.0) == 1.0  # log2(1e400) < 2000 bits
        assert 0.0 < outage_probability_rayleigh(2000.0, 7000.0) < 1e-90
        assert outage_probability_rayleigh(1.0, -4000.0) == 1.0
        assert outage_probability_rayleigh(0.0, -4000.0) == 0.0
        assert outage_capacity_rayleigh(1e-300, 4000.0) > 0.0


def test_capacity_awgn():
    snr_db = np.array([-30.0, 0.0, 10.0, 30.0])
    np.testing.assert_allclose(
        capacity_awgn(snr_db), np.log1p(10 ** (snr_db / 10)) / math.log(2.0), rtol=1e-12
    )


def ergodic_by_quadrature(snr_db: float) -> float:
    """``E[log2(1 + snr g)]`` with ``g ~ Exp(1)``, integrated over ``u = ln(g)``."""
    snr = 10.0 ** (snr_db / 10.0)

    def integrand(u: float) -> float:
        g = math.exp(u)
        return math.log1p(snr * g) / math.log(2.0) * math.exp(-g) * g

    value, _ = integrate.quad(integrand, -120.0, 6.0, epsabs=0.0, epsrel=1e-12, limit=400)
    return value


def test_ergodic_capacity_matches_quadrature():
    # Covers the three evaluation branches: 1/snr >= 50 (below -16.99 dB), the middle, and
    # snr >= 1e10 (100 dB and above).
    snr_db = [-40.0, -20.0, -17.5, -16.0, -10.0, 0.0, 10.0, 20.0, 40.0, 99.0, 101.0, 150.0]
    expected = [ergodic_by_quadrature(s) for s in snr_db]
    np.testing.assert_allclose(ergodic_capacity_rayleigh(snr_db), expected, rtol=1e-9, atol=0)


def test_ergodic_capacity_continuous_across_branches():
    for edge in (10.0 * math.log10(1.0 / 50.0), 100.0):
        below, above = ergodic_capacity_rayleigh([edge - 1e-9, edge + 1e-9])
        assert 0 < above - below < 1e-9


def test_ergodic_capacity_shape_of_curve():
    grid = np.linspace(-30.0, 60.0, 181)
    ergodic = ergodic_capacity_rayleigh(grid)
    assert np.all(np.diff(ergodic) > 0)
    assert np.all(ergodic < capacity_awgn(grid))  # Jensen
    # Low SNR: snr log2(e); high SNR: log2(snr) - euler_gamma log2(e).
    assert ergodic_capacity_rayleigh(-60.0) == pytest.approx(1e-6 / math.log(2.0), rel=1e-5)
    high = 90.0 * math.log2(10.0) / 10.0 - np.euler_gamma / math.log(2.0)
    assert ergodic_capacity_rayleigh(90.0) == pytest.approx(high, rel=1e-8)


def test_outage_probability_matches_exponential_cdf_and_monte_carlo():
    rates = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    snr_db = 10.0
    snr = 10.0 ** (snr_db / 10.0)
    closed = outage_probability_rayleigh(rates, snr_db)
    np.testing.assert_allclose(closed, stats.expon.cdf((2.0**rates - 1.0) / snr), rtol=1e-12)
    rng = np.random.default_rng(1234)
    n = 200_000
    h = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2.0)
    capacity = np.log2(1.0 + snr * np.abs(h) ** 2)
    empirical = (capacity[None, :] < rates[:, None]).mean(axis=1)
    stderr = np.sqrt(closed * (1 - closed) / n)
    assert np.all(np.abs(empirical - closed) <= 5 * stderr + 1e-12)


def test_outage_probability_monotone():
    assert np.all(np.diff(outage_probability_rayleigh(np.linspace(0, 8, 50), 10.0)) > 0)
    assert np.all(np.diff(outage_probability_rayleigh(2.0, np.linspace(-10, 40, 50))) < 0)
    assert outage_probability_rayleigh(0.0, 10.0) == 0.0
    # Tiny probabilities keep full relative precision: (2**r - 1) / snr for small values.
    assert outage_probability_rayleigh(1e-6, 0.0) == pytest.approx(math.expm1(1e-6 * math.log(2)))


def test_outage_capacity_inverts_outage_probability():
    eps = np.array([1e-9, 1e-6, 1e-3, 0.1, 0.5, 0.9, 1 - 1e-9])[:, None]
    snr_db = np.array([-20.0, 0.0, 20.0, 40.0])
    rate = outage_capacity_rayleigh(eps, snr_db)
    assert rate.shape == (7, 4)
    np.testing.assert_allclose(outage_probability_rayleigh(rate, snr_db), eps + 0 * rate, rtol=1e-9)
    assert np.all(np.diff(rate, axis=0) > 0) and np.all(np.diff(rate, axis=1) > 0)
    # Independent check: the rate is log2(1 + snr * F^{-1}(eps)) for the Exp(1) quantile.
    snr = 10.0 ** (snr_db / 10.0)
    reference = np.log1p(snr * stats.expon.ppf(eps)) / math.log(2.0)
    np.testing.assert_allclose(rate, reference, rtol=1e-9)
    assert outage_capacity_rayleigh(0.01, 10.0) < ergodic_capacity_rayleigh(10.0)


def test_scalar_and_array_conventions():
    assert type(ber_awgn("qpsk", 3.0)) is float
    assert type(ber_awgn("qpsk", np.float32(3.0))) is float
    assert type(ergodic_capacity_rayleigh(np.array(3.0))) is float
    assert type(outage_probability_rayleigh(1, 3)) is float
    grid = np.zeros((2, 3))
    for fn in (capacity_awgn, ergodic_capacity_rayleigh):
        out = fn(grid)
        assert isinstance(out, np.ndarray) and out.shape == (2, 3) and out.dtype == np.float64
    for fn in (ber_awgn, ber_rayleigh):
        assert fn("64qam", grid).shape == (2, 3)
        assert fn("64qam", [1.0]).shape == (1,)
    assert outage_probability_rayleigh(np.ones((3, 1)), np.zeros(4)).shape == (3, 4)
    assert outage_capacity_rayleigh([0.1, 0.2], 5.0).shape == (2,)
    assert ergodic_capacity_rayleigh([]).shape == (0,)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(
        ber_awgn("qpsk", torch.tensor([1.0, 2.0])), ber_awgn("qpsk", [1.0, 2.0]), rtol=1e-6
    )


def test_modulation_names():
    assert check_modulation("16QAM") == "16qam"
    assert check_modulation(" QPSK ") == "qpsk"
    assert check_modulation("4qam") == "qpsk"
    assert check_modulation(np.int64(256)) == "256qam"
    assert [bits_per_symbol(m) for m in MODULATIONS] == [1, 2, 4, 6, 8]
    assert [bits_per_symbol(2**b) for b in (1, 2, 4, 6, 8)] == [1, 2, 4, 6, 8]
    assert ber_awgn("16QAM", 5.0) == ber_awgn(16, 5.0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"modulation must be one of .*'bpsk'.*; got '8psk'"):
        ber_awgn("8psk", 10.0)
    with pytest.raises(ValueError, match="got 32"):
        ber_rayleigh(32, 10.0)
    with pytest.raises(TypeError, match="modulation must be a name"):
        bits_per_symbol(True)
    with pytest.raises(ValueError, match="ebno_db must be finite; got nan"):
        ber_awgn("qpsk", float("nan"))
    with pytest.raises(ValueError, match=r"snr_db must be finite; got inf at index \(1,\)"):
        capacity_awgn([0.0, np.inf])
    with pytest.raises(ValueError, match="snr_db must be finite"):
        ergodic_capacity_rayleigh(-np.inf)
    with pytest.raises(TypeError, match="snr_db must be a real number or array; got dtype <U2"):
        capacity_awgn("10")
    with pytest.raises(TypeError, match="ebno_db must be a real number"):
        ber_awgn("qpsk", 1j)
    for eps in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match=r"epsilon must be in the open interval \(0, 1\)"):
            outage_capacity_rayleigh(eps, 10.0)
    with pytest.raises(ValueError, match=r"rate must be >= 0 .*got -1.0 at index \(1,\)"):
        outage_probability_rayleigh([1.0, -1.0], 10.0)
    with pytest.raises(ValueError, match="rate must be finite"):
        outage_probability_rayleigh(np.inf, 10.0)
