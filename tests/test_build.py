"""End-to-end `wikisnap build` runs on the real dumps in tests/data, read back from NDJSON and Parquet."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lxml import etree

from conftest import (
    BGWIKI_UTF16,
    ELWIKIVOYAGE,
    ENWIKI,
    ENWIKTIONARY,
    NO_SITEINFO,
    VIWIKI_TRUNCATED,
    WIKIDATA,
    read_snapshot,
    read_xml_bytes,
)
from wikisnap.schemas.arrow import table_to_records
from wikisnap.schemas.serialize import to_wme_json


def xml_pages(path):
    """Independent reading of a dump for expectations: (title, ns, id, redirect target, text, model)."""
    root = etree.fromstring(read_xml_bytes(path), parser=etree.XMLParser(huge_tree=True))
    out = []
    for page in root.iterfind("{*}page"):
        redirect = page.find("{*}redirect")
        rev = page.find("{*}revision")
        out.append(
            (
                page.findtext("{*}title"),
                int(page.findtext("{*}ns")),
                int(page.findtext("{*}id")),
                redirect.get("title") if redirect is not None else None,
                rev.findtext("{*}text") or "",
                rev.findtext("{*}model"),
            )
        )
    return out


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


# -- the enwiki sample: the issue's acceptance criteria ------------------------------------------


def test_enwiki_snapshot_has_exactly_its_articles(enwiki_build):
    out = enwiki_build
    pages = xml_pages(ENWIKI)
    articles = {p[2]: p for p in pages if p[1] == 0 and p[3] is None}
    assert len(articles) == 106
    names, records, lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    assert names == ["enwiki_namespace_0_0.ndjson"]
    assert len(records) == 106
    assert [r["identifier"] for r in records] == sorted(articles)  # page-id order
    for r in records:
        title, ns, pid, _, text, _ = articles[r["identifier"]]
        assert r["name"] == title and r["namespace"] == {"identifier": 0}
        assert r["article_body"]["wikitext"] == text
        assert r["version"]["number_of_characters"] == len(text)
        assert r["version"]["size"] == {"value": len(text.encode()), "unit_text": "B"}
        assert r["url"] == "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe=";:@$!*(),/~")
        assert r["is_part_of"] == {"identifier": "enwiki", "url": "https://en.wikipedia.org"}
        assert r["in_language"] == {"identifier": "en"}
        assert r["event"]["type"] == "update" and r["event"]["date_created"] == r["date_modified"]
        assert r["license"][0]["identifier"] == "CC-BY-SA-4.0"
    # every line is exactly what the WME serialiser writes for its record
    assert all(line == (to_wme_json(rec) + "\n").encode() for line, rec in zip(lines, records, strict=True))


def test_enwiki_redirects_attached_to_their_targets(enwiki_build):
    pages = xml_pages(ENWIKI)
    title_to_id = {p[0]: p[2] for p in pages if p[3] is None and p[1] == 0}
    expected: dict[int, set[str]] = {}
    dangling = 0
    for title, _ns, _pid, target, *_ in pages:
        if target is None:
            continue
        if target in title_to_id:
            expected.setdefault(title_to_id[target], set()).add(title)
        else:
            dangling += 1
    _, records, _ = read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")
    got = {r["identifier"]: {x["name"] for x in r.get("redirects", [])} for r in records if r.get("redirects")}
    assert got == expected and sum(map(len, expected.values())) > 0
    manifest = json.loads((enwiki_build / "manifest.json").read_text())
    counts = manifest["counts"]["enwiki"]
    assert counts["redirects_attached"] == sum(map(len, expected.values()))
    assert counts["redirects_dangling"] == dangling
    assert counts["pages_read"] == 206 and counts["records/ns0/written"] == 106
    some = next(r for r in records if r.get("redirects"))
    assert all(x["url"].startswith("https://en.wikipedia.org/wiki/") for x in some["redirects"])


def test_enwiki_metadata_is_wme_shaped(enwiki_build):
    out = enwiki_build
    meta_text = (out / "enwiki_namespace_0.json").read_text()
    meta = json.loads(meta_text)
    assert list(meta) == ["identifier", "version", "date_modified", "is_part_of", "in_language", "namespace", "size"]
    assert meta["identifier"] == "enwiki_namespace_0"
    assert meta["version"] == md5(out / "enwiki_namespace_0.tar.gz")
    size = (out / "enwiki_namespace_0.tar.gz").stat().st_size
    assert meta["size"] == {"value": round(size / 1e6, 3), "unit_text": "MB"}
    newest = max(r["date_modified"] for r in read_snapshot(out / "enwiki_namespace_0.tar.gz")[1])
    assert meta["date_modified"] == newest


def test_enwiki_parquet_is_typed_and_matches_ndjson(enwiki_build):
    out = enwiki_build
    files = sorted((out / "parquet" / "enwiki_namespace_0").glob("*.parquet"))
    assert [f.name for f in files] == ["enwiki_namespace_0_0.parquet"]
    table = pq.read_table(files[0])
    assert table.num_rows == 106
    assert pa.types.is_struct(table.schema.field("version").type)
    assert pa.types.is_list(table.schema.field("redirects").type)
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    _, records, lines = read_snapshot(out / "enwiki_namespace_0.tar.gz")
    for row, line in zip(table_to_records(table), lines, strict=True):
        assert (to_wme_json(row) + "\n").encode() == line


def test_manifest_reconciles_and_lists_checksums(enwiki_build):
    manifest = json.loads((enwiki_build / "manifest.json").read_text())
    [inp] = manifest["inputs"]
    assert inp["md5"] == md5(ENWIKI) and inp["pages"] == 206 and inp["compression"] == "bz2"
    kinds = Counter(o["kind"] for o in manifest["outputs"])
    assert kinds == {"tarball": 1, "metadata": 1, "parquet": 1, "schema": 2}  # schemas/{article,metadata}.schema.json
    for o in manifest["outputs"]:
        assert o["md5"] == md5(enwiki_build / o["path"])
    # no temp or staging left behind: the control folder holds only the (released) lock
    assert sorted(p.name for p in (enwiki_build / ".wikisnap").iterdir()) == ["lock"]


def test_two_workers_give_the_same_bytes(enwiki_build, build, tmp_path):
    code, _, err = build([ENWIKI], tmp_path, "--workers", "2")
    assert code == 0, err
    for rel in [
        "enwiki_namespace_0.tar.gz",
        "enwiki_namespace_0.json",
        "parquet/enwiki_namespace_0/enwiki_namespace_0_0.parquet",
    ]:
        assert md5(tmp_path / rel) == md5(enwiki_build / rel), rel


def test_small_members_split_and_stay_ordered(enwiki_build, build, tmp_path):
    code, _, err = build([ENWIKI], tmp_path, "--member-size-mb", "1", "--formats", "ndjson")
    assert code == 0, err
    names, records, lines = read_snapshot(tmp_path / "enwiki_namespace_0.tar.gz")
    assert len(names) > 3 and names == [f"enwiki_namespace_0_{n}.ndjson" for n in range(len(names))]
    _, ref_records, ref_lines = read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")
    assert lines == ref_lines
    assert not (tmp_path / "parquet").exists()
    import tarfile

    with tarfile.open(tmp_path / "enwiki_namespace_0.tar.gz") as tar:
        assert all(m.size <= 1_000_000 or len(tar.extractfile(m).read().splitlines()) == 1 for m in tar)


# -- other wikis and layouts -------------------------------------------------------------------


def test_elwikivoyage_namespaces_content_models_and_localised_names(build, tmp_path):
    code, _, err = build([ELWIKIVOYAGE], tmp_path, "--namespaces", "0,10,14,828")
    assert code == 0, err
    pages = xml_pages(ELWIKIVOYAGE)
    for ns in (0, 10, 14, 828):
        expected = sorted(p[2] for p in pages if p[1] == ns and p[3] is None)
        _, records, _ = read_snapshot(tmp_path / f"elwikivoyage_namespace_{ns}.tar.gz")
        assert [r["identifier"] for r in records] == expected, ns
    models = {p[2]: p[5] for p in pages}
    _, modules, _ = read_snapshot(tmp_path / "elwikivoyage_namespace_828.tar.gz")
    lua = [r for r in modules if models[r["identifier"]] == "Scribunto"]
    assert lua and all("templates" not in r and "categories" not in r and "abstract" not in r for r in lua)
    assert all("maintenance_tags" not in r["version"] for r in lua)
    # Module documentation pages are wikitext and do get parsed
    assert any("maintenance_tags" in r["version"] for r in modules if models[r["identifier"]] == "wikitext")
    _, arts, _ = read_snapshot(tmp_path / "elwikivoyage_namespace_0.tar.gz")
    cats = [c["name"] for r in arts for c in r.get("categories", [])]
    assert cats and all(c.startswith("Κατηγορία:") for c in cats)
    tpls = [t["name"] for r in arts for t in r.get("templates", [])]
    # direct transclusions carry their localised namespace: templates, and one project page
    assert sum(t.startswith("Πρότυπο:") for t in tpls) > 100
    assert all(t.startswith(("Πρότυπο:", "Βικιταξίδια:")) for t in tpls)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    c = manifest["counts"]["elwikivoyage"]
    assert c["pages/ns4/skipped"] == sum(1 for p in pages if p[1] == 4 and p[3] is None)
    assert c["pages_read"] == 2040


def test_enwiktionary_case_sensitive_titles(build, tmp_path):
    code, _, err = build([ENWIKTIONARY], tmp_path, "--namespaces", "0")
    assert code == 0, err
    _, records, _ = read_snapshot(tmp_path / "enwiktionary_namespace_0.tar.gz")
    lower = [r for r in records if r["name"][0].islower()]
    assert lower
    r = lower[0]
    assert r["url"].endswith("/wiki/" + r["name"].replace(" ", "_")) or "%" in r["url"]
    assert r["url"].startswith("https://en.wiktionary.org/wiki/" + r["name"][0])


def test_wikidata_parts_equal_the_whole_file(build, tmp_path):
    parts = sorted(WIKIDATA.glob("pages-articles-sample1.xml-p*.bz2"))
    whole = WIKIDATA / "pages-articles-sample1.xml.bz2"
    a, b = tmp_path / "parts", tmp_path / "whole"
    assert build(parts, a, "--namespaces", "0,120,122")[0] == 0
    assert build([whole], b, "--namespaces", "0,120,122")[0] == 0
    tars = sorted(p.name for p in a.glob("*.tar.gz"))
    assert tars and tars == sorted(p.name for p in b.glob("*.tar.gz"))
    for name in tars:
        assert md5(a / name) == md5(b / name)
    _, records, _ = read_snapshot(a / tars[0])
    assert records[0]["license"][0]["identifier"] == "CC0-1.0"
    # JSON content passes through untouched, without wikitext-derived fields
    json_records = [r for r in records if r["article_body"]["wikitext"].lstrip().startswith("{")]
    assert json_records and all("templates" not in r and "abstract" not in r for r in json_records)


def test_same_page_in_two_inputs_is_written_once(build, tmp_path):
    whole = WIKIDATA / "pages-articles-sample1.xml.bz2"
    part = WIKIDATA / "pages-articles-sample1.xml-p1p1500.bz2"
    code, _, err = build([whole, part], tmp_path, "--namespaces", "0,120,122,8")
    assert code == 0, err
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    c = manifest["counts"]["wikidatawiki"]
    assert c["duplicates_superseded"] == 2 and c["pages_read"] == 10


def test_several_wikis_in_one_run(build, tmp_path):
    code, _, err = build([ENWIKI, BGWIKI_UTF16], tmp_path, "--namespaces", "0")
    assert code == 0, err
    assert (tmp_path / "enwiki_namespace_0.tar.gz").exists() and (tmp_path / "bgwiki_namespace_0.tar.gz").exists()
    _, bg, _ = read_snapshot(tmp_path / "bgwiki_namespace_0.tar.gz")
    assert [r["name"] for r in bg] == ["Григориански календар"]
    assert (
        bg[0]["url"]
        == "https://bg.wikipedia.org/wiki/%D0%93%D1%80%D0%B8%D0%B3%D0%BE%D1%80%D0%B8%D0%B0%D0%BD%D1%81%D0%BA%D0%B8_%D0%BA%D0%B0%D0%BB%D0%B5%D0%BD%D0%B4%D0%B0%D1%80"
    )
    assert bg[0]["in_language"] == {"identifier": "bg"}


# -- bad inputs: clear errors, nothing published, nothing lost ---------------------------------


def test_truncated_input_fails_and_publishes_nothing(build, tmp_path):
    code, _, err = build([VIWIKI_TRUNCATED], tmp_path)
    assert code == 2
    assert "wikiextractor__viwiki-test.xml" in err and "truncated" in err and "nothing was published" in err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.tar.gz")) and not (tmp_path / "manifest.json").exists()


def test_truncated_input_allowed_keeps_complete_pages(build, tmp_path):
    code, _, err = build([VIWIKI_TRUNCATED], tmp_path, "--allow-truncated", "--namespaces", "0")
    assert code == 0, err
    expected = sum(1 for p in xml_pages_lenient(VIWIKI_TRUNCATED) if p[1] == 0 and not p[3])
    _, records, _ = read_snapshot(tmp_path / "viwiki_namespace_0.tar.gz")
    assert len(records) == expected
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "truncated" in manifest["inputs"][0]["error"]


def xml_pages_lenient(path):
    text = read_xml_bytes(path).decode("utf-8")
    pages = re.findall(r"<page>(.*?)</page>", text, re.S)
    return [(None, int(re.search(r"<ns>(\d+)</ns>", p).group(1)), None, "<redirect" in p) for p in pages]


def test_no_siteinfo_is_a_clear_error_or_borrowed(build, tmp_path):
    code, _, err = build([NO_SITEINFO], tmp_path / "a")
    assert code == 2 and "gensim__enwiki-table-markup.xml.bz2" in err and "<siteinfo>" in err
    assert "Traceback" not in err
    code, _, err = build([NO_SITEINFO], tmp_path / "b", "--siteinfo-from", str(ENWIKI))
    assert code == 0, err
    _, records, _ = read_snapshot(tmp_path / "b" / "enwiki_namespace_0.tar.gz")
    assert len(records) == 5


def test_header_only_parts(build, tmp_path):
    parts = sorted(WIKIDATA.glob("pages-articles-sample4.xml-p*.bz2"))
    code, _, err = build(parts, tmp_path)
    assert code == 2 and "header-only" in err and parts[0].name in err


@pytest.mark.parametrize("kind", ["missing", "xz"])
def test_missing_file_and_unknown_compression(build, tmp_path, kind):
    import lzma

    path = tmp_path / "enwiki-pages-articles.xml.xz"
    if kind == "xz":
        path.write_bytes(lzma.compress(read_xml_bytes(ENWIKI)[:20000]))
    code, _, err = build([path], tmp_path / "out")
    assert code == 2 and path.name in err and "Traceback" not in err
    assert ("no such file" in err) if kind == "missing" else ("xz compression is not supported" in err)


def test_broken_page_is_dead_lettered_with_raw_input(build, tmp_path):
    import bz2

    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    broken = xml.replace(
        "<title>Anarchism</title>\n    <ns>0</ns>\n    <id>12</id>", "<title>Anarchism</title>\n    <ns>0</ns>", 1
    )
    path = tmp_path / "enwiki-broken.xml.bz2"
    path.write_bytes(bz2.compress(broken.encode()))
    code, _, err = build([path], tmp_path / "out")
    assert code == 0, err
    letters = [
        json.loads(line) for line in (tmp_path / "out/deadletter/enwiki_deadletters.ndjson").read_text().splitlines()
    ]
    assert len(letters) == 1 and "no <id>" in letters[0]["reason"] and "<title>Anarchism</title>" in letters[0]["raw"]
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    c = manifest["counts"]["enwiki"]
    assert c["dead_lettered"] == 1 and c["records/ns0/written"] == 105 and c["pages_read"] == 206


def test_multi_threading_is_refused(build, tmp_path):
    code, _, err = build([ENWIKI], tmp_path, "--direct_running_mode", "multi_threading")
    assert code == 2 and "multi_threading is refused" in err and "--workers" in err


def test_console_script_help_and_bad_flag():
    exe = [sys.executable, "-m", "wikisnap.pipelines.cli"]
    help_text = subprocess.run([*exe, "build", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--out", "--namespaces", "--date", "--workers", "--formats", "--allow-truncated", "--member-size-mb"):
        assert flag in help_text
    bad = subprocess.run(
        [*exe, "build", str(ENWIKI), "--out", "x", "--namespaces", "a,b"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--namespaces takes comma-separated numbers" in bad.stderr


def test_date_option_sets_metadata_and_is_deterministic(build, tmp_path):
    for sub in ("a", "b"):
        assert build([ENWIKI], tmp_path / sub, "--date", "20241101", "--formats", "ndjson")[0] == 0
    meta = json.loads((tmp_path / "a/enwiki_namespace_0.json").read_text())
    assert meta["date_modified"] == "2024-11-01T00:00:00Z"
    assert md5(tmp_path / "a/enwiki_namespace_0.tar.gz") == md5(tmp_path / "b/enwiki_namespace_0.tar.gz")


def test_fsspec_url_input_gives_the_same_bytes(enwiki_build, build, tmp_path):
    code, _, err = build([ENWIKI.resolve().as_uri()], tmp_path)
    assert code == 0, err
    assert md5(tmp_path / "enwiki_namespace_0.tar.gz") == md5(enwiki_build / "enwiki_namespace_0.tar.gz")


def test_oversized_and_revisionless_pages_are_dead_lettered(build, tmp_path):
    import bz2

    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    # a real page stripped of its <revision>: nothing to build a record from
    start = xml.index("<title>Autism</title>")
    rev_start = xml.index("<revision>", start)
    rev_end = xml.index("</revision>", rev_start) + len("</revision>")
    path = tmp_path / "enwiki-norev.xml.bz2"
    path.write_bytes(bz2.compress((xml[:rev_start] + xml[rev_end:]).encode()))
    code, _, err = build([path], tmp_path / "out", "--max-page-bytes", "150000")
    assert code == 0, err
    letters = [json.loads(x) for x in (tmp_path / "out/deadletter/enwiki_deadletters.ndjson").read_text().splitlines()]
    reasons = {d["title"]: d["reason"] for d in letters}
    assert "no <revision>" in reasons["Autism"]
    big = {p[0] for p in xml_pages(ENWIKI) if p[1] == 0 and p[3] is None and len(p[4]) > 150000}
    assert big and all("exceeds --max-page-bytes" in reasons[t] for t in big)
    assert all(len(d["raw"]) > 150000 for d in letters if d["title"] in big)  # raw text kept
    c = json.loads((tmp_path / "out/manifest.json").read_text())["counts"]["enwiki"]
    assert c["dead_lettered"] == 1 + len(big) and c["records/ns0/written"] == 106 - 1 - len(big)
