"""The pipeline: stages with on-disk contracts (train, chain, export, score) and where they run (executors,
cluster profiles, code snapshots, the job ledger, SLURM submission)."""
