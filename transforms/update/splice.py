"""A touched member's Parquet shard spliced: untouched row groups copied as bytes, the others encoded.

An update keeps the base shard's row-group cuts (`_merge_shard_groups` in rewrite.py): a group no
changed page falls in holds the same rows as in the base, and Arrow's writer encodes the same rows
into the same bytes (a column chunk depends only on its group's rows). So those groups are copied
from the base shard as bytes (never decoded, decompressed, encoded or compressed) and only the
groups a change falls in are encoded, each on its own. The file is laid out as Arrow's writer lays
it out (`PAR1`, the groups' column chunks in order, the footer, its length, `PAR1`), and the footer
is the one Arrow writes for it: the footer of an empty file from the same writer with the groups'
entries in it, each group's file offsets moved to where its bytes now lie.

The footer is Thrift's compact protocol (parquet.thrift `FileMetaData`), which has one encoding
per value: a group's entry is moved by rewriting only its offset numbers (`GroupEntry.at`), every
other byte is copied, and a footer is walked, never decoded into objects.

Only a base shard written as today's writer writes is spliced (`splice_shard`): its footer equal to
an empty file's but for the rows and groups (version, schema, key-value metadata with the Arrow
schema, `created_by` with Arrow's version, column orders), every column chunk in the codec and with
the statistics of the writer's settings, chunks contiguous, no page index or bloom filter (whose
offsets this does not move). Otherwise SpliceError, and the caller encodes every group as before.

The rows of a touched group come from `merge_shard` (the group's rows without the touched pages,
with the inserts that sort into it: `inserts_by_group`), group by group (`splice_plan`).
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wikisnap.schemas.arrow import ARTICLE_SCHEMA, records_to_table

MAGIC = b"PAR1"

# Thrift compact protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
_INTS = (_I16, _I32, _I64)

# parquet.thrift field ids
FILE_NUM_ROWS, FILE_ROW_GROUPS = 3, 4
GROUP_COLUMNS, GROUP_NUM_ROWS, GROUP_FILE_OFFSET, GROUP_ORDINAL = 1, 3, 5, 7
CHUNK_FILE_PATH, CHUNK_FILE_OFFSET, CHUNK_META = 1, 2, 3
CHUNK_PAGE_INDEX = (4, 5, 6, 7)  # offset / column index offsets and lengths: not moved here
META_CODEC, META_COMPRESSED, META_DATA_PAGE, META_INDEX_PAGE, META_DICT_PAGE = 4, 7, 9, 10, 11
META_STATISTICS, META_BLOOM = 12, 14
# parquet.thrift CompressionCodec of the writer's `compression` names
CODECS = {"none": 0, "snappy": 1, "gzip": 2, "brotli": 4, "zstd": 6, "lz4": 7}


class SpliceError(ValueError):
    """A shard this module does not splice (the caller encodes every group instead)."""


# -- Thrift compact protocol: walked, not decoded --------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """(the unsigned varint at `pos`, the position after it)."""
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _int(data: bytes, pos: int) -> tuple[int, int]:
    """(the zigzag varint at `pos` — an i16, i32 or i64 —, the position after it)."""
    n, pos = _varint(data, pos)
    return (n >> 1) ^ -(n & 1), pos


def _uvarint(n: int) -> bytes:
    """The bytes of the unsigned varint `n`."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int_bytes(value: int) -> bytes:
    """The compact protocol's bytes of the integer `value` (zigzag varint)."""
    return _uvarint((value << 1) ^ (value >> 63))


def _list_head(data: bytes, pos: int) -> tuple[int, int, int]:
    """(size, element type, position of the first element) of the list header at `pos`."""
    head = data[pos]
    size, elem = head >> 4, head & 0x0F
    pos += 1
    if size == 15:
        size, pos = _varint(data, pos)
    return size, elem, pos


def _list_header(size: int, elem: int) -> bytes:
    """The header of a list of `size` values of type `elem`."""
    return bytes([size << 4 | elem]) if size < 15 else bytes([0xF0 | elem]) + _uvarint(size)


