"""What a run says is what it did (issue 22, items 12-16): one dead-letter count everywhere, no
page dropped unsaid, a document the reader cannot read whole refused, failures of the environment
named for what they are, and interruptions said, cleaned up and given their exit codes.

The runs are real processes (`python -m wikisnap.pipelines.cli …`) on the real dumps of
tests/data, cut or edited only where the case is a bad input.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_strict import enwiki_parts

from conftest import ENWIKI, read_snapshot, read_xml_bytes, wikisnap
from wikisnap.transforms.formats import layout


def enwiki_pages() -> tuple[str, list[str], str]:
    """(header, pages, footer) of the real enwiki sample, each page's XML as in the file."""
    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    start, end = xml.index("  <page>"), xml.rindex("</mediawiki>")
    pages = ["  <page>" + p for p in xml[start:end].split("  <page>")[1:]]
    return xml[:start], pages, xml[end:]


def page_id(page: str) -> int:
    return int(re.search(r"<id>(\d+)</id>", page).group(1))


# -- 14: one dead-letter count -------------------------------------------------------------------------------


def test_a_same_revision_conflict_is_one_dead_letter_in_the_summary_and_the_failure(tmp_path):
    part_a, part_b, _page, _a, _b = enwiki_parts(tmp_path)
    done = wikisnap("-q", "build", part_a, part_b, "--out", tmp_path / "lenient")
    assert done.returncode == 0, done.stderr[-2000:]
    letters = (tmp_path / "lenient" / "deadletter" / "enwiki_deadletters.ndjson").read_text().splitlines()
    assert len(letters) == 1
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("enwiki:")]
    assert "dead-lettered 1 (of which 1 same-revision conflict(s))" in line, line
    strict = wikisnap("-q", "build", part_a, part_b, "--out", tmp_path / "strict", "--fail-on-dead-letters")
    assert strict.returncode == 2
    assert "1 dead letter(s) and --fail-on-dead-letters" in strict.stderr


# -- 15: a page left open in the middle of a file --------------------------------------------------------


def test_allow_truncated_makes_an_unclosed_page_a_dead_letter_and_names_the_file(tmp_path):
    head, pages, foot = enwiki_pages()
    n = next(i for i in range(10, 40) if "<ns>0</ns>" in pages[i] and "<redirect" not in pages[i])
    lost = page_id(pages[n])
    cut = pages[n].replace("</page>", "", 1)
    dump = tmp_path / "enwiki-unclosed.xml"
    dump.write_text(head + "".join([*pages[:n], cut, *pages[n + 1 :]]) + foot, encoding="utf-8")

    refused = wikisnap("-q", "build", dump, "--out", tmp_path / "strict")
    assert refused.returncode == 2 and "could not be read to the end" in refused.stderr

    done = wikisnap("-q", "build", dump, "--out", tmp_path / "out", "--allow-truncated")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"WARNING: --allow-truncated: only the complete part of {dump}" in done.stdout
    (letter,) = [json.loads(x) for x in (tmp_path / "out" / "deadletter" / "enwiki_deadletters.ndjson").open()]
    assert letter["page_id"] == lost and "no </page>" in letter["reason"]
    assert "<revision>" in letter["raw"] or "revision" in letter["raw"]  # what the page held is kept
    ids = {r["identifier"] for r in read_snapshot(tmp_path / "out" / "enwiki_namespace_0.tar.gz")[1]}
    assert lost not in ids
    assert "dead-lettered 1" in done.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["enwiki"]["dead_lettered"] == 1
    # every page of the file was read, up to the last one, which ends just before the error at
    # </mediawiki> (the events of the parser's last chunk before an error are not lost)
    assert manifest["inputs"][0]["pages"] == len(pages)
    assert f"the last complete page was id {page_id(pages[-1])}" in done.stdout


# -- 16: a DTD whose entities would be dropped -----------------------------------------------------------


def test_a_document_declaring_a_dtd_is_refused_whatever_the_flags(tmp_path):
    head, pages, foot = enwiki_pages()
    at = head.index("<mediawiki")
    head = head[:at] + '<!DOCTYPE mediawiki SYSTEM "ext.dtd">\n' + head[at:]
    pages[3] = pages[3].replace("</text>", " &ext; and the text after it</text>", 1)
    dump = tmp_path / "enwiki-dtd.xml"
    dump.write_text(head + "".join(pages) + foot, encoding="utf-8")
    (tmp_path / "ext.dtd").write_text('<!ENTITY ext "from the external DTD">\n')
    for flags in ([], ["--allow-truncated"]):
        done = wikisnap("-q", "build", dump, "--out", tmp_path / "out", *flags, cwd=tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"{dump}: declares a DTD" in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "out" / "manifest.json").exists()


