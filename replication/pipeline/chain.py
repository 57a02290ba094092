"""The chain stage: one long walk-jump chain (or a batch of independent ones), checkpointed and resumable.

On-disk layout under `out_dir` (all files written atomically, docs/on-disk.md §3, §4.2):
  state/step_<k>.pt      chain state at walk step k (y, v, step, RNG states, shards committed), checksummed;
                         the two newest are kept, a corrupt newest one is set aside and the previous used
  shards/shard_<i>.npz   the jumps recorded since the previous checkpoint: `images` uint8 (n, chains, *S)
                         for image data (clipped to [0,1], rounded to nearest), `float` (n, chains, *S) for
                         vector data or when save_float, `step` (n,), and per-jump diagnostics
  attempts.jsonl         one line per (re)start
  FAILED.json            written when the chain diverges: the step, the message and the last good checkpoint
  DONE.json              written last, with the summary
  .lock                  flock held by the process running the chain (a second process waits, then gives up)

A restart loads the newest valid state and deletes shards with an index >= its `n_shards`, so a shard
written after the last checkpoint is redone, never duplicated. Because every random number comes from the
checkpointed generators, the resumed chain is bit-identical to an uninterrupted one (same device, same
thread count). A checkpoint is also written after `CKPT_SECS` of wall time without one (at the next jump);
shard boundaries then differ between runs, the concatenated arrays do not. As a submitit Checkpointable the
job is requeued on timeout/preemption; its pickle holds only paths and the config, all resume state comes
from disk. `.lock` keeps a second process (an orphaned task, a duplicate submission) out of the folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import socket
import time
from pathlib import Path

import numpy as np
import submitit
import torch
from tqdm.auto import tqdm

from ..core import seeding
from ..data.storage import CorruptCheckpoint, atomic_write_bytes, atomic_write_json, load_checked, save_checked
from ..errors import RunStateError, UsageError
from ..evaluation.classifier import load_classifier, predict
from ..evaluation.images import to_uint8
from ..evaluation.metrics import class_histogram, class_switch_rate, integrated_autocorr_time
from ..runs.experiments import Experiment, from_dict
from ..runs.folders import done_record
from ..runs.models import load_model
from ..sampling.chains import ChainState, init_chains
from ..sampling.integrators import ChainDiverged
from ..sampling.loop import walk_jump
from .samplers import sampler_functions, score_evals

KEEP_STATES = 2
COMPILE_ENV = "REPLICATION_COMPILE"  # "1": torch.compile the net for the walk (replicate.py --compile)
CKPT_SECS = 600.0  # also checkpoint at the next boundary after this much wall time (bounds loss on node failure)
LOCK_WAIT_S = 300.0  # a second process on the same folder waits this long for the first to exit


@contextlib.contextmanager
def _exclusive(out: Path, wait_s: float | None = None):
    """Hold an advisory lock on `out` (one chain process per folder). The kernel drops it when the holder dies,
    so a SIGKILLed run never blocks its rerun; on file systems without flock the chain runs unlocked."""
    try:
        import fcntl  # optional: POSIX only (this lock is the one part of the chain that needs it)
    except ImportError:  # not POSIX
        yield
        return
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    with open(out / ".lock", "a+") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.seek(0)
                    raise RunStateError(f"{out} is in use by another chain process ({f.read().strip() or 'unknown'}) "
                                       f"for more than {wait_s:.0f} s; stop it or wait for it to finish") from None
                time.sleep(0.2)
            except OSError:  # e.g. Lustre mounted without -o flock
                break
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        yield


class ChainJob(submitit.helpers.Checkpointable):
    """Run the chain of experiment `exp` from the model at `model_path`, writing into `out_dir`.

    Small and picklable: holds the experiment dict and paths only. `stop_after` (tests) returns early once
    that walk step is reached, as a kill would, but after the checkpoint at that step.
    """

    def __init__(self, exp: dict, model_path: str, out_dir: str, classifier_path: str | None = None,
                 device: str = "cpu", progress: bool = True, stop_after: int | None = None):
        self.exp, self.model_path, self.out_dir = exp, str(model_path), str(out_dir)
        self.classifier_path, self.device, self.progress, self.stop_after = classifier_path, device, progress, stop_after

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # All state is on disk: requeue a fresh instance (no tensors in the pickle). Nothing is written here:
        # this runs inside the signal handler, possibly in the middle of a checkpoint write.
        return submitit.helpers.DelayedSubmission(type(self)(self.exp, self.model_path, self.out_dir, self.classifier_path,
                                                             self.device, self.progress, self.stop_after))

    # ---------------------------------------------------------------------------------------------
    def __call__(self) -> dict:
        e: Experiment = from_dict(self.exp)
        out = Path(self.out_dir)
        key = e.key("dataset", "model", "train", "chain")
        if (rec := done_record(out, key, refuse="chain")) is not None:
            return rec
        out.mkdir(parents=True, exist_ok=True)
        with _exclusive(out):
            if (rec := done_record(out, key, refuse="chain")) is not None:  # finished by the process we waited for
                return rec
            return self._run(e, out, key)

    def _run(self, e: Experiment, out: Path, key: str) -> dict:
        c = e.chain
        device = torch.device(self.device)
        scheme = load_model(self.model_path, e.image_shape, use_ema=e.train.sample_with_ema, spec=e.model,
                            expect_key=e.key("dataset", "model", "train")).to(device)
        if os.environ.get(COMPILE_ENV) == "1":
            # An execution setting like the device or the thread count: not in the run's key. About 0.82x the
            # eager walk step on CPU (benchmarks/cpu_speed.py); scores agree to ~4e-6, so a chain resumed with
            # another setting continues statistically, not bit-exactly (docs/on-disk.md §4.2).
            scheme.net = torch.compile(scheme.net, dynamic=False)
        classify = self._classifier()
        state, state_path = self._load_state(out, key)  # refuses another config's folder before touching it
        (out / "FAILED.json").unlink(missing_ok=True)
        self._remove_temporaries(out)
        gens = [seeding.generator(c.seed, "chain", i, device=device) for i in range(c.n_chains)]
        check_every = 1 if device.type == "cpu" else 100
        score_fn, jump_fn, walked_M = sampler_functions(scheme, e, gens, check_every)
        if e.model.scheme == "muvb":  # z drawn from the chain's own generators, so the checkpoint carries them (§2.4)
            scheme.z_mode, scheme.z_generator = c.muvb_z, gens
        carry = None
        if state is None:
            y, v = init_chains(c.n_chains, walked_M, e.image_shape, e.walk_sigma, gens, init=c.init, device=device)
            step, n_shards, prev, wall = 0, 0, None, 0.0
        else:
            y, v = ChainState.from_dict(state["chain"]).restore(gens, device)
            step, n_shards, prev, wall = state["chain"]["step"], state["n_shards"], state["prev_jump"], state["wall_s"]
            carry = _to_device(state.get("carry"), device)  # BAOAB's score at y: a stochastic one is not recomputed
        self._truncate_shards(out, n_shards)
        self._log_attempt(out, step, state_path)
        if self.progress:
            print(f"chain {e.id}: {'resuming at' if step else 'starting at'} step {step:,}/{c.steps:,}"
                  + (f" from {state_path.name}" if state_path else ""), flush=True)

        image = len(e.image_shape) == 3
        buffer: list[dict] = []
        t0 = last_ckpt_time = time.perf_counter()
        bar = tqdm(total=c.steps, initial=step, desc=f"chain {e.id}", unit="step", disable=not self.progress,
                   mininterval=2.0, smoothing=0.05, dynamic_ncols=True)

        def checkpoint_now() -> None:
            # Shard first, then the state that counts it: a kill in between leaves an orphan shard that the
            # next start deletes (its index is >= the resumed n_shards) and redoes.
            nonlocal n_shards, buffer, last_ckpt_time
            if buffer:
                self._write_shard(out, n_shards, buffer, image, c.save_float)
                n_shards += 1
                buffer = []
            cs = ChainState.capture(y, v, step, gens)
            save_checked({"chain": cs.to_dict(), "n_shards": n_shards, "prev_jump": prev, "key": key,
                          "carry": _to_device(carry, "cpu"),
                          "wall_s": wall + time.perf_counter() - t0, "format": 1},
                         out / "state" / f"step_{step:010d}.pt")
            for old in sorted((out / "state").glob("step_*.pt"))[:-KEEP_STATES]:
                old.unlink(missing_ok=True)
            last_ckpt_time = time.perf_counter()

        chain = walk_jump(score_fn, jump_fn, y, v, walk=e.walk, steps=c.steps, jump_every=c.jump_every,
                          burn_in=c.burn_in, generator=gens, start_step=step, stop_every=c.ckpt_every,
                          check_every=check_every, autograd=e.model.scheme != "mdae",
                          energy_fn=getattr(scheme, "energy_and_score", None), carry=carry)
        counted = (0, 0)  # a Metropolis-adjusted walk's (accepted, proposed) at the previous jump
        try:
            for stop in chain:
                bar.update(stop.step - step)
                step, y, v, carry = stop.step, stop.y, stop.v, stop.carry
                if stop.x_hat is not None:
                    x_hat = stop.x_hat.float().cpu()
                    buffer.append(self._diagnostics(x_hat, prev, step, classify, image))
                    if stop.proposed > counted[1]:  # the accept rate over the steps since the previous jump
                        buffer[-1]["accept"] = np.float32((stop.accepted - counted[0]) / (stop.proposed - counted[1]))
                        counted = (stop.accepted, stop.proposed)
                    prev = x_hat
                if step % c.ckpt_every == 0 or step == c.steps or time.perf_counter() - last_ckpt_time > CKPT_SECS:
                    checkpoint_now()
                    if self.stop_after is not None and step >= self.stop_after and step < c.steps:
                        bar.close()
                        return {"stopped_at": step}
        except ChainDiverged as err:
            # The newest checkpoint on disk is from before the failing step: it is kept as is.
            last = self._newest_state_name(out)
            atomic_write_json(out / "FAILED.json", {
                "step": err.step, "error": str(err), "key": key, "last_good_checkpoint": last,
                "last_good_step": int(Path(last).stem.split("_")[1]) if last else None})
            bar.close()
            raise
        bar.close()
        wall += time.perf_counter() - t0
        summary = summarize(out, e, wall, classify is not None)
        summary["key"] = key
        summary["attempts"] = self._count_attempts(out)
        atomic_write_json(out / "DONE.json", summary)
        return summary

    # ---------------------------------------------------------------------------------------------
    def _classifier(self):
        if not self.classifier_path:
            return None

        model, _ = load_classifier(self.classifier_path)
        return lambda x: predict(model, x.clamp(0, 1))

    @staticmethod
    def _diagnostics(x_hat: torch.Tensor, prev: torch.Tensor | None, step: int, classify, image: bool) -> dict:
        flat = x_hat.flatten(1)
        d = {"x_hat": x_hat, "step": step, "mean": flat.mean(1).numpy(), "std": flat.std(1).numpy(),
             "dist_prev": ((flat - prev.flatten(1)).norm(dim=1).numpy() if prev is not None
                           else np.full(flat.shape[0], np.nan, dtype=np.float32))}
        if classify is not None and image:
            d["label"] = classify(x_hat).numpy()
        return d

    @staticmethod
    def _write_shard(out: Path, index: int, buffer: list[dict], image: bool, save_float: bool) -> None:
        x = torch.stack([b["x_hat"] for b in buffer])  # (n, chains, *S)
        arrays = {"step": np.array([b["step"] for b in buffer], dtype=np.int64)}
        for name in ("mean", "std", "dist_prev", "label", "accept"):
            if name in buffer[0]:
                arrays[name] = np.stack([b[name] for b in buffer])
        if image:
            arrays["images"] = to_uint8(x).numpy()  # clip to [0,1], round to nearest
        if save_float or not image:
            arrays["float"] = x.numpy().astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(out / "shards" / f"shard_{index:06d}.npz", buf.getvalue())

    @staticmethod
    def _truncate_shards(out: Path, n_shards: int) -> None:
        """Delete shards written after the checkpoint we resume from (they will be redone); check the others."""
        present = set()
        for path in (out / "shards").glob("shard_*.npz"):
            index = _shard_index(path)
            if index >= n_shards:
                path.unlink()
            else:
                present.add(index)
        if missing := sorted(set(range(n_shards)) - present):
            raise RunStateError(f"{out}: the checkpoint counts {n_shards} shards but shard(s) {missing[:5]} are missing: "
                               f"the run folder was damaged; redo the chain (--force chain)")

    @staticmethod
    def _remove_temporaries(out: Path) -> None:
        """Half-written temporary files of a killed process (atomic writes go through `.<name>.tmp<pid>`)."""
        for sub in ("state", "shards"):
            for path in (out / sub).glob(".*.tmp*"):
                path.unlink(missing_ok=True)

    @staticmethod
    def _newest_state_name(out: Path) -> str | None:
        states = sorted((out / "state").glob("step_*.pt"))
        return str(states[-1]) if states else None

    @staticmethod
    def _load_state(out: Path, key: str) -> tuple[dict | None, Path | None]:
        """The newest checkpoint that passes its checksum; a corrupt one is set aside as `*.pt.corrupt`."""
        for path in sorted((out / "state").glob("step_*.pt"), reverse=True):
            try:
                state = load_checked(path)
                if not isinstance(state, dict) or "chain" not in state or "n_shards" not in state:
                    raise CorruptCheckpoint(f"{path}: not a chain checkpoint")
            except (CorruptCheckpoint, EOFError, RuntimeError, pickle.UnpicklingError) as err:
                print(f"warning: {err}; set aside as {path.name}.corrupt, using the previous checkpoint", flush=True)
                path.replace(path.with_suffix(".pt.corrupt"))
                continue
            if state["key"] != key:
                raise UsageError(f"{path} belongs to another chain configuration: use a fresh run folder or --force chain")
            return state, path
        return None, None

    @staticmethod
    def _log_attempt(out: Path, step: int, state_path: Path | None) -> None:
        try:
            job = submitit.JobEnvironment().job_id
        except RuntimeError:
            job = None
        record = {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), "job_id": job,
                  "start_step": step, "state": state_path.name if state_path else None}
        with open(out / "attempts.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _count_attempts(out: Path) -> int:
        try:
            with open(out / "attempts.jsonl") as f:
                return sum(1 for line in f if line.strip())
        except OSError:
            return 0


def _to_device(carry, device):
    """A walk's carry (None, a tensor or a tuple of them) on `device`, detached."""
    if carry is None:
        return None
    if isinstance(carry, torch.Tensor):
        return carry.detach().to(device)
    return type(carry)(_to_device(c, device) for c in carry)


