"""`update` of a base built with `--formats structured`: its Structured Contents rewritten beside its records.

The build cuts a structured member where it cuts the records' member (structured member n holds
the Structured records of the pages of member n, shard n beside it), so the update keeps that
pairing member by member (`rewrite.rewrite_member`) and writes what a build of the new state
writes:

- a member no change falls in: its structured gzip member and Parquet shard copied as bytes
  (the span's CRC-32 and the shard's published md5 checked), as the records' member is;
- a touched member: its structured lines merged with the pages of the new member in page-id
  order (`StructuredMerge`): an untouched page's line is copied as it is; a changed page's
  Structured record is made again from its new record (`write_structured.add_page`, as the
  build's bucket writer makes it): a new revision without Parsoid HTML gets none — the old
  revision's parts are never kept, nothing is guessed from wikitext — and is counted
  `structured/ns{ns}/without_html`; a removed page's line is dropped.

The short description comes from page_props, which only `build` reads: a changed page keeps the
`description` of its base Structured record; a page without one there (new in the diffs, or
without HTML in the base) gets none.

Counts (per wiki): `structured/ns{ns}/written` (every line of the new snapshot),
`structured/ns{ns}/copied` (of them, carried from the base unchanged), and for the pages the diffs
touched `structured/ns{ns}/without_html`, `structured/ns{ns}/failed` (a dead letter, as in build) and
`structured/with_description`.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable

import pyarrow.parquet as pq

from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.formats.fs import open_read_arrow, open_write
from wikisnap.transforms.formats.layout import snapshot_id
from wikisnap.transforms.formats.tarball import (
    BaseMember,
    MemberPart,
    _map_by_headers,
    _NoIndex,
    _read_span,
    _span_lines,
    base_error,
    line_head,
)
from wikisnap.transforms.update.find import BaseSnapshot, _parquet_shards
from wikisnap.transforms.update.shards import SHARD_SCHEMAS, copy_shard
from wikisnap.transforms.write import ParquetFileWriter, WriteOptions
from wikisnap.transforms.write_structured import GZ_SUFFIX, PARQUET_SUFFIX, StructuredShard, add_page

__all__ = ["StructuredMerge", "copy_structured_member", "new_structured_shard", "structured_members"]


def structured_members(snapshot: BaseSnapshot, records_members: int) -> list[tuple[BaseMember, str]] | None:
    """The data members of a base snapshot's structured tarball with their Parquet shards, one
    per member of its records' tarball; None when the base has no structured snapshot for it.

    The map is made by one pass over the compressed bytes (tar headers only, nothing inflated),
    which also hashes the file against the md5 the base's manifest published. BaseError when the
    file is damaged, not laid out as wikisnap writes it, or not paired with the records' members.
    """
    if snapshot.structured is None:
        return None
    tarball = snapshot.structured
    published = snapshot.published_md5(tarball)
    digest = hashlib.md5()
    try:
        spans = _map_by_headers(tarball, snapshot_id(snapshot.dbname, snapshot.ns), digest)
    except _NoIndex:
        raise base_error(tarball, "is not a structured snapshot as wikisnap writes it") from None
    if published and digest.hexdigest() != published:
        raise base_error(
            tarball, f"has md5 {digest.hexdigest()} but the base's manifest says {published}: it is damaged"
        )
    shards = _parquet_shards(snapshot, snapshot.structured_parquet)
    if len(spans) != records_members or sorted(shards) != list(range(len(spans))):
        raise base_error(
            tarball,
            f"has {len(spans)} member(s) and {len(shards)} shard(s) for the {records_members} member(s) of its "
            "records' tarball: it does not belong to them",
        )
    return [
        (BaseMember(n, size, start, end, -1, -1, None, crc), shards[n])
        for n, (size, start, end, crc) in enumerate(spans)
    ]


def new_structured_shard(part_base: str, opts: WriteOptions) -> StructuredShard:
    """A structured member being written beside the member part whose stem is `part_base`."""
    return StructuredShard(
        part_base, opts.gzip_level, ParquetFileWriter, opts.parquet_row_group_rows, opts.parquet_row_group_bytes
    )


def copy_structured_member(
    snapshot: BaseSnapshot, member: BaseMember, shard: str, part_base: str, like: MemberPart, counts: dict
) -> MemberPart:
    """An untouched member's structured member and shard copied as bytes next to `part_base`.

    Out: its MemberPart numbered as `like` (the records' member). BaseError when the bytes are
    not those the map pass hashed or the shard not the one the base's manifest published.
    """
    tarball = snapshot.structured
    gz_path, pq_path = part_base + GZ_SUFFIX, part_base + PARQUET_SUFFIX
    crc = 0
    with open_write(gz_path) as out:
        for data in _read_span(tarball, member.start, member.end):
            crc = zlib.crc32(data, crc)
            out.write(data)
    if member.raw_crc is not None and crc != member.raw_crc:
        raise base_error(tarball, f"bytes {member.start:,}-{member.end:,} changed after they were read: it is damaged")
    # as bytes, or in today's types when an earlier wikisnap wrote it (shards.copy_shard)
    copy_shard(shard, pq_path, SHARD_SCHEMAS["structured-parquet"], snapshot.published_md5(shard))
    with open_read_arrow(pq_path) as f:
        records = pq.read_metadata(f).num_rows
    _add(counts, counter("structured", snapshot.ns, "written"), records)
    _add(counts, counter("structured", snapshot.ns, "copied"), records)
    return MemberPart(
        like.dbname, like.ns, like.bucket, like.index, member.data_size, records, gz_path, pq_path, like.max_date
    )


def base_structured_lines(snapshot: BaseSnapshot, member: BaseMember | None) -> Iterable[bytes]:
    """The NDJSON lines of one structured member of the base (None: no member, no lines)."""
    if member is None:
        return ()
    return _span_lines(snapshot.structured, member)


class StructuredMerge:
    """Base Structured lines (page-id order) merged with the pages written to the new snapshot.

    `page(shard, page_id, record)` is called for every page of the new member (or snapshot), in
    page-id order: `record` None for a page the diffs did not touch (its base line, if any, is
    copied as it is), its new record otherwise (made again by `add_page`, keeping the base line's
    description). Base lines of pages that are no longer written (removed) are passed over.
    """

    def __init__(self, lines: Iterable[bytes], ns: int, counts: dict, letters: list):
        self._lines = iter(lines)
        self.ns = ns
        self.counts = counts
        self.letters = letters
        self._next = self._pull()

    def _pull(self) -> tuple[int, bytes] | None:
        line = next(self._lines, None)
        return None if line is None else (line_head(line)[1], line)

    def page(self, shard: StructuredShard, page_id: int, record: dict | None) -> None:
        base = None
        while self._next is not None and self._next[0] <= page_id:
            if self._next[0] == page_id:
                base = self._next[1]
            self._next = self._pull()
        if record is None:
            if base is not None:
                shard.add(json.loads(base), base)
                _add(self.counts, counter("structured", self.ns, "written"))
                _add(self.counts, counter("structured", self.ns, "copied"))
            return
        description = json.loads(base).get("description") if base is not None else None
        enrichment = {"description": description} if description else None
        add_page(shard, record, self.ns, enrichment, self.counts, self.letters)

    def finish(self) -> None:
        """Read the base's lines to the end (a member's span is checked whole as it is read)."""
        for _line in self._lines:
            pass


def _add(counts: dict, name: str, n: int = 1) -> None:
    counts[name] = counts.get(name, 0) + n
