"""Writing snapshots: bucket writers in parallel, then a cheap per-(db, ns) assembly.

WriteBuckets   ((db, ns, bucket) → spill runs + redirect lists) → `MemberPart`s: merges the
               sorted runs (newest revision of a page id wins; same-revision copies with different
               text: the smallest wikitext SHA-1 wins, the others are dead letters), attaches redirects, serialises
               WME JSON, cuts NDJSON members at the size limit, gzips each member and writes its
               Parquet shard — in parallel over buckets.
AssembleSnapshots  (db, ns) → numbers the members in page-id order, concatenates their gzip
               members into `{db}_namespace_{ns}.tar.gz` (copy only), writes the metadata JSON and
               moves the Parquet shards into place. Withholds everything when an input was bad.
(Dead letters are written by transforms/deadletters.py; the writers' progress files by
transforms/writeprogress.py.)
"""

from __future__ import annotations

import calendar
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, replace

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap import faults
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA, records_to_table
from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.formats.fs import (
    file_md5,
    file_size,
    join,
    move_once,
    open_write,
    remove_files,
    write_bytes_atomic,
)
from wikisnap.transforms.formats.layout import count_attempts, mark_attempt, new_attempt, snapshot_id
from wikisnap.transforms.formats.offload import Offload
from wikisnap.transforms.formats.spill import merge_runs, release_freed_memory
from wikisnap.transforms.formats.tarball import GzipMemberWriter, MemberPart, assemble_tarball, tar_padding
from wikisnap.transforms.history import merge_history
from wikisnap.transforms.parse.plaintext import text_row
from wikisnap.transforms.parse.sqlrows import editor_fields
from wikisnap.transforms.read import DeadLetter
from wikisnap.transforms.records import WME_LINE, HtmlJoin, take_wme_line, wme_line_if_unchanged
from wikisnap.transforms.spilljoin import PageItems, SpillToBuckets, flatten, page_items, sources
from wikisnap.transforms.write_structured import StructuredShard, add_page
from wikisnap.transforms.writeprogress import WriteProgress

TAG_STATS = "stats"
TAG_PARTS = "parts"
TAG_DEADLETTERS = "deadletters"
# Records wait as dicts until this many rows or NDJSON bytes, then become a compact Arrow table
# (a dict costs 2-3x its JSON; enwiki's long articles put ~40 MB in 256 of them).
_ARROW_BATCH_ROWS = 256
_ARROW_BATCH_BYTES = 1 << 20


@dataclass(frozen=True)
class WriteOptions:
    out_dir: str
    temp_dir: str
    member_bytes: int
    formats: frozenset[str]
    snapshot_date: str | None  # RFC 3339, or None: the newest revision of each snapshot
    gzip_level: int = 3
    # SQL enrichment: how SQL categories combine with the wikitext ones (`wikitext`, `sql`,
    # `both`), and which enriched fields get with/without coverage counts (empty: none given).
    categories: str = "wikitext"
    coverage: frozenset[str] = frozenset()
    parquet_row_group_rows: int = 5000
    # 8 MB of NDJSON per row group: a row group waits whole in memory (Arrow tables and encoded
    # pages, ~4x its size): 64 MB groups cost a 1-worker build 150 MB of its peak RSS, 16 MB 65 MB
    parquet_row_group_bytes: int = 8 << 20
    # `--formats text`: the namespaces that get a plain-text shard beside each member, and the
    # wikis' SiteInfos as ((db, SiteInfo), …) (namespace names for file and category links).
    text_namespaces: frozenset[int] = frozenset({0})
    sites: tuple = ()
    # WME record inputs name their wikis record by record (a file may hold several): a wiki met only
    # there gets canonical namespace names, all a record tells of its wiki (see `site`).
    record_wikis: bool = False
    # Remove a bucket's spill runs once its members are written: only where a failed bundle fails
    # the run instead of being retried (the pinned local engine); keeps peak temp disk near the output's.
    consume_runs: bool = False
    progress_seconds: float = 10.0  # between a bucket writer's progress files (transforms/writeprogress.py)

    def site(self, dbname: str) -> SiteInfo | None:
        """The SiteInfo the text of `dbname` is made with: the listed one, else (`record_wikis`) one
        of canonical namespace names, else None (an XML wiki left out: TextShard refuses it)."""
        listed = dict(self.sites).get(dbname)
        return SiteInfo(dbname=dbname) if listed is None and self.record_wikis else listed

    def wants_text(self, ns: int) -> bool:
        return "text" in self.formats and ns in self.text_namespaces

    def wants_structured(self, ns: int) -> bool:
        """`--formats structured` is for articles, as WME's Structured Contents (namespace 0 only)."""
        return "structured" in self.formats and ns == 0

    @property
    def needs_json(self) -> bool:
        """Whether records are serialised: not for `--formats text` alone (the text needs no JSON)."""
        return bool(self.formats & {"ndjson", "parquet"})


