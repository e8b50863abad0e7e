"""Running a job for the command line: its summary, or one line saying what failed, and the exit code.

Shared by every command that writes an output folder (build, update), with the flags they share.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass

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
)
from wikisnap.pipelines.errors import RunFailed, UsageError

log = logging.getLogger("wikisnap")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every job that writes an output folder shares (build, update)."""
    parser.add_argument(
        "--fail-on-dead-letters",
        action="store_true",
        help="fail the run (exit 2, nothing published) when any page or line became a dead letter; "
        "for scheduled runs that must not publish partial data",
    )
    parser.add_argument(
        "--shared-temp",
        action="store_true",
        help="the temp folder is a local path that every worker of a non-local runner sees (a network "
        "mount, or a cluster whose workers all run on this machine)",
    )
    parser.add_argument(
        "--break-lock",
        action="store_true",
        help="take over the output folder's lock even if its holder cannot be shown dead (object stores, "
        "another host); only when you know that run is gone",
    )


def run_job(command: str, run_fn, summary_fn, config, manifest_line: bool = True) -> int:
    """Run a job for the CLI: print its summary, or one line saying what failed; return the exit code.

    Exit codes: 0 published; 2 bad input or usage (nothing published); 1 the environment stopped
    the run (disk full, permissions) or the run crashed; 75 another run holds the output folder.
    The traceback of a crash is printed only with -v.
    """
    verbose = log.isEnabledFor(logging.DEBUG)
    try:
        manifest = run_fn(config)
    except (UsageError, RunFailed, OutputError) as exc:
        print(f"wikisnap {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LockHeld as exc:
        print(f"wikisnap {command}: error: {exc}; try again when it has finished", file=sys.stderr)
        return EXIT_LOCKED
    except EnvironmentFailure as exc:
        print(f"wikisnap {command}: error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except Exception as exc:  # a crash inside Beam or an OSError: one line, the traceback with -v
        if verbose:
            log.exception("wikisnap %s failed", command)
        print(f"wikisnap {command}: error: {describe_failure(exc)}", file=sys.stderr)
        print(f"{config.out} is unchanged.{'' if verbose else ' Run with -v for the traceback.'}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(summary_fn(manifest))
    if manifest_line:
        print(f"manifest: {os.path.join(config.out, 'manifest.json')}")
    return 0


@dataclass(frozen=True)
class RecoverConfig:
    out: str


def recover(config: RecoverConfig) -> dict:
    """Take the folder's lock (which finishes or rolls back what dead runs left), release it."""
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
