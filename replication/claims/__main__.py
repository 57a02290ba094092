"""`python -m replication.claims toy ...`: the toy-claims study (see the package docstring)."""

import sys

from .run import main

sys.exit(main())
