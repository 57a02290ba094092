"""`python replicate.py`: plan and run the stages a table needs, skipping what is done, resuming the rest; and the
suite's other programs, with the same options and the same --set checker.

Examples:
  python replicate.py --table fashion-mnist --profile quick          # the CPU quickstart
  python replicate.py --table cifar10 --profile paper --dry-run      # print the plan
  python replicate.py --table cifar10 --profile paper --launcher slurm --cluster example-gpu
  python replicate.py --table cifar10 --status                       # what is done / running / failed
  python replicate.py --report                                       # REPORT.md from results/records
  python replicate.py --claims toy --profile smoke                   # the toy-claims study, seconds-sized
  python replicate.py --drift --table fashion-mnist --profile cpu    # the walk's drift from noised test images
  python replicate.py --stage-assets | --verify-assets               # clean-fid's Inception weights and statistics
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from .claims.profiles import SWEEPS
from .claims.run import run_study
from .data import registry
from .data.datasets import download
from .data.storage import atomic_write_json
from .errors import ReplicationError, UsageError
from .evaluation.assets import assets_dir, stage_assets, verify_assets
from .pipeline.chain import COMPILE_ENV
from .pipeline.clusters import Resources
from .pipeline.drift import record_drift
from .pipeline.executors import LAUNCHERS, make_executor
from .pipeline.ledger import cancel_jobs, job_states, record_job
from .pipeline.stages import STAGE_CLASSES
from .pipeline.statistics import backfill
from .pipeline.submit import submit_slurm
from .report.render import anchor, write_report
from .report.run_summary import modified_tracked, recorded_spread_line, rewritten_lines, spread_lines, summarize
from .runs import experiments
from .runs.folders import REPO_ROOT, STAGES, classifier_path, reset_stage, run_dir, stage_key, stage_status, train_dir
from .runs.model_store import publish, publish_classifier
from .runs.models import parameter_counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="replicate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", help=f"one of: {', '.join(experiments.tables())}")
    p.add_argument("--profile", default="quick", choices=experiments.PROFILES,
                   help="paper (GPU, exact settings) | cpu (CPU, about an hour) | quick (CPU, minutes) | smoke (seconds); "
                        "default quick. --claims toy: quick (minutes; the committed outputs) | smoke (seconds; outputs "
                        "named *_smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting, e.g. --set model.sigma=0.5 --set chain.steps=100000")
    p.add_argument("--only", help="comma-separated experiment ids of the table")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run each experiment's chain with N seeds (chain.seed = 0..N-1, one trained model) and print "
                        "the spread of every summary number over them")
    p.add_argument("--launcher", default="inline", choices=LAUNCHERS)
    p.add_argument("--cluster", default=None, help="SLURM cluster profile in slurm/ (e.g. local, example-gpu)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--data-root", default=None, help="dataset folder (default: data/ or $REPLICATION_DATA)")
    p.add_argument("--results", default=str(REPO_ROOT / "results"),
                   help="results folder (default: the repo's results/, whose records/ and figures/ are committed: a run "
                        "rewrites them and says so at the end). Another folder gets its own records/ and REPORT.md")
    p.add_argument("--force", action="append", default=[], choices=STAGES, help="redo this stage and the ones after it")
    p.add_argument("--retrain", action="store_true",
                   help="train from scratch even when results/models/ holds a committed model of this config (implies --force train)")
    p.add_argument("--publish-model", action="store_true",
                   help="copy the finished train stage's model to results/models/ (with its record and held-out loss) to commit it")
    p.add_argument("--dry-run", action="store_true", help="print the plan and do nothing")
    p.add_argument("--status", action="store_true", help="print what is done, running or failed")
    p.add_argument("--cancel", action="store_true", help="cancel the table's queued/running jobs")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the submitted jobs, then write the report")
    p.add_argument("--report", action="store_true",
                   help="regenerate results/tables and REPORT.md from results/records (first filling in the chain "
                        "statistics of records that lack them, from their committed thinned jumps)")
    p.add_argument("--stage-assets", action="store_true", help="download clean-fid's Inception weights and statistics (needs internet)")
    p.add_argument("--verify-assets", action="store_true", help="check the sha256 of the staged assets; exit 1 if any fails")
    p.add_argument("--assets", default=None, help="assets folder (default assets/ or $REPLICATION_ASSETS)")
    p.add_argument("--download", metavar="DATASET",
                   help=f"download a dataset (users' machines): one of {', '.join(registry.names())}")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the net for the chain's walk (about 0.8x the step time on CPU; same statistics, "
                        "not bit-identical to an eager chain)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; use 1 on a machine shared with other jobs)")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("the toy-claims study and the drift measurement (torch threads default to 1)")
    g.add_argument("--claims", metavar="TARGET", help="run the toy-claims study (`--claims toy`): records, tables and "
                   "figures of its sweeps in --results; --set takes the walk's settings (chain.delta_over_sigma, "
                   "chain.gamma, chain.u, chain.scheme)")
    g.add_argument("--sweeps", help=f"--claims: comma-separated subset of {', '.join(SWEEPS)} (default all)")
    g.add_argument("--drift", action="store_true",
                   help="measure the walk's drift with the trained model of the table's experiment (--only: which; "
                        "default the first): K chains from noised test images; writes <results>/drift/<run>.json")
    g.add_argument("--drift-chains", type=int, metavar="K", help="--drift: chains (default 100)")
    g.add_argument("--drift-steps", type=int, metavar="T", help="--drift: walk steps (default 2000)")
    return p.parse_args(argv)


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set needs SECTION.KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def select(args: argparse.Namespace) -> list[experiments.Experiment]:
    if not args.table:
        raise UsageError(f"--table is required; known tables: {', '.join(experiments.tables())}")
    exps = experiments.resolve(args.table, args.profile, _overrides(args.overrides))
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {e.id for e in exps}
        if unknown:
            raise UsageError(f"--only: no experiment {sorted(unknown)} in table {args.table}; known: {[e.id for e in exps]}")
        exps = [e for e in exps if e.id in wanted]
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.seeds > 1:
        exps = [replace(e, chain=replace(e.chain, seed=seed)) for e in exps for seed in range(args.seeds)]
    return exps


def print_status(exps, results: Path) -> None:
    for e in exps:
        print(f"{e.id} [{e.profile}] {run_dir(e, results)}")
        if not e.implemented:
            print(f"  not implemented yet: {e.notes}")
            continue
        jobs = job_states(run_dir(e, results)) if run_dir(e, results).exists() else {}
        for s in STAGES:
            line = f"  {s:7s} {stage_status(e, s, results)}"
            if s in jobs:
                j = jobs[s]
                line += f"  (job {j.job_id} via {j.launcher}: {j.state}{'; log ' + j.log if j.log and j.state == 'failed' else ''})"
            print(line)


def run(args: argparse.Namespace) -> int:
    results = Path(args.results).absolute()
    if not args.claims and args.sweeps:
        raise UsageError("--sweeps goes with --claims toy")
    if not args.drift and (args.drift_chains or args.drift_steps):
        raise UsageError("--drift-chains and --drift-steps go with --drift")
    threads = args.threads or (1 if args.claims or args.drift else None)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by local/submitit subprocesses
        torch.set_num_threads(threads)
    if args.claims:
        sweeps = [s.strip() for s in (args.sweeps or ",".join(SWEEPS)).split(",") if s.strip()]
        for line in run_study(args.claims, args.profile, sweeps, _overrides(args.overrides), Path(args.results)):
            print(line, flush=True)
        return 0
    if args.drift:
        print("\n".join(record_drift(select(args)[0], Path(args.results), args.data_root, args.drift_chains or 100,
                                     args.drift_steps or 2000)))
        return 0
    if args.verify_assets:
        report = verify_assets(args.assets)
        for name, status in report.items():
            print(f"{name}: {status}")
        return 0 if all(s == "ok" for s in report.values()) else 1
    if args.compile:
        os.environ[COMPILE_ENV] = "1"  # read by the chain stage, here or in local/submitit subprocesses
    if args.report:
        for line in backfill(results, args.data_root, args.device):  # records scored before the chain statistics
            print(f"filled in {line}")
        out = write_report(results / "records", REPO_ROOT / "REPORT.md" if results == REPO_ROOT / "results"
                           else results / "REPORT.md", repo_root=REPO_ROOT)
        print(f"wrote {out} and {results / 'APPENDIX.md'}")
        return 0
    if args.stage_assets:
        stage_assets(assets_dir(args.assets))
        return 0
    if args.download:
        download(args.download, args.data_root)
        return 0
    exps = select(args)
    if args.retrain and "train" not in args.force:
        args.force.append("train")
    if args.publish_model:
        for e in exps:
            print(f"{e.id}: published {publish(e, stage_key(e, 'train'), train_dir(e, results), args.data_root)}")
            if e.score.classifier and classifier_path(e, results).exists():
                print(f"{e.id}: published {publish_classifier(e.dataset, classifier_path(e, results))}")
        return 0
    if args.status:
        print_status(exps, results)
        return 0
    if args.cancel:
        for e in exps:
            if run_dir(e, results).exists():
                print(f"{e.id}: cancelled {cancel_jobs(run_dir(e, results)) or 'nothing'}")
        return 0
    if args.assets:
        os.environ["REPLICATION_ASSETS"] = str(Path(args.assets).absolute())

    before = modified_tracked(REPO_ROOT) if not args.dry_run else None
    work, ran = 0, []
    for e in exps:
        if not e.implemented:
            print(f"skip {e.id}: not implemented yet ({e.notes})")
            continue
        for stage in args.force:
            if not args.dry_run:
                reset_stage(e, stage, results)
        pending = [s for s in STAGES if stage_status(e, s, results) != "done"]
        print(f"{e.id} [{e.profile}] sigma={e.model.sigma} M={e.model.M} chain={e.chain.steps:,} steps -> "
              f"{e.n_samples:,} samples; run folder {run_dir(e, results)}")
        if args.dry_run:
            print("\n".join(_plan_lines(e)))
        if not pending:
            print("  all stages done: nothing to do")
            continue
        for s in STAGES:
            print(f"  {s:7s} {'done, skip' if s not in pending else stage_status(e, s, results) + ' -> run'}")
        if args.dry_run:
            continue
        work += 1
        run_dir(e, results).mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir(e, results) / "experiment.json", e.to_dict())
        if args.launcher == "slurm":
            submit_slurm(e, pending, args, results)
        else:
            _run_stages(e, pending, args, results)
        ran.append(e)
    if args.dry_run:
        return 0
    if work == 0:
        print("nothing to do: every stage of every experiment is done (use --force STAGE to redo one)")
    if work and args.launcher != "slurm" or args.wait:
        report = _report(results)
        if args.launcher != "slurm" and ran:
            _print_summary(ran, results, report, before)
    return 0


COST_MODEL = REPO_ROOT / "results" / "benchmarks" / "cost_model.csv"  # python -m benchmarks.cost_model


def _plan_lines(e: experiments.Experiment) -> list[str]:
    """The dry run's model line (parameters, counted on the meta device) and, at the paper profile, the cost model's
    GPU-hour estimate for the experiment (results/benchmarks/cost_model.md: modelled for an H100, not measured)."""
    n = parameter_counts(e.model, e.image_shape)
    parts = " + ".join(f"{v:,} ({k})" for k, v in n.items() if k != "total")
    lines = [f"  model   {e.model.scheme} / {e.model.net}: {n['total']:,} parameters" + (f" = {parts}" if parts else "")]
    if e.profile == "paper":
        row = None
        if COST_MODEL.exists():
            df = pd.read_csv(COST_MODEL)
            rows = df[df["experiment"] == e.id] if "experiment" in df else df.iloc[0:0]
            row = rows.iloc[0] if len(rows) else None
        lines.append("  cost    no cost-model row (python -m benchmarks.cost_model)" if row is None else
                     f"  cost    training {row['train_gpu_h_tf32']:.2f} GPU-h TF32 ({row['train_gpu_h_fp32']:.2f} strict FP32), "
                     f"one 1M-step chain {row['chain_1M_h_eager']:.2f} h eager / {row['chain_1M_h_graph']:.2f} h CUDA graph "
                     "(H100, modelled: results/benchmarks/cost_model.md)")
    return lines


def _print_summary(ran, results: Path, report: Path | None, before) -> None:
    """The closing printout: metrics with calibration points, a verdict, paths; committed files rewritten."""
    report = report or REPO_ROOT / "REPORT.md"
    lines = ["", "Summary of this run (details: the record and the report section named below)"]
    runs = [(e.run_name, e.table, anchor(e.table)) for e in ran]
    lines += summarize(runs, results, REPO_ROOT, report)
    lines += spread_lines(runs, results)
    for run, _, _ in runs[:1] if len({e.id for e in ran}) == 1 else []:
        lines += recorded_spread_line(run, results, REPO_ROOT / "results" / "records", REPO_ROOT)
    lines += rewritten_lines(before, modified_tracked(REPO_ROOT), REPO_ROOT)
    print("\n".join(lines), flush=True)


def _run_stages(e, pending, args, results: Path) -> None:
    for s in pending:
        stage = STAGE_CLASSES[s](e.to_dict(), str(results), args.data_root, args.device, not args.no_progress,
                                 retrain=args.retrain)
        t0 = time.perf_counter()
        if args.launcher == "inline":
            stage()
        else:
            ex = make_executor(args.launcher, run_dir(e, results) / "submitit",
                               Resources(name=f"{e.id}-{s}", timeout_min=60 * 24, max_num_timeout=20), args.cluster)
            job = ex.submit(stage)
            record_job(run_dir(e, results), s, job)
            print(f"  {s}: submitted job {job.job_id} via {args.launcher}; waiting", flush=True)
            job.result()
        print(f"  {s}: done in {time.perf_counter() - t0:.1f} s", flush=True)


def _report(results: Path) -> Path | None:
    """Regenerate the report of a results folder: REPORT.md for the repo's results/, else <results>/REPORT.md."""
    if not (results / "records").exists():
        return None
    return write_report(results / "records", REPO_ROOT / "REPORT.md" if results == REPO_ROOT / "results" else results / "REPORT.md",
                        repo_root=REPO_ROOT)


