"""The link cost model against the closed forms: rates, outage, retransmissions, MCS, BLER."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from aiflow_comm.channel.theory import (
    capacity_awgn,
    ergodic_capacity_rayleigh,
    outage_capacity_rayleigh,
    outage_probability_rayleigh,
)
from aiflow_comm.search import (
    NR_CQI_TABLE,
    BlerCurve,
    Codec,
    LinkModel,
    McsTable,
    Tier,
    lognormal_snr_states,
    profile_model,
    search_plans,
)
from aiflow_comm.search.fading import gain_cdf, gain_quantiles

SNR = np.array([-10.0, 0.0, 10.0, 20.0, 30.0])


def test_awgn_shannon_time():
    state = LinkModel(1e6, SNR.tolist(), propagation_s=0.01).link_state()
    np.testing.assert_allclose(state.efficiency, capacity_awgn(SNR))
    assert np.all(state.error_prob == 0) and np.all(state.attempts == 1)
    np.testing.assert_allclose(state.tx_s(1e6), 1.0 / capacity_awgn(SNR) + 0.01)


def test_rayleigh_block_goodput_rate_and_outage():
    state = LinkModel(1e6, SNR.tolist(), "rayleigh", retransmissions=None).link_state()
    np.testing.assert_allclose(state.error_prob, outage_probability_rayleigh(state.efficiency, SNR))
    rates = np.linspace(0.001, 12.0, 20001)[:, None]  # the goodput optimum, by brute force
    goodput = rates * (1.0 - outage_probability_rayleigh(rates, SNR))
    np.testing.assert_allclose(state.efficiency, rates[goodput.argmax(axis=0), 0], atol=1e-3)
    np.testing.assert_allclose(state.attempts, 1.0 / (1.0 - state.error_prob))
    assert np.all(state.failure_prob == 0)


def test_rayleigh_target_outage_uses_outage_capacity():
    state = LinkModel(1e6, SNR.tolist(), "rayleigh", target_outage=0.1).link_state()
    np.testing.assert_allclose(state.efficiency, outage_capacity_rayleigh(0.1, SNR))
    np.testing.assert_allclose(state.error_prob, 0.1)


def test_retransmissions_cap_attempts_and_report_failure():
    link = LinkModel(1e6, 10.0, "rayleigh", target_outage=0.2, retransmissions=2,
                     propagation_s=1e-3)  # fmt: skip
    state = link.link_state()
    p = 0.2
    assert state.attempts[0] == pytest.approx(1 + p + p**2)
    assert state.failure_prob[0] == pytest.approx(p**3)
    airtime = 8000 / (1e6 * outage_capacity_rayleigh(0.2, 10.0))
    expected = (1 + p + p**2) * airtime + (2 * (1 + p + p**2) - 1) * 1e-3
    assert link.tx_s(8000)[0] == pytest.approx(expected)


def test_fast_fading_uses_ergodic_capacity():
    state = LinkModel(1e6, SNR.tolist(), "rayleigh", "fast").link_state()
    np.testing.assert_allclose(state.efficiency, ergodic_capacity_rayleigh(SNR))
    # Rician with K = 0 is Rayleigh; the midpoint rule is close to the closed form
    rician = LinkModel(1e6, SNR.tolist(), "rician", "fast", rician_k=0.0).link_state()
    np.testing.assert_allclose(rician.efficiency, ergodic_capacity_rayleigh(SNR), rtol=2e-3)
    # a strong line of sight approaches AWGN
    los = LinkModel(1e6, SNR.tolist(), "rician", "fast", rician_k=1e4).link_state()
    np.testing.assert_allclose(los.efficiency, capacity_awgn(SNR), rtol=1e-3)


def test_rician_block_outage_matches_rayleigh_at_k0():
    rician = LinkModel(1e6, SNR.tolist(), "rician", rician_k=0.0, retransmissions=None)
    rayleigh = LinkModel(1e6, SNR.tolist(), "rayleigh", retransmissions=None)
    a, b = rician.link_state(), rayleigh.link_state()
    goodput = lambda s: s.efficiency * (1 - s.error_prob)  # noqa: E731
    np.testing.assert_allclose(goodput(a), goodput(b), rtol=5e-3)
    np.testing.assert_allclose(gain_cdf([0.3, 1.0, 2.0], "rician", 0.0),
                               gain_cdf([0.3, 1.0, 2.0], "rayleigh"), rtol=1e-10)  # fmt: skip
    assert gain_quantiles("rician", 5.0).mean() == pytest.approx(1.0, abs=1e-3)


def test_mcs_table_awgn_and_block_fading():
    state = LinkModel(1e6, SNR.tolist(), mcs="nr-cqi").link_state()
    np.testing.assert_allclose(state.efficiency, [0.0, 0.3770, 1.9141, 4.5234, 5.5547])
    assert state.seconds_per_bit[0] == math.inf and state.failure_prob[0] == 1.0
    np.testing.assert_allclose(state.error_prob[1:], 0.1)
    faded = LinkModel(1e6, SNR.tolist(), "rayleigh", mcs=NR_CQI_TABLE).link_state()
    thresholds = 10 ** (np.array(NR_CQI_TABLE.snr_db) / 10)
    eff = np.array(NR_CQI_TABLE.efficiency)
    for s, snr_db in enumerate(SNR):  # the entry of best goodput, entry by entry
        p = 1 - np.exp(-thresholds / 10 ** (snr_db / 10)) * 0.9
        i = np.argmax(eff * (1 - p))
        assert faded.efficiency[s] == eff[i] and faded.error_prob[s] == pytest.approx(p[i])


def test_bler_curve_link():
    curve = BlerCurve(2.0, (0.0, 4.0, 8.0), (0.9, 0.1, 0.001))
    state = LinkModel(1e6, [4.0, 8.0], mcs=curve, retransmissions=None).link_state()
    np.testing.assert_allclose(state.efficiency, 2.0)
    np.testing.assert_allclose(state.error_prob, [0.1, 0.001])
    faded = LinkModel(1e6, [8.0], "rayleigh", mcs=curve).link_state()
    assert 0.001 < faded.error_prob[0] < 0.9  # deep fades fail, good ones do not


def test_custom_mcs_table_and_errors():
    table = McsTable((0.0, 10.0), (1.0, 3.0), bler=0.0)
    assert table.efficiency_at([-1.0, 0.0, 9.9, 10.0]).tolist() == [0.0, 1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        McsTable((10.0, 0.0), (1.0, 3.0))
    with pytest.raises(ValueError, match="same length"):
        McsTable((0.0,), (1.0, 3.0))
    with pytest.raises(ValueError, match="bler"):
        BlerCurve(1.0, (0.0, 1.0), (0.5, 1.5))


def test_snr_states():
    snr, weights = lognormal_snr_states(15.0, 6.0, 1000)
    assert snr.mean() == pytest.approx(15.0) and weights.sum() == pytest.approx(1.0)
    link = LinkModel(1e6, snr.tolist(), snr_weights=weights.tolist())
    assert link.link_state().efficiency.shape == (1000,)
    np.testing.assert_allclose(LinkModel(1e6, [1.0, 2.0], snr_weights=[1, 3]).weights, [0.25, 0.75])


def test_huge_rician_factors_tend_to_no_fading():
    """SciPy's noncentral chi-square fails past K ~ 3e10; such K are computed at RICIAN_K_MAX."""
    awgn = LinkModel(1e6, snr_db=[20.0, 0.0]).link_state().efficiency
    for k in (1e9, 1e12):
        block = LinkModel(1e6, snr_db=[20.0, 0.0], fading="rician", rician_k=k).link_state()
        np.testing.assert_allclose(block.efficiency, awgn, rtol=1e-3)
        fast = LinkModel(1e6, snr_db=[0.0], fading="rician", rician_k=k, coherence="fast",
                         mcs="nr-cqi").link_state()  # fmt: skip
        assert fast.efficiency.tolist() == LinkModel(1e6, snr_db=[0.0], mcs="nr-cqi").link_state(
        ).efficiency.tolist()  # fmt: skip