def _shard_index(path: Path) -> int:
    return int(path.stem.split("_")[1])


def read_shards(out_dir: str | Path, names: tuple[str, ...] = ("images",)) -> dict[str, np.ndarray]:
    """Concatenate the named arrays of all committed shards, in chain order (shards 0..n-1, no gaps)."""
    paths = sorted(Path(out_dir, "shards").glob("shard_*.npz"), key=_shard_index)
    if [_shard_index(p) for p in paths] != list(range(len(paths))):
        raise RunStateError(f"{out_dir}: shard indices are not contiguous from 0 "
                           f"({[_shard_index(p) for p in paths][:10]}...): the run folder was damaged")
    parts: dict[str, list] = {n: [] for n in names}
    for path in paths:
        with np.load(path) as z:
            for n in names:
                if n in z:
                    parts[n].append(z[n])
    return {n: np.concatenate(v) for n, v in parts.items() if v}


def summarize(out_dir: str | Path, e: Experiment, wall_s: float, labelled: bool) -> dict:
    """Chain-level diagnostics from the shards: stability (drift of per-jump statistics), mixing, classes."""

    names = ("step", "mean", "std", "dist_prev", "accept") + (("label",) if labelled else ())
    d = read_shards(out_dir, names)
    if "step" not in d:  # no jump recorded (steps <= burn_in + jump_every)
        return {"experiment": e.id, "profile": e.profile, "steps": e.chain.steps, "n_chains": e.chain.n_chains,
                "n_jumps": 0, "n_samples": 0, "wall_s": wall_s,
                "steps_per_s": e.chain.steps / wall_s if wall_s > 0 else None, "finite": True}
    mean0 = d["mean"][:, 0]
    tenth = max(1, len(mean0) // 10)
    summary = {
        "experiment": e.id, "profile": e.profile, "steps": e.chain.steps, "n_chains": e.chain.n_chains,
        "n_jumps": int(len(d["step"])), "n_samples": int(d["mean"].size), "wall_s": wall_s,
        "steps_per_s": e.chain.steps / wall_s if wall_s > 0 else None,
        "jump_mean_first10pct": float(mean0[:tenth].mean()), "jump_mean_last10pct": float(mean0[-tenth:].mean()),
        "jump_std_mean": float(d["std"].mean()), "dist_prev_mean": float(np.nanmean(d["dist_prev"])),
        # None for a chain that never moved (every Metropolis proposal rejected): no autocorrelation to estimate
        "iat_jump_mean": float(integrated_autocorr_time(mean0)) if len(mean0) > 10 and np.ptp(mean0) > 0 else None,
        "finite": True,
    }
    summary["score_evals"] = score_evals(e, summary["n_jumps"])
    if "accept" in d:
        summary["accept_rate"] = float(d["accept"].mean())
    if labelled and "label" in d:
        labels = d["label"][:, 0]
        summary["class_switch_rate"] = float(class_switch_rate(labels))
        summary["class_histogram"] = class_histogram(d["label"].reshape(-1), 10).tolist()
    return summary
