"""The launcher's progress lines: the read phase's pages, MB/s and ETA, then the write phase's
records and members with an ETA, summed from the files the workers leave in the temp folder.

In: `progress/{unit}.json` from the readers (transforms/read.py: pages, bytes, records parsed)
and `progress/write/{bucket}.json` from the bucket writers (transforms/writeprogress.py:
records written, members finished). Out: INFO lines on the `wikisnap` logger (`-q` hides them).
Works on any runner whose temp folder the launcher can read; where it cannot, nothing is printed.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from wikisnap.transforms.formats.fs import fs_for
from wikisnap.transforms.read import fmt_eta, format_progress

log = logging.getLogger("wikisnap")


def read_states(folder: str) -> list[dict]:
    """The whole progress files (`*.json`) directly in `folder`; [] when it cannot be read."""
    states = []
    try:
        fs, path = fs_for(folder)
        names = fs.ls(path, detail=False) if fs.exists(path) else []
        # only whole files: `.partial` siblings are progress files being replaced
        for name in (n for n in names if n.endswith(".json")):
            with fs.open(name, "rb") as f:
                states.append(json.loads(f.read() or b"{}"))
    except (OSError, ValueError):
        pass  # a file being rewritten: the next tick reads it
    return states


def format_write_progress(records: int, expected: int, members: int, elapsed: float) -> str:
    """`writing: 1,234 of ~5,678 records (22%), 3 member(s), 98 records/s, ETA 40s`.

    `expected` is the records the readers parsed: duplicates and records from WME inputs (which
    leave no progress file) make it approximate, so the share shows 100% only once all are written, and the ETA stops at 0s."""
    rate = records / max(elapsed, 1e-9)
    line = f"writing: {records:,}"
    if expected:
        share = min(records / expected, 0.99) if records < expected else 1.0
        line += f" of ~{expected:,} records ({share:.0%})"
    else:
        line += " records"
    line += f", {members:,} member(s), {rate:,.0f} records/s"
    if expected and rate > 0:
        line += f", ETA {fmt_eta(max(expected - records, 0) / rate)}"
    return line


class OverallProgress:
    """Every few seconds, one line over all inputs (pages, MB/s, ETA) while they are read, then one
    over all bucket writers (records, members, ETA) whenever they have written more."""

    def __init__(self, folder: str, total_bytes: int, every: float, units: int, write_folder: str | None = None):
        self.folder = folder
        self.write_folder = write_folder
        self.total = total_bytes
        self.units = units
        self.every = max(every, 0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wikisnap-progress", daemon=True)
        self.started = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def snapshot(self) -> tuple[int, int, int]:
        """(pages, bytes read, units finished) over all progress files so far."""
        states = read_states(self.folder)
        return (
            sum(s.get("pages", 0) for s in states),
            sum(s.get("bytes", 0) for s in states),
            sum(bool(s.get("final")) for s in states),
        )

    def expected_records(self) -> int:
        """Records the readers parsed: what the writers will write, give or take duplicates."""
        return sum(s.get("records", 0) for s in read_states(self.folder))

    def write_snapshot(self) -> tuple[int, int]:
        """(records written, members finished) over all bucket writers' progress files so far."""
        if self.write_folder is None:
            return 0, 0
        states = read_states(self.write_folder)
        return sum(s.get("records", 0) for s in states), sum(s.get("members", 0) for s in states)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            pages, done, finished = self.snapshot()
            if done:
                line = format_progress("overall", pages, done, self.total or None, time.monotonic() - self.started)
                log.info("%s (%d of %d units finished)", line, finished, self.units)
            if finished >= self.units:
                log.info("all input read; writing snapshots")
                break
        if self.write_folder is None:
            return
        expected = self.expected_records()
        writing = time.monotonic()
        shown = 0
        while not self._stop.wait(self.every):
            records, members = self.write_snapshot()
            if records > shown:  # quiet while buckets are grouped and after the last record
                shown = records
                log.info("%s", format_write_progress(records, expected, members, time.monotonic() - writing))
