"""`update` of a base built with `--formats structured`: the structured snapshot is rewritten.

Data: WME's parser-test documents (tests/data/wme-parser, enwiki pages whose Parsoid `<head>`
names page and revision) and the real Enterprise HTML records of tests/data/html (William Clark,
Mike Potts, with the Parsoid document of each), as XML pages + Parsoid HTML, and the page_props
dump with real `wikibase-shortdesc` rows (tests/data/sql). New revisions are the same pages with
a sentence more and their document's revision id moved on (as test_structured_build does).

The equivalence: base (old state) + diff + HTML of the new revisions == a fresh `build` of the
new state, byte for byte, for every structured output (tarball, metadata, Parquet shards).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_html import MIKE_POTTS, WILLIAM_CLARK, xml_dump
from test_html import records as html_records
from test_structured_build import structured_outputs, wme_record
from test_update import page_change, write_lines

from conftest import DATA, read_snapshot

SID = "enwiki_namespace_0"
PAGE_PROPS = DATA / "sql" / "constructed__enwiki-20240101-page_props.shortdesc.sql.gz"
# page ids: Coset and Caryophyllales have a short description in PAGE_PROPS
COSET, CARYOPHYLLALES, KYOTO, DISTINCTIVE, ZILLOW = 98759, 18947686, 37652, 2168966, 4035097
CLARK, POTTS = 13924699, 31967453


def pages() -> dict[int, tuple[dict, str | None]]:
    """page id → (record as the XML page is made from it, its Parsoid document or None)."""
    found = {}
    for title in ("Coset", "Caryophyllales", "Kyoto", "Distinctive_feature", "Zillow"):
        record = wme_record(title)
        html = record.pop("article_body")["html"]
        record["article_body"] = {"wikitext": f"'''{record['name']}''' is a page of the test.\n"}
        found[record["identifier"]] = (record, html)
    real = {r["identifier"]: r for r in html_records()}
    found[CLARK] = (real[CLARK], WILLIAM_CLARK.read_text(encoding="utf-8"))
    found[POTTS] = (real[POTTS], MIKE_POTTS.read_text(encoding="utf-8"))
    return found


def newer(record: dict, html: str | None, date: str) -> tuple[dict, str | None]:
    """The page's next revision (a sentence more) and, when given, its document moved to it."""
    old = record["version"]["identifier"]
    new = json.loads(json.dumps(record))
    new["version"]["identifier"] = old + 1
    new["date_modified"] = date
    new["article_body"]["wikitext"] += "\n\nA sentence more."
    return new, html.replace(f"revision/{old}", f"revision/{old + 1}") if html is not None else None


def write_state(folder: Path, name: str, state: dict[int, tuple[dict, str | None]]) -> list[Path]:
    """An XML dump of the state's pages and a folder of the documents that exist."""
    folder.mkdir(parents=True)
    xml = folder / f"enwiki-{name}-pages-articles.xml"
    xml_dump("enwiki", [rec for _pid, (rec, _html) in sorted(state.items())], xml)
    html_dir = folder / "html"
    html_dir.mkdir()
    for pid, (_rec, html) in state.items():
        if html is not None:
            (html_dir / f"{pid}.html").write_text(html, encoding="utf-8")
    return [xml, html_dir]


def shard_ids(path: Path) -> frozenset[int]:
    import pyarrow.parquet as pq

    return frozenset(pq.read_table(path, columns=["identifier"])["identifier"].to_pylist())


