"""The two exceptions every job raises for its user: what to change, and what must not be trusted."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in the command line or inputs; the message says what to change."""


class RunFailed(Exception):
    """The run finished but must not be trusted (bad input, counts that don't reconcile)."""
