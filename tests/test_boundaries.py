"""Issue 22, items 2-5, 17, 18: checksums, publish order, locks and leftovers at the boundaries.

Each test is the issue's reproduction on a real build of the bundled enwiki sample, run through
the CLI (in-process where no kill or second process is involved).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_outputs import run_cli, start
from test_update import enwiki_events, records_by_id, write_lines

from conftest import ENWIKI
from wikisnap.pipelines import commit
from wikisnap.transforms.formats import layout

TAR = "enwiki_namespace_0.tar.gz"


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def flip(path: Path, offset: int | None = None) -> int:
    """Flip one byte of `path` (the middle one by default); returns its offset."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    return at


def published(out: Path) -> list[str]:
    """What a reader finds in `out` (a failed run keeps only its report, in the control folder)."""
    if not out.exists():
        return []
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if layout.CONTROL not in p.relative_to(out).parts)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def text_base(tmp_path_factory, build):
    """The enwiki sample with NDJSON, Parquet and text, cut into several members (shard n of member n)."""
    out = tmp_path_factory.mktemp("text-base") / "base"
    code, _o, err = build([ENWIKI], out, "--formats", "ndjson,parquet,text", "--member-size-mb", "1")
    assert code == 0, err
    assert len(list((out / "parquet" / "enwiki_namespace_0").glob("*.parquet"))) >= 3
    return out


@pytest.fixture(scope="module")
def events(enwiki_build, tmp_path_factory) -> Path:
    """Real page_change events touching 3 pages of the first member of the enwiki sample."""
    records = records_by_id(enwiki_build / TAR)
    return write_lines(tmp_path_factory.mktemp("events") / "events.ndjson", enwiki_events(records))


# -- 2: every base file an update reads or copies is checked against the base's manifest ----------------


def test_a_flipped_byte_in_a_touched_base_shard_stops_the_update(enwiki_build, events, update, tmp_path):
    """The issue's reproduction: one byte flipped in the middle of `…_0.parquet`, whose member the diffs touch."""
    base = copy_tree(enwiki_build, tmp_path / "base")
    shard = base / "parquet" / "enwiki_namespace_0" / "enwiki_namespace_0_0.parquet"
    flip(shard)
    code, _stdout, err = update(base, [events], tmp_path / "out")
    assert code == 2, err
    assert str(shard) in err and "base's manifest says" in err
    assert published(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["parquet", "text", "metadata"])
def test_a_flipped_byte_in_a_copied_base_file_stops_the_update(kind, text_base, events, update, tmp_path):
    base = copy_tree(text_base, tmp_path / "base")
    damaged = {
        # member 2 is untouched by the events (pages 25, 39, 290 are in member 0): copied as bytes
        "parquet": base / "parquet" / "enwiki_namespace_0" / "enwiki_namespace_0_2.parquet",
        "text": base / "text" / "enwiki_namespace_0" / "enwiki_namespace_0_2.parquet",
        "metadata": base / "enwiki_namespace_0.json",
    }[kind]
    flip(damaged, 30 if kind == "metadata" else None)
    # no diff for enwiki: the metadata is copied with the whole snapshot
    diffs = [events] if kind != "metadata" else [write_lines(tmp_path / "none.ndjson", [{"wiki": "dewiki"}])]
    code, _stdout, err = update(base, diffs, tmp_path / "out")
    assert code == 2, err
    assert str(damaged) in err and "base's manifest says" in err
    assert published(tmp_path / "out") == []


def test_base_bytes_the_gzip_crcs_do_not_cover_are_checked_too(enwiki_build, events, update, tmp_path):
    base = copy_tree(enwiki_build, tmp_path / "base")
    flip(base / TAR, 5)  # the first gzip member's MTIME: no CRC covers it, the md5 does
    code, _stdout, err = update(base, [events], tmp_path / "out")
    assert code == 2, err
    assert str(base / TAR) in err and "base's manifest says" in err


