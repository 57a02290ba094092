"""Training is deterministic for a seed and resumes bit for bit; a checkpoint of another config is refused."""

import pytest
import torch

from replication.core.nets import build_net
from replication.core.schemes import MDAE
from replication.data.storage import load_checked
from replication.train.spec import TrainSpec
from replication.train.training import ConfigMismatch, global_batch, train


def make(seed=0):
    torch.manual_seed(seed)
    return MDAE(build_net("small_unet", 2, 2, width=8), sigma=1.0, M=2)


DATA = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
CFG = TrainSpec(steps=12, batch_size=16, lr=1e-3, seed=3, hflip=True, ema_decay=0.9, ckpt_every=5)


def test_interrupted_training_resumes_bit_for_bit(tmp_path):
    full = make()
    train(full, DATA, CFG, tmp_path / "a", key="k", progress=False)
    resumed = make()
    train(resumed, DATA, CFG, tmp_path / "b", key="k", progress=False, stop_after=7)
    resumed = make(seed=123)  # a new process: fresh weights, everything must come from disk
    out = train(resumed, DATA, CFG, tmp_path / "b", key="k", progress=False)
    assert out["steps"] == 12
    for (name, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    a, b = load_checked(tmp_path / "a" / "ckpt.pt"), load_checked(tmp_path / "b" / "ckpt.pt")
    assert a["history"] == b["history"]
    for p, q in zip(a["ema"].values(), b["ema"].values()):
        assert torch.equal(p, q)


def test_checkpoint_from_another_config_is_refused(tmp_path):
    train(make(), DATA, CFG, tmp_path, key="config-A", progress=False, stop_after=5)
    before = (tmp_path / "ckpt.pt").read_bytes()
    with pytest.raises(ConfigMismatch, match="another configuration"):
        train(make(), DATA, CFG, tmp_path, key="config-B", progress=False)
    assert (tmp_path / "ckpt.pt").read_bytes() == before  # nothing overwritten


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path):
    train(make(), DATA, CFG, tmp_path, key="k", progress=False, stop_after=10)
    (tmp_path / "ckpt.pt").write_bytes((tmp_path / "ckpt.pt").read_bytes()[:-100])
    full = make()
    train(full, DATA, CFG, tmp_path / "ref", key="k", progress=False)
    resumed = make()
    train(resumed, DATA, CFG, tmp_path, key="k", progress=False)
    for p, q in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)


def test_batches_are_functions_of_the_step():
    x1, g1 = global_batch(DATA, CFG, 6)
    x2, g2 = global_batch(DATA, CFG, 6)
    assert torch.equal(x1, x2) and torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    epoch0 = torch.cat([global_batch(DATA, CFG.__class__(**{**CFG.__dict__, "hflip": False}), i)[0] for i in range(4)])
    assert torch.equal(epoch0.sort(0).values, DATA.sort(0).values)  # one epoch sees every example once
