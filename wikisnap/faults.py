"""Fault injection for tests: named points in the code that a test can make pause, fail or fill the disk.

Off unless the environment variable `WIKISNAP_FAULTS` is set, so production runs pay one dict
lookup per point. Tests switch it on for a real `wikisnap` process (and the Beam workers it
starts, which inherit the environment) to kill it at an exact moment or to make a bundle fail
once and watch the engine retry it.

`WIKISNAP_FAULTS` holds `;`-separated rules `ACTION:POINT` (POINT may end in `*`):

    pause:POINT      write `POINT.reached` into WIKISNAP_FAULTS_DIR, then sleep until killed
    hold:POINT       write `POINT.reached`, then sleep 3 s and go on (a signal sent meanwhile
                     finds the process at that point)
    fail:POINT       raise InjectedFault every time
    fail-once:POINT  raise InjectedFault the first time any process reaches POINT (a marker file
                     in WIKISNAP_FAULTS_DIR makes "first" hold across worker processes and retries)
    enospc:POINT     raise OSError(ENOSPC), as a full disk would

Points are named where they are called, e.g. `publish:before-manifest`, `read-unit:{unit name}`.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import time

ENV = "WIKISNAP_FAULTS"
ENV_DIR = "WIKISNAP_FAULTS_DIR"
HOLD_SECONDS = 3.0


class InjectedFault(RuntimeError):
    """Raised at a fault point a test asked to fail."""


def _rules() -> list[tuple[str, str]]:
    spec = os.environ.get(ENV, "")
    rules = []
    for part in spec.split(";"):
        action, _, pattern = part.strip().partition(":")
        if action and pattern:
            rules.append((action, pattern))
    return rules


def _marker(name: str) -> str:
    folder = os.environ.get(ENV_DIR) or "."
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name.replace("/", "_").replace(":", "_"))


def point(name: str) -> None:
    """A named place where a test may inject a fault (no-op unless WIKISNAP_FAULTS is set)."""
    if ENV not in os.environ:
        return
    for action, pattern in _rules():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        if action == "pause":
            with open(_marker(name + ".reached"), "w") as f:
                f.write(str(os.getpid()))
            while True:  # until the test kills this process
                time.sleep(0.05)
        elif action == "hold":
            with open(_marker(name + ".reached"), "w") as f:
                f.write(str(os.getpid()))
            time.sleep(HOLD_SECONDS)
        elif action == "fail":
            raise InjectedFault(f"injected fault at {name}")
        elif action == "fail-once":
            try:
                fd = os.open(_marker(pattern + ".failed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                continue
            os.write(fd, name.encode("utf-8"))
            os.close(fd)
            raise InjectedFault(f"injected fault (first attempt) at {name}")
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
