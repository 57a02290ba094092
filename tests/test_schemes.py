"""MDAE and MEM plumbing (docs/method.md §2) and a small MDAE that learns the Bayes estimator."""

import math

import pytest
import torch

from replication.core.mnm import GaussianMixture, GaussianMNM
from replication.core.nets import MLP, build_net
from replication.core.schemes import MDAE, MEM
from replication.runs.experiments import ModelSpec, resolve
from replication.runs.models import build_model, load_model, save_model
from replication.train.spec import TrainSpec
from replication.train.training import train


class Recorder(torch.nn.Module):
    """Identity net that remembers what it saw."""

    def forward(self, z):
        self.seen = z
        return z * 1.0


def test_measurement_major_channels_and_input_scaling():
    net = Recorder()
    mdae = MDAE(net, sigma=1.0, M=3)
    y = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4)
    out = mdae.x_hat(y)
    s = math.sqrt(0.225**2 + 1.0)
    assert net.seen.shape == (2, 6, 4, 4)
    torch.testing.assert_close(net.seen[:, 2:4], y[:, 1] / s)  # channels [m=1: c1,c2, m=2: c1,c2, ...]
    torch.testing.assert_close(out, y / s)


def test_mdae_score_jump_and_loss_normalisation():
    torch.manual_seed(0)
    mdae = MDAE(build_net("small_unet", 4 * 1, 4 * 1, width=8), sigma=0.5, M=4, sigmoid=True)
    x = torch.rand(3, 1, 6, 6)
    y = mdae.mnm.measure(x, torch.Generator().manual_seed(1))
    nu = torch.sigmoid(mdae.nu(y))
    torch.testing.assert_close(mdae.score(y), (nu - y) / 0.25)  # poster Eq. 2
    torch.testing.assert_close(mdae.jump(y), nu.mean(1))  # jump = mean over m of nu_m (Eq. 4)
    expected = sum(((x - nu[:, m]) ** 2).flatten(1).sum(1).mean() for m in range(4)) / 4  # Eq. 9, docs/method.md §2.1
    torch.testing.assert_close(mdae.loss(x, y=y), expected)
    assert 0 < mdae.jump(y).min() and mdae.jump(y).max() < 1


def test_mem_score_is_minus_energy_gradient_and_trains_by_double_backprop():
    torch.manual_seed(0)
    mem = MEM(MLP(2 * 3, 2 * 3, hidden=16, depth=2), sigma=0.7, M=2)
    y = torch.randn(5, 2, 3, dtype=torch.float64)
    mem.double()
    eps = 1e-6
    e = torch.zeros_like(y)
    e[0, 1, 2] = eps
    fd = -(mem.energy(y + e)[0] - mem.energy(y - e)[0]) / (2 * eps)
    assert mem.score(y)[0, 1, 2].item() == pytest.approx(fd.item(), rel=1e-6)
    torch.testing.assert_close(mem.x_hat(y), y + 0.49 * mem.score(y))
    loss = mem.loss(torch.randn(5, 3, dtype=torch.float64), torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mem.net.parameters())


def test_unimplemented_scheme_names_the_implemented_ones():
    with pytest.raises(NotImplementedError, match="implemented: \\['mdae', 'mem', 'muvb'\\]"):
        build_model(ModelSpec(scheme="poisson", net="mlp"), (2,))


@pytest.mark.slow
def test_small_mdae_reaches_bayes_mse_on_a_2d_mixture(tmp_path):
    """The learned jump is within 10% of the exact Bayes risk E|X - E[X|y]|^2 (MDAE optimum, docs/method.md §2.2)."""
    prior = GaussianMixture(torch.tensor([[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]]), torch.tensor([0.3, 0.2, 0.4]),
                            torch.tensor([0.5, 0.3, 0.2]))
    sigma, M = 1.0, 4
    torch.manual_seed(0)
    mdae = MDAE(MLP(2 * M, 2 * M, hidden=128, depth=3), sigma=sigma, M=M)
    data, _ = prior.sample(20_000, torch.Generator().manual_seed(1))
    cfg = TrainSpec(steps=3000, batch_size=256, lr=2e-3, seed=0, lr_schedule="cosine", ckpt_every=10_000)
    train(mdae, data.float(), cfg, tmp_path, progress=False)
    mnm = GaussianMNM(sigma, M)
    x, _ = prior.sample(20_000, torch.Generator().manual_seed(2))
    y = mnm.measure(x, torch.Generator().manual_seed(3))
    with torch.no_grad():
        mse_model = ((mdae.jump(y.float()).double() - x) ** 2).sum(1).mean().item()
    mse_bayes = ((prior.x_hat(y, mnm) - x) ** 2).sum(1).mean().item()
    mse_ybar = ((mnm.y_bar(y) - x) ** 2).sum(1).mean().item()
    assert mse_bayes < mse_model <= 1.10 * mse_bayes, (mse_model, mse_bayes, mse_ybar)


def test_ybar_parametrization_shares_one_denoiser_of_the_mean():
    """nu_m(y) = D(y_bar) for all m: the score is exactly (D - y_m)/sigma^2 and permutation equivariant."""
    torch.manual_seed(0)
    mdae = MDAE(build_net("small_unet", 1, 1, width=8), sigma=1.0, M=4, parametrization="ybar")
    y = torch.randn(2, 4, 1, 6, 6)
    nu = mdae.nu(y)
    s_eff = math.sqrt(0.225**2 + 0.25)
    torch.testing.assert_close(nu[:, 2], mdae.net(y.mean(1) / s_eff))
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(mdae.score(y[:, perm]), mdae.score(y)[:, perm])


def test_ybar_model_at_one_sigma_eff_serves_every_sigma_M_pair(tmp_path):
    a = resolve("toy", "smoke", {"model.parametrization": "ybar", "model.sigma": "1", "model.M": "4"})[0]
    b = resolve("toy", "smoke", {"model.parametrization": "ybar", "model.sigma": "2", "model.M": "16"})[0]
    c = resolve("toy", "smoke", {"model.parametrization": "ybar", "model.sigma": "2", "model.M": "4"})[0]
    train = ("dataset", "model", "train")
    assert a.key(*train) == b.key(*train) != c.key(*train)
    assert a.key() != b.key()  # the runs (chains) still differ
    save_model(tmp_path / "m.pt", build_model(a.model, a.image_shape), a.to_dict()["model"], a.key(*train))
    scheme = load_model(tmp_path / "m.pt", b.image_shape, expect_key=b.key(*train), spec=b.model)
    assert (scheme.sigma, scheme.M) == (2.0, 16)
