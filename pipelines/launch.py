"""Running a job for the command line: its summary, or one line saying what failed, and the exit code.

Shared by every command that writes an output folder (build, update), with the flags they share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import signal
import sys
import threading
from dataclasses import asdict, dataclass

import apache_beam as beam

from wikisnap.pipelines.commit import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_LOCKED,
    MANIFEST,
    EnvironmentFailure,
    LockHeld,
    OutputError,
    OutputFolder,
    environment_message,
    remove_dead_scratch,
)
from wikisnap.pipelines.errors import RunFailed, UsageError
from wikisnap.pipelines.options import flag_value
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import fs_for, join, write_bytes_atomic
from wikisnap.transforms.write import WriteOptions

log = logging.getLogger("wikisnap")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while a job ran. A BaseException, as KeyboardInterrupt is, so no
    `except Exception` of a stage takes it for an error of its own: it unwinds every `finally`
    (the run's temp folder and staging are removed, the lock released) up to `run_job`."""

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
            return  # the publish is a few renames: it finishes, then run_job says so
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


def interrupted(command: str, config, signum: int) -> int:
    """Say that the job was interrupted; the exit code is 128 + the signal (130 SIGINT, 143 SIGTERM)."""
    name = signal.Signals(signum).name
    print(f"wikisnap {command}: interrupted ({name}); {config.out} is unchanged", file=sys.stderr)
    return 128 + signum


def run_job(command: str, run_fn, summary_fn, config, manifest_line: bool = True) -> int:
    """Run a job for the CLI: print its summary, or one line saying what failed; return the exit code.

    Exit codes: 0 published; 2 bad input or usage (nothing published); 1 the environment stopped
    the run (disk full, permissions) or the run crashed; 75 another run holds the output folder;
    130/143 interrupted by SIGINT (Ctrl-C)/SIGTERM (the run's temp and staging removed, the
    output folder as it was). The traceback of a crash is printed only with -v.
    """
    with interruptible() as received:
        return _run_job(command, run_fn, summary_fn, config, manifest_line, received)


def _run_job(command: str, run_fn, summary_fn, config, manifest_line: bool, received: list[int]) -> int:
    verbose = log.isEnabledFor(logging.DEBUG)
    try:
        manifest = run_fn(config)
    except Interrupted as exc:
        return interrupted(command, config, exc.signum)
    except KeyboardInterrupt:  # SIGINT while a caller's own handler ran (not the program's)
        return interrupted(command, config, signal.SIGINT)
    except (UsageError, RunFailed, OutputError, layout.UnsafeName, layout.PathEscape) as exc:
        print(f"wikisnap {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LockHeld as exc:
        print(f"wikisnap {command}: error: {exc}; try again when it has finished", file=sys.stderr)
        return EXIT_LOCKED
    except EnvironmentFailure as exc:
        print(f"wikisnap {command}: error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # a crash inside Beam or an OSError: one line, the traceback with -v
        if received:  # the signal's exception was raised inside a Beam bundle and wrapped by Beam
            return interrupted(command, config, received[0])
        if verbose:
            log.exception("wikisnap %s failed", command)
        print(f"wikisnap {command}: error: {describe_failure(exc)}", file=sys.stderr)
        print(f"{config.out} is unchanged.{'' if verbose else ' Run with -v for the traceback.'}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(summary_fn(manifest))
    if manifest_line:
        print(f"manifest: {os.path.join(config.out, layout.MANIFEST)}")
    if received:  # arrived while publishing: the publish was finished first
        name = signal.Signals(received[0]).name
        print(
            f"wikisnap {command}: interrupted ({name}) while publishing; the publish was finished first, so "
            f"{config.out} holds this run's complete output",
            file=sys.stderr,
        )
        return 128 + received[0]
    return 0


@dataclass(frozen=True)
class RecoverConfig:
    out: str


def recover(config: RecoverConfig) -> dict:
    """Take the folder's lock (which finishes or rolls back what dead runs left), release it.

    A folder that does not exist is a mistake in the command (UsageError), not a clean output.
    """
    remove_dead_scratch()  # killed publishes' scratch folders in the system temp
    fs, root = fs_for(config.out)
    if not fs.isdir(root):
        what = "is a file, not an output folder" if fs.exists(root) else "does not exist"
        raise UsageError(f"{config.out} {what}: nothing to recover")
    folder = OutputFolder.open(config.out, "recover")
    folder.close()
    return {"published": folder.fs.exists(f"{folder.root}/{MANIFEST}")}


def main_recover(out: str) -> int:
    """`wikisnap recover OUT`: the exit codes and one-line failures of every job."""

    def summary(state: dict) -> str:
        return f"{out}: {'a complete wikisnap output' if state['published'] else 'no published output'}; nothing left to repair"

    return run_job("recover", recover, summary, RecoverConfig(out), manifest_line=False)


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\n]+?): '([^'\n]+)'")


