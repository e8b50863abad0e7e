"""Fast codecs behind the stdlib's interfaces: gzip through ISA-L, bz2 through indexed_bzip2.

Measured on the enwiki ×20 benchmark corpus (2 cores): gzip level 3 of 131 MB of WME NDJSON,
stdlib zlib 2.00 CPU-s, ISA-L 0.63 s (0.4% larger); gzip decompression 0.64 → 0.30 s; bz2
decompression of 33.8 MB, stdlib 3.8 s, indexed_bzip2 2.9 s on one thread and 1.5 s of wall time
on two (decompression runs ahead in C++ threads, beside the parse, without the GIL).

Both are optional at import: without a wheel for the platform the stdlib takes over and every
output stays valid (gzip bytes then differ, as they would with any other compressor; the
manifest's `codecs` says which one wrote them). Output bytes are deterministic for a given codec
and level: ISA-L's deflate has no threads and no timestamps (gzip header mtime 0, OS byte 255).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import queue
import threading
import zlib
from importlib import metadata

try:  # ISA-L: Apache-2.0-compatible (PSF-2.0), manylinux/macOS/Windows wheels
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - exercised only where no wheel exists
    _isal_zlib = None
    _igzip = None

try:  # indexed_bzip2: MIT/Apache-2.0, C++ with its own threads
    import indexed_bzip2 as _ib
except ImportError:  # pragma: no cover
    _ib = None

# ISA-L's deflate has levels 0-3; higher levels fall back to zlib, which has them.
ISAL_MAX_LEVEL = 3

# Every error a gzip or bz2 stream can raise on bad data, whichever codec reads it.
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error) + (
    (_isal_zlib.error,) if _isal_zlib is not None else ()
)


def gzip_compressor(level: int = 3):
    """A `zlib.compressobj`-like object writing one gzip member (`compress`, `flush`).

    ISA-L for levels 0-3 when installed (3-4x faster than zlib at the same size), zlib otherwise.
    """
    if _isal_zlib is not None and level <= ISAL_MAX_LEVEL:
        return _isal_zlib.compressobj(level, zlib.DEFLATED, 31)
    return zlib.compressobj(level, zlib.DEFLATED, 31)


def gzip_reader(fileobj) -> io.BufferedIOBase:
    """Decompressed bytes of the (concatenated) gzip members read from `fileobj`."""
    if _igzip is not None:
        return _igzip.GzipFile(fileobj=fileobj, mode="rb")
    return gzip.GzipFile(fileobj=fileobj, mode="rb")


def gzip_codec(level: int = 3) -> str:
    """Names the compressor `gzip_compressor(level)` uses, with its version (for the manifest)."""
    if _isal_zlib is not None and level <= ISAL_MAX_LEVEL:
        return f"isal {metadata.version('isal')} level {level}"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {level}"


def bz2_codec() -> str:
    return f"indexed_bzip2 {metadata.version('indexed_bzip2')}" if _ib is not None else "bz2 (stdlib)"


def default_bz2_threads(workers: int) -> int:
    """Decompression threads per worker on this machine: the cores left to each worker, 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 1) // max(1, workers)))


class Bz2Reader(io.RawIOBase):
    """Decompressed bytes of a local bz2 file (all its streams), decoded by `threads` C++ threads.

    `source` is a local path (read by indexed_bzip2 itself, without the GIL) or a seekable binary
    file object; `reopen()` opens the same bytes again. indexed_bzip2 reads ahead and out of
    order, so the raw bytes cannot be hashed as they pass: `RawDigests` hashes them in a thread of
    its own. On bad data indexed_bzip2 drops what it had decoded of the good blocks before it, so
    the rest is read again by the stdlib decoder: the same good bytes come out and the same error
    follows as without indexed_bzip2. `position` is then where the data ends (truncation) or the
    bad block starts.
    """

    def __init__(self, source, threads: int, size: int, reopen):
        self._file = _ib.open(source, parallelization=max(1, threads))
        self._reopen = reopen
        self._size = size
        self._bits = 0  # compressed position: start of the block being read, in bits
        self._delivered = 0  # decompressed bytes handed over
        self._finished = False
        self._fallback: io.BufferedIOBase | None = None

    @property
    def position(self) -> int:
        """Compressed bytes consumed: the start of the block being read; the size once at the end."""
        return self._size if self._finished else self._bits // 8

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._fallback is not None:
            return self._fallback_readinto(view)
        try:
            n = self._file.readinto(view)
        except RuntimeError:
            self._switch_to_stdlib()
            return self._fallback_readinto(view)
        if not n:
            self._finished = True
        else:  # tell_compressed() is 0 once a threaded reader has passed its last block
            self._bits = max(self._bits, self._file.tell_compressed())
        self._delivered += n
        return n

    def _switch_to_stdlib(self) -> None:
        """Decode the rest with the stdlib, from the first byte not yet handed over."""
        try:  # where the good data ends: the start of the last block indexed_bzip2 got to
            known = dict(self._file.available_block_offsets())
            self._bits = max([self._bits, *(bits for bits, start in known.items() if start >= self._delivered)])
        except RuntimeError:
            pass
        self._file.close()
        self._fallback = bz2.BZ2File(self._reopen(), "rb")
        left = self._delivered
        while left:  # decoded again only on this error path
            skipped = len(self._fallback.read(min(left, 1 << 22)))
            if not skipped:
                break
            left -= skipped

    def _fallback_readinto(self, view) -> int:
        try:  # read1: one decoded piece at a time, so the bytes before an error are not lost
            data = self._fallback.read1(len(view))
        except EOFError:  # the data ends inside a stream: its offset is the end of the data
            self._finished = True
            raise
        n = len(data)
        view[:n] = data
        self._finished = self._finished or n == 0
        self._delivered += n
        return n

    def close(self) -> None:
        try:
            if self._fallback is not None:
                self._fallback.close()
            self._file.close()
        finally:
            super().close()


