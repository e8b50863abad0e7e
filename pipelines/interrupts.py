"""Ctrl-C and SIGTERM during a build or update: said in one line, the run's temp and staging removed,
the output folder as it was, exit 130/143 (`interruptible`, used by pipelines/api.py).

Local Beam workers are this process's children and get no signal of their own (`kill PID`, a
scheduler's terminate): they are stopped too, or the runner would wait for them forever. A signal
that finds the run publishing waits for the publish (a few renames) to finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

from wikisnap.pipelines.commit import OutputFolder
from wikisnap.pipelines.errors import RunInterrupted

log = logging.getLogger("wikisnap")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while a job ran. A BaseException, as KeyboardInterrupt is, so no
    `except Exception` of a stage takes it for an error of its own: it unwinds every `finally`
    (the run's temp folder and staging are removed, the lock released) up to the API's run (pipelines/api.py)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Seconds an interrupted run gets to remove its temp folder and staging before it exits anyway
# (what is left is removed by the next run on that folder, or by `wikisnap recover`).
INTERRUPT_CLEANUP_SECONDS = 60


def stop_descendants() -> list[int]:
    """SIGTERM every process descended from this one (Beam's local worker processes); their pids.

    Linux's /proc tells the parent of each process; elsewhere nothing is found and nothing done.
    """
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])  # after "pid (name) state"
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    return found


@contextlib.contextmanager
def interruptible():
    """While the block runs, SIGINT and SIGTERM raise `Interrupted` in the main thread.

    Yields the list of signals received (Beam may wrap the exception raised inside one of its
    bundles into its own error; the list still says the run was interrupted). A second signal
    during the clean-up is noted, not raised, so the clean-up finishes. The previous handlers
    come back afterwards. Outside the main thread (a caller's worker thread) nothing changes.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        if len(received) == 1 and committing(frame):
            return  # the publish is a few renames: it finishes, then the run says so
        if len(received) == 1:
            # Local Beam workers are this process's children and got no signal of their own
            # (`kill PID`, a scheduler's terminate): the runner would wait for them forever.
            stop_descendants()
            # Beam's threads that watched those workers now fail, each with a traceback.
            threading.excepthook = _after_interrupt
            watchdog = threading.Timer(INTERRUPT_CLEANUP_SECONDS, os._exit, (128 + signum,))
            watchdog.daemon = True
            watchdog.start()  # a clean-up that hangs must not keep the process alive
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    hook = threading.excepthook
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        threading.excepthook = hook


def committing(frame) -> bool:
    """Whether `frame` (where a signal found the main thread) is inside the publish of an output
    folder, between its first rename and its manifest: stopping there would leave the folder to
    the next run's roll-back, so the signal waits for the publish to finish."""
    codes = {OutputFolder.publish.__code__, OutputFolder._recover_publish.__code__}  # noqa: SLF001
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


def _after_interrupt(args) -> None:
    """A thread's failure once the run was interrupted: a consequence, kept for -v only."""
    log.debug("after the interrupt, thread %s: %s", args.thread.name if args.thread else "?", args.exc_value)


def interrupted(out: str, signum: int) -> RunInterrupted:
    """The error saying that the run on `out` was interrupted (exit 128 + the signal)."""
    return RunInterrupted(f"interrupted ({signal.Signals(signum).name}); {out} is unchanged", signum)