# -- 12: a server that cannot be reached, a destination that cannot be written ------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_http_input_whose_server_refuses_says_so_exit_1(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/{ENWIKI.name}"
    done = wikisnap("-q", "build", url, "--out", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert f"{url}: could not connect to its server" in done.stderr
    assert "no such file" not in done.stderr and "Traceback" not in done.stderr


def test_sync_whose_mirror_refuses_exits_69_to_be_retried(tmp_path):
    config = tmp_path / "sync.toml"
    config.write_text(
        f'mirror = "http://127.0.0.1:{closed_port()}"\nwork = "{tmp_path / "work"}"\nwikis = ["elwikivoyage"]\n'
    )
    done = wikisnap("sync", "--config", config)
    assert done.returncode == 69, done.stderr
    assert "could not connect to the mirror" in done.stderr and "Traceback" not in done.stderr


def test_a_lasting_destination_error_says_what_is_wrong_not_to_retry():
    import errno

    from wikisnap.pipelines.publish import destination_problem

    for number, said in ((errno.EROFS, "read-only"), (errno.EACCES, "permission denied"), (errno.ENOTDIR, "a file")):
        line = destination_problem(OSError(number, os.strerror(number), "/mnt/dest/runs"), "/mnt/dest")
        assert said in line and "/mnt/dest/runs" in line and "run the same command again" not in line
    transient = destination_problem(OSError(errno.EIO, os.strerror(errno.EIO), "/mnt/dest/runs"), "/mnt/dest")
    assert "run the same command again to resume" in transient


# -- 13: Ctrl-C and SIGTERM -----------------------------------------------------------------------------------


def interrupt_build(tmp_path: Path, sig: int, workers: int, base: Path | None = None) -> tuple[int, str, Path]:
    """Start a real build of the enwiki sample, send `sig` once it is reading, wait for its exit."""
    import signal
    import time

    out = base or tmp_path / f"out-{signal.Signals(sig).name}-{workers}"
    process = subprocess.Popen(
        [sys.executable, "-m", "wikisnap.pipelines.cli", "build", ENWIKI, "--out", out, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / layout.CONTROL / layout.TMP).glob("*/*")):
        time.sleep(0.05)  # its temp folder has files: the pipeline runs
    assert process.poll() is None, process.communicate()
    time.sleep(0.5)
    process.send_signal(sig)
    _stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stderr, out


def leftovers(out: Path) -> list[str]:
    """Files under the output folder's temp and staging folders (the run's own)."""
    control = out / layout.CONTROL
    return [str(p) for p in control.rglob("*") if p.is_file() and p.relative_to(control).parts[0] in layout.RUN_AREAS]


def descendants_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.parametrize(("sig", "code", "workers"), [(2, 130, 1), (15, 143, 1), (2, 130, 2), (15, 143, 2)])
def test_an_interrupted_build_says_so_cleans_its_temp_and_exits_128_plus_the_signal(tmp_path, sig, code, workers):
    import signal

    returncode, stderr, out = interrupt_build(tmp_path, sig, workers)
    assert returncode == code, stderr[-3000:]
    name = signal.Signals(sig).name
    assert f"wikisnap build: interrupted ({name}); {out} is unchanged" in stderr
    assert "Traceback" not in stderr and "crashed" not in stderr
    assert not (out / "manifest.json").exists()
    assert leftovers(out) == []
    assert descendants_of(os.getpid()) == []  # no Beam worker of the run outlives it


def test_an_interrupted_build_leaves_the_previous_snapshot_as_it_was(enwiki_build, tmp_path):
    import shutil

    out = tmp_path / "previous"
    shutil.copytree(enwiki_build, out)
    before = {
        str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and layout.CONTROL not in p.parts
    }
    returncode, stderr, _ = interrupt_build(tmp_path, 15, 1, base=out)
    assert returncode == 143, stderr[-3000:]
    after = {
        str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and layout.CONTROL not in p.parts
    }
    assert after == before
    assert leftovers(out) == []


def test_a_signal_while_publishing_lets_the_publish_finish_and_says_so(enwiki_build, tmp_path):
    import shutil
    import signal
    import time

    out = tmp_path / "previous"
    shutil.copytree(enwiki_build, out)
    faults = tmp_path / "faults"
    env = {**os.environ, "WIKISNAP_FAULTS": "hold:publish:moved-file", "WIKISNAP_FAULTS_DIR": str(faults)}
    process = subprocess.Popen(
        [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", "build", ENWIKI, "--out", out, "--date", "20240101"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(faults.glob("*.reached")) and process.poll() is None:
        time.sleep(0.05)  # the first staged file has been renamed into --out
    process.send_signal(signal.SIGTERM)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    assert "interrupted (SIGTERM) while publishing; the publish was finished first" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["date"] == "20240101"  # this run's output, whole
    assert wikisnap("verify", out).returncode == 0
    assert leftovers(out) == []
