"""Issue 15's SQL tables: page images (page_props + image.sql), wbc_entity_usage, user_groups, flaggedpages.

The XML is the real enwiki sample; the SQL dumps carry the real rmwiki page_props preamble and, for
tables without a real sample, CREATE TABLE blocks modelled on MediaWiki's schema (tests/sqlfiles.py).
Page ids, titles, revision ids, editor ids and file names are the sample's own (the file names are
the images its pages show); Wikidata ids are the real items. Two real WME records check the rules
against WME's own output: the file URL of `AJ_Ginnis.png` (frwiki, 2024) and the whole enwiki
"Squirrel" record of 2023 rebuilt from its own SQL rows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlfiles import FLAGGEDPAGES, IMAGE, RM_PAGE_PROPS, USER_GROUPS, WBC_ENTITY_USAGE, image_row, sql_dump

from conftest import DATA, ENWIKI, read_snapshot
from wikisnap.schemas.arrow import table_to_records
from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.sqldump import sql_int, sql_text
from wikisnap.transforms.parse.sqlrows import editor_fields, file_url, page_enrichment, upload_dir

GOLDEN = DATA / "golden" / "enwiki_namespace_0.lines.sha256"
SQUIRREL = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"  # line 2: enwiki "Squirrel", Aug 2023
GINNIS = DATA / "html" / "wme-repo__frwiki-Alexandros_Ioannis_Ginnis.json"
NEW_FIELDS = ("image", "additional_entities")
NEW_EDITOR_FIELDS = ("groups", "is_bot", "is_admin", "is_patroller", "has_advanced_rights")

# Expected upload URLs, written out (md5 of the name gives the two directories).
ARISTOTLE = "https://upload.wikimedia.org/wikipedia/commons/a/ae/Aristotle_Altemps_Inv8575.jpg"
ACTRIUS_POSTER = "https://upload.wikimedia.org/wikipedia/en/e/e2/Actrius_film_poster.jpg"
LINCOLN = "https://upload.wikimedia.org/wikipedia/commons/a/ab/Abraham_Lincoln_O-77_matte_collodion_print.jpg"
ANARCHY = "https://upload.wikimedia.org/wikipedia/commons/7/7a/Anarchy-symbol.svg"


def records(out: Path) -> dict[int, dict]:
    _names, recs, _lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    return {r["identifier"]: r for r in recs}


def counts(out: Path, db: str = "enwiki") -> dict[str, int]:
    return json.loads((out / "manifest.json").read_text())["counts"][db]


@pytest.fixture(scope="module")
def tables_build(tmp_path_factory, build):
    """enwiki + page_props (images) + enwiki and commonswiki image.sql + wbc_entity_usage + user_groups + flaggedpages."""
    tmp = tmp_path_factory.mktemp("sqltables")
    props = sql_dump(
        tmp / "enwiki-20160501-page_props.sql.gz",
        RM_PAGE_PROPS,
        [
            (12, "page_image_free", "Anarchy-symbol.svg", None),  # free and non-free: the free one wins
            (12, "page_image", "Levellers_declaration_and_standard.gif", None),
            (308, "page_image_free", "Aristotle_Altemps_Inv8575.jpg", None),  # on Commons, sized there
            (330, "page_image", "Actrius_film_poster.jpg", None),  # non-free poster: a local file
            (307, "page_image_free", "Abraham_Lincoln_O-77_matte_collodion_print.jpg", None),  # Commons, no size
            (10, "page_image_free", "Anarchy-symbol.svg", None),  # page 10 is a redirect: no record
        ],
    )
    # Sizes in these two dumps are placeholders (the tests check that they travel, not their values).
    local_images = sql_dump(
        tmp / "enwiki-20160501-image.sql.gz",
        RM_PAGE_PROPS,
        [image_row("Actrius_film_poster.jpg", 220, 326)],
        create=IMAGE,
    )
    commons_images = sql_dump(
        tmp / "commonswiki-20160501-image.sql.gz",
        RM_PAGE_PROPS,
        [image_row("Aristotle_Altemps_Inv8575.jpg", 1200, 1600), image_row("Actrius_film_poster.jpg", 1, 1)],
        create=IMAGE,
    )
    usage = sql_dump(
        tmp / "enwiki-20160501-wbc_entity_usage.sql.gz",
        RM_PAGE_PROPS,
        [
            # file order is not the record's order: entity ids, then aspects, in byte order
            (1, "Q6199", "T", 12),
            (2, "Q6199", "S", 12),
            (3, "Q6199", "C", 12),
            (4, "P31", "C.P1630", 12),
            (5, "Q101038", "O", 39),
            (6, "Q101038", "S", 39),
            (7, "Q6199", "L.en", 12),
            (8, "Q5", "O", 999_999_999),  # no such page
        ],
        create=WBC_ENTITY_USAGE,
    )
    groups = sql_dump(
        tmp / "enwiki-20160501-user_groups.sql.gz",
        RM_PAGE_PROPS,
        [
            (7328338, "bot", None),  # Yobot: A (290), Actrius (330)
            (13286072, "bot", None),  # ClueBot NG: Achilles, ASCII, Amphibian
            (13286072, "rollbacker", None),
            (3810835, "sysop", None),  # Doc James: Autism (25)
            (502540, "sysop", None),  # Xaosflux: Alain Connes (340)
            (502540, "bureaucrat", None),
            (14394459, "bot", "20151231000000"),  # Bibcode Bot: expired before the snapshot date
            (14394459, "ipblock-exempt", "20301231000000"),  # …and one that has not expired
            (1, "sysop", None),  # no revision of this snapshot
        ],
        create=USER_GROUPS,
    )
    flagged = sql_dump(
        tmp / "enwiki-20160501-flaggedpages.sql.gz",
        RM_PAGE_PROPS,
        [
            (290, 1, None, 717941405, 0),  # A: its current revision is the stable one
            (25, 0, "20160425112603", 717001444, 0),  # Autism: the current revision awaits review
            (999_999_999, 1, None, 1, 0),
        ],
        create=FLAGGEDPAGES,
    )
    out = tmp / "out"
    inputs = [groups, ENWIKI, usage, props, flagged, commons_images, local_images]
    code, _stdout, stderr = build(inputs, out, "--date", "20160502")
    assert code == 0, stderr
    return out


def test_page_images_repository_url_and_size(tables_build):
    recs = records(tables_build)
    assert recs[308]["image"] == {"content_url": ARISTOTLE, "width": 1200, "height": 1600}
    # The wiki's own image.sql has the poster: a local file, sized by the local row.
    assert recs[330]["image"] == {"content_url": ACTRIUS_POSTER, "width": 220, "height": 326}
    assert recs[307]["image"] == {"content_url": LINCOLN}
    assert recs[12]["image"] == {"content_url": ANARCHY}
    assert sum("image" in r for r in recs.values()) == 4
    c = counts(tables_build)
    assert c["enrich/image/records_with"] == 4 and c["enrich/image/records_without"] == 102
    assert c["enrich/image/local"] == 1 and c["enrich/image/commons"] == 5  # every page_props row, page 10's too
    assert c["enrich/image/unmatched_page"] == 1
    assert "enrich/image/repository_assumed" not in c  # enwiki's image.sql was given
    assert c["enrich/image/rows_used"] == 1 and counts(tables_build, "commonswiki")["enrich/image/rows_used"] == 2


def test_image_key_order_follows_wme_struct(tables_build):
    _names, _recs, lines = read_snapshot(tables_build / "enwiki_namespace_0.tar.gz")
    line = next(raw for raw in lines if b'"identifier":308,' in raw[:200])
    # ... "event":{…},"image":{"content_url":…,"width":…,"height":…}} — image is WME's last Article field
    assert line.rstrip().endswith(b'"image":{"content_url":"' + ARISTOTLE.encode() + b'","width":1200,"height":1600}}')


def test_additional_entities_in_api_order_with_sorted_aspects(tables_build):
    recs = records(tables_build)
    url = "https://www.wikidata.org/entity/"
    assert recs[12]["additional_entities"] == [
        {"identifier": "P31", "url": url + "P31", "aspects": ["C.P1630"]},
        {"identifier": "Q6199", "url": url + "Q6199", "aspects": ["C", "L.en", "S", "T"]},
    ]
    assert recs[39]["additional_entities"] == [{"identifier": "Q101038", "url": url + "Q101038", "aspects": ["O", "S"]}]
    c = counts(tables_build)
    assert c["enrich/entities/records_with"] == 2 and c["enrich/entities/records_without"] == 104
    assert c["enrich/entities/unmatched_page"] == 1 and c["enrich/wbc_entity_usage/rows_used"] == 8


def test_editor_groups_and_flags(tables_build):
    recs = records(tables_build)
    editor = lambda pid: recs[pid]["version"]["editor"]  # noqa: E731
    assert editor(290) == {"identifier": 7328338, "name": "Yobot", "groups": ["bot", "*", "user"], "is_bot": True}
    assert editor(330)["groups"] == ["bot", "*", "user"]
    assert editor(305)["groups"] == ["bot", "rollbacker", "*", "user"]
    assert editor(305)["is_bot"] is True and "is_patroller" not in editor(
        305
    )  # WME counts "rollback", not "rollbacker"
    assert editor(25) == {
        "identifier": 3810835,
        "name": "Doc James",
        "groups": ["sysop", "*", "user"],
        "is_admin": True,
    }
    assert editor(340)["groups"] == ["bureaucrat", "sysop", "*", "user"]
    assert editor(340)["is_admin"] is True and editor(340)["has_advanced_rights"] is True
    assert editor(39)["groups"] == ["ipblock-exempt", "*", "user"] and "is_bot" not in editor(39)  # bot expired
    assert editor(316)["groups"] == ["*", "user"]  # registered, no explicit group
    assert editor(12) == {"name": "85.193.216.88", "is_anonymous": True}  # anonymous: no groups
    c = counts(tables_build)
    anonymous = sum(1 for r in recs.values() if r["version"].get("editor", {}).get("is_anonymous"))
    assert c["enrich/editor_groups/records_anonymous"] == anonymous
    members = {7328338, 13286072, 3810835, 502540, 14394459}
    assert c["enrich/editor_groups/records_with_explicit"] == sum(
        1 for r in recs.values() if r["version"].get("editor", {}).get("identifier") in members
    )
    assert c["enrich/editor_groups/records_with_explicit"] + c["enrich/editor_groups/records_implicit_only"] == sum(
        1 for r in recs.values() if r["version"].get("editor", {}).get("identifier")
    )
    assert c["enrich/user_groups/rows_expired"] == 1 and c["enrich/user_groups/rows_used"] == 8
    assert c["enrich/editor_groups/users_without_revision"] == 1


def test_flagged_stable_only_when_the_stable_revision_is_current(tables_build):
    recs = records(tables_build)
    assert recs[290]["version"]["is_flagged_stable"] is True
    assert "is_flagged_stable" not in recs[25]["version"]
    assert sum(bool(r["version"].get("is_flagged_stable")) for r in recs.values()) == 1
    c = counts(tables_build)
    assert c["enrich/flagged/records_stable"] == 1 and c["enrich/flagged/records_pending"] == 1
    assert c["enrich/flagged/records_not_reviewed"] == 104 and c["enrich/flagged/unmatched_page"] == 1
    line = next(
        raw for raw in read_snapshot(tables_build / "enwiki_namespace_0.tar.gz")[2] if b'"identifier":290,' in raw
    )
    assert b'"is_minor_edit"' not in line or line.index(b'"is_minor_edit"') < line.index(b'"is_flagged_stable"')
    assert line.index(b'"is_flagged_stable":true') < line.index(b'"editor":')  # WME's Version order


def test_tables_change_only_their_fields_and_parquet_agrees(tables_build, enwiki_build):
    recs, base = records(tables_build), records(enwiki_build)
    assert recs.keys() == base.keys()
    for pid, rec in recs.items():
        for field in (*NEW_FIELDS, "main_entity"):
            rec.pop(field, None)
        rec["version"].pop("is_flagged_stable", None)
        for field in NEW_EDITOR_FIELDS:
            rec["version"].get("editor", {}).pop(field, None)
        assert rec == base[pid], pid
    # The Parquet shard holds the same records, new fields included.
    _names, _recs, lines = read_snapshot(tables_build / "enwiki_namespace_0.tar.gz")
    shards = sorted((tables_build / "parquet" / "enwiki_namespace_0").glob("*.parquet"))
    back = [r for shard in shards for r in table_to_records(pq.read_table(shard))]
    assert [to_wme_json_bytes(r) for r in back] == lines


def test_build_without_tables_is_byte_identical_to_main(enwiki_build):
    """The golden was written by main's code (before these tables): same lines, same bytes."""
    expected = [line.split() for line in GOLDEN.read_text().splitlines() if not line.startswith("#")]
    _names, recs, lines = read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")
    got = [[str(r["identifier"]), hashlib.sha256(line).hexdigest()] for r, line in zip(recs, lines, strict=True)]
    assert got == expected


