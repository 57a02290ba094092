"""Parametrization schemes of the M-density score: MDAE, MEM and MUVB (docs/method.md §2, §4.1).

Both wrap a network nu_theta that maps the M noisy copies, stacked measurement-major along the
channel axis, to M outputs of the same shape. Tensors at this interface are (N, M, *S): S = (C, H, W)
for images or (d,) for vectors. The network sees y / s with s = sqrt(data_std^2 + sigma^2), the
official code's input scaling (docs/method.md §2.5, data_std = 0.225 fixed).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .mnm import GaussianMNM

Tensor = torch.Tensor


def _stack_measurements(y: Tensor) -> Tensor:
    """(N, M, C, *rest) -> (N, M*C, *rest), measurement-major: [m=1: c1..cC, m=2: ...]."""
    N, M, C = y.shape[:3]
    return y.reshape(N, M * C, *y.shape[3:])


def _unstack_measurements(z: Tensor, M: int) -> Tensor:
    N, MC = z.shape[:2]
    return z.reshape(N, M, MC // M, *z.shape[2:])


class _Scheme(nn.Module):
    """Shared plumbing: the noise model, input scaling, loss (docs/method.md §2.1) and jump."""

    def __init__(self, net: nn.Module, sigma: float, M: int, data_std: float = 0.225):
        super().__init__()
        self.mnm = GaussianMNM(sigma, M)
        self.net = net
        self.sigma, self.M = float(sigma), int(M)
        self.s = math.sqrt(data_std**2 + self.sigma**2)  # input scale [C]

    def nu(self, y: Tensor) -> Tensor:
        """Network output nu_theta(y / s) with y's shape (N, M, *S)."""
        out = self.net(_stack_measurements(y / self.s)).to(y.dtype)  # fp32 loss under bf16 autocast
        return _unstack_measurements(out, self.M)

    def x_hat(self, y: Tensor) -> Tensor:
        """The M estimates x_hat_m(y): (N, M, *S)."""
        raise NotImplementedError

    def score(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def x_hat_train(self, y: Tensor) -> Tensor:
        """x_hat_m(y) with whatever graph the loss needs to backpropagate into theta."""
        return self.x_hat(y)

    def jump(self, y: Tensor) -> Tensor:
        """The sample: mean over m of x_hat_m(y) (docs/method.md §5 [C]): (N, *S)."""
        return self.x_hat(y).mean(1)

    def loss(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """L = (1/M) sum_m E_b |x - x_hat_m(y)|^2, squared error summed over pixels (poster Eq. 3, docs/method.md §2.1)."""
        if y is None:
            y = self.mnm.measure(x, generator)
        err = (x.unsqueeze(1) - self.x_hat_train(y)) ** 2
        per_sample_m = err.flatten(2).sum(2)  # (N, M): e_{b,m}
        return per_sample_m.mean(0).mean(0)

    def forward(self, x: Tensor, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The training loss (so DistributedDataParallel can wrap the scheme)."""
        return self.loss(x, generator, y)


class MDAE(_Scheme):
    """Multidenoising autoencoder: score(y) = (nu_theta(y) - y)/sigma^2 (poster Eq. 2), x_hat = nu_theta (Eq. 4).

    One forward pass per score, no autograd. `sigmoid=True` bounds nu in (0, 1) (CIFAR-10, FFHQ configs [C]).

    parametrization "mdae" (the paper's): the net maps all M measurements (M*C channels) to M outputs.
    parametrization "ybar" (beyond the paper; the permutation-equivariant form of docs/method.md §1.4 and the
    follow-up [U]): nu_m(y) = D_theta(y_bar) for every m, a single denoiser of the mean at sigma_eff =
    sigma/sqrt(M), input scaled by sqrt(data_std^2 + sigma_eff^2). It has the Bayes-optimal structure by
    construction: the score is exact in the (M-1)d directions orthogonal to the common mode.
    """

    def __init__(self, net: nn.Module, sigma: float, M: int, sigmoid: bool = False, data_std: float = 0.225,
                 parametrization: str = "mdae"):
        super().__init__(net, sigma, M, data_std)
        if parametrization not in ("mdae", "ybar"):
            raise ValueError(f"unknown parametrization {parametrization!r}; known: mdae, ybar")
        self.sigmoid = bool(sigmoid)
        self.parametrization = parametrization
        if parametrization == "ybar":
            self.s = math.sqrt(data_std**2 + self.mnm.sigma_eff**2)

    def nu(self, y: Tensor) -> Tensor:
        if self.parametrization == "mdae":
            return super().nu(y)
        d = self.net(y.mean(1) / self.s).to(y.dtype)  # D(y_bar): (N, *S)
        return d.unsqueeze(1).expand_as(y)

    def x_hat(self, y: Tensor) -> Tensor:
        nu = self.nu(y)
        return torch.sigmoid(nu) if self.sigmoid else nu

    def score(self, y: Tensor) -> Tensor:
        return (self.x_hat(y) - y) / self.sigma**2


class YbarLevels(MDAE):
    """One noise-conditional denoiser of the mean at every level of the chain of log-concave Markov chains
    (CLMC; Saremi, Park & Bach 2024; docs/method.md §6.2): x_hat(ybar_m; s_m) with s_m = sigma/sqrt(m), m = 1..M,
    where ybar_m is the mean of the first m measurements. The net sees ybar_m / s with the paper's input scale at sigma,
    s = sqrt(data_std^2 + sigma^2) (Eq. 13), at every level, and log s_m. As a walk-jump model it is the ybar MDAE at
    level M (x_hat_m(y) = x_hat(ybar_M; s_M)). `warm_start` starts it from a trained paper-parametrization MDAE.

    Training (Eq. 26): the batch's measurements y give every ybar_m at once (cumulative means); example i is trained
    at level m = 1 + (i mod M), so each batch holds every level equally often, and the loss is
    E |x - x_hat(ybar_m; s_m)|^2 summed over pixels, averaged over the batch.
    """

    def __init__(self, net: nn.Module, sigma: float, M: int, sigmoid: bool = False, data_std: float = 0.225):
        super().__init__(net, sigma, M, sigmoid, data_std, parametrization="ybar")
        self.parametrization = "ybar-levels"
        self.s = math.sqrt(data_std**2 + self.sigma**2)  # Eq. 13 at sigma, every level

    def level_sigma(self, m: int | Tensor) -> Tensor | float:
        """s_m = sigma / sqrt(m): the noise of the mean of m measurements."""
        return self.sigma / (m.to(torch.float32).sqrt() if isinstance(m, Tensor) else math.sqrt(m))

    def denoise(self, ybar: Tensor, m: int | Tensor) -> Tensor:
        """x_hat(ybar; sigma/sqrt(m)) for ybar (N, *S) at level m (an int, or one per row): (N, *S)."""
        s = self.level_sigma(m)
        s = s.to(ybar.device) if isinstance(s, Tensor) else torch.full((ybar.shape[0],), s, device=ybar.device)
        out = self.net(ybar / self.s, s.log()).to(ybar.dtype)
        return torch.sigmoid(out) if self.sigmoid else out

    @torch.no_grad()
    def warm_start(self, mdae: MDAE) -> None:
        """Start from a trained MDAE of the paper's parametrization with the same SmallUNet width and sigma: its net
        fed ybar in every measurement slot, the mean of its M output maps taken before the sigmoid. Folded into this net: conv_in sums the
        source's weights over the measurement slots (each sees ybar / s), conv_out averages its M output maps, every
        other weight is copied, and the noise-level shifts start at zero, so before training x_hat(ybar; s_m) is the
        source's output at every level (docs/method.md §6.2)."""
        if mdae.parametrization != "mdae" or mdae.sigma != self.sigma or mdae.sigmoid != self.sigmoid:
            raise ValueError(f"warm start needs a paper-parametrization MDAE at sigma = {self.sigma:g} with sigmoid = "
                             f"{self.sigmoid} (got {mdae.parametrization}, sigma = {mdae.sigma:g}, sigmoid = {mdae.sigmoid})")
        source, target = mdae.net.state_dict(), self.net.state_dict()
        C, M = target["conv_in.weight"].shape[1], mdae.M
        for name, w in source.items():
            if name == "conv_in.weight":
                w = w.view(w.shape[0], M, C, *w.shape[2:]).sum(1)
            elif name.startswith("conv_out."):
                w = w.view(M, C, *w.shape[1:]).mean(0)
            if name not in target or target[name].shape != w.shape:
                raise ValueError(f"warm start: the source net does not match this one at {name!r} "
                                 f"({tuple(w.shape)} vs {tuple(target[name].shape) if name in target else 'absent'})")
            target[name] = w
        for name in target:
            if ".emb." in name:
                target[name] = torch.zeros_like(target[name])
        self.net.load_state_dict(target)

    def nu(self, y: Tensor) -> Tensor:
        return self.denoise(y.mean(1), self.M).unsqueeze(1).expand_as(y)

    def x_hat(self, y: Tensor) -> Tensor:
        return self.nu(y)

    def loss(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        if y is None:
            y = self.mnm.measure(x, generator)
        counts = torch.arange(1, self.M + 1, device=y.device, dtype=y.dtype).view(1, -1, *([1] * (y.dim() - 2)))
        ybar = y.cumsum(1) / counts  # (N, M, *S): ybar_m for every m
        rows = torch.arange(y.shape[0], device=y.device)
        level = rows % self.M  # m - 1
        x_hat = self.denoise(ybar[rows, level], level + 1)
        return ((x - x_hat) ** 2).flatten(1).sum(1).mean()


class MEM(_Scheme):
    """Multimeasurement energy model: f(y) = |y - nu_theta(y/s)|^2 / (2 sigma^2), score = -grad f by autograd.

    x_hat_m = y_m + sigma^2 score_m (docs/method.md §2.3). Training backpropagates through the score (double backprop).
    """

    def energy(self, y: Tensor) -> Tensor:
        return ((y - self.nu(y)) ** 2).flatten(1).sum(1) / (2 * self.sigma**2)

    def score(self, y: Tensor, create_graph: bool = False) -> Tensor:
        with torch.enable_grad():
            y_ = y.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(y_).sum(), y_, create_graph=create_graph)
        return -g

    def energy_and_score(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(f(y) per chain, score) from one forward and one backward pass: what a Metropolis-adjusted walk needs."""
        with torch.enable_grad():
            y_ = y.detach().requires_grad_(True)
            f = self.energy(y_)
            (g,) = torch.autograd.grad(f.sum(), y_)
        return f.detach(), -g

    def x_hat(self, y: Tensor, create_graph: bool = False) -> Tensor:
        return y + self.sigma**2 * self.score(y, create_graph=create_graph)

    def x_hat_train(self, y: Tensor) -> Tensor:
        return self.x_hat(y, create_graph=True)  # double backprop


Z_MODES = ("sample", "mean")  # MUVB's z at each energy evaluation: resampled [C], or z = mu (docs/method.md §2.4)


class VAENets(nn.Module):
    """The two networks of MUVB: encoder (M*C channels -> 2*zdim) and decoder (zdim -> M*C channels)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder


def _normal(like: Tensor, generator) -> Tensor:
    """N(0, 1) shaped like `like` from one generator, one per row (a chain), or torch's global one (None)."""
    if generator is None:
        return torch.randn_like(like)
    if isinstance(generator, torch.Generator):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    if len(generator) != like.shape[0]:
        raise ValueError(f"got {len(generator)} generators for {like.shape[0]} chains")
    return torch.stack([torch.randn(like.shape[1:], generator=g, dtype=like.dtype, device=like.device) for g in generator])


class MUVB(MEM):
    """Multimeasurement unnormalized variational Bayes (docs/method.md §2.4, Eq. 12a): a VAE with the known Gaussian
    noise model whose negative ELBO (log-normalizers dropped) is the energy,

        f(y) = |y - nu(z)|^2 / (2 sigma^2) + beta KL(q(z|y) || N(0, I)),   z = mu(y) + exp(logvar(y)/2) eps,

    with the encoder q(z|y) on y/s (mean and log-variance of z) and the decoder z -> nu(z) in R^{Md}. The score is
    -grad_y f by autograd, through the encoder too; the jump and the least-squares loss (Eq. 9) are MEM's.

    z_mode "sample" (the official code's, the default): eps ~ N(0, I) is redrawn at every energy evaluation, so the
    score is stochastic for beta > 0; draws come from `z_generator` (set by the caller: the chain's generators, so
    a checkpoint carries them; the training step's generator) or torch's global one. z_mode "mean": z = mu, a
    deterministic energy. beta = 0 is deterministic (z = mu, no KL), as in the official code.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, sigma: float, M: int, beta: float = 1.0,
                 data_std: float = 0.225, z_mode: str = "sample"):
        super().__init__(VAENets(encoder, decoder), sigma, M, data_std)
        if not beta >= 0:
            raise ValueError(f"MUVB needs beta >= 0, got {beta}")
        self.beta = float(beta)
        self.z_mode = z_mode  # validated by the property below
        self.z_generator = None

    @property
    def z_mode(self) -> str:
        return self._z_mode

    @z_mode.setter
    def z_mode(self, mode: str) -> None:
        if mode not in Z_MODES:
            raise ValueError(f"unknown MUVB z mode {mode!r}; known: {', '.join(Z_MODES)}")
        self._z_mode = mode

    @property
    def stochastic(self) -> bool:
        """Whether the score is random (z resampled at each evaluation, beta > 0)."""
        return self.z_mode == "sample" and self.beta > 0

    def encode(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, logvar) of q(z | y), each (N, zdim, ...), from the encoder on y/s (docs/method.md §2.5)."""
        h = self.net.encoder(_stack_measurements(y / self.s)).to(y.dtype)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, in closed form."""
        return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).flatten(1).sum(1)

    def energy(self, y: Tensor, eps: Tensor | None = None) -> Tensor:
        """f(y) per sample (docs/method.md Eq. 12a); `eps` fixes the reparametrization noise (tests)."""
        mu, logvar = self.encode(y)
        if self.beta == 0:
            z = mu
        elif eps is not None:
            z = mu + (0.5 * logvar).exp() * eps
        elif self.z_mode == "sample":
            z = mu + (0.5 * logvar).exp() * _normal(mu, self.z_generator)
        else:
            z = mu
        nu = _unstack_measurements(self.net.decoder(z).to(y.dtype), self.M)
        f = ((y - nu) ** 2).flatten(1).sum(1) / (2 * self.sigma**2)
        return f + self.beta * self.kl(mu, logvar) if self.beta > 0 else f

    @classmethod
    def linear_gaussian(cls, A: Tensor, b: Tensor, sigma: float, M: int, beta: float = 1.0) -> "MUVB":
        """The known-answer case (docs/method.md §2.4): y = A z + b + sigma eps with z ~ N(0, I) (A: (M d, k) with
        orthogonal columns), the decoder nu(z) = A z + b and the exact posterior N(mu(y), Sigma) as the encoder,
        Sigma = diag 1 / (1 + |a_j|^2 / sigma^2), mu = Sigma A^T (y - b) / sigma^2 (read from y / s). With beta = 1
        its expected energy is -log p(y) up to the dropped constant. Linear layers in A's dtype."""
        D, k = A.shape
        var = 1 / (1 + (A**2).sum(0) / sigma**2)
        enc, dec = nn.Linear(D, 2 * k).to(A.dtype), nn.Linear(k, D).to(A.dtype)
        muvb = cls(enc, dec, sigma, M, beta=beta)
        with torch.no_grad():
            enc.weight.zero_()
            enc.weight[:k] = muvb.s * var[:, None] * A.T / sigma**2
            enc.bias[:k] = -(var[:, None] * A.T / sigma**2) @ b
            enc.bias[k:] = var.log()
            dec.weight.copy_(A)
            dec.bias.copy_(b)
        return muvb

    def loss(self, x: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """Eq. 9 on the estimator built from this energy; z is drawn from `generator` when one is given."""
        saved = self.z_generator
        if generator is not None:
            self.z_generator = generator
        try:
            return super().loss(x, generator, y)
        finally:
            self.z_generator = saved


SCHEMES = {"mdae": MDAE, "mem": MEM, "muvb": MUVB}  # scheme name -> class (runs.models.build_model)
PARAMETRIZATIONS = {"mdae": MDAE, "ybar": MDAE, "ybar-levels": YbarLevels}  # MDAE parametrizations -> class