@dataclass(frozen=True)
class OutputFile:
    # "tarball", "metadata", "parquet", "text", "deadletter"; `--formats structured`:
    # "structured-tarball", "structured-metadata", "structured-parquet"
    kind: str
    dbname: str
    ns: int | None
    path: str
    bytes: int
    md5: str
    records: int
    # tarballs of `update`: `(start, end, lines)` of data members copied from a vouched-for base
    # (`MemberPart.copied`); VerifyOutputs hashes them without inflating and then drops this
    copied: tuple[tuple[int, int, int], ...] | None = None


# -- bucket writer -------------------------------------------------------------------------


# How every Parquet file wikisnap writes is encoded (build shards, text shards, an update's
# merged shards, the HF layout's copies): zstd pages and min/max statistics per column chunk.
PARQUET_SETTINGS = {"compression": "zstd", "write_statistics": True}


class ParquetFileWriter:
    """Row groups appended to one Parquet file (zstd, statistics) by a background thread.

    `write(table)` returns as soon as the table is queued: Arrow encodes and compresses it
    without the GIL while the caller builds the next row group (`Offload`; at most one group
    waits, so memory is one row group more than writing in line). `close` returns when the file is
    complete; a write error raises from the next `write` or from `close`.
    """

    def __init__(self, path: str, schema: pa.Schema):
        self.path = path
        self._schema = schema
        self._offload = Offload("parquet", depth=1)
        self._sink = None
        self._writer = None

    def write(self, table: pa.Table) -> None:
        # handed over in a list the thread empties: the queue then holds no reference to the
        # table once its one-chunk copy exists (a row group less in memory)
        self._offload.submit(self._write, [table])

    def _open(self) -> None:
        if self._writer is None:
            self._sink = open_write(self.path)
            self._writer = pq.ParquetWriter(self._sink, self._schema, **PARQUET_SETTINGS)

    def _write(self, handed: list[pa.Table]) -> None:
        self._open()
        # One chunk per column: Arrow's encoder restarts dictionaries per chunk, so a row group
        # made of small tables came out 25% larger (and its bytes would depend on the batching).
        table = handed.pop().combine_chunks()
        self._writer.write_table(table, row_group_size=table.num_rows)
        del table
        # Arrow's allocator (mimalloc) keeps freed row groups for reuse; a writer alternating them
        # with Python's allocations grew 30 MB past what it needs: hand them back
        pa.default_memory_pool().release_unused()

    def _close(self, create: bool) -> None:
        if create:
            self._open()
        if self._writer is not None:
            self._writer.close()
            self._sink.close()

    def close(self, create: bool = False) -> bool:
        """Finish the file (an empty one too when `create`); True when a file was written."""
        try:
            self._offload.submit(self._close, create)
        finally:
            self._offload.close()
        return self._writer is not None


