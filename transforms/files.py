"""File plumbing for the snapshot writer: spill runs, NDJSON members, tar.gz assembly.

Why files and not shuffles for article bodies: Beam's local runner keeps every shuffled element
in memory, so a snapshot the size of enwiki cannot pass through a GroupByKey on one machine.
Parsed records therefore go to compressed *spill runs* (sorted by page id) under the run's temp
folder, and only small descriptors are shuffled. A writer then merges the runs of one page-id
bucket, cuts NDJSON members at the size limit and gzips them in parallel with other buckets; the
final tarball is a concatenation of those gzip members (gzip members concatenate into a valid
gzip stream), so nothing is recompressed by a single process.

Everything goes through fsspec, so temp and output folders may be local paths or bucket URLs.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import os
import pickle
import struct
import tarfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from wikisnap import faults
from wikisnap.transforms.codecs import gzip_compressor

_FRAME = struct.Struct("<II")  # compressed length, raw length
# Bytes of pickled records per spill frame. A merge holds one decoded frame per run, so this times
# the runs of a bucket is the writer's merge memory: small frames keep it flat as inputs grow
# (enwiki's biggest buckets, ~100 runs of 16 MB: ~13 MB).
_FRAME_TARGET = 64 << 10
_CODEC = "zstd"
TAR_BLOCK = 512


def fs_for(path: str):
    """`(filesystem, path within it)` for a local path or URL."""
    return fsspec.core.url_to_fs(path)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def makedirs(path: str) -> None:
    fs, p = fs_for(path)
    fs.makedirs(p, exist_ok=True)


def open_write(path: str):
    """Open `path` for binary writing, creating parent folders.

    An OSError while writing or closing names `path`: a full disk must say which file and disk.
    """
    fs, p = fs_for(path)
    parent = p.rsplit("/", 1)[0]
    try:
        if parent and parent != p:
            fs.makedirs(parent, exist_ok=True)
        return _NamedWriter(fs.open(p, "wb"), path)
    except OSError as exc:
        raise _named(exc, path) from None


def _named(exc: OSError, path: str) -> OSError:
    if exc.filename or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, path)


class _NamedWriter:
    """A writable file whose OSErrors carry its path (fsspec's local files leave it out)."""

    def __init__(self, f, path: str):
        self._f = f
        self.path = path

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            raise _named(exc, self.path) from None

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as exc:
            raise _named(exc, self.path) from None

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_read(path: str):
    fs, p = fs_for(path)
    return fs.open(p, "rb")


def local_path(path: str) -> str | None:
    """The OS path of a local file (plain or `file://`), None for any other filesystem."""
    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
    except (ValueError, ImportError):
        return None
    return fs_path if isinstance(fs, LocalFileSystem) else None


def open_read_arrow(path: str):
    """`open_read` for Arrow's readers (Parquet): a local file is opened by Arrow itself.

    On a Python file object Arrow calls back into Python, taking the GIL, for every read, so a
    shard read beside a busy thread (an update's md5 of its base, a touched member's line pass)
    queues behind it; Arrow's own file needs no GIL. Other filesystems go through fsspec.
    """
    local = local_path(path)
    return pa.OSFile(local, "rb") if local is not None else open_read(path)


def remove_tree(path: str) -> None:
    fs, p = fs_for(path)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def remove_empty_dir(path: str) -> None:
    """Remove folder `path` if it exists and is empty (a shared temp root other runs may use)."""
    fs, p = fs_for(path)
    try:
        if fs.exists(p) and not fs.ls(p):
            fs.rmdir(p)
    except OSError:
        pass


def move(src: str, dst: str) -> None:
    fs, s = fs_for(src)
    _, d = fs_for(dst)
    parent = d.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.mv(s, d)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write `path` through a uniquely named sibling and a rename, so a reader (or a retried or
    duplicate attempt writing the same file) never sees a half-written file."""
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    write_bytes(tmp, data)
    move(tmp, path)


def move_once(src: str, dst: str) -> None:
    """Move `src` to `dst`; a retry that finds `src` gone and `dst` there finds the move done."""
    fs, s = fs_for(src)
    if fs.exists(s):
        move(src, dst)
        return
    _, d = fs_for(dst)
    if not fs.exists(d):
        raise FileNotFoundError(f"{src}: missing, and {dst} was not moved there by an earlier attempt")


# -- attempts ------------------------------------------------------------------------------
#
# Engines (Flink, Spark, Dataflow) retry a failed bundle and may run one twice at the same time.
# Every file a step writes outside Beam's data flow is therefore named per *attempt* (a random
# id drawn when the attempt starts), and downstream steps take exactly the files named in the
# elements they receive — those of the one attempt whose output the engine committed. Files of
# superseded attempts are left in the temp folder and go with it. Each attempt also leaves a
# marker, so the attempt that succeeds can count the attempts before it: Beam drops the metrics
# of failed bundles, but these markers survive them.


def new_attempt() -> str:
    """A fresh attempt id (8 hex digits) for one execution of one unit of work."""
    return uuid.uuid4().hex[:8]


def mark_attempt(temp_dir: str, step: str, name: str, attempt: str) -> None:
    """Leave `attempts/{step}/{name}/{attempt}` under the temp folder."""
    write_bytes(join(temp_dir, "attempts", step, name, attempt), b"")


def count_attempts(temp_dir: str, step: str, name: str) -> int:
    """How many attempts of (step, name) have started so far (markers left by `mark_attempt`)."""
    fs, p = fs_for(join(temp_dir, "attempts", step, name))
    return len(fs.ls(p, detail=False)) if fs.exists(p) else 0


# -- a second thread for the work that releases the GIL -----------------------------------


_HELPERS = threading.local()


def _helper_thread(name: str) -> ThreadPoolExecutor:
    """The calling thread's own helper thread for `name` work, made once and kept.

    Kept because Arrow's allocator (mimalloc) gives each thread its own heap: a helper thread per
    Parquet file left a heap behind with every file (+30 MB over the 10x corpus's writes). Per
    calling thread, because an engine's bundle threads (a Dataflow worker runs a dozen) must not
    queue behind one another's compression.
    """
    helpers = getattr(_HELPERS, "threads", None)
    if helpers is None:
        helpers = _HELPERS.threads = {}
    pid, pool = helpers.get(name, (None, None))
    if pid != os.getpid():  # none yet, or inherited through a fork (the thread itself was not)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wikisnap-{name}")
        helpers[name] = (os.getpid(), pool)
    return pool


class Offload:
    """Runs calls that release the GIL (ISA-L and zlib compression, Arrow's Parquet encoder, file
    writes) on a helper thread, in the order they were submitted.

    A writer's own thread spends its time in Python (merging runs, WME JSON, Arrow rows), and the
    other core sat idle through the write phase while compression and Parquet encoding ran after
    each piece of it; on the helper they run beside it. One helper thread and submission order
    keep the bytes those of the same calls made in line. At most `depth` calls wait (memory stays
    that many chunks); a call's error re-raises in the caller at the next `submit`, `wait` or
    `close`. Offloads of one `name` made on one thread share its helper (`_helper_thread`).
    """

    def __init__(self, name: str, depth: int = 2):
        self._pool = _helper_thread(name)
        self._pending: deque[Future] = deque()
        self._depth = depth

    def submit(self, fn: Callable[..., object], *args) -> None:
        """Queue `fn(*args)`; blocks while `depth` calls already wait."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Block until every queued call has run; re-raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """`wait`; after a failed call, the calls queued behind it are dropped."""
        try:
            self.wait()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()


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


def pack_record(record: dict) -> bytes:
    """A record as the compact bytes a spill buffer holds (a third of its size as Python objects)."""
    return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)


def write_run(path: str, items: list[tuple[int, int, dict | bytes]], offload: Offload | None = None) -> None:
    """Write `(page_id, rev_id, record)` items, sorted, as zstd frames of pickled records.

    A record is a dict or already `pack_record`ed bytes. A frame is a pickled list of
    `(page_id, rev_id, packed record)`; records are unpacked one at a time when read. With an
    `offload`, frames are compressed and written by its thread: the run is complete once that
    thread has got past it (`Offload.wait`).
    """
    items.sort(key=lambda item: (item[0], -item[1]))
    out = open_write(path)
    try:
        batch: list[tuple[int, int, bytes]] = []
        size = 0
        for page_id, rev_id, record in items:
            blob = record if isinstance(record, bytes) else pack_record(record)
            batch.append((page_id, rev_id, blob))
            size += len(blob)
            if size >= _FRAME_TARGET:
                _send_frame(out, batch, offload)
                batch, size = [], 0
        if batch:
            _send_frame(out, batch, offload)
    except BaseException:
        out.close()
        raise
    if offload is None:
        out.close()
    else:
        offload.submit(out.close)


def _send_frame(out, batch: list, offload: Offload | None) -> None:
    raw = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    if offload is None:
        _write_frame(out, raw)
    else:
        offload.submit(_write_frame, out, raw)


def _write_frame(out, raw: bytes) -> None:
    packed = pa.compress(raw, codec=_CODEC, asbytes=True)
    out.write(_FRAME.pack(len(packed), len(raw)))
    out.write(packed)


def iter_run(path: str) -> Iterator[tuple[int, int, dict]]:
    """Stream the items of one spill run, one frame in memory at a time (as bytes)."""
    for page_id, rev_id, blob in _iter_packed(path):
        yield page_id, rev_id, pickle.loads(blob)


def _iter_packed(path: str) -> Iterator[tuple[int, int, bytes]]:
    """The items of one spill run with each record still packed (`pack_record` bytes)."""
    with open_read(path) as f:
        while True:
            head = f.read(_FRAME.size)
            if not head:
                return
            if len(head) != _FRAME.size:
                raise OSError(f"{path}: spill run truncated")
            packed_len, raw_len = _FRAME.unpack(head)
            packed = f.read(packed_len)
            raw = pa.decompress(packed, decompressed_size=raw_len, codec=_CODEC, asbytes=True)
            frame = pickle.loads(raw)
            del raw, packed
            yield from frame


def merge_runs(paths: Iterable[str], with_source: bool = False) -> Iterator[tuple]:
    """K-way merge of sorted runs by (page id, newest revision first) → `(page_id, rev_id, record)`.

    `with_source=True` adds the path of the run each item came from: `(page_id, rev_id, record, path)`.
    Each run's head waits packed and is unpacked once it comes out: a bucket of the 10x corpus
    merges ~80 runs, and 80 long articles as dicts were ~10 MB of the writer's memory.
    """

    def tagged(path: str):
        for page_id, rev_id, blob in _iter_packed(path):
            yield page_id, rev_id, blob, path

    runs = [tagged(p) if with_source else _iter_packed(p) for p in sorted(paths)]
    merged = heapq.merge(*runs, key=lambda item: (item[0], -item[1]))
    if with_source:
        return ((page_id, rev_id, pickle.loads(blob), path) for page_id, rev_id, blob, path in merged)
    return ((page_id, rev_id, pickle.loads(blob)) for page_id, rev_id, blob in merged)


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
        key = (dbname, ns, page_id // self.bucket_span)
        blob = pack_record(record)
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
            path = join(
                self.temp_dir, "spill", dbname, str(ns), f"{bucket:06d}", f"{self.prefix}-{self.sequence:05d}.run"
            )
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


# -- NDJSON members and tarballs -----------------------------------------------------------


@dataclass(frozen=True)
class MemberPart:
    """One NDJSON member written by a bucket writer, waiting for its number in the tarball."""

    dbname: str
    ns: int
    bucket: int
    index: int  # position within its bucket
    data_size: int  # uncompressed NDJSON bytes
    records: int
    gz_path: str  # gzip member holding the NDJSON data plus tar padding
    parquet_path: str | None
    max_date: str = ""  # newest date_modified in the member (RFC 3339)
    text_path: str | None = None  # its plain-text Parquet shard (`--formats text`)
    # `update`: the gzip part is a byte copy of a base member whose bytes (md5) and line count
    # (its shard's, md5 too) the base's manifest vouches for — read back without inflating it
    copied: bool = False


def tar_padding(size: int) -> bytes:
    return b"\0" * (-size % TAR_BLOCK)


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """A deterministic ustar header (owner root, mode 0644, fixed mtime)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def gzip_member(data: bytes, level: int = 3) -> bytes:
    """One complete gzip member (fixed header: no name, mtime 0) — the same bytes on every run."""
    comp = gzip_compressor(level)
    return comp.compress(data) + comp.flush()


# Bytes handed to the compressor at a time. ISA-L's output depends on how its input is cut, so
# the input is cut at every multiple of this, whatever the sizes of the writes: the same bytes in
# give the same gzip bytes out, whoever wrote them (build, update, any runner).
_GZIP_BATCH = 1 << 20


class GzipMemberWriter:
    """Streams bytes into one gzip member at `path`, counting the uncompressed size.

    Writes are cut into 1 MB pieces that a helper thread compresses and writes (`Offload`), so
    the caller goes on producing lines meanwhile. `close` returns when the member is complete on
    storage; a compression or write error raises from `write` or `close`.
    """

    def __init__(self, path: str, level: int = 3):
        self.path = path
        self._out = open_write(path)
        self._comp = gzip_compressor(level)
        self._offload = Offload("gzip")
        self._pending = bytearray()  # written, not yet a whole piece
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self._pending += data
        whole = len(self._pending) - len(self._pending) % _GZIP_BATCH
        if whole:
            with memoryview(self._pending) as view:
                for start in range(0, whole, _GZIP_BATCH):
                    self._offload.submit(self._compress, bytes(view[start : start + _GZIP_BATCH]))
            del self._pending[:whole]  # one move of the rest, however large the write

    def _compress(self, data: bytes) -> None:
        chunk = self._comp.compress(data)
        if chunk:
            self._out.write(chunk)

    def _finish(self) -> None:
        self._out.write(self._comp.flush())
        self._out.close()

    def close(self) -> None:
        try:
            if self._pending:
                self._offload.submit(self._compress, bytes(self._pending))
                self._pending = bytearray()
            self._offload.submit(self._finish)
        finally:
            self._offload.close()


def assemble_tarball(
    path: str, members: list[tuple[str, MemberPart]], mtime: int
) -> tuple[str, int, tuple[tuple[int, int, int], ...]]:
    """Concatenate member gzip parts into `{path}` as one valid .tar.gz; returns (md5, bytes, copied):
    `copied` holds `(start, end, lines)` of the data members that are `MemberPart.copied`.

    Each member contributes a tiny gzip member with its tar header and its pre-compressed data;
    a last member holds the end-of-archive blocks. Only bytes are copied — nothing recompressed.
    """
    md5 = hashlib.md5()
    total = 0
    copied: list[tuple[int, int, int]] = []
    # the md5 is taken on a helper thread while this one reads and writes the parts
    hashing = Offload("hash", depth=4)

    def emit(out, chunk: bytes) -> None:
        nonlocal total
        hashing.submit(md5.update, chunk)
        total += len(chunk)
        out.write(chunk)

    # through a temp name and a rename: a retried assembly never leaves a half-written tarball
    partial = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    try:
        with open_write(partial) as out:
            for name, part in members:
                faults.point(f"write:tarball:{name}")  # tests kill a build here, half-way through a tarball
                emit(out, gzip_member(tar_header(name, part.data_size, mtime)))
                start = total
                with open_read(part.gz_path) as src:
                    while True:
                        chunk = src.read(1 << 20)  # 4 MB reads took fresh pages each time
                        if not chunk:
                            break
                        emit(out, chunk)
                if part.copied:
                    copied.append((start, total, part.records))
            emit(out, gzip_member(b"\0" * (2 * TAR_BLOCK)))
    finally:
        hashing.close()
    move(partial, path)
    return md5.hexdigest(), total, tuple(copied)


class CountingReader(io.RawIOBase):
    """Counts the raw bytes read through it (offsets for error messages, sizes for checks)."""

    def __init__(self, raw):
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if n:
            self.count += n
            self._seen(data)
        return n

    def _seen(self, data: bytes) -> None:
        """What a subclass does with the bytes as they pass (nothing here)."""

    def drain(self) -> None:
        """Read to the end (so counts and hashes cover the whole file)."""
        while self.read(1 << 20):  # 4 MB reads took fresh pages each time (system time)
            pass

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class HashingReader(CountingReader):
    """Counts and hashes (md5, and sha1 unless told not to) the bytes as they stream past: one pass.

    `beside=True` hashes on a helper thread (`Offload`, in read order) while the reader's thread
    works on the bytes, e.g. inflating them: a read-back's md5 then costs no time of its own.
    `md5` and `sha1` wait for the hashing to catch up.
    """

    def __init__(self, raw, sha1: bool = True, beside: bool = False):
        super().__init__(raw)
        self._md5 = hashlib.md5()
        self._sha1 = hashlib.sha1() if sha1 else None
        self._beside = Offload("hash", depth=4) if beside else None

    def _seen(self, data: bytes) -> None:
        if self._beside is None:
            self._hash(data)
        else:
            self._beside.submit(self._hash, data)  # bytes: nothing can change them meanwhile

    def _hash(self, data: bytes) -> None:
        self._md5.update(data)  # hashlib releases the GIL for pieces this size
        if self._sha1 is not None:
            self._sha1.update(data)

    def _caught_up(self) -> None:
        if self._beside is not None:
            self._beside.wait()

    @property
    def md5(self):
        self._caught_up()
        return self._md5

    @property
    def sha1(self):
        self._caught_up()
        return self._sha1

    def close(self) -> None:
        try:
            if self._beside is not None:
                self._beside.close()
        finally:
            super().close()


def file_digests(path: str, sha1: bool = False) -> tuple[str, str | None, int]:
    """(md5, sha1 or None, bytes) of a local file or URL, in one read."""
    with HashingReader(open_read(path), sha1=sha1) as reader:
        reader.drain()
    return reader.md5.hexdigest(), reader.sha1.hexdigest() if sha1 else None, reader.count


def file_md5(path: str) -> tuple[str, int]:
    md5, _sha1, size = file_digests(path)
    return md5, size


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as out:
        out.write(data)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()
