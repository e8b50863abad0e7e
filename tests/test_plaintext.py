"""Plain text (`--formats text`): the stripper on real pages and bad input, and the text Parquet of
build and update on the real dumps in tests/data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.bench_text import RESIDUE, residue_counts
from conftest import DATA, ELWIKIVOYAGE, ENWIKI, ENWIKTIONARY, read_snapshot
from wikisnap.schemas.arrow import TEXT_SCHEMA
from wikisnap.schemas.serialize import format_time, parse_time_ns
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo
from wikisnap.transforms.parse.plaintext import record_text, text_from_html, text_from_wikitext, text_row

HTML = DATA / "html"
HISTORY = DATA / "history"
EN = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")


@pytest.fixture(scope="module")
def enwiki_pages() -> dict[str, str]:
    """Title → wikitext of every namespace-0 article of the real enwiki sample."""
    site = read_siteinfo(str(ENWIKI))
    pages = iter_pages(str(ENWIKI), site, ReadStats(str(ENWIKI)))
    return {p.title: p.revision.text for p in pages if getattr(p, "ns", None) == 0 and not p.redirect}


def read_text(out: Path, sid: str = "enwiki_namespace_0") -> pa.Table:
    shards = sorted((out / "text" / sid).glob(f"{sid}_*.parquet"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert shards, f"no text shards under {out}"
    tables = [pq.read_table(s) for s in shards]
    for t in tables:
        assert t.schema.equals(TEXT_SCHEMA), t.schema
    return pa.concat_tables(tables)


# -- the stripper on real pages ------------------------------------------------------------------


def test_real_page_keeps_headings_paragraphs_and_link_labels(enwiki_pages):
    text = text_from_wikitext(enwiki_pages["Anarchism"], EN)
    lines = text.split("\n")
    assert lines[0].startswith("Anarchism is a political philosophy that advocates self-governed societies")
    # headings are plain lines of their own, without `==`
    assert "Etymology and terminology" in lines and "History" in lines and "Origins" in lines
    # `[[self-governance|self-governed]]` → its label; `[[state (polity)|state]]` → state
    assert "advocates self-governed societies based on voluntary institutions" in lines[0]
    assert "Anarchism considers the state to be undesirable" in lines[0]
    # category links, the infobox template and references leave nothing
    assert "Category:" not in text and "Infobox" not in text and "cite" not in text.lower().split()


def test_albedo_maths_and_list_items(enwiki_pages):
    text = text_from_wikitext(enwiki_pages["Albedo"], EN)
    lines = text.split("\n")
    assert "Terrestrial albedo" in lines and "See also" in lines
    assert "Daisyworld" in lines  # a `* [[Daisyworld]]` list item, as a line
    assert "\\alpha" not in text and "theta" not in text  # <math> is dropped (LaTeX is not prose)


def test_no_markup_residue_on_any_enwiki_page(enwiki_pages):
    assert len(enwiki_pages) == 106
    found = {}
    for title, wikitext in enwiki_pages.items():
        counts = {k: n for k, n in residue_counts(text_from_wikitext(wikitext, EN)).items() if n}
        if counts:
            found[title] = counts
    assert found == {}
    assert set(RESIDUE) >= {"{{", "}}", "[[", "]]", "{|", "|}", "<ref", "<!--", "''", "[http", "__SWITCH__"}


def test_poem_gallery_and_nowiki(enwiki_pages):
    # <poem> content is text, one line per verse line ...
    assert text_from_wikitext("Intro:\n<poem>O beautiful for ''spacious'' skies,\nFor amber waves</poem>\nEnd", EN) == (
        "Intro:\nO beautiful for spacious skies,\nFor amber waves\nEnd"
    )
    # ... but the real poems of the sample stand in a table and in a {{quote}} template: they go
    poem = text_from_wikitext(enwiki_pages["America the Beautiful"], EN)
    assert 'America the Beautiful" is an American patriotic song' in poem and "amber waves" not in poem
    gallery = text_from_wikitext(enwiki_pages["Algeria"], EN)
    assert ".jpg" not in gallery and "|" not in gallery  # <gallery> lines are file names: dropped
    assert text_from_wikitext("a <nowiki>[[not a link]]</nowiki> b", EN) == "a not a link b"


@pytest.mark.parametrize(
    ("wikitext", "expected"),
    [
        ("[[a|b]] and [[a]]s", "b and as"),
        ("see [http://example.org the label] and [https://x.org]", "see the label and"),
        ("'''Bold''' and ''italic''", "Bold and italic"),
        ("== Heading ==\ntext\n\n=== Sub ===\nmore", "Heading\ntext\nSub\nmore"),
        ("__TOC__\nBody __NOTOC__ text", "Body text"),
        ("a<ref name=x>{{cite web|url=u}}</ref> b<ref name=x/>.", "a b."),
        ("x <span style='color:red'>red</span> <b>bold</b> <small>s</small>", "x red bold s"),
        ("[[File:A.jpg|thumb|A [[cat]] caption]]Text", "Text"),
        ("[[Category:Cats]]\n[[de:Katze]]\nText", "Text"),
        ("Text\n[[Category:Mistyped]", "Text"),  # real typos of the elwikivoyage sample (Λευκάδα, Καμερούν)
        ("Text\n[[wikipedia:el:Mistyped]", "Text"),
        ("[[commons:Category:Cats]] [[wikt:cat|cat]] [[Star Wars: Episode IV]]", "cat Star Wars: Episode IV"),
        ("a <!-- hidden --> b", "a b"),
        ("born ({{birth date|1900|1|1}}) in", "born in"),
        ("* one\n# two\n: three\n; four", "one\ntwo\nthree\nfour"),
        ("a&nbsp;b &amp; c", "a b & c"),
        ("line one\nline two\n\npara two", "line one line two\npara two"),
        ("#REDIRECT [[Elsewhere]]", ""),
        # link targets lose their outer whitespace (Unicode too); labels of colon links
        ("[[\u00a0New  York\u2003]] and [[ a ]]s", "New York and as"),
        ("[[:Category:Cats|the cats]] [[:Category:Dogs]] [[w:Tea]] [[w:Tea|tea]]", "the cats Category:Dogs tea"),
        # nesting deeper than the regex passes (the bracket walk ends it), a file inside a link
        ("[[a|[[b|[[c|[[d|e]]]]]]]] end", "e end"),
        ("[[a|x [[File:y.png|cap]] z]]", "x z"),
        # emptied brackets, spaces and the space before a comma or full stop; lone brackets stay
        ("born ( {{birth date|1900}} )  , in ( ) .", "born, in."),
        ("see [1] and [ 2 ]. x", "see [1] and [ 2 ]. x"),
    ],
)
def test_stripper_cases(wikitext, expected):
    assert text_from_wikitext(wikitext, EN) == expected


@pytest.mark.parametrize(
    "wikitext",
    [
        "{{Infobox person\n| name = X\n\nText after an unclosed template",  # unclosed template
        "}} stray closers ]] and [[ openers {{",  # unpaired tokens
        "{|\n| a\n{|\n| nested\n|}\n| b\n|}\nAfter tables",  # nested table
        "{|\n| never closed\n|-\n| cell || cell",  # unclosed table
        "Before <!-- a comment that never ends\n== H ==\n text",  # unclosed comment
        "a <ref>never closed [[x]] b",  # unclosed ref
        "[[a|[[b|[[c|d]]]]]] [[File:x.png|thumb|[[y|[z]]]]]",  # nesting and a lone bracket
        "<math>x</math",  # unclosed extension tag
        "''''' '''' ''' '' '",  # quote runs
        "",
    ],
)
def test_bad_input_never_crashes_nor_leaves_tokens(wikitext):
    text = text_from_wikitext(wikitext, EN)
    assert {
        k: n for k, n in residue_counts(text).items() if n and k in ("{{", "}}", "[[", "]]", "{|", "|}", "<ref", "<!--")
    } == {}
    if "After tables" in wikitext:
        assert text == "After tables"
    if "comment that never ends" in wikitext:
        assert text == "Before"  # an unclosed comment runs to the end, as in MediaWiki
    if "unclosed template" in wikitext:
        assert "Text after an unclosed template" in text


@pytest.mark.parametrize(
    "piece", ["{{", "[[", "{{a|", "[[a|", "<ref>", "<!--", "{|\n", "''", "[http://x ", "<span>", "{{{", "]]}}"]
)
def test_pathological_pages_take_linear_time(piece):
    """A guard against quadratic scans (not a speed claim: see benchmarks/bench_text.py).

    200,000 repetitions of an unclosed token (1-2 MB): a quadratic scan needs hours, a linear one
    well under a second; the bound is generous for a shared machine.
    """
    text = piece * 200_000 + "\nend"
    started = time.process_time()
    out = text_from_wikitext(text, EN)
    assert time.process_time() - started < 20
    assert "{{" not in out and "[[" not in out


# -- HTML ----------------------------------------------------------------------------------------


def test_text_from_real_parsoid_html():
    potts = text_from_html((HTML / "mwparserfromhtml__enwiki-Mike_Potts-rev1052159182.parsoid.html").read_text())
    lines = potts.split("\n")
    assert lines[0] == "Mike or Michael Potts may refer to:"
    assert "Michael Potts (actor), American actor" in lines  # list items, links as their text
    clark = text_from_html(
        (HTML / "mwparserfromhtml__enwiki-William_Clark_inventor-rev1054288291.parsoid.html").read_text()
    )
    lines = clark.split("\n")
    # the lead's dates come from a template: HTML has them expanded, wikitext would not
    assert lines[0] == "William Clark (17 March 1821 – 22 January 1880) was an English civil engineer and inventor."
    assert "Life" in lines  # a heading as a line
    assert "[1]" not in clark and "<" not in clark and "References" not in lines[1:3]
    assert {k: n for k, n in residue_counts(clark).items() if n} == {}


def test_records_with_html_use_it():
    records = [json.loads(line) for line in (HTML / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson").open()]
    for record in records:
        assert record["article_body"]["html"]
        text = record_text(record, EN)
        assert text == text_from_html(record["article_body"]["html"])
        assert text and "<" not in text and "{{" not in text
        row = text_row(record, EN)
        assert row["id"] == str(record["identifier"]) and row["title"] == record["name"]
        assert row["date_modified"] == parse_time_ns(record["date_modified"]) // 1_000_000  # the column's ms
        assert row["license"] == record["license"][0]["identifier"]


def test_bad_html_does_not_crash():
    assert text_from_html("") == ""
    assert text_from_html("<p>unclosed <b>bold <table><tr><td>cell") == "unclosed bold"
    assert text_from_html("<<<>>>&&&") == "<<<>>>&&&"


# -- build ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enwiki_all(build, tmp_path_factory):
    out = tmp_path_factory.mktemp("text-all")
    code, _stdout, stderr = build([ENWIKI], out, "--formats", "ndjson,parquet,text")
    assert code == 0, stderr
    return out


@pytest.fixture(scope="module")
def enwiki_text_only(build, tmp_path_factory):
    out = tmp_path_factory.mktemp("text-only")
    code, _stdout, stderr = build([ENWIKI], out, "--formats", "text")
    assert code == 0, stderr
    return out


def test_text_rows_match_the_ndjson_records(enwiki_all):
    _names, records, _lines = read_snapshot(enwiki_all / "enwiki_namespace_0.tar.gz")
    table = read_text(enwiki_all)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [str(r["identifier"]) for r in records]  # one row per article, id order
    assert [r["url"] for r in rows] == [r["url"] for r in records]
    assert [r["title"] for r in rows] == [r["name"] for r in records]
    assert [format_time(r["date_modified"]) for r in rows] == [r["date_modified"] for r in records]
    assert {r["license"] for r in rows} == {"CC-BY-SA-4.0"}
    assert all(r["qid"] is None for r in rows)  # no enrichment given
    for row, record in zip(rows, records, strict=True):
        assert row["text"] == text_from_wikitext(record["article_body"]["wikitext"], EN)
        assert {k: n for k, n in residue_counts(row["text"]).items() if n} == {}, row["title"]
    anarchism = next(r for r in rows if r["title"] == "Anarchism")
    assert "Etymology and terminology" in anarchism["text"].split("\n")
    # only namespace 0 gets text by default; the other snapshots have none
    assert sorted(p.name for p in (enwiki_all / "text").iterdir()) == ["enwiki_namespace_0"]
    manifest = json.loads((enwiki_all / "manifest.json").read_text())
    listed = [o for o in manifest["outputs"] if o["kind"] == "text"]
    assert (
        listed and sum(o["records"] for o in listed) == len(rows) == manifest["counts"]["enwiki"]["records/ns0/written"]
    )
    assert all(o["path"].startswith("text/enwiki_namespace_0/enwiki_namespace_0_") for o in listed)


def test_text_shards_are_read_back_like_parquet(enwiki_all):
    import hashlib

    from wikisnap.transforms.verify import verify_file
    from wikisnap.transforms.write import OutputFile

    shard = next((enwiki_all / "text" / "enwiki_namespace_0").glob("*.parquet"))
    data = shard.read_bytes()
    rows = pq.ParquetFile(shard).metadata.num_rows
    good = OutputFile("text", "enwiki", 0, str(shard), len(data), hashlib.md5(data).hexdigest(), rows)
    assert verify_file(good) == (rows, [])
    counted, problems = verify_file(OutputFile(**{**good.__dict__, "records": rows + 1}))
    assert counted == rows and problems == [f"{shard}: {rows:,} records on storage, {rows + 1:,} written"]


def test_text_alone_writes_only_text_and_the_same_rows(enwiki_all, enwiki_text_only):
    files = sorted(str(p.relative_to(enwiki_text_only)) for p in enwiki_text_only.rglob("*") if p.is_file())
    files = [f for f in files if not f.startswith(".wikisnap")]
    assert files == [
        "manifest.json",
        "schemas/text.schema.json",
        "text/enwiki_namespace_0/enwiki_namespace_0_0.parquet",
    ]
    assert read_text(enwiki_text_only).equals(read_text(enwiki_all))
    manifest = json.loads((enwiki_text_only / "manifest.json").read_text())
    counts = manifest["counts"]["enwiki"]
    # every page read is still accounted for: other namespaces are counted as skipped
    assert counts["records/ns0/written"] == 106 and counts["pages_read"] == 206
    assert manifest["options"]["text_namespaces"] == [0]


@pytest.mark.parametrize(("dump", "db"), [(ELWIKIVOYAGE, "elwikivoyage"), (ENWIKTIONARY, "enwiktionary")])
def test_other_wikis_one_row_per_article(build, tmp_path, dump, db):
    out = tmp_path / "out"
    code, _stdout, stderr = build([dump], out, "--formats", "ndjson,text")
    assert code == 0, stderr
    _names, records, _lines = read_snapshot(out / f"{db}_namespace_0.tar.gz")
    rows = read_text(out, f"{db}_namespace_0").to_pylist()
    assert records and [(r["id"], r["url"], r["title"]) for r in rows] == [
        (str(r["identifier"]), r["url"], r["name"]) for r in records
    ]
    site = read_siteinfo(str(dump))
    for row, record in zip(rows, records, strict=True):
        assert row["text"] == text_from_wikitext(record["article_body"]["wikitext"], site)
        assert "[[" not in row["text"] and "{{" not in row["text"]
    # localised file/category prefixes are known from the siteinfo, and unpiped links to sister
    # projects (`[[Commons:Category:Samoa]]`, `[[wikipedia:el:Σαμόα]]`) are pointers, not prose
    for r, record in zip(rows, records, strict=True):
        assert "Κατηγορία:" not in r["text"] and "wikipedia:" not in r["text"]
        if "Category:" in r["text"]:
            # the one exception: `[[:Category:English portmanteaus]]` (leading colon) is a visible
            # link in MediaWiki, so its text stays
            assert "[[:Category:" in record["article_body"]["wikitext"], r["title"]


def test_qid_from_the_qid_map(build, tmp_path):
    qids = {12: "Q6199", 25: "Q38404", 39: "Q101038", 290: "Q9659"}  # Anarchism, Autism, Albedo, A
    qid_map = tmp_path / "qids.csv"
    qid_map.write_text("page_id,qid\n" + "".join(f"{pid},{qid}\n" for pid, qid in qids.items()))
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI], out, "--formats", "text", "--qid-map", str(qid_map))
    assert code == 0, stderr
    rows = read_text(out).to_pylist()
    assert {int(r["id"]): r["qid"] for r in rows if r["qid"]} == qids
    assert sum(r["qid"] is None for r in rows) == len(rows) - 4


def test_same_bytes_with_one_and_two_workers(build, tmp_path, enwiki_text_only):
    out = tmp_path / "w2"
    code, _stdout, stderr = build([ENWIKI], out, "--formats", "text", "--workers", "2", "--bucket-span", "200")
    assert code == 0, stderr
    one = tmp_path / "w1"
    assert build([ENWIKI], one, "--formats", "text", "--bucket-span", "200")[0] == 0
    shards = sorted(p.relative_to(one) for p in (one / "text").rglob("*.parquet"))
    assert len(shards) > 1  # several buckets, written in parallel with 2 workers
    assert shards == sorted(p.relative_to(out) for p in (out / "text").rglob("*.parquet"))
    for shard in shards:
        assert (one / shard).read_bytes() == (out / shard).read_bytes()
    # and the default run (one bucket) holds the same rows
    assert pa.concat_tables(pq.read_table(one / s) for s in shards).equals(read_text(enwiki_text_only))


def test_text_namespaces(build, tmp_path):
    code, _stdout, stderr = build(
        [ENWIKI], tmp_path / "a", "--formats", "ndjson,text", "--namespaces", "0", "--text-namespaces", "0,14"
    )
    assert code == 2 and "--text-namespaces 14 not among --namespaces" in stderr
    # categories of the elwikivoyage sample as text: `--formats text` alone reads only them
    out = tmp_path / "b"
    code, _stdout, stderr = build([ELWIKIVOYAGE], out, "--formats", "text", "--text-namespaces", "14")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]["elwikivoyage"]
    rows = read_text(out, "elwikivoyage_namespace_14").to_pylist()
    assert rows and counts["records/ns14/written"] == len(rows) and "records/ns0/written" not in counts
    assert counts["pages/ns0/skipped"] > 0
    assert all(r["title"].startswith("Κατηγορία:") for r in rows)
    assert sorted(p.name for p in (out / "text").iterdir()) == ["elwikivoyage_namespace_14"]
    with pytest.raises(SystemExit) as exc:  # argparse's usage error
        build([ENWIKI], tmp_path / "c", "--formats", "text,html")
    assert exc.value.code == 2


# WME record inputs with no XML dump: three files, seven wikis, several wikis in one file (only a
# file's first record names a wiki at launch; the others are met as the records are read).
WME_INPUTS = (
    HTML / "wme-repo__articles-3records.ndjson",
    DATA / "wme" / "sdk-articles-3lines-2023.ndjson",
    HTML / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson",
)


@pytest.mark.parametrize("formats", ["ndjson,text", "text"])
def test_text_of_wme_records_alone(build, tmp_path, formats):
    """WME records (no XML, no siteinfo) → one text row per record, its HTML's text; verify passes."""
    from test_api import cli

    out = tmp_path / "out"
    code, _stdout, stderr = build(list(WME_INPUTS), out, "--formats", formats)
    assert code == 0, stderr
    wikis: dict[str, list[dict]] = {}
    for path in WME_INPUTS:
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            wikis.setdefault(record["is_part_of"]["identifier"], []).append(record)
    assert sorted(wikis) == ["dewiki", "enwiki", "enwikiversity", "frwiki", "ruwiki", "simplewiki"]
    for db, records in wikis.items():
        rows = read_text(out, f"{db}_namespace_0").to_pylist()
        assert [(r["id"], r["url"], r["title"], r["text"]) for r in rows] == [
            (str(r["identifier"]), r["url"], r["name"], text_from_html(r["article_body"]["html"]))
            for r in sorted(records, key=lambda r: r["identifier"])
        ]
        assert all(r["text"] for r in rows)
    assert sorted(p.name for p in (out / "text").iterdir()) == sorted(f"{db}_namespace_0" for db in wikis)
    code, _stdout, stderr = cli("verify", str(out))
    assert code == 0, stderr


