"""Rewrite the touched snapshots member by member (the update's third stage).

A snapshot no diff touches is copied as files. Otherwise an untouched member is copied as gzip bytes
with its Parquet shard (never decompressed; the copy's CRC-32 must be the scan's), a touched one is
re-gzipped with the changes merged in page-id order while its shard is merged row group by row
group beside it (untouched groups copied as bytes: splice.py); a worker rewrites two touched
members at once. A copied shard an earlier wikisnap wrote in other column types is rewritten in
today's (`copy_shard`), so an output never mixes schemas. Tarballs of another layout are rewritten line by line.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap import faults
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA
from wikisnap.schemas.serialize import format_time, to_wme_json_bytes
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.formats.fs import (
    file_md5,
    fs_for,
    join,
    local_path,
    open_read,
    open_read_arrow,
    open_write,
    read_bytes,
    remove_tree,
)
from wikisnap.transforms.formats.layout import new_attempt, snapshot_id
from wikisnap.transforms.formats.tarball import (
    READ_SIZE,
    BaseError,
    BaseMember,
    GzipMemberWriter,
    MemberPart,
    _read_span,
    _span_lines,
    base_error,
    iter_snapshot_lines,
    line_head,
    tar_padding,
    wikisnap_members,
)
from wikisnap.transforms.pooled import PooledDoFn
from wikisnap.transforms.update.find import (
    _DATE_KEY,
    TAG_ERRORS,
    TAG_STATS,
    BaseSnapshot,
    _parquet_shards,
    base_line_head,
)
from wikisnap.transforms.update.shards import SHARD_SCHEMAS, check_base_md5, copy_shard, shard_has_schema
from wikisnap.transforms.update.splice import SpliceError, inserts_by_group, merge_shard, splice_plan, splice_shard
from wikisnap.transforms.update.structured import (
    StructuredMerge,
    base_structured_lines,
    copy_structured_member,
    new_structured_shard,
    structured_members,
)
from wikisnap.transforms.write import PARQUET_SETTINGS, MemberSink, OutputFile, TextShard, WriteOptions

TAG_PARTS = "parts"
TAG_COPIED = "copied"
TAG_DEADLETTERS = "deadletters"  # pages whose Structured Contents could not be extracted


# -- rewriting a snapshot --------------------------------------------------------------------


def rewrite_snapshot(
    dbname: str,
    ns: int,
    tarball: str | None,
    changed: dict[int, dict | None],
    opts: WriteOptions,
    snapshot: BaseSnapshot | None = None,
    letters: list | None = None,
) -> tuple[list[MemberPart], dict[str, int]]:
    """Merge base lines (page-id order) with the changed records of one (db, ns) into members.

    Untouched lines are written as they are; changed records are serialised; `None` removes.
    Out: MemberParts for AssembleSnapshots and counts (`records/ns{ns}/written`, `records/ns{ns}/copied`).
    `--formats structured`: each member's structured part is merged from the base's structured
    lines (`snapshot`, the base snapshot of `tarball`) beside it (transforms/update/structured.py);
    pages whose Structured Contents fail are appended to `letters`.
    """
    # Parquet and text need whole records; the tarball alone only the date of an untouched line.
    parquet = "parquet" in opts.formats or opts.wants_text(ns)
    inserts = sorted((pid, rec) for pid, rec in changed.items() if rec is not None)
    parts: list[MemberPart] = []
    written, copied = counter("records", ns, "written"), counter("records", ns, "copied")
    counts = {written: 0, copied: 0}
    sink: MemberSink | None = None
    structured = None
    if opts.wants_structured(ns):
        lines = iter_snapshot_lines(require_structured(snapshot).structured) if tarball else ()
        structured = StructuredMerge(lines, ns, counts, letters if letters is not None else [])

    def add(line: bytes, record: dict, page_id: int, touched: bool) -> None:
        nonlocal sink
        if sink is None or (sink.size and sink.size + len(line) > opts.member_bytes):
            if sink is not None:
                parts.append(sink.close())
            sink = MemberSink(opts, dbname, ns, 0, len(parts))
        sink.add(line, record)
        counts[written] += 1
        if structured is not None:
            structured.page(sink.structured, page_id, record if touched else None)

    def light(line: bytes) -> dict:
        # Without Parquet the sink only needs the date: no JSON parse of an untouched line.
        if parquet:
            return json.loads(line)
        match = _DATE_KEY.search(line)
        return {"date_modified": match.group(1).decode() if match else ""}

    i = 0
    for number, line in enumerate(iter_snapshot_lines(tarball) if tarball else (), 1):
        _name, page_id = base_line_head(tarball, line, number)
        while i < len(inserts) and inserts[i][0] < page_id:
            add(to_wme_json_bytes(inserts[i][1]), inserts[i][1], inserts[i][0], True)
            i += 1
        if page_id in changed:
            continue  # replaced (by an insert at this id) or removed
        add(line, light(line), page_id, False)
        counts[copied] += 1
    for pid, rec in inserts[i:]:
        add(to_wme_json_bytes(rec), rec, pid, True)
    if sink is not None:
        parts.append(sink.close())
    if structured is not None:
        structured.finish()
    return parts, counts


def require_structured(snapshot: BaseSnapshot | None) -> BaseSnapshot:
    """The base snapshot, when it has the structured snapshot `--formats structured` rewrites;
    BaseError naming its tarball otherwise (the update would lose the pages it does not touch)."""
    if snapshot is None or snapshot.structured is None:
        raise base_error(
            snapshot.tarball if snapshot else "(no base snapshot)",
            "has no structured snapshot beside it, so its Structured Contents cannot be updated",
        )
    return snapshot


def _shard_rows_and_max_date(footer: pq.FileMetaData) -> tuple[int, str]:
    """Rows and newest `date_modified` of a Parquet shard, from its footer (row count and
    statistics; no data read)."""
    column = footer.schema.names.index("date_modified")
    best = None
    for g in range(footer.num_row_groups):
        stats = footer.row_group(g).column(column).statistics
        if stats is not None and stats.has_min_max and (best is None or stats.max > best):
            best = stats.max
    if best is None:
        return footer.num_rows, ""
    return footer.num_rows, format_time(best if best.tzinfo else best.replace(tzinfo=UTC))


@dataclass(frozen=True)
class MemberTask:
    """One base member to copy or rewrite, with the changes that fall in it (diff-sized)."""

    snapshot: BaseSnapshot
    member: BaseMember
    shard: str | None  # the base's Parquet shard of this member
    touched: dict  # page id → record | None (remove); empty: copy the member as bytes
    text_shard: str | None = None  # the base's plain-text shard of this member, when it has one
    # `--formats structured`: the base's structured member beside this one, and its shard
    structured: BaseMember | None = None
    structured_shard: str | None = None


def plan_members(
    snapshot: BaseSnapshot,
    changed: dict[int, dict | None],
    opts: WriteOptions,
    members: tuple[BaseMember, ...] | None = None,
) -> list[MemberTask] | None:
    """Assign every changed page to the base member whose id range holds it.

    `members`: the map `scan_base` made while finding the hits; without it (a snapshot no diff
    scanned) the tarball is read for one. None when the base is not laid out as wikisnap writes
    it (then `rewrite_snapshot` is used).
    """
    if members is None:
        members = wikisnap_members(snapshot.tarball)
    if members is None:
        return None
    parquet = "parquet" in opts.formats
    shards = _parquet_shards(snapshot)
    if parquet and sorted(shards) != list(range(len(members))):
        return None
    firsts = [m.first_id for m in members]
    by_member: dict[int, dict[int, dict | None]] = {}
    for page_id, rec in changed.items():
        index = max(0, bisect.bisect_right(firsts, page_id) - 1)
        by_member.setdefault(index, {})[page_id] = rec
    texts = _parquet_shards(snapshot, snapshot.text) if len(snapshot.text) == len(members) else {}
    structured: list = [(None, None)] * len(members)
    if opts.wants_structured(snapshot.ns):
        structured = structured_members(require_structured(snapshot), len(members)) or structured
    return [
        MemberTask(
            snapshot, m, shards.get(m.index), by_member.get(m.index, {}), texts.get(m.index), *structured[m.index]
        )
        for m in members
    ]


def rewrite_member(
    task: MemberTask, opts: WriteOptions, letters: list | None = None
) -> tuple[MemberPart | None, dict[str, int]]:
    """Copy (untouched) or rewrite (touched) one member; returns its part (None if emptied) and counts.

    Keeps the base's member layout (member n of the base → member n of the output, so Parquet
    shard n follows it): a member no change falls in is copied (gzip bytes and Parquet shard,
    nothing decompressed; `MemberPart.copied` when the scan's CRC-32 and the shard's published md5
    vouch for it); a touched member is re-gzipped from its lines with the changes merged in
    (untouched lines byte for byte), and its Parquet shard — made in a thread beside that pass —
    is the base shard filtered by page id plus the new rows (Arrow compute, no JSON).
    `--formats structured`: the structured member beside it is copied or merged the same way
    (transforms/update/structured.py); pages whose Structured Contents fail go to `letters`.
    """
    snapshot, member, touched = task.snapshot, task.member, task.touched
    dbname, ns = snapshot.dbname, snapshot.ns
    parquet = "parquet" in opts.formats
    names = [counter("records", ns, "written"), counter("records", ns, "copied")]
    counts = dict.fromkeys([*names, counter("members", ns, "copied"), counter("members", ns, "rewritten")], 0)
    # a fresh attempt id per call: a retried task never writes into another attempt's files
    base = layout.part_base(opts.temp_dir, snapshot_id(dbname, ns), f"{0:06d}-{member.index:04d}-{new_attempt()}")
    gz_path, pq_path = base + ".ndjson.gz", (base + ".parquet" if parquet else None)
    if not touched:
        raw_crc = 0
        with open_write(gz_path) as out:
            for data in _read_span(snapshot.tarball, member.start, member.end):
                raw_crc = zlib.crc32(data, raw_crc)
                out.write(data)
        if member.raw_crc is not None and raw_crc != member.raw_crc:
            # copied without decompression: these must be the very bytes the scan inflated
            raise base_error(
                snapshot.tarball, f"bytes {member.start:,}-{member.end:,} changed after they were read: it is damaged"
            )
        # whether the line count is vouched for (then the read-back only hashes the copy)
        vouched = member.raw_crc is not None
        shard_md5 = None  # the copied shard's md5, taken on the way (assembly lists it unread)
        if parquet:
            published = snapshot.published_md5(task.shard)
            # the copy's footer, read once for the schema check: its rows and newest date too
            footer, shard_md5 = copy_shard(task.shard, pq_path, ARTICLE_SCHEMA, published)
            vouched = vouched and bool(published)  # its row count is the member's line count
            records, max_date = _shard_rows_and_max_date(footer)
        elif member.records >= 0 and member.max_date is not None:
            records, max_date = member.records, member.max_date  # counted by scan_base
        else:
            records, max_date = 0, ""
            for line in _span_lines(snapshot.tarball, member):
                records += 1
                match = _DATE_KEY.search(line)
                max_date = max(max_date, match.group(1).decode() if match else "")
        counts[counter("records", ns, "copied")] += records
        counts[counter("records", ns, "written")] += records
        counts[counter("members", ns, "copied")] += 1
        text_path = member_text(task, opts, base + ".text.parquet", {})
        part = MemberPart(dbname, ns, 0, member.index, member.data_size, records, gz_path, pq_path, max_date)
        part = replace(part, text_path=text_path, copied=vouched, parquet_md5=shard_md5)
        if opts.wants_structured(ns):
            structured = copy_structured_member(snapshot, task.structured, task.structured_shard, base, part, counts)
            part = replace(part, structured=structured)
        return part, counts
    counts[counter("members", ns, "rewritten")] += 1
    inserts = sorted((pid, rec) for pid, rec in touched.items() if rec is not None)
    with ThreadPoolExecutor(1, thread_name_prefix="wikisnap-shard") as beside:
        # The Parquet shard needs nothing from the line pass: it is merged in a thread beside it
        # (Arrow and the gzip codec work without the GIL), so a touched member takes about the
        # longer of the two in wall time, not their sum. Leaving the block waits for it.
        published = snapshot.published_md5(task.shard) if parquet else None
        shard = (
            beside.submit(_merge_shard_file, task.shard, pq_path, touched, inserts, opts, published)
            if parquet
            else None
        )
        part, records = _rewrite_lines(task, opts, gz_path, base, inserts, counts, letters)
        if shard is not None:
            shard.result()  # its error, if any, is this task's
    counts[counter("records", ns, "written")] += records
    return (part if records else None), counts


def _merge_shard_file(
    shard: str,
    path: str,
    touched: dict,
    inserts: list[tuple[int, dict]],
    opts: WriteOptions,
    published: str | None = None,
) -> None:
    """The Parquet shard of a touched member: the base shard `merge_shard`ed, written to `path`.

    Row group by row group: each of the base's groups is read, loses its touched rows, gains the
    inserts that sort into it (`inserts_by_group`) and is written as one group, so the shard keeps
    the build's cuts (groups bounded in rows and bytes) and memory holds one group, not the
    member's shard (the whole-shard copy was a quarter of an update's page faults); a group no
    change falls in is copied as bytes instead (splice.py: the same bytes). A shard whose
    ids are not ascending (not wikisnap's), or an empty one, is read whole and written as one group.
    BaseError naming `shard` when its md5 is not the `published` one, whatever else went wrong.
    """
    # Row groups no change falls in are copied as bytes (splice.py); a shard today's writer did
    # not write, or not laid out as wikisnap writes them, has every group decoded and encoded
    # (`_merge_shard_groups`). The md5 is taken in a thread beside (hashlib works without the
    # GIL); nothing of the merge is used unless it holds: the part is handed on when this returns.
    with ThreadPoolExecutor(1, thread_name_prefix="wikisnap-md5") as beside:
        checked = beside.submit(check_base_md5, shard, published)
        try:
            try:
                with _retaining_pool(), open_read(shard) as raw, open_read_arrow(shard) as f, open_write(path) as sink:
                    plan = splice_plan(pq.ParquetFile(f), touched, inserts)
                    splice_shard(raw, sink, plan, ARTICLE_SCHEMA, PARQUET_SETTINGS)
            except SpliceError:
                _merge_shard_groups(shard, path, touched, inserts)
        except Exception:
            checked.result()  # a damaged shard fails on its md5 first, naming what is wrong
            raise
        checked.result()


def _merge_shard_groups(shard: str, path: str, touched: dict, inserts: list[tuple[int, dict]]) -> None:
    """`_merge_shard_file` but the md5 check: the merged shard written to `path`."""
    with _retaining_pool():
        source = _shard_fragment(shard)
        ids = source.to_table(columns=["identifier"])["identifier"].to_pylist()
        if not ids or any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
            merged = merge_shard(source.to_table(schema=ARTICLE_SCHEMA), touched, inserts).combine_chunks()
            with open_write(path) as sink:
                pq.write_table(merged, sink, row_group_size=max(1, merged.num_rows), **PARQUET_SETTINGS)
            return
        groups = source.split_by_row_group()
        ends = itertools.accumulate(group.row_groups[0].num_rows for group in groups)
        lasts = [ids[end - 1] for end in ends]
        with open_write(path) as sink, pq.ParquetWriter(sink, ARTICLE_SCHEMA, **PARQUET_SETTINGS) as writer:
            for group, group_inserts in zip(groups, inserts_by_group(lasts, inserts), strict=True):
                rows = merge_shard(group.to_table(schema=ARTICLE_SCHEMA), touched, group_inserts)
                if rows.num_rows:
                    # one chunk per column: the bytes of the whole table made one chunk and cut here
                    writer.write_table(rows.combine_chunks(), row_group_size=rows.num_rows)
                del rows


def _shard_fragment(shard: str):
    """A base shard as an Arrow dataset fragment read with wikisnap's schema (a column an older
    shard lacks reads as nulls), row group by row group; a local file is read by Arrow itself."""
    local = local_path(shard)
    if local is not None:
        dataset = pads.dataset(local, format="parquet", schema=ARTICLE_SCHEMA)
    else:
        fs, p = fs_for(shard)
        dataset = pads.dataset(p, filesystem=fs, format="parquet", schema=ARTICLE_SCHEMA)
    return next(iter(dataset.get_fragments()))


def _rewrite_lines(
    task: MemberTask,
    opts: WriteOptions,
    gz_path: str,
    base: str,
    inserts: list[tuple[int, dict]],
    counts: dict,
    letters: list | None = None,
) -> tuple[MemberPart, int]:
    """The line pass of a touched member: its lines re-gzipped with the changes merged in (and its
    text shard and structured member fed); returns its part and line count."""
    snapshot, member, touched = task.snapshot, task.member, task.touched
    dbname, ns = snapshot.dbname, snapshot.ns
    pq_path = base + ".parquet" if "parquet" in opts.formats else None
    writer = GzipMemberWriter(gz_path, opts.gzip_level)
    # The plain-text shard is fed in the same pass (the member is decompressed once).
    text = TextShard(base + ".text.parquet", opts.site(dbname), opts) if opts.wants_text(ns) else None
    # the structured member is fed in the same pass too, from its own base member beside this one
    shard = new_structured_shard(base, opts) if opts.wants_structured(ns) else None
    merge = None
    if shard is not None:
        lines = base_structured_lines(snapshot, task.structured)
        merge = StructuredMerge(lines, ns, counts, letters if letters is not None else [])
    records, max_date, i = 0, "", 0
    copied = counter("records", ns, "copied")

    def put(line: bytes, date: str, record: dict | None, page_id: int) -> None:
        nonlocal records, max_date
        writer.write(line)
        records += 1
        max_date = max(max_date, date)
        if text is not None:
            text.add(record if record is not None else json.loads(line))
        if merge is not None:
            merge.page(shard, page_id, record)

    for line in _span_lines(snapshot.tarball, member):
        _name, page_id = line_head(line)
        while i < len(inserts) and inserts[i][0] < page_id:
            put(to_wme_json_bytes(inserts[i][1]), inserts[i][1].get("date_modified", ""), inserts[i][1], inserts[i][0])
            i += 1
        if page_id in touched:
            continue
        match = _DATE_KEY.search(line)
        put(line, match.group(1).decode() if match else "", None, page_id)
        counts[copied] += 1
    for pid, rec in inserts[i:]:
        put(to_wme_json_bytes(rec), rec.get("date_modified", ""), rec, pid)
    text_path = text.close() if text is not None else None
    size = writer.size
    writer.write(tar_padding(size))
    writer.close()
    part = MemberPart(dbname, ns, 0, member.index, size, records, gz_path, pq_path, max_date, text_path)
    if shard is not None:
        merge.finish()
        part = replace(part, structured=shard.close(part))
    return part, records


@contextlib.contextmanager
def _retaining_pool() -> Iterator[None]:
    """Arrow allocations of a touched shard (read, sliced, combined, written: ~3x its records) go
    through jemalloc when pyarrow has it, then the pool is handed back (the builders keep theirs).

    The default pool (mimalloc) returns freed pages to the kernel at once and takes fresh ones for
    the next buffers: 0.3-0.5 s of system time for the first 100 MB shard of the x50 benchmark
    against ~0.15 s with jemalloc, which keeps them for reuse. The bytes written are the same.
    The pool is process-wide and two touched members are merged at once: it is set by the first
    of them and handed back by the last (each one saving and restoring it would leave jemalloc).
    """
    global _POOL_USERS, _POOL_DEFAULT
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        yield
        return
    with _POOL_LOCK:
        if _POOL_USERS == 0:
            _POOL_DEFAULT = pa.default_memory_pool()
            pa.set_memory_pool(pool)
        _POOL_USERS += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL_USERS -= 1
            if _POOL_USERS == 0:
                pa.set_memory_pool(_POOL_DEFAULT)
                _POOL_DEFAULT = None


_POOL_LOCK = threading.Lock()
_POOL_USERS = 0  # touched shards being merged in jemalloc
_POOL_DEFAULT = None  # the pool to hand back when the last of them is done


def member_text(task: MemberTask, opts: WriteOptions, path: str, inserts: dict[int, dict]) -> str | None:
    """The plain-text shard of one output member (`--formats text`), or None when not wanted.

    An untouched member whose base has its text shard copies it as bytes; otherwise the shard is
    made from the member's records: the base lines (parsed) minus the touched pages, plus the
    changed records, in page-id order — the text of the updated revision. (`rewrite_member`
    feeds a touched member's shard in its own pass instead; this stays for tools and tests.)
    """
    if not opts.wants_text(task.snapshot.ns):
        return None
    if not task.touched and task.text_shard:
        copy_shard(task.text_shard, path, TEXT_SCHEMA, task.snapshot.published_md5(task.text_shard))
        return path
    shard = TextShard(path, opts.site(task.snapshot.dbname), opts)
    pending = sorted(inserts.items())
    i = 0
    for line in _span_lines(task.snapshot.tarball, task.member):
        _name, page_id = line_head(line)
        while i < len(pending) and pending[i][0] < page_id:
            shard.add(pending[i][1])
            i += 1
        if page_id in task.touched:
            continue
        shard.add(json.loads(line))
    for _pid, rec in pending[i:]:
        shard.add(rec)
    return shard.close()


def rewrite_members(
    snapshot: BaseSnapshot, changed: dict[int, dict | None], opts: WriteOptions
) -> tuple[list[MemberPart], dict[str, int]] | None:
    """`plan_members` + `rewrite_member` for every member, in one process (tests, tools)."""
    tasks = plan_members(snapshot, changed, opts)
    if tasks is None:
        return None
    parts, counts = [], {}
    for task in tasks:
        part, member_counts = rewrite_member(task, opts)
        if part is not None:
            parts.append(part)
        for name, n in member_counts.items():
            counts[name] = counts.get(name, 0) + n
    return parts, counts


def copy_snapshot(snapshot: BaseSnapshot, out_dir: str, structured: bool = False) -> list[OutputFile]:
    """A snapshot no diff touches: its tarball, metadata and Parquet shards copied as bytes
    (`structured`: its Structured Contents tarball, metadata and shards too)."""
    outputs = []
    sid = snapshot_id(snapshot.dbname, snapshot.ns)
    files = [("tarball", snapshot.tarball, join(out_dir, layout.tarball_name(snapshot.dbname, snapshot.ns)))]
    if snapshot.metadata:
        files.append(("metadata", snapshot.metadata, join(out_dir, layout.metadata_name(snapshot.dbname, snapshot.ns))))
    for path in snapshot.parquet:
        files.append(("parquet", path, join(layout.shard_dir(out_dir, layout.PARQUET, sid), path.rsplit("/", 1)[-1])))
    for path in snapshot.text:
        files.append(("text", path, join(layout.shard_dir(out_dir, layout.TEXT, sid), path.rsplit("/", 1)[-1])))
    if structured:
        tar, meta = layout.structured_paths(out_dir, snapshot.dbname, snapshot.ns)
        files.append(("structured-tarball", require_structured(snapshot).structured, tar))
        files.append(("structured-metadata", snapshot.structured_metadata, meta))
        shards = layout.shard_dir(out_dir, layout.STRUCTURED_PARQUET, sid)
        files += [("structured-parquet", p, join(shards, p.rsplit("/", 1)[-1])) for p in snapshot.structured_parquet]
    expected = None
    if snapshot.metadata:
        expected = json.loads(read_bytes(snapshot.metadata)).get("version")
    for kind, src, dst in files:
        published = snapshot.published_md5(src)
        if kind in SHARD_SCHEMAS and not shard_has_schema(src, SHARD_SCHEMAS[kind]):
            copy_shard(src, dst, SHARD_SCHEMAS[kind], published)  # an earlier wikisnap's types: converted
            md5, size = file_md5(dst)
            outputs.append(OutputFile(kind, snapshot.dbname, snapshot.ns, dst, size, md5, 0))
            continue
        digest, size = hashlib.md5(), 0
        with open_read(src) as f, open_write(dst) as g:
            while chunk := f.read(READ_SIZE):
                digest.update(chunk)  # hashed on the way: for the new manifest and against the base's
                size += len(chunk)
                g.write(chunk)
        md5 = digest.hexdigest()  # (the read-back then checks the copy on storage has these bytes)
        if published and md5 != published:
            remove_tree(dst)
            raise base_error(src, f"has md5 {md5} but the base's manifest says {published}: it is damaged")
        if kind == "tarball" and expected and md5 != expected:
            # Copied as bytes, never decompressed: its metadata's md5 is checked too (and it
            # comes first, so nothing else of the snapshot has been copied).
            remove_tree(dst)
            raise base_error(src, f"has md5 {md5} but its metadata {snapshot.metadata} says {expected}: it is damaged")
        outputs.append(OutputFile(kind, snapshot.dbname, snapshot.ns, dst, size, md5, 0))
    return outputs


class _PlanRewriteFn(beam.DoFn):
    """Per (db, ns): copy an untouched snapshot as files, or split it into member tasks."""

    def __init__(self, opts: WriteOptions):
        self.opts = opts

    def setup(self) -> None:
        self.c_files = Metrics.counter("wikisnap", "snapshots_copied_as_files")
        self.c_tasks = Metrics.counter("wikisnap", "member_tasks")
        self.c_slow = Metrics.counter("wikisnap", "snapshots_rewritten_line_by_line")
        self.c_errors = Metrics.counter("wikisnap", "base_errors")

    def process(self, element, blocked=()):
        try:
            yield from self._plan(element, blocked)
        except BaseError as exc:
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(exc))

    def _plan(self, element, blocked):
        (db, ns), groups = element
        snapshots = list(groups["base"])
        changed = dict(groups["changed"])
        layouts = list(groups.get("layout", ()))
        snapshot = snapshots[0] if snapshots else None
        if snapshot is None and not changed:
            return
        if not changed and self.opts.snapshot_date is None:
            # (With --date the metadata changes, so the members are copied and reassembled.)
            if snapshot is not None and not blocked:  # a failed run copies nothing into --out
                self.c_files.inc()
                structured = self.opts.wants_structured(ns)
                for out in copy_snapshot(snapshot, self.opts.out_dir, structured):
                    yield beam.pvalue.TaggedOutput(TAG_COPIED, out)
            return
        members = layouts[0] if layouts else None  # FindInBase's map; None: read the tarball for one
        tasks = plan_members(snapshot, changed, self.opts, members) if snapshot is not None else None
        if tasks is not None:
            self.c_tasks.inc(len(tasks))
            yield from tasks
            return
        # No base, or not wikisnap's layout: one line-by-line pass, cut by size like build.
        self.c_slow.inc()
        letters: list = []
        tarball = snapshot.tarball if snapshot else None
        parts, counts = rewrite_snapshot(db, ns, tarball, changed, self.opts, snapshot, letters)
        for letter in letters:
            yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, letter)
        for part in parts:
            yield beam.pvalue.TaggedOutput(TAG_PARTS, ((db, ns), part))
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))


# Touched members rewritten at once by one worker: each is a chain (inflate → merge → deflate) whose
# deflate is the longest link and cannot be cut (the bytes are one zlib stream), so two of them
# side by side keep two cores busy (zlib and Arrow work without the GIL) where one left the second
# core waiting: the rewrite's wall time was the sum of its touched members'.
MEMBER_THREADS = 2


class _RewriteMemberFn(PooledDoFn):
    """MemberTask → its part and counts. A touched member is rewritten on a pool of
    `MEMBER_THREADS` threads as soon as it comes (`PooledDoFn`); an untouched one is copied in
    `finish_bundle`, while the pool works, so no copy holds back the next touched member (0.3 s
    of the second one's start, of the x50 benchmark's update, went to the copy between them).
    Every output comes out in the order the tasks came."""

    threads = MEMBER_THREADS
    thread_name = "wikisnap-member"

    def __init__(self, opts: WriteOptions):
        self.opts = opts

    def setup(self) -> None:
        super().setup()
        self.c_copied = Metrics.counter("wikisnap", "members_copied")
        self.c_rewritten = Metrics.counter("wikisnap", "members_rewritten")
        self.c_errors = Metrics.counter("wikisnap", "base_errors")

    def process(self, task: MemberTask, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        (self.c_rewritten if task.touched else self.c_copied).inc()
        return super().process(task, timestamp, window)

    def pooled(self, task: MemberTask) -> bool:
        return bool(task.touched)

    def work(self, task: MemberTask):
        """`rewrite_member`: (part, counts, letters), or the BaseError it raised."""
        letters: list = []
        try:
            part, counts = rewrite_member(task, self.opts, letters)
        except BaseError as exc:
            return exc
        return part, counts, letters

    def outputs(self, task: MemberTask, result):
        if isinstance(result, BaseError):
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(result))
            return
        part, counts, letters = result
        for letter in letters:
            yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, letter)
        # after the member's files are written: a retry must write its own, and assembly take one copy
        faults.point(f"rewrite-member:{snapshot_id(task.snapshot.dbname, task.snapshot.ns)}-{task.member.index}")
        if part is not None:
            yield ((part.dbname, part.ns), part)
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((task.snapshot.dbname, name), n))


class RewriteSnapshots(beam.PTransform):
    """(BaseSnapshot, `((db, ns), (page_id, record|None))`) → dict(parts, copied, stats, errors, deadletters).

    parts: `((db, ns), MemberPart)` for AssembleSnapshots; copied: OutputFiles of untouched
    snapshots; stats: `((db, counter), n)`; errors: one message (str) per unreadable base
    tarball; deadletters: pages whose Structured Contents could not be extracted. Members are rewritten in parallel (Reshuffle first). `blocked` (optional, small):
    errors known before the rewrite; when it holds any, untouched snapshots are not copied.
    `layouts` (optional): FindInBase's member maps, one small element per scanned snapshot;
    a snapshot without one is read for its map here.
    """

    def __init__(self, opts: WriteOptions, blocked=None, layouts=None):
        super().__init__()
        self.opts = opts
        self.blocked = blocked
        self.layouts = layouts

    def expand(self, pcolls):
        snapshots, changed = pcolls
        keyed = snapshots | "KeySnapshots" >> beam.Map(lambda s: ((s.dbname, s.ns), s))
        groups = {"base": keyed, "changed": changed}
        if self.layouts is not None:
            groups["layout"] = self.layouts
        planned = (
            groups
            | "GroupBySnapshot" >> beam.CoGroupByKey()
            | "PlanMembers"
            >> beam.ParDo(
                _PlanRewriteFn(self.opts),
                **({"blocked": beam.pvalue.AsList(self.blocked)} if self.blocked is not None else {}),
            ).with_outputs(TAG_COPIED, TAG_STATS, TAG_PARTS, TAG_ERRORS, TAG_DEADLETTERS, main="tasks")
        )
        rewritten = (
            planned.tasks
            | "SpreadMembers" >> beam.Reshuffle()
            | "CopyOrRewriteMembers"
            >> beam.ParDo(_RewriteMemberFn(self.opts))
            .with_output_types(tuple[tuple[str, int], MemberPart])
            .with_outputs(TAG_STATS, TAG_ERRORS, TAG_DEADLETTERS, main=TAG_PARTS)
        )
        parts = (
            (planned[TAG_PARTS], rewritten[TAG_PARTS])
            | "FlattenParts" >> beam.Flatten()
            | "TypeParts" >> beam.Map(lambda kv: kv).with_output_types(tuple[tuple[str, int], MemberPart])
        )
        stats = (planned[TAG_STATS], rewritten[TAG_STATS]) | "FlattenRewriteCounts" >> beam.Flatten()
        errors = (planned[TAG_ERRORS], rewritten[TAG_ERRORS]) | "FlattenBaseErrors" >> beam.Flatten()
        letters = (planned[TAG_DEADLETTERS], rewritten[TAG_DEADLETTERS]) | "FlattenRewriteLetters" >> beam.Flatten()
        return {
            TAG_PARTS: parts,
            TAG_COPIED: planned[TAG_COPIED],
            TAG_STATS: stats,
            TAG_ERRORS: errors,
            TAG_DEADLETTERS: letters,
        }