class MemberSink:
    """One NDJSON member being written: gzip data part + optional Parquet shard.

    The part files carry a fresh attempt id: a retried or duplicated writer never writes into the
    files of another attempt, and assembly takes only the parts its elements name.
    """

    def __init__(self, opts: WriteOptions, dbname: str, ns: int, bucket: int, index: int):
        name = f"{bucket:06d}-{index:04d}-{new_attempt()}"
        base = layout.part_base(opts.temp_dir, snapshot_id(dbname, ns), name)
        self.opts = opts
        self.key = (dbname, ns, bucket, index)
        self.gz = GzipMemberWriter(base + ".ndjson.gz", opts.gzip_level) if "ndjson" in opts.formats else None
        self.parquet_path = base + ".parquet" if "parquet" in opts.formats else None
        self.text = TextShard(base + ".text.parquet", opts.site(dbname), opts) if opts.wants_text(ns) else None
        self.structured = (
            StructuredShard(
                base, opts.gzip_level, ParquetFileWriter, opts.parquet_row_group_rows, opts.parquet_row_group_bytes
            )
            if opts.wants_structured(ns)
            else None
        )
        self.size = 0
        self.records = 0
        self.max_date = ""
        # Records wait as dicts only in small batches; a row group's worth waits as compact Arrow
        # tables (dicts of a 64 MB row group cost several times that in Python objects).
        self._rows: list[dict] = []
        self._tables: list = []
        self._rows_bytes = 0
        self._batch_bytes = 0
        self._group_rows = 0
        self._parquet: ParquetFileWriter | None = None

    def add(self, line: bytes, record: dict, size: int | None = None) -> None:
        """Add one record; `line` is its NDJSON line (b"" for text alone, then `size` counts)."""
        self.size += len(line) if size is None else size
        self.records += 1
        if self.text is not None:
            self.text.add(record)
        date = record.get("date_modified") or ""
        if date > self.max_date:
            self.max_date = date
        if self.gz is not None:
            self.gz.write(line)
        if self.parquet_path is not None:
            self._rows.append(record)
            self._rows_bytes += len(line)
            self._batch_bytes += len(line)
            self._group_rows += 1
            if len(self._rows) >= _ARROW_BATCH_ROWS or self._batch_bytes >= _ARROW_BATCH_BYTES:
                self._tables.append(records_to_table(self._rows))
                self._rows = []
                self._batch_bytes = 0
            if (
                self._group_rows >= self.opts.parquet_row_group_rows
                or self._rows_bytes >= self.opts.parquet_row_group_bytes
            ):
                self._flush_rows()

    def _flush_rows(self) -> None:
        """Write the waiting records as one row group (its bounds depend only on the data)."""
        if self._rows:
            self._tables.append(records_to_table(self._rows))
            self._rows = []
            self._batch_bytes = 0
        if not self._tables:
            return
        if self._parquet is None:
            self._parquet = ParquetFileWriter(self.parquet_path, ARTICLE_SCHEMA)
        self._parquet.write(pa.concat_tables(self._tables))
        self._tables = []
        self._rows_bytes = 0
        self._group_rows = 0

    def close(self) -> MemberPart:
        dbname, ns, bucket, index = self.key
        if self.gz is not None:
            self.gz.write(tar_padding(self.size))
            self.gz.close()
        text_path = self.text.close() if self.text is not None else None
        if self.parquet_path is not None:
            self._flush_rows()
            if self._parquet is not None:
                self._parquet.close()
        release_freed_memory()  # the member's buffers, before the next member's pile up beside them
        part = MemberPart(
            dbname=dbname,
            ns=ns,
            bucket=bucket,
            index=index,
            data_size=self.size,
            records=self.records,
            gz_path=self.gz.path if self.gz is not None else "",
            parquet_path=self.parquet_path,
            max_date=self.max_date,
            text_path=text_path,
        )
        if self.structured is not None:
            part = replace(part, structured=self.structured.close(part))
        return part


class TextShard:
    """The plain-text Parquet shard of one member: one row per record (schemas/arrow.py TEXT_SCHEMA).

    Rows wait in small column lists; a row group closes at `parquet_row_group_rows` rows or
    `parquet_row_group_bytes` of text, so its bounds depend only on the data (same bytes whatever
    the parallelism). The file is written even when empty, so shard n always follows member n.
    """

    def __init__(self, path: str, site, opts: WriteOptions):
        if site is None:
            raise ValueError(f"no SiteInfo for the text of {path}: WriteOptions.sites must list every wiki")
        self.path = path
        self.site = site
        self.opts = opts
        self.rows = 0
        self._columns: dict[str, list] = {name: [] for name in TEXT_SCHEMA.names}
        self._bytes = 0
        self._parquet = ParquetFileWriter(path, TEXT_SCHEMA)

    def add(self, record: dict) -> None:
        row = text_row(record, self.site)
        for name, column in self._columns.items():
            column.append(row[name])
        self.rows += 1
        self._bytes += len(row["text"])
        if (
            len(self._columns["id"]) >= self.opts.parquet_row_group_rows
            or self._bytes >= self.opts.parquet_row_group_bytes
        ):
            self._flush()

    def _flush(self) -> None:
        if not self._columns["id"]:
            return
        self._parquet.write(pa.Table.from_pydict(self._columns, schema=TEXT_SCHEMA))
        self._columns = {name: [] for name in TEXT_SCHEMA.names}
        self._bytes = 0

    def close(self) -> str:
        self._flush()
        self._parquet.close(create=True)
        return self.path