def test_text_of_a_wme_record_without_html(build, tmp_path):
    """A record with only wikitext: its text is stripped with the canonical namespace names (all a
    record tells of its wiki), so its `[[Category:…]]` links leave nothing."""
    record = json.loads((HTML / "wme-repo__simplewiki-Albert_Einstein.json").read_text(encoding="utf-8"))
    del record["article_body"]["html"]
    wikitext = record["article_body"]["wikitext"]
    assert "[[Category:" in wikitext
    src = tmp_path / "records.ndjson"
    src.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, _stdout, stderr = build([src], out, "--formats", "text")
    assert code == 0, stderr
    (row,) = read_text(out, "simplewiki_namespace_0").to_pylist()
    assert row["text"] == text_from_wikitext(wikitext, SiteInfo(dbname="simplewiki"))
    assert row["text"].startswith("Albert Einstein") and "Category:" not in row["text"]


def test_a_wiki_without_siteinfo_gets_canonical_names_only_when_records_may_name_it(tmp_path):
    """XML wikis are all listed by the launcher (one left out is a bug, refused); a wiki named only
    by WME records gets a SiteInfo of canonical namespace names."""
    from dataclasses import replace

    from wikisnap.transforms.write import TextShard, WriteOptions

    opts = WriteOptions(str(tmp_path), str(tmp_path), 1, frozenset({"text"}), None, sites=(("enwiki", EN),))
    assert opts.site("enwiki") is EN and opts.site("frwiki") is None
    with pytest.raises(ValueError, match="no SiteInfo for the text of"):
        TextShard(str(tmp_path / "x.parquet"), opts.site("frwiki"), opts)
    records = replace(opts, record_wikis=True)
    assert records.site("enwiki") is EN and records.site("frwiki") == SiteInfo(dbname="frwiki")


