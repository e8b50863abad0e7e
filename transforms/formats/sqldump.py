"""Reading MySQL table dumps (`{db}-{date}-{table}.sql.gz`): header, then rows as tuples.

Pure functions and generators, no Beam. `read_sql_header(path)` reads only the head of a file
(table name and column order from its own `CREATE TABLE`, the same for every later `INSERT`);
`iter_rows(path)` streams the rows of every `INSERT INTO … VALUES (…),(…);` statement as tuples
of `int | float | str | None`. Compression (`.sql`, gzip, bz2) is read from the first bytes, like
the XML reader does, and any local path or fsspec URL works.

Why a regex per row and not a character loop: WMF dumps put ~1 MB of rows on one line, and a
Python loop over characters reads ~1 MB/s; one `re.match` per row plus one `findall` for its
fields keeps the work in C. Memory is bounded by the read chunk plus the longest row, never a
whole statement or file. Strings are decoded as UTF-8 with `surrogateescape`, so binary values
survive (`s.encode('utf-8', 'surrogateescape')` gives back the bytes).

Malformed input (a truncated statement, a row with the wrong number of values, garbage between
rows) raises `SqlDumpError` naming the file, the line and the problem.
"""

from __future__ import annotations

import bz2
import gzip
import io
import operator
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from wikisnap.transforms.formats.dumpfiles import DumpError, missing_or_unreachable, open_head, open_stream
from wikisnap.transforms.formats.layout import DBNAME_RULE, is_dbname

_CHUNK = 4 << 20
# A row longer than this is not waited for: the statement is malformed (unbalanced quote).
_MAX_ROW = 256 << 20
_HEAD_BYTES = 1 << 20

# One quoted value, unrolled (`[^'\\]*(?:\\.[^'\\]*)*`) so the engine does not alternate per byte.
_QUOTED = rb"(?:_binary\s*)?'[^'\\]*(?:\\.[^'\\]*)*'"
_VALUE = rb"(?:" + _QUOTED + rb"|[^,'()\s]+)"
# Strict on structure (values separated by single commas) so `(1'a')` is an error, not two values.
_ROW = re.compile(rb"\(\s*(" + _VALUE + rb"(?:\s*,\s*" + _VALUE + rb")*)\s*\)", re.DOTALL)
_FIELD = re.compile(rb"(?:_binary\s*)?'([^'\\]*(?:\\.[^'\\]*)*)'|([^,'\s][^,']*)", re.DOTALL)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_ESCAPES = {b"0": b"\x00", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"Z": b"\x1a"}
_INSERT = re.compile(rb"INSERT\s+(?:IGNORE\s+)?INTO\s+`?([A-Za-z0-9_$]+)`?\s*(?:\(([^)]*)\)\s*)?VALUES\s*", re.I)
_CREATE = re.compile(rb"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?([A-Za-z0-9_$]+)`?", re.I)
_COLUMN = re.compile(rb"^\s*`([^`]+)`\s+\w", re.M)
_SPACE = b" \t\r\n"


class SqlDumpError(DumpError):
    """A user-facing problem with an SQL dump: names the file, the line and the problem."""

    def __init__(self, path: str, problem: str, *, line: int | None = None, kind: str = "malformed"):
        self.line = line
        where = f"line {line:,}: " if line is not None else ""
        super().__init__(path, where + problem, kind=kind)


@dataclass(frozen=True)
class SqlHeader:
    """What the head of a dump says: its table and the column order of its rows."""

    table: str
    columns: tuple[str, ...]  # () when the file has no CREATE TABLE (then INSERTs must be complete)
    # MySQL type of each column (`int`, `varbinary` …) from the CREATE TABLE; () without one
    types: tuple[str, ...] = ()


def _open(path: str, head: bool = False) -> io.BufferedIOBase:
    """Decompressed bytes of an SQL dump; `head=True` when only its first bytes will be read."""
    try:
        raw = open_head(path) if head else open_stream(path)
    except FileNotFoundError as exc:
        raise missing_or_unreachable(path, exc, SqlDumpError) from None
    except IsADirectoryError:
        raise SqlDumpError(path, "is a directory, not an SQL dump", kind="missing") from None
    except (PermissionError, ValueError, ImportError) as exc:
        raise SqlDumpError(path, f"cannot open: {exc}", kind="missing") from None
    buffered = io.BufferedReader(raw, buffer_size=(64 << 10) if head else 1 << 20)
    head = buffered.peek(4)[:4]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(buffered, "rb")
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    return buffered


