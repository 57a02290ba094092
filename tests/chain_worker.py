"""Subprocess entry for tests/test_chain.py: run one ChainJob on one CPU thread.

    python tests/chain_worker.py job.json      job.json = {"exp": Experiment.to_dict(), "model": path, "out": path}

The reference run in the test process also uses one thread (tests/conftest.py), so the two are comparable
byte for byte. The worker is meant to be killed (SIGKILL) at any moment and started again.
"""

import json
import os
import sys

os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)

from replication.pipeline.chain import ChainJob  # noqa: E402


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    summary = ChainJob(spec["exp"], spec["model"], spec["out"], progress=False)()
    print(json.dumps({"n_jumps": summary["n_jumps"], "attempts": summary.get("attempts")}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
