"""Split-point search on a hand-computed cost table: optimum, one and two cuts, offload or not,
accuracy constraints, the SNR policy, Pareto fronts, and the vectorized search against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aiflow_comm.search import (
    INPUT_CUT,
    AccuracyTable,
    BlerCurve,
    Codec,
    CutProfile,
    LinkModel,
    McsTable,
    ModelProfile,
    Plan,
    Tier,
    lognormal_snr_states,
    pareto_front,
    search_plans,
)
from aiflow_comm.search.reference import exhaustive_search
from aiflow_comm.split import CrossingTensor


def snr_for(efficiency: float) -> float:
    """The SNR (dB) at which Shannon gives ``efficiency`` bits/s/Hz."""
    return 10.0 * math.log10(2.0**efficiency - 1.0)


def cut(name: str, numel: int, head: float, total: float) -> CutProfile:
    tensor = CrossingTensor(name, (1, numel), torch.float32)
    return CutProfile(name, (tensor,), int(head), int(total - head))


def hand_profile(total: float = 1e9) -> ModelProfile:
    """Four cuts with known sizes and FLOPs: raw float32 payloads of 32000, 128000, 8000 and
    320 bits; head FLOPs 0, 1e8, 5e8, 9e8 of ``total``."""
    cuts = (
        cut(INPUT_CUT, 1000, 0, total),
        cut("a", 4000, 1e8, total),
        cut("b", 250, 5e8, total),
        cut("c", 10, 9e8, total),
    )
    return ModelProfile(cuts, int(total))


DEVICE = Tier("device", 1e9, power_w=2.0, tx_power_w=1.0, idle_power_w=0.5)
EDGE = Tier("edge", 1e10)
RAW = [Codec(32)]


def test_hand_computed_optimum_and_breakdown():
    # 0 dB = 1 bit/s/Hz over 1e5 Hz: 1e5 bit/s. Latencies by hand (device 1e9, edge 1e10):
    # input .32+.1=.42, a .1+1.28+.09=1.47, b .5+.08+.05=.63, c .9+.0032+.01=.9132, device 1.0
    link = LinkModel(1e5, snr_db=0.0)
    result = search_plans(hand_profile(), DEVICE, EDGE, link, RAW)
    by_label = {p.label: result.latency_s[i, 0] for i, p in enumerate(result.plans)}
    expected = {"device": 1.0, "<input>@32b": 0.42, "a@32b": 1.47, "b@32b": 0.63, "c@32b": 0.9132}
    assert by_label == pytest.approx(expected, rel=1e-12)
    best = result.best_records()[0]
    assert (best["cut"], best["offload"], best["bits"], best["payload_bits"]) == (
        INPUT_CUT, True, 32, 32000
    )  # fmt: skip
    assert best["device_s"] == 0.0
    assert best["tx_s"] == pytest.approx(0.32) and best["edge_s"] == pytest.approx(0.1)
    # device energy: 2 W x 0 s computing + 1 W x .32 s sending + .5 W x .1 s waiting
    assert best["energy_j"] == pytest.approx(0.32 + 0.05)


def test_policy_changes_the_cut_as_snr_falls():
    efficiencies = [3.0, 1.0, 0.25, 0.1, 0.01]
    link = LinkModel(1e5, snr_db=[snr_for(e) for e in efficiencies])
    result = search_plans(hand_profile(), DEVICE, EDGE, link, RAW)
    cuts = [result.best_plan(s).cut for s in range(len(efficiencies))]
    # 0.25 b/s/Hz: input 1.38 s, b .87 s, c .9228 s; 0.1: b 1.35, c .942, device 1.0;
    # 0.01: c 1.23 s, device 1.0 s
    assert cuts == [INPUT_CUT, INPUT_CUT, "b", "c", None]
    assert [row["plan"] for row in result.policy()] == ["device", "c@32b", "b@32b", "<input>@32b"]
    assert result.best_records()[-1]["offload"] is False


def test_offload_or_not_follows_the_device_speed():
    link = LinkModel(1e5, snr_db=0.0)
    fast_device = Tier("device", 1e12)
    assert search_plans(hand_profile(), fast_device, EDGE, link, RAW).best_plan().cut is None
    forced = search_plans(hand_profile(), fast_device, EDGE, link, RAW, local=False)
    assert forced.best_plan().offload and all(p.offload for p in forced.plans)
    slow_link = LinkModel(1e5, snr_db=-30.0)
    assert search_plans(hand_profile(), DEVICE, EDGE, slow_link, RAW).best_plan().cut is None


def test_two_cuts_device_edge_cloud():
    # total 2e9 with "c" at 9e8: the edge (5e9) runs up to c, the cloud (1e11) the heavy rest.
    profile = hand_profile(total=2e9)
    edge, cloud = Tier("edge", 5e9), Tier("cloud", 1e11)
    link, backhaul = LinkModel(1e5, snr_db=0.0), LinkModel(1e4, snr_db=0.0)
    result = search_plans(profile, DEVICE, edge, link, RAW, cloud=cloud, backhaul=backhaul)
    best = result.best_plan()
    assert (best.cut, best.cut2) == (INPUT_CUT, "c")
    # .32 s sending the input, .18 s on the edge, 320 bits at 1e4 bit/s, 1.1e9 / 1e11 s
    assert result.latency_s[result.best[0], 0] == pytest.approx(0.32 + 0.18 + 0.032 + 0.011)
    labels = {p.label: i for i, p in enumerate(result.plans)}
    one_cut = result.latency_s[labels["<input>@32b"], 0]
    relay = result.latency_s[labels["<input>@32b -> <input>@32b"], 0]
    assert one_cut == pytest.approx(0.32 + 0.4) and relay == pytest.approx(0.32 + 3.2 + 0.02)
    # a fast backhaul makes relaying the input to the cloud best
    fast = LinkModel(1e7, snr_db=0.0)
    best = search_plans(profile, DEVICE, edge, link, RAW, cloud=cloud, backhaul=fast).best_plan()
    assert (best.cut, best.cut2) == (INPUT_CUT, INPUT_CUT)


def test_accuracy_constraint_excludes_a_plan():
    link = LinkModel(1e5, snr_db=0.0)
    codecs = [Codec(32), Codec(4)]
    table = AccuracyTable({(INPUT_CUT, 4): 0.6, ("b", 4): 0.85}, lossless=0.9)
    free = search_plans(hand_profile(), DEVICE, EDGE, link, codecs, accuracy=table)
    assert free.best_plan() == Plan(INPUT_CUT, Codec(4))
    bound = search_plans(
        hand_profile(), DEVICE, EDGE, link, codecs, accuracy=table, min_accuracy=0.8
    )
    labels = [p.label for p in bound.plans]
    assert not bound.feasible[labels.index("<input>@4b"), 0]
    assert math.isnan(bound.accuracy[labels.index("a@4b"), 0])  # unknown: excluded
    assert not bound.feasible[labels.index("a@4b"), 0]
    assert bound.best_plan() == Plan(INPUT_CUT, Codec(32))
    assert bound.best_records()[0]["accuracy"] == pytest.approx(0.9)
    nothing = search_plans(hand_profile(), DEVICE, EDGE, link, codecs, accuracy=table,
                           min_accuracy=0.95)  # fmt: skip
    assert nothing.best.tolist() == [-1] and nothing.best_plan() is None


def test_accuracy_trade_off_and_snr_dependent_accuracy():
    link = LinkModel(1e5, snr_db=[0.0, 20.0])
    codecs = [Codec(32), Codec(4)]
    table = AccuracyTable(
        {(INPUT_CUT, 4): [0.2, 0.88]}, lossless=0.9, snr_db=[0.0, 20.0]
    )  # accuracy of the 4-bit input falls at low SNR (an analog link, say)
    result = search_plans(hand_profile(), DEVICE, EDGE, link, codecs, accuracy=table,
                          objective=(1.0, 0.0, 1.0))  # fmt: skip
    assert [result.best_plan(s).label for s in range(2)] == ["<input>@32b", "<input>@4b"]


def test_energy_objective_prefers_less_device_work():
    link = LinkModel(1e5, snr_db=0.0)
    result = search_plans(hand_profile(), DEVICE, EDGE, link, RAW, objective="energy")
    energy = {p.label: result.energy_j[i, 0] for i, p in enumerate(result.plans)}
    assert energy["device"] == pytest.approx(2.0)
    assert energy["c@32b"] == pytest.approx(2 * 0.9 + 0.0032 + 0.5 * 0.01)
    assert result.best_plan().label == min(energy, key=energy.get) == "<input>@32b"


def test_expected_values_and_pareto_front():
    link = LinkModel(1e5, snr_db=[snr_for(1.0), snr_for(0.1)], snr_weights=[3.0, 1.0])
    result = search_plans(hand_profile(), DEVICE, EDGE, link, RAW)
    expected = result.expected()
    # adaptive: .42 s (input) w.p. 3/4, .942 s (c) w.p. 1/4
    assert expected["policy"]["latency_s"] == pytest.approx(0.75 * 0.42 + 0.25 * 0.942)
    # fixed: input .75 x .42 + .25 x 3.3 = 1.14; b .75 x .63 + .25 x 1.35 = .81;
    # c .75 x .9132 + .25 x .942 = .9204; device 1.0
    assert expected["fixed"]["plan"] == "b@32b"
    assert expected["fixed"]["latency_s"] == pytest.approx(0.75 * 0.63 + 0.25 * 1.35)
    front = result.pareto()
    lat = result.latency_s @ result.weights
    energy = result.energy_j @ result.weights
    for i in range(len(result.plans)):  # no plan beats a front plan in both
        if i in front:
            continue
        assert any(lat[j] <= lat[i] and energy[j] <= energy[i] for j in front)


def test_pareto_front_small_cases():
    points = [[1.0, 5.0, 0.0], [2.0, 2.0, 0.0], [3.0, 3.0, 0.0], [1.0, 5.0, -1.0], [np.inf, 0, 0]]
    assert pareto_front(points).tolist() == [3, 1]
    assert pareto_front(np.zeros((0, 2))).tolist() == []
    with pytest.raises(ValueError, match="2-d"):
        pareto_front([1.0, 2.0])


@pytest.mark.parametrize(
    "fading, coherence, mcs",
    [("none", "block", "shannon"), ("rayleigh", "block", "nr-cqi"),
     ("rician", "fast", "shannon"), ("rayleigh", "block", "shannon")],
)  # fmt: skip
def test_vectorized_search_equals_exhaustive_loop(fading, coherence, mcs):
    rng = np.random.default_rng(0)
    profile = hand_profile(total=2e9)
    snr = rng.uniform(-15.0, 30.0, size=40)
    link = LinkModel(2e5, snr.tolist(), fading, coherence, mcs, retransmissions=2,
                     propagation_s=1e-3)  # fmt: skip
    codecs = [Codec(32), Codec(8), Codec(4, 64), Codec(8, ratio=0.5)]
    table = AccuracyTable({(c.name, b): 0.8 + 0.01 * i for i, c in enumerate(profile.cuts)
                           for b in (8, 4)}, lossless=0.9)  # fmt: skip
    kwargs = dict(
        cloud=Tier("cloud", 1e11), backhaul=LinkModel(1e6, 20.0, propagation_s=5e-3),
        accuracy=table, min_accuracy=0.805, max_failure_prob=0.05,
    )  # fmt: skip
    for objective in ("latency", "energy", (1.0, 0.3, 0.5)):
        result = search_plans(profile, DEVICE, Tier("edge", 5e9), link, codecs,
                              objective=objective, **kwargs)  # fmt: skip
        best, costs = exhaustive_search(profile, DEVICE, Tier("edge", 5e9), link, codecs,
                                        objective=objective, **kwargs)  # fmt: skip
        assert result.best.tolist() == best
        np.testing.assert_allclose(result.cost, np.array(costs), rtol=1e-12)
        assert len(set(best)) > 1  # the grid is not trivial


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LinkModel(-1e6), "bandwidth_hz must be a finite number > 0"),
        (lambda: LinkModel(0.0), "bandwidth_hz"),
        (lambda: LinkModel(1e6, fading="nakagami"), "fading must be one of"),
        (lambda: LinkModel(1e6, mcs="lte"), "mcs must be one of"),
        (lambda: LinkModel(1e6, retransmissions=-1), "retransmissions"),
        (lambda: LinkModel(1e6, snr_db=[]), "snr_db"),
        (lambda: LinkModel(1e6, snr_db=[1.0, 2.0], snr_weights=[1.0]), "snr_weights"),
        (lambda: LinkModel(1e6, coherence="slow"), "coherence"),
        (lambda: Tier("device", -1e9), "device: flops_per_s must be a finite number > 0"),
        (lambda: Tier("edge"), "needs flops_per_s"),
        (lambda: Tier("edge", 1e9, power_w=-1.0), "power_w"),
        (lambda: Codec(3), "bits must be one of"),
        (lambda: Codec(8, ratio=1.5), "ratio"),
        (lambda: Codec(8, symmetric="no"), "symmetric must be a bool"),
        (lambda: BlerCurve(True, (0.0, 1.0), (0.1, 0.01)), "efficiency must be a finite number"),
        (lambda: BlerCurve(1.0, "01", (0.1, 0.2)), "snr_db must be a sequence of numbers"),
        (lambda: McsTable((1.0, 2.0), (0.5, 1.0), bler="0.1"), "bler must be a number"),
        (lambda: LinkModel(1e6).tx_s(-5), "bits must be finite numbers >= 0"),
        (lambda: LinkModel(1e6).tx_s([1e3, math.nan]), "bits must be finite numbers >= 0"),
        (lambda: lognormal_snr_states(10.0, 4.0, True), "n must be an int >= 1"),
    ],
)
def test_bad_tiers_links_and_codecs_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_codec_takes_numpy_integers():
    """np.int64 group sizes (from a NumPy sweep) were refused, while bits took them."""
    codec = Codec(np.int64(8), np.int64(64))
    assert codec == Codec(8, 64) and type(codec.group_size) is int and type(codec.bits) is int


def test_bad_search_arguments_raise():
    link = LinkModel(1e5, snr_db=0.0)
    with pytest.raises(ValueError, match="min_accuracy needs accuracy"):
        search_plans(hand_profile(), DEVICE, EDGE, link, RAW, min_accuracy=0.5)
    with pytest.raises(ValueError, match="objective must be one of"):
        search_plans(hand_profile(), DEVICE, EDGE, link, RAW, objective="speed")
    with pytest.raises(ValueError, match=r"cloud \(a Tier\) and backhaul"):
        search_plans(hand_profile(), DEVICE, EDGE, link, RAW, cloud=Tier("cloud", 1e12))
    with pytest.raises(ValueError, match="codecs must hold at least one"):
        search_plans(hand_profile(), DEVICE, EDGE, link, [])
    with pytest.raises(ValueError, match="only time_scale"):
        search_plans(hand_profile(), Tier("device", time_scale=2.0), EDGE, link, RAW)


def test_measured_profile_search_equals_exhaustive_loop():
    import time

    from aiflow_comm.search import profile_model
    from aiflow_comm.search.models import deep_mlp

    profile = profile_model(deep_mlp(depth=8), torch.zeros(2, 3, 32, 32), measure=True,
                            repeats=2, num_threads=1, clock=time.process_time)  # fmt: skip
    device = Tier("device", time_scale=50.0, power_w=1.0, tx_power_w=0.5)
    edge = Tier("edge", 1e10)  # no time_scale: FLOPs even with a measured profile
    link = LinkModel(1e6, np.linspace(-20.0, 30.0, 25).tolist(), "rician", mcs="nr-cqi")
    codecs = [Codec(32), Codec(8), Codec(4, ratio=0.5)]
    result = search_plans(profile, device, edge, link, codecs, cloud=Tier("cloud", time_scale=0.1),
                          backhaul=LinkModel(1e7, 25.0))  # fmt: skip
    best, costs = exhaustive_search(profile, device, edge, link, codecs,
                                    cloud=Tier("cloud", time_scale=0.1),
                                    backhaul=LinkModel(1e7, 25.0))  # fmt: skip
    assert result.best.tolist() == best
    np.testing.assert_allclose(result.cost, np.array(costs), rtol=1e-12)
    local = result.plans.index(Plan(None, None))
    assert result.device_s[local] == pytest.approx(50.0 * profile.total_s)


def _mlp_profile(measure: bool = False) -> ModelProfile:
    from aiflow_comm.search import profile_model

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    return profile_model(model, torch.randn(1, 64), measure=measure)


def test_a_state_of_probability_zero_never_turns_the_means_into_nan():
    """A plan infeasible (infinite latency) only in a state of probability 0 keeps its mean."""
    device, edge = Tier("d", 1e6, 1.0, 1.0), Tier("e", 1e11)
    codecs = [Codec(32), Codec(8)]
    result = search_plans(_mlp_profile(), device, edge, LinkModel(1e6, mcs="nr-cqi"), codecs,
                          snr_db=[20.0, -20.0], weights=[1.0, 0.0])  # fmt: skip
    assert result.best_plan(0).label == "<input>@8b"
    fixed = result.expected()["fixed"]
    assert fixed["plan"] == "<input>@8b"
    assert fixed["latency_s"] == pytest.approx(result.latency_s[result.best[0], 0])
    assert "<input>@8b" in [result.plans[i].label for i in result.pareto()]
    assert np.isfinite(result.mean(result.latency_s)[result.best[0]])


@pytest.mark.parametrize("tx_power_w", [1.0, 0.0])  # 0 W, the default: 0 x inf was NaN
def test_plans_over_a_link_that_never_delivers_take_forever_not_nan(tx_power_w):
    link = LinkModel(1e6, snr_db=-10.0, mcs="nr-cqi", retransmissions=None)
    assert link.tx_s(1e4).tolist() == [math.inf]
    result = search_plans(_mlp_profile(), Tier("d", 1e6, 1.0, tx_power_w), Tier("e", 1e11),
                          link, [Codec(8)])  # fmt: skip
    offload = [i for i, plan in enumerate(result.plans) if plan.cut is not None]
    assert np.isposinf(result.latency_s[offload]).all()
    assert np.isposinf(result.energy_j[offload]).all() and not np.isnan(result.energy_j).any()
    assert result.best_plan(0).cut is None


def test_states_are_checked_where_a_result_is_read_by_state():
    """state=5 of one state raised IndexError, state=-1 read the last state silently."""
    result = search_plans(_mlp_profile(), Tier("d", 1e6, 1.0, 1.0), Tier("e", 1e11),
                          LinkModel(1e6, snr_db=[0.0, 10.0]), [Codec(8)])  # fmt: skip
    assert result.best_plan(np.int64(1)) is not None
    for bad in (2, -1):
        with pytest.raises(ValueError, match=r"state must be in \[0, 2\)"):
            result.best_plan(bad)
        with pytest.raises(ValueError, match="state must be in"):
            result.pareto(bad)
    with pytest.raises(TypeError, match="state must be an int"):
        result.pareto(0.5)


def test_a_measured_model_without_flops_prices_plans_without_projections():
    from aiflow_comm.search import profile_model

    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh())
    profile = profile_model(model, torch.randn(1, 8), measure=True)
    result = search_plans(profile, Tier("d", 1e9), Tier("e", time_scale=0.5),
                          LinkModel(1e6, snr_db=10.0), [Codec(32)])  # fmt: skip
    assert np.isfinite(result.latency_s).all()
    with pytest.raises(ValueError, match="gives no seconds per FLOP"):
        search_plans(profile, Tier("d", 1e9), Tier("e", time_scale=0.5),
                     LinkModel(1e6, snr_db=10.0), [Codec(8, ratio=0.5)])  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"snr_db": []}, "snr_db must be finite numbers"),
        ({"snr_db": [1.0, 2.0], "weights": [math.inf, 1.0]}, "weights must be 2 finite numbers"),
        ({"accuracy": {None: 0.9}, "min_accuracy": math.nan}, "min_accuracy must be a finite"),
        ({"max_failure_prob": "0.1"}, r"max_failure_prob must be a number in \[0, 1\]"),
        ({"max_failure_prob": True}, r"max_failure_prob must be a number in \[0, 1\]"),
        ({"accuracy": lambda plan, snr: [0.9, 0.8, 0.7]}, r"must return one number or 1 \(one"),
        ({"accuracy": lambda plan, snr: "high"}, r"for plan 'device' it returned 'high'"),
    ],
)
def test_bad_states_and_constraints_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        search_plans(_mlp_profile(), Tier("d", 1e6), Tier("e", 1e11), LinkModel(1e6),
                     [Codec(8)], **kwargs)  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"objective": 5}, TypeError, r"objective must be one of .* or three weights"),
        ({"objective": ("a", "b", "c")}, TypeError, r"objective must be one of .* got \('a'"),
        ({"objective": {"latency": 1.0}}, TypeError, r"objective must be one of"),
        ({"accuracy": {None: 0.9}, "min_accuracy": True}, ValueError, "min_accuracy must be a"),
        ({"snr_db": "10"}, TypeError, "snr_db must be a number or a sequence of numbers"),
    ],
)
def test_bad_objectives_and_states_name_the_argument(kwargs, error, message):
    """A number or strings as the objective raised numpy's or float's message (naming neither
    the argument nor what it takes), ``min_accuracy=True`` passed as 1.0 (``max_failure_prob``
    refuses a bool), and ``snr_db="10"`` passed as 10 dB where ``LinkModel`` refuses it."""
    with pytest.raises(error, match=message):
        search_plans(_mlp_profile(), Tier("d", 1e6), Tier("e", 1e11), LinkModel(1e6),
                     [Codec(8)], **kwargs)  # fmt: skip


def test_a_single_codec_is_refused_with_the_list_to_pass():
    with pytest.raises(TypeError, match=r"codecs must be a sequence of Codec objects, e\.g\. \["):
        search_plans(_mlp_profile(), Tier("d", 1e6), Tier("e", 1e11), LinkModel(1e6), Codec(8))


def test_lognormal_states_take_numpy_integers():
    snr, weights = lognormal_snr_states(10.0, 4.0, np.int64(3))
    np.testing.assert_allclose(snr, lognormal_snr_states(10.0, 4.0, 3)[0])
    assert weights.tolist() == [1 / 3] * 3


def test_codec_and_tier_take_numpy_numbers_but_not_floats_for_bits():
    assert Codec(np.int64(8)).label == "8b" and Tier("d", np.float32(1e9)).flops_per_s == 1e9
    for bad in ({"bits": 8.0}, {"bits": 8, "ratio": True}):
        with pytest.raises(ValueError, match=r"bits must be one of|ratio must be"):
            Codec(**bad)


def _drawn_search(monkeypatch, result, **kwargs):
    """plot_search's right panel (expected latency against energy), kept open."""
    pytest.importorskip("matplotlib")
    from aiflow_comm import plotting

    figures = []
    monkeypatch.setattr(plotting, "_save", lambda figure, path, title="": figures.append(figure))
    plotting.plot_search(result, "unused.png", **kwargs)
    return figures[0].axes[1]


