"""Opening dump files: local paths and fsspec URLs, containers sniffed, ranges, indexes, head reads.

`open_dump` opens any fsspec URL or local path and picks the decompressor from the file's first
bytes (not its name, so `…-shortened.bz2` and misnamed files work); `open_head` reads a file's
first bytes once and shares them between header reads; `read_index` and `plan_ranges` cut a
multistream dump into byte ranges. A file that cannot be opened or read is a `DumpError` naming
the file, the byte offset and what kind of problem it is.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import logging
import os
import re
import socket
import threading
import zlib
from dataclasses import dataclass

import fsspec
from fsspec.implementations.local import LocalFileSystem

from wikisnap.transforms.formats.codecs import Bz2Reader, RawDigests, fast_bz2_available
from wikisnap.transforms.formats.fs import HashingReader, local_path

# Containers recognised by their first bytes.
_MAGIC = (
    (b"BZh", "bz2"),
    (b"\x1f\x8b", "gzip"),
)
_UNSUPPORTED_MAGIC = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_XML_STARTS = (b"<", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_READ_CHUNK = 1 << 20
_DECOMPRESSED_CHUNK = 8 << 20
# Header reads of remote files (siteinfo, SQL table sniffing): exact range reads of this size,
# and the first bytes fetched are kept (up to the cap) for the next header read of the same file.
_HEAD_CHUNK = 64 << 10
_HEAD_CACHE_BYTES = 4 << 20
_HEAD_CACHE_FILES = 64

log = logging.getLogger("wikisnap")


class DumpError(Exception):
    """A user-facing problem with an input file: the message names the file and the problem."""

    def __init__(self, path: str, problem: str, *, offset: int | None = None, kind: str = "invalid"):
        self.path = path
        self.problem = problem
        self.offset = offset
        self.kind = kind
        where = f" (at byte {offset:,})" if offset is not None else ""
        super().__init__(f"{path}: {problem}{where}")


def connection_failure(exc: BaseException) -> str | None:
    """What stopped a connection, when `exc` (or an error it was raised from) is a failed one.

    fsspec's HTTP filesystem reports a server that refuses the connection, a name that does not
    resolve or a connect timeout as FileNotFoundError, raised from the real error: that one is
    found here so the file is not called missing when its server could not be reached.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        if isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror)) or name in (
            "ClientConnectorError",
            "ServerTimeoutError",
            "ClientConnectionError",
        ):
            return str(exc) or name
        exc = exc.__cause__ or exc.__context__
    return None


def missing_or_unreachable(path: str, exc: FileNotFoundError, error=None) -> Exception:
    """The error of an input that could not be opened: "no such file" (kind "missing"), or "could
    not connect" (kind "unreachable": the environment, not the input) when the server was not
    reached. `error`: the DumpError class to raise (SqlDumpError for SQL dumps)."""
    error = error or DumpError
    why = connection_failure(exc) if is_http(path) else None
    if why:
        return error(path, f"could not connect to its server ({why})", kind="unreachable")
    return error(path, "no such file", kind="missing")


def input_size(path: str) -> int | None:
    """Size in bytes of an input, or None when the filesystem cannot tell."""
    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
        return int(fs.size(fs_path))
    except Exception:  # noqa: BLE001 - a size is only used for progress and ETA
        return None


def is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def open_stream(path: str):
    """Open a local path or fsspec URL for reading from the start (fsspec errors as they come).

    HTTP(S) files are one streamed GET: each byte downloaded once, whether or not the server
    supports Range requests (fsspec's default block cache would re-request blocks by range).
    """
    if is_http(path):
        return fsspec.open(path, "rb", block_size=0).open()
    return fsspec.open(path, "rb").open()


def open_raw(path: str, *, exact: bool = False):
    """Open a local path or fsspec URL for binary reading.

    `exact=True` turns off read-ahead caching, so a remote range read fetches only what is asked
    (an HTTP server must support Range requests: see `supports_ranges`).
    """
    try:
        if exact:
            fs, fs_path = fsspec.core.url_to_fs(path)
            if isinstance(fs, LocalFileSystem):  # reads exactly what is asked already
                return fs.open(fs_path, "rb")
            return fs.open(fs_path, "rb", cache_type="none")
        return open_stream(path)
    except FileNotFoundError as exc:
        raise missing_or_unreachable(path, exc) from None
    except IsADirectoryError:
        raise DumpError(path, "is a directory, not a dump file", kind="missing") from None
    except PermissionError:
        raise DumpError(path, "permission denied", kind="missing") from None
    except ValueError as exc:  # fsspec: unknown protocol
        raise DumpError(path, f"cannot open: {exc}", kind="missing") from None
    except ImportError as exc:  # fsspec: protocol needs an optional package
        raise DumpError(path, f"cannot open: {exc}", kind="missing") from None


