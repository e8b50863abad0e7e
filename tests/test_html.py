"""Parsoid HTML and WME records as inputs: fields derived as WME derives them, records kept byte for byte.

Data (tests/data/html, see tests/data/PROVENANCE.md): three records from WME's public repository
(simplewiki 2022, enwikiversity 2021, frwiki 2024 — the only one made under WME's current rules),
two records of the Enterprise HTML dumps (mwparserfromhtml's test fixtures, enwiki 2021) and those
two records' HTML as standalone Parsoid documents; and tests/data/wme/sdk-articles-3lines-2023.ndjson,
three lines exactly as WME serialised them in 2023 (dewiki, enwiki, ruwiki), with their HTML. The XML pages joined to the HTML below are
written from the same records' own wikitext and metadata (no real dump holds those revisions).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow.parquet as pq
import pytest

from conftest import DATA, read_snapshot
from wikisnap.schemas.arrow import table_to_records
from wikisnap.transforms.parse.html import HtmlError, derive, identify

HTML = DATA / "html"
SDK_LINES = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"  # WME's own bytes (wme-sdk-go testdata)
WME_3 = HTML / "wme-repo__articles-3records.ndjson"
ENTERPRISE_2 = HTML / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson"
MIKE_POTTS = HTML / "mwparserfromhtml__enwiki-Mike_Potts-rev1052159182.parsoid.html"
WILLIAM_CLARK = HTML / "mwparserfromhtml__enwiki-William_Clark_inventor-rev1054288291.parsoid.html"
SOURCES = {
    "simplewiki": HTML / "wme-repo__simplewiki-Albert_Einstein.json",
    "enwikiversity": HTML / "wme-repo__enwikiversity-Albert_Einstein.json",
    "frwiki": HTML / "wme-repo__frwiki-Alexandros_Ioannis_Ginnis.json",
}


def records() -> list[dict]:
    """The five real records, in file order (the WME repository's key order kept)."""
    out = [json.loads(p.read_text(encoding="utf-8")) for p in SOURCES.values()]
    out += [json.loads(line) for line in ENTERPRISE_2.read_text(encoding="utf-8").splitlines()]
    return out


def go_line(record: dict) -> bytes:
    """A record as WME's Go encoder writes it, written out independently of schemas/serialize.py:
    keys in the order WME's own JSON has them, Go's HTML-safe escapes."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    for char, esc in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, esc)
    return text.encode("utf-8") + b"\n"


def names(items) -> set[str]:
    return {i["name"] for i in items or []}


def wikitext_categories(text: str, prefix: str) -> set[str]:
    """`[[Category:X]]` written in the wikitext itself (a lower bound of what the page has)."""
    found = re.findall(r"\[\[\s*" + prefix + r"\s*:\s*([^|\]]+)", text)
    return {f"{prefix}:{name.strip().replace('_', ' ')}" for name in found}


# -- derivation on every real record ---------------------------------------------------------------


@pytest.mark.parametrize("record", records(), ids=lambda r: f"{r['is_part_of']['identifier']}-{r['identifier']}")
def test_identity_of_every_record(record) -> None:
    ident = identify(record["article_body"]["html"])
    assert ident.page_id == record["identifier"]
    assert ident.rev_id == record["version"]["identifier"]
    assert ident.title == record["name"]
    assert ident.base_url == record["url"][: record["url"].index("/wiki/") + 6]
    assert ident.modified == record["date_modified"]


def test_frwiki_2024_fields_equal_what_wme_published() -> None:
    """The record made under WME's current rules: categories, templates (as sets, with their
    URLs) and the abstract are exactly WME's."""
    record = json.loads(SOURCES["frwiki"].read_text(encoding="utf-8"))
    derived = derive(record["article_body"]["html"])
    as_set = lambda items: {(i["name"], i["url"]) for i in items}  # noqa: E731
    assert as_set(derived["categories"]) == as_set(record["categories"])
    assert as_set(derived["templates"]) == as_set(record["templates"])
    assert derived["abstract"] == record["abstract"]
    # template-added and hidden categories are what the wikitext alone misses
    written = wikitext_categories(record["article_body"]["wikitext"], "Catégorie")
    assert written < names(derived["categories"])
    assert "Catégorie:Portail:Grèce/Articles liés" in names(derived["categories"]) - written