def fast_bz2_available() -> bool:
    return _ib is not None


def bz2_from_block(source, start_bit: int, first_bit: int = 32):
    """indexed_bzip2's one-thread decoder of the bz2 data in `source` from the block (or end-of-stream
    marker) at bit `start_bit` on, across any later streams, to the end of `source`.

    `source`: a path or a seekable binary file object whose first stream's first block is at
    `first_bit`. Returns an object with `read(n)`, `tell_compressed()` (bits) and `close()`; read it
    sequentially only. It decodes in the calling thread and holds the GIL while it does (unlike the
    stdlib's bz2), so it saves CPU (1.3x the stdlib's speed) but overlaps nothing.

    indexed_bzip2 starts mid-stream only through its index of block offsets (bit -> decompressed
    byte), which it trusts once given: with {first_bit: 0, start_bit: 1} a seek to byte 1 starts
    decoding at `start_bit`, and the decompressed positions it reports are off by one. A given index
    also turns off its check of each stream's CRC (which combines the CRCs of all the stream's
    blocks, so it cannot hold for part of a stream); every block's own CRC is still checked. Bad
    data raises RuntimeError or ValueError, from this call (the first block is decoded by the
    seek) or a read.
    """
    reader = _ib.open(source, parallelization=1)
    try:
        offsets = {first_bit: 0} if start_bit == first_bit else {first_bit: 0, start_bit: 1}
        offsets[max(offsets) + 1] = 1 << 62  # the index's end: past any position read here
        reader.set_block_offsets(offsets)
        if start_bit != first_bit:
            reader.seek(1)
    except BaseException:
        reader.close()  # an unclosed reader aborts the interpreter at exit
        raise
    return reader


class RawDigests:
    """md5 and sha1 of bytes `[start, end)` of a local file, computed by a background thread.

    Stands in for a `HashingReader` where the decompressor reads the file itself: `count` is the
    decompressor's position (for progress and error offsets), `md5`/`sha1` wait for the thread.
    hashlib releases the GIL on large chunks, so this costs no time on the parsing thread.
    """

    def __init__(self, path: str, start: int = 0, end: int | None = None, position=None):
        self._md5 = hashlib.md5()
        self._sha1 = hashlib.sha1()
        self._position = position or (lambda: 0)
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path, start, end), daemon=True)
        self._thread.start()

    def _run(self, path: str, start: int, end: int | None) -> None:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                left = end - start if end is not None else -1
                while left != 0:
                    chunk = f.read(1 << 20 if left < 0 else min(1 << 20, left))
                    if not chunk:
                        break
                    self._md5.update(chunk)
                    self._sha1.update(chunk)
                    if left > 0:
                        left -= len(chunk)
        except OSError as exc:  # the decompressor reports the same file's problem itself
            self._error = exc

    @property
    def count(self) -> int:
        return self._position()

    @property
    def md5(self):
        self._thread.join()
        return self._md5

    @property
    def sha1(self):
        self._thread.join()
        return self._sha1


class ThreadedReadAhead(io.RawIOBase):
    """Reads `stream` (a decompressor) in a thread of its own, up to `depth` chunks ahead.

    The stdlib's bz2 and zlib release the GIL while they decode, so decompression then runs beside
    the parse on another core. Errors reach the reader after every chunk decoded before them, as
    they would without the thread.
    """

    def __init__(self, stream, chunk: int = 1 << 20, depth: int = 4):
        self._stream = stream
        self._chunk = chunk
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._view = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            while True:
                data = read(self._chunk)
                if not self._put(data) or not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._view:
            if self._done:
                return 0
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return 0
            self._view = memoryview(item)
        n = min(len(buffer), len(self._view))
        memoryview(buffer).cast("B")[:n] = self._view[:n]
        self._view = self._view[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._stream.close()
        finally:
            super().close()


def gzip_decompressor():
    """A `zlib.decompressobj(31)`-like object for one gzip member (`decompress`, `eof`,
    `unused_data`): ISA-L when installed (2x zlib's speed), else zlib. Its errors are in
    DECOMPRESS_ERRORS."""
    if _isal_zlib is not None:
        return _isal_zlib.decompressobj(31)
    return zlib.decompressobj(31)