@functools.lru_cache(maxsize=256)
def supports_ranges(path: str) -> bool:
    """Whether `path` can be read by byte ranges: local files and object stores always can; an
    HTTP(S) server is asked once for byte 1 (a server without Range support sends the whole file
    instead, which fsspec refuses after the headers). Unreachable files: True (the read that
    follows reports them properly)."""
    if not is_http(path):
        return True
    try:
        with open_raw(path, exact=True) as f:
            if not hasattr(f, "cache") or f.size is None or f.size < 2:
                return f.size is not None and f.size < 2  # a streamed answer: no ranges
            f.seek(1)
            f.read(1)
        return True
    except ValueError:  # fsspec: "The HTTP server doesn't appear to support range requests"
        return False
    except (OSError, DumpError):
        return True


_heads: dict[str, bytes] = {}
_heads_lock = threading.Lock()


class _HeadReader(io.RawIOBase):
    """The first bytes of a remote file by exact range reads, shared between header reads.

    The launcher reads the head of every input several times (SQL sniffing, siteinfo, the
    multistream check); this keeps the first bytes fetched (up to `_HEAD_CACHE_BYTES`) so each
    is downloaded once. Reads past what is kept fetch `_HEAD_CHUNK`-sized ranges.
    """

    def __init__(self, path: str):
        self.path = path
        self.pos = 0
        self._file = None
        with _heads_lock:
            self._kept = _heads.get(path, b"")
        if not self._kept:
            self._open()  # errors (missing file …) surface at open, as with open_raw

    def _open(self):
        if self._file is None:
            self._file = open_raw(self.path, exact=True)
        return self._file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.pos < len(self._kept):
            data = self._kept[self.pos : self.pos + len(buffer)]
        else:
            f = self._open()
            f.seek(self.pos)
            data = f.read(max(len(buffer), _HEAD_CHUNK))
            if self.pos == len(self._kept) and self.pos < _HEAD_CACHE_BYTES and data:
                self._kept += data
                with _heads_lock:
                    if len(_heads) >= _HEAD_CACHE_FILES:
                        _heads.clear()
                    _heads[self.path] = self._kept
            data = data[: len(buffer)]
        n = len(data)
        buffer[:n] = data
        self.pos += n
        return n

    def close(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        finally:
            super().close()


def open_head(path: str):
    """Open a file to read its first bytes only (headers, magic numbers): local files as they
    are; remote files by small exact range reads whose bytes later header reads reuse; HTTP
    servers without Range support as a stream (closed once the header is read)."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    if isinstance(fs, LocalFileSystem):
        return fs.open(fs_path, "rb")
    if not supports_ranges(path):
        return open_stream(path)
    return io.BufferedReader(_HeadReader(path), buffer_size=_HEAD_CHUNK)


def sniff_compression(path: str, head: bytes) -> str:
    """`'bz2'`, `'gzip'` or `'xml'` from a file's first bytes; DumpError for anything else."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            raise DumpError(
                path,
                f"{name} compression is not supported; recompress as .bz2 or .gz, or decompress to .xml",
                kind="compression",
            )
    if not head:
        raise DumpError(path, "the file is empty", kind="invalid")
    if head.lstrip(b" \t\r\n").startswith(_XML_STARTS):
        return "xml"
    raise DumpError(
        path,
        f"unknown compression or not an XML dump (first bytes {head[:8].hex(' ')}); "
        "wikisnap reads .xml, .xml.bz2 and .xml.gz",
        kind="compression",
    )


