"""SQL enrichment: page_props, categorylinks (both layouts), redirect, page_restrictions, --qid-map.

The XML is the real enwiki sample; the SQL dumps carry real dump preambles (rmwiki page_props,
crwiki page/redirect) and, for tables without a real sample, CREATE TABLE blocks modelled on
MediaWiki's schema (tests/sqlfiles.py). QIDs are the real Wikidata items of those articles.
"""

from __future__ import annotations

import bz2
import gzip
import json
import time

import pytest
from sqlfiles import (
    CATEGORYLINKS_CL_TO,
    CATEGORYLINKS_TARGET_ID,
    CR_PAGE,
    CR_REDIRECT,
    LINKTARGET,
    PAGE_RESTRICTIONS,
    RM_PAGE_PROPS,
    sql_dump,
)

from conftest import ENWIKI, read_snapshot
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.spill import write_run
from wikisnap.transforms.parse.sqlrows import page_enrichment
from wikisnap.transforms.write import WriteOptions, merge_enrichment, write_bucket

QIDS = {12: "Q6199", 25: "Q38404", 39: "Q101038", 290: "Q9659"}  # Anarchism, Autism, Albedo, A
HIDDEN = "Articles_with_short_description"  # hidden, added by {{Short description}}
TS = "2024-03-01 00:00:00"
# Anarchism's page image on Commons, hashed directories of md5("Anarchy-symbol.svg") = 7a…
ANARCHY_SYMBOL = "https://upload.wikimedia.org/wikipedia/commons/7/7a/Anarchy-symbol.svg"


def page_props(tmp_path, name="enwiki-20240301-page_props.sql.gz"):
    rows = [(pid, "wikibase_item", qid, None) for pid, qid in QIDS.items()]
    rows += [
        (12, "page_image_free", "Anarchy-symbol.svg", None),  # the page image (tests/test_sqltables.py)
        (307, "defaultsort", "Lincoln, Abraham", None),  # another property: skipped
        (10, "wikibase_item", "Q1", None),  # AccessibleComputing is a redirect page: no record
    ]
    return sql_dump(tmp_path / name, RM_PAGE_PROPS, rows)


def records(out):
    _names, recs, _lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    return {r["identifier"]: r for r in recs}


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def names(record, field="categories"):
    return [c["name"] for c in record.get(field, [])]


@pytest.fixture(scope="module")
def enriched(tmp_path_factory, build):
    """enwiki + page_props + categorylinks (cl_to layout) + page_restrictions, default options."""
    tmp = tmp_path_factory.mktemp("enrich")
    cl = sql_dump(
        tmp / "enwiki-20240301-categorylinks.sql.gz",
        RM_PAGE_PROPS,
        [
            (12, "Anarchism", "ANARCHISM", "", TS, "uppercase", "page"),  # also in the wikitext
            (12, HIDDEN, "ANARCHISM", "", TS, "uppercase", "page"),
            (25, HIDDEN, "AUTISM", "", TS, "uppercase", "page"),
            (999_999_999, "Anarchism", "X", "", TS, "uppercase", "page"),  # no such page
        ],
        create=CATEGORYLINKS_CL_TO,
    )
    pr = sql_dump(
        tmp / "enwiki-20240301-page_restrictions.sql.gz",
        RM_PAGE_PROPS,
        [(1, 12, "edit", "autoconfirmed", 0, "infinity"), (2, 12, "move", "sysop", 0, "20300101000000")],
        create=PAGE_RESTRICTIONS,
    )
    out = tmp / "out"
    # Any order on the command line; the SQL files are found by content.
    code, stdout, stderr = build([pr, ENWIKI, page_props(tmp), cl], out)
    assert code == 0, stderr
    return out


def test_main_entity_on_exactly_the_pages_with_a_qid(enriched):
    recs = records(enriched)
    assert len(recs) == 106
    for pid, rec in recs.items():
        if pid in QIDS:
            qid = QIDS[pid]
            assert rec["main_entity"] == {"identifier": qid, "url": f"https://www.wikidata.org/entity/{qid}"}
        else:
            assert "main_entity" not in rec
    counts = manifest(enriched)["counts"]["enwiki"]
    assert counts["enrich/records_with_qid"] == 4
    assert counts["enrich/records_without_qid"] == 102
    assert counts["enrich/main_entity/unmatched_page"] == 1  # page 10, a redirect
    assert counts["enrich/page_props/rows_other_property"] == 1
    assert counts["enrich/page_props/rows_used"] == 6