def _skip(data: bytes, pos: int, kind: int) -> int:
    """The position after the value of type `kind` at `pos`. (Numbers and strings, most of a
    footer, are skipped in line: a footer holds ~50 values per column chunk.)"""
    if kind in _INTS:
        while data[pos] >= 0x80:
            pos += 1
        return pos + 1
    if kind == _BINARY:
        n, pos = _varint(data, pos)
        return pos + n
    if kind == _STRUCT:
        while True:
            head = data[pos]
            pos += 1
            if head == 0:
                return pos
            if head < 0x10:  # a field id of its own
                while data[pos] >= 0x80:
                    pos += 1
                pos += 1
            kind = head & 0x0F
            if kind in _INTS:
                while data[pos] >= 0x80:
                    pos += 1
                pos += 1
            elif kind == _BINARY:
                n, pos = _varint(data, pos)
                pos += n
            elif kind not in (_TRUE, _FALSE):  # a bool field's value is its type
                pos = _skip(data, pos, kind)
    if kind in (_LIST, _SET):
        size, elem, pos = _list_head(data, pos)
        if elem in _INTS:
            for _ in range(size):
                while data[pos] >= 0x80:
                    pos += 1
                pos += 1
            return pos
        for _ in range(size):
            pos = _skip(data, pos, elem)
        return pos
    if kind in (_TRUE, _FALSE, _BYTE):  # (a bool inside a list is one byte)
        return pos + 1
    if kind == _DOUBLE:
        return pos + 8
    raise SpliceError(f"a Thrift type {kind} this module does not read")


def _struct(data: bytes, pos: int, walk: dict | None = None) -> tuple[dict[int, tuple[int, int, int]], int]:
    """The fields of the struct at `pos` — field id → (type, start, end of its value) — and the
    position after the struct. `walk`: field id → `(type, walker)` for the fields the caller
    reads inside (each byte of a footer is walked once): `walker(data, start)` returns the end."""
    fields: dict[int, tuple[int, int, int]] = {}
    last = 0
    while True:
        head = data[pos]
        pos += 1
        if head == 0:
            return fields, pos
        kind, delta = head & 0x0F, head >> 4
        if delta:
            fid = last + delta
        else:
            fid, pos = _int(data, pos)
        start = pos
        if walk is not None and fid in walk:
            expected, walker = walk[fid]
            if kind != expected:
                raise SpliceError(f"a footer field {fid} of Thrift type {kind}")
            pos = walker(data, pos)
        elif kind not in (_TRUE, _FALSE):
            pos = _skip(data, pos, kind)
        fields[fid] = (kind, start, pos)
        last = fid


# -- footers and their row groups ------------------------------------------------------------


