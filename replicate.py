#!/usr/bin/env python
"""Replicate the tables of Multimeasurement Generative Models (Saremi & Srivastava, ICLR 2022): see README.md."""

import sys

from replication.cli import main

if __name__ == "__main__":
    sys.exit(main())
