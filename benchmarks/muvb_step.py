"""The MUVB walk step against the MDAE walk step on the same data shape, and how much of the ratio is the backward.

MUVB's score is -grad_y f of the VAE energy (docs/method.md §2.4, Eq. 12a): one energy forward (encoder,
reparametrization, decoder) and one backward through both networks per walk step, where the MDAE's score is one
forward (docs/method.md §2.2). Each case pairs the MUVB nets of a registry experiment with the MDAE net of the one
it is compared with, on the same data shape and with the same walk (the MDAE experiment's: integrator, delta, gamma):

| case  | MUVB                                    | MDAE                                  | walk of            |
|-------|-----------------------------------------|---------------------------------------|--------------------|
| cpu   | fashion-mnist-schemes, cpu: width 8, z 32 | fashion-mnist, cpu: SmallUNet w=32    | fashion-mnist, cpu |
| paper | mnist-muvb-1x4, paper: width 128, z 2048 | mnist-mdae-1x16, paper: U2Net f=1     | mnist, paper       |

(M and sigma are each experiment's own: M = 4 for both cpu nets, 4 vs 16 at the paper profile.) Timed, interleaved
per repeat (benchmarks/common.py), all at batch 1 (one chain), k walk steps per call with the library `Walker`:

  walk_mdae        the MDAE walk, under inference_mode (the baseline)
  walk_muvb        the MUVB walk with z resampled per score (`muvb_z = sample`, the default), under no_grad
  walk_muvb_mean   the same with z = mu
  energy_muvb      k energy forwards of MUVB alone (no graph): the forward part of its step

Columns: `ratio_median` of walk_muvb to walk_mdae (per repeat, then the median), and in the `backward_share` row
the fraction of the MUVB step that is not its forward, 1 - energy_muvb / walk_muvb (the backward pass, and the
graph bookkeeping that the forward under autograd adds; the integrator's own arithmetic is the same in both walks).

    python -m benchmarks.muvb_step [--cases cpu,paper] [--threads 1]
"""

from __future__ import annotations

import torch

from replication.runs.experiments import resolve
from replication.runs.models import build_model
from replication.sampling.chains import init_chains
from replication.sampling.integrators import Walker

from . import common

# case -> (MUVB experiment: table, profile, id), (MDAE experiment: table, profile, id), k steps per call, repeats
PLAN = {"cpu": (("fashion-mnist-schemes", "cpu", "fmnist-muvb-1x4"), ("fashion-mnist", "cpu", "fashion-mnist-mdae-1x4"), 8, 9),
        "paper": (("mnist", "paper", "mnist-muvb-1x4"), ("mnist", "paper", "mnist-mdae-1x16"), 1, 5)}


def _experiment(table: str, profile: str, eid: str):
    return next(e for e in resolve(table, profile) if e.id == eid)


def bench_case(name: str, *, steps: int | None = None, repeats: int | None = None, device=torch.device("cpu")) -> list[dict]:
    (muvb_of, mdae_of, k, reps) = PLAN[name]
    k, reps = steps or k, repeats or reps
    em, ed = _experiment(*muvb_of), _experiment(*mdae_of)
    torch.manual_seed(0)
    muvb, mdae = build_model(em.model, em.image_shape).to(device).eval(), build_model(ed.model, ed.image_shape).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    muvb.z_generator = gen
    ym, vm = init_chains(1, em.model.M, em.image_shape, em.model.sigma, torch.Generator().manual_seed(1), device=device)
    yd, vd = init_chains(1, ed.model.M, ed.image_shape, ed.model.sigma, torch.Generator().manual_seed(1), device=device)
    walk = ed.walk  # the same walk for both

    def chain(score_fn, y, v, grad_mode, before=None):
        walker, state = Walker(score_fn, walk, gen), [y, v]

        def run():
            if before:
                before()
            with grad_mode():
                state[0], state[1] = walker.run(state[0], state[1], k)
        return run

    def set_mode(mode):
        return lambda: setattr(muvb, "z_mode", mode)

    fns = {"walk_mdae": chain(mdae.score, yd, vd, torch.inference_mode),
           "walk_muvb": chain(muvb.score, ym, vm, torch.no_grad, set_mode("sample")),
           "walk_muvb_mean": chain(muvb.score, ym, vm, torch.no_grad, set_mode("mean"))}

    def energies():
        muvb.z_mode = "sample"
        with torch.no_grad():
            for _ in range(k):
                muvb.energy(ym)
    fns["energy_muvb"] = energies
    load, cpu = common.load1(), {}
    times = common.time_interleaved(fns, repeats=reps, warmup=1, device=device, units={n: k for n in fns}, cpu_out=cpu)
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    fields = dict(bench="muvb_step", case=name, M=em.model.M, C=em.image_shape[0], H=em.image_shape[1], batch=1,
                  steps_per_call=k, walk=f"{walk.integrator} delta={walk.delta:g}",
                  muvb=f"{em.id} {em.profile} ({n_params(muvb):,} params)", mdae=f"{ed.id} {ed.profile} ({n_params(mdae):,} params, M={ed.model.M})")
    rows = common.summarize(times, {"walk_muvb": "walk_mdae", "walk_muvb_mean": "walk_mdae", "energy_muvb": "walk_muvb",
                                    "walk_mdae": None}, repeats=reps, warmup=1, load_start=load, device=device,
                            cpu_times=cpu, **fields)
    share = 1 - times["energy_muvb"] / times["walk_muvb"]  # per repeat
    q1, med, q3 = common.quartiles(share)
    rows.append(common.environment(device) | fields | {"variant": "backward_share", "baseline": "walk_muvb",
                                                         "ratio_median": med, "ratio_q1": q1, "ratio_q3": q3,
                                                         "load1_start": load, "load1_end": common.load1(),
                                                         "note": f"1 - energy_muvb / walk_muvb, per repeat: median "
                                                                 f"{med:.3f} [{q1:.3f}, {q3:.3f}]"})
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    p = common.parser(__doc__)
    p.add_argument("--cases", default=",".join(PLAN), help="comma-separated subset of: " + ",".join(PLAN))
    args = common.parse(p, argv)
    device = common.default_device()
    return common.record("muvb_step", (bench_case(name, device=device) for name in args.cases.split(",")), args.out)


if __name__ == "__main__":
    main()
