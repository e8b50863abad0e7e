"""Stub histories → `date_created`, `date_previously_modified` (and `update`'s exact parent facts).

Real data: elwikivoyage's stub-meta-history (20 pages, 118 revisions, mwbzutils) beside the
elwikivoyage pages-articles sample of the same wiki; two of its pages are records there: "Άγιο Όρος"
(id 60, 32 revisions) and "Πρότυπο:Double image" (id 59, imported revisions whose ids are not in
time order). wikidatawiki's stub-articles + pages-articles samples (operations-dumps) are a real
stub-meta-current pair. Expected values are read from the stub XML itself by lxml (`revisions`),
independently of wikisnap's reader, and the named pages' values are spelled out too.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lxml import etree

from conftest import DATA, ELWIKIVOYAGE, ENWIKI, WIKIDATA, read_snapshot
from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.transforms.formats.dumpreader import (
    HISTORY_TAIL,
    PageFailure,
    PageHistory,
    ReadStats,
    is_stub_dump,
    iter_history,
    read_siteinfo,
)
from wikisnap.transforms.history import (
    HISTORY_COVERAGE,
    HISTORY_KEY,
    carry_previous,
    combine_histories,
    merge_history,
    summary_of,
)

STUBS = DATA / "history" / "mwbzutils__elwikivoyage-sample-stubs-meta-history.xml.gz"
STUB_CURRENT = WIKIDATA / "stub-articles-sample1.xml.gz"
ARTICLES_CURRENT = WIKIDATA / "pages-articles-sample1.xml.bz2"
AGIO_OROS, DOUBLE_IMAGE = 60, 59


def revisions(path: Path) -> dict[int, list[tuple[int, int, str]]]:
    """page id → [(rev id, parent id or 0, timestamp)] in file order, parsed whole with lxml."""
    root = etree.fromstring(gzip.decompress(path.read_bytes()))
    pages = {}
    for page in root.iterfind("{*}page"):
        pages[int(page.findtext("{*}id"))] = [
            (int(r.findtext("{*}id")), int(r.findtext("{*}parentid") or 0), r.findtext("{*}timestamp"))
            for r in page.iterfind("{*}revision")
        ]
    return pages


def read_history(path: Path) -> tuple[list, ReadStats]:
    stats = ReadStats(str(path))
    return list(iter_history(str(path), read_siteinfo(str(path)), stats)), stats


def records(out: Path, ns: int, db: str = "elwikivoyage") -> dict[int, dict]:
    _names, recs, _lines = read_snapshot(out / f"{db}_namespace_{ns}.tar.gz")
    return {r["identifier"]: r for r in recs}


def lines(out: Path, ns: int, db: str = "elwikivoyage") -> dict[int, bytes]:
    _names, recs, raw = read_snapshot(out / f"{db}_namespace_{ns}.tar.gz")
    return {r["identifier"]: line for r, line in zip(recs, raw, strict=True)}


# -- recognising and reading stub dumps -------------------------------------------------------


def test_stub_dumps_are_recognised_by_content_not_name(tmp_path):
    assert is_stub_dump(str(STUBS))
    assert is_stub_dump(str(STUB_CURRENT))  # stub-meta-current layout (schema 0.10)
    assert not is_stub_dump(str(ELWIKIVOYAGE))  # pages-articles: text inside <text>
    assert not is_stub_dump(str(DATA / "history" / "pywikibot__article-pear.xml"))  # history with text
    renamed = tmp_path / "elwikivoyage-pages-articles.xml.gz"  # a stub under a text dump's name
    renamed.write_bytes(STUBS.read_bytes())
    assert is_stub_dump(str(renamed))


def test_reader_keeps_first_time_and_parent_times_of_real_histories():
    pages, stats = read_history(STUBS)
    truth = revisions(STUBS)
    assert stats.error is None and stats.pages == 20 and sum(len(r) for r in truth.values()) == 118
    assert [h.page_id for h in pages] == list(truth)
    for h in pages:
        revs = truth[h.page_id]
        assert h.revisions == len(revs)
        assert h.first == min(ts for _r, _p, ts in revs)
        assert h.root == any(p == 0 for _r, p, _ts in revs)
        times = dict(h.times)
        by_id = {r: ts for r, _p, ts in revs}
        for rev_id, parent, ts in revs[-HISTORY_TAIL:]:
            assert times[rev_id] == ts
            if parent in by_id:
                assert times[parent] == by_id[parent]
        assert set(times) <= set(by_id)
    named = {h.page_id: h for h in pages}
    assert named[AGIO_OROS].first == "2013-03-26T15:19:25Z" and named[AGIO_OROS].revisions == 32
    assert dict(named[AGIO_OROS].times)[19489] == "2016-09-02T19:24:05Z"  # parent of current 19509
    # imported revisions: the first in time (2013-04-13) is not the lowest id (rev 86 is of 2013-05-19)
    assert named[DOUBLE_IMAGE].first == "2013-04-13T12:40:54Z"
    assert dict(named[DOUBLE_IMAGE].times)[1893] == "2013-05-19T16:31:30Z"


def test_memory_per_page_is_bounded_by_the_window(tmp_path):
    # Άγιο Όρος's 32 real revisions repeated to 5,000 (new ids, parent = previous): the summary
    # still holds only the tail and its parents, and the first time stays the real one.
    root = etree.fromstring(gzip.decompress(STUBS.read_bytes()))
    page = next(p for p in root.iterfind("{*}page") if p.findtext("{*}id") == str(AGIO_OROS))
    real = page.findall("{*}revision")
    for rev in real:
        page.remove(rev)
    ns = root.nsmap[None]
    for i in range(5000):
        rev = etree.fromstring(etree.tostring(real[i % len(real)]))
        rev.find("{*}id").text = str(1_000_000 + i)
        parent = rev.find("{*}parentid")
        if parent is None:
            parent = etree.Element(f"{{{ns}}}parentid")
            rev.insert(1, parent)
        parent.text = str(1_000_000 + i - 1) if i else "0"
        page.append(rev)
    path = tmp_path / "long.xml.gz"
    path.write_bytes(gzip.compress(etree.tostring(root)))
    pages, stats = read_history(path)
    long = next(h for h in pages if h.page_id == AGIO_OROS)
    assert stats.error is None and long.revisions == 5000
    assert long.first == "2013-03-26T15:19:25Z"
    assert [r for r, _ts in long.times] == list(range(1_000_000 + 5000 - HISTORY_TAIL - 1, 1_000_000 + 5000))


def test_truncated_stub_is_an_error_naming_the_file_and_last_page(tmp_path):
    data = STUBS.read_bytes()
    cut = tmp_path / "elwikivoyage-stub-meta-history-cut.xml.gz"
    cut.write_bytes(data[: len(data) // 2])
    pages, stats = read_history(cut)
    assert pages and all(isinstance(p, PageHistory) for p in pages)  # the complete pages before the cut
    assert stats.error is not None and str(cut) in str(stats.error)
    assert "truncated" in str(stats.error) and "last complete page was id" in str(stats.error)


def test_revision_without_timestamp_is_a_failure_naming_the_page(tmp_path):
    text = gzip.decompress(STUBS.read_bytes()).replace(b"<timestamp>2016-09-02T19:24:05Z</timestamp>", b"", 1)
    path = tmp_path / "bad.xml.gz"
    path.write_bytes(gzip.compress(text))
    pages, stats = read_history(path)
    failures = [p for p in pages if isinstance(p, PageFailure)]
    assert stats.error is None and len(pages) == 20
    assert [(f.page_id, f.title) for f in failures] == [(AGIO_OROS, "Άγιο Όρος")]
    assert "revision 19489 has no <timestamp>" in failures[0].reason


# -- the rules -------------------------------------------------------------------------------------


def test_a_page_split_over_two_files_combines_to_the_whole(tmp_path):
    # Άγιο Όρος's revisions cut in two parts, as a history split inside a page would be.
    whole = {h.page_id: h for h in read_history(STUBS)[0]}
    root = etree.fromstring(gzip.decompress(STUBS.read_bytes()))
    parts = []
    for keep in (slice(0, 16), slice(16, 32)):
        part = etree.fromstring(etree.tostring(root))
        for page in list(part.iterfind("{*}page")):
            if page.findtext("{*}id") != str(AGIO_OROS):
                part.remove(page)
                continue
            revs = page.findall("{*}revision")
            for rev in revs[: keep.start] + revs[keep.stop :]:
                page.remove(rev)
        path = tmp_path / f"part{keep.start}.xml.gz"
        path.write_bytes(gzip.compress(etree.tostring(part)))
        parts.extend(read_history(path)[0])
    combined = combine_histories([summary_of(p) for p in parts])
    assert combined["created"] == whole[AGIO_OROS].first == "2013-03-26T15:19:25Z"
    assert combined["times"][19489] == "2016-09-02T19:24:05Z"
    assert combine_histories([summary_of(p) for p in parts[::-1]]) == combined


def test_merge_history_sets_only_what_is_known_and_counts_it():
    history = {HISTORY_KEY: {"created": "2013-03-26T15:19:25Z", "times": {19489: "2016-09-02T19:24:05Z"}}}
    counts: dict[str, int] = {}
    rec = {"date_modified": "2016-09-02T21:34:28Z", "previous_version": {"identifier": 19489}}
    merge_history(rec, history, frozenset({HISTORY_COVERAGE}), counts)
    assert rec["date_created"] == "2013-03-26T15:19:25Z"
    assert rec["date_previously_modified"] == "2016-09-02T19:24:05Z"
    other = {"date_modified": "2016-09-02T21:34:28Z", "previous_version": {"identifier": 17018}}
    merge_history(other, history, frozenset({HISTORY_COVERAGE}), counts)
    assert "date_previously_modified" not in other  # its parent is not among the known times
    first = {"date_modified": "2012-01-01T00:00:00Z"}  # older than the history: another page's past
    merge_history(first, history, frozenset({HISTORY_COVERAGE}), counts)
    assert "date_created" not in first
    merge_history({"date_modified": "x"}, None, frozenset(), counts)  # no coverage asked: no counts
    assert counts == {
        "enrich/date_created": 2,
        "enrich/date_created_unknown": 1,
        "enrich/date_previously_modified": 1,
        "enrich/date_previously_modified_unknown": 1,
        "enrich/first_revision": 1,
    }


def test_a_single_revision_dates_the_page_only_when_it_created_it():
    one = PageHistory(1, 0, "A", 1, "2013-04-19T21:32:41Z", True, ((1, "2013-04-19T21:32:41Z"),))
    edited = PageHistory(2, 0, "B", 1, "2013-05-23T22:20:10Z", False, ((5150, "2013-05-23T22:20:10Z"),))
    assert combine_histories([summary_of(one)])["created"] == "2013-04-19T21:32:41Z"
    assert "created" not in combine_histories([summary_of(edited)])


def test_carry_previous_takes_exact_facts_from_the_record_before():
    prior = {
        "date_created": "2001-10-09T17:55:09Z",
        "date_modified": "2023-08-18T07:13:50Z",
        "version": {"identifier": 1170965821, "number_of_characters": 34563},
    }
    after = {"date_modified": "2023-08-24T01:14:42Z", "previous_version": {"identifier": 1170965821}}
    carry_previous(prior, after)
    assert after == {  # the WME record of 2023 (tests/data/wme) has these values for this pair
        "date_created": "2001-10-09T17:55:09Z",
        "date_modified": "2023-08-24T01:14:42Z",
        "date_previously_modified": "2023-08-18T07:13:50Z",
        "previous_version": {"identifier": 1170965821, "number_of_characters": 34563},
    }
    skipped = {"previous_version": {"identifier": 1170965000}}  # two revisions later: unknown
    carry_previous(prior, skipped)
    assert skipped == {"date_created": "2001-10-09T17:55:09Z", "previous_version": {"identifier": 1170965000}}
    hidden = {"date_modified": "2023-08-18T07:13:50Z", "version": {"identifier": 1170965821}}  # text hidden
    after = {"previous_version": {"identifier": 1170965821}}
    carry_previous(hidden, after)
    assert after == {
        "previous_version": {"identifier": 1170965821},
        "date_previously_modified": hidden["date_modified"],
    }


# -- builds ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elwikivoyage_builds(build, tmp_path_factory):
    plain, dated = tmp_path_factory.mktemp("elwv-plain"), tmp_path_factory.mktemp("elwv-dated")
    code, _out, err = build([ELWIKIVOYAGE], plain)
    assert code == 0, err
    code, out, err = build([ELWIKIVOYAGE, STUBS], dated)
    assert code == 0, err
    # the run's summary says the coverage
    assert "enrichment: date_created on 2 of 1,693 records, date_previously_modified on 2 of 1,369" in out + err
    assert "SQL rows" not in out + err
    return plain, dated


def test_build_with_stub_history_dates_the_named_records(elwikivoyage_builds):
    _plain, dated = elwikivoyage_builds
    truth = revisions(STUBS)
    agio = records(dated, 0)[AGIO_OROS]
    assert agio["name"] == "Άγιο Όρος" and agio["version"]["identifier"] == 19509
    assert agio["date_created"] == "2013-03-26T15:19:25Z" == min(ts for _r, _p, ts in truth[AGIO_OROS])
    assert agio["previous_version"] == {"identifier": 19489}  # from <parentid>; no character count
    assert agio["date_previously_modified"] == "2016-09-02T19:24:05Z"
    double = records(dated, 10)[DOUBLE_IMAGE]
    assert double["date_created"] == "2013-04-13T12:40:54Z"
    assert double["date_previously_modified"] == "2013-05-19T16:31:30Z"
    # WME's struct order: name, identifier, abstract, date_created, date_modified, date_previously_modified
    line = lines(dated, 0)[AGIO_OROS].decode()
    assert (
        line.index('"abstract"')
        < line.index('"date_created"')
        < line.index('"date_modified"')
        < line.index('"date_previously_modified"')
        < line.index('"version"')
    )
    # the Parquet shards carry the same values
    shard = next((dated / "parquet" / "elwikivoyage_namespace_0").glob("*.parquet"))
    rows = pq.read_table(shard, columns=["identifier", "date_created", "date_previously_modified"]).to_pylist()
    row = next(r for r in rows if r["identifier"] == AGIO_OROS)
    assert row["date_created"].isoformat() == "2013-03-26T15:19:25+00:00"
    assert row["date_previously_modified"].isoformat() == "2016-09-02T19:24:05+00:00"


def test_build_counts_history_coverage_and_lists_the_input(elwikivoyage_builds):
    plain, dated = elwikivoyage_builds
    manifest = json.loads((dated / "manifest.json").read_text())
    c = manifest["counts"]["elwikivoyage"]
    written = sum(v for k, v in c.items() if k.startswith("records/") and k.endswith("/written"))
    assert c["history/pages_read"] == 20 and c["history/revisions_read"] == 118
    # 5 user (talk) pages and 1 project page are outside the default namespaces (0, 6, 10, 14):
    # dropped at read time; of the other 14, 12 are redirects (not records)
    assert c["history/skipped_namespace"] == 6
    assert c["history/pages_joined"] == 2 and c["history/pages_without_record"] == 12
    assert c["enrich/date_created"] == 2 and c["enrich/date_created"] + c["enrich/date_created_unknown"] == written
    assert c["enrich/date_previously_modified"] == 2
    assert (
        c["enrich/date_previously_modified"] + c["enrich/date_previously_modified_unknown"] + c["enrich/first_revision"]
        == written
    )
    assert manifest["history_inputs"] == [str(STUBS)]
    assert any(i["path"] == str(STUBS) and i["pages"] == 20 for i in manifest["inputs"])
    plain_manifest = json.loads((plain / "manifest.json").read_text())
    assert "history_inputs" not in plain_manifest
    assert not any(k.startswith(("history/", "enrich/")) for k in plain_manifest["counts"]["elwikivoyage"])


def test_without_history_records_are_byte_identical(elwikivoyage_builds):
    plain, dated = elwikivoyage_builds
    for ns in (0, 6, 10, 14):
        before, after = lines(plain, ns), lines(dated, ns)
        assert before.keys() == after.keys()
        for page_id, line in before.items():
            assert b'"date_created":"2' not in line.split(b'"event"')[0]
            if page_id in (AGIO_OROS, DOUBLE_IMAGE):
                record = json.loads(after[page_id])
                del record["date_created"], record["date_previously_modified"]
                assert to_wme_json_bytes(record) == line
            else:
                assert after[page_id] == line, page_id


def test_stub_meta_current_dates_only_pages_created_by_their_current_revision(build, tmp_path):
    out = tmp_path / "out"
    code, _stdout, err = build([ARTICLES_CURRENT, STUB_CURRENT], out, "--namespaces", "0,8,10,120")
    assert code == 0, err
    truth = revisions(STUB_CURRENT)
    got = {}
    for ns in (0, 8, 10, 120):
        got.update(records(out, ns, "wikidatawiki"))
    assert set(got) == set(truth)
    for page_id, revs in truth.items():
        ((rev_id, parent, ts),) = revs  # a stub of current revisions: one per page
        record = got[page_id]
        assert record["version"]["identifier"] == rev_id
        if parent:  # edited since its creation: neither date is known from this dump
            assert "date_created" not in record and "date_previously_modified" not in record
        else:
            assert record["date_created"] == ts == record["date_modified"]
    assert got[1]["name"] == "MediaWiki:Aboutsite/bn" and got[1]["date_created"] == "2013-04-19T21:32:41Z"
    assert "date_created" not in got[4328]  # Q1: revision 5956 follows 5955


def test_truncated_stub_fails_the_build_naming_the_file(build, tmp_path):
    data = STUBS.read_bytes()
    cut = tmp_path / "elwikivoyage-20240601-stub-meta-history.xml.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, _stdout, err = build([ELWIKIVOYAGE, cut], tmp_path / "out")
    assert code != 0
    assert str(cut) in err and "truncated" in err
    assert not (tmp_path / "out" / "elwikivoyage_namespace_0.tar.gz").exists()


def test_stub_of_a_wiki_without_text_dump_is_refused(build, tmp_path):
    code, _stdout, err = build([ENWIKI, STUBS], tmp_path / "out")
    assert code != 0 and str(STUBS) in err and "no XML dump with the pages' text of elwikivoyage" in err


def test_update_refuses_a_stub_as_a_diff(build, update, tmp_path):
    assert build([ELWIKIVOYAGE], tmp_path / "base")[0] == 0
    code, _stdout, err = update(tmp_path / "base", [STUBS], tmp_path / "out")
    assert code != 0 and str(STUBS) in err and "stub dump" in err


def test_malformed_stub_page_is_a_dead_letter_and_the_rest_is_dated(build, tmp_path):
    text = gzip.decompress(STUBS.read_bytes()).replace(b"<timestamp>2013-04-13T12:40:54Z</timestamp>", b"", 1)
    bad = tmp_path / "elwikivoyage-stub-meta-history-bad.xml.gz"
    bad.write_bytes(gzip.compress(text))
    out = tmp_path / "out"
    code, _stdout, err = build([ELWIKIVOYAGE, bad], out)
    assert code == 0, err
    assert "date_created" not in records(out, 10)[DOUBLE_IMAGE]  # its history is the dead letter
    assert records(out, 0)[AGIO_OROS]["date_created"] == "2013-03-26T15:19:25Z"
    letters = [
        json.loads(line)
        for p in out.rglob("*_deadletters.ndjson")
        if p.is_file()
        for line in p.read_text().splitlines()
    ]
    assert [(d["page_id"], d["source"]) for d in letters] == [(DOUBLE_IMAGE, bad.name)]
    assert "has no <timestamp>" in letters[0]["reason"]
    counts = json.loads((out / "manifest.json").read_text())["counts"]["elwikivoyage"]
    assert counts["history/dead_lettered"] == 1 and counts["history/pages_read"] == 20