def merge_enrichment(record: dict, enrichment: dict | None, opts: WriteOptions, counts: dict[str, int]) -> None:
    """Merge one page's SQL enrichment into its record, in place, and count coverage.

    In: the record built from the XML page, and `{main_entity?, protection?, categories?}` from
    EnrichFromSql (None when the SQL tables have nothing for the page). Categories follow
    `opts.categories`: `wikitext` keeps the record's, `sql` takes the SQL list (sorted by name),
    `both` keeps the wikitext order and appends the SQL-only ones (sorted).
    """
    enrichment = enrichment or {}
    if "main_entity" in enrichment:
        record["main_entity"] = enrichment["main_entity"]
    if "protection" in enrichment:
        record["protection"] = enrichment["protection"]
    merge_page_tables(record, enrichment, opts, counts)
    sql_categories = enrichment.get("categories") or []
    wikitext = record.get("categories") or []
    if opts.categories == "sql" and "categories" in opts.coverage:
        merged = list(sql_categories)
    elif opts.categories == "both":
        seen = {c["name"] for c in wikitext}
        merged = list(wikitext) + [c for c in sql_categories if c["name"] not in seen]
    else:
        merged = list(wikitext)
    if merged:
        record["categories"] = merged
    else:
        record.pop("categories", None)

    def add(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    if "main_entity" in opts.coverage:
        add("enrich/records_with_qid" if "main_entity" in record else "enrich/records_without_qid")
    if "protection" in opts.coverage and "protection" in record:
        add("enrich/records_with_protection")
    if "categories" in opts.coverage:
        sql_names = {c["name"] for c in sql_categories}
        wiki_names = {c["name"] for c in wikitext}
        kept = {c["name"] for c in merged}
        add("enrich/categories_from_wikitext_only", len((kept & wiki_names) - sql_names))
        add("enrich/categories_from_sql_only", len((kept & sql_names) - wiki_names))
        add("enrich/categories_from_both", len(kept & sql_names & wiki_names))
        add("enrich/records_with_categories" if merged else "enrich/records_without_categories")


def merge_page_tables(record: dict, enrichment: dict, opts: WriteOptions, counts: dict[str, int]) -> None:
    """image.sql/page_props, wbc_entity_usage, flaggedpages and user_groups fields → the record, in place.

    `image` and `additional_entities` are taken as EnrichFromSql built them. `flagged_stable` (the
    page's stable revision) sets `version.is_flagged_stable` when it is the record's revision.
    `editor_groups` `{user_id: explicit groups}` gives the record's editor WME's groups and flags
    (`enrich.editor_fields`) when its id was looked up; an editor that already has groups (a WME
    record) keeps them. Coverage counts only for the tables given (`opts.coverage`).
    """

    def add(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    if "image" in enrichment:
        record["image"] = enrichment["image"]
    if "image" in opts.coverage:
        add("enrich/image/records_with" if "image" in record else "enrich/image/records_without")
    if "additional_entities" in enrichment:
        record["additional_entities"] = enrichment["additional_entities"]
    if "entities" in opts.coverage:
        add("enrich/entities/records_with" if record.get("additional_entities") else "enrich/entities/records_without")
    version = record.get("version")
    if "flagged" in opts.coverage and isinstance(version, dict):
        stable = enrichment.get("flagged_stable")
        if stable is None:
            add("enrich/flagged/records_not_reviewed")
        elif stable == version.get("identifier"):
            # a new dict, never a change in place: a WME record's writer compares before and after
            version = record["version"] = {**version, "is_flagged_stable": True}
            add("enrich/flagged/records_stable")
        else:  # the current revision awaits review: the stable one is older
            add("enrich/flagged/records_pending")
    if "editor_groups" in opts.coverage and isinstance(version, dict):
        editor = version.get("editor") or {}
        known = enrichment.get("editor_groups") or {}
        user_id = editor.get("identifier")
        if editor.get("is_anonymous") or not user_id:
            add("enrich/editor_groups/records_anonymous")
        elif "groups" in editor:
            add("enrich/editor_groups/records_kept")
        elif user_id in known:
            editor = {**editor, **editor_fields(known[user_id], editor.get("name") or "")}
            record["version"] = {**version, "editor": editor}
            add(
                "enrich/editor_groups/records_with_explicit"
                if known[user_id]
                else "enrich/editor_groups/records_implicit_only"
            )
        else:  # a WME record's editor: not keyed by the reader
            add("enrich/editor_groups/records_not_joined")


def text_sha1(record: dict) -> str:
    """SHA-1 (hex) of a record's wikitext ("" when it has none): what decides same-revision conflicts."""
    text = (record.get("article_body") or {}).get("wikitext") or ""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _record_bytes(record: dict) -> bytes:
    """A record's WME JSON without the reader's WME-line marker (records.WME_LINE)."""
    if WME_LINE in record:
        record = {k: v for k, v in record.items() if k != WME_LINE}
    return to_wme_json_bytes(record)


def pick_copy(copies: list, sources: dict[str, str]) -> tuple[dict, int, list[DeadLetter]]:
    """One page's copies from several inputs → (the record kept, copies superseded, conflict dead letters).

    The newest revision wins. Copies of that revision with the same wikitext are duplicates (e.g.
    overlapping parts); with different wikitext they conflict, and the copy whose wikitext has the
    smallest SHA-1 wins — a rule that depends on the data only, never on input order or location.
    Every other copy of that revision becomes a dead letter naming both inputs, its text kept.
    (Equal texts are ordered by their serialised record, so even their metadata is deterministic;
    a WME record's copies too: its marker of the original line is no field and is left out.)
    """
    if len(copies) == 1:
        return copies[0][2], 0, []
    top = [c for c in copies if c[1] == copies[0][1]]  # the merge puts the newest revision first
    if len(top) > 1:
        top.sort(key=lambda c: (text_sha1(c[2]), _record_bytes(c[2]), c[3]))
    winner = top[0]
    won_sha = text_sha1(winner[2])
    letters = []
    for page_id, rev_id, record, path in top[1:]:
        sha = text_sha1(record)
        if sha == won_sha:
            continue
        reason = (
            f"conflict: page {page_id} revision {rev_id} also in {sources.get(winner[3], winner[3])} with "
            f"different text (sha1 {won_sha} kept over {sha}: the smaller wikitext SHA-1 wins)"
        )
        text = (record.get("article_body") or {}).get("wikitext") or ""
        letters.append(
            DeadLetter(
                record["is_part_of"]["identifier"], sources.get(path, path), reason, page_id, record.get("name"), text
            )
        )
    return winner[2], len(copies) - 1 - len(letters), letters


def write_bucket(
    key: tuple[str, int, int],
    run_paths: list[str],
    redirect_lists,
    opts: WriteOptions,
    enrichments=(),
    sources: dict[str, str] | None = None,
    deadletters: list | None = None,
    html_paths: list[str] | None = None,
    progress=None,
):
    """Pure-ish core of one bucket: returns `(parts, counts)`.

    In: the spill-run paths of one (db, ns, bucket), `(page_id, [(name, url)])` redirect lists
    (from the XML dump and redirect.sql; deduplicated by name) and `(page_id, enrichment)` items
    from EnrichFromSql (see `merge_enrichment`), both **in page-id order** (streams, merge-joined
    with the records: nothing per page is held); `sources` maps run paths to input files.
    Out: the `MemberPart`s written, in order, and counts (`records/ns{ns}/written`, `duplicates_superseded`,
    `conflicts`, `redirects_written`, and `enrich/…` coverage when `opts.coverage` is set).
    Same-revision conflicts (see `pick_copy`) are appended to `deadletters` when given.
    `html_paths`: HTML runs of the bucket (transforms/records.py; [] when the run has HTML inputs
    but none fell in this bucket, None without HTML inputs), merge-joined by page id
    (`HtmlJoin`); HTML without a record is appended to `deadletters` too. `progress(records,
    members)` after each record when given (a `WriteProgress`).
    """
    dbname, ns, bucket = key
    sources = sources or {}
    redirect_items = PageItems(redirect_lists)
    enrichment_items = PageItems(enrichments)
    parts: list[MemberPart] = []
    written = counter("records", ns, "written")
    counts = {written: 0, "duplicates_superseded": 0, "conflicts": 0, "redirects_written": 0}
    sink: MemberSink | None = None
    json_needed = opts.needs_json
    letters_out = deadletters if deadletters is not None else []
    html = None
    if html_paths is not None:
        html = HtmlJoin(
            dbname, list(html_paths), counts, deadletters if deadletters is not None else [], opts.consume_runs
        )
    for page_id, group in itertools.groupby(
        merge_runs(run_paths, with_source=True, consume=opts.consume_runs), key=lambda item: item[0]
    ):
        # The same page in several inputs (overlapping parts, or two copies of one revision).
        copies = list(group)
        record, superseded, letters = pick_copy(copies, sources)
        counts["duplicates_superseded"] += superseded
        counts["conflicts"] += len(letters)
        if deadletters is not None:
            deadletters.extend(letters)
        rev_id = copies[0][1]  # the merge puts the newest revision first; the kept copy has it
        from_wme, wme_line, before = take_wme_line(record)
        if html is not None:
            html.attach(page_id, rev_id, record, from_wme)
        pairs: dict[str, str] = {}
        for lists in redirect_items.take(page_id):
            for name, url in lists:
                pairs.setdefault(name, url)
        if pairs:
            record["redirects"] = [{"name": name, "url": url} for name, url in sorted(pairs.items())]
            counts["redirects_written"] += len(pairs)
        enrichment = None
        for item in enrichment_items.take(page_id):
            enrichment = {**(enrichment or {}), **item}
        if opts.coverage or enrichment is not None:
            merge_enrichment(record, enrichment, opts, counts)
            merge_history(record, enrichment, opts.coverage, counts)
        # `--formats text` alone never serialises: members are then cut by wikitext size.
        line = (wme_line_if_unchanged(record, wme_line, before) or to_wme_json_bytes(record)) if json_needed else b""
        size = len(line) if json_needed else record_weight(record)
        if sink is None or (sink.size and sink.size + size > opts.member_bytes):
            if sink is not None:
                parts.append(sink.close())
            sink = MemberSink(opts, dbname, ns, bucket, len(parts))
        sink.add(line, record, size)
        counts[written] += 1
        if sink.structured is not None:
            add_page(sink.structured, record, ns, enrichment, counts, letters_out)
        if progress is not None:
            progress(counts[written], len(parts))
    if sink is not None:
        parts.append(sink.close())
    if html is not None:
        html.finish()
    return parts, counts


def record_weight(record: dict) -> int:
    """What a record weighs when no JSON is written: its wikitext (or HTML) length, at least 1."""
    if "_weight" in record:  # text made by the reader (plaintext.with_early_text)
        return record["_weight"]
    body = record.get("article_body") or {}
    return max(1, len(body.get("html") or body.get("wikitext") or ""))


class _WriteBucketFn(beam.DoFn):
    def __init__(self, opts: WriteOptions):
        self.opts = opts

    def setup(self) -> None:
        self.c_written = Metrics.counter("wikisnap", "records_written")
        self.c_dupes = Metrics.counter("wikisnap", "duplicates_superseded")
        self.c_conflicts = Metrics.counter("wikisnap", "conflicts")
        self.c_retries = Metrics.counter("wikisnap", "write_bucket_retries")

    def process(self, element):
        key, groups = element
        dbname, ns, bucket = key
        name = f"{snapshot_id(dbname, ns)}-{bucket:06d}"
        mark_attempt(self.opts.temp_dir, "write-bucket", name, new_attempt())
        release_freed_memory()  # what the read phase left in the allocator's arenas: the peak is ahead
        runs = list(groups["runs"])
        # A bucket has runs, or only HTML runs (all orphans): redirect lists name spilled pages.
        html_runs = [run.path for run in groups["html"]] if "html" in groups else None
        letters: list[DeadLetter] = []
        # twice per launcher tick: its line then lags the writers by half a tick, not a whole one
        progress = WriteProgress(layout.write_progress_path(self.opts.temp_dir, name), self.opts.progress_seconds / 2)
        parts, counts = write_bucket(
            key,
            [run.path for run in runs],
            page_items([run.path for run in groups["redirects"]], self.opts.consume_runs),
            self.opts,
            page_items([run.path for run in groups.get("enrichments", ())], self.opts.consume_runs),
            sources={run.path: run.source for run in runs},
            deadletters=letters,
            html_paths=html_runs,
            progress=progress,
        )
        written = counts[counter("records", ns, "written")]
        progress(written, len(parts), final=True)
        # after the parts are on disk: a test failing here leaves a whole superseded attempt behind
        faults.point(f"write-bucket:{name}")
        if self.opts.consume_runs:
            remove_files(
                [run.path for run in runs]
                + [run.path for run in groups["redirects"]]
                + [run.path for run in groups.get("enrichments", ())]
                + (html_runs or [])
            )
        retries = count_attempts(self.opts.temp_dir, "write-bucket", name) - 1
        if retries > 0:  # attempts of this bucket the engine discarded (absent on a run without any)
            self.c_retries.inc(retries)
            counts["retries/write_bucket_attempts"] = retries
        self.c_written.inc(written)
        self.c_dupes.inc(counts["duplicates_superseded"])
        self.c_conflicts.inc(counts["conflicts"])
        for part in parts:
            yield ((part.dbname, part.ns), part)
        for letter in letters:
            yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, letter)
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((dbname, name), n))