def _front_line(axes) -> list[tuple[float, float]]:
    (line,) = [line for line in axes.get_lines() if line.get_label() == "Pareto front"]
    return [tuple(point) for point in line.get_xydata().tolist()]


def test_the_plotted_front_is_that_of_latency_and_energy_and_keeps_a_zero_latency_plan(
    monkeypatch,
):
    """With accuracies the plot joined the 3-objective front (a plan the drawn plane shows as
    dominated was on it); a plan at 0 s vanished from a log latency axis."""
    profile = _mlp_profile()
    args = (Tier("d", 1e6, 1.0, 1.0), Tier("e", 1e11), LinkModel(1e6, snr_db=[0.0, 20.0]))
    codecs = [Codec(8), Codec(32)]
    plain = search_plans(profile, *args, codecs)
    labels = {plan.label: 0.5 + 0.01 * i for i, plan in enumerate(plain.plans)}
    rated = search_plans(profile, *args, codecs, accuracy=lambda plan, snr: labels[plan.label])
    front = rated.pareto(with_accuracy=False)
    assert _front_line(_drawn_search(monkeypatch, rated)) == [
        (1e3 * x, 1e3 * y)
        for x, y in sorted(zip(rated.mean(rated.latency_s)[front],
                               rated.mean(rated.energy_j)[front], strict=True))
    ]  # fmt: skip
    assert set(rated.pareto()) > set(front)  # accuracy puts more plans on the full front

    from aiflow_comm.search import profile_model

    free = profile_model(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh()), torch.randn(1, 8))
    result = search_plans(free, *args, [Codec(8)])
    axes = _drawn_search(monkeypatch, result)
    assert axes.get_xscale() == "symlog" and (0.0, 0.0) in _front_line(axes)
    with pytest.raises(ValueError, match="state must be in"):
        _drawn_search(monkeypatch, result, state=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"snr_db": [0.0, math.nan]}, "snr_db must be increasing finite numbers"),
        ({"snr_db": [0.0, math.inf]}, "snr_db must be increasing finite numbers"),
        ({"values": {("a", 8): [0.5, math.nan]}}, "must hold 2 finite value"),
        ({"values": {("a", 8): [0.5, math.inf]}}, "must hold 2 finite value"),
        ({"lossless": math.nan}, "lossless must be a finite accuracy"),
    ],
)
def test_accuracy_tables_refuse_non_finite_numbers(kwargs, match):
    """A NaN SNR passed the increasing check and gave NaN accuracies at 5 and 20 dB; an
    infinite accuracy ranked as the worst on the Pareto front."""
    from aiflow_comm.search import AccuracyTable

    args = {"values": {("a", 8): [0.5, 0.9]}, "snr_db": [0.0, 10.0]} | kwargs
    with pytest.raises(ValueError, match=match):
        AccuracyTable(args.pop("values"), **args)