def test_a_base_file_its_manifest_does_not_list_is_refused(enwiki_build, events, update, tmp_path):
    base = copy_tree(enwiki_build, tmp_path / "base")
    shard = base / "parquet" / "enwiki_namespace_0" / "enwiki_namespace_0_0.parquet"
    shutil.copy(shard, shard.with_name("enwiki_namespace_0_7.parquet"))
    code, _stdout, err = update(base, [events], tmp_path / "out")
    assert code == 2 and "enwiki_namespace_0_7.parquet: not listed with its md5" in err, err


# -- 3: the manifest never outlives its files --------------------------------------------------------------


def test_no_moment_of_a_publish_shows_a_manifest_whose_files_are_not_all_there(
    enwiki_build, build, tmp_path, monkeypatch
):
    """A hook after every change of --out (each move and the manifest's write) checks what a reader sees."""
    out = copy_tree(enwiki_build, tmp_path / "out")
    moments: list[str] = []

    def reader_view(what: str) -> None:
        manifest = out / layout.MANIFEST
        if not manifest.exists():
            moments.append(f"{what}: no manifest")
            return
        for entry in json.loads(manifest.read_text())["outputs"]:
            path = out / entry["path"]
            assert path.exists(), f"after {what}: manifest lists {entry['path']}, which is missing"
            assert md5(path) == entry["md5"], f"after {what}: {entry['path']} is not the manifest's"
        moments.append(f"{what}: consistent")

    real_replace, real_write = commit._replace, commit.write_atomically

    def replace(fs, src, dst):
        real_replace(fs, src, dst)
        reader_view(f"move {src} -> {dst}")

    def write(fs, path, data, temp):
        real_write(fs, path, data, temp)
        reader_view(f"write {path}")

    monkeypatch.setattr(commit, "_replace", replace)
    monkeypatch.setattr(commit, "write_atomically", write)
    # another member size: every file of the output is replaced or removed
    code, _stdout, err = build([ENWIKI], out, "--member-size-mb", "0.5")
    assert code == 0, err
    moves = [m for m in moments if m.startswith("move")]
    assert len(moves) > 4
    assert moves[0].endswith("manifest.json: no manifest")  # the old manifest went first


# -- 4: a read lock on --base ----------------------------------------------------------------------------


