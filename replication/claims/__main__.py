"""`python -m replication.claims toy ...`: the old entry point of the toy-claims study, an alias of
`python replicate.py --claims toy ...` (replication/cli.py)."""

import sys

from replication.cli import claims_alias

sys.exit(claims_alias(sys.argv[1:]))