def _read(stream, path: str, size: int) -> bytes:
    try:
        return stream.read(size)
    except (EOFError, OSError, zlib.error) as exc:  # zlib.error is no OSError
        raise SqlDumpError(path, f"the compressed stream is truncated or corrupt ({exc})", kind="truncated") from None


def _columns(create_block: bytes) -> tuple[str, ...]:
    return tuple(name.decode("utf-8") for name in _COLUMN.findall(create_block))


_COLUMN_TYPE = re.compile(rb"^\s*`[^`]+`\s+(\w+)", re.M)


def _types(create_block: bytes) -> tuple[str, ...]:
    return tuple(t.decode("ascii").lower() for t in _COLUMN_TYPE.findall(create_block))


def read_sql_header(path: str) -> SqlHeader:
    """Table and column order from the first `CREATE TABLE` (or `INSERT INTO`) of `path`.

    Reads at most the first MB of decompressed text; SqlDumpError when neither is found there.
    """
    with _open(path, head=True) as stream:
        head = _read(stream, path, _HEAD_BYTES)
    if not head:
        raise SqlDumpError(path, "the file is empty", kind="invalid")
    create = _CREATE.search(head)
    insert = _INSERT.search(head)
    if create and (insert is None or create.start() < insert.start()):
        end = head.find(b";", create.end())
        block = head[create.end() : end if end >= 0 else len(head)]
        return SqlHeader(create.group(1).decode("utf-8"), _columns(block), _types(block))
    if insert:
        cols = insert.group(2)
        names = tuple(c.strip().strip(b"`").decode("utf-8") for c in cols.split(b",")) if cols else ()
        return SqlHeader(insert.group(1).decode("utf-8"), names)
    raise SqlDumpError(
        path, "not a MySQL table dump: no CREATE TABLE or INSERT INTO in its first MB", kind="compression"
    )


def sql_table_of(path: str) -> str | None:
    """The table an input file dumps (`'page_props'`), or None when it is not an SQL dump.

    Recognised by content, not name: XML dumps, unknown containers and unreadable files give None.
    """
    try:
        with _open(path, head=True) as stream:
            head = stream.read(64 << 10)
    except Exception:  # noqa: BLE001 - anything unreadable is "not SQL"; the XML checks explain it
        return None
    if head.lstrip(b" \t\r\n\xef\xbb\xbf").startswith(b"<"):
        return None
    create = _CREATE.search(head)
    insert = _INSERT.search(head)
    found = [m for m in (create, insert) if m is not None]
    if not found:
        return None
    return min(found, key=lambda m: m.start()).group(1).decode("utf-8")


def _unescape(match: re.Match) -> bytes:
    char = match.group(1)
    return _ESCAPES.get(char, char)


def _value(quoted: bytes, bare: bytes):
    if bare:
        if bare == b"NULL":
            return None
        try:
            return int(bare)
        except ValueError:
            return float(bare)
    if b"\\" in quoted:
        quoted = _ESCAPE.sub(_unescape, quoted)
    return quoted.decode("utf-8", "surrogateescape")


