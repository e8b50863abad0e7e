"""`--formats structured` in the bucket writer: one page's Structured record made and written.

`StructuredShard` is the Structured Contents member beside each NDJSON member of a bucket writer
(write.py `MemberSink`): its own gzip part (NDJSON lines + tar padding) and Parquet shard, cut
where the member is cut, so structured member n follows member n. `add_page` builds a page's
record from its Article (after the HTML join and enrichment) at the moment the writer holds it:
memory is one page and one row group, whatever the number of pages.

Counts (per wiki, in the manifest): `structured/ns{ns}/written`, `structured/ns{ns}/without_html`
(pages without Parsoid HTML: no parts are guessed from wikitext), `structured/ns{ns}/failed` (an
extraction error: the page is a dead letter, its HTML kept), `structured/with_description`.
"""

from __future__ import annotations

import pyarrow as pa

from wikisnap.schemas.structured import STRUCTURED_SCHEMA, structured_line, structured_to_table
from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.formats.tarball import GzipMemberWriter, MemberPart, tar_padding
from wikisnap.transforms.read import DeadLetter

__all__ = ["GZ_SUFFIX", "PARQUET_SUFFIX", "StructuredShard", "add_page"]

# what a structured member's files add to their member's part stem (layout.part_base)
GZ_SUFFIX = ".structured.ndjson.gz"
PARQUET_SUFFIX = ".structured.parquet"


class StructuredShard:
    """The structured member of one bucket-writer member: `{base}.structured.ndjson.gz` + `.parquet`.

    `parquet_writer(path, schema)` is the writer's ParquetFileWriter (passed in: this module sits
    beside write.py, not above it). Row groups close at the writer's row/byte limits, so their
    bounds depend only on the data. Both files exist even when no page had HTML.
    """

    def __init__(self, base: str, gzip_level: int, parquet_writer, group_rows: int, group_bytes: int):
        self.gz = GzipMemberWriter(base + GZ_SUFFIX, gzip_level)
        self.parquet_path = base + PARQUET_SUFFIX
        self._parquet = parquet_writer(self.parquet_path, STRUCTURED_SCHEMA)
        self._group_rows, self._group_bytes = group_rows, group_bytes
        self.size = 0
        self.records = 0
        self._rows: list[dict] = []
        self._bytes = 0

    def add(self, record: dict, line: bytes | None = None) -> None:
        """Add one Structured record; `line`: its NDJSON line when already serialised (an
        update copies a base line as it is)."""
        if line is None:
            line = structured_line(record)
        self.gz.write(line)
        self.size += len(line)
        self.records += 1
        self._rows.append(record)
        self._bytes += len(line)
        if len(self._rows) >= self._group_rows or self._bytes >= self._group_bytes:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._parquet.write(structured_to_table(self._rows))
            self._rows, self._bytes = [], 0
            pa.default_memory_pool().release_unused()

    def close(self, like: MemberPart) -> MemberPart:
        """Finish both files; the MemberPart of the structured member numbered as `like`."""
        self.gz.write(tar_padding(self.size))
        self.gz.close()
        self._flush()
        self._parquet.close(create=True)
        return MemberPart(
            dbname=like.dbname,
            ns=like.ns,
            bucket=like.bucket,
            index=like.index,
            data_size=self.size,
            records=self.records,
            gz_path=self.gz.path,
            parquet_path=self.parquet_path,
            max_date=like.max_date,
        )


def add_page(
    shard: StructuredShard, record: dict, ns: int, enrichment: dict | None, counts: dict, letters: list
) -> None:
    """One page's Article (namespace `ns`, SQL `enrichment` or None) → its Structured record in
    `shard`, or a count of why not (a dead letter in `letters` when extraction failed)."""

    def add(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    # imported on first use: the parser's module costs every build ~40 ms of start-up otherwise
    from wikisnap.transforms.parse.structured_record import structured_record

    description = (enrichment or {}).get("description")
    try:
        structured = structured_record(record, description)
    except Exception as exc:  # noqa: BLE001 - one page's HTML must not stop the bucket: a dead letter
        add(counter("structured", ns, "failed"))
        html = (record.get("article_body") or {}).get("html") or ""
        db = (record.get("is_part_of") or {}).get("identifier", "")
        reason = f"Structured Contents not extracted: {type(exc).__name__}: {exc}"
        letters.append(DeadLetter(db, "structured", reason, record.get("identifier"), record.get("name"), html))
        return
    if structured is None:
        add(counter("structured", ns, "without_html"))
        return
    if description:
        add("structured/with_description")
    shard.add(structured)
    add(counter("structured", ns, "written"))