def footer_bytes(data: bytes) -> bytes:
    """The Thrift footer of a whole Parquet file's bytes; SpliceError when it is not one."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise SpliceError("not a Parquet file (no PAR1 at both ends)")
    size = int.from_bytes(data[-8:-4], "little")
    if size > len(data) - 12:
        raise SpliceError("a footer length past the file's start")
    return bytes(data[-8 - size : -8])


@dataclass(frozen=True)
class GroupEntry:
    """One row group of a footer: its entry's bytes, where its offsets are in them, its rows and
    the byte span of its column chunks in the file."""

    raw: bytes
    offsets: tuple[tuple[int, int, int], ...]  # (start, end, value) of each file offset in `raw`
    ordinal: tuple[int, int] | None  # (start, end) of its ordinal in `raw`, when written
    num_rows: int
    start: int
    end: int

    def at(self, to: int, ordinal: int) -> bytes:
        """The entry of these column chunks written at file offset `to`, as group `ordinal`."""
        shift = to - self.start
        patches = [(s, e, _int_bytes(v + shift)) for s, e, v in self.offsets]
        if self.ordinal is not None:
            patches.append((*self.ordinal, _int_bytes(ordinal)))
        out, pos = [], 0
        for s, e, value in sorted(patches):
            out += [self.raw[pos:s], value]
            pos = e
        out.append(self.raw[pos:])
        return b"".join(out)


def group_entries(footer: bytes, codec: int | None = None, statistics: bool | None = None) -> list[GroupEntry]:
    """The row groups of a footer. SpliceError when a group's column chunks are not one contiguous
    run, have offsets this module does not move (page index, bloom filter, index page, another
    file), or — when given — another `codec` or not `statistics` as asked."""
    return _walk_footer(footer, codec, statistics)[1]


def _walk_footer(footer: bytes, codec: int | None = None, statistics: bool | None = None):
    """(the footer's top-level fields as `_struct` gives them, its row groups): `group_entries`."""
    groups: list[GroupEntry] = []

    def row_groups(data: bytes, pos: int) -> int:
        size, elem, pos = _list_head(data, pos)
        if size and elem != _STRUCT:
            raise SpliceError("row groups that are not structs")
        for _ in range(size):
            pos = _group(data, pos, codec, statistics, groups)
        return pos

    top, _end = _struct(footer, 0, {FILE_ROW_GROUPS: (_LIST, row_groups)})
    return top, groups


def _meta_walker(out: list):
    def walk(data: bytes, pos: int) -> int:
        meta, end = _struct(data, pos)
        out.append(meta)
        return end

    return walk


def _group(footer: bytes, pos: int, codec: int | None, statistics: bool | None, groups: list[GroupEntry]) -> int:
    """Read the row group entry at `pos` into `groups`; the position after it."""
    chunks: list[tuple[dict, dict | None]] = []

    def columns(data: bytes, at: int) -> int:
        size, _elem, at = _list_head(data, at)
        for _ in range(size):
            metas: list = []
            chunk, at = _struct(data, at, {CHUNK_META: (_STRUCT, _meta_walker(metas))})
            chunks.append((chunk, metas[0] if metas else None))
        return at

    group, after = _struct(footer, pos, {GROUP_COLUMNS: (_LIST, columns)})
    offsets, first, run = [], None, None
    if GROUP_FILE_OFFSET in group:
        offsets.append(_value(footer, group[GROUP_FILE_OFFSET], pos))
    for chunk, meta in chunks:
        if CHUNK_FILE_PATH in chunk or any(fid in chunk for fid in CHUNK_PAGE_INDEX) or meta is None:
            raise SpliceError("a column chunk with a page index, in another file or without metadata")
        if CHUNK_FILE_OFFSET in chunk and (value := _value(footer, chunk[CHUNK_FILE_OFFSET], pos))[2]:
            offsets.append(value)  # (Arrow writes 0 there now: a 0 stays)
        if META_INDEX_PAGE in meta or META_BLOOM in meta:
            raise SpliceError("a column chunk with an index page or a bloom filter")
        if codec is not None and _value(footer, meta[META_CODEC], 0)[2] != codec:
            raise SpliceError("a column chunk in another codec")
        if statistics is not None and (META_STATISTICS in meta) != statistics:
            raise SpliceError("a column chunk with other statistics")
        chunk_start = None
        for fid in (META_DICT_PAGE, META_DATA_PAGE):
            if fid in meta:
                value = _value(footer, meta[fid], pos)
                offsets.append(value)
                chunk_start = value[2] if chunk_start is None else chunk_start
        if chunk_start is None or (run is not None and chunk_start != run):
            raise SpliceError("column chunks that are not one contiguous run")
        first = chunk_start if first is None else first
        run = chunk_start + _value(footer, meta[META_COMPRESSED], 0)[2]
    if first is None or GROUP_NUM_ROWS not in group:
        raise SpliceError("a row group without columns or row count")
    ordinal = group.get(GROUP_ORDINAL)
    groups.append(
        GroupEntry(
            footer[pos:after],
            tuple(offsets),
            (ordinal[1] - pos, ordinal[2] - pos) if ordinal else None,
            _value(footer, group[GROUP_NUM_ROWS], 0)[2],
            first,
            run,
        )
    )
    return after


def _value(data: bytes, field: tuple[int, int, int], base: int) -> tuple[int, int, int]:
    """(start, end relative to `base`, value) of an integer field found by `_struct`."""
    kind, start, end = field
    if kind not in _INTS:
        raise SpliceError(f"a number field of Thrift type {kind}")
    return start - base, end - base, _int(data, start)[0]


def without_groups(footer: bytes, top: dict | None = None) -> tuple[bytes, bytes, bytes]:
    """A footer's bytes but its row count's value and its row-group list: the same in every file
    one writer wrote in one schema (version, schema, key-value metadata, `created_by`, column
    orders); SpliceError when it has no row count or row-group list. `top`: its top-level fields
    when the caller has them (`_walk_footer`)."""
    if top is None:
        top, _end = _struct(footer, 0)
    if FILE_NUM_ROWS not in top or FILE_ROW_GROUPS not in top:
        raise SpliceError("a footer without a row count or row groups")
    rows, groups = top[FILE_NUM_ROWS], top[FILE_ROW_GROUPS]
    return footer[: rows[1]], footer[rows[2] : groups[1]], footer[groups[2] :]


def file_footer(empty: bytes, entries: list[bytes], num_rows: int) -> bytes:
    """The end of a file whose row groups' entries are `entries` (moved already) and which has
    `num_rows` rows, from the footer of an empty file of the same writer: its footer, the footer's
    length and `PAR1`."""
    before, between, after = without_groups(empty)
    footer = b"".join([before, _int_bytes(num_rows), between, _list_header(len(entries), _STRUCT), *entries, after])
    return footer + len(footer).to_bytes(4, "little") + MAGIC


# -- a touched member's shard ----------------------------------------------------------------


def writer_bytes(tables: Iterable[pa.Table], schema: pa.Schema, settings: dict) -> bytes:
    """The file Arrow's writer gives for `tables` (each one row group) in `schema`, `settings`."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, **settings) as writer:
        for table in tables:
            writer.write_table(table, row_group_size=max(1, table.num_rows))
    return sink.getvalue()


def encoded_group(table: pa.Table, schema: pa.Schema, settings: dict) -> tuple[bytes, GroupEntry]:
    """`table` encoded as one row group by Arrow's writer: its column chunks' bytes and its entry
    (offsets as in that one-group file)."""
    data = writer_bytes([table], schema, settings)
    (group,) = group_entries(footer_bytes(data))
    return data[group.start : group.end], group


_EMPTY: dict = {}


def empty_footer(schema: pa.Schema, settings: dict) -> bytes:
    """The footer Arrow's writer gives a file of `schema` without rows (made once per process)."""
    key = (schema.serialize().to_pybytes(), repr(sorted(settings.items())))
    if key not in _EMPTY:
        _EMPTY[key] = footer_bytes(writer_bytes([], schema, settings))
    return _EMPTY[key]


COPY_SIZE = 1 << 20  # a copied group's bytes are read and written in pieces of this size


def splice_shard(raw, sink, plan: Iterable[tuple[int, pa.Table | None]], schema: pa.Schema, settings: dict) -> None:
    """Write to `sink` a shard made from the base shard open as `raw` (seekable): for each
    `(group index, rows)` of `plan` (taken one at a time), the base's group `index` copied as bytes
    when `rows` is None, else `rows` encoded as one group (no rows: no group).

    SpliceError, before anything is written, when the base shard was not written by Arrow's writer
    in `schema` with `settings` as it writes now, or its footer has offsets this module cannot
    move; when `plan` raises it, from where it does (the caller writes the file again).
    """
    codec = CODECS.get(str(settings.get("compression", "snappy")).lower())
    statistics = settings.get("write_statistics", True)
    if codec is None or not isinstance(statistics, bool):
        raise SpliceError(f"writer settings this module does not check: {settings}")
    empty = empty_footer(schema, settings)
    footer = read_footer(raw)
    try:
        top, groups = _walk_footer(footer, codec, statistics)
        if without_groups(footer, top) != without_groups(empty):
            raise SpliceError("written by another writer, schema or settings")
    except IndexError:
        raise SpliceError("a footer that ends inside a value") from None
    entries: list[bytes] = []
    pos, rows_total, started = len(MAGIC), 0, False
    for index, rows in plan:
        if not started:  # once the plan is under way (its first step checks the ids)
            sink.write(MAGIC)
            started = True
        if rows is None:
            group = groups[index]
            _copy_range(raw, sink, group.start, group.end)
            size = group.end - group.start
        elif rows.num_rows:
            chunk, group = encoded_group(rows, schema, settings)
            sink.write(chunk)
            size = len(chunk)
        else:
            continue
        entries.append(group.at(pos, len(entries)))
        pos += size
        rows_total += group.num_rows
    if not started:
        sink.write(MAGIC)
    sink.write(file_footer(empty, entries, rows_total))


def read_footer(raw) -> bytes:
    """The Thrift footer of the Parquet file open as `raw` (seekable); SpliceError when it has none."""
    size = raw.seek(0, 2)
    if size < 12:
        raise SpliceError("too short for a Parquet file")
    raw.seek(size - 8)
    tail = raw.read(8)
    length = int.from_bytes(tail[:4], "little")
    if tail[4:] != MAGIC or length > size - 12:
        raise SpliceError("no Parquet footer at the end")
    raw.seek(size - 8 - length)
    footer = raw.read(length)
    raw.seek(0)
    if raw.read(4) != MAGIC:
        raise SpliceError("no PAR1 at the start")
    return footer


def _copy_range(raw, sink, start: int, end: int) -> None:
    raw.seek(start)
    while start < end:
        data = raw.read(min(COPY_SIZE, end - start))
        if not data:
            raise SpliceError(f"the base shard ends inside bytes {start:,}-{end:,}")
        sink.write(data)
        start += len(data)


# -- the rows of a touched member's groups ------------------------------------------------------


def splice_plan(
    source: pq.ParquetFile, touched: dict, inserts: list[tuple[int, dict]]
) -> Iterator[tuple[int, pa.Table | None]]:
    """The base shard `source`'s row groups as `splice_shard` takes them: `(index, None)` for a group
    no change falls in (copied as bytes), `(index, merged rows)` for the others, made one at a time
    (`merge_shard`, one chunk per column as the writer gets them); the same groups and rows as
    `_merge_shard_groups`. SpliceError when the ids are not ascending (or there are none)."""
    ids = source.read(columns=["identifier"])["identifier"].to_pylist()
    if not ids or any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        raise SpliceError("ids not ascending")
    ends = list(itertools.accumulate(source.metadata.row_group(g).num_rows for g in range(source.num_row_groups)))
    starts = [0, *ends[:-1]]
    for g, group_inserts in enumerate(inserts_by_group([ids[end - 1] for end in ends], inserts)):
        if not group_inserts and not any(pid in touched for pid in ids[starts[g] : ends[g]]):
            yield g, None
            continue
        table = source.read_row_group(g)
        if not table.schema.equals(ARTICLE_SCHEMA):
            raise SpliceError("a row group not in today's schema")
        yield g, merge_shard(table, touched, group_inserts).combine_chunks()


def inserts_by_group(lasts: list[int], inserts: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """The sorted `inserts` split over row groups whose last page ids are `lasts` (ascending).

    An insert joins the group holding the first base row it sorts before or replaces (the first
    with an id >= its own); one past every row joins the last group. No groups: none.
    """
    if not lasts:
        return []
    split: list[list[tuple[int, dict]]] = [[] for _ in lasts]
    for item in inserts:
        split[min(bisect.bisect_left(lasts, item[0]), len(lasts) - 1)].append(item)
    return split


def merge_shard(table: pa.Table, touched: dict, inserts: list[tuple[int, dict]]) -> pa.Table:
    """Base Parquet rows without the touched pages' rows, plus the changed records, by page id.

    In: the rows (a shard or one of its row groups; ids ascending, as wikisnap writes them), the
    touched page ids and the sorted `(page id, record)` inserts that belong there. Out: the rows
    sliced around the touched ones, no copy and no sort (its columns come in pieces: the writer
    makes each group one chunk). Rows whose ids are not ascending are sorted instead.
    """
    ids = table["identifier"].to_pylist()
    new_rows = records_to_table([rec for _pid, rec in inserts]) if inserts else None
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        keep = pc.invert(pc.is_in(table["identifier"], pa.array(sorted(touched), pa.int64())))
        return pa.concat_tables([table.filter(keep)] + ([new_rows] if new_rows is not None else [])).sort_by(
            "identifier"
        )
    removed = [n for n, pid in enumerate(ids) if pid in touched]
    at = [bisect.bisect_left(ids, pid) for pid, _rec in inserts]  # each insert goes before row `at`
    pieces, start, r, k = [], 0, 0, 0
    for point in sorted(set(removed) | set(at)):
        if point > start:
            pieces.append(table.slice(start, point - start))
        start = point
        while k < len(at) and at[k] == point:
            pieces.append(new_rows.slice(k, 1))
            k += 1
        if r < len(removed) and removed[r] == point:
            start, r = point + 1, r + 1
    if start < len(ids):
        pieces.append(table.slice(start))
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)