def _strip(record: dict) -> dict:
    out = json.loads(json.dumps(record))
    for field in NEW_FIELDS:
        out.pop(field)
    for field in NEW_EDITOR_FIELDS:
        out["version"]["editor"].pop(field, None)
    return out


def test_wme_squirrel_record_rebuilt_from_its_own_sql_rows(tmp_path, build):
    """The real WME record of enwiki "Squirrel" without image, entities and editor groups, plus SQL
    rows holding what WME published: wikisnap gives back WME's image (URL computed from the name,
    size from Commons' image.sql), entities and groups (less `autoconfirmed`, which needs the user table)."""
    original = json.loads(SQUIRREL.read_text("utf-8").splitlines()[1])
    assert original["name"] == "Squirrel" and original["is_part_of"]["identifier"] == "enwiki"
    page = original["identifier"]
    source = tmp_path / "squirrel.ndjson"
    source.write_text(json.dumps(_strip(original), ensure_ascii=False) + "\n", "utf-8")
    name = original["image"]["content_url"].rsplit("/", 1)[1]
    props = sql_dump(
        tmp_path / "enwiki-20230829-page_props.sql.gz", RM_PAGE_PROPS, [(page, "page_image_free", name, None)]
    )
    images = sql_dump(
        tmp_path / "commonswiki-20230829-image.sql.gz",
        RM_PAGE_PROPS,
        [image_row(name, original["image"]["width"], original["image"]["height"])],
        create=IMAGE,
    )
    rows = [
        (i, e["identifier"], aspect, page)
        for i, (e, aspect) in enumerate((e, a) for e in original["additional_entities"] for a in reversed(e["aspects"]))
    ]
    usage = sql_dump(tmp_path / "enwiki-20230829-wbc_entity_usage.sql.gz", RM_PAGE_PROPS, rows, create=WBC_ENTITY_USAGE)
    editor = original["version"]["editor"]
    explicit = [g for g in editor["groups"] if g not in ("*", "user", "autoconfirmed")]
    groups = sql_dump(
        tmp_path / "enwiki-20230829-user_groups.sql.gz",
        RM_PAGE_PROPS,
        [(editor["identifier"], g, None) for g in explicit],
        create=USER_GROUPS,
    )
    out = tmp_path / "out"
    code, _stdout, stderr = build([source, props, images, usage, groups], out)
    assert code == 0, stderr
    rec = records(out)[page]
    assert rec["image"] == original["image"]  # content_url to the byte, width, height
    by_id = {e["identifier"]: e for e in original["additional_entities"]}
    assert sorted(e["identifier"] for e in rec["additional_entities"]) == sorted(by_id)
    assert [e["identifier"] for e in rec["additional_entities"]] == sorted(by_id)  # ASCII ids: byte order
    for entity in rec["additional_entities"]:
        assert entity == by_id[entity["identifier"]]  # url and aspects, in WME's order
    got = rec["version"]["editor"]
    assert got["groups"] == [g for g in editor["groups"] if g != "autoconfirmed"]
    assert got["is_bot"] is True
    assert {k: v for k, v in got.items() if k not in NEW_EDITOR_FIELDS} == _strip(original)["version"]["editor"]
    assert _strip(rec) == _strip(original)  # nothing else changed
    c = counts(out)
    # no enwiki image.sql: the repository is assumed (Commons), and said so
    assert c["enrich/image/repository_assumed"] == 1 and c["enrich/image/commons"] == 1
    assert c["enrich/editor_groups/records_with_explicit"] == 1