@pytest.mark.parametrize("line", SDK_LINES.read_bytes().splitlines(), ids=["dewiki", "enwiki", "ruwiki"])
def test_2023_wme_lines_categories_and_templates_equal_wme(line: bytes) -> None:
    """WME's 2023 lines list categories and templates by its current rules: ours equal theirs
    (names and URLs, as sets). Their abstracts come from WME's older GetAbstract (paragraphs only,
    no list markup, no trimming) and are not compared."""
    record = json.loads(line)
    derived = derive(record["article_body"]["html"])
    for key in ("categories", "templates"):
        assert {(i["name"], i["url"]) for i in derived[key]} == {(i["name"], i["url"]) for i in record[key]}, key
    assert identify(record["article_body"]["html"]).page_id == record["identifier"]


def test_simplewiki_2022_under_wme_older_rules() -> None:
    """2022: WME listed the visible categories only, and every template used (transitively,
    modules included). Ours (current rules) hold all of its categories and are all among its templates."""
    record = json.loads(SOURCES["simplewiki"].read_text(encoding="utf-8"))
    derived = derive(record["article_body"]["html"])
    ours_c = {(i["name"], i["url"]) for i in derived["categories"]}
    assert {(i["name"], i["url"]) for i in record["categories"]} <= ours_c
    assert names(derived["categories"]) >= wikitext_categories(record["article_body"]["wikitext"], "Category")
    ours_t = {(i["name"], i["url"]) for i in derived["templates"]}
    assert ours_t <= {(i["name"], i["url"]) for i in record["templates"]}
    assert len(ours_t) == 17 and len(record["templates"]) == 134


@pytest.mark.parametrize(
    ("path", "count"),
    [(MIKE_POTTS, 5), (WILLIAM_CLARK, 11)],  # mwparserfromhtml's own test expectations
)
def test_enterprise_dump_documents(path: Path, count: int) -> None:
    """Records of the 2021 Enterprise HTML dumps publish no categories: the count of category
    links mwparserfromhtml's tests expect, and the wikitext's own categories among them."""
    html = path.read_text(encoding="utf-8")
    record = next(r for r in records() if r["identifier"] == identify(html).page_id)
    assert record["article_body"]["html"] == html
    derived = derive(html)
    assert len(derived["categories"]) == count
    assert names(derived["categories"]) >= wikitext_categories(record["article_body"]["wikitext"], "Category")
    for category in derived["categories"]:
        assert category["url"] == "https://en.wikipedia.org/wiki/" + category["name"].replace(" ", "_")


def test_enwikiversity_record_categories() -> None:
    record = json.loads(SOURCES["enwikiversity"].read_text(encoding="utf-8"))
    derived = derive(record["article_body"]["html"])
    assert names(derived["categories"]) >= wikitext_categories(record["article_body"]["wikitext"], "Category")


# -- bad documents ---------------------------------------------------------------------------------


def test_bad_documents_are_refused_with_a_reason() -> None:
    html = MIKE_POTTS.read_text(encoding="utf-8")
    with pytest.raises(HtmlError, match="truncated"):
        identify(html[: len(html) // 2])
    with pytest.raises(HtmlError, match="mw:pageId"):
        identify(re.sub(r'<meta property="mw:pageId"[^>]*>', "", html))
    with pytest.raises(HtmlError, match="no </head>"):
        identify("<!DOCTYPE html><html><body><p>not Parsoid</p></body></html>")
    # a data-mw that is not JSON is no refusal: it gives no template, as WME's gjson finds none there
    broken = html.replace('data-mw=\'{"parts":[{"template"', 'data-mw=\'{"parts":[{"template":', 1)
    assert broken != html
    assert names(derive(broken).get("templates", [])) < names(derive(html)["templates"])


def test_html_fields_on_a_constructed_lead() -> None:
    """The GetAbstract steps one by one: refs and pronunciations go, parentheticals with a space go,
    lists become `  - item` lines, a numeric <sup> becomes WME's superscript code points."""
    head = (
        '<!DOCTYPE html><html about="https://en.wikipedia.org/wiki/Special:Redirect/revision/5"><head>'
        '<meta property="mw:pageId" content="7"/><base href="//en.wikipedia.org/wiki/"/><title>T</title></head>'
    )
    body = (
        '<body><section data-mw-section-id="0"><p><b>Foo</b> (born 1900 in Bar) is a <a href="./Baz">baz</a>'
        '<sup class="mw-ref reference"><a href="#cite">[1]</a></sup> , known for x<sup>2</sup>.</p>'
        "<ul><li>one</li><li>two<ul><li>deep</li></ul></li></ul>"
        '<link rel="mw:PageProp/Category" href="./Category:A_b#Sort"/>'
        '<link rel="mw:PageProp/Category" href="./Category:C%2B%2B+x"/></section>'
        '<section data-mw-section-id="1"><h2>Later</h2><p>Not in the abstract.</p></section></body></html>'
    )
    derived = derive(head + body)
    assert derived["abstract"] == "Foo is a baz, known for x\u2072.\n  - one\n  - two\n    - deep"
    assert derived["categories"] == [
        {"name": "Category:A b", "url": "https://en.wikipedia.org/wiki/Category:A_b"},
        {"name": "Category:C++ x", "url": "https://en.wikipedia.org/wiki/Category:C%2B%2B+x"},
    ]


# -- through `wikisnap build` ---------------------------------------------------------------------


def wme_tarball(path: Path, lines: list[bytes]) -> None:
    """An Enterprise-style tarball: one gzip stream, one NDJSON member."""
    data = b"".join(lines)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("enterprise_html_0.ndjson")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue()))