def iter_rows(path: str, header: SqlHeader | None = None, columns: tuple[str, ...] | None = None) -> Iterator[tuple]:
    """Every row of every INSERT of `path`, in file order, as a tuple in the header's column order.

    `columns` picks (and orders) a subset: only those values are converted, which is most of the
    cost (page.sql has 14 columns, wikisnap needs 4).
    Raises SqlDumpError (file, line, problem) for a truncated statement, a row whose value count
    differs from the CREATE TABLE, an INSERT into another table, or unparsable text between rows.
    """
    header = header or read_sql_header(path)
    ncols = len(header.columns)
    picks = None
    if columns is not None:
        missing = [c for c in columns if c not in header.columns]
        if missing:
            raise SqlDumpError(path, f"`{header.table}` has no column(s) {', '.join(missing)}", kind="invalid")
        picks = [header.columns.index(c) for c in columns]
    stream = _open(path)
    try:
        buf = b""
        pos = 0
        eof = False
        line = 1
        in_values = False
        statement_line = 0
        while True:
            if not in_values:
                # Between statements: skip whole lines until the next INSERT.
                if not eof and len(buf) - pos < 4096:
                    more = _read(stream, path, _CHUNK)
                    if more:
                        buf, pos = buf[pos:] + more, 0
                    else:
                        eof = True
                while pos < len(buf) and buf[pos] in _SPACE:
                    if buf[pos] == 10:
                        line += 1
                    pos += 1
                if pos >= len(buf):
                    if eof:
                        return
                    continue
                if buf.startswith(b"INSERT", pos) or buf.startswith(b"insert", pos):
                    m = _INSERT.match(buf, pos)
                    if m is None:
                        raise SqlDumpError(path, "cannot read this INSERT statement", line=line)
                    table = m.group(1).decode("utf-8")
                    if table != header.table:
                        raise SqlDumpError(path, f"INSERT into `{table}` in a dump of `{header.table}`", line=line)
                    if m.group(2) and ncols == 0:
                        ncols = len(m.group(2).split(b","))
                    statement_line = line
                    in_values = True
                    pos = m.end()
                    continue
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    if eof:
                        return
                    more = _read(stream, path, _CHUNK)
                    if not more:
                        eof = True
                        continue
                    buf, pos = buf[pos:] + more, 0
                    if len(buf) > _MAX_ROW:
                        raise SqlDumpError(path, "a line longer than 256 MB outside any INSERT", line=line)
                    continue
                pos = nl + 1
                line += 1
                continue
            m = _ROW.match(buf, pos)
            # A match that ends at the buffer's end may be cut short: read on before trusting it.
            # mysqldump escapes newlines inside values, so a row that does not match although its
            # line is complete is malformed: say so now instead of reading on to the 256 MB limit.
            if m is None and buf.find(b"\n", pos) >= 0:
                raise _broken(path, buf, pos, line, statement_line, header.table)
            if m is None or m.end() >= len(buf):
                if not eof:
                    more = _read(stream, path, _CHUNK)
                    if not more:
                        eof = True
                    else:
                        buf, pos = buf[pos:] + more, 0
                        if len(buf) > _MAX_ROW and _ROW.match(buf, 0) is None:
                            raise SqlDumpError(path, "no complete row in 256 MB (an unclosed quote?)", line=line)
                    continue
                if m is None:
                    raise _broken(path, buf, pos, line, statement_line, header.table)
            fields = _FIELD.findall(m.group(1))
            if ncols and len(fields) != ncols:
                raise SqlDumpError(
                    path,
                    f"a row of `{header.table}` has {len(fields)} values, its CREATE TABLE {ncols} columns: "
                    f"{_excerpt(m.group(0))}",
                    line=line,
                )
            if picks is None:
                yield tuple([_value(q, b) for q, b in fields])
            else:
                yield tuple([_value(*fields[i]) for i in picks])
            pos = m.end()
            line += m.group(0).count(b"\n")
            while True:
                if pos >= len(buf):
                    if eof:
                        raise _broken(path, buf, pos, line, statement_line, header.table)
                    more = _read(stream, path, _CHUNK)
                    if not more:
                        eof = True
                        continue
                    buf, pos = buf[pos:] + more, 0
                    continue
                c = buf[pos]
                if c in _SPACE:
                    if c == 10:
                        line += 1
                    pos += 1
                    continue
                break
            if c == 44:  # ','
                pos += 1
            elif c == 59:  # ';'
                pos += 1
                in_values = False
            else:
                raise SqlDumpError(
                    path, f"expected ',' or ';' after a row of `{header.table}`, found {_excerpt(buf[pos:])}", line=line
                )
    finally:
        stream.close()


# -- the fast path: whole INSERT lines through one C regex -----------------------------------

_NUMERIC_TYPES = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "float", "double", "decimal"}
)
_RAW_NUMBER = rb"(-?[0-9][0-9.eE+-]*|NULL)"
_SKIP_NUMBER = rb"(?:-?[0-9][0-9.eE+-]*|NULL)"
_RAW_TEXT = rb"(?:'([^'\\]*(?:\\.[^'\\]*)*)'|NULL)"
_SKIP_TEXT = rb"(?:'[^'\\]*(?:\\.[^'\\]*)*'|NULL)"


def _fast_row_pattern(header: SqlHeader, columns: tuple[str, ...]) -> re.Pattern | None:
    """One regex for a whole row of this table: group 1 the row, then `columns` in table order.

    None when the column types are unknown (no CREATE TABLE).
    """
    if not header.types or len(header.types) != len(header.columns):
        return None
    parts = []
    for name, kind in zip(header.columns, header.types, strict=True):
        numeric = kind in _NUMERIC_TYPES
        if name in columns:
            parts.append(_RAW_NUMBER if numeric else _RAW_TEXT)
        else:
            parts.append(_SKIP_NUMBER if numeric else _SKIP_TEXT)
    return re.compile(rb"(\(" + rb",".join(parts) + rb"\))", re.DOTALL)


