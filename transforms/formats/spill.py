"""Spill runs: parsed records sorted by page id in compressed frames on temp storage, and their merge.

Readers hold at most `--spill-mb` of records (`SpillBuffer`) and write them as sorted runs per
(db, ns, page-id bucket); writers k-way merge a bucket's runs holding one small frame per run, so
memory stays flat as dumps grow (see docs/ARCHITECTURE.md for why files and not shuffles).
"""

from __future__ import annotations

import heapq
import pickle
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pyarrow as pa

from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import open_read, open_write, remove_files
from wikisnap.transforms.formats.layout import new_attempt
from wikisnap.transforms.formats.offload import Offload, helper_thread

_FRAME = struct.Struct("<II")  # compressed length, raw length
# Bytes of pickled records per spill frame. A merge holds one decoded frame per run, so this times
# the runs of a bucket is the writer's merge memory: small frames keep it flat as inputs grow
# (enwiki's biggest buckets, ~100 runs of 16 MB: ~13 MB).
_FRAME_TARGET = 64 << 10
_CODEC = "zstd"
# Pickled bytes per piece of a run: a run is written as pieces (files) of page-id ranges one after
# another, each ending in a frame that names the next, so a consuming merge frees temp storage a
# piece at a time (~2.5 MB on disk) instead of a whole run (a spill budget, ~5 MB) at its end.
_PIECE_TARGET = 8 << 20
_NEXT_PIECE = 0  # a frame header with this compressed length: the run goes on in piece `raw length`
# The most runs one merge reads at once. A bucket's redirect-list, enrichment and HTML runs and a
# join partition's runs come from every spill of the whole input (their items arrive in hash
# order, not page order), so their number grows with it: ≈ 420 enrichment runs per bucket at 3 M
# enwiki-shaped pages, at ~0.15 MB each (two frames) +69 MB of peak RSS. Past this many, runs are
# merged in groups first (`_premerge`), so a merge's memory no longer grows with the input.
MERGE_FAN_IN = 32


# -- spill runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpillRun:
    """One sorted run of records of one (db, namespace, bucket), written by one work unit."""

    dbname: str
    ns: int
    bucket: int
    path: str
    records: int
    source: str = ""  # the input file the unit read (named by same-revision conflicts)


# The UTF-8 of the last wikitext `remember_utf8` was given, per thread: `page_to_article` encodes
# the text for its size, and `pack_record` then reuses those bytes instead of pickling the str
# (which encodes it again: ~30 µs of a 50 kB enwiki page). Keyed by identity, holding the str.
_last_utf8 = threading.local()
# A record packed with its wikitext apart: this byte, the pickled record's length, the pickled
# record (its wikitext None), then the wikitext's UTF-8. A pickle starts with PROTO (0x80).
_SPLIT = b"W"
_SPLIT_HEAD = struct.Struct("<cI")


def remember_utf8(text: str, utf8: bytes) -> None:
    """Note that `utf8` is `text.encode("utf-8")`, for the `pack_record` of the record holding `text`."""
    _last_utf8.value = (text, utf8)


def pack_record(record: dict) -> bytes:
    """A record as the compact bytes a spill buffer holds (a third of its size as Python objects).

    A record whose `article_body.wikitext` was just given to `remember_utf8` on this thread is
    packed with those bytes beside it (`_SPLIT`); any other as one pickle. `unpack_record` reads both.
    """
    body = record.get("article_body")
    if type(body) is dict:
        last = getattr(_last_utf8, "value", None)
        if last is not None and body.get("wikitext") is last[0]:
            _last_utf8.value = None  # a page's text and bytes are not held past its record
            shell = dict(record)
            shell["article_body"] = {**body, "wikitext": None}
            head = pickle.dumps(shell, protocol=pickle.HIGHEST_PROTOCOL)
            return b"".join((_SPLIT_HEAD.pack(_SPLIT, len(head)), head, last[1]))
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_record(blob: bytes):
    """The value `pack_record` (or a plain pickle) packed into `blob`; a new dict each call."""
    if blob[:1] != _SPLIT:
        return pickle.loads(blob)
    _, size = _SPLIT_HEAD.unpack_from(blob)
    start = _SPLIT_HEAD.size
    view = memoryview(blob)
    record = pickle.loads(view[start : start + size])
    # keys keep their order: the wikitext goes back into the slot it was packed in
    record["article_body"]["wikitext"] = str(view[start + size :], "utf-8")
    return record


