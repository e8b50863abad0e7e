"""The SQL dump reader on the real table dumps in tests/data/sql (PROVENANCE.md §4)."""

from __future__ import annotations

import bz2
import gzip
import time

import pytest
from sqlfiles import CR_PAGE, RM_PAGE_PROPS, SQL, sql_dump

from conftest import ENWIKI
from wikisnap.transforms.formats.sqldump import (
    SqlDumpError,
    db_from_name,
    iter_records,
    iter_rows,
    mysql_time_to_rfc3339,
    read_sql_header,
    sql_table_of,
)

# Row counts from the files' own headers/PROVENANCE (complete dumps of four small wikis).
EXPECTED = {
    "randomSearcher__ngwiki-20160111-page.sql.gz": ("page", 444),
    "randomSearcher__hzwiki-20160111-page.sql.gz": ("page", 175),
    "randomSearcher__crwiki-20160111-page.sql.gz": ("page", 2031),
    "randomSearcher__muswiki-20160111-page.sql.gz": ("page", 114),
    "randomSearcher__ngwiki-20160111-redirect.sql.gz": ("redirect", 21),
    "randomSearcher__hzwiki-20160111-redirect.sql.gz": ("redirect", 10),
    "randomSearcher__crwiki-20160111-redirect.sql.gz": ("redirect", 262),
    "randomSearcher__muswiki-20160111-redirect.sql.gz": ("redirect", 1),
    "randomSearcher__ngwiki-20160111-pagelinks.sql.gz": ("pagelinks", 1758),
    "randomSearcher__hzwiki-20160111-pagelinks.sql.gz": ("pagelinks", 224),
    "randomSearcher__crwiki-20160111-pagelinks.sql.gz": ("pagelinks", 4368),
    "randomSearcher__muswiki-20160111-pagelinks.sql.gz": ("pagelinks", 160),
    "wikidata-qrank__rmwiki-20240301-page_props.EXCERPT.sql.gz": ("page_props", 6),
    "wikidata-qrank__metawiki-20240401-sites.sql.gz": ("sites", 1025),
    "mwsql__simplewiki-change_tag_def-testfile.sql.gz": ("change_tag_def", 84),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_dumps_parse_to_their_row_counts(name):
    path = str(SQL / name)
    table, count = EXPECTED[name]
    header = read_sql_header(path)
    assert header.table == table == sql_table_of(path)
    rows = list(iter_rows(path, header))
    assert len(rows) == count
    assert all(len(row) == len(header.columns) for row in rows)


def test_values_are_typed_and_unescaped():
    rows = list(iter_rows(str(RM_PAGE_PROPS)))
    assert rows[0] == (1, "wikibase_item", "Q5296", None)
    assert rows[1] == (799, "page_image_free", "Karte_Gemeinde_Zürich_2007.png", None)
    assert rows[-1] == (14564, "unexpectedUnconnectedPage", "-10", -10)
    # crwiki: a title ending in an escaped quote, an interwiki redirect, NULL, doubles.
    redirect = list(iter_rows(str(SQL / "randomSearcher__crwiki-20160111-redirect.sql.gz")))
    assert redirect[0] == (1398, 0, "ᐃᔨᔨᐤ_ᐊᔨᒧᐎᓐ'", "", "")
    assert (1632, 0, "User:Sirius_Zwarts_Bot", "en", "") in redirect
    page = next(iter_records(str(CR_PAGE)))
    assert page["page_id"] == 1 and page["page_random"] == 0.473212207422 and page["page_content_model"] == "wikitext"
    sites = next(iter_records(str(SQL / "wikidata-qrank__metawiki-20240401-sites.sql.gz")))
    assert sites["site_global_key"] == "aawiki"
    assert sites["site_data"].startswith('a:1:{s:5:"paths"')  # \" unescaped


def test_escapes_binary_and_containers(tmp_path):
    rows = [
        (1, "wikibase_item", "a\\b'c\nd\x00e", None),
        (2, "x", "(,)';", 1.5),
    ]
    for compress in (True, False):
        path = sql_dump(tmp_path / f"t{compress}.sql", RM_PAGE_PROPS, rows, compress=compress)
        assert list(iter_rows(str(path))) == rows
    text = gzip.decompress(RM_PAGE_PROPS.read_bytes())
    # bz2 container, `_binary` strings (newer mysqldump), \Z and a non-UTF-8 byte.
    text = text.replace(b"'Q5296'", b"_binary 'Q5\\Z296\xff'")
    (tmp_path / "b.sql.bz2").write_bytes(bz2.compress(text))
    first = next(iter_rows(str(tmp_path / "b.sql.bz2")))
    assert first[2] == "Q5\x1a296\udcff"
    assert first[2].encode("utf-8", "surrogateescape") == b"Q5\x1a296\xff"


def test_sql_table_of_recognises_content_not_names(tmp_path):
    assert sql_table_of(str(ENWIKI)) is None
    misnamed = tmp_path / "enwiki-20240301-pages-articles.xml.bz2"
    misnamed.write_bytes(RM_PAGE_PROPS.read_bytes())
    assert sql_table_of(str(misnamed)) == "page_props"
    assert sql_table_of(str(tmp_path / "missing.sql.gz")) is None
    assert db_from_name("enwiki-20240301-page_props.sql.gz") == "enwiki"
    assert db_from_name("randomSearcher__crwiki-20160111-page.sql.gz") == "crwiki"
    assert db_from_name("zh_min_nanwiki-latest-redirect.sql.gz") == "zh_min_nanwiki"
    assert db_from_name("page_props.sql.gz") is None


def test_mysql_times():
    assert mysql_time_to_rfc3339("20300101123456") == "2030-01-01T12:34:56Z"
    assert mysql_time_to_rfc3339("infinity") == "infinity"
    assert mysql_time_to_rfc3339(None) is None


def _text(path):
    return gzip.decompress(path.read_bytes())


def test_truncated_statement_names_file_and_line(tmp_path):
    text = _text(CR_PAGE)
    cut = text[: text.index(b"INSERT INTO") + 5000]  # inside the first row run
    path = tmp_path / "crwiki-20160111-page.sql"
    path.write_bytes(cut)
    with pytest.raises(SqlDumpError) as info:
        list(iter_rows(str(path)))
    line = text[: text.index(b"INSERT INTO")].count(b"\n") + 1
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}: line {line}: truncated")
    # Cut between rows (after a ',') and cut of a gzip stream.
    between = text[: text.index(b"),(", text.index(b"INSERT INTO")) + 2]
    path.write_bytes(between)
    with pytest.raises(SqlDumpError, match="truncated"):
        list(iter_rows(str(path)))
    gz = tmp_path / "crwiki-20160111-page.sql.gz"
    gz.write_bytes(CR_PAGE.read_bytes()[:-100])
    with pytest.raises(SqlDumpError, match="truncated or corrupt"):
        list(iter_rows(str(gz)))