def describe_failure(exc: BaseException) -> str:
    """One line for an exception that escaped a run, found in Beam's wrapped worker errors too.

    Beam re-raises a worker's exception as a RuntimeError whose text holds the remote traceback,
    so an OSError is recognised by its `[Errno N] text: 'path'` and named with its path.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None:
            return environment_message(e)
    text = "\n".join(str(e) for e in chain)
    matches = list(_ERRNO_IN_TEXT.finditer(text))
    if matches:
        match = matches[-1]  # the innermost error, nearest the worker's own frame
        number, strerror, path = int(match.group(1)), match.group(2), match.group(3)
        return environment_message(OSError(number, strerror, path))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if re.match(r"^[A-Za-z_.]+(Error|Exception|Fault)\b", line)), None)
    return f"the run crashed: {(last or (lines[-1] if lines else type(chain[0]).__name__))[:400]}"


def check_dead_letters(report: list, fail: bool) -> None:
    """With --fail-on-dead-letters: RunFailed naming the dead-letter files when the run made any."""
    files = sorted((o for kind, o in report if kind == "output" and o.kind == "deadletter"), key=lambda o: o.path)
    total = sum(o.records for o in files)
    if fail and total:
        where = ", ".join(f"{o.path} ({o.records:,})" for o in files)
        raise RunFailed(
            f"{total:,} dead letter(s) and --fail-on-dead-letters, so nothing was published; read why in {where}"
        )


# -- graph ---------------------------------------------------------------------------------


class CollectReport(beam.PTransform):
    """Small report elements → one pickle under the temp folder, read by the launcher."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, items):
        path = self.path
        return (
            items
            | "GatherReport" >> beam.combiners.ToList()
            | "WriteReport" >> beam.Map(lambda report: write_bytes_atomic(path, pickle.dumps(report)))
        )


def run_temp_dir(temp_location: str | None, beam_args: list[str], folder: OutputFolder) -> str:
    """This run's temp folder: --temp-location, else Beam's --temp_location, else OUT/.wikisnap/tmp."""
    # On a cluster, Beam's own --temp_location (shared storage) is the natural home of spill runs.
    beam_temp = flag_value(beam_args, "--temp_location")
    if temp_location:
        return join(temp_location, folder.run_id)
    if beam_temp:
        return join(beam_temp, "wikisnap", folder.run_id)
    return folder.temp


def manifest_outputs(outputs: list, staging: str) -> list[dict]:
    """The manifest's `outputs`: each file with its path relative to the output folder."""
    return [
        {k: v for k, v in asdict(o).items() if v is not None} | {"path": relative_path(o.path, staging)}
        for o in outputs
    ]


def relative_path(path: str, base: str) -> str:
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def write_options(
    out_dir: str,
    temp_dir: str,
    date: str | None,
    member_size_mb: float,
    formats,
    gzip_level: int,
    text_namespaces,
    sites: dict,
    **extra,
) -> WriteOptions:
    """The writers' options of a build or an update: `date` YYYYMMDD (None: from the records),
    `sites` {db: SiteInfo}; `extra` passes the build's own (categories, coverage)."""
    snapshot_date = f"{date[:4]}-{date[4:6]}-{date[6:]}T00:00:00Z" if date else None
    return WriteOptions(
        out_dir=out_dir,
        temp_dir=temp_dir,
        member_bytes=int(member_size_mb * 1_000_000),
        formats=frozenset(formats),
        snapshot_date=snapshot_date,
        gzip_level=gzip_level,
        text_namespaces=frozenset(text_namespaces),
        sites=tuple(sorted(sites.items())),
        **extra,
    )
