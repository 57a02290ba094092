"""The toy-claims study: the poster's qualitative claims, measured on the toy 2-D Gaussian mixture (beyond the paper).

    python replicate.py --claims toy [--profile smoke] [--sweeps large_m,smoothing,stability] [--results results]
    (alias: python -m replication.claims toy [--quick] [--sweeps ...] [--out results]; --quick = --profile smoke)

Every number comes from a run recorded here; none is a paper number. The toy is `ring8` (8 equal modes of
std 0.2 on a ring of radius 2.5), where the M-density, its score and the Bayes jump are exact
(`mnm.GaussianMixture`), so the sampler can be judged against the truth. Three sweeps:

- `large_m`   "This sampling scheme is exact for large M" [P]. sigma = 1, M in {1, 2, 4, 8, 16}:
              the jump's MSE E|X - x_hat(Y)|^2 for the naive mean y_bar (exactly d sigma^2 / M), the exact
              Bayes jump, and MLP MDAEs trained with the same budget for every M (the paper's
              parametrization and the beyond-paper `ybar` one); then samples from jumps of i.i.d. Y ~ p(y)
              (a perfectly mixed walk) and from walk-jump chains driven by the exact score and by the
              learned ones: mode-weight TV, on-manifold fraction, energy distance to exact samples.
- `smoothing` "Smoothing is key for good mixing" [P]. Exact-score chains at fixed sigma_eff = sigma/sqrt(M)
              (0.5 and 0.25, sigma from sigma_eff to 2), the paper's delta = sigma/2, gamma = 0.5, u = 1,
              the same number of walk steps: mode-switch rate of consecutive jumps, integrated
              autocorrelation time of cos(angle of the jump), modes visited by one chain, per-chain mode
              TV; one torch.Generator per chain, error bars over chains. Control rows: M = 1 at
              sigma = sigma_eff with friction gamma * sqrt(M) (see below); and one fixed-M row set.
- `stability` "Stable chains with 1 million steps" [P], scaled down: one 200k-step chain at the `toy`
              experiment's (sigma, M) = (1, 4) with the exact score and with the learned MDAE; the
              per-jump statistics of the first and the last 10% of the chain.

Why fixed sigma_eff isolates friction (docs/method.md §1.3, derived here [D]): for equal noise, log p(y) =
log p_{sigma_eff}(y_bar) - sum_m |y_m - y_bar|^2 / (2 sigma^2) + const, and an orthonormal change of
coordinates z = sqrt(M) y_bar, plus (M-1)d orthogonal ones, decouples the underdamped walk exactly (also
after discretization, since u and gamma are isotropic). In units where the y_bar-potential is fixed, the
y_bar-walk of (sigma, M, gamma, delta = sigma/2) is the walk of (sigma_eff, 1, gamma * sqrt(M),
delta = sigma_eff/2) on p_{sigma_eff}, and the Bayes jump depends on y_bar only. So with the exact score,
all configurations with the same sigma_eff differ only by an effective friction gamma * sqrt(M); the
control rows test this.

Outputs (`out` = --results, results/ by default): records/claims_toy_<sweep>.json (config, seeds, provenance, wall
time, rows), tables/claims_toy_<sweep>.{csv,md} (large_m also tables/claims_toy_large_m_samples.{csv,md}),
figures/claims_toy_<sweep>.png. The sizes are the registry's profiles' (profiles.py `sizes`): quick, the default,
runs in minutes (the committed outputs, the `toy` experiment's training at quick); `--profile smoke` runs everything
in seconds (for the tests) and names its outputs claims_toy_<sweep>_smoke.*.
"""