class RawView(io.RawIOBase):
    """A seekable raw file of `size` bytes read from the file at `path` (`open_raw`, exact range
    reads on a remote file): a subclass says which bytes (`readinto`). Seeks stay within [0, size]
    when `clamp`, else past the end reads nothing; `close` closes the file."""

    def __init__(self, path: str, clamp: bool = True):
        self._file = open_raw(path, exact=True)
        self._pos = 0
        self._size = 0
        self._clamp = clamp

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(base + offset, self._size) if self._clamp else base + offset)
        return self._pos

    def read_file(self, at: int, size: int) -> bytes:
        """Up to `size` bytes of the file from byte `at` (fsspec's failed range read as OSError)."""
        self._file.seek(at)
        try:
            return self._file.read(size)
        except ValueError as exc:  # fsspec: the server stopped answering Range requests
            raise OSError(f"a byte-range read failed ({exc})") from None

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()


class _RangeReader(RawView):
    """Raw bytes `[start, end)` of a file as a seekable file of their own, never one byte more read
    (remote files: exact range reads; indexed_bzip2 seeks within a local multistream range)."""

    def __init__(self, path: str, start: int, end: int):
        super().__init__(path)
        self._start, self._size = start, end - start

    def readinto(self, buffer) -> int:
        left = self._size - self._pos
        if left <= 0:
            return 0
        data = self.read_file(self._start + self._pos, min(len(buffer), left))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n


def open_dump(
    path: str,
    *,
    read_ahead: bool = True,
    byte_range: tuple[int, int] | None = None,
    head: bool = False,
    bz2_threads: int = 0,
) -> tuple[io.BufferedIOBase, HashingReader | RawDigests, str]:
    """Open `path` for reading decompressed XML bytes.

    Returns `(stream, hasher, compression)`: read the XML from `stream`; `hasher` has counted and
    hashed the raw bytes read so far. `read_ahead=False` decompresses no more than asked for
    (header reads must not run into a truncation far behind the header). `head=True`: only the
    first bytes will be read (see `open_head`). `bz2_threads` > 0: a local bz2 file is decoded by
    indexed_bzip2 on that many threads (ahead of the parse), when it is installed.
    """
    if head:
        try:
            raw = open_head(path)
        except FileNotFoundError as exc:
            raise missing_or_unreachable(path, exc) from None
        except (IsADirectoryError, PermissionError, ValueError, ImportError):
            raw = open_raw(path)  # open_raw names the problem
    else:
        raw = open_raw(path) if byte_range is None else _RangeReader(path, *byte_range)
    hasher = HashingReader(raw)
    buffered = io.BufferedReader(hasher, buffer_size=_HEAD_CHUNK if head else _READ_CHUNK)
    head = buffered.peek(16)[:16]
    compression = sniff_compression(path, head)
    if compression == "xml":
        return buffered, hasher, compression
    if compression == "bz2" and read_ahead and bz2_threads > 0 and fast_bz2_available():
        local = local_path(path)
        if local is not None:
            buffered.close()  # indexed_bzip2 reads the file itself
            fast, digests = _open_fast_bz2(local, byte_range, bz2_threads)
            return fast, digests, compression
    if compression == "bz2":
        stream: io.BufferedIOBase = bz2.BZ2File(buffered, "rb")
    else:
        stream = gzip.GzipFile(fileobj=buffered, mode="rb")
    if not read_ahead:
        return stream, hasher, compression
    return io.BufferedReader(_ReadAhead(stream), buffer_size=_DECOMPRESSED_CHUNK), hasher, compression


def _open_fast_bz2(local: str, byte_range: tuple[int, int] | None, threads: int):
    """(stream, digests) of a local bz2 file or range, decoded by indexed_bzip2's threads."""
    if byte_range is None:
        source, start, end = local, 0, None
        size = os.path.getsize(local)
        reopen = functools.partial(open, local, "rb")
    else:
        start, end = byte_range
        source, size = _RangeReader(local, start, end), end - start
        reopen = functools.partial(_RangeReader, local, start, end)
    reader = Bz2Reader(source, threads, size, reopen)
    digests = RawDigests(local, start, end, position=lambda: reader.position)
    # 1 MB: indexed_bzip2 decodes ahead in its own threads already (the stdlib path's 8 MB
    # stretches are for the CPU cache, see _ReadAhead)
    return io.BufferedReader(reader, buffer_size=_READ_CHUNK), digests