def test_bad_new_table_inputs_fail_before_the_graph(tmp_path, build):
    """A dump lacking a column wikisnap needs, or an image.sql of a wiki not in the run (only
    Commons' may come without its XML): exit 2, one line naming the file."""
    no_group = USER_GROUPS.replace("  `ug_group` varbinary(255) NOT NULL DEFAULT '',\n", "")
    bad = sql_dump(tmp_path / "enwiki-20160501-user_groups.sql.gz", RM_PAGE_PROPS, [(1, None)], create=no_group)
    code, _stdout, stderr = build([ENWIKI, bad], tmp_path / "out")
    assert code == 2 and str(bad) in stderr and "lacks column(s) ug_group" in stderr
    images = sql_dump(
        tmp_path / "dewiki-20160501-image.sql.gz", RM_PAGE_PROPS, [image_row("X.jpg", 1, 1)], create=IMAGE
    )
    code, _stdout, stderr = build([ENWIKI, images], tmp_path / "out2")
    assert code == 2 and str(images) in stderr and "no XML dump of dewiki" in stderr
    assert "Traceback" not in stderr


# -- the pure rules ------------------------------------------------------------------------------


def test_file_url_reproduces_real_wme_image_urls():
    for record in (json.loads(GINNIS.read_text("utf-8")), json.loads(SQUIRREL.read_text("utf-8").splitlines()[1])):
        url = record["image"]["content_url"]
        name = url.rsplit("/", 1)[1]
        assert file_url(upload_dir("commonswiki", None), name) == url
    # spaces are underscores before hashing; the name is rawurlencoded in the URL, not in the hash
    assert file_url("wikipedia/commons", "AJ Ginnis.png").endswith("/a/a2/AJ_Ginnis.png")
    zurich = file_url("wikipedia/rm", "Karte_Gemeinde_Zürich_2007.png")  # rmwiki page_props' real value
    assert zurich == "https://upload.wikimedia.org/wikipedia/rm/b/b7/Karte_Gemeinde_Z%C3%BCrich_2007.png"
    assert file_url("wikipedia/en", "Foo_(bar),_1.jpg").endswith("/Foo_%28bar%29%2C_1.jpg")


