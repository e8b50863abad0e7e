"""Progress through the write phase: bucket writers leave their records and members in the temp
folder (transforms/writeprogress.py); the launcher prints them with an ETA (pipelines/progress.py)."""

from __future__ import annotations

import json
import logging
import re
import time

from conftest import ENWIKI, ENWIKTIONARY, wikisnap
from wikisnap.pipelines.progress import OverallProgress, format_write_progress
from wikisnap.transforms.formats.fs import write_bytes_atomic
from wikisnap.transforms.writeprogress import WriteProgress

WRITING = re.compile(r"^\d\d:\d\d:\d\d INFO writing: [\d,]+ of ~[\d,]+ records \(\d+%\), [\d,]+ member\(s\), .*ETA ")


def test_the_write_line_says_records_of_those_parsed_and_an_eta():
    line = format_write_progress(250, 1000, 3, 10.0)
    assert line == "writing: 250 of ~1,000 records (25%), 3 member(s), 25 records/s, ETA 30s"
    # duplicates make the readers' count approximate: 100% only once all are written, ETA never negative
    assert "(99%)" in format_write_progress(999, 1000, 3, 1.0)
    assert "(100%)" in format_write_progress(1001, 1000, 3, 1.0) and "ETA 0s" in format_write_progress(1001, 1000, 3, 1)
    assert format_write_progress(5, 0, 1, 1.0) == "writing: 5 records, 1 member(s), 5 records/s"


def test_a_writer_leaves_whole_files_at_most_every_few_seconds_and_at_the_end(tmp_path):
    path = tmp_path / "progress" / "write" / "enwiki_namespace_0-000000.json"
    progress = WriteProgress(str(path), 60.0)
    progress(10, 0)
    assert not path.exists()  # not yet a minute
    progress(20, 1, final=True)
    assert json.loads(path.read_text()) == {"records": 20, "members": 1, "final": True}
    # best effort: a progress file that cannot be written never fails the bucket
    (tmp_path / "a-file").write_text("")
    WriteProgress(str(tmp_path / "a-file" / "x.json"), 0)(1, 0, final=True)


def test_the_launcher_prints_the_write_phase_after_the_read_phase(tmp_path, caplog):
    folder = tmp_path / "progress"
    write_bytes_atomic(str(folder / "unit-1.json"), b'{"pages": 10, "bytes": 100, "records": 8, "final": true}')
    watcher = OverallProgress(str(folder), 100, 0.5, 1, str(folder / "write"))
    with caplog.at_level(logging.INFO, logger="wikisnap"):
        watcher.start()
        try:
            time.sleep(0.7)  # the first tick finds the reading done
            write_bytes_atomic(str(folder / "write" / "b1.json"), b'{"records": 4, "members": 1, "final": false}')
            deadline = time.monotonic() + 10
            while not any("writing:" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            watcher.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "all input read; writing snapshots" in messages
    writing = [m for m in messages if m.startswith("writing:")]
    assert writing and writing[0].startswith("writing: 4 of ~8 records (50%), 1 member(s), ") and "ETA" in writing[0]
    assert messages.index("all input read; writing snapshots") < messages.index(writing[0])
    # the readers' sum is not disturbed by the writers' folder below it
    assert watcher.snapshot() == (10, 100, 1)


def test_a_build_leaves_every_buckets_final_progress(tmp_path, build):
    code, _, err = build([ENWIKI], tmp_path / "out", "--keep-temp", "--member-size-mb", "0.5")
    assert code == 0, err
    states = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("*.json") if p.parent.name == "write"]
    assert states and all(s["final"] for s in states)
    assert sum(s["records"] for s in states) == 106 and sum(s["members"] for s in states) > 1


def test_a_build_prints_progress_lines_while_it_writes(tmp_path, monkeypatch):
    # the bucket writer holds 3 s after its last record (wikisnap/faults.py): on an idle machine
    # this sample is written faster than one tick of the launcher
    monkeypatch.setenv("WIKISNAP_FAULTS", "hold:write-bucket:*_0-000000")  # namespace 0, bucket 0
    monkeypatch.setenv("WIKISNAP_FAULTS_DIR", str(tmp_path / "faults"))
    done = wikisnap("build", ENWIKTIONARY, "--out", tmp_path / "out", "--workers", "1", "--progress-seconds", "0.5")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    start = lines.index(next(line for line in lines if line.endswith("all input read; writing snapshots")))
    assert any(WRITING.match(line) for line in lines[start + 1 :]), done.stderr