def structured_files(out: Path) -> dict[str, str]:
    """md5 of every file under structured-snapshots/."""
    root = out / "structured-snapshots"
    return {str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.*"))}


@pytest.mark.parametrize(
    ("member_mb", "create"),
    [("100", True), ("0.001", False)],
    ids=["members-of-the-buckets-and-a-new-page", "a-member-per-page"],
)
def test_update_of_a_structured_base_equals_a_fresh_build_of_the_new_state(
    tmp_path, build, update, member_mb, create
) -> None:
    """Base built with structured (6 pages, 5 with HTML, 2 with a description) + a diff that
    changes Coset with its new HTML (description kept), Kyoto without HTML (its parts dropped,
    counted), gives Mike Potts his first HTML, deletes Distinctive feature and (one member)
    creates Zillow == a build of that state: the structured tarball, metadata and Parquet are
    the same bytes, listed in the manifest and verified. With a member per page (the base's
    member layout kept: no page is created, so the build cuts the same), the untouched members'
    structured members and shards are the copied bytes."""
    allp = pages()
    old = {pid: v for pid, v in allp.items() if pid != ZILLOW}
    old[POTTS] = (old[POTTS][0], None)  # no HTML for Mike Potts in the base
    flags = ("--formats", "ndjson,parquet,structured", "--member-size-mb", member_mb)
    props = tmp_path / "enwiki-20240101-page_props.sql.gz"  # the wiki is read from the dump's name
    props.write_bytes(PAGE_PROPS.read_bytes())
    base = tmp_path / "base"
    code, _o, stderr = build([*write_state(tmp_path / "old", "20240101", old), props], base, *flags)
    assert code == 0, stderr

    date = "2024-02-01T00:00:00Z"
    changed = {
        COSET: newer(*allp[COSET], date),
        KYOTO: (newer(*allp[KYOTO], date)[0], None),  # its new revision comes without HTML
        POTTS: newer(*allp[POTTS], date),
    }
    if create:
        changed[ZILLOW] = allp[ZILLOW]
    new_state = {pid: v for pid, v in {**old, **changed}.items() if pid != DISTINCTIVE}
    diff_xml, diff_html = write_state(tmp_path / "diff", "20240201", changed)
    gone = allp[DISTINCTIVE][0]
    delete = page_change(
        "delete",
        "2024-02-01T01:00:00Z",
        {"page_id": DISTINCTIVE, "page_title": gone["name"], "namespace_id": 0, "is_redirect": False},
        {"rev_id": gone["version"]["identifier"], "rev_dt": gone["date_modified"]},
    )
    events = write_lines(tmp_path / "diff" / "page-change.ndjson", [delete])
    out = tmp_path / "out"
    code, stdout, stderr = update(base, [diff_xml, events, diff_html], out)
    assert code == 0, stderr
    assert "1 changed page(s) have no Structured Contents" in stdout + stderr
    expected = tmp_path / "expected"
    code, _o, stderr = build([*write_state(tmp_path / "new", "20240201", new_state), props], expected, *flags)
    assert code == 0, stderr

    # byte for byte: every structured file, and the records' lines and Parquet as a check of the state
    assert structured_files(out) == structured_files(expected)
    lines, rows, _meta = structured_outputs(out, SID)
    got = {r["identifier"]: r for r in map(json.loads, lines)}
    want_ids = {COSET, CARYOPHYLLALES, CLARK, POTTS} | ({ZILLOW} if create else set())
    assert sorted(got) == sorted(want_ids) and rows == lines
    assert got[COSET]["version"]["identifier"] == allp[COSET][0]["version"]["identifier"] + 1
    assert got[COSET]["description"] == "Subset of a mathematical group"  # carried from the base
    assert got[CARYOPHYLLALES]["description"] == "Order of flowering plants"
    base_lines = {
        json.loads(line)["identifier"]: line
        for line in read_snapshot(base / "structured-snapshots" / f"{SID}.tar.gz")[2]
    }
    out_lines = {json.loads(line)["identifier"]: line for line in lines}
    assert out_lines[CLARK] == base_lines[CLARK] and out_lines[CARYOPHYLLALES] == base_lines[CARYOPHYLLALES]
    assert KYOTO in base_lines and KYOTO not in out_lines  # no stale parts of the old revision

    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]["enwiki"]
    assert counts["structured/ns0/written"] == len(want_ids)
    assert counts["structured/ns0/copied"] == 2  # Caryophyllales and William Clark
    assert counts["structured/ns0/without_html"] == 1  # Kyoto's new revision
    assert counts["html/fields_dropped"] == 1 and counts["structured/with_description"] == 1
    listed = {o["path"]: o for o in manifest["outputs"] if o["kind"].startswith("structured")}
    assert sorted(listed) == sorted(structured_files(out))
    for rel, md5 in structured_files(out).items():
        assert listed[rel]["md5"] == md5
    assert listed[f"structured-snapshots/{SID}.tar.gz"]["records"] == len(want_ids)
    shards = [p for p in listed if p.endswith(".parquet")]
    assert len(shards) == len(read_snapshot(out / f"{SID}.tar.gz")[0])  # shard n beside member n
    # the structured members of members no diff touched: their shards are the base's bytes
    touched = set(changed) | {DISTINCTIVE}
    base_shards = {shard_ids(p): p for p in (base / "structured-snapshots" / "parquet" / SID).glob("*.parquet")}
    copied = 0
    for rel in shards:
        ids = shard_ids(out / rel)
        if ids and ids in base_shards and not ids & touched:
            assert (out / rel).read_bytes() == base_shards[ids].read_bytes(), rel
            copied += 1
    assert copied == 2 and counts["members/ns0/copied"] >= copied  # Caryophyllales, William Clark
    # the records agree with the build too (their own update equivalence is test_update's)
    want = {r["identifier"]: r for r in read_snapshot(expected / f"{SID}.tar.gz")[1]}
    have = {r["identifier"]: r for r in read_snapshot(out / f"{SID}.tar.gz")[1]}
    assert sorted(have) == sorted(want)