def write_run(path: str, items: list[tuple[int, int, dict | bytes]], offload: Offload | None = None) -> None:
    """Write `(page_id, rev_id, record)` items, sorted, as zstd frames of pickled records.

    A record is a dict or already `pack_record`ed bytes. A frame is a pickled list of
    `(page_id, rev_id, packed record)`; records are unpacked one at a time when read. With an
    `offload`, frames are compressed and written by its thread: the run is complete once that
    thread has got past it (`Offload.wait`).
    """
    items.sort(key=_newest_first)
    packed = ((p, r, record if isinstance(record, bytes) else pack_record(record)) for p, r, record in items)
    _write_sorted(path, packed, _record_size, offload)


def _newest_first(item: tuple) -> tuple[int, int]:
    """A record run's order: page id, then newest revision first."""
    return item[0], -item[1]


def _record_size(item: tuple[int, int, bytes]) -> int:
    return len(item[2])


def _keyed_size(item: tuple[bytes, int, bytes]) -> int:
    return len(item[0]) + len(item[2]) + 16


def _write_sorted(path: str, items: Iterable[tuple], size_of, offload: Offload | None = None) -> int:
    """Write items already in run order as frames of about `_FRAME_TARGET` bytes (`size_of(item)`
    each), in pieces of about `_PIECE_TARGET`; returns how many were written. With an `offload`,
    as in `write_run`."""
    out = open_write(path)
    written = 0
    try:
        batch: list[tuple] = []
        size = piece_size = 0
        pieces = 1
        for item in items:
            if piece_size >= _PIECE_TARGET and not batch:  # the next piece starts on a frame boundary
                nxt = open_write(piece_path(path, pieces))
                _send(offload, _end_piece, out, pieces)
                out, pieces, piece_size = nxt, pieces + 1, 0
            batch.append(item)
            n = size_of(item)
            size += n
            piece_size += n
            written += 1
            if size >= _FRAME_TARGET:
                _send_frame(out, batch, offload)
                batch, size = [], 0
        if batch:
            _send_frame(out, batch, offload)
    except BaseException:
        out.close()
        raise
    _send(offload, out.close)
    return written


def piece_path(path: str, piece: int) -> str:
    """Piece `piece` of the run at `path` (piece 0 is `path` itself)."""
    return path if piece == 0 else f"{path}.{piece}"


def _send(offload: Offload | None, fn, *args) -> None:
    """`fn(*args)` now, or in order on the offload thread."""
    if offload is None:
        fn(*args)
    else:
        offload.submit(fn, *args)


def _end_piece(out, next_piece: int) -> None:
    out.write(_FRAME.pack(_NEXT_PIECE, next_piece))
    out.close()


def _send_frame(out, batch: list, offload: Offload | None) -> None:
    _send(offload, _write_frame, out, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))


def _write_frame(out, raw: bytes) -> None:
    packed = pa.compress(raw, codec=_CODEC, asbytes=True)
    out.write(_FRAME.pack(len(packed), len(raw)))
    out.write(packed)


def iter_run(path: str) -> Iterator[tuple[int, int, dict]]:
    """Stream the items of one spill run, one frame in memory at a time (as bytes)."""
    for page_id, rev_id, blob in _iter_packed(path):
        yield page_id, rev_id, unpack_record(blob)


def _iter_packed(path: str, consume: bool = False, ahead: bool = False) -> Iterator[tuple[int, int, bytes]]:
    """The items of one spill run with each record still packed (`pack_record` bytes), in order,
    one frame in memory at a time, piece after piece (`write_run`).

    `consume=True` removes each piece once its last frame is read (see `merge_runs`).
    `ahead=True`: the next frame is read and decompressed on a helper thread (file reads and zstd
    release the GIL) while the caller works through this one: a bucket writer's merge then costs
    its own thread only the unpickling. One frame more per run waits in memory.
    """
    piece = {"path": path, "file": open_read(path)}
    try:

        def next_frame() -> bytes | None:
            while True:
                head = piece["file"].read(_FRAME.size)
                if not head:
                    return None
                if len(head) != _FRAME.size:
                    raise OSError(f"{piece['path']}: spill run truncated")
                packed_len, raw_len = _FRAME.unpack(head)
                if packed_len != _NEXT_PIECE:
                    packed = piece["file"].read(packed_len)
                    return pa.decompress(packed, decompressed_size=raw_len, codec=_CODEC, asbytes=True)
                piece["file"].close()  # the run goes on in the next piece: this one is done
                if consume:
                    remove_files([piece["path"]])
                piece["path"] = piece_path(path, raw_len)
                piece["file"] = open_read(piece["path"])

        if not ahead:
            while (raw := next_frame()) is not None:
                frame = pickle.loads(raw)
                del raw
                yield from frame
        else:
            yield from _frames_ahead(next_frame)
        piece["file"].close()
        if consume:
            remove_files([piece["path"]])
    finally:
        piece["file"].close()