@pytest.mark.parametrize(
    "db, base, expected",
    [
        ("enwiki", "https://en.wikipedia.org/wiki/Main_Page", "wikipedia/en"),
        ("zh_min_nanwiki", "https://zh-min-nan.wikipedia.org/wiki/Thâu-ia̍h", "wikipedia/zh-min-nan"),
        ("frwiktionary", "https://fr.wiktionary.org/wiki/Wiktionnaire:Page_d’accueil", "wiktionary/fr"),
        ("elwikivoyage", "http://localhost/elwv/index.php/Κύρια_Σελίδα", "wikivoyage/el"),
        ("commonswiki", "https://commons.wikimedia.org/wiki/Main_Page", "wikipedia/commons"),
        ("metawiki", "https://meta.wikimedia.org/wiki/Main_Page", "wikipedia/meta"),
    ],
)
def test_upload_dir(db, base, expected):
    assert upload_dir(db, SiteInfo(dbname=db, base=base)) == expected


def test_editor_fields_order_and_flags():
    # A 2024 record (HF structured-wikipedia, Launchballer): explicit groups sorted, then * and user.
    got = editor_fields(["rollbacker", "reviewer", "extendedmover", "extendedconfirmed", "autoreviewer"])
    assert got["groups"] == [
        "autoreviewer",
        "extendedconfirmed",
        "extendedmover",
        "reviewer",
        "rollbacker",
        "*",
        "user",
    ]
    assert got == {"groups": got["groups"], "is_patroller": True}
    assert editor_fields([], "~2025-12345-67") == {"groups": ["*", "temp"]}  # a temporary account
    assert editor_fields(["checkuser", "sysop"])["has_advanced_rights"] is True


