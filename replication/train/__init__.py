"""Training: resumable, deterministic Adam training of a scheme on a data tensor."""