def test_categories_wikitext_order_then_sql_extras(enriched):
    recs = records(enriched)
    anarchism = names(recs[12])
    assert anarchism[-1] == "Category:Articles with short description"
    assert anarchism.count("Category:Anarchism") == 1
    assert anarchism[:3] == ["Category:Anarchism", "Category:Political culture", "Category:Political ideologies"]
    assert recs[12]["categories"][-1]["url"] == "https://en.wikipedia.org/wiki/Category:Articles_with_short_description"
    assert names(recs[25])[-1] == "Category:Articles with short description"
    counts = manifest(enriched)["counts"]["enwiki"]
    assert counts["enrich/categories_from_sql_only"] == 2
    assert counts["enrich/categories_from_both"] == 1
    assert counts["enrich/categorylinks/unmatched_page"] == 1
    assert manifest(enriched)["options"]["categories"] == "both"


def test_protection_from_page_restrictions(enriched):
    recs = records(enriched)
    assert recs[12]["protection"] == [
        {"type": "edit", "level": "autoconfirmed", "expiry": "infinity"},
        {"type": "move", "level": "sysop", "expiry": "2030-01-01T00:00:00Z"},
    ]
    assert sum("protection" in r for r in recs.values()) == 1
    assert manifest(enriched)["counts"]["enwiki"]["enrich/records_with_protection"] == 1


def test_enrichment_keeps_the_page_accounting(enriched, enwiki_build):
    """reconcile() counts XML pages only: SQL rows change no page count, and all else is equal."""
    m = manifest(enriched)
    plain = manifest(enwiki_build)
    sql_counts = {k: v for k, v in m["counts"]["enwiki"].items() if not k.startswith("enrich/")}
    assert sql_counts == plain["counts"]["enwiki"]
    assert sorted(i["table"] for i in m["sql_inputs"]) == ["categorylinks", "page_props", "page_restrictions"]
    recs, base = records(enriched), records(enwiki_build)
    for pid, rec in base.items():
        for field in ("main_entity", "protection", "categories", "image"):
            rec.pop(field, None)
            recs[pid].pop(field, None)
        assert recs[pid] == rec


def test_linktarget_layout_and_sql_categories_and_qid_map(tmp_path, build):
    """MW 1.45 categorylinks (cl_target_id → linktarget), --categories sql, QIDs from a CSV map."""
    cl = sql_dump(
        tmp_path / "enwiki-20250101-categorylinks.sql.gz",
        RM_PAGE_PROPS,
        [
            (12, "ANARCHISM", "", TS, "page", 1, 7),
            (12, "ANARCHISM", "", TS, "page", 1, 8),
            (39, "", "", TS, "page", 1, 9),
        ],
        create=CATEGORYLINKS_TARGET_ID,
    )
    lt = sql_dump(
        tmp_path / "enwiki-20250101-linktarget.sql.gz",
        RM_PAGE_PROPS,
        [(7, 14, "Anarchism"), (8, 14, HIDDEN), (9, 10, "Short_description")],  # 9: a template, not a category
        create=LINKTARGET,
    )
    qid_map = tmp_path / "qids.csv"
    qid_map.write_text("page_id,qid\n" + "".join(f"{pid},{qid}\n" for pid, qid in QIDS.items()))
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI, cl, lt], out, "--categories", "sql", "--qid-map", str(qid_map))
    assert code == 0, stderr
    recs = records(out)
    assert names(recs[12]) == ["Category:Anarchism", "Category:Articles with short description"]
    assert "categories" not in recs[39] and "categories" not in recs[25]  # sql only: no rows, no categories
    assert {pid for pid, r in recs.items() if "main_entity" in r} == set(QIDS)
    counts = manifest(out)["counts"]["enwiki"]
    assert counts["enrich/categorylinks/unmatched_target"] == 1
    assert counts["enrich/linktarget/rows_other_namespace"] == 1
    assert counts["enrich/records_with_qid"] == 4