def test_page_enrichment_new_kinds():
    site = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")
    got = page_enrichment(
        site,
        [
            ("I", (1, "https://u/non-free.jpg", 10, 20)),
            ("I", (0, "https://u/free.jpg", 0, 0)),
            ("E", b"Q2\x00T\x00Q10\x00S"),  # one run of neighbouring rows: entity, aspect, … as dumped
            ("E", b"Q2\x00C.P31"),
            ("F", 5),
            ("G", (7, ("sysop",))),
            ("G", (7, ("bot",))),
        ],
    )
    assert got["image"] == {"content_url": "https://u/free.jpg"}  # no size: width/height left out
    assert [e["identifier"] for e in got["additional_entities"]] == ["Q10", "Q2"]  # bytes: "Q1" < "Q2"
    assert got["additional_entities"][1]["aspects"] == ["C.P31", "T"]
    assert got["flagged_stable"] == 5 and got["editor_groups"] == {7: ("bot", "sysop")}


# -- the fast reader (sqldump.iter_raw_batches) against the exact one (iter_rows) ----------------

REAL_DUMPS = sorted((DATA / "sql").glob("*.sql.gz"))


def _options(site):
    from wikisnap.transforms.parse.sqlrows import EnrichOptions

    return EnrichOptions(100, (("enwiki", site),))


