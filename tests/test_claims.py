"""The poster-claims sweeps on the toy mixture (replication/claims/): the smoke run writes its outputs, and
the facts that hold exactly for the exact score hold in what it measures."""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from replication.claims.chains import ExactMDensity, ring_prior
from replication.claims.clmc import clmc_configs
from replication.core.mnm import GaussianMNM
from replication.claims.profiles import SIZES, SWEEPS, sizes
from replication.claims.run import run_all
from replication.claims.sweeps import sweep_large_m, sweep_smoothing
from replication.claims.texts import CLAIMS
from replication.errors import UsageError
from replication.report.scoreboard import claim_summary
from replication.runs import paper
from replication.runs.experiments import resolve
from replication.runs.folders import REPO_ROOT

SMOKE = SIZES["smoke"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    return out, run_all(out, "smoke")


def test_exact_m_density_is_the_library_s():
    prior = ring_prior()
    g = torch.Generator().manual_seed(0)
    for sigma, M in ((1.0, 1), (1.0, 4), (2.0, 16), (0.5, 3)):
        mnm = GaussianMNM(sigma, M)
        x, _ = prior.sample(64, g)
        y = mnm.measure(x, g) + torch.randn(64, M, 2, generator=g, dtype=torch.float64)  # off the data too
        exact = ExactMDensity(prior, sigma, M)
        torch.testing.assert_close(exact.x_hat(y), prior.x_hat(y, mnm), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(exact.score(y), prior.score(y, mnm), rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_outputs_written(quick):
    out, res = quick
    for sweep in SWEEPS:
        name = f"claims_toy_{sweep}_smoke"
        record = json.loads((out / "records" / f"{name}.json").read_text())
        assert {"run", "table", "experiment", "profile", "config", "seeds", "provenance", "wall_s", "rows"} <= set(record)
        assert record["rows"] and record["provenance"]["git_sha"] and "not paper numbers" in record["scope"]
        parts = {"large_m": ["", "_samples"], "clmc": ["", "_inner"]}.get(sweep, [""])
        assert sum(len(pd.read_csv(out / "tables" / f"{name}{s}.csv")) for s in parts) == len(record["rows"])
        for s in parts:
            assert "not paper numbers" in (out / "tables" / f"{name}{s}.md").read_text()
        png = out / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000


@pytest.mark.slow
def test_jump_mse_shrinks_with_M_at_the_sigma_eff_scale(quick):
    _, res = quick
    df = pd.DataFrame(res["large_m"]["rows"])
    d, sigma = 2, 1.0
    naive = df[df["source"] == "y_bar (naive mean)"].sort_values("M")
    bayes = df[df["source"] == "Bayes x_hat (exact)"].sort_values("M")
    # E|y_bar - X|^2 = d sigma^2 / M exactly (sigma_eff^2 per coordinate).
    for _, r in naive.iterrows():
        assert abs(r["jump_mse"] - d * sigma**2 / r["M"]) < 5 * r["jump_mse_se"]
    # The Bayes jump: monotone in M (common random numbers) and between the known-mode risk and d sigma_eff^2.
    assert np.all(np.diff(bayes["jump_mse"].to_numpy()) < 0)
    for (_, b), (_, n) in zip(bayes.iterrows(), naive.iterrows()):
        assert b["mse_lower_bound"] == pytest.approx(d * 0.04 * b["sigma_eff"] ** 2 / (0.04 + b["sigma_eff"] ** 2))
        assert b["mse_lower_bound"] - 3 * b["jump_mse_se"] < b["jump_mse"] < n["jump_mse"]
    # Exact for large M: at sigma_eff = 0.25 the Bayes risk is within 15% of the known-mode risk.
    last = bayes.iloc[-1]
    assert last["M"] == 16 and last["jump_mse"] < 1.15 * last["mse_lower_bound"]
    # ... and i.i.d. Bayes jumps land on the modes: on-manifold fraction grows with M toward 0.989.
    iid = df[df["source"] == "Bayes x_hat, Y ~ p(y) (perfect walk)"].sort_values("M")
    assert np.all(np.diff(iid["on_manifold"].to_numpy()) > 0) and iid["on_manifold"].iloc[-1] > 0.95


@pytest.mark.slow
def test_mixing_improves_with_sigma_at_fixed_M_not_at_fixed_sigma_eff(quick):
    """At fixed M, more smoothing (larger sigma) switches modes far more often. At fixed sigma_eff the exact
    chains differ only by the effective friction gamma sqrt(M) (claims module docstring), and larger sigma
    does not switch more often (it is flat to lower in every run we made); the quick run is small, so
    this only checks 'no gain beyond noise'."""
    _, res = quick
    df = pd.DataFrame(res["smoothing"]["rows"])
    fixed_m = df[(df["M"] == 4) & (df["gamma"] == 0.5)].sort_values("sigma")
    assert list(fixed_m["sigma"]) == [0.5, 1.0, 2.0]
    rates = fixed_m["switch_rate"].to_numpy()
    assert rates[0] < 0.2 < rates[1] < rates[2]
    se = df[df["set"] == "fixed sigma_eff=0.5"].sort_values("sigma")
    assert list(se["M"]) == [1, 4, 16]
    lo, hi = se.iloc[0], se.iloc[-1]
    assert hi["switch_rate"] < lo["switch_rate"] + 3 * math.hypot(lo["switch_rate_se"], hi["switch_rate_se"])
    assert (df["diverged_at"].isna()).all()


def test_fixed_sigma_eff_is_a_friction_change():
    """(sigma=2, M=16, gamma=0.5) walks y_bar exactly like (sigma=0.5, M=1, gamma=2) (module docstring): the same
    switch rate within noise, and clearly fewer switches than (sigma=2, M=4), which is smoother (sigma_eff = 1)."""
    prior = ring_prior()
    p = replace(SMOKE, seed=7)
    configs = [{"sigma": 2.0, "M": 16, "gamma": 0.5}, {"sigma": 0.5, "M": 1, "gamma": 2.0}, {"sigma": 2.0, "M": 4, "gamma": 0.5}]
    mem, control, smooth = sweep_smoothing(p, prior, configs)[0]
    assert mem["sigma_eff"] == control["sigma_eff"] == 0.5 and mem["gamma_eff"] == control["gamma_eff"] == 2.0
    tol = 4 * math.hypot(mem["switch_rate_se"], control["switch_rate_se"])
    assert abs(mem["switch_rate"] - control["switch_rate"]) < tol
    assert smooth["switch_rate"] > mem["switch_rate"] + 0.2


@pytest.mark.slow
def test_stability_rows(quick):
    _, res = quick
    df = pd.DataFrame(res["stability"]["rows"])
    ex = df[df["score"] == "exact score"].set_index("window")
    assert set(ex.index) == {"first 10%", "last 10%", "all"}
    assert ex.loc["all", "kinetic_per_coord"] == pytest.approx(1 / (1 - 1 / 16), rel=0.15)
    assert ex.loc["all", "spread_per_coord"] == pytest.approx(1.0, rel=0.15)


LEARNED = ("MDAE", "MUVB")  # the learned rows of the smoke study (SMOKE.parametrizations + SMOKE.schemes)


@pytest.mark.slow
def test_muvb_rows_beside_the_mdae_rows(quick):
    """The learned MUVB has every row the learned MDAE has, with finite values: in large_m its jump MSE at every M and
    its perfect-walk and chain samples; in stability its long chain. Both trained with the profile's TrainSpec, each
    from its own seed; the record's notes say MUVB's score is stochastic, z redrawn per evaluation (the default)."""
    _, res = quick
    lm = pd.DataFrame(res["large_m"]["rows"])
    for M in SMOKE.Ms:
        at = lm[lm["M"] == M].set_index("source")
        for name in LEARNED:
            assert math.isfinite(at.loc[f"{name} x_hat (learned)", "jump_mse"])
            for source in (f"{name} x_hat, Y ~ p(y) (perfect walk)", f"{name} x_hat, {name} chain"):
                assert at.loc[source, "n"] == SMOKE.n_eval and math.isfinite(at.loc[source, "energy_distance"])
        assert pd.isna(at.loc["MUVB x_hat, MUVB chain", "diverged_at"])
    record = json.loads(Path(res["large_m"]["paths"]["record"]).read_text())
    models = {(m["scheme"], m["M"]): m for m in record["models"]}
    for M in SMOKE.Ms:
        mdae, muvb = models["MDAE", M], models["MUVB", M]
        assert muvb["steps"] == mdae["steps"] == SMOKE.train.steps and muvb["train_seed"] != mdae["train_seed"]
        assert {k: v for k, v in muvb["config"].items() if k != "seed"} == {k: v for k, v in mdae["config"].items() if k != "seed"}
    assert any("z is redrawn at every evaluation (chain.muvb_z = sample" in n for n in record["notes"])
    summary = claim_summary(record)  # REPORT.md's claims section
    assert {"MSE MUVB", "ED MUVB chain"} <= set(summary.columns) and len(summary.columns) == 10
    st = pd.DataFrame(res["stability"]["rows"])
    for name in LEARNED:
        rows = st[st["score"] == f"{name} (learned)"].set_index("window")
        assert set(rows.index) == {"first 10%", "last 10%", "all"} and rows["diverged_at"].isna().all()
        assert np.isfinite(rows[["jump_radius", "kinetic_per_coord", "spread_per_coord", "mode_tv"]].to_numpy()).all()


@pytest.mark.slow
def test_the_muvb_rows_leave_the_mdae_rows_alone(quick):
    """The MUVB models draw their own random numbers: large_m without them gives the MDAE rows the study recorded."""
    _, res = quick
    timing = {"chain_wall_s", "wall_s"}
    kept = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows if "MUVB" not in r["source"]]  # noqa: E731
    alone, _ = sweep_large_m(replace(SMOKE, schemes=()), ring_prior())
    assert kept(alone) == kept(res["large_m"]["rows"])


@pytest.mark.slow
def test_learned_muvb_jump_lies_between_the_bayes_risk_and_y_bar():
    """Trained 300 steps (smoke width), the learned MUVB's one-step jump at M = 1 beats the naive mean y_bar and cannot
    beat the exact Bayes jump (common random numbers; its z is redrawn per evaluation, as when sampling)."""
    p = replace(SMOKE, Ms=(1,), parametrizations=(), train=replace(SMOKE.train, steps=300))
    rows = {r["source"]: r for r in sweep_large_m(p, ring_prior())[0] if r.get("jump_mse") is not None}
    naive, bayes, muvb = (rows[s] for s in ("y_bar (naive mean)", "Bayes x_hat (exact)", "MUVB x_hat (learned)"))
    assert bayes["mse_lower_bound"] < bayes["jump_mse"] - 3 * bayes["jump_mse_se"] < muvb["jump_mse"] < naive["jump_mse"]


@pytest.mark.slow
def test_integrator_rows(quick):
    """The integrators sweep: one row per (integrator, delta/sigma), the exact light-mode share, ghmc's accept rate."""
    rows = quick[1]["integrators"]["rows"]
    assert {(r["integrator"], r["delta_over_sigma"]) for r in rows} == {
        (i, d) for i in SMOKE.in_integrators for d in SMOKE.in_deltas}
    assert all(abs(r["light_share_exact"] - 10 / 36) < 1e-12 for r in rows)
    assert all(0 < r["accept_rate"] <= 1 for r in rows if r["integrator"] == "ghmc")
    assert all(r.get("accept_rate") is None for r in rows if r["integrator"] != "ghmc")


def test_claims_walk_comes_from_the_registry_and_set(tmp_path, capsys):
    """--set chain.* reaches the claims' walk and names the outputs, so the committed ones are not overwritten; the
    old entry point (`python -m replication.claims toy ... --out DIR`) is an alias of `replicate.py --claims toy`."""
    from replication.cli import claims_alias, main

    assert SMOKE.walk(2.0).delta == 2.0 * SMOKE.chain.delta_over_sigma == 1.0  # the toy experiment's sigma/2
    assert claims_alias(["toy", "--quick", "--sweeps", "stability", "--set", "chain.scheme=baoab", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "records" / "claims_toy_stability_smoke_schemebaoab.json").read_text())
    assert record["config"]["walk"]["scheme"] == "baoab" and record["config"]["claims"]["chain"]["scheme"] == "baoab"
    assert main(["--claims", "toy", "--profile", "smoke", "--set", "model.M=3", "--results", str(tmp_path)]) == 2
    assert "the walk's settings only" in capsys.readouterr().err


def test_claims_sizes_are_the_registry_profiles():
    """The study's sizes hang off the registry's profile names: an unknown profile is the registry's error, a profile
    without sizes says which have them; quick trains the MLPs as the registry's `toy` experiment at quick."""
    with pytest.raises(UsageError, match="unknown profile 'full'; known profiles: paper, cpu, quick, smoke"):
        sizes("full")
    with pytest.raises(UsageError, match="no 'paper' sizes.*quick.*smoke"):
        sizes("paper")
    (toy,) = resolve("toy", "quick")
    assert sizes("quick").train == toy.train and sizes("quick").hidden == toy.model.width == 128
    assert (sizes("quick").train.steps, sizes("smoke").train.steps) == (3000, 30)
    assert sizes("quick").suffix == "" and sizes("smoke").suffix == "_smoke"  # the committed outputs keep their names


def test_sweep_claims_are_the_papers_written_once():
    """The sweeps that test a poster claim name it from runs/paper.py CLAIMS, in the words the committed records hold."""
    assert CLAIMS["large_m"].startswith(paper.claim("exact_large_m").claim)
    assert CLAIMS["stability"].startswith(paper.claim("stable_1m").claim)
    for sweep in SWEEPS:
        record = json.loads((REPO_ROOT / "results" / "records" / f"claims_toy_{sweep}.json").read_text())
        assert record["claim"] == CLAIMS[sweep]


@pytest.mark.slow
def test_clmc_rows_sweep_the_outer_level_at_fixed_sigma_eff(quick):
    """The CLMC sweep walks y_1 at sigma = sigma_eff sqrt(M) for each M of cl_Ms (where the outer walk's smoothing
    starts to pay); the rows recorded before the M = 2 and 8 levels were added keep their (sigma, M) and so their
    seeds; the smoke run has one row per sampler and configuration."""
    p = sizes("quick")
    cfgs = clmc_configs(p)
    assert [(c["sigma_eff"], c["M"]) for c in cfgs] == [(se, M) for se in p.sigma_effs for M in p.cl_Ms]
    assert all(math.isclose(c["sigma"], c["sigma_eff"] * math.sqrt(c["M"])) for c in cfgs)
    assert {(0.5, 1.0, 4), (0.5, 2.0, 16), (0.25, 0.5, 4), (0.25, 1.0, 16)} <= {
        (c["sigma_eff"], c["sigma"], c["M"]) for c in cfgs}
    out, _ = quick
    df = pd.read_csv(out / "tables" / "claims_toy_clmc_smoke.csv")
    assert sorted(zip(df["sigma"], df["M"], df["sampler"])) == sorted(
        (c["sigma"], c["M"], s) for c in clmc_configs(SMOKE) for s in ("walk-jump", "clmc"))