def test_qid_map_from_wb_items_per_site_rows(tmp_path, build):
    qid_map = tmp_path / "ips.tsv"
    qid_map.write_text(
        "ips_item_id\tips_site_id\tips_site_page\n6199\tenwiki\tAnarchism\n38404\tenwiki\tAutism\n6199\tdewiki\tAnarchismus\n"
    )
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI], out, "--qid-map", str(qid_map))
    assert code == 0, stderr
    recs = records(out)
    assert recs[12]["main_entity"]["identifier"] == "Q6199" and recs[25]["main_entity"]["identifier"] == "Q38404"
    assert sum("main_entity" in r for r in recs.values()) == 2


def _without_pages(xml: bytes, titles: list[str]) -> bytes:
    for title in titles:
        i = xml.index(f"<title>{title}</title>".encode())
        start = xml.rindex(b"<page>", 0, i)
        end = xml.index(b"</page>", i) + len(b"</page>")
        xml = xml[:start] + xml[end:]
    return xml


def test_redirects_from_redirect_sql(tmp_path, build):
    """Redirect pages missing from the XML are named by page.sql and attached by redirect.sql."""
    xml = tmp_path / "enwiki-20170820-pages-articles-trimmed.xml"
    xml.write_bytes(_without_pages(bz2.decompress(ENWIKI.read_bytes()), ["AbacuS", "ANOVA"]))
    page = sql_dump(
        tmp_path / "enwiki-20170820-page.sql.gz",
        CR_PAGE,
        [
            (46, 0, "AbacuS", "", 0, 1, 0, 0.5, "20170801000000", None, 1, 20, 0, "wikitext"),
            (635, 0, "ANOVA", "", 0, 1, 0, 0.5, "20170801000000", None, 2, 20, 0, "wikitext"),
            (655, 0, "Abacus", "", 0, 0, 0, 0.5, "20170801000000", None, 3, 900, 0, "wikitext"),
        ],
    )
    redirect = sql_dump(
        tmp_path / "enwiki-20170820-redirect.sql.gz",
        CR_REDIRECT,
        [
            (23, 0, "Assistive_technology", "", ""),  # also a redirect page of the XML: once only
            (46, 0, "Abacus", "", ""),
            (635, 0, "Analysis_of_variance", "", "History"),  # a fragment: same target page
            (1632, 0, "User:Sirius_Zwarts_Bot", "en", ""),  # interwiki: not attached
            (77_777_777, 0, "Abacus", "", ""),  # its page is in neither page.sql nor the XML
        ],
    )
    out = tmp_path / "out"
    code, _stdout, stderr = build([xml, page, redirect], out)
    assert code == 0, stderr
    recs = records(out)
    assert names(recs[655], "redirects") == ["AbacuS"]
    assert names(recs[634], "redirects") == ["ANOVA", "Analysis of Variance"]
    assert names(recs[653], "redirects") == ["AssistiveTechnology"]
    assert recs[655]["redirects"][0]["url"] == "https://en.wikipedia.org/wiki/AbacuS"
    counts = manifest(out)["counts"]["enwiki"]
    assert counts["enrich/redirect/attached"] == 3
    assert counts["enrich/redirect/without_title"] == 1
    assert counts["enrich/redirect/rows_interwiki"] == 1
    assert counts["enrich/page/rows_not_redirect"] == 1
    assert counts["pages_read"] == 204 and counts["redirect_pages"] == 98


# -- bad SQL inputs: a clear message, exit code 2 ----------------------------------------------


def test_truncated_sql_fails_the_run_and_publishes_nothing(tmp_path, build):
    path = page_props(tmp_path)
    data = gzip.decompress(path.read_bytes())
    cut = data[: data.index(b"(290,")]
    bad = tmp_path / "enwiki-20240301-page_props.sql"
    bad.write_bytes(cut)
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI, bad], out)
    assert code == 2
    line = cut[: cut.index(b"INSERT INTO")].count(b"\n") + 1
    assert f"{bad}: line {line}: truncated" in stderr
    assert "Traceback" not in stderr
    assert not (out / "enwiki_namespace_0.tar.gz").exists()