# -- update --------------------------------------------------------------------------------------


def test_update_gives_the_text_of_the_updated_revision(build, update, tmp_path):
    from test_update import PEAR, PYRUS, older_state

    older = [older_state(src, tmp_path / f"old-{src.name}", {"Pear": 2, "Pyrus": 1}) for src in (PEAR, PYRUS)]
    base, expected, out = tmp_path / "base", tmp_path / "expected", tmp_path / "out"
    assert build(older, base, "--formats", "ndjson,text")[0] == 0
    assert build([PEAR, PYRUS], expected, "--formats", "ndjson,text")[0] == 0
    code, _stdout, stderr = update(base, [PEAR, PYRUS], out)  # formats: the base's
    assert code == 0, stderr
    before, after, want = read_text(base).to_pylist(), read_text(out).to_pylist(), read_text(expected).to_pylist()
    assert [r["text"] for r in after] == [r["text"] for r in want]
    assert [r["date_modified"] for r in after] == [r["date_modified"] for r in want]
    assert [r["text"] for r in after] != [r["text"] for r in before]  # the diff changed the text
    _names, records, _lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    assert [r["id"] for r in after] == [str(r["identifier"]) for r in records]
    # an update that asks for text on a base without it makes text for every record
    base2, out2 = tmp_path / "base2", tmp_path / "out2"
    assert build(older, base2)[0] == 0
    code, _stdout, stderr = update(base2, [PEAR, PYRUS], out2, "--formats", "ndjson,parquet,text")
    assert code == 0, stderr
    assert read_text(out2).to_pylist() == after
    assert json.loads((out / "manifest.json").read_text())["options"]["text_namespaces"] == [0]
    # the text namespaces of the base carry over unless --text-namespaces says otherwise
    base4 = tmp_path / "base4"
    assert build(older, base4, "--formats", "ndjson,text", "--text-namespaces", "0,14")[0] == 0
    assert update(base4, [PEAR], tmp_path / "out4")[0] == 0
    assert json.loads((tmp_path / "out4" / "manifest.json").read_text())["options"]["text_namespaces"] == [0, 14]
    assert update(base4, [PEAR], tmp_path / "out5", "--text-namespaces", "0")[0] == 0
    assert json.loads((tmp_path / "out5" / "manifest.json").read_text())["options"]["text_namespaces"] == [0]
    # a text-only output cannot be a base: a clear error
    base3 = tmp_path / "base3"
    assert build(older, base3, "--formats", "text")[0] == 0
    code, _stdout, stderr = update(base3, [PEAR], tmp_path / "out3")
    assert code == 2 and "holds only plain text" in stderr