def outputs(out: Path) -> dict[str, list[bytes]]:
    found = {}
    for tar in sorted(out.glob("*.tar.gz")):
        found[tar.name] = read_snapshot(tar)[2]
    return found


def parquet_records(out: Path, sid: str) -> list[dict]:
    rows = []
    for shard in sorted((out / "parquet" / sid).glob("*.parquet")):
        rows.extend(table_to_records(pq.read_table(shard)))
    return rows


def test_wme_tarball_round_trips_byte_for_byte(tmp_path, build) -> None:
    recs = records()
    lines = [go_line(r) for r in recs]
    src = tmp_path / "enwiki-NS0-20240101-ENTERPRISE-HTML.json.tar.gz"
    wme_tarball(src, lines)
    out = tmp_path / "out"
    code, _stdout, stderr = build([src], out, "--wme-records", "as-is")
    assert code == 0, stderr
    got = outputs(out)
    expected: dict[str, list[bytes]] = {}
    for record, line in sorted(zip(recs, lines, strict=True), key=lambda rl: rl[0]["identifier"]):
        expected.setdefault(f"{record['is_part_of']['identifier']}_namespace_0.tar.gz", []).append(line)
    assert got == expected
    for name, lines_of in expected.items():
        sid = name.removesuffix(".tar.gz")
        assert parquet_records(out, sid) == [json.loads(line) for line in lines_of]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["frwiki"]["wme_records"] == 1
    assert manifest["counts"]["frwiki"]["fields/abstract/wme"] == 1


@pytest.mark.parametrize("mode", ["complete", "as-is"])
def test_real_wme_tarball_lines_come_out_byte_identical(tmp_path, build, mode: str) -> None:
    """WME's own 2023 lines (one wiki each) in a snapshot-style tarball: the output members hold
    the very same bytes, in both modes (they lack no HTML field), and Parquet rows equal them."""
    lines = [line + b"\n" for line in SDK_LINES.read_bytes().splitlines()]
    sources = []
    for line in lines:
        db = json.loads(line)["is_part_of"]["identifier"]
        src = tmp_path / f"{db}_namespace_0.tar.gz"
        wme_tarball(src, [line])
        sources.append(src)
    out = tmp_path / "out"
    code, _stdout, stderr = build(sources, out, "--wme-records", mode)
    assert code == 0, stderr
    got = outputs(out)
    assert got == {f"{json.loads(line)['is_part_of']['identifier']}_namespace_0.tar.gz": [line] for line in lines}
    for line in lines:
        db = json.loads(line)["is_part_of"]["identifier"]
        assert parquet_records(out, f"{db}_namespace_0") == [json.loads(line)]


def test_wme_records_gain_the_fields_their_html_supports(tmp_path, build) -> None:
    """Default: a record keeps every key and value, and the categories/templates/abstract it lacks
    are derived from its own article_body.html; the frwiki 2024 record lacks none and is unchanged."""
    src = tmp_path / "records.ndjson"
    recs = records()
    src.write_bytes(b"".join(go_line(r) for r in recs))
    out = tmp_path / "out"
    code, _stdout, stderr = build([src], out)
    assert code == 0, stderr
    written = {json.loads(line)["identifier"]: line for lines in outputs(out).values() for line in lines}
    for record in recs:
        line = written[record["identifier"]]
        got = json.loads(line)
        added = set(got) - set(record)
        assert {k: got[k] for k in record} == record
        derived = derive(record["article_body"]["html"])
        assert added == {k for k in ("categories", "templates", "abstract") if k not in record and derived.get(k)}
        for key in added:
            assert got[key] == derived[key]
        if not added:
            assert line == go_line(record)
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["enwiki"]["fields/categories/html"] == 2
    assert counts["frwiki"]["fields/templates/wme"] == 1