def test_wrong_column_count_fails_with_file_and_line(tmp_path, build):
    bad = sql_dump(tmp_path / "enwiki-20240301-page_props.sql.gz", RM_PAGE_PROPS, [(12, "wikibase_item", "Q6199")])
    code, _stdout, stderr = build([ENWIKI, bad], tmp_path / "out")
    assert code == 2
    assert f"{bad}: line " in stderr and "has 3 values, its CREATE TABLE 4 columns" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "source, name, message",
    [
        ("change_tag_def", "enwiki-20240301-change_tag_def.sql.gz", "which wikisnap does not read"),
        ("page_props", "page_props.sql.gz", None),  # no db in the name: the run's only wiki
        ("page_props", "dewiki-20240301-page_props.sql.gz", "no XML dump of dewiki"),
    ],
)
def test_bad_sql_inputs_fail_before_the_graph(tmp_path, build, source, name, message):
    from conftest import DATA

    src = DATA / "sql" / "mwsql__simplewiki-change_tag_def-testfile.sql.gz" if source == "change_tag_def" else None
    path = tmp_path / name
    path.write_bytes(src.read_bytes() if src else page_props(tmp_path, "x.sql.gz").read_bytes())
    began = time.monotonic()
    code, _stdout, stderr = build([ENWIKI, path], tmp_path / "out")
    if message is None:
        assert code == 0, stderr
        assert "main_entity" in records(tmp_path / "out")[12]
        return
    assert code == 2 and message in stderr and str(path) in stderr
    assert time.monotonic() - began < 5


def test_sql_only_inputs_and_missing_linktarget(tmp_path, build):
    code, _stdout, stderr = build([page_props(tmp_path)], tmp_path / "out")
    assert code == 2 and "no XML dump among the inputs" in stderr
    cl = sql_dump(tmp_path / "enwiki-20250101-categorylinks.sql.gz", RM_PAGE_PROPS, [], create=CATEGORYLINKS_TARGET_ID)
    code, _stdout, stderr = build([ENWIKI, cl], tmp_path / "out")
    assert code == 2 and "linktarget" in stderr


# -- the pure cores ----------------------------------------------------------------------------

SITE = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")


def test_page_enrichment():
    got = page_enrichment(
        SITE, [("Q", "Q6199"), ("C", "Category:B"), ("C", "Category:A b"), ("P", ("move", "sysop", "infinity"))]
    )
    assert got == {
        "main_entity": {"identifier": "Q6199", "url": "https://www.wikidata.org/entity/Q6199"},
        "protection": [{"type": "move", "level": "sysop", "expiry": "infinity"}],
        "categories": [
            {"name": "Category:A b", "url": "https://en.wikipedia.org/wiki/Category:A_b"},
            {"name": "Category:B", "url": "https://en.wikipedia.org/wiki/Category:B"},
        ],
    }
    assert page_enrichment(SITE, []) == {}


def _opts(tmp_path, **kw):
    return WriteOptions(
        out_dir=str(tmp_path),
        temp_dir=str(tmp_path),
        member_bytes=1 << 20,
        formats=frozenset({"ndjson"}),
        snapshot_date=None,
        **kw,
    )


def test_merge_enrichment_modes(tmp_path):
    cat = lambda n: {"name": n, "url": "u:" + n}  # noqa: E731
    enrichment = {"categories": [cat("Category:A"), cat("Category:Z")]}
    for mode, expected in [
        ("both", ["Category:Z", "Category:B", "Category:A"]),
        ("sql", ["Category:A", "Category:Z"]),
        ("wikitext", ["Category:Z", "Category:B"]),
    ]:
        record = {"categories": [cat("Category:Z"), cat("Category:B")]}
        counts: dict[str, int] = {}
        merge_enrichment(
            record, enrichment, _opts(tmp_path, categories=mode, coverage=frozenset({"categories"})), counts
        )
        assert [c["name"] for c in record["categories"]] == expected, mode
    assert counts == {
        "enrich/categories_from_wikitext_only": 1,
        "enrich/categories_from_sql_only": 0,
        "enrich/categories_from_both": 1,
        "enrich/records_with_categories": 1,
    }


