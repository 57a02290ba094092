"""Chain statistics and rule 2 (evaluation/chain_stats.py) on synthetic chains whose answers are known: an i.i.d.
Bernoulli chain, a two-state Markov chain with known stationary share, switch rate and autocorrelation time,
a biased chain, a chain with too few switches and a chain whose second half differs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from replication.data.registry import CLASS_GROUPS, CLASS_NAMES
from replication.evaluation import chain_stats as cs

GROUPS = CLASS_GROUPS["fashion-mnist"]
FOOT, CLOTH, BAG = 7, 0, 8  # a class of each group: Sneaker, T-shirt/top, Bag


def markov(n: int, a: float, b: float, seed: int, start: int = 0) -> np.ndarray:
    """Two-state chain: P(0 -> 1) = a, P(1 -> 0) = b. Stationary P(1) = a / (a + b); lag-k autocorrelation
    lam^k with lam = 1 - a - b, so IAT = (1 + lam) / (1 - lam); expected switches per step 2ab / (a + b)."""
    u = np.random.default_rng(seed).random(n)
    s = np.empty(n, dtype=np.int64)
    s[0] = start
    for t in range(1, n):
        s[t] = (u[t] < a) if s[t - 1] == 0 else (u[t] >= b)
    return s


def as_labels(state: np.ndarray, one: int = FOOT, zero: int = CLOTH) -> np.ndarray:
    return np.where(state == 1, one, zero)


def reference(foot: float, bag: float = 0.0, n: int = 1000) -> dict:
    """A reference with the given group shares (binomial SEs of n items)."""
    n_foot, n_bag = round(foot * n), round(bag * n)
    labels = np.array([FOOT] * n_foot + [BAG] * n_bag + [CLOTH] * (n - n_foot - n_bag))
    return cs.reference_shares(labels, GROUPS)


def test_group_registry_partitions_the_classes():
    assert tuple(GROUPS) == ("footwear", "clothing", "bag")  # the first two: the pair S counts
    assert sorted(c for classes in GROUPS.values() for c in classes) == list(range(10))
    names = CLASS_NAMES["fashion-mnist"]
    assert {names[c] for c in GROUPS["footwear"]} == {"Sandal", "Sneaker", "Ankle boot"}
    assert [names[c] for c in GROUPS["bag"]] == ["Bag"]
    assert "mnist" not in CLASS_GROUPS  # datasets may have no groups


def test_switches_on_a_hand_sequence():
    labels = [5, 0, 8, 7, 9, 1, 8, 8, 2, 5]  # F C bag F F C bag bag C F -> F C F F C C F
    assert cs.switches(labels, GROUPS) == 4
    assert cs.switches([5, 8, 7, 8, 9], GROUPS) == 0  # bags dropped: F F F
    assert cs.switches([0, 8, 5], GROUPS) == 1  # a bag between clothing and footwear: one switch
    traces = cs.group_traces(labels, GROUPS)
    assert traces["footwear"].tolist() == [1, 0, 0, 1, 1, 0, 0, 0, 0, 1]
    assert traces["bag"].sum() == 3 and sum(t.sum() for t in traces.values()) == len(labels)


def test_iid_bernoulli_chain():
    n, p = 20_000, 0.3
    x = (np.random.default_rng(0).random(n) < p).astype(float)
    t = cs.trace_stats(x)
    assert t["mean"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))
    assert t["ess"] == pytest.approx(n, rel=0.1)  # independent draws: ESS ~ n
    assert t["mcse"] == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.1)
    assert abs(t["rhat"] - 1) < 0.01


def test_two_state_markov_chain_share_switches_and_ess():
    n, a, b = 100_000, 0.05, 0.13
    lam = 1 - a - b
    iat = (1 + lam) / (1 - lam)  # 10.1: a naive estimator (ESS = n) is off by 10x
    state = markov(n, a, b, seed=1)
    labels = as_labels(state)
    stats = cs.chain_statistics(labels, state * 0.1 + 0.2, GROUPS, steps=np.arange(n) * 20)
    foot = stats["groups"]["footwear"]
    share = a / (a + b)
    assert foot["mean"] == pytest.approx(share, abs=4 * math.sqrt(share * (1 - share) * iat / n))
    assert foot["ess"] == pytest.approx(n / iat, rel=0.15)
    assert foot["mcse"] == pytest.approx(math.sqrt(share * (1 - share) * iat / n), rel=0.1)
    rate = 2 * a * b / (a + b)  # expected switches per step
    assert stats["switches"] == pytest.approx(rate * (n - 1), rel=0.05)
    assert stats["switches_per_1e5_steps"] == pytest.approx(1e5 * stats["switches"] / (20 * (n - 1)))
    assert stats["groups"]["bag"]["constant"] and stats["groups"]["bag"]["mcse"] == 0
    assert abs(foot["rhat"] - 1) < 0.03
    v = cs.verdict(stats, reference(share), fd=40.0, fd_blurred=45.0)
    assert v["decided"] and v["stable"] and v["on_data"] is True and v["label"] == "stable, on the data"


def test_biased_chain_is_off_the_data():
    n = 50_000
    state = (np.random.default_rng(2).random(n) < 0.45).astype(np.int64)  # footwear 45%, reference 30%
    stats = cs.chain_statistics(as_labels(state), np.full(n, 0.2) + 0.01 * state, GROUPS)
    v = cs.verdict(stats, reference(0.30), fd=40.0, fd_blurred=45.0)
    assert v["decided"] and v["stable"] and v["on_data"] is False and v["label"] == "stable, off the data"
    assert any("footwear" in r and "off the reference" in r for r in v["reasons"])
    # the same chain against its own share is on the data, and the FD alone can put it off
    assert cs.verdict(stats, reference(0.45), fd=40.0, fd_blurred=45.0)["on_data"] is True
    assert cs.verdict(stats, reference(0.45), fd=90.0, fd_blurred=45.0)["on_data"] is False
    assert cs.verdict(stats, reference(0.45))["on_data"] is None  # no FD: not judged
    assert cs.verdict(stats)["on_data"] is None


def test_share_tolerance_combines_the_errors():
    assert cs.share_tolerance(0.03, 0.04) == pytest.approx(cs.N_MCSE * 0.05 + cs.SHARE_SLACK)
    assert cs.share_tolerance(None, 0.01) is None


def test_few_switches_is_undecided():
    n = 20_000
    state = markov(n, 0.0005, 0.0005, seed=3)  # about 10 switches in 20,000 jumps
    stats = cs.chain_statistics(as_labels(state), 0.2 + 0.1 * state, GROUPS)
    assert 0 < stats["switches"] < cs.S_MIN
    v = cs.verdict(stats, reference(0.5), fd=40.0, fd_blurred=45.0)
    assert not v["decided"] and v["label"] == "undecided"
    assert v["reasons"][0] == f"S = {stats['switches']} footwear↔clothing switches < {cs.S_MIN}"
    # thinned: S is labelled as a lower bound
    thin = cs.chain_statistics(as_labels(state[::20]), 0.2 + 0.1 * state[::20], GROUPS, thinned=True)
    assert thin["switches"] <= stats["switches"] and "(a lower bound)" in cs.verdict(thin)["reasons"][0]


def test_many_switches_but_few_effective_jumps_is_not_decided():
    # 200 quick switches between two long stays: S passes, the ESS of the shares does not
    state = np.r_[np.ones(5000), np.tile([0, 1], 100), np.zeros(5000)].astype(np.int64)
    stats = cs.chain_statistics(as_labels(state), np.full(len(state), 0.2), GROUPS)
    assert stats["switches"] >= cs.S_MIN and stats["groups"]["footwear"]["ess"] < cs.ESS_MIN
    assert not cs.verdict(stats)["decided"]
    iid = (np.random.default_rng(5).random(400) < 0.5).astype(np.int64)  # S ~ 200, ESS ~ 400
    assert cs.verdict(cs.chain_statistics(as_labels(iid), np.full(400, 0.2), GROUPS))["decided"]


def test_second_half_differs_is_not_stable():
    n = 40_000
    rng = np.random.default_rng(6)
    p = np.where(np.arange(n) < n // 2, 0.2, 0.5)  # footwear share 20% in the first half, 50% in the second
    state = (rng.random(n) < p).astype(np.int64)
    stats = cs.chain_statistics(as_labels(state), 0.2 + 0.05 * rng.standard_normal(n), GROUPS)
    assert stats["switches"] > cs.S_MIN and stats["groups"]["footwear"]["rhat"] > cs.RHAT_MAX
    assert stats["mean_pixel"]["rhat"] < cs.RHAT_MAX  # the mean pixel does not change: only the shares do
    v = cs.verdict(stats, reference(0.35), fd=40.0, fd_blurred=45.0)
    assert not v["stable"] and v["label"] == "not stable"
    # arviz's bulk ESS counts the halves' disagreement as autocorrelation: a handful of effective jumps
    assert stats["groups"]["footwear"]["ess"] < cs.ESS_MIN and not v["decided"]
    # a drifting mean pixel alone also fails
    drift = cs.chain_statistics(as_labels(rng.random(n) < 0.3), 0.2 + np.linspace(0, 0.1, n)
                                + 0.02 * rng.standard_normal(n), GROUPS)
    assert drift["mean_pixel"]["rhat"] > cs.RHAT_MAX and not cs.verdict(drift)["stable"]


def test_short_and_constant_traces():
    t = cs.trace_stats([0.0, 0.0, 0.0])
    assert t["constant"] and t["ess"] is None and t["rhat"] is None
    t = cs.trace_stats(np.r_[np.zeros(50), np.ones(50)])  # windows each constant, and different
    assert not t["constant"] and (t["rhat"] is None or t["rhat"] > 100)
    stats = cs.chain_statistics(as_labels(np.r_[np.zeros(50), np.ones(50)].astype(int)), np.full(100, 0.2), GROUPS)
    assert not cs.verdict(stats)["stable"]


def test_record_entries_round_trip():
    names = cs.metric_names(GROUPS)
    assert len(set(names)) == len(names) and cs.share_metric("footwear") in names and cs.VERDICT in names
    metrics = [{"metric": cs.share_metric("footwear"), "value": 0.4, "status": "ok"},
               {"metric": cs.reference_metric("footwear"), "value": None, "status": "not computed"},
               {"metric": cs.VERDICT, "value": None, "status": "ok", "label": "undecided"}]
    got = cs.read_metrics(metrics, GROUPS)
    assert got["shares"]["footwear"]["value"] == 0.4 and got["reference"] == {} and got["verdict"]["label"] == "undecided"
    assert cs.read_metrics(metrics[:2], GROUPS) is None