SITEINFO = {
    "enwiki": ("English Wikipedia", "https://en.wikipedia.org/wiki/Main_Page", "en", "Template", "Category"),
    "frwiki": ("Wikipédia", "https://fr.wikipedia.org/wiki/Wikipédia:Accueil_principal", "fr", "Modèle", "Catégorie"),
}


def xml_dump(db: str, pages: list[dict], path: Path) -> None:
    """An export-0.11 dump of `pages` (WME records), from their own wikitext and metadata."""
    sitename, base, lang, tmpl, cat = SITEINFO[db]
    out = [
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="{lang}">',
        f"<siteinfo><sitename>{escape(sitename)}</sitename><dbname>{db}</dbname><base>{escape(base)}</base>"
        "<generator>MediaWiki 1.42</generator><case>first-letter</case><namespaces>"
        '<namespace key="0" case="first-letter" />'
        f'<namespace key="10" case="first-letter">{tmpl}</namespace>'
        f'<namespace key="14" case="first-letter">{cat}</namespace></namespaces></siteinfo>',
    ]
    for rec in pages:
        editor = rec["version"].get("editor", {})
        out.append(
            f"<page><title>{escape(rec['name'])}</title><ns>0</ns><id>{rec['identifier']}</id>"
            f"<revision><id>{rec['version']['identifier']}</id><timestamp>{rec['date_modified']}</timestamp>"
            f"<contributor><username>{escape(editor.get('name', ''))}</username><id>{editor.get('identifier', 0)}</id>"
            "</contributor><model>wikitext</model><format>text/x-wiki</format>"
            f'<text bytes="{len(rec["article_body"]["wikitext"].encode())}" xml:space="preserve">'
            f"{escape(rec['article_body']['wikitext'])}</text></revision></page>"
        )
    out.append("</mediawiki>")
    path.write_text("\n".join(out), encoding="utf-8")


def test_xml_dump_joined_with_parsoid_html(tmp_path, build) -> None:
    """XML pages + Parsoid HTML of the same revisions: article_body.html is the HTML as given,
    categories are the HTML's (template-added and hidden ones included) — what WME published for
    frwiki; HTML of another revision is stale and unused; HTML of a page without XML is a dead letter."""
    recs = {r["identifier"]: r for r in records()}
    fr = recs[15442292]
    potts, clark = recs[31967453], recs[13924699]
    xml_dump("frwiki", [fr], tmp_path / "frwiki-20240420-pages-articles.xml")
    xml_dump("enwiki", [clark], tmp_path / "enwiki-20211110-pages-articles.xml")
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "fr.html").write_text(fr["article_body"]["html"], encoding="utf-8")
    (html_dir / "clark.html").write_bytes(WILLIAM_CLARK.read_bytes())
    (html_dir / "potts.html").write_bytes(MIKE_POTTS.read_bytes())  # no XML page: a dead letter
    stale = WILLIAM_CLARK.read_text(encoding="utf-8").replace("revision/1054288291", "revision/1054288290", 1)
    (html_dir / "clark-older.html").write_text(stale, encoding="utf-8")
    out = tmp_path / "out"
    code, _stdout, stderr = build(
        [tmp_path / "frwiki-20240420-pages-articles.xml", tmp_path / "enwiki-20211110-pages-articles.xml", html_dir],
        out,
    )
    assert code == 0, stderr
    (fr_line,) = read_snapshot(out / "frwiki_namespace_0.tar.gz")[1]
    assert fr_line["article_body"]["html"] == fr["article_body"]["html"]
    assert fr_line["article_body"]["wikitext"] == fr["article_body"]["wikitext"]
    assert {(c["name"], c["url"]) for c in fr_line["categories"]} == {(c["name"], c["url"]) for c in fr["categories"]}
    assert {(c["name"], c["url"]) for c in fr_line["templates"]} == {(c["name"], c["url"]) for c in fr["templates"]}
    assert fr_line["abstract"] == fr["abstract"]
    (row,) = parquet_records(out, "frwiki_namespace_0")
    assert row["article_body"]["html"] == fr["article_body"]["html"]
    (clark_line,) = read_snapshot(out / "enwiki_namespace_0.tar.gz")[1]
    assert clark_line["article_body"]["html"] == clark["article_body"]["html"]
    assert len(clark_line["categories"]) == 11
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["enwiki"]["html/read"] == 3
    assert counts["enwiki"]["html/used"] == 1
    assert counts["enwiki"]["html/stale"] == 1
    assert counts["enwiki"]["html/orphan"] == 1
    assert counts["frwiki"]["html/used"] == 1
    assert counts["frwiki"]["fields/categories/html"] == 1
    letters = [json.loads(x) for x in (out / "deadletter" / "enwiki_deadletters.ndjson").read_text().splitlines()]
    assert [(d["page_id"], d["raw"] == potts["article_body"]["html"]) for d in letters] == [(31967453, True)]
    assert "no record of that page" in letters[0]["reason"]
    # without the HTML the wikitext gives fewer categories: the template-added ones are the gain
    plain = tmp_path / "plain"
    assert build([tmp_path / "frwiki-20240420-pages-articles.xml"], plain)[0] == 0
    (wikitext_only,) = read_snapshot(plain / "frwiki_namespace_0.tar.gz")[1]
    assert names(wikitext_only.get("categories")) < names(fr_line["categories"])
    assert "html" not in wikitext_only["article_body"]


