"""The dump reader on real dumps: siteinfo, schema versions, content models, bad inputs."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re

import pytest

from conftest import (
    BGWIKI_UTF16,
    ELWIKIVOYAGE,
    ENWIKI,
    ENWIKTIONARY,
    NO_SITEINFO,
    VIWIKI_TRUNCATED,
    WIKIDATA,
    XML,
    read_xml_bytes,
)
from wikisnap.transforms.formats.dumpfiles import DumpError, sniff_compression
from wikisnap.transforms.formats.dumpreader import PageFailure, RawPage, ReadStats, iter_pages, read_siteinfo


def pages_of(path):
    site = read_siteinfo(str(path))
    stats = ReadStats(str(path))
    items = list(iter_pages(str(path), site, stats))
    return site, stats, items


def test_enwiki_siteinfo_and_pages():
    site, stats, items = pages_of(ENWIKI)
    assert site.dbname == "enwiki"
    assert site.lang == "en"
    assert site.schema_version == "0.10"
    assert site.project_url == "https://en.wikipedia.org"
    assert site.article_path == "https://en.wikipedia.org/wiki/"
    assert site.namespace_name(14) == "Category"
    assert site.namespace_case(2302) == "case-sensitive"
    assert stats.error is None and stats.pages == 206 == len(items)
    assert all(isinstance(p, RawPage) for p in items)
    assert sum(1 for p in items if p.redirect) == 100
    anarchism = next(p for p in items if p.title == "Anarchism")
    assert anarchism.id == 12 and anarchism.ns == 0
    assert anarchism.revision.id == 716551092 and anarchism.revision.parent_id == 714146352
    assert anarchism.revision.editor_ip == "85.193.216.88"
    assert anarchism.revision.text.startswith("{{Redirect2|Anarchist|Anarchists")
    # the checksum is of the file's bytes as stored
    import hashlib

    assert stats.md5 == hashlib.md5(ENWIKI.read_bytes()).hexdigest()
    assert stats.bytes_read == ENWIKI.stat().st_size


def test_export_011_and_content_models():
    site, stats, items = pages_of(ELWIKIVOYAGE)
    assert site.schema_version == "0.11" and site.lang == "el"
    assert site.namespace_name(14) == "Κατηγορία"
    assert site.project_url == "http://localhost"
    assert stats.pages == 2040 and stats.error is None
    models = {p.revision.model for p in items}
    assert {"wikitext", "Scribunto", "css", "javascript", "flow-board"} <= models
    lua = next(p for p in items if p.revision.model == "Scribunto")
    assert lua.ns == 828 and lua.revision.text


def test_case_sensitive_wiki():
    site, _, items = pages_of(ENWIKTIONARY)
    assert site.case == "case-sensitive" and site.namespace_case(0) == "case-sensitive"
    titles = {p.title for p in items}
    assert any(t[0].islower() for t in titles)
    # a lower-case link target keeps its case on a case-sensitive namespace
    assert site.normalize("dictionary") == (0, "dictionary")
    # every content namespace of enwiktionary is case-sensitive, Special: is first-letter
    assert site.normalize("template:en-noun", 0) == (10, "Template:en-noun")
    assert site.normalize("special:random") == (-1, "Special:Random")


def test_wikidata_parts_carry_json_content():
    parts = sorted(WIKIDATA.glob("pages-articles-sample1.xml-p*.bz2"))
    assert len(parts) == 4
    total = 0
    for part in parts:
        site, stats, items = pages_of(part)
        assert site.dbname == "wikidatawiki" and stats.error is None
        total += len(items)
    _, _, whole = pages_of(WIKIDATA / "pages-articles-sample1.xml.bz2")
    assert total == len(whole) == 8
    assert any(p.revision.model.startswith("wikibase") for p in whole)


def test_utf16_dump_is_read():
    site, stats, items = pages_of(BGWIKI_UTF16)
    assert site.dbname == "bgwiki" and site.lang == "bg"
    assert stats.error is None and len(items) == 3
    assert items[0].title == "Григориански календар"


def test_truncated_file_names_file_offset_and_last_page():
    site, stats, items = pages_of(VIWIKI_TRUNCATED)
    assert len(items) == 10  # the complete pages before the cut are read
    err = stats.error
    assert err is not None and err.kind == "truncated"
    message = str(err)
    assert "wikiextractor__viwiki-test.xml" in message
    assert "truncated" in message and "id 33" in message and "Thụy Điển" in message
    assert f"{VIWIKI_TRUNCATED.stat().st_size:,}" in message


def test_truncated_bz2_stream(tmp_path):
    data = ENWIKI.read_bytes()
    cut = tmp_path / "enwiki-cut.xml.bz2"
    cut.write_bytes(data[: len(data) // 2])
    site, stats, items = pages_of(cut)
    assert stats.error is not None and stats.error.kind == "corrupt"
    assert "enwiki-cut.xml.bz2" in str(stats.error) and "last complete page" in str(stats.error)
    assert 0 < len(items) < 206


def test_header_only_part():
    path = WIKIDATA / "pages-articles-sample4.xml-p4606p5340.bz2"
    site, stats, items = pages_of(path)
    assert items == []
    assert stats.error.kind == "truncated" and "header-only" in str(stats.error)


def test_no_siteinfo():
    with pytest.raises(DumpError) as info:
        read_siteinfo(str(NO_SITEINFO))
    assert info.value.kind == "no-siteinfo"
    assert "gensim__enwiki-table-markup.xml.bz2" in str(info.value) and "<siteinfo>" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DumpError) as info:
        read_siteinfo(str(tmp_path / "nope.xml.bz2"))
    assert "nope.xml.bz2: no such file" in str(info.value)


def test_gzip_and_plain_xml_give_same_pages(tmp_path):
    xml = read_xml_bytes(ENWIKI)
    (tmp_path / "e.xml").write_bytes(xml)
    (tmp_path / "e.xml.gz").write_bytes(gzip.compress(xml))
    ref = [(p.id, p.revision.text) for p in pages_of(ENWIKI)[2]]
    for name in ("e.xml", "e.xml.gz"):
        assert [(p.id, p.revision.text) for p in pages_of(tmp_path / name)[2]] == ref


@pytest.mark.parametrize(
    "payload,name",
    [
        (lambda xml: lzma.compress(xml), "xz"),
        (lambda xml: b"7z\xbc\xaf\x27\x1c" + xml[:100], "7z"),
        (lambda xml: b"\x00\x01garbage", "unknown"),
    ],
)
def test_unknown_compression(tmp_path, payload, name):
    path = tmp_path / f"enwiki.xml.{name}"
    path.write_bytes(payload(read_xml_bytes(ENWIKI)))
    with pytest.raises(DumpError) as info:
        read_siteinfo(str(path))
    assert info.value.kind == "compression" and path.name in str(info.value)
    if name != "unknown":
        assert f"{name} compression is not supported" in str(info.value)


def test_malformed_page_becomes_failure_with_raw_xml(tmp_path):
    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    # break one real page: drop its <id> (a page without an id cannot be a record)
    broken = xml.replace(
        "<title>Anarchism</title>\n    <ns>0</ns>\n    <id>12</id>", "<title>Anarchism</title>\n    <ns>0</ns>", 1
    )
    assert broken != xml
    path = tmp_path / "broken.xml.bz2"
    path.write_bytes(bz2.compress(broken.encode("utf-8")))
    _, stats, items = pages_of(path)
    failures = [i for i in items if isinstance(i, PageFailure)]
    assert len(failures) == 1 and "no <id>" in failures[0].reason
    assert "<title>Anarchism</title>" in failures[0].raw_xml and len(items) == 206


def test_sniff_by_content_not_name():
    assert sniff_compression("x.xml", b"BZh91AY") == "bz2"
    assert sniff_compression("x.bz2", b"<mediawiki") == "xml"
    assert sniff_compression("x", b"\xff\xfe<\x00") == "xml"
    assert list(XML.glob("*.bz2"))


def test_export_03_without_dbname_and_ns():
    # Special:Export of 2009 (schema 0.3): no <dbname>, no <ns>, several revisions per page
    path = XML.parent / "history" / "pywikibot__article-pear.xml"
    site, stats, items = pages_of(path)
    assert site.dbname == "enwiki" and site.schema_version == "0.3"
    [page] = items
    assert page.title == "Pear" and page.ns == 0 and page.revisions_seen == 4
    ids = [int(i) for i in re.findall(r"<revision>\s*<id>(\d+)</id>", path.read_text())]
    assert len(ids) == 4 and page.revision.id == max(ids)  # the newest revision is kept
    talk = site.split_title("Talk:Pear")
    assert talk == (1, "Pear")


def test_dbname_from_base():
    from wikisnap.schemas.siteinfo import dbname_from_base

    assert dbname_from_base("https://en.wikipedia.org/wiki/Main_Page") == "enwiki"
    assert dbname_from_base("https://zh-min-nan.wikipedia.org/wiki/X") == "zh_min_nanwiki"
    assert dbname_from_base("https://www.wikidata.org/wiki/Wikidata:Main_Page") == "wikidatawiki"
    assert dbname_from_base("https://el.wikivoyage.org/wiki/X") == "elwikivoyage"
    assert dbname_from_base("http://localhost/elwv/index.php/X") is None
