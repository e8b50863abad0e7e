"""`wikisnap update`: base snapshot + diffs → new snapshot + hourly batches, on the real data in tests/data.

Equivalence: a snapshot built from the older revisions of a real history, updated with the real
file as a diff, holds the records a build of the real file gives (every field but `event`). The
page_change events below are written to `event-schema__mediawiki-page-change-1.2.0.yaml` about
real pages of the enwiki sample; bad inputs are made by hand on purpose.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lxml import etree

from conftest import DATA, ENWIKI, read_snapshot
from wikisnap.schemas.arrow import table_to_records
from wikisnap.schemas.serialize import to_wme_json
from wikisnap.transforms.formats.tarball import line_head
from wikisnap.transforms.update.diffs import DiffContext, change_from_page_change, classify_diff, normalize_time
from wikisnap.transforms.update.find import json_name, listed_redirects
from wikisnap.transforms.update.fold import fold_page

HISTORY = DATA / "history"
WIKIDATA_INCR = HISTORY / "wdtk__wikidatawiki-20140220-pages-meta-hist-incr.EXCERPT.xml"
PEAR = HISTORY / "pywikibot__article-pear.xml"
PEAR_2014 = HISTORY / "pywikibot__article-pear-0.10.xml"
PYRUS = HISTORY / "pywikibot__article-pyrus.xml"
PAIR = HISTORY / "pywikibot__pair-0.10.xml"
RECENTCHANGE = DATA / "events" / "polars-guide__enwiki-recentchange-100.ndjson"
PAGE_CHANGE_SCHEMA = DATA / "schema" / "event-schema__mediawiki-page-change-1.2.0.yaml"


def older_state(source: Path, dest: Path, keep: dict[str, int] | int) -> Path:
    """The real file with only the first `keep` revisions of each page (a state of the past)."""
    tree = etree.parse(str(source))
    for page in tree.getroot().iterfind("{*}page"):
        title = page.findtext("{*}title")
        k = keep if isinstance(keep, int) else keep.get(title, 1)
        for rev in page.findall("{*}revision")[k:]:
            page.remove(rev)
    tree.write(str(dest), xml_declaration=True, encoding="utf-8")
    return dest


def records_by_id(tar_path: Path) -> dict[int, dict]:
    if not tar_path.exists():
        return {}
    _names, records, _lines = read_snapshot(tar_path)
    return {r["identifier"]: r for r in records}


def lines_by_id(tar_path: Path) -> dict[int, bytes]:
    _names, records, lines = read_snapshot(tar_path)
    return {r["identifier"]: line for r, line in zip(records, lines, strict=True)}


def without_event(records: dict[int, dict]) -> dict[int, dict]:
    return {k: {f: v for f, v in r.items() if f != "event"} for k, r in records.items()}


def revision_facts(sources: list[Path]) -> dict[int, tuple[str, int]]:
    """Revision id → (timestamp, characters of its text), read straight from the real XML."""
    facts = {}
    for source in sources:
        for rev in etree.parse(str(source)).getroot().iterfind("{*}page/{*}revision"):
            facts[int(rev.findtext("{*}id"))] = (rev.findtext("{*}timestamp"), len(rev.findtext("{*}text") or ""))
    return facts


def check_carried(records: dict[int, dict], facts: dict[int, tuple[str, int]]) -> set[int]:
    """Assert the parent facts `update` carried from the record before (its time and characters) are
    the parent revision's own, strip them, and return the ids of the records that had them."""
    carried = set()
    for record in records.values():
        previous = record.get("previous_version") or {}
        if "date_previously_modified" in record or "number_of_characters" in previous:
            ts, chars = facts[previous["identifier"]]
            assert record.pop("date_previously_modified") == ts
            assert previous.pop("number_of_characters", 0) == chars
            carried.add(record["identifier"])
    return carried


def batch_records(out: Path) -> dict[str, list[dict]]:
    """`{"YYYY-MM-DD/HH/file": [records]}` of every hourly batch tarball under out/batches."""
    found = {}
    for path in sorted((out / "batches").rglob("*.tar.gz")):
        _names, records, _lines = read_snapshot(path)
        found[str(path.relative_to(out / "batches"))] = records
    return found