def test_wrong_column_count_names_file_and_line(tmp_path):
    text = _text(RM_PAGE_PROPS).replace(b"(799,'wikibase_item','Q72',NULL)", b"(799,'wikibase_item','Q72')")
    path = tmp_path / "rmwiki-20240301-page_props.sql"
    path.write_bytes(text)
    with pytest.raises(SqlDumpError) as info:
        list(iter_rows(str(path)))
    assert info.value.line == text[: text.index(b"INSERT INTO")].count(b"\n") + 1
    assert "has 3 values, its CREATE TABLE 4 columns" in str(info.value)
    assert str(path) in str(info.value)


def test_garbage_between_rows(tmp_path):
    text = _text(RM_PAGE_PROPS).replace(b"NULL),(799", b"NULL) (799")
    path = tmp_path / "x.sql"
    path.write_bytes(text)
    with pytest.raises(SqlDumpError, match="expected ',' or ';'"):
        list(iter_rows(str(path)))


def test_not_an_sql_dump(tmp_path):
    path = tmp_path / "notes.sql"
    path.write_text("-- just a comment\n")
    with pytest.raises(SqlDumpError, match="no CREATE TABLE or INSERT INTO"):
        read_sql_header(str(path))


def test_speed_on_a_large_generated_dump(tmp_path):
    """Real crwiki page rows and header replicated to ~20 MB: streamed, and fast enough (≥ 2 MB/s)."""
    text = _text(CR_PAGE)
    start = text.index(b"INSERT INTO")
    end = text.index(b";\n", start) + 2
    copies = 20_000_000 // (end - start) + 1
    path = tmp_path / "crwiki-20160111-page.sql"
    with open(path, "wb") as f:
        f.write(text[:start])
        for _ in range(copies):
            f.write(text[start:end])
        f.write(text[end:])
    size = path.stat().st_size
    began = time.perf_counter()
    n = sum(1 for _ in iter_rows(str(path)))
    seconds = time.perf_counter() - began
    assert n == 2031 * copies
    assert size / 1e6 / seconds > 2, f"{size / 1e6 / seconds:.1f} MB/s"


def test_missing_comma_inside_a_row_is_an_error(tmp_path):
    text = _text(RM_PAGE_PROPS).replace(b"(799,'wikibase_item'", b"(799'wikibase_item'")
    path = tmp_path / "rmwiki-20240301-page_props.sql"
    path.write_bytes(text)
    with pytest.raises(SqlDumpError, match="cannot read a row of `page_props`") as info:
        list(iter_rows(str(path)))
    assert info.value.line == text[: text.index(b"INSERT INTO")].count(b"\n") + 1