def test_write_bucket_merges_enrichments_and_dedupes_redirects(tmp_path):
    run = tmp_path / "run"
    write_run(str(run), [(1, 5, {"name": "A", "identifier": 1}), (2, 6, {"name": "B", "identifier": 2})])
    opts = _opts(tmp_path, coverage=frozenset({"main_entity"}))
    redirects = [(1, [("R", "u1")]), (1, [("R", "u1"), ("S", "u2")])]
    enrich = [(2, {"main_entity": {"identifier": "Q1", "url": "x"}})]
    parts, counts = write_bucket(("enwiki", 0, 0), [str(run)], redirects, opts, enrich)
    assert counts["enrich/records_with_qid"] == 1 and counts["enrich/records_without_qid"] == 1
    assert counts["redirects_written"] == 2
    data = gzip.decompress(open(parts[0].gz_path, "rb").read()).splitlines()
    first, second = json.loads(data[0]), json.loads(data[1].rstrip(b"\0"))
    assert [r["name"] for r in first["redirects"]] == ["R", "S"]
    assert second["main_entity"] == {"identifier": "Q1", "url": "x"}


def test_enrich_from_sql_transform_keys_by_bucket_and_reports_bad_files(tmp_path):
    """The composite on its own (TestPipeline): keyed outputs, counts, and a bad file as an error."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from wikisnap.transforms.enrich import EnrichFromSql
    from wikisnap.transforms.formats.sqldump import read_sql_header
    from wikisnap.transforms.parse.sqlrows import EnrichOptions, SqlInput

    good = page_props(tmp_path)
    bad = tmp_path / "enwiki-20240301-page_props.sql"
    text = gzip.decompress(good.read_bytes()).replace(b",NULL),(25,", b",NULL),(25")  # a missing comma
    bad.write_bytes(text)
    line = text[: text.index(b"INSERT INTO")].count(b"\n") + 1
    inputs = [SqlInput(str(p), "page_props", "enwiki", read_sql_header(str(p))) for p in (good, bad)]
    titles = [(("enwiki", "Anarchism"), ("A", 0, 12)), (("enwiki", "A"), ("A", 0, 290))]
    with TestPipeline() as p:
        out = (
            p | "Inputs" >> beam.Create(inputs),
            p | "Titles" >> beam.Create(titles),
            p | "Redirects" >> beam.Create([]),
        ) | EnrichFromSql(EnrichOptions(100, (("enwiki", SITE),)), str(tmp_path / "temp"))
        entity = lambda q: {"main_entity": {"identifier": q, "url": "https://www.wikidata.org/entity/" + q}}  # noqa: E731
        assert_that(
            out["enrichments"],
            equal_to(
                [
                    (("enwiki", 0, 0), (12, {**entity("Q6199"), "image": {"content_url": ANARCHY_SYMBOL}})),
                    (("enwiki", 0, 2), (290, entity("Q9659"))),
                ]
            ),
            label="Enrichments",
        )
        assert_that(
            out["errors"] | beam.Map(lambda e: e.split(": ", 1)[0] + ": " + e.split(": ", 2)[1]),
            equal_to([f"{bad}: line {line}"]),
            label="Errors",
        )


def test_every_kind_of_sql_row_is_counted_when_it_matches_no_page():
    """A page_props short description of a page that is no record of the run (a redirect, another
    namespace) is counted as unmatched like the other kinds; it once crashed the run (KeyError 'D')."""
    from wikisnap.transforms.enrich import _GroupByPageFn
    from wikisnap.transforms.parse.sqlrows import EnrichOptions

    fn = _GroupByPageFn(EnrichOptions(1_000_000, (), descriptions=True))
    fn.setup()
    items = [("D", "a short description"), ("Q", "Q42")]
    out = [o.value for o in fn.process((("enwiki", 10), {"E": items, "A": []}))]
    assert sorted(out) == [
        (("enwiki", "enrich/description/unmatched_page"), 1),
        (("enwiki", "enrich/main_entity/unmatched_page"), 1),
    ]