class _ReadAhead(io.RawIOBase):
    """Decompresses in long stretches, yet hands over what it got before a truncation.

    Interleaving bz2 with parsing page by page evicts its tables from the CPU cache: measured 2x
    slower decompression on real enwiki pages. Filling an 8 MB buffer at a time avoids that; a
    stream that ends early still yields its good bytes first and raises on the next read.
    """

    def __init__(self, stream: io.BufferedIOBase):
        self._stream = stream
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._error is not None:
            raise self._error
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            try:
                data = self._stream.read1(len(view) - filled)
            except (EOFError, OSError, zlib.error) as exc:
                if not filled:
                    raise
                self._error = exc
                break
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
        return filled

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


# -- siteinfo ------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def describe_input(path: str) -> str:
    """Short name of an input for logs: the file name, or the URL for remote inputs."""
    return os.path.basename(path.rstrip("/")) or path


# -- multistream indexes -------------------------------------------------------------------


def read_index(path: str) -> tuple[list[int], dict[int, int]]:
    """Stream offsets of a multistream index (`offset:page_id:title` lines, bz2 or plain).

    Returns the sorted distinct offsets and how many pages each stream holds. Holds one int per
    stream (≈100 pages), not per page: enwiki's 24 M lines become ~240 k offsets.
    """
    stream, hasher, _ = open_dump(path, read_ahead=False) if _looks_compressed(path) else (open_raw(path), None, "")
    counts: dict[int, int] = {}
    line_no = 0
    try:
        for raw in io.TextIOWrapper(stream, encoding="utf-8", errors="replace"):
            line_no += 1
            head, sep, _rest = raw.partition(":")
            if not sep:
                if raw.strip():
                    raise DumpError(path, f"line {line_no} is not offset:page_id:title: {raw[:80]!r}", kind="index")
                continue
            try:
                offset = int(head)
            except ValueError:
                raise DumpError(
                    path, f"line {line_no} does not start with a byte offset: {raw[:80]!r}", kind="index"
                ) from None
            counts[offset] = counts.get(offset, 0) + 1
    except (EOFError, OSError, zlib.error) as exc:
        raise DumpError(path, f"index cannot be decompressed at line {line_no}: {exc}", kind="index") from None
    finally:
        stream.close()
    if not counts:
        raise DumpError(path, "the multistream index is empty", kind="index")
    return sorted(counts), counts


def _looks_compressed(path: str) -> bool:
    with open_head(path) as f:
        head = f.read(4)
    return head.startswith((b"BZh", b"\x1f\x8b"))


@dataclass(frozen=True)
class ByteRange:
    """Whole bz2 streams `[start, end)` of a multistream dump and the pages the index puts there."""

    start: int
    end: int
    pages: int


def plan_ranges(offsets: list[int], counts: dict[int, int], file_size: int, target_bytes: int) -> list[ByteRange]:
    """Group consecutive streams into ranges of about `target_bytes` (never splitting a stream).

    The last range runs to the end of the file so it takes the trailer stream with it.
    """
    ranges: list[ByteRange] = []
    start = offsets[0]
    pages = 0
    bounds = offsets[1:] + [file_size]
    for offset, next_offset in zip(offsets, bounds, strict=True):
        pages += counts[offset]
        if next_offset - start >= target_bytes or next_offset == file_size:
            ranges.append(ByteRange(start, next_offset, pages))
            start, pages = next_offset, 0
    return ranges


def index_path_for(path: str) -> str | None:
    """The standard index name beside a multistream dump, if that file exists.

    `…-pages-articles-multistream.xml.bz2` → `…-pages-articles-multistream-index.txt.bz2`;
    split parts `…-multistream3.xml-p1p2.bz2` → `…-multistream-index3.txt-p1p2.bz2`.
    """
    directory, _, name = path.rpartition("/")
    candidates = []
    match = re.match(r"^(.*-multistream)(\d*)\.xml(-p\d+p\d+)?\.bz2$", name)
    if match:
        stem, number, pages = match.group(1), match.group(2), match.group(3) or ""
        candidates.append(f"{stem}-index{number}.txt{pages}.bz2")
    if "multistream" in name and ".xml" in name:
        # recompressxml's own naming: …-multistream-p1p2.xml.bz2 → …-multistream-index-p1p2.txt.bz2
        candidates.append(name.replace("multistream", "multistream-index", 1).replace(".xml", ".txt", 1))
    for candidate in candidates:
        full = f"{directory}/{candidate}" if directory else candidate
        try:
            fs, fs_path = fsspec.core.url_to_fs(full)
            if fs.exists(fs_path):
                return full
        except Exception:  # noqa: BLE001 - no index found is a normal outcome
            continue
    return None