def md5s(out: Path) -> dict[str, str]:
    """md5 of every output file except the manifest (which holds timings) and the control folder."""
    return {
        str(p.relative_to(out)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and p.relative_to(out).parts[0] != ".wikisnap"
    }


# -- equivalence on real revision histories ---------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "keep", "flags"),
    [
        # wikidatawiki adds-changes (schema 0.8, no <dbname>): Q1 keeps 2 of 5 revisions
        ([WIKIDATA_INCR], 2, ["--namespaces", "0,4"]),
        ([WIKIDATA_INCR], 1, ["--namespaces", "0,4"]),
        # enwiki Special:Export histories, schema 0.3 and 0.10: Pyrus is first a redirect to
        # "Pyrus (brand)" (dangling), then to Pear, then an article, then a redirect to Pear again.
        ([PEAR, PYRUS, PAIR], {"Pear": 2, "Pyrus": 1}, []),
        ([PEAR, PYRUS, PAIR], {"Pear": 1, "Pyrus": 2}, []),
        ([PEAR, PYRUS, PAIR], {"Pear": 3, "Pyrus": 3}, []),
    ],
    ids=["wikidata-2of5", "wikidata-1of5", "enwiki-pyrus-dangling", "enwiki-pyrus-attached", "enwiki-pyrus-article"],
)
def test_older_state_plus_history_equals_build_of_later_state(build, update, tmp_path, sources, keep, flags):
    older = [older_state(src, tmp_path / f"old-{src.name}", keep) for src in sources]
    base, expected, out = tmp_path / "base", tmp_path / "expected", tmp_path / "out"
    assert build(older, base, *flags)[0] == 0
    assert build(sources, expected, *flags)[0] == 0
    code, _stdout, stderr = update(base, sources, out)
    assert code == 0, stderr
    assert list(expected.glob("*.tar.gz"))
    facts, carried = revision_facts(sources), 0
    for tar in sorted(expected.glob("*.tar.gz")):
        want, got = records_by_id(tar), records_by_id(out / tar.name)
        assert want
        # A build of the later state cannot know the parent's time and size; the update knows them
        # exactly from the base record when the new revision's parent is the base record's revision.
        olds = records_by_id(base / tar.name)
        forward = {
            pid
            for pid, r in want.items()
            if pid in olds and (r.get("previous_version") or {}).get("identifier") == olds[pid]["version"]["identifier"]
        }
        got = without_event(got)
        assert check_carried(got, facts) == forward, tar.name
        carried += len(forward)
        assert got == without_event(want), tar.name
        # the Parquet shards hold the same records
        shards = sorted((out / "parquet" / tar.name[: -len(".tar.gz")]).glob("*.parquet"))
        rows = [r for s in shards for r in table_to_records(pq.read_table(s))]
        assert [(to_wme_json(row) + "\n").encode() for row in rows] == read_snapshot(out / tar.name)[2]
    assert sorted(p.name for p in out.glob("*.tar.gz")) == sorted(p.name for p in expected.glob("*.tar.gz"))
    assert carried or keep == 2, "the history moves some page forward by one revision"


def test_pyrus_turned_redirect_is_deleted_and_attached_to_pear(build, update, tmp_path):
    older = [older_state(src, tmp_path / f"old-{src.name}", {"Pear": 4, "Pyrus": 3}) for src in (PEAR, PYRUS)]
    assert build(older, tmp_path / "base")[0] == 0
    assert {r["name"] for r in records_by_id(tmp_path / "base" / "enwiki_namespace_0.tar.gz").values()} == {
        "Pear",
        "Pyrus",
    }
    assert update(tmp_path / "base", [PYRUS], tmp_path / "out")[0] == 0
    got = records_by_id(tmp_path / "out" / "enwiki_namespace_0.tar.gz")
    assert [r["name"] for r in got.values()] == ["Pear"]
    assert got[24278]["redirects"] == [{"name": "Pyrus", "url": "https://en.wikipedia.org/wiki/Pyrus"}]
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["redirects_attached"] == 1 and counts["redirects_changed"] == 1
    # the batch says: Pyrus deleted (it became a redirect) at its revision's hour
    batches = batch_records(tmp_path / "out")
    assert list(batches) == ["2008-09-14/17/enwiki_namespace_0.tar.gz"]
    assert [(r["name"], r["event"]["type"]) for r in batches["2008-09-14/17/enwiki_namespace_0.tar.gz"]] == [
        ("Pyrus", "delete")
    ]


