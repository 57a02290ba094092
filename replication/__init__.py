"""Open replication suite for Multimeasurement Generative Models (Saremi & Srivastava, ICLR 2022).

Modules, in the order the method uses them:
  mnm         noise models (Gaussian/Poisson MNM) and analytic priors with exact M-densities
  nets        networks nu_theta: the paper's U2Net, a small U-Net and an MLP for CPU runs
  schemes     MDAE and MEM parametrizations: score, jump x_hat, loss (SPEC §1.5-1.6)
  walk_jump   underdamped Langevin walk (ABOBA / Cheng et al.) and the jump
  training    resumable Adam training
  chain       the long single-chain stage: sharded jumps, checkpoints, bit-exact resume
  experiments the one registry of experiments, profiles and paper numbers
"""

__version__ = "0.1.0"