def test_snr_given_as_text_or_an_infinite_bler_efficiency_is_refused():
    with pytest.raises(TypeError, match="snr_db must be a number or a sequence"):
        LinkModel(1e6, snr_db="12")
    with pytest.raises(ValueError, match="efficiency must be a finite number > 0"):
        BlerCurve(float("inf"), (0.0, 1.0), (0.5, 0.1))


def test_numpy_numbers_are_numbers_and_booleans_are_not():
    link = LinkModel(np.float32(1e6), snr_db=np.float32(5.0), retransmissions=np.int64(2))
    assert link.tx_s(1000).shape == (1,) and np.isfinite(link.tx_s(1000)).all()
    with pytest.raises(ValueError, match="propagation_s"):
        LinkModel(1e6, propagation_s=True)


@pytest.mark.parametrize("retransmissions", [0, 3, None])
def test_a_link_that_never_delivers_costs_forever(retransmissions):
    # -40 dB under Rayleigh: the outage 1 - exp(-threshold / snr) of every NR entry is 1.0 in
    # float64, so no entry delivers (eta = 0); a BLER curve at 1 delivers nothing either
    thresholds = 10 ** (np.array(NR_CQI_TABLE.snr_db) / 10)
    assert np.all(1 - np.exp(-thresholds / 1e-4) == 1.0)
    faded = LinkModel(1e6, -40.0, "rayleigh", mcs="nr-cqi", retransmissions=retransmissions)
    curve = BlerCurve(2.0, (0.0, 5.0), (1.0, 0.01))
    awgn = LinkModel(1e6, -5.0, mcs=curve, propagation_s=1e-3, retransmissions=retransmissions)
    for link in (faded, awgn):
        state = link.link_state()
        assert state.error_prob[0] == 1.0 and state.failure_prob[0] == 1.0
        assert state.attempts[0] == math.inf and link.tx_s(8000)[0] == math.inf
    assert faded.link_state().efficiency[0] == 0.0
    profile = profile_model(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)),
                            torch.ones(1, 64))  # fmt: skip
    result = search_plans(profile, Tier("d", 1e5), Tier("e", 1e11), faded, [Codec(8)])
    assert result.best_records()[0]["plan"] == "device"
    assert not result.feasible[1:, 0].any()  # every offloading plan is infeasible


