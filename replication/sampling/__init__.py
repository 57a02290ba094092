"""The sampling floor: the walk's integrators, chain initialisation and state, and the one walk-jump chain loop
that the pipeline, the claims study, the drift measurement and the benchmarks all run (docs/method.md §3, §5)."""
