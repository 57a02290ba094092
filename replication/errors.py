"""Errors the suite raises itself, with the fix in the message: `replicate.py` prints these as one line.

Everything else (a torch error, a bug) keeps its traceback. Each class also derives from the builtin
exception it refines, so `except ValueError` and friends keep working.
"""

from __future__ import annotations


class ReplicationError(Exception):
    """Base: an expected failure whose message says what to do (bad input, missing data, a damaged run folder)."""


class UsageError(ReplicationError, ValueError):
    """A wrong option, setting, name or file given to the suite."""


class RunStateError(ReplicationError, RuntimeError):
    """A run folder, lock or job is not in the state the command needs (damaged, in use, failed, timed out)."""


class WaitTimeout(ReplicationError, TimeoutError):
    """Waiting for jobs took longer than the caller allowed (the jobs themselves may still finish)."""


class NotImplementedYet(ReplicationError, NotImplementedError):
    """An experiment or scheme the registry lists but the suite does not implement yet."""