@pytest.mark.parametrize("formats", ["ndjson,structured", "ndjson,parquet,structured"], ids=["same", "plus-parquet"])
def test_untouched_snapshots_keep_their_structured_files_and_a_format_change_rewrites_them(
    tmp_path, build, update, formats
) -> None:
    """WME records of Coset and Kyoto (enwiki) and Malta (dewiki) built with structured; a
    page_change event deletes Coset. The same formats: dewiki's structured files are copied as
    bytes and enwiki's keeps Kyoto's line as it was. Another format choice (Parquet added)
    rewrites every snapshot line by line: the same Structured lines, cut as a build cuts them."""
    records = [wme_record(t) for t in ("Coset", "Kyoto", "Malta")]
    src = tmp_path / "records.ndjson"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    base = tmp_path / "base"
    code, _o, stderr = build([src], base, "--date", "20240101", "--formats", "ndjson,structured")
    assert code == 0, stderr
    coset = records[0]
    delete = page_change(
        "delete",
        "2024-02-01T01:00:00Z",
        {"page_id": COSET, "page_title": coset["name"], "namespace_id": 0, "is_redirect": False},
        {"rev_id": coset["version"]["identifier"], "rev_dt": coset["date_modified"]},
    )
    events = write_lines(tmp_path / "page-change.ndjson", [delete])
    out = tmp_path / "out"
    code, _o, stderr = update(base, [events], out, "--formats", formats)
    assert code == 0, stderr
    base_lines = {s: structured_outputs(base, s)[0] for s in (SID, "dewiki_namespace_0")}
    (kyoto,) = [line for line in base_lines[SID] if json.loads(line)["identifier"] == KYOTO]
    lines, rows, meta = structured_outputs(out, SID)
    assert lines == rows == [kyoto] and meta["identifier"] == SID
    lines, rows, _meta = structured_outputs(out, "dewiki_namespace_0")
    assert lines == rows == base_lines["dewiki_namespace_0"]
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {o["path"]: o["md5"] for o in manifest["outputs"] if o["kind"].startswith("structured")}
    assert listed == structured_files(out) and len(listed) == 6
    dewiki = {k: v for k, v in structured_files(base).items() if "dewiki" in k}
    if formats == "ndjson,structured":  # untouched: its files copied as they were
        assert {k: v for k, v in listed.items() if "dewiki" in k} == dewiki
    else:
        assert list((out / "parquet").glob("*/*.parquet"))
    counts = manifest["counts"]
    assert counts["enwiki"]["structured/ns0/written"] == 1 and counts["enwiki"]["structured/ns0/copied"] == 1


def test_a_base_without_structured_cannot_gain_it_by_an_update(tmp_path, build, update) -> None:
    """The base keeps no page_props descriptions outside its structured snapshot: adding
    `--formats structured` to an update of a base built without it is refused in one line."""
    src = tmp_path / "records.ndjson"
    src.write_text(json.dumps(wme_record("Coset"), ensure_ascii=False) + "\n", encoding="utf-8")
    base = tmp_path / "base"
    code, _o, stderr = build([src], base, "--date", "20240101")
    assert code == 0, stderr
    code, _o, stderr = update(base, [src], tmp_path / "out", "--formats", "ndjson,structured")
    assert code == 2
    assert "was built without Structured Contents, so an update cannot add them" in stderr
    assert len(stderr.strip().splitlines()) == 1


