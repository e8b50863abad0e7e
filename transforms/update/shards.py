"""A base snapshot's Parquet shards as an update takes them: md5-checked, and in today's schema.

`copy_shard` copies an untouched member's shard (records, text or Structured Contents) to the
output: as bytes when it is in the current schema, rewritten in it when an earlier wikisnap wrote
other column types (issue 23's consistent types: text `id` int64 and `date_modified` text before),
so an output never mixes schemas across its shards. `check_base_md5` hashes a base file that is
then read in pieces.
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


def shard_has_schema(path: str, schema: pa.Schema) -> bool:
    """Whether the Parquet shard at `path` is in `schema` (types and wikisnap's schema tag), from its footer."""
    with open_read_arrow(path) as f:
        return pq.read_schema(f).equals(schema, check_metadata=True)


def copy_shard(src: str, dst: str, schema: pa.Schema, published: str | None) -> None:
    """A base snapshot's Parquet shard copied to `dst` in `schema`, checked against its `published` md5.

    A shard in `schema` is copied as bytes (hashed on the way). One written by an earlier wikisnap
    (other column types: text `id` int64 and `date_modified` text before issue 23's consistent
    types) is rewritten in `schema` row group by row group (`conform`: same values and row
    groups), so the output never mixes schemas across shards. BaseError naming `src` when its md5
    is not the published one or a column cannot be converted.
    """
    if shard_has_schema(src, schema):
        digest = hashlib.md5()
        with open_read(src) as f, open_write(dst) as g:
            while chunk := f.read(READ_SIZE):
                digest.update(chunk)
                g.write(chunk)
        if published and digest.hexdigest() != published:
            raise base_error(
                src, f"has md5 {digest.hexdigest()} but the base's manifest says {published}: it is damaged"
            )
        return
    check_base_md5(src, published)
    with open_read_arrow(src) as f, open_write(dst) as sink, pq.ParquetWriter(sink, schema, **PARQUET_SETTINGS) as out:
        shard = pq.ParquetFile(f)
        for i in range(shard.num_row_groups):
            try:
                rows = conform(shard.read_row_group(i), schema)
            except ValueError as exc:
                raise base_error(src, f"is not in a schema this wikisnap can convert ({exc})") from None
            out.write_table(rows, row_group_size=max(1, rows.num_rows))


def check_base_md5(path: str, published: str | None) -> None:
    """BaseError naming `path` when its md5 is not the one the base's manifest published (None: unknown).

    For a base file read in pieces (Arrow reads a shard's footer and row groups by range), so its
    bytes cannot be hashed as they are used: one sequential pass first, which leaves the file in
    the page cache for the reads after it."""
    if published is None:
        return
    md5 = file_md5(path)[0]
    if md5 != published:
        raise base_error(path, f"has md5 {md5} but the base's manifest says {published}: it is damaged")
