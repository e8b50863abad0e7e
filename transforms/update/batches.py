"""WME hourly batches: `batches/{YYYY-MM-DD}/{HH}/{db}_namespace_{ns}.tar.gz` + `.json`.

Each batch holds the `update` and `delete` records of the changes whose time falls in that UTC
hour (OUTPUT-FORMAT.md §3), sorted by (time, page id, update before delete); a page may appear
more than once. A batch is diff-sized, so it is built in memory and written in one go: NDJSON
members (cut at the member size) each as one gzip member, then the end-of-archive blocks — the
same deterministic tar.gz shape as the snapshots (mtime = the hour, never the clock).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import write_bytes_atomic
from wikisnap.transforms.formats.layout import snapshot_id
from wikisnap.transforms.formats.tarball import TAR_BLOCK, gzip_member, tar_header, tar_padding
from wikisnap.transforms.update.fold import BatchEntry
from wikisnap.transforms.write import OutputFile, epoch_seconds, snapshot_metadata


def batch_dir(time: str) -> str:
    """`2023-07-29T07:51:39Z` → `2023-07-29/07`."""
    return f"{time[:10]}/{time[11:13]}"


def batch_tarball(sid: str, lines: list[bytes], member_bytes: int, mtime: int, level: int = 3) -> bytes:
    """The bytes of a batch tarball holding `lines` in members `{sid}_{n}.ndjson`."""
    members: list[list[bytes]] = []
    size = 0
    for line in lines:
        if not members or (size and size + len(line) > member_bytes):
            members.append([])
            size = 0
        members[-1].append(line)
        size += len(line)
    chunks = []
    for n, member in enumerate(members):
        data = b"".join(member)
        chunks.append(gzip_member(tar_header(f"{sid}_{n}.ndjson", len(data), mtime), level))
        chunks.append(gzip_member(data + tar_padding(len(data)), level))
    chunks.append(gzip_member(b"\0" * (2 * TAR_BLOCK), level))
    return b"".join(chunks)


def write_batch(
    out_dir: str,
    hour: str,
    dbname: str,
    ns: int,
    entries: Iterable[BatchEntry],
    lang: str,
    member_bytes: int,
    level: int,
) -> list[OutputFile]:
    """Write one hourly batch (tarball + metadata); returns the two OutputFiles."""
    import hashlib

    ordered = sorted(entries, key=BatchEntry.sort_key)
    sid = snapshot_id(dbname, ns)
    mtime = epoch_seconds(f"{hour[:10]}T{hour[11:13]}:00:00")
    data = batch_tarball(sid, [e.line for e in ordered], member_bytes, mtime, level)
    md5 = hashlib.md5(data).hexdigest()
    tar_path, meta_path = layout.batch_paths(out_dir, hour, sid)
    write_bytes_atomic(tar_path, data)
    meta = snapshot_metadata(dbname, ns, lang, md5, len(data), max(e.time for e in ordered))
    meta_bytes = (json.dumps(meta, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    write_bytes_atomic(meta_path, meta_bytes)
    return [
        OutputFile("batch", dbname, ns, tar_path, len(data), md5, len(ordered)),
        OutputFile("batch-metadata", dbname, ns, meta_path, len(meta_bytes), hashlib.md5(meta_bytes).hexdigest(), 0),
    ]


class _WriteBatchFn(beam.DoFn):
    def __init__(self, out_dir: str, languages: dict[str, str], member_bytes: int, level: int):
        self.out_dir = out_dir
        self.languages = languages
        self.member_bytes = member_bytes
        self.level = level

    def setup(self) -> None:
        self.c_batches = Metrics.counter("wikisnap", "batches_written")

    def process(self, element):
        (hour, dbname, ns), entries = element
        self.c_batches.inc()
        yield from write_batch(
            self.out_dir, hour, dbname, ns, entries, self.languages.get(dbname, ""), self.member_bytes, self.level
        )


class WriteBatches(beam.PTransform):
    """BatchEntry → one tarball + metadata per (hour, db, ns) → OutputFile."""

    def __init__(self, out_dir: str, languages: dict[str, str], member_bytes: int, level: int = 3):
        super().__init__()
        self.out_dir = out_dir
        self.languages = languages
        self.member_bytes = member_bytes
        self.level = level

    def expand(self, entries):
        return (
            entries
            | "KeyByHour" >> beam.Map(lambda e: ((batch_dir(e.time), e.dbname, e.ns), e))
            | "GroupByHour" >> beam.GroupByKey()
            | "WriteBatchFiles"
            >> beam.ParDo(_WriteBatchFn(self.out_dir, self.languages, self.member_bytes, self.level))
        )