def _frames_ahead(next_frame) -> Iterator[tuple[int, int, bytes]]:
    """The items of the frames `next_frame()` returns (None at the end), each next frame read
    on a helper thread while the caller works through the one before."""
    helper = helper_thread("merge-read")
    pending = helper.submit(next_frame)
    try:
        while (raw := pending.result()) is not None:
            pending = helper.submit(next_frame)
            frame = pickle.loads(raw)
            del raw
            yield from frame
        pending = None
    finally:
        if pending is not None:  # left early (an error, a merge given up): the file stays open
            pending.cancel()  # until the helper is done with it
            try:
                pending.result()
            except BaseException:  # noqa: BLE001 - the reason the merge stopped is raised already
                pass


def merge_runs(paths: Iterable[str], with_source: bool = False, consume: bool = False) -> Iterator[tuple]:
    """K-way merge of sorted runs by (page id, newest revision first) → `(page_id, rev_id, record)`.

    `with_source=True` adds the path of the run each item came from: `(page_id, rev_id, record, path)`.
    Each run's head waits packed and is unpacked once it comes out: a bucket of the 10x corpus
    merges ~80 runs, and 80 long articles as dicts were ~10 MB of the writer's memory.
    `consume=True` removes each run as soon as the merge has taken its last item: runs of a
    dump's units cover page-id ranges one after the other, so a bucket's runs go one by one while
    its members are written, and temp storage holds the written members plus about one run, not
    every run beside every member (a single-bucket snapshot: 1.8x its output at 100 k pages).
    Only where a failed bundle fails the run instead of being retried (the pinned local engine):
    a retry would need the runs.

    More than `MERGE_FAN_IN` runs are first merged in groups (`_premerge`), except with
    `with_source` (a merged run no longer knows its items' sources): the records' runs of a bucket
    are bounded by the bucket's size, since units read page-id ranges in order, but redirect-list,
    enrichment and HTML runs come from every spill of the whole input. Items of equal order come
    out in the order of their runs' sorted paths either way.
    """
    paths = sorted(paths)
    made: set[str] = set()
    if not with_source:
        paths, made = _premerge(paths, _newest_first, _record_size, consume)

    def tagged(path: str):
        for page_id, rev_id, blob in _iter_packed(path, consume, ahead=True):
            yield page_id, rev_id, blob, path

    runs = [tagged(p) if with_source else _iter_packed(p, consume or p in made, ahead=True) for p in paths]
    merged = heapq.merge(*runs, key=_newest_first)
    if with_source:
        return ((page_id, rev_id, unpack_record(blob), path) for page_id, rev_id, blob, path in merged)
    return ((page_id, rev_id, unpack_record(blob)) for page_id, rev_id, blob in merged)