def raw_column_index(header: SqlHeader, columns: tuple[str, ...]) -> dict[str, int]:
    """Where each of `columns` is in the tuples of `iter_raw_batches` (index 0 is the whole row)."""
    picked = [c for c in header.columns if c in columns]
    return {c: i + 1 for i, c in enumerate(picked)}


def sql_int(raw: bytes) -> int | None:
    """A numeric field of `iter_raw_batches` → int (None for NULL)."""
    return None if raw == b"NULL" else int(raw)


def sql_text(raw: bytes) -> str:
    """A string field of `iter_raw_batches` (between the quotes, escaped) → str; NULL and '' are both ''."""
    if b"\\" in raw:
        raw = _ESCAPE.sub(_unescape, raw)
    return raw.decode("utf-8", "surrogateescape")


_FIRST = operator.itemgetter(0)


def iter_raw_batches(path: str, header: SqlHeader, columns: tuple[str, ...]) -> Iterator[list[tuple[bytes, ...]]]:
    """Every row of `path`, in file order, in batches (one per INSERT line) of raw-bytes tuples.

    Each tuple holds the whole row text, then the fields of `columns` in the table's order (see
    `raw_column_index`), unconverted: `sql_int` / `sql_text` convert what a caller keeps.

    Why: `iter_rows` runs Python per row and per value (~3 µs a row); mysqldump writes each INSERT
    on one line, so one `findall` of a row regex built from the CREATE TABLE's types parses a whole
    ~1 MB line in C, and joining the rows it found with commas must give the line back byte for
    byte (nothing skipped, nothing between rows). Anything else — a line that does not check out,
    a statement over several lines, a file without column types — hands over to `iter_rows`,
    which resumes after the rows already given and raises its exact SqlDumpError (file, line,
    problem) on malformed input.
    """
    columns = tuple(columns)
    missing = [c for c in columns if c not in header.columns]
    if missing:
        raise SqlDumpError(path, f"`{header.table}` has no column(s) {', '.join(missing)}", kind="invalid")
    pattern = _fast_row_pattern(header, columns)
    given = 0
    if pattern is not None:
        stream = _open(path)
        try:
            while True:
                line = _read_line(stream, path)
                if not line:
                    return  # the whole file checked out
                if not (line.startswith(b"INSERT") or line.startswith(b"insert")):
                    if line.lstrip().startswith((b"(", b"VALUES", b"values")):
                        break  # a statement over several lines: iter_rows reads those
                    continue
                m = _INSERT.match(line)
                body = line[m.end() :].rstrip() if m else b""
                if m is None or m.group(1).decode("utf-8") != header.table or not body.endswith(b";"):
                    break
                body = body[:-1]
                rows = pattern.findall(body)
                if not rows or b",".join(map(_FIRST, rows)) != body:
                    break
                given += len(rows)
                yield rows
        finally:
            stream.close()
    # The exact reader, from where the fast path stopped (or from the start).
    picked = tuple(c for c in header.columns if c in columns)
    types = dict(zip(header.columns, header.types, strict=True)) if len(header.types) == len(header.columns) else {}
    # NULL as the fast path gives it: b"NULL" in a numeric column, b"" in a string one
    nulls = tuple(b"" if types.get(c, "int") not in _NUMERIC_TYPES else b"NULL" for c in picked)
    batch: list[tuple[bytes, ...]] = []
    try:
        for i, row in enumerate(iter_rows(path, header, picked)):
            if i >= given:
                batch.append((b"", *(null if v is None else _raw(v) for v, null in zip(row, nulls, strict=True))))
                if len(batch) >= 1000:
                    yield batch
                    batch = []
    except SqlDumpError:
        if batch:  # the rows before the problem, as iter_rows gives them
            yield batch
        raise
    if batch:
        yield batch


def _raw(value) -> bytes:
    if isinstance(value, str):
        # escaped again as the dump had it (sql_text undoes it); no raw NUL byte in a value
        return value.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\").replace(b"\x00", b"\\0")
    return repr(value).encode("ascii")


def _read_line(stream, path: str) -> bytes:
    try:
        return stream.readline(_MAX_ROW)
    except (EOFError, OSError, zlib.error) as exc:
        raise SqlDumpError(path, f"the compressed stream is truncated or corrupt ({exc})", kind="truncated") from None


def _excerpt(data: bytes, n: int = 60) -> str:
    text = data[:n].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > n else ""))


