"""What a run says is what it did (issue 22, items 12-16): one dead-letter count everywhere, no
page dropped unsaid, a document the reader cannot read whole refused, failures of the environment
named for what they are, and interruptions said, cleaned up and given their exit codes.

The runs are real processes (`python -m wikisnap.pipelines.cli …`) on the real dumps of
tests/data, cut or edited only where the case is a bad input.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from test_strict import enwiki_parts

from conftest import ENWIKI, read_snapshot, read_xml_bytes


def wikisnap(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wikisnap.pipelines.cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


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
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["dead_lettered"] == 1


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