def _bler_average_by_quad(curve: BlerCurve, snr_db: float, rician_k: float | None) -> float:
    """``E[bler(snr_db + 10 log10 g)]``, ``g = |h|^2``, by adaptive quadrature over ``log10 g``
    (Rayleigh: ``g ~ Exp(1)``; Rician: ``|h|`` from ``scipy.stats.rice``), split at the
    curve's points."""
    from scipy import integrate, stats

    if rician_k is None:
        pdf = lambda g: np.exp(-g)  # noqa: E731
    else:
        amp = stats.rice(math.sqrt(2 * rician_k), scale=1 / math.sqrt(2 * (rician_k + 1)))
        pdf = lambda g: amp.pdf(np.sqrt(g)) / (2 * np.sqrt(g))  # noqa: E731
    f = lambda lg: curve.bler_at(snr_db + 10 * lg) * pdf(10**lg) * 10**lg * math.log(10)  # noqa: E731
    points = sorted({(x - snr_db) / 10 for x in curve.snr_db} | {0.0})
    points = [p for p in points if -14 < p < 3]
    return integrate.quad(f, -14, 3, points=points, limit=1000, epsabs=0, epsrel=1e-11)[0]


@pytest.mark.parametrize("rician_k", [None, 0.0, 5.0], ids=["rayleigh", "rician-k0", "rician-k5"])
def test_bler_curve_under_block_fading_counts_deep_fades(rician_k):
    # at 40 dB the average error comes from fades |h|^2 < 1e-3.6, which 512 equally likely
    # quantiles (the smallest ~1e-3) missed: the old rule gave 1.0e-8 instead of 5.87e-5
    curve = BlerCurve(2.0, (0.0, 4.0, 8.0), (0.5, 1e-3, 1e-8))
    snrs = [0.0, 20.0, 30.0, 40.0]
    fading = "rayleigh" if rician_k is None else "rician"
    link = LinkModel(1e6, snrs, fading, mcs=curve, rician_k=rician_k or 0.0, retransmissions=0)
    exact = [_bler_average_by_quad(curve, s, rician_k) for s in snrs]
    np.testing.assert_allclose(link.link_state().error_prob, exact, rtol=1e-6)