class WriteBuckets(beam.PTransform):
    """(runs, redirect_lists[, enrichments][, html runs]) → DoOutputsTuple(main `((db, ns), MemberPart)`,
    stats, deadletters — same-revision conflicts, see `pick_copy`).

    `redirect_lists`, `enrichments`: `((db, ns, bucket), (page_id, item))`, each one PCollection or a
    tuple of them; they are spilled where they are made to page-sorted runs per bucket
    (`SpillToBuckets`), so only run paths go through the shuffle, as for the records and the HTML.
    `html=True`: the last PCollection holds HTML runs (transforms/records.py). Orphaned HTML comes
    out as `deadletters`.
    """

    def __init__(self, opts: WriteOptions, html: bool = False):
        super().__init__()
        self.opts = opts
        self.html = html

    def expand(self, pcolls):
        runs, redirect_lists, *rest = pcolls
        html = rest.pop() if self.html else None
        temp = self.opts.temp_dir
        keyed_runs = runs | "KeyRunsByBucket" >> beam.Map(lambda run: ((run.dbname, run.ns, run.bucket), run))
        redirect_runs = tuple(
            p | f"SpillRedirectLists{i or ''}" >> SpillToBuckets(temp, "redirects")
            for i, p in enumerate(sources(redirect_lists))
        )
        groups = {"runs": keyed_runs, "redirects": flatten(redirect_runs, "FlattenRedirectRuns")}
        if html is not None:
            groups["html"] = html | "KeyHtmlRunsByBucket" >> beam.Map(
                lambda run: ((run.dbname, run.ns, run.bucket), run)
            )
        if rest and sources(rest[0]):
            enrichment_runs = tuple(
                p | f"SpillEnrichments{i or ''}" >> SpillToBuckets(temp, "enrichments")
                for i, p in enumerate(sources(rest[0]))
            )
            groups["enrichments"] = flatten(enrichment_runs, "FlattenEnrichmentRuns")
        return (
            groups
            | "GroupByBucket" >> beam.CoGroupByKey()
            | "MergeAndWriteMembers"
            >> beam.ParDo(_WriteBucketFn(self.opts))
            .with_output_types(tuple[tuple[str, int], MemberPart])
            .with_outputs(TAG_STATS, TAG_DEADLETTERS, main=TAG_PARTS)
        )