def verify(out: Path) -> tuple[int, str]:
    """`wikisnap verify OUT` in-process: (exit code, stderr)."""
    import contextlib
    import io

    from wikisnap.pipelines.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["-q", "verify", str(out)])
    return code, stderr.getvalue()


def coset_kyoto_base(tmp_path: Path, build) -> tuple[Path, list[dict]]:
    records = [wme_record(t) for t in ("Coset", "Kyoto")]
    src = tmp_path / "records.ndjson"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    base = tmp_path / "base"
    code, _o, stderr = build([src], base, "--date", "20240101", "--formats", "ndjson,structured")
    assert code == 0, stderr
    return base, records


def delete_event(tmp_path: Path, record: dict) -> Path:
    event = page_change(
        "delete",
        "2024-02-01T01:00:00Z",
        {"page_id": record["identifier"], "page_title": record["name"], "namespace_id": 0, "is_redirect": False},
        {"rev_id": record["version"]["identifier"], "rev_dt": record["date_modified"]},
    )
    return write_lines(tmp_path / "page-change.ndjson", [event])


def test_an_updated_structured_snapshot_passes_verify_and_a_damaged_base_fails(tmp_path, build, update) -> None:
    """`wikisnap verify` of the update's output recomputes the structured files' md5s; a base
    whose structured tarball changed after it was published (one byte, same size) fails the
    update naming the file, and nothing is published."""
    base, records = coset_kyoto_base(tmp_path, build)
    events = delete_event(tmp_path, records[0])
    out = tmp_path / "out"
    # with Beam's construction-time type check and the dead-letter gates of the rewrite in the graph
    code, _o, stderr = update(base, [events], out, "--pipeline_type_check", "--fail-on-dead-letters")
    assert code == 0, stderr
    code, stderr = verify(out)
    assert code == 0, stderr
    # the update's output is a base too: the same delete again touches nothing, the files are copied
    again = tmp_path / "again"
    code, _o, stderr = update(out, [events], again)
    assert code == 0, stderr
    assert structured_files(again) == structured_files(out) and verify(again)[0] == 0
    tar = base / "structured-snapshots" / f"{SID}.tar.gz"
    data = bytearray(tar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tar.write_bytes(bytes(data))
    code, _o, stderr = update(base, [events], tmp_path / "out2")
    assert code == 2
    assert f"structured-snapshots/{SID}.tar.gz" in stderr and "damaged" in stderr
    assert not (tmp_path / "out2" / "manifest.json").exists()


def test_a_changed_page_whose_parts_fail_is_a_dead_letter_without_its_old_parts(tmp_path, build, monkeypatch) -> None:
    """The rewrite of a touched member (in one process): a new revision whose Structured Contents
    cannot be extracted is a dead letter with its HTML, counted `structured/0/failed`, and the old
    revision's line is not kept; the untouched page's line is."""
    import gzip

    from wikisnap.pipelines.update import discover_base
    from wikisnap.transforms.parse import structured_record
    from wikisnap.transforms.update.rewrite import plan_members, rewrite_member
    from wikisnap.transforms.write import WriteOptions

    base, _records = coset_kyoto_base(tmp_path, build)
    (snapshot,) = [s for s in discover_base(str(base)).snapshots if s.dbname == "enwiki"]
    before = {r["identifier"]: r for r in read_snapshot(base / f"{SID}.tar.gz")[1]}
    coset = json.loads(json.dumps(before[COSET]))
    coset["version"]["identifier"] += 1
    opts = WriteOptions(str(tmp_path / "o"), str(tmp_path / "t"), 100 << 20, frozenset({"ndjson", "structured"}), None)

    def fails(article, description=None):
        raise ValueError("no parts today")

    monkeypatch.setattr(structured_record, "structured_record", fails)
    letters, counts, lines = [], {}, []
    for task in plan_members(snapshot, {COSET: coset}, opts):
        part, task_counts = rewrite_member(task, opts, letters)
        for name, n in task_counts.items():
            counts[name] = counts.get(name, 0) + n
        lines += gzip.decompress(Path(part.structured.gz_path).read_bytes()).rstrip(b"\0").splitlines()
    assert sorted(json.loads(line)["identifier"] for line in lines) == [KYOTO]
    (letter,) = letters
    assert letter.page_id == COSET and "no parts today" in letter.reason and letter.raw == coset["article_body"]["html"]
    assert counts["structured/ns0/failed"] == 1 and counts["structured/ns0/copied"] == 1
