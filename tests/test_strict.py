"""Strictness of `update` (and `build`): cut-off or corrupt diffs and base snapshots fail the run.

Every bad input here is made from real data (the enwiki sample, its build, its records): a file
cut at a byte offset, a byte flipped, an empty file. A failing run must exit 2 with one message
naming the file and the byte (or member), never a traceback, and publish nothing.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from pathlib import Path

import pytest

from conftest import ENWIKI, read_snapshot
from wikisnap.transforms.update.batches import batch_tarball

PUBLISHED = ("manifest.json", "enwiki_namespace_0.tar.gz", "enwiki_namespace_0.json", "batches", "parquet")


def base_records(base: Path) -> list[dict]:
    return read_snapshot(base / "enwiki_namespace_0.tar.gz")[1]


def published(out: Path) -> list[str]:
    return sorted(name for name in PUBLISHED if (out / name).exists())


def assert_one_clear_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in stderr, (needle, stderr)


def gzip_member_ends(data: bytes) -> list[int]:
    """Byte offsets where the gzip members of `data` end."""
    ends, offset = [], 0
    while offset < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[offset:])
        offset = len(data) - len(d.unused_data)
        ends.append(offset)
    return ends


@pytest.fixture(scope="session")
def forty_updates(enwiki_build, tmp_path_factory) -> Path:
    """A WME hourly batch of 40 `update` records: real base records with a newer revision."""
    records = base_records(enwiki_build)[:40]
    lines = []
    for n, record in enumerate(records):
        record = json.loads(json.dumps(record))
        record["version"]["identifier"] += 10_000_000
        record["date_modified"] = f"2030-01-01T00:{n:02d}:00Z"
        record["event"] = {"identifier": f"e{n}", "type": "update", "date_published": record["date_modified"]}
        record["abstract"] = f"Updated abstract {n}."
        lines.append((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path = tmp_path_factory.mktemp("batch") / "enwiki_namespace_0.tar.gz"
    path.write_bytes(batch_tarball("enwiki_namespace_0", lines, 20_000, 0))
    return path


def cut(src: Path, dest: Path, fraction: float | None = None, at: int | None = None) -> tuple[Path, int]:
    data = src.read_bytes()
    at = int(len(data) * fraction) if at is None else at
    dest.write_bytes(data[:at])
    return dest, at


# -- diffs ---------------------------------------------------------------------------------------------


def test_whole_batch_applies_all_forty(enwiki_build, update, forty_updates, tmp_path):
    code, _stdout, stderr = update(enwiki_build, [forty_updates], tmp_path / "out")
    assert code == 0, stderr
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["updated"] == 40


def test_batch_cut_at_60_percent_fails_and_publishes_nothing(enwiki_build, update, forty_updates, tmp_path):
    diff, at = cut(forty_updates, tmp_path / "cut.tar.gz", 0.6)
    out = tmp_path / "out"
    code, _stdout, stderr = update(enwiki_build, [diff], out)
    assert_one_clear_error(code, stderr, str(diff), "cut off or corrupt", f"at byte {at:,}", "--allow-truncated")
    assert published(out) == []


def test_batch_cut_between_members_fails(enwiki_build, update, forty_updates, tmp_path):
    # Cut right after a data member: gzip sees nothing wrong, only the missing tar end blocks tell.
    ends = gzip_member_ends(forty_updates.read_bytes())
    diff, at = cut(forty_updates, tmp_path / "cut.tar.gz", at=ends[-4])
    out = tmp_path / "out"
    code, _stdout, stderr = update(enwiki_build, [diff], out)
    assert_one_clear_error(code, stderr, str(diff), "no end-of-archive block", f"at byte {at:,}")
    assert published(out) == []


def test_allow_truncated_applies_the_complete_part_and_says_so(enwiki_build, update, forty_updates, tmp_path):
    diff, _at = cut(forty_updates, tmp_path / "cut.tar.gz", 0.6)
    out = tmp_path / "out"
    code, stdout, stderr = update(enwiki_build, [diff], out, "--allow-truncated")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (entry,) = manifest["diffs"]
    assert str(diff) in entry["error"] and "cut off" in entry["error"]
    assert "only the complete part of" in stdout and str(diff) in stdout
    applied = manifest["counts"]["enwiki"]["updated"]
    assert 0 < applied < 40
    # exactly the complete lines of the cut tarball were applied
    after = {r["identifier"]: r for r in base_records(out)}
    assert sum(1 for r in after.values() if r.get("abstract", "").startswith("Updated abstract")) == applied


def test_cut_off_xml_bz2_diff_fails(enwiki_build, update, tmp_path):
    diff, _at = cut(ENWIKI, tmp_path / "enwiki-incr.xml.bz2", 0.6)
    out = tmp_path / "out"
    code, _stdout, stderr = update(enwiki_build, [diff], out)
    assert_one_clear_error(code, stderr, str(diff), "at byte", "the last complete page was id", "--allow-truncated")
    assert published(out) == []


def enwiki_page_changes(base: Path, n: int) -> list[dict]:
    """`n` page_change edits of real pages of the base (their own text, a newer revision)."""
    events = []
    for k, record in enumerate(base_records(base)[:n]):
        events.append(
            {
                "$schema": "/mediawiki/page/change/1.2.0",
                "dt": f"2030-01-01T01:{k % 60:02d}:00Z",
                "page_change_kind": "edit",
                "wiki_id": "enwiki",
                "meta": {"stream": "mediawiki.page_change.v1"},
                "page": {"page_id": record["identifier"], "page_title": record["name"], "namespace_id": 0},
                "revision": {
                    "rev_id": record["version"]["identifier"] + 10_000_000,
                    "rev_dt": f"2030-01-01T01:{k % 60:02d}:00Z",
                    "content_slots": {"main": {"content_body": record["article_body"]["wikitext"]}},
                },
            }
        )
    return events


def test_cut_off_ndjson_gz_events_fail_with_the_file_named(enwiki_build, update, tmp_path):
    data = "".join(json.dumps(e) + "\n" for e in enwiki_page_changes(enwiki_build, 30)).encode()
    whole = tmp_path / "events.ndjson.gz"
    whole.write_bytes(gzip.compress(data))
    diff, _at = cut(whole, tmp_path / "cut-events.ndjson.gz", 0.6)
    out = tmp_path / "out"
    code, _stdout, stderr = update(enwiki_build, [diff], out)
    assert_one_clear_error(code, stderr, str(diff), "gzip data is cut off or corrupt after line", "at byte")
    assert len(stderr.strip().splitlines()) <= 3, stderr
    assert published(out) == []


def test_plain_ndjson_cut_inside_a_line_fails(enwiki_build, update, tmp_path):
    data = "".join(json.dumps(e) + "\n" for e in enwiki_page_changes(enwiki_build, 5)).encode()
    diff = tmp_path / "cut-events.ndjson"
    diff.write_bytes(data[: len(data) - 200])
    code, _stdout, stderr = update(enwiki_build, [diff], tmp_path / "out")
    assert_one_clear_error(code, stderr, str(diff), "ends inside line 5", "cut off")


# -- the base ------------------------------------------------------------------------------------------


def copy_base(enwiki_build: Path, dest: Path) -> Path:
    shutil.copytree(enwiki_build, dest)
    return dest


@pytest.mark.parametrize("damage", ["empty", "cut", "corrupt"])
def test_damaged_base_fails_naming_the_tarball(enwiki_build, update, tmp_path, damage):
    base = copy_base(enwiki_build, tmp_path / "base")
    tarball = base / "enwiki_namespace_0.tar.gz"
    data = tarball.read_bytes()
    if damage == "empty":
        tarball.write_bytes(b"")
    elif damage == "cut":
        tarball.write_bytes(data[: int(len(data) * 0.6)])
    else:
        # flip bytes in the middle of the deflate data of the big data member
        middle = len(data) // 2
        tarball.write_bytes(data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 64]) + data[middle + 64 :])
    diff = tmp_path / "events.ndjson"
    diff.write_text("".join(json.dumps(e) + "\n" for e in enwiki_page_changes(enwiki_build, 3)))
    out = tmp_path / "out"
    for flags in ([], ["--allow-truncated"]):  # a damaged base is never excused
        code, _stdout, stderr = update(base, [diff], out, *flags)
        assert_one_clear_error(code, stderr, str(tarball), "base snapshot", "restore the base")
        assert published(out) == []
    if damage == "corrupt":  # same size as its manifest says: found while reading the members
        assert "at byte" in stderr or "starting at byte" in stderr
    else:  # another size than its manifest says: refused before any record is read
        assert f"file has {len(data) * 6 // 10 if damage == 'cut' else 0:,} bytes but its manifest says" in stderr


def test_untouched_damaged_base_is_caught_by_its_metadata_md5(enwiki_build, update, tmp_path):
    # No diff touches the snapshot, so it is copied as bytes: its metadata's md5 must match.
    from conftest import DATA

    base = copy_base(enwiki_build, tmp_path / "base")
    tarball = base / "enwiki_namespace_0.tar.gz"
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    recentchange = DATA / "events" / "polars-guide__enwiki-recentchange-100.ndjson"
    out = tmp_path / "out"
    code, _stdout, stderr = update(base, [recentchange], out)
    assert_one_clear_error(code, stderr, str(tarball), "but the base's manifest says", "damaged")
    assert published(out) == []


# -- dead letters ----------------------------------------------------------------------------------------


def test_every_line_a_dead_letter_is_said_and_can_fail(enwiki_build, update, tmp_path):
    diff = tmp_path / "junk.ndjson"
    diff.write_text('{"not": "an event"}\n{"$schema": "/other/1.0.0"}\n[1]\n')
    code, stdout, stderr = update(enwiki_build, [diff], tmp_path / "out")
    assert code == 0, stderr
    assert "every diff line became a dead letter (3)" in stdout
    code, _stdout, stderr = update(enwiki_build, [diff], tmp_path / "strict", "--fail-on-dead-letters")
    assert_one_clear_error(code, stderr, "3 dead letter(s)", "unknown_deadletters.ndjson")
    assert published(tmp_path / "strict") == []


def test_build_fails_on_dead_letters_when_asked(build, tmp_path):
    flags = ("--max-page-bytes", "150000")
    code, _stdout, stderr = build([ENWIKI], tmp_path / "lenient", *flags)
    assert code == 0, stderr
    dead = json.loads((tmp_path / "lenient" / "manifest.json").read_text())["counts"]["enwiki"]["dead_lettered"]
    assert dead > 0
    code, _stdout, stderr = build([ENWIKI], tmp_path / "strict", *flags, "--fail-on-dead-letters")
    assert_one_clear_error(code, stderr, f"{dead:,} dead letter(s)", "enwiki_deadletters.ndjson")
    assert published(tmp_path / "strict") == []


# -- same page, same revision, different text ---------------------------------------------------------------


def enwiki_parts(tmp_path: Path) -> tuple[Path, Path, int, str, str]:
    """Two real parts of the enwiki sample overlapping on 20 pages; in the second, one article
    of the overlap has other text under the same page id and revision id.
    Returns (part a, part b, the page id, its text in a, its text in b)."""
    import re

    from conftest import read_xml_bytes

    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    start = xml.index("  <page>")
    head, pages = xml[:start], ["  <page>" + p for p in xml[start:].split("  <page>")[1:]]
    pages[-1] = pages[-1].replace("</mediawiki>", "")
    overlap = range(40, 60)
    n = next(i for i in overlap if "<redirect" not in pages[i] and "<ns>0</ns>" in pages[i])
    page_id = int(re.search(r"<id>(\d+)</id>", pages[n]).group(1))
    text_a = re.search(r"<text[^>]*>(.*?)</text>", pages[n], re.S).group(1)
    changed = pages[n].replace(text_a, "A different text of the same revision. " + text_a, 1)
    part_a = tmp_path / "mirror-a" / "enwiki-part.xml"
    part_b = tmp_path / "mirror-b" / "enwiki-part.xml"
    for path, chosen in ((part_a, pages[:60]), (part_b, [*pages[40:n], changed, *pages[n + 1 : 100]])):
        path.parent.mkdir()
        path.write_text(head + "".join(chosen) + "</mediawiki>\n", encoding="utf-8")
    unescape = {"&lt;": "<", "&gt;": ">", "&quot;": '"', "&amp;": "&"}
    text_a = re.sub(r"&(lt|gt|quot|amp);", lambda m: unescape[m.group(0)], text_a)
    return part_a, part_b, page_id, text_a, "A different text of the same revision. " + text_a


def test_same_revision_with_other_text_has_one_winner_whatever_the_order(build, tmp_path):
    import hashlib

    part_a, part_b, page_id, text_a, text_b = enwiki_parts(tmp_path)
    runs = {}
    for name, order in (("ab", [part_a, part_b]), ("ba", [part_b, part_a])):
        out = tmp_path / name
        code, _stdout, stderr = build(order, out)
        assert code == 0, stderr
        runs[name] = out
    files = sorted(
        str(p.relative_to(runs["ab"])) for p in runs["ab"].rglob("*") if p.is_file() and p.name != "manifest.json"
    )
    assert "deadletter/enwiki_deadletters.ndjson" in files
    for name in files:
        assert (runs["ab"] / name).read_bytes() == (runs["ba"] / name).read_bytes(), name
    # the smaller wikitext SHA-1 wins
    sha = {t: hashlib.sha1(t.encode("utf-8")).hexdigest() for t in (text_a, text_b)}
    kept, lost = sorted((text_a, text_b), key=sha.get)
    record = next(r for r in read_snapshot(runs["ab"] / "enwiki_namespace_0.tar.gz")[1] if r["identifier"] == page_id)
    assert record["article_body"]["wikitext"] == kept
    (letter,) = [json.loads(x) for x in (runs["ab"] / "deadletter" / "enwiki_deadletters.ndjson").open()]
    loser, winner = (part_a, part_b) if lost == text_a else (part_b, part_a)
    assert letter["source"] == str(loser) and str(winner) in letter["reason"]
    assert letter["page_id"] == page_id and letter["raw"] == lost and "conflict" in letter["reason"]
    counts = json.loads((runs["ab"] / "manifest.json").read_text())["counts"]["enwiki"]
    # 20 pages in both parts: articles among them are duplicates, but one is a conflict
    assert counts["conflicts"] == 1
    assert counts.get("dead_lettered", 0) == 0  # a conflict is counted once, as a conflict
    parsed = sum(v for k, v in counts.items() if k.startswith("records/") and k.endswith("/parsed"))
    assert parsed == counts["records/ns0/written"] + counts["duplicates_superseded"] + 1


# -- reading over HTTP ----------------------------------------------------------------------------------------


def snapshot_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".gz", ".json", ".parquet") and p.name != "manifest.json"
    }


def test_multistream_over_http_without_range_support_is_read_as_one_stream(build, tmp_path):
    from httpserver import LoopbackServer

    from conftest import MULTISTREAM

    multi = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"
    assert build([multi], tmp_path / "local", "--workers", "2")[0] == 0
    with LoopbackServer(MULTISTREAM, ranges=False) as server:
        url = server.url(multi.name)
        code, _stdout, stderr = build([url], tmp_path / "http", "--workers", "2")
        requests = list(server.requests)
    assert code == 0, stderr
    assert f"{url}: the server does not support HTTP Range requests" in stderr
    assert "read as one stream" in stderr
    assert snapshot_files(tmp_path / "http") == snapshot_files(tmp_path / "local")
    assert any(path.endswith(multi.name) for path, *_ in requests)


def test_single_stream_dump_over_http_is_downloaded_once(build, enwiki_build, tmp_path):
    from httpserver import LoopbackServer

    from conftest import XML

    with LoopbackServer(XML) as server:
        code, _stdout, stderr = build([server.url(ENWIKI.name)], tmp_path / "http")
        sent = server.sent(ENWIKI.name)
    assert code == 0, stderr
    assert snapshot_files(tmp_path / "http") == snapshot_files(enwiki_build)
    size = ENWIKI.stat().st_size
    # The whole file once (one streamed GET), plus the header the launcher reads for <siteinfo>
    # and SQL sniffing — shared, in 64 KB ranges: the first bz2 block, here 256 KB. (Before: 3x.)
    assert size <= sent <= size + 300_000, (sent, size)