def test_file_order_does_not_matter_and_old_revisions_are_skipped(build, update, tmp_path):
    older = older_state(PEAR, tmp_path / "old-pear.xml", 2)
    assert build([older], tmp_path / "base")[0] == 0
    assert update(tmp_path / "base", [PEAR, PEAR_2014], tmp_path / "a")[0] == 0
    assert update(tmp_path / "base", [PEAR_2014, PEAR], tmp_path / "b")[0] == 0
    assert md5s(tmp_path / "a") == md5s(tmp_path / "b")
    assert build([PEAR_2014], tmp_path / "expected")[0] == 0
    name = "enwiki_namespace_0.tar.gz"
    assert without_event(records_by_id(tmp_path / "a" / name)) == without_event(
        records_by_id(tmp_path / "expected" / name)
    )
    # the older file applied to the newer snapshot changes nothing, and says why
    assert update(tmp_path / "a", [older], tmp_path / "c")[0] == 0
    assert (tmp_path / "c" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    counts = json.loads((tmp_path / "c" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["skipped/older_than_base"] == 1
    assert not (tmp_path / "c" / "batches").exists()


# -- page_change events on the enwiki sample -----------------------------------------------------


def page_change(kind: str, dt: str, page: dict, revision: dict, **extra) -> dict:
    """A `mediawiki.page_change.v1` event with the schema's required fields."""
    return {
        "$schema": "/mediawiki/page/change/1.2.0",
        "changelog_kind": {"delete": "delete", "create": "insert", "undelete": "insert"}.get(kind, "update"),
        "dt": dt,
        "meta": {"stream": "mediawiki.page_change.v1", "domain": "en.wikipedia.org"},
        "page": page,
        "page_change_kind": kind,
        "revision": revision,
        "wiki_id": "enwiki",
        **extra,
    }


def enwiki_events(base_records: dict[int, dict]) -> list[dict]:
    autism, albedo, a = base_records[25], base_records[39], base_records[290]
    return [
        page_change(
            "delete",
            "2016-05-01T10:15:00Z",
            {"page_id": 25, "page_title": "Autism", "namespace_id": 0, "is_redirect": False, "revision_count": 9},
            {"rev_id": autism["version"]["identifier"], "rev_dt": autism["date_modified"]},
            comment="test delete",
        ),
        page_change(
            "move",
            "2016-05-01T11:20:00.5Z",
            {"page_id": 39, "page_title": "Albedo_(physics)", "namespace_id": 0, "is_redirect": False},
            {
                "rev_id": 718000000,
                "rev_dt": "2016-05-01T11:20:00Z",
                "rev_parent_id": albedo["version"]["identifier"],
                "comment": "moved page [[Albedo]] to [[Albedo (physics)]]",
                "editor": {"user_id": 42, "user_text": "Mover"},
                "is_minor_edit": True,
            },
            prior_state={"page": {"page_id": 39, "page_title": "Albedo", "namespace_id": 0, "is_redirect": False}},
            created_redirect_page={"page_id": 50000001, "page_title": "Albedo", "namespace_id": 0, "is_redirect": True},
        ),
        page_change(
            "visibility_change",
            "2016-05-01T11:40:00Z",
            {"page_id": 290, "page_title": "A", "namespace_id": 0, "is_redirect": False},
            {
                "rev_id": a["version"]["identifier"],
                "rev_dt": a["date_modified"],
                "is_content_visible": False,
                "is_editor_visible": True,
                "is_comment_visible": True,
            },
            prior_state={
                "revision": {"is_content_visible": True, "is_editor_visible": True, "is_comment_visible": True}
            },
        ),
    ]


def test_events_follow_the_page_change_schema(enwiki_build):
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    validator = jsonschema.Draft7Validator(yaml.safe_load(PAGE_CHANGE_SCHEMA.read_text()))
    for event in enwiki_events(records_by_id(enwiki_build / "enwiki_namespace_0.tar.gz")):
        validator.validate(event)


def write_lines(path: Path, items) -> Path:
    path.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items))
    return path


@pytest.fixture(scope="session")
def enwiki_events_update(enwiki_build, update, tmp_path_factory):
    base = enwiki_build
    tmp = tmp_path_factory.mktemp("events")
    events = write_lines(tmp / "page-change.ndjson", enwiki_events(records_by_id(base / "enwiki_namespace_0.tar.gz")))
    out = tmp / "out"
    code, stdout, stderr = update(base, [events], out)
    assert code == 0, stderr
    return base, events, out


def test_delete_move_visibility_give_exactly_the_expected_records(enwiki_events_update):
    base, _events, out = enwiki_events_update
    before = lines_by_id(base / "enwiki_namespace_0.tar.gz")
    after = lines_by_id(out / "enwiki_namespace_0.tar.gz")
    assert sorted(after) == sorted(set(before) - {25})
    # every other record: the same bytes
    for page_id in set(after) - {39, 290}:
        assert after[page_id] == before[page_id], page_id
    old_albedo, albedo = json.loads(before[39]), json.loads(after[39])
    assert albedo["name"] == "Albedo (physics)"
    assert albedo["url"] == "https://en.wikipedia.org/wiki/Albedo_(physics)"
    assert albedo["redirects"] == sorted(
        old_albedo.get("redirects", []) + [{"name": "Albedo", "url": "https://en.wikipedia.org/wiki/Albedo"}],
        key=lambda r: (r["name"], r["url"]),
    )
    assert albedo["version"] == {
        **old_albedo["version"],
        "identifier": 718000000,
        "comment": "moved page [[Albedo]] to [[Albedo (physics)]]",
        "is_minor_edit": True,
        "editor": {"identifier": 42, "name": "Mover"},
    }
    # a move's null revision follows the base revision: its parent's time and size are the base record's
    assert albedo["previous_version"] == {
        "identifier": old_albedo["version"]["identifier"],
        "number_of_characters": old_albedo["version"]["number_of_characters"],
    }
    assert albedo["date_previously_modified"] == old_albedo["date_modified"]
    assert albedo["date_modified"] == "2016-05-01T11:20:00Z"
    assert albedo["article_body"] == old_albedo["article_body"]
    same = {"abstract", "categories", "templates", "license", "in_language", "is_part_of", "namespace"}
    assert {k: albedo.get(k) for k in same} == {k: old_albedo.get(k) for k in same}
    old_a, a = json.loads(before[290]), json.loads(after[290])
    assert a["visibility"] == {"text": False, "editor": True, "comment": True}
    for key in ("article_body", "abstract", "categories", "templates"):
        assert key not in a
    assert "number_of_characters" not in a["version"] and "size" not in a["version"]
    assert a["version"]["editor"] == old_a["version"]["editor"] and a["name"] == "A"
    assert a["event"]["type"] == "visibility-change"
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert (counts["deleted"], counts["moved"], counts["updated"]) == (1, 1, 1)
    assert counts["records/ns0/copied"] == len(before) - 3 and counts["records/ns0/written"] == len(before) - 1


def test_hourly_batches_hold_the_changes(enwiki_events_update):
    base, _events, out = enwiki_events_update
    before = records_by_id(base / "enwiki_namespace_0.tar.gz")
    batches = batch_records(out)
    assert sorted(batches) == ["2016-05-01/10/enwiki_namespace_0.tar.gz", "2016-05-01/11/enwiki_namespace_0.tar.gz"]
    (delete,) = batches["2016-05-01/10/enwiki_namespace_0.tar.gz"]
    assert list(delete) == [
        "name",
        "identifier",
        "date_modified",
        "version",
        "url",
        "namespace",
        "in_language",
        "is_part_of",
        "event",
    ]
    assert delete["name"] == "Autism" and delete["identifier"] == 25
    assert delete["version"] == {"identifier": before[25]["version"]["identifier"]}
    assert delete["url"] == before[25]["url"] and delete["date_modified"] == "2016-05-01T10:15:00Z"
    assert delete["event"]["type"] == "delete" and delete["event"]["date_published"] == "2016-05-01T10:15:00Z"
    hour11 = batches["2016-05-01/11/enwiki_namespace_0.tar.gz"]
    assert [(r["identifier"], r["name"], r["event"]["type"]) for r in hour11] == [
        (39, "Albedo (physics)", "update"),
        (39, "Albedo", "delete"),
        (290, "A", "visibility-change"),
    ]
    assert hour11[0]["event"]["date_created"] == "2016-05-01T11:20:00.5Z"
    meta = json.loads((out / "batches" / "2016-05-01" / "11" / "enwiki_namespace_0.json").read_text())
    data = (out / "batches" / "2016-05-01" / "11" / "enwiki_namespace_0.tar.gz").read_bytes()
    assert meta["identifier"] == "enwiki_namespace_0" and meta["version"] == hashlib.md5(data).hexdigest()
    assert meta["date_modified"] == "2016-05-01T11:40:00Z"
    with tarfile.open(out / "batches" / "2016-05-01" / "11" / "enwiki_namespace_0.tar.gz") as tar:
        assert tar.getnames() == ["enwiki_namespace_0_0.ndjson"]


def test_batches_as_diffs_give_the_same_snapshot(enwiki_events_update, update, tmp_path):
    base, _events, out = enwiki_events_update
    batches = sorted((out / "batches").rglob("*.tar.gz"))
    code, _stdout, stderr = update(base, batches, tmp_path / "again")
    assert code == 0, stderr
    name = "enwiki_namespace_0.tar.gz"
    assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()


def test_same_diffs_twice_give_the_same_result(enwiki_events_update, update, tmp_path):
    base, events, out = enwiki_events_update
    copy = shutil.copy(events, tmp_path / "copy-of-events.ndjson")
    assert update(base, [events, copy], tmp_path / "twice-in-one-run")[0] == 0
    assert md5s(tmp_path / "twice-in-one-run") == md5s(out)
    assert update(out, [events], tmp_path / "applied-again")[0] == 0
    name = "enwiki_namespace_0.tar.gz"
    assert (tmp_path / "applied-again" / name).read_bytes() == (out / name).read_bytes()
    counts = json.loads((tmp_path / "applied-again" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts.get("deleted", 0) == counts.get("moved", 0) == counts.get("updated", 0) == 0


def test_untouched_snapshot_is_copied_as_files(enwiki_build, update, tmp_path):
    # Only recentchange events (no page ids, no text): nothing to apply, every file copied.
    code, _stdout, stderr = update(enwiki_build, [RECENTCHANGE], tmp_path / "out")
    assert code == 0, stderr
    for name in ("enwiki_namespace_0.tar.gz", "enwiki_namespace_0.json"):
        assert (tmp_path / "out" / name).read_bytes() == (enwiki_build / name).read_bytes()
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts == {"skipped/recentchange_edit_without_page_id_or_text": 100}


# -- bad diffs -------------------------------------------------------------------------------------


def test_bad_lines_unknown_wikis_and_undeletes_without_text_are_dead_letters(enwiki_build, update, tmp_path):
    records = records_by_id(enwiki_build / "enwiki_namespace_0.tar.gz")
    good = enwiki_events(records)[0]
    dewiki = {**good, "wiki_id": "dewiki"}
    undelete = page_change(
        "undelete",
        "2016-05-02T00:00:00Z",
        {"page_id": 77777777, "page_title": "Lost", "namespace_id": 0},
        {"rev_id": 1, "rev_dt": "2016-05-01T00:00:00Z"},
    )
    talk_delete = page_change(
        "delete",
        "2016-05-02T01:00:00Z",
        {"page_id": 8888, "page_title": "Talk:Autism", "namespace_id": 1},
        {"rev_id": 2, "rev_dt": "2016-05-01T00:00:00Z"},
    )
    diff = write_lines(
        tmp_path / "mixed.ndjson",
        ["{not json", "[1, 2]", json.dumps({"$schema": "/other/1.0.0"}), dewiki, undelete, talk_delete, "", good],
    )
    code, _stdout, stderr = update(enwiki_build, [diff], tmp_path / "out")
    assert code == 0, stderr
    letters = [json.loads(line) for line in (tmp_path / "out" / "deadletter" / "unknown_deadletters.ndjson").open()]
    reasons = sorted(letter["reason"].split(":")[0] for letter in letters)
    assert reasons == ["event for wiki 'dewiki', which is not in the base"] + ["unparseable event"] * 3
    assert {letter["raw"] for letter in letters} >= {"{not json", "[1, 2]"}
    enwiki_letters = [
        json.loads(line) for line in (tmp_path / "out" / "deadletter" / "enwiki_deadletters.ndjson").open()
    ]
    assert [(d["page_id"], d["reason"].split(",")[0]) for d in enwiki_letters] == [
        (77777777, "undelete without the page's text")
    ]
    counts = json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"]
    assert counts["unknown"]["dead_lettered"] == 4
    assert counts["enwiki"]["dead_lettered"] == 1 and counts["enwiki"]["ignored/namespace"] == 1
    assert counts["enwiki"]["deleted"] == 1


def test_unreadable_diffs_and_bases_fail_fast(enwiki_build, update, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01binary")
    code, _stdout, stderr = update(enwiki_build, [junk], tmp_path / "out")
    assert code == 2 and "junk.bin: not a diff wikisnap knows" in stderr
    code, _stdout, stderr = update(tmp_path / "nowhere", [RECENTCHANGE], tmp_path / "out")
    assert code == 2 and "no such folder" in stderr
    code, _stdout, stderr = update(enwiki_build, [RECENTCHANGE], enwiki_build)
    assert code == 2 and "is the same folder as --base" in stderr
    assert not (tmp_path / "out").exists()


# -- pure cores ----------------------------------------------------------------------------------------


def test_line_heads_and_redirect_lists_are_read_without_parsing_the_line(enwiki_build):
    _names, records, lines = read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")
    for record, line in zip(records, lines, strict=True):
        name, page_id = line_head(line)
        assert page_id == record["identifier"] and name == json_name(record["name"])
        assert listed_redirects(line) == [r["name"] for r in record.get("redirects", [])]
    assert json_name('A <b> & "c"') == b'"A \\u003cb\\u003e \\u0026 \\"c\\""'


def test_event_times_and_classification():
    assert normalize_time("2021-01-01T00:00:00.0Z") == "2021-01-01T00:00:00Z"
    assert normalize_time("2023-07-28T15:58:38.9236591+00:00") == "2023-07-28T15:58:38.923659Z"
    assert normalize_time(1690617099) == "2023-07-29T07:51:39Z"
    assert classify_diff(str(RECENTCHANGE)) == "events"
    assert classify_diff(str(WIKIDATA_INCR)) == "xml"
    assert classify_diff(str(ENWIKI)) == "xml"


def test_fold_orders_by_time_whatever_the_input_order(enwiki_build):
    from wikisnap.schemas.siteinfo import SiteInfo
    from wikisnap.transforms.update.find import BaseHit

    site = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")
    ctx = DiffContext(sites={"enwiki": site}, namespaces=frozenset({0}))
    records = records_by_id(enwiki_build / "enwiki_namespace_0.tar.gz")
    delete, move, _vis = enwiki_events(records)
    base = BaseHit("enwiki", 0, 25, records[25])
    undelete = page_change(
        "undelete", "2016-05-03T00:00:00Z", delete["page"], {"rev_id": 1, "rev_dt": "2016-05-01T00:00:00Z"}
    )
    changes = [change_from_page_change(e, ctx, "test") for e in (undelete, delete)]
    for order in (changes, changes[::-1]):
        outcome = fold_page(base, order, site, frozenset({0}))
        assert outcome.record is not None and outcome.record["article_body"] == records[25]["article_body"]
        assert [rec["event"]["type"] for _ch, rec, _o in outcome.batch] == ["delete", "update"]
    # a move of a page the snapshot does not hold is a counted skip
    outcome = fold_page(None, [change_from_page_change(move, ctx, "test")], site, frozenset({0}))
    assert outcome.record is None and outcome.counts == {"skipped/move_of_page_not_in_snapshot": 1}


def test_small_members_untouched_are_copied_and_parquet_follows(build, update, enwiki_events_update, tmp_path):
    _base, events, reference = enwiki_events_update
    base = tmp_path / "base"
    assert build([ENWIKI], base, "--member-size-mb", "0.2")[0] == 0
    code, _stdout, stderr = update(base, [events], tmp_path / "out")
    assert code == 0, stderr
    out = tmp_path / "out"
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    # pages 25 and 39 share the first member, 290 is in another: two rewritten, the rest copied
    assert counts["members/ns0/rewritten"] == 2 and counts["members/ns0/copied"] > 5
    # same records as the update of the one-member base, member by member in page-id order
    names, records, lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    assert lines == read_snapshot(reference / "enwiki_namespace_0.tar.gz")[2]
    assert names == [f"enwiki_namespace_0_{n}.ndjson" for n in range(len(names))]
    # untouched members are the base's bytes; Parquet shard n holds member n's records
    base_names, _base_records, _ = read_snapshot(base / "enwiki_namespace_0.tar.gz")
    assert len(base_names) == counts["members/ns0/rewritten"] + counts["members/ns0/copied"]
    # Autism (25) filled a member of its own: deleted, its member is gone and the rest renumbered
    assert len(names) == len(base_names) - 1
    shards = sorted(
        (out / "parquet" / "enwiki_namespace_0").glob("*.parquet"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
    )
    assert len(shards) == len(names)
    rows = [r for s in shards for r in table_to_records(pq.read_table(s))]
    assert [(to_wme_json(row) + "\n").encode() for row in rows] == lines
    meta = json.loads((out / "enwiki_namespace_0.json").read_text())
    assert meta["date_modified"] == max(r["date_modified"] for r in records)


def test_line_by_line_rewrite_equals_member_rewrite(enwiki_build, tmp_path):
    from wikisnap.transforms.update.find import BaseSnapshot
    from wikisnap.transforms.update.rewrite import rewrite_members, rewrite_snapshot
    from wikisnap.transforms.write import WriteOptions

    records = records_by_id(enwiki_build / "enwiki_namespace_0.tar.gz")
    changed = {
        25: None,
        39: {**records[39], "name": "Albedo (physics)"},
        99999999: {**records[12], "identifier": 99999999},
    }
    opts = WriteOptions(str(tmp_path / "out"), str(tmp_path / "tmp"), 100_000_000, frozenset({"ndjson"}), None)
    snapshot = BaseSnapshot("enwiki", 0, str(enwiki_build / "enwiki_namespace_0.tar.gz"))
    fast_parts, fast_counts = rewrite_members(snapshot, changed, opts)
    opts2 = WriteOptions(str(tmp_path / "out2"), str(tmp_path / "tmp2"), 100_000_000, frozenset({"ndjson"}), None)
    slow_parts, slow_counts = rewrite_snapshot("enwiki", 0, snapshot.tarball, changed, opts2)
    assert [p.records for p in fast_parts] == [p.records for p in slow_parts] == [len(records) + 1 - 1]
    assert fast_counts["records/ns0/copied"] == slow_counts["records/ns0/copied"] == len(records) - 2
    fast = Path(fast_parts[0].gz_path).read_bytes()
    slow = Path(slow_parts[0].gz_path).read_bytes()
    assert fast == slow


def test_date_option_reassembles_untouched_snapshots(enwiki_build, update, tmp_path):
    code, _stdout, stderr = update(enwiki_build, [RECENTCHANGE], tmp_path / "out", "--date", "20160601")
    assert code == 0, stderr
    meta = json.loads((tmp_path / "out" / "enwiki_namespace_0.json").read_text())
    assert meta["date_modified"] == "2016-06-01T00:00:00Z"
    assert (
        read_snapshot(tmp_path / "out" / "enwiki_namespace_0.tar.gz")[2]
        == read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")[2]
    )


def test_update_graph_passes_beams_type_check_when_asked(enwiki_events_update, update, tmp_path, type_checked):
    # Runs skip Beam's construction-time type check by default (engine.without_type_check); the
    # graph must still pass it, with the same records as the run without it.
    base, events, out = enwiki_events_update
    checked = type_checked
    code, _stdout, stderr = update(base, [events], tmp_path / "checked", "--pipeline_type_check")
    assert code == 0, stderr
    assert len(checked) > 20  # the check ran over the graph's steps
    assert records_by_id(tmp_path / "checked" / "enwiki_namespace_0.tar.gz") == records_by_id(
        out / "enwiki_namespace_0.tar.gz"
    )