def test_bad_lines_and_documents_become_dead_letters(tmp_path, build) -> None:
    recs = records()
    good = go_line(recs[2])
    src = tmp_path / "frwiki-records.ndjson"
    no_id = json.dumps({k: v for k, v in recs[2].items() if k != "identifier"}).encode() + b"\n"
    unknown_key = go_line({**recs[2], "identifier": 99, "not_a_wme_field": 1})
    src.write_bytes(good + b'{"name": "broken\n' + no_id + unknown_key)
    html_dir = tmp_path / "docs"
    html_dir.mkdir()
    html = recs[2]["article_body"]["html"]
    (html_dir / "truncated.html").write_text(html[: len(html) // 3], encoding="utf-8")
    (html_dir / "plain.html").write_text("<!DOCTYPE html><html><head><title>x</title></head><body></body></html>")
    out = tmp_path / "out"
    code, _stdout, stderr = build([src, html_dir], out)
    assert code == 0, stderr
    letters = [json.loads(x) for x in (out / "deadletter" / "frwiki_deadletters.ndjson").read_text().splitlines()]
    reasons = sorted(d["reason"].split(":")[0] for d in letters)
    assert reasons == sorted(
        [
            "not JSON",
            "not a WME record",
            "cannot serialise the record",
            "truncated HTML document",
        ]
    )
    raws = {d["raw"] for d in letters}
    assert '{"name": "broken' in raws and no_id.decode().rstrip("\n") in raws
    assert html[: len(html) // 3] in raws
    # a document that names no wiki is a dead letter of the unknown wiki
    (plain,) = [json.loads(x) for x in (out / "deadletter" / "unknown_deadletters.ndjson").read_text().splitlines()]
    assert plain["reason"].startswith("not a Parsoid HTML document: no mw:pageId")
    counts = json.loads((out / "manifest.json").read_text())["counts"]["frwiki"]
    assert counts["dead_lettered"] == 3 and counts["html/dead_lettered"] == 1
    assert counts["pages_read"] == 4  # every line accounted for: 1 written + 3 dead letters
    assert counts["records/ns0/written"] == 1


def test_newer_revision_wins_between_xml_and_wme(tmp_path, build) -> None:
    """The same page from an XML dump and a WME record: the newer revision is written, whichever it is."""
    fr = records()[2]
    xml = tmp_path / "frwiki-20240420-pages-articles.xml"
    xml_dump("frwiki", [fr], xml)
    newer = json.loads(json.dumps(fr))
    newer["version"]["identifier"] += 1
    older = json.loads(json.dumps(fr))
    older["version"]["identifier"] -= 1
    for record, expect_wme in ((newer, True), (older, False)):
        src = tmp_path / f"wme-{record['version']['identifier']}.ndjson"
        src.write_bytes(go_line(record))
        out = tmp_path / f"out-{record['version']['identifier']}"
        code, _stdout, stderr = build([xml, src], out)
        assert code == 0, stderr
        (line,) = read_snapshot(out / "frwiki_namespace_0.tar.gz")[2]
        got = json.loads(line)
        winner = record if expect_wme else fr
        assert got["version"]["identifier"] == winner["version"]["identifier"]
        assert (line == go_line(record)) is expect_wme
        counts = json.loads((out / "manifest.json").read_text())["counts"]["frwiki"]
        assert counts["duplicates_superseded"] == 1 and counts["records/ns0/written"] == 1


def test_html_as_ndjson_lines_in_a_tar(tmp_path, build) -> None:
    """NDJSON lines with an `html` field, in a tar, join the XML records like .html files do."""
    recs = {r["identifier"]: r for r in records()}
    clark, potts = recs[13924699], recs[31967453]
    xml = tmp_path / "enwiki-20211110-pages-articles.xml"
    xml_dump("enwiki", [clark, potts], xml)
    lines = b"".join(
        json.dumps({"html": r["article_body"]["html"], "title": r["name"]}).encode() + b"\n" for r in (potts, clark)
    )
    src = tmp_path / "html-docs.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("docs.ndjson")
        info.size = len(lines)
        tar.addfile(info, io.BytesIO(lines))
    src.write_bytes(buf.getvalue())
    out = tmp_path / "out"
    code, _stdout, stderr = build([xml, src], out)
    assert code == 0, stderr
    written = {r["identifier"]: r for r in read_snapshot(out / "enwiki_namespace_0.tar.gz")[1]}
    for record in (clark, potts):
        assert written[record["identifier"]]["article_body"]["html"] == record["article_body"]["html"]
        assert written[record["identifier"]]["categories"] == derive(record["article_body"]["html"])["categories"]
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["html/used"] == 2 and counts["fields/categories/html"] == 2


def test_json_lines_that_are_not_records_are_refused(tmp_path, build) -> None:
    src = tmp_path / "events.ndjson"
    src.write_text('{"meta": {"domain": "en.wikipedia.org"}, "type": "edit"}\n')
    code, _stdout, stderr = build([src], tmp_path / "out")
    assert code == 2 and "neither WME records" in stderr and "events.ndjson" in stderr


def test_formats_help_names_the_html_fields(capsys) -> None:
    from wikisnap.pipelines.cli import main

    with pytest.raises(SystemExit):
        main(["build", "--help"])
    # argparse wraps at spaces and after hyphens: join the lines back before looking for phrases
    text = re.sub(r"(?<=\w-) (?=\w)", "", " ".join(capsys.readouterr().out.split()))
    for phrase in ("article_body.html", "mw:PageProp/Category", "data-mw", "GetAbstract", "--wme-records"):
        assert phrase in text


def test_namespace_from_the_title_when_the_head_does_not_say() -> None:
    """Older Parsoid HTML has no mw:pageNamespace: the title's canonical prefix decides."""
    from wikisnap.transforms.records import html_item

    html = MIKE_POTTS.read_text(encoding="utf-8")
    assert html_item(html, frozenset({0}))[0] == ("enwiki", 0, 31967453, 1052159182)
    older = re.sub(r'<meta property="mw:pageNamespace"[^>]*>', "", html)
    older = older.replace('wiki/Mike_Potts"/>', 'wiki/Category:Mike_Potts"/>')
    assert older.count("Category:Mike_Potts") == 1
    assert html_item(older, frozenset({0, 14}))[0] == ("enwiki", 14, 31967453, 1052159182)


def test_a_folder_is_read_in_shares(tmp_path, build) -> None:
    """A folder of documents becomes several units (read in parallel) that together read each file once."""
    from wikisnap.transforms.records import iter_pieces, sniff_record_input, split_folder

    folder = tmp_path / "docs"
    folder.mkdir()
    recs = records()
    for n, record in enumerate(recs):
        (folder / f"{n}.html").write_text(record["article_body"]["html"], encoding="utf-8")
    inp = sniff_record_input(str(folder))
    assert inp is not None and inp.kind == "html"
    shares = split_folder(inp, files_per_unit=2)
    assert [len(s.files) for s in shares] == [2, 2, 1] and len({s.name for s in shares}) == 3
    pieces = [raw for s in shares for _label, raw in iter_pieces(s.path, s.files)]
    assert pieces == [r["article_body"]["html"].encode("utf-8") for r in recs]
