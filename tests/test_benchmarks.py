"""Smoke tests of the benchmark harness (benchmarks/): it runs a tiny config and writes the expected CSV
row, and the FLOP counter the cost model relies on gives the analytic count. No timing assertions."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import clmc_cost, common, cost_model, muvb_step, walk_step
from benchmarks.cases import Case
from replication.sampling.chains import init_chains
from replication.sampling.integrators import INTEGRATORS, Walk, Walker, walk

TINY = Case("small_unet", 2, (1, 8, 8), kw={"width": 8})


def test_walk_step_writes_csv_row(tmp_path):
    rows = walk_step.bench_case("tiny", TINY, 1, steps=2, repeats=2, warmup=1, device=torch.device("cpu"),
                                variants={"no_grad", "overhead"})
    path = common.append_csv("walk_step", rows, tmp_path)
    common.append_csv("walk_step", rows[:1], tmp_path)  # appending keeps earlier rows
    df = pd.read_csv(path)
    assert len(df) == 3
    assert list(df["variant"][:2]) == ["no_grad", "overhead"]
    for col in ("ms_median", "ms_q1", "ms_q3", "ratio_median", "baseline", "load1_start", "git_sha", "torch",
                "device_name", "threads", "batch", "M"):
        assert col in df.columns, col
    standard = [c for c in common.COLUMNS if c in df.columns]
    assert list(df.columns[: len(standard)]) == standard  # standard columns first, in order
    assert (df["ms_median"] > 0).all() and (df["ratio_median"] > 0).all()
    assert df["walk_over_fwd_est"].notna().tolist() == [False, True, False]  # only on the overhead row


def test_time_interleaved_shapes_and_units():
    calls = []
    times = common.time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3,
                                    warmup=1, units={"b": 4})
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())
    assert calls == ["b", "a", "a", "b", "b", "a", "a", "b"]  # order alternates: no fn always runs first


@pytest.mark.parametrize("dilation", [1, 2])
def test_flop_counter_matches_analytic_conv(dilation):
    conv = torch.nn.Conv2d(3, 5, 3, padding=dilation, dilation=dilation)
    x = torch.randn(2, 3, 8, 8)
    with FlopCounterMode(display=False) as counter:
        conv(x)
    assert counter.get_total_flops() == 2 * 2 * 5 * 8 * 8 * 3 * 3 * 3  # 2 * N * C_out * H * W * C_in * k * k


def test_flop_counter_on_meta_device_and_kernel_log():
    with torch.device("meta"):
        conv = torch.nn.Conv2d(4, 6, 3, padding=1)
        x = torch.empty(1, 4, 16, 16)
    assert cost_model.count_flops(conv, x) == 2 * 6 * 16 * 16 * 4 * 9
    with cost_model.KernelLog() as log:
        torch.nn.functional.silu(conv(x))
    assert [(name, flops) for name, flops, _ in log.ops] == [("aten.convolution.default", 2 * 6 * 16 * 16 * 4 * 9),
                                                             ("aten.silu.default", 0)]


def test_lean_walk_is_the_library_walk_arithmetic():
    """The `lean` variant differs from the library walk only in where finiteness is checked, for every integrator."""
    score = lambda y: (0.5 * torch.tanh(y) - y)  # noqa: E731
    y, v = init_chains(2, 3, (1, 4, 4), 1.0, torch.Generator().manual_seed(0))
    for integrator in [name for name, cls in INTEGRATORS.items() if not cls.needs_energy]:
        w = Walk(0.5, 0.5, 1.0, integrator)
        a = Walker(score, w, torch.Generator().manual_seed(1)).run(y, v, 5)
        b = walk_step.lean_walk(score, y, v, steps=5, walk=w, generator=torch.Generator().manual_seed(1))
        assert all(torch.equal(p, q) for p, q in zip(a, b)), integrator
        assert not torch.equal(a[0], y)


@pytest.mark.slow
def test_compiled_walk_equals_the_eager_walk():
    """The benchmark's `compile` variant samples what the eager walk samples (up to float reassociation)."""
    scheme = walk_step.build(TINY)
    try:
        compiled = walk_step.compiled_scheme(TINY, scheme.net)
        y, v = init_chains(2, TINY.M, TINY.shape, TINY.sigma, torch.Generator().manual_seed(0))
        kw = dict(steps=4, delta=TINY.walk.delta, gamma=0.5, u=1.0)
        with torch.inference_mode():
            compiled.score(y)  # compile here, so a missing compiler skips instead of failing
    except Exception as err:  # noqa: BLE001 - torch.compile needs a C++ compiler on CPU
        pytest.skip(f"torch.compile unavailable: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
    with torch.inference_mode():
        eager = walk(scheme.score, y, v, generator=torch.Generator().manual_seed(1), **kw)
        fast = walk(compiled.score, y, v, generator=torch.Generator().manual_seed(1), **kw)
    for a, b in zip(eager, fast):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert not torch.equal(eager[0], y)  # the walk moved


def test_cuda_graph_step_needs_cuda_tensors():
    scheme = walk_step.build(TINY)
    y = torch.zeros(1, TINY.M, *TINY.shape)
    with pytest.raises(RuntimeError):
        walk_step.cuda_graph_step(scheme, y, y, walk=TINY.walk)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_step_replays():
    scheme = walk_step.build(TINY, "cuda")
    y = torch.rand(2, TINY.M, *TINY.shape, device="cuda")
    replay, y_s, v_s = walk_step.cuda_graph_step(scheme, y, torch.zeros_like(y), walk=TINY.walk)
    before = y_s.clone()
    replay()
    torch.cuda.synchronize()
    assert torch.isfinite(y_s).all() and not torch.equal(before, y_s)


def test_walk_variants_are_timed_against_the_plain_walk_on_the_same_net():
    """Each integrator against the library ABOBA walk, and the Metropolis-adjusted walk against ABOBA on MEM."""
    rows = walk_step.bench_case("tiny", TINY, 1, steps=2, repeats=2, warmup=1, device=torch.device("cpu"),
                                variants={"baoab", "cheng", "ghmc_mem", "lean"})
    got = {r["variant"]: r["baseline"] for r in rows}
    assert got == {"baoab": "walk_aboba", "cheng": "walk_aboba", "ghmc_mem": "walk_aboba_mem",
                   "lean": "fwd_inference_mode"}
    assert all(r["ratio_median"] > 0 for r in rows)


def test_clmc_cost_counts_evaluations_per_sample(tmp_path):
    """The CLMC benchmark times both samplers of the registry's table on one net and counts their evaluations: a
    walk-jump sample is jump_every steps + 1 jump; a CLMC sample jump_every outer steps + 1 + (M - 1)(K + 1)."""
    rows = clmc_cost.main(["--profile", "smoke", "--quick", "--samples", "1", "--out", str(tmp_path)])
    by = {r["variant"]: r for r in rows}
    assert by["walk_jump"]["evals_per_sample"] == 10 + 1
    assert by["clmc"]["evals_per_sample"] == 10 + 1 + 15 * (4 + 1)
    df = pd.read_csv(tmp_path / "clmc_cost.csv")
    assert list(df["variant"]) == ["walk_jump", "clmc"] and df["ratio_median"].notna().tolist() == [False, True]


def test_muvb_step_is_timed_against_the_mdae_step_with_its_backward_share():
    rows = muvb_step.bench_case("cpu", steps=1, repeats=2)
    got = {r["variant"]: r for r in rows}
    assert got["walk_muvb"]["baseline"] == "walk_mdae" and got["walk_muvb"]["ratio_median"] > 0
    assert 0 < got["backward_share"]["ratio_median"] < 1  # the forward is part of the step, not all of it
    assert "fmnist-muvb-1x4" in got["walk_muvb"]["muvb"] and "fashion-mnist-mdae-1x4" in got["walk_muvb"]["mdae"]
