"""Runs: the experiment registry, the paper's numbers, run folders and stage keys, model files, committed
models, provenance and records."""