def _both(path, columns):
    """(rows from iter_raw_batches converted, rows from iter_rows) — NULL strings as '' in both."""
    from wikisnap.transforms.formats.sqldump import (
        _NUMERIC_TYPES,
        iter_raw_batches,
        iter_rows,
        raw_column_index,
        read_sql_header,
    )

    header = read_sql_header(str(path))
    idx = raw_column_index(header, columns)
    numeric = {c: t in _NUMERIC_TYPES for c, t in zip(header.columns, header.types, strict=True)}

    def number(raw: bytes):
        value = sql_int(raw) if raw == b"NULL" or raw.lstrip(b"-").isdigit() else float(raw)
        return value

    fast = [
        tuple(number(row[idx[c]]) if numeric[c] else sql_text(row[idx[c]]) for c in columns)
        for batch in iter_raw_batches(str(path), header, columns)
        for row in batch
    ]
    exact = [
        tuple("" if v is None and not numeric[c] else v for c, v in zip(columns, row, strict=True))
        for row in iter_rows(str(path), header, columns)
    ]
    return fast, exact


@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: p.name[:40])
def test_fast_reader_gives_the_exact_readers_rows_on_every_real_dump(path):
    from wikisnap.transforms.formats.sqldump import read_sql_header

    header = read_sql_header(str(path))
    # every column: numbers, strings with escapes and UTF-8, NULLs
    fast, exact = _both(path, header.columns)
    assert fast == exact and len(fast) > 0


def test_fast_reader_escapes_multiline_statements_and_bad_rows(tmp_path):
    from wikisnap.transforms.formats.sqldump import SqlDumpError, iter_raw_batches, read_sql_header

    rows = [(1, "Q1", "S", 12), (2, "Q1", "L.en", 12), (3, "it's\\a\nb\x00c", "T", 25), (4, "Q5", "O", 25)]
    good = sql_dump(tmp_path / "enwiki-20240301-wbc_entity_usage.sql.gz", RM_PAGE_PROPS, rows, create=WBC_ENTITY_USAGE)
    fast, exact = _both(good, ("eu_row_id", "eu_entity_id", "eu_aspect", "eu_page_id"))
    assert fast == exact == [tuple(r) for r in rows]
    # a page's run as it travels (escaped bytes, NUL-separated) gives the values back
    from wikisnap.transforms.parse.sqlrows import SqlInput, keyed_rows, raw_values

    site = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page")
    inp = SqlInput(str(good), "wbc_entity_usage", "enwiki", read_sql_header(str(good)))
    runs = [(key, raw_values(value[1])) for _tag, (key, value) in keyed_rows(inp, _options(site), {})]
    assert runs == [(("enwiki", 12), ["Q1", "S", "Q1", "L.en"]), (("enwiki", 25), ["it's\\a\nb\x00c", "T", "Q5", "O"])]
    # one statement over several lines (not mysqldump's layout): the exact reader takes over
    text = gzip.decompress(good.read_bytes()).replace(b"VALUES (", b"VALUES\n(")
    split = tmp_path / "enwiki-20240301-wbc_entity_usage.sql"
    split.write_bytes(text)
    fast, exact = _both(split, ("eu_row_id", "eu_entity_id", "eu_aspect", "eu_page_id"))
    assert fast == exact == [tuple(r) for r in rows]
    # a bad row on the second INSERT line: the first line's rows come, then the exact error
    text = gzip.decompress(good.read_bytes())
    insert = text[text.index(b"INSERT INTO") : text.index(b";\n", text.index(b"INSERT INTO")) + 2]
    bad_text = text.replace(insert, insert + insert.replace(b"(4,'Q5','O',25)", b"(4,'Q5','O')"))
    bad = tmp_path / "bad-wbc_entity_usage.sql"
    bad.write_bytes(bad_text)
    header = read_sql_header(str(bad))
    got = []
    with pytest.raises(SqlDumpError) as err:
        for batch in iter_raw_batches(str(bad), header, ("eu_page_id",)):
            got.extend(batch)
    assert len(got) == 7 and "has 3 values, its CREATE TABLE 4 columns" in str(err.value)
    line = bad_text[: bad_text.rindex(b"INSERT INTO")].count(b"\n") + 1
    assert f"line {line}:" in str(err.value) and str(bad) in str(err.value)