def test_bler_curve_under_rayleigh_matches_monte_carlo():
    # 8e6 fades: the estimate's standard error is about 3% at 40 dB; allow 15% (5 sigma)
    curve = BlerCurve(2.0, (0.0, 4.0, 8.0), (0.5, 1e-3, 1e-8))
    gains = np.random.default_rng(0).exponential(1.0, 8_000_000)
    link = LinkModel(1e6, [30.0, 40.0], "rayleigh", mcs=curve)
    for s, p in zip([30.0, 40.0], link.link_state().error_prob, strict=True):
        assert p == pytest.approx(curve.bler_at(s + 10 * np.log10(gains)).mean(), rel=0.15)


@pytest.mark.parametrize("rician_k", [1e4, 1e6, 1e8])
def test_bler_curve_under_strong_line_of_sight(rician_k):
    """From K = 1e4 the fade is taken as normal (SciPy's noncentral chi-square quantiles take
    ~15 ms each at K = 1e8); against the exact Rician density by quadrature. Near K = 1e8 the
    fade is too narrow for that quadrature's grid: there the fade-free BLER is the reference
    (the fade's standard deviation, 1.4e-4, moves the SNR by 6e-4 dB)."""
    curve = BlerCurve(2.0, (0.0, 4.0, 8.0), (0.5, 1e-3, 1e-8))
    snrs = [1.0, 3.0, 6.0]
    link = LinkModel(1e6, snrs, "rician", mcs=curve, rician_k=rician_k, retransmissions=0)
    got = link.link_state().error_prob
    if rician_k < 1e8:
        exact = [_bler_average_by_quad(curve, s, rician_k) for s in snrs]
        np.testing.assert_allclose(got, exact, rtol=1e-3)
    else:
        np.testing.assert_allclose(got, curve.bler_at(np.array(snrs)), rtol=1e-3)