# -- text made as pages are read (`--formats text` alone) ----------------------------------------


def test_early_text_is_the_text_the_writer_would_make(enwiki_pages):
    from wikisnap.configs import license_for
    from wikisnap.schemas.serialize import to_wme_json_bytes
    from wikisnap.transforms.parse.plaintext import slim_article, with_early_text
    from wikisnap.transforms.write import record_weight

    site = read_siteinfo(str(ENWIKI))
    pages = [p for p in iter_pages(str(ENWIKI), site, ReadStats(str(ENWIKI))) if p.ns == 0 and not p.redirect]
    assert len(pages) == len(enwiki_pages) > 100
    for page in pages:
        late = slim_article(page, site, license_for("enwiki", 0))
        early = with_early_text(slim_article(page, site, license_for("enwiki", 0)), site)
        assert "article_body" not in early  # the wikitext is not carried on
        assert record_text(early, site) == record_text(late, site) == text_from_wikitext(page.revision.text, site)
        assert record_weight(early) == record_weight(late) == len(page.revision.text)
        assert text_row(early, site) == text_row(late, site)
        with pytest.raises(ValueError, match="unknown key '_text'"):
            to_wme_json_bytes(early)


def spilled_bodies(monkeypatch) -> list[str]:
    """What each spilled record carries for its body: "_text", "wikitext" or "html"."""
    from wikisnap.transforms.formats import spill

    seen: list[str] = []
    pack = spill.pack_record

    def spy(record):
        body = record.get("article_body") or {}
        seen.append("_text" if "_text" in record else ",".join(sorted(body)) or "none")
        return pack(record)

    monkeypatch.setattr(spill, "pack_record", spy)
    return seen


def test_text_alone_spills_the_text_not_the_wikitext(build, tmp_path, monkeypatch, enwiki_text_only):
    seen = spilled_bodies(monkeypatch)
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI], out, "--formats", "text")
    assert code == 0, stderr
    assert seen and set(seen) == {"_text"}
    assert read_text(out).equals(read_text(enwiki_text_only))


def test_with_an_html_input_the_text_waits_for_the_html(build, tmp_path, monkeypatch):
    records = HTML / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson"
    seen = spilled_bodies(monkeypatch)
    out = tmp_path / "out"
    code, _stdout, stderr = build([ENWIKI, records], out, "--formats", "text")
    assert code == 0, stderr
    assert "_text" not in seen and "wikitext" in seen
    rows = {row["title"]: row["text"] for row in read_text(out).to_pylist()}
    for line in records.open():
        record = json.loads(line)
        assert rows[record["name"]] == text_from_html(record["article_body"]["html"])