def _premerge(paths: list[str], key, size_of, consume: bool, fan_in: int | None = None) -> tuple[list[str], set[str]]:
    """Runs `paths` (in merge order) cut down to at most `fan_in` (default `MERGE_FAN_IN`) runs
    holding the same items, by merging contiguous groups into runs beside them (an external
    sort's extra pass, repeated while still too many) → `(runs in merge order, runs made here)`.

    A merge holds about two frames per run (the current one unpickled and the next read ahead),
    so memory is bounded by the fan-in, not by how many spills the input took. The runs made here
    are removed as they are merged, whatever `consume` (which is for the given runs). Groups are
    contiguous and merges stable, so items of equal order keep their runs' order.
    """
    fan_in = fan_in or MERGE_FAN_IN
    made: set[str] = set()
    level = 0
    while len(paths) > fan_in:
        level += 1
        attempt = new_attempt()  # a retried bundle's merged runs do not meet a first attempt's
        groups = -(-len(paths) // fan_in)
        merged = []
        offload = Offload("premerge", depth=4)
        try:
            for g in range(groups):
                group = paths[g * len(paths) // groups : (g + 1) * len(paths) // groups]
                out = layout.merged_run_path(group[0], level, attempt)
                streams = [_iter_packed(p, consume or p in made, ahead=True) for p in group]
                _write_sorted(out, heapq.merge(*streams, key=key), size_of, offload)
                merged.append(out)
                made.add(out)
        finally:
            offload.close()
        paths = merged
    return paths, made


def _malloc_trim():
    """glibc's `malloc_trim`, or None elsewhere (macOS, musl without it, Windows)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc only; a few ms).

    A spill buffer frees ~`--spill-mb` of pickled records at every flush; glibc keeps the freed
    chunks, scattered between live ones, and the RSS would creep up with the dump's size. A
    bucket writer calls it too before it starts: the read phase's last pages, bz2 threads and
    spill helpers left 35 MB in the allocator's arenas on the x10 corpus (9 MB on x1), under the
    write phase's peak.
    """
    if _TRIM is not None:
        _TRIM(0)


class SpillBuffer:
    """Buffers a work unit's records per (db, ns, bucket) and spills sorted runs past a byte budget.

    A spill past the budget is compressed and written by a background thread (`Offload`) while
    the reader goes on parsing: zstd releases the GIL, and the reader's core was the busy one.
    `add` returns the runs of the spill before (complete on storage by then), `flush` spills the
    rest and returns every run not yet returned once all are complete.
    """

    def __init__(
        self, temp_dir: str, unit_name: str, bucket_span: int, budget_bytes: int, source: str = "", attempt: str = ""
    ):
        self.source = source
        self.temp_dir = temp_dir
        self.unit_name = unit_name
        # runs of a retried unit get new names: the writer reads only those its elements name
        self.prefix = f"{unit_name}-{attempt}" if attempt else unit_name
        self.bucket_span = bucket_span
        self.budget = budget_bytes
        self.buffers: dict[tuple[str, int, int], list[tuple[int, int, bytes]]] = {}
        self.buffered = 0
        self.sequence = 0
        self.runs: list[SpillRun] = []
        self._queued: list[SpillRun] = []  # being written by the thread, not yet returned
        self._offload: Offload | None = None

    def add(self, dbname: str, ns: int, page_id: int, rev_id: int, record: dict) -> list[SpillRun]:
        """Add one record; returns the runs now complete on storage if the budget was passed (else []).

        The record waits pickled: the budget is then the memory it takes.
        """
        return self.add_to((dbname, ns, page_id // self.bucket_span), page_id, rev_id, record)

    def add_to(self, key: tuple[str, int, int], page_id: int, rev_id: int, record) -> list[SpillRun]:
        """`add` with the (db, ns, bucket) given: items already keyed by bucket upstream (`record`
        may come packed: bytes of a pickled value)."""
        blob = record if isinstance(record, bytes) else pack_record(record)
        self.buffers.setdefault(key, []).append((page_id, rev_id, blob))
        self.buffered += len(blob) + 100
        if self.buffered >= self.budget:
            return self._spill(final=False)
        return []

    def flush(self) -> list[SpillRun]:
        """Spill what waits; returns every run not returned yet, all complete on storage."""
        return self._spill(final=True)

    def _spill(self, final: bool) -> list[SpillRun]:
        if self._offload is None:
            # a frame is ~64 KB: a budget's worth may wait for the thread (memory stays 2 budgets)
            self._offload = Offload("spill", depth=max(4, self.budget // _FRAME_TARGET))
        self._offload.wait()  # the runs queued at the last spill are on storage now
        done, self._queued = self._queued, []
        for (dbname, ns, bucket), items in sorted(self.buffers.items()):
            path = layout.spill_run_path(self.temp_dir, dbname, ns, bucket, self.prefix, self.sequence)
            write_run(path, items, self._offload)
            self._queued.append(SpillRun(dbname, ns, bucket, path, len(items), self.source))
        self.buffers.clear()
        self.buffered = 0
        self.sequence += 1
        if final:
            offload, self._offload = self._offload, None
            offload.close()
            done += self._queued
            self._queued = []
        release_freed_memory()
        self.runs.extend(done)
        return done


# -- keyed runs: the spilled shuffle of a join (transforms/spilljoin.py) ----------------------


def write_keyed_run(path: str, items: list[tuple[bytes, int, bytes]]) -> int:
    """Write `(key, tag, value)` items sorted by all three (bytes, int, bytes) as zstd frames.

    Keys and values are already encoded (pickled); sorting the encoded bytes gives one order
    whatever order the items came in, so a merge of runs is deterministic. Returns the items written.
    """
    items.sort()
    return _write_sorted(path, items, _keyed_size)


def merge_keyed_runs(paths: Iterable[str], consume: bool = False) -> Iterator[tuple[bytes, int, bytes]]:
    """K-way merge of keyed runs → `(key, tag, value)` in (key, tag, value) order, about two frames
    per run in memory; more than `MERGE_FAN_IN` runs are merged in groups first (`_premerge`:
    a partition gets a run from every spill of the whole input). `consume=True` removes the given
    runs as they are merged (see `merge_runs`)."""
    paths, made = _premerge(sorted(paths), None, _keyed_size, consume)
    return heapq.merge(*(_iter_packed(p, consume or p in made, ahead=True) for p in paths))