def _attempt_failure(fading: str, gain_threshold: np.ndarray, bler: float) -> np.ndarray:
    """P[attempt fails]: outage |h|^2 < threshold (Rayleigh Exp(1); Rician K = 3 from
    scipy.stats.rice), then ``bler`` on top."""
    from scipy import stats

    if fading == "rayleigh":
        outage = -np.expm1(-gain_threshold)
    else:
        amp = stats.rice(math.sqrt(2 * 3.0), scale=1 / math.sqrt(2 * (3.0 + 1)))
        outage = amp.cdf(np.sqrt(gain_threshold))
    return 1 - (1 - outage) * (1 - bler)


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_a_loss_target_picks_the_best_mcs_that_meets_it(fading):
    """Brute force over NR-CQI entries: the best goodput among the entries whose loss p**4
    (3 retransmissions) meets the target, none when no entry does."""
    snrs = np.linspace(-10.0, 40.0, 26)
    link = LinkModel(1e6, snrs.tolist(), fading, mcs="nr-cqi", rician_k=3.0, retransmissions=3)
    target = 1e-3
    state = link.link_state(max_loss=target)
    eff = np.asarray(NR_CQI_TABLE.efficiency)
    thresholds = 10 ** ((np.asarray(NR_CQI_TABLE.snr_db)[None, :] - snrs[:, None]) / 10)
    p = _attempt_failure(fading, thresholds, NR_CQI_TABLE.bler)
    goodput = np.where(p**4 <= target, eff * (1 - p), 0.0)
    want = np.where(goodput.max(axis=1) > 0, eff[goodput.argmax(axis=1)], 0.0)
    np.testing.assert_allclose(state.efficiency, want)
    delivered = state.efficiency > 0
    assert np.all(state.failure_prob[delivered] <= target * (1 + 1e-9))
    assert np.all(np.diff(delivered.astype(int)) >= 0) and delivered[-1]  # feasible from an SNR on
    assert not np.all(link.link_state().failure_prob[delivered] <= target)  # the target binds


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_a_loss_target_caps_the_shannon_rate_at_its_outage(fading):
    """Where the goodput rate loses too much, the rate is the largest whose loss meets the
    target: loss equal to it, and a rate 1% higher over it (the outage from scipy)."""
    snrs = np.array([0.0, 10.0, 20.0, 30.0])
    link = LinkModel(1e6, snrs.tolist(), fading, rician_k=3.0, retransmissions=1)
    target = 1e-4
    free, bounded = link.link_state(), link.link_state(max_loss=target)
    assert np.all(bounded.efficiency < free.efficiency)  # the goodput rates lose ~1e-2..1e-1
    for scale, compare in ((1.0, "equal"), (1.01, "over")):
        gain_needed = np.expm1(bounded.efficiency * scale * math.log(2)) / 10 ** (snrs / 10)
        loss = _attempt_failure(fading, gain_needed, 0.0) ** 2
        if compare == "equal":
            np.testing.assert_allclose(loss, target, rtol=1e-6)
        else:
            assert np.all(loss > target)


def test_a_reliability_target_offloads_at_a_lower_mcs():
    """The tester's case: block Rayleigh, NR-CQI, 3 retransmissions, max_failure_prob 1e-3 at
    30 dB: CQI 15 loses 4e-3, CQI 1 loses 1e-4 and still beats computing on the device."""
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    profile = profile_model(model, torch.randn(1, 64))
    link = LinkModel(1e6, [30.0], "rayleigh", mcs="nr-cqi")
    result = search_plans(profile, Tier("d", 1e5), Tier("e", 1e11), link, [Codec(8)],
                          max_failure_prob=1e-3)  # fmt: skip
    best = result.plans[result.best[0]]
    assert best.offload and result.failure_prob[result.best[0], 0] <= 1e-3
    assert result.latency_s[result.best[0], 0] < result.latency_s[0, 0]  # plan 0: the device


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_a_loss_target_met_at_its_bound_keeps_offloading(fading):
    """Where the target caps the Shannon rate, the loss lands on the target: rounding (an
    outage capacity's outage, ``p**M`` of ``target**(1/M)``, ``1 - (1 - f)``) must not put it
    an ulp over, which made every offload plan infeasible (30 dB, 1e-2 loss, no retransmission:
    only the device was left)."""
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    profile = profile_model(model, torch.ones(1, 8))
    for snr, target, retransmissions in [(30.0, 1e-2, 0), (39.0, 0.1, 0), (20.0, 1e-3, 0),
                                         (30.0, 1e-3, 1), (39.0, 1e-3, 2)]:  # fmt: skip
        link = LinkModel(1e6, snr, fading, rician_k=3.0, retransmissions=retransmissions)
        state = link.link_state(max_loss=target)
        assert state.efficiency[0] > 0 and state.failure_prob[0] <= target
        result = search_plans(profile, Tier("d", 1e3), Tier("e", 1e9), link, [Codec(32)],
                              max_failure_prob=target, local=False)  # fmt: skip
        assert result.best[0] >= 0, (snr, target, retransmissions)
        assert result.failure_prob[result.best[0], 0] <= target
