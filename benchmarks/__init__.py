"""Benchmarks of the replication suite: walk step, train step, scaling, cost model (see README.md)."""