# -- assembly ------------------------------------------------------------------------------


def epoch_seconds(rfc3339: str) -> int:
    return calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S"))


def snapshot_metadata(dbname: str, ns: int, lang: str, md5: str, size: int, date: str) -> dict:
    """WME's snapshot metadata object (`Snapshot` struct order)."""
    return {
        "identifier": snapshot_id(dbname, ns),
        "version": md5,
        "date_modified": date,
        "is_part_of": {"identifier": dbname},
        "in_language": {"identifier": lang},
        "namespace": {"identifier": ns},
        "size": {"value": round(size / 1e6, 3), "unit_text": "MB"},
    }


def assemble_snapshot(key: tuple[str, int], parts: list[MemberPart], lang: str, opts: WriteOptions) -> list[OutputFile]:
    """Number the members of one (db, ns), build its tarball, metadata and Parquet shards."""
    dbname, ns = key
    sid = snapshot_id(dbname, ns)
    parts = sorted(parts, key=lambda p: (p.bucket, p.index))
    records = sum(p.records for p in parts)
    date = opts.snapshot_date or max(p.max_date for p in parts)
    outputs: list[OutputFile] = []
    if "ndjson" in opts.formats:
        tar_path = join(opts.out_dir, layout.tarball_name(dbname, ns))
        named = [(layout.member_name(sid, n), part) for n, part in enumerate(parts)]
        md5, size, copied = assemble_tarball(tar_path, named, epoch_seconds(date))
        outputs.append(OutputFile("tarball", dbname, ns, tar_path, size, md5, records, copied or None))
        meta = snapshot_metadata(dbname, ns, lang, md5, size, date)
        meta_bytes = (json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        meta_path = join(opts.out_dir, layout.metadata_name(dbname, ns))
        write_bytes_atomic(meta_path, meta_bytes)
        outputs.append(OutputFile("metadata", dbname, ns, meta_path, len(meta_bytes), file_md5(meta_path)[0], 0))
    if "parquet" in opts.formats:
        for n, part in enumerate(parts):
            dest = layout.shard_path(opts.out_dir, layout.PARQUET, sid, n)
            move_once(part.parquet_path, dest)  # a retried assembly finds the shards it moved
            # an update's byte copy of a base shard was hashed as it was written: not read again
            md5, size = (part.parquet_md5, file_size(dest)) if part.parquet_md5 else file_md5(dest)
            outputs.append(OutputFile("parquet", dbname, ns, dest, size, md5, part.records))
    if opts.wants_structured(ns):
        outputs += assemble_structured(dbname, ns, [p.structured for p in parts], lang, date, opts)
    if opts.wants_text(ns):
        for n, part in enumerate(parts):
            if part.text_path:
                dest = layout.shard_path(opts.out_dir, layout.TEXT, sid, n)
                move_once(part.text_path, dest)  # as the Parquet shards
                md5, size = file_md5(dest)
                outputs.append(OutputFile("text", dbname, ns, dest, size, md5, part.records))
    # after the shards are moved: a retry must find them moved, not fail on their absence
    faults.point(f"assemble:{sid}")
    return outputs


def assemble_structured(
    dbname: str, ns: int, parts: list[MemberPart], lang: str, date: str, opts: WriteOptions
) -> list[OutputFile]:
    """The Structured Contents snapshot of one (db, ns): tarball and metadata in WME's
    `structured-snapshots/` folder (same identifier and metadata shape as the records' snapshot),
    and its Parquet shards, numbered as the records' members."""
    sid = snapshot_id(dbname, ns)
    records = sum(p.records for p in parts)
    tar_path, meta_path = layout.structured_paths(opts.out_dir, dbname, ns)
    named = [(layout.member_name(sid, n), part) for n, part in enumerate(parts)]
    md5, size, _copied = assemble_tarball(tar_path, named, epoch_seconds(date))
    outputs = [OutputFile("structured-tarball", dbname, ns, tar_path, size, md5, records)]
    meta = snapshot_metadata(dbname, ns, lang, md5, size, date)
    meta_bytes = (json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    write_bytes_atomic(meta_path, meta_bytes)
    outputs.append(OutputFile("structured-metadata", dbname, ns, meta_path, len(meta_bytes), file_md5(meta_path)[0], 0))
    for n, part in enumerate(parts):
        dest = layout.shard_path(opts.out_dir, layout.STRUCTURED_PARQUET, sid, n)
        move_once(part.parquet_path, dest)  # a retried assembly finds the shards it moved
        shard_md5, shard_size = file_md5(dest)
        outputs.append(OutputFile("structured-parquet", dbname, ns, dest, shard_size, shard_md5, part.records))
    return outputs


class _AssembleFn(beam.DoFn):
    def __init__(self, opts: WriteOptions, languages: dict[str, str], allow_errors: bool):
        self.opts = opts
        self.languages = languages
        self.allow_errors = allow_errors

    def process(self, element, input_errors):
        key, parts = element
        # Nothing is published from a run with a bad input; the launcher explains why. SQL dump
        # errors (strings) are never allowed: --allow-truncated is about XML pages.
        sql_errors = [e for e in input_errors if isinstance(e, str)]
        if not sql_errors and (self.allow_errors or not input_errors):
            yield from assemble_snapshot(key, list(parts), self.languages.get(key[0], ""), self.opts)


class AssembleSnapshots(beam.PTransform):
    """`((db, ns), MemberPart)` → `OutputFile`s; `input_errors` is a small side input."""

    def __init__(self, opts: WriteOptions, languages: dict[str, str], input_errors, allow_errors: bool):
        super().__init__()
        self.opts = opts
        self.languages = languages
        self.input_errors = input_errors
        self.allow_errors = allow_errors

    def expand(self, parts):
        return (
            parts
            | "GroupBySnapshot" >> beam.GroupByKey()
            | "ConcatenateTarballs"
            >> beam.ParDo(
                _AssembleFn(self.opts, self.languages, self.allow_errors),
                input_errors=beam.pvalue.AsList(self.input_errors),
            )
        )
