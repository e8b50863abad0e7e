"""All-or-nothing outputs: staging, verification, publish with the manifest last, the lock, `--out` checks.

The kill tests run a real `wikisnap` process, stop it at an exact moment through a fault point
(wikisnap/faults.py: the process writes a marker and sleeps there) and SIGKILL its whole process
group; then they compare every byte under `--out` with what was there before.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from conftest import ENWIKI, cli, read_xml_bytes
from wikisnap.pipelines.commit import CONTROL

ROOT = Path(__file__).resolve().parents[1]


def tree(out: Path) -> dict[str, str]:
    """Every file under `out` but the control folder → sha256 of its bytes."""
    found = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if rel.parts[0] == CONTROL or not path.is_file():
            continue
        found[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def data_files(out: Path) -> dict[str, str]:
    """`tree` without the manifest (whose timing differs between runs)."""
    return {k: v for k, v in tree(out).items() if k != "manifest.json"}


def start(args: list[str], fault: str | None = None, faults_dir: Path | None = None) -> subprocess.Popen:
    """A real `wikisnap` process in its own process group (so its Beam workers die with it)."""
    env = dict(os.environ)
    if fault:
        env["WIKISNAP_FAULTS"] = fault
        env["WIKISNAP_FAULTS_DIR"] = str(faults_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_cli(args: list[str], timeout: float = 300, **kw) -> tuple[int, str, str]:
    proc = start(args, **kw)
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def kill_at(args: list[str], point: str, faults_dir: Path, timeout: float = 120) -> None:
    """Start wikisnap, wait until it reaches fault point `point`, SIGKILL its process group."""
    proc = start(args, fault=f"pause:{point}", faults_dir=faults_dir)
    deadline = time.monotonic() + timeout
    while not list(faults_dir.glob("*.reached")):
        if proc.poll() is not None:
            raise AssertionError(f"wikisnap ended before {point}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{point} not reached in {timeout} s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    for marker in faults_dir.glob("*.reached"):
        marker.unlink()


@pytest.fixture
def good_out(tmp_path, enwiki_build):
    """A folder holding a complete, published build of the enwiki sample (copied from the session build)."""
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(enwiki_build), str(out)], check=True)
    return out


# -- finding 1: non-atomic writes ---------------------------------------------------------------------------


def test_kill_while_the_tarball_is_written_leaves_out_as_it_was(good_out, tmp_path):
    before = tree(good_out)
    # A different member size, so the killed run would have written other bytes under the same names.
    kill_at(["build", ENWIKI, "--out", good_out, "--member-size-mb", "0.5"], "write:tarball:*_1.ndjson", tmp_path / "f")
    assert tree(good_out) == before
    # The half-written tarball sits in the run's staging folder, never under its final name.
    staged = list((good_out / CONTROL / "staging").rglob("*.tar.gz*"))  # .partial until whole
    assert staged and all(".wikisnap" in str(p) for p in staged)
    # The next run clears what the killed one left and gives the bytes of a clean run.
    code, _out, err = cli("build", ENWIKI, "--out", good_out, "--member-size-mb", "0.5")
    assert code == 0, err
    assert not (good_out / CONTROL / "staging").exists() or not any((good_out / CONTROL / "staging").iterdir())
    clean = tmp_path / "clean"
    code, _out, err = cli("build", ENWIKI, "--out", clean, "--member-size-mb", "0.5")
    assert code == 0, err
    assert data_files(good_out) == data_files(clean)
    manifest = json.loads((good_out / "manifest.json").read_text())
    assert sorted(o["path"] for o in manifest["outputs"]) == sorted(data_files(good_out))


@pytest.mark.parametrize("point", ["publish:before-journal", "publish:moved-file", "publish:before-manifest"])
def test_kill_while_publishing_is_rolled_back(good_out, tmp_path, point):
    before = tree(good_out)
    kill_at(["build", ENWIKI, "--out", good_out, "--member-size-mb", "0.5"], point, tmp_path / "f")
    if point != "publish:before-journal":
        # Mid-publish: the old manifest is gone, so no reader takes the half-moved files for a commit.
        assert not (good_out / "manifest.json").exists()
    code, stdout, stderr = cli("recover", good_out)
    assert code == 0, stderr
    assert tree(good_out) == before
    assert not (good_out / CONTROL / "commit.json").exists()


def test_kill_after_the_manifest_keeps_the_new_output(good_out, tmp_path):
    kill_at(["build", ENWIKI, "--out", good_out, "--member-size-mb", "0.5"], "publish:after-manifest", tmp_path / "f")
    manifest = json.loads((good_out / "manifest.json").read_text())
    code, _stdout, stderr = cli("recover", good_out)
    assert code == 0, stderr
    assert sorted(o["path"] for o in manifest["outputs"]) == sorted(data_files(good_out))
    for entry in manifest["outputs"]:
        assert hashlib.md5((good_out / entry["path"]).read_bytes()).hexdigest() == entry["md5"]
    assert len([o for o in manifest["outputs"] if o["kind"] == "parquet"]) > 1  # the 0.5 MB members


def test_full_disk_leaves_out_as_it_was(good_out, tmp_path):
    """`--out` on a small tmpfs, temp elsewhere: the run fails with one line and `--out` is unchanged."""
    mount = tmp_path / "small"
    mount.mkdir()
    # Room for the previous output and half a megabyte more: the new one cannot be staged beside it.
    room = sum(p.stat().st_size for p in good_out.rglob("*") if p.is_file()) // 1024 + 512
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room}k", "tmpfs", str(mount)]).returncode == 0
    try:
        if mounted:
            out = mount / "out"
            subprocess.run(["cp", "-a", str(good_out), str(out)], check=True)
            before = tree(out)
            code, _stdout, stderr = run_cli(["build", ENWIKI, "--out", out, "--temp-location", tmp_path / "tmp"])
        else:  # no privilege to mount: the same failure injected where the tarball is written
            out = good_out
            before = tree(out)
            code, _stdout, stderr = run_cli(
                ["build", ENWIKI, "--out", out], fault="enospc:write:tarball:*", faults_dir=tmp_path / "f"
            )
        assert code == 1, stderr
        assert "No space left on device" in stderr and str(out) in stderr
        assert "Traceback" not in stderr
        assert tree(out) == before
        assert not list((out / CONTROL).rglob("*.tar.gz*"))  # the partial outputs were removed
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=True)


# -- finding 2: stale files, the lock, leftovers -----------------------------------------------------------


def test_files_of_the_previous_run_are_removed(tmp_path, build):
    out = tmp_path / "out"
    code, _o, err = build([ENWIKI], out, "--member-size-mb", "0.2")
    assert code == 0, err
    assert len(list((out / "parquet").rglob("*.parquet"))) > 5
    code, _o, err = build([ENWIKI], out)
    assert code == 0, err
    shards = sorted((out / "parquet").rglob("*.parquet"))
    assert len(shards) == 1
    assert ds.dataset(out / "parquet", format="parquet").count_rows() == 106
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(o["path"] for o in manifest["outputs"]) == sorted(data_files(out))


def test_a_second_run_into_the_same_out_is_refused_while_the_first_holds_it(tmp_path):
    out = tmp_path / "out"
    faults_dir = tmp_path / "f"
    first = start(["build", ENWIKI, "--out", out], fault="pause:write:tarball:*", faults_dir=faults_dir)
    try:
        deadline = time.monotonic() + 120
        while not list(faults_dir.glob("*.reached")):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        code, _stdout, stderr = run_cli(["build", ENWIKI, "--out", out, "--member-size-mb", "0.5"])
        assert code == 75
        assert f"pid {first.pid}" in stderr and "wikisnap build" in stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # Its holder is gone: the lock is stale and the next run takes it over with a warning.
    code, _stdout, stderr = run_cli(["build", ENWIKI, "--out", out])
    assert code == 0, stderr
    assert "taking over a stale lock" in stderr and f"pid {first.pid}" in stderr


def test_out_must_be_new_empty_or_a_wikisnap_output(tmp_path, build):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    code, _o, err = build([ENWIKI], foreign)
    assert code == 2 and "not a wikisnap output" in err and "holiday.jpg" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _o, err = build([ENWIKI], a_file)
    assert code == 2 and "is a file" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _o, err = build([ENWIKI], empty)
    assert code == 0, err


def test_a_user_mistake_leaves_no_trace(tmp_path, build):
    out = tmp_path / "new"
    code, _o, err = build([tmp_path / "missing.xml.bz2"], out)
    assert code == 2
    assert not out.exists()


# -- finding 3: a failed build writes nothing into --out -------------------------------------------------


def test_a_failed_build_keeps_its_dead_letters_out_of_out(good_out, tmp_path, build):
    raw = read_xml_bytes(ENWIKI)
    # A dead letter (a page without revision) and a truncated file in one run.
    start_page = raw.index(b"<page>", raw.index(b"<page>") + 1)
    end_page = raw.index(b"</page>", start_page) + len(b"</page>")
    page = raw[start_page:end_page]
    broken = raw[:start_page] + page[: page.index(b"<revision>")] + b"</page>" + raw[end_page:]
    cut = tmp_path / "enwiki-cut.xml"
    cut.write_bytes(broken[: len(broken) * 2 // 3])
    before = tree(good_out)
    code, _o, err = build([cut], good_out)
    assert code == 2, err
    assert "nothing was published" in err
    assert tree(good_out) == before
    assert not (good_out / "deadletter").exists()
    staging = next(line.rsplit(" ", 1)[-1] for line in err.splitlines() if "report are in" in line)
    assert Path(staging, "report.json").exists()
    assert list(Path(staging).rglob("*_deadletters.ndjson"))
    # The next run removes the failed run's staging folder.
    code, _o, err = build([ENWIKI], good_out)
    assert code == 0, err
    assert not Path(staging).exists()


# -- finding 4 (output side): --base and --out ------------------------------------------------------------


def test_out_as_a_symlink_to_base_is_refused(good_out, tmp_path, update):
    link = tmp_path / "link"
    link.symlink_to(good_out)
    before = tree(good_out)
    events = Path(__file__).parent / "data" / "events" / "polars-guide__enwiki-recentchange-100.ndjson"
    code, _o, err = update(good_out, [events], link)
    assert code == 2 and "same folder as --base" in err
    assert tree(good_out) == before


def test_base_without_manifest_is_refused(good_out, tmp_path, update):
    (good_out / "manifest.json").unlink()
    events = Path(__file__).parent / "data" / "events" / "polars-guide__enwiki-recentchange-100.ndjson"
    code, _o, err = update(good_out, [events], tmp_path / "new")
    assert code == 2 and "has no manifest.json" in err
    assert not (tmp_path / "new").exists()


# -- finding 5 (environment side): read-only --out --------------------------------------------------------


def test_read_only_out_fails_before_reading_any_input(tmp_path, build):
    mount = tmp_path / "ro"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)]).returncode != 0:
        os.chmod(mount, 0o555)  # without mount rights: permissions, effective unless running as root
        assert os.geteuid() != 0, "as root, this test needs the right to mount a read-only tmpfs"
    try:
        # An input that does not exist: reached only if --out were not checked first.
        code, _stdout, stderr = run_cli(["build", tmp_path / "missing.xml.bz2", "--out", mount / "out"])
        assert code == 1, stderr
        assert "cannot write to --out" in stderr and "Read-only file system" in stderr
        assert "missing.xml.bz2" not in stderr
    finally:
        subprocess.run(["umount", str(mount)])


# -- object stores: the same protocol through fsspec (data first, manifest last) -------------------------


def test_publish_through_fsspec_lists_exactly_what_is_there(build):
    import fsspec

    fs = fsspec.filesystem("memory")
    out = "memory://wikisnap-test/out"
    try:
        code, _o, err = build([ENWIKI], out, "--member-size-mb", "0.5")
        assert code == 0, err
        code, _o, err = build([ENWIKI], out)
        assert code == 0, err
        manifest = json.loads(fs.cat("/wikisnap-test/out/manifest.json"))
        on_store = sorted(
            p[len("/wikisnap-test/out/") :] for p in fs.find("/wikisnap-test/out") if f"/{CONTROL}/" not in p
        )
        assert on_store == sorted([o["path"] for o in manifest["outputs"]] + ["manifest.json"])
        for entry in manifest["outputs"]:
            assert hashlib.md5(fs.cat(f"/wikisnap-test/out/{entry['path']}")).hexdigest() == entry["md5"]
        assert not fs.exists(f"/wikisnap-test/out/{CONTROL}/lock")  # released
    finally:
        fs.rm("/wikisnap-test", recursive=True)


def test_update_publishes_through_the_same_protocol(good_out, tmp_path):
    """`update` stages and commits like `build`: a kill while it publishes is rolled back."""
    events = Path(__file__).parent / "data" / "events" / "polars-guide__enwiki-recentchange-100.ndjson"
    out = tmp_path / "updated"
    code, _o, err = cli("update", "--base", good_out, events, "--out", out)
    assert code == 0, err
    before = tree(out)
    kill_at(
        ["update", "--base", good_out, events, "--out", out, "--date", "20240101"], "publish:moved-file", tmp_path / "f"
    )
    assert not (out / "manifest.json").exists()
    code, _o, err = cli("update", "--base", good_out, events, "--out", out)
    assert code == 0, err
    assert "restoring the previous output" in err
    assert data_files(out) == {k: v for k, v in before.items() if k != "manifest.json"}
