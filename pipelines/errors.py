"""The exceptions a run raises for its user, each carrying the exit code the command line returns.

`WikisnapError` is the root: `wikisnap.build(...)` and the other API functions raise only its
subclasses (a crash inside Beam becomes `RunCrashed`), so a caller catches one class and reads
`exc.exit_code` (2 bad input or usage, 1 environment or crash, 75 locked). The subclasses that
live with their subject (`OutputError`, `EnvironmentFailure`, `LockHeld` in commit.py,
`PublishError` in snapshot.py, `DestinationError` in destinations.py, `ConfigError` in
syncconfig.py, `UpstreamError` in sync.py) derive from it too.
"""

from __future__ import annotations

EXIT_ENVIRONMENT = 1  # disk full, permissions, a crash
EXIT_BAD_INPUT = 2  # bad input or usage: nothing published
EXIT_LOCKED = 75  # sysexits' EX_TEMPFAIL: another run holds --out; a scheduler may retry later


class WikisnapError(Exception):
    """Any failure wikisnap reports to its user: a one-line message and the exit code."""

    exit_code: int = EXIT_BAD_INPUT


class UsageError(WikisnapError):
    """A mistake in the command line or inputs; the message says what to change (exit 2)."""


class RunFailed(WikisnapError):
    """The run finished but must not be trusted (bad input, counts that don't reconcile; exit 2)."""


class RunCrashed(WikisnapError):
    """The run stopped on an error wikisnap did not foresee (a worker's exception, an OSError);
    the message is one line naming it, the original is the `__cause__` (exit 1)."""

    exit_code = EXIT_ENVIRONMENT


class RunInterrupted(WikisnapError):
    """SIGINT (Ctrl-C) or SIGTERM stopped a build or update: its temp and staging were removed and the
    output folder is as it was (exit 128 + the signal: 130, 143)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