def wait_reached(proc, faults_dir: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not list(faults_dir.glob("*.reached")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_base_being_read_cannot_be_written_and_a_base_being_written_cannot_be_read(enwiki_build, events, tmp_path):
    base = copy_tree(enwiki_build, tmp_path / "base")
    shutil.rmtree(base / layout.CONTROL)  # copied without its control folder: the lock is made
    reader = start(
        ["update", "--base", base, events, "--out", tmp_path / "out"],
        fault="pause:rewrite-member:*",
        faults_dir=tmp_path / "f1",
    )
    try:
        wait_reached(reader, tmp_path / "f1")
        code, _stdout, err = run_cli(["build", ENWIKI, "--out", base])
        assert code == 75, err
        assert f"pid {reader.pid}" in err and "wikisnap update" in err and "reading it as its --base" in err
        code, _stdout, err = run_cli(["update", "--base", tmp_path / "other", events, "--out", base])
        assert code == 75 and "reading it as its --base" in err, err
        # two readers at once are fine: a second update of the same base gets past the lock
        second = start(
            ["update", "--base", base, events, "--out", tmp_path / "out2"],
            fault="pause:rewrite-member:*",
            faults_dir=tmp_path / "f2",
        )
        try:
            wait_reached(second, tmp_path / "f2")
        finally:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    finally:
        os.killpg(reader.pid, signal.SIGKILL)
        reader.wait()
    # a build writing the base: an update may not read it
    writer = start(["build", ENWIKI, "--out", base], fault="pause:write:tarball:*", faults_dir=tmp_path / "f3")
    try:
        wait_reached(writer, tmp_path / "f3")
        code, _stdout, err = run_cli(["update", "--base", base, events, "--out", tmp_path / "out3"])
        assert code == 75, err
        assert f"--base {base} is being written by another run" in err and f"pid {writer.pid}" in err
        assert not (tmp_path / "out3").exists()
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
    # every holder gone: the base is free again
    code, _stdout, err = run_cli(["update", "--base", base, events, "--out", tmp_path / "out4"])
    assert code == 0, err


# -- 5: --checksums that does not list an input -----------------------------------------------------------


def test_checksums_that_do_not_list_an_input_stop_the_build(build, tmp_path):
    sums = tmp_path / "md5sums.txt"
    sums.write_text(f"{'0' * 32}  enwiki-20240101-pages-articles.xml.bz2\n")
    code, _stdout, err = build([ENWIKI], tmp_path / "out", "--checksums", str(sums))
    assert code == 2, err
    assert f"{ENWIKI}: not listed in --checksums {sums}" in err and "--allow-unverified" in err
    assert not (tmp_path / "out").exists()
    code, _stdout, err = build([ENWIKI], tmp_path / "out", "--checksums", str(sums), "--allow-unverified")
    assert code == 0, err
    inputs = json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"]
    assert [i.get("verified") for i in inputs] == [False]
    # listed: verified, and no flag needed
    sums.write_text(f"{md5(ENWIKI)}  {ENWIKI.name}\n")
    code, _stdout, err = build([ENWIKI], tmp_path / "out2", "--checksums", str(sums))
    assert code == 0, err
    inputs = json.loads((tmp_path / "out2" / "manifest.json").read_text())["inputs"]
    assert [i.get("verified") for i in inputs] == [True]


# -- 17: verify finds exactly the files the manifest lists ------------------------------------------------


def test_verify_refuses_snapshot_files_the_manifest_does_not_list(enwiki_build, tmp_path):
    snap = copy_tree(enwiki_build, tmp_path / "snap")
    code, _o, err = run_cli(["verify", snap])
    assert code == 0, err
    shutil.copy(snap / TAR, snap / "frwiki_namespace_0.tar.gz")
    (snap / "parquet" / "frwiki_namespace_0").mkdir()
    shutil.copy(
        snap / "parquet" / "enwiki_namespace_0" / "enwiki_namespace_0_0.parquet",
        snap / "parquet" / "frwiki_namespace_0" / "frwiki_namespace_0_0.parquet",
    )
    (snap / "notes.txt").write_text("the user's own file, not a snapshot file\n")
    code, _o, err = run_cli(["verify", snap])
    assert code == 2
    assert "frwiki_namespace_0.tar.gz: a snapshot file that manifest.json does not list" in err
    assert "parquet/frwiki_namespace_0/frwiki_namespace_0_0.parquet: a snapshot file" in err
    assert "notes.txt" not in err


# -- 18: scratch folders of killed publishes ---------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_scratch_folders_of_killed_publishes_are_removed_by_the_next_run(enwiki_build, tmp_path, monkeypatch):
    systemp = tmp_path / "systemp"
    systemp.mkdir()
    monkeypatch.setenv("TMPDIR", str(systemp))
    proc = start(
        ["publish", enwiki_build, "--to", tmp_path / "mirror"],
        fault="pause:publish-mirror:copied:*",
        faults_dir=tmp_path / "f",
    )
    wait_reached(proc, tmp_path / "f")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in systemp.iterdir())
    assert len(left) == 1 and left[0].startswith(f"wikisnap-publish-p{proc.pid}-")
    # one of a live process stays, and so does anything not named like ours
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (systemp / f"wikisnap-publish-p{live.pid}-abc").mkdir()
        (systemp / f"wikisnap-hf-p{dead_pid()}-xyz").mkdir()
        (systemp / "wikisnap-publish-unrelated").mkdir()
        code, _o, err = run_cli(["recover", copy_tree(enwiki_build, tmp_path / "out")])
        assert code == 0, err
        assert sorted(p.name for p in systemp.iterdir()) == sorted(
            [f"wikisnap-publish-p{live.pid}-abc", "wikisnap-publish-unrelated"]
        )
        # the next publish removes them as well (a new dead one here), and leaves none of its own
        (systemp / f"wikisnap-publish-p{dead_pid()}-def").mkdir()
        code, _o, err = run_cli(["publish", enwiki_build, "--to", tmp_path / "mirror"])
        assert code == 0, err
        assert sorted(p.name for p in systemp.iterdir()) == sorted(
            [f"wikisnap-publish-p{live.pid}-abc", "wikisnap-publish-unrelated"]
        )
    finally:
        live.kill()
        live.wait()