def _renamed(argv: list[str], names: dict[str, str]) -> list[str]:
    """The arguments with the old programs' option names (`--out`, `--out=DIR`) replaced by replicate.py's."""
    out = []
    for a in argv:
        flag, eq, value = a.partition("=")
        out.append(names.get(flag, flag) + eq + value if a.startswith("--") else a)
    return out


def claims_alias(argv: list[str]) -> int:
    """`python -m replication.claims toy [...]` (the old entry point): `replicate.py --claims toy [...]`; its `--quick`
    (seconds-sized) is `--profile smoke`."""
    argv = [a for arg in argv for a in (["--profile", "smoke"] if arg == "--quick" else [arg])]
    return main(["--claims", *_renamed(argv, {"--out": "--results"})])


def drift_alias(argv: list[str]) -> int:
    """`python -m replication.pipeline.drift [...]` (the old entry point, whose defaults were --table fashion-mnist
    --profile cpu): `replicate.py --drift [...]`."""
    names = {"--chains": "--drift-chains", "--steps": "--drift-steps"}
    return main(["--drift", "--table", "fashion-mnist", "--profile", "cpu", *_renamed(argv, names)])


def main(argv: list[str] | None = None) -> int:
    """Run the command; an error the suite raises itself (ReplicationError: bad input, missing data, a damaged
    run folder) is one line on stderr and exit code 2, anything else keeps its traceback."""
    args = parse_args(argv)
    try:
        return run(args)
    except ReplicationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
