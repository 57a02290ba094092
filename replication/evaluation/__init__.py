"""Evaluation: offline metrics, the suite's classifier, FID through clean-fid, staged FID assets, sample images."""