def _broken(path: str, buf: bytes, pos: int, line: int, statement_line: int, table: str) -> SqlDumpError:
    rest = buf[pos:]
    if not rest.strip():
        return SqlDumpError(
            path,
            f"truncated: the INSERT into `{table}` that starts on line {statement_line:,} ends without its ';'",
            line=line,
            kind="truncated",
        )
    if b"(" in rest[:1] and b")" not in rest:
        return SqlDumpError(
            path,
            f"truncated: the INSERT into `{table}` that starts on line {statement_line:,} ends inside a row "
            f"{_excerpt(rest)}",
            line=line,
            kind="truncated",
        )
    return SqlDumpError(path, f"cannot read a row of `{table}` here: {_excerpt(rest)}", line=line)


# -- the tables wikisnap reads --------------------------------------------------------------

# Columns each table must have (other columns may come and go between MediaWiki versions).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "page": ("page_id", "page_namespace", "page_title"),
    "page_props": ("pp_page", "pp_propname", "pp_value"),
    "redirect": ("rd_from", "rd_namespace", "rd_title"),
    "categorylinks": ("cl_from",),  # plus cl_to (before MW 1.45) or cl_target_id
    "linktarget": ("lt_id", "lt_namespace", "lt_title"),
    "page_restrictions": ("pr_page", "pr_type", "pr_level", "pr_expiry"),
    "wb_items_per_site": ("ips_item_id", "ips_site_id", "ips_site_page"),
    # page image sizes, Wikidata entity usage, editor groups, FlaggedRevs stable revisions
    "image": ("img_name", "img_width", "img_height"),
    "wbc_entity_usage": ("eu_page_id", "eu_entity_id", "eu_aspect"),
    "user_groups": ("ug_user", "ug_group"),  # plus ug_expiry since MW 1.29
    "flaggedpages": ("fp_page_id", "fp_stable"),
}
SUPPORTED_TABLES = tuple(REQUIRED_COLUMNS)


def check_header(path: str, header: SqlHeader) -> None:
    """SqlDumpError unless `header` is a table wikisnap reads and has the columns it needs."""
    if header.table not in REQUIRED_COLUMNS:
        raise SqlDumpError(
            path,
            f"dumps table `{header.table}`, which wikisnap does not read (it reads {', '.join(SUPPORTED_TABLES)})",
            kind="invalid",
        )
    missing = [c for c in REQUIRED_COLUMNS[header.table] if c not in header.columns]
    if header.table == "categorylinks" and not {"cl_to", "cl_target_id"} & set(header.columns):
        missing.append("cl_to or cl_target_id")
    if missing:
        raise SqlDumpError(
            path, f"`{header.table}` lacks column(s) {', '.join(missing)} in its CREATE TABLE", kind="invalid"
        )


def iter_records(path: str, header: SqlHeader | None = None) -> Iterator[dict]:
    """Rows as `{column: value}` (convenient, slower than `iter_rows`)."""
    header = header or read_sql_header(path)
    for row in iter_rows(path, header):
        yield dict(zip(header.columns, row, strict=True))


def mysql_time_to_rfc3339(value: str | None) -> str | None:
    """`'20250101123000'` → `'2025-01-01T12:30:00Z'`; `'infinity'` stays; None/'' → None."""
    if not value:
        return None
    if value == "infinity" or len(value) != 14 or not value.isdigit():
        return value
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}T{value[8:10]}:{value[10:12]}:{value[12:14]}Z"


_DB_PREFIX = re.compile(r"(?:^|__)([a-z][a-z0-9_]*?)-(?:\d{8}|latest)-")


_DATE_IN_NAME = re.compile(r"(?:^|__)[a-z][a-z0-9_]*?-(\d{8})-")


def date_from_name(path: str) -> str | None:
    """`enwiki-20240301-user_groups.sql.gz` → `'20240301'` (the dump run's date); None without one."""
    match = _DATE_IN_NAME.search(os.path.basename(path.rstrip("/")))
    return match.group(1) if match else None


def db_from_name(path: str) -> str | None:
    """`enwiki-20240301-page_props.sql.gz` → `'enwiki'`; None when the name has no `{db}-{date}-`.

    SqlDumpError when it has one whose db name is too long to be a wiki's (`layout.check_dbname`)."""
    match = _DB_PREFIX.search(os.path.basename(path.rstrip("/")))
    if match and not is_dbname(match.group(1)):
        raise SqlDumpError(path, f"its name's wiki {match.group(1)[:80]!r} is not a wiki db name ({DBNAME_RULE})")
    return match.group(1) if match else None
