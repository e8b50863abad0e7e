"""A base snapshot's Parquet shards as an update takes them: md5-checked, and in today's schema.

`copy_shard` copies an untouched member's shard (records, text or Structured Contents) to the
output: as bytes when it is in the current schema, rewritten in it when an earlier wikisnap wrote
other column types (issue 23's consistent types: text `id` int64 and `date_modified` text before),
so an output never mixes schemas across its shards. It reads the shard's footer once and hands it
back with the copy's md5 (its row count and statistics, and the md5 assembly lists, come from
them, not from reading the copy again).
`check_base_md5` hashes a base file that is then read in pieces.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA, conform
from wikisnap.schemas.structured import STRUCTURED_SCHEMA
from wikisnap.transforms.formats.fs import file_md5, open_read, open_read_arrow, open_write
from wikisnap.transforms.formats.tarball import READ_SIZE, base_error
from wikisnap.transforms.write import PARQUET_SETTINGS

# the schema each kind of copied base shard must have in the output (an earlier wikisnap's is converted)
SHARD_SCHEMAS = {"parquet": ARTICLE_SCHEMA, "text": TEXT_SCHEMA, "structured-parquet": STRUCTURED_SCHEMA}


def shard_footer(path: str) -> pq.FileMetaData:
    """The footer of the Parquet shard at `path` (schema, row groups and their statistics; no data read)."""
    with open_read_arrow(path) as f:
        return pq.read_metadata(f)


def shard_has_schema(path: str, schema: pa.Schema, footer: pq.FileMetaData | None = None) -> bool:
    """Whether the Parquet shard at `path` is in `schema` (types and wikisnap's schema tag), from its
    footer (`footer` when the caller has read it already). A footer Arrow cannot read is not: then
    `copy_shard` names the shard (damaged, by its md5, or unreadable)."""
    try:
        footer = footer if footer is not None else shard_footer(path)
    except (pa.ArrowException, OSError, ValueError):
        return False
    return footer.schema.to_arrow_schema().equals(schema, check_metadata=True)


def copy_shard(src: str, dst: str, schema: pa.Schema, published: str | None) -> tuple[pq.FileMetaData, str | None]:
    """A base snapshot's Parquet shard copied to `dst` in `schema`, checked against its `published` md5.

    A shard in `schema` is copied as bytes (hashed on the way). One written by an earlier wikisnap
    (other column types: text `id` int64 and `date_modified` text before issue 23's consistent
    types) is rewritten in `schema` row group by row group (`conform`: same values and row
    groups), so the output never mixes schemas across shards. Returns the footer of `dst` (for a
    byte copy, the one read from `src` for the schema check: the same bytes) and, for a byte
    copy, the md5 of the bytes written (None for a converted shard). BaseError naming `src` when
    its md5 is not the published one or a column cannot be converted.
    """
    try:
        footer = shard_footer(src)
    except (pa.ArrowException, OSError, ValueError) as exc:
        # a damaged footer: its md5 says so first (naming the shard), else it is unreadable as it was published
        check_base_md5(src, published)
        raise base_error(src, f"is not a Parquet file Arrow can read ({exc})") from None
    if shard_has_schema(src, schema, footer):
        digest = hashlib.md5()
        with open_read(src) as f, open_write(dst) as g:
            while chunk := f.read(READ_SIZE):
                digest.update(chunk)
                g.write(chunk)
        if published and digest.hexdigest() != published:
            raise base_error(
                src, f"has md5 {digest.hexdigest()} but the base's manifest says {published}: it is damaged"
            )
        return footer, digest.hexdigest()
    check_base_md5(src, published)
    with open_read_arrow(src) as f, open_write(dst) as sink, pq.ParquetWriter(sink, schema, **PARQUET_SETTINGS) as out:
        shard = pq.ParquetFile(f)
        for i in range(shard.num_row_groups):
            try:
                rows = conform(shard.read_row_group(i), schema)
            except ValueError as exc:
                raise base_error(src, f"is not in a schema this wikisnap can convert ({exc})") from None
            out.write_table(rows, row_group_size=max(1, rows.num_rows))
    return shard_footer(dst), None


def check_base_md5(path: str, published: str | None) -> None:
    """BaseError naming `path` when its md5 is not the one the base's manifest published (None: unknown).

    For a base file read in pieces (Arrow reads a shard's footer and row groups by range), so its
    bytes cannot be hashed as they are used: one sequential pass, beside or before those reads."""
    if published is None:
        return
    md5 = file_md5(path)[0]
    if md5 != published:
        raise base_error(path, f"has md5 {md5} but the base's manifest says {published}: it is damaged")
