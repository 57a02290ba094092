"""Open replication suite for Multimeasurement Generative Models (Saremi & Srivastava, ICLR 2022).

Layers, bottom to top; a module imports only from its own package and from layers below it
(tests/test_layout.py checks this):
  errors      the errors the suite raises itself (one-line messages in the CLI)
  core        the paper's math and networks: noise models, nets, MDAE/MEM and their jump; no I/O
  sampling    the walk's integrators, chain initialisation and state, the one walk-jump chain loop; no I/O
  data        files and datasets: atomic checksummed files, the dataset registry (one module per dataset in
              data/sets/), loading and batching, toy mixtures
  train       resumable, deterministic Adam training
  evaluation  metrics, the suite's classifier, FID through clean-fid, staged assets, sample images
  runs        the experiment registry, the paper's numbers, run folders and stage keys, model files,
              provenance, records
  pipeline    the stages (train, chain, export, score) and where they run: executors, job ledger, SLURM
  claims      the toy-claims study (python replicate.py --claims toy)
  report      REPORT.md, the appendix, tables, figures and the after-run summary
  cli         python replicate.py: the one command line (and the `python -m` aliases that hand it their arguments)
"""

__version__ = "0.1.0"
