"""Reading MediaWiki XML dumps: sniff the container, checksum the bytes, stream pages.

Pure functions and generators, no Beam: `open_dump` opens any fsspec URL or local path and picks
the decompressor from the file's first bytes (not its name, so `…-shortened.bz2` and misnamed
files work); `read_siteinfo` reads only the header; `iter_pages` streams `RawPage`s with bounded
memory (each `<page>` element is freed once it has been turned into a value) and reports a
truncated or corrupt file as a `DumpError` that names the file, the byte offset and the last
complete page.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
from fsspec.implementations.local import LocalFileSystem
from lxml import etree

from wikisnap.schemas.siteinfo import Namespace, SiteInfo, dbname_from_base
from wikisnap.transforms.codecs import Bz2Reader, RawDigests, fast_bz2_available
from wikisnap.transforms.files import HashingReader, local_path

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


@dataclass
class Revision:
    """The current revision of a page, as the dump gives it."""

    id: int
    parent_id: int | None
    timestamp: str
    editor_id: int | None = None
    editor_name: str | None = None
    editor_ip: str | None = None
    minor: bool = False
    comment: str | None = None
    model: str = "wikitext"
    format: str = "text/x-wiki"
    text: str | None = None
    sha1: str | None = None


@dataclass
class RawPage:
    """One `<page>` with its last `<revision>` (pages-articles dumps carry exactly one)."""

    title: str
    ns: int
    id: int
    redirect: str | None
    revision: Revision | None
    revisions_seen: int = 1


@dataclass
class PageFailure:
    """A page the reader could not turn into a `RawPage`; keeps the raw XML for the dead letter."""

    reason: str
    raw_xml: str
    page_id: int | None = None
    title: str | None = None


@dataclass
class ReadStats:
    """What reading one file took and saw; filled in as the file is read."""

    path: str
    compression: str = ""
    bytes_read: int = 0
    size: int | None = None
    pages: int = 0
    md5: str = ""
    sha1: str = ""
    error: DumpError | None = None
    last_page: tuple[int, str] | None = None
    extra: dict = field(default_factory=dict)


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
    except FileNotFoundError:
        raise DumpError(path, "no such file", kind="missing") from None
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


class _RangeReader(io.RawIOBase):
    """Raw bytes `[start, end)` of a file as a seekable file of their own, never one byte more read
    (remote files: exact range reads; indexed_bzip2 seeks within a local multistream range)."""

    def __init__(self, path: str, start: int, end: int):
        self._file = open_raw(path, exact=True)
        self._start, self._size = start, end - start
        self._pos = 0
        self._file.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(base + offset, self._size))
        self._file.seek(self._start + self._pos)
        return self._pos

    def readinto(self, buffer) -> int:
        left = self._size - self._pos
        if left <= 0:
            return 0
        try:
            data = self._file.read(min(len(buffer), left))
        except ValueError as exc:  # fsspec: the server stopped answering Range requests
            raise OSError(f"a byte-range read failed ({exc})") from None
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()


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
        except FileNotFoundError:
            raise DumpError(path, "no such file", kind="missing") from None
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


def siteinfo_from_element(root: etree._Element, siteinfo: etree._Element | None, path: str) -> SiteInfo:
    """Build a SiteInfo from the `<mediawiki>` root and its `<siteinfo>` element."""
    if siteinfo is None:
        raise DumpError(
            path,
            "has no <siteinfo> header, so the wiki (db name, language, namespaces) is unknown; "
            "give a dump with its header, or --siteinfo-from another dump of the same wiki",
            kind="no-siteinfo",
        )
    values: dict[str, str] = {}
    namespaces: list[Namespace] = []
    for child in siteinfo:
        name = _local(child.tag) if isinstance(child.tag, str) else ""
        if name == "namespaces":
            for ns in child:
                if not isinstance(ns.tag, str):
                    continue
                try:
                    key = int(ns.get("key", ""))
                except ValueError:
                    raise DumpError(path, f"<namespace key={ns.get('key')!r}> is not a number") from None
                namespaces.append(
                    Namespace(key=key, name=(ns.text or "").strip(), case=ns.get("case") or "first-letter")
                )
        elif name:
            values[name] = (child.text or "").strip()
    # Exports before 0.4 carry no <dbname>: a Wikimedia <base> URL still tells the wiki.
    dbname = values.get("dbname", "") or dbname_from_base(values.get("base", "")) or ""
    if not dbname:
        raise DumpError(
            path,
            "<siteinfo> has no <dbname> and its <base> is not a Wikimedia project URL; "
            "wikisnap names its outputs after the db name",
            kind="no-siteinfo",
        )
    lang = root.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    return SiteInfo(
        dbname=dbname,
        sitename=values.get("sitename", ""),
        base=values.get("base", ""),
        lang=lang,
        case=values.get("case", "first-letter") or "first-letter",
        generator=values.get("generator", ""),
        schema_version=root.get("version", ""),
        namespaces=tuple(namespaces),
    )


def read_siteinfo(path: str) -> SiteInfo:
    """Read only the `<siteinfo>` header of a dump (a few KB of decompression)."""
    stream, hasher, _ = open_dump(path, read_ahead=False, head=True)
    root = None
    try:
        for event, elem in etree.iterparse(stream, events=("start", "end"), huge_tree=True):
            if event == "start":
                if root is None:
                    root = elem
                    if _local(elem.tag) != "mediawiki":
                        raise DumpError(path, f"is XML but not a MediaWiki dump (root element <{_local(elem.tag)}>)")
                elif _local(elem.tag) == "page":
                    break
                continue
            if _local(elem.tag) == "siteinfo":
                return siteinfo_from_element(root, elem, path)
    except etree.XMLSyntaxError as exc:
        raise DumpError(path, f"is not well-formed XML before any page: {exc}", offset=hasher.count) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise DumpError(path, f"cannot be decompressed: {exc}", offset=hasher.count, kind="corrupt") from None
    finally:
        stream.close()
    if root is None:
        raise DumpError(path, "contains no XML elements")
    return siteinfo_from_element(root, None, path)


# -- pages ---------------------------------------------------------------------------------


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text else None


def _revision_from_element(rev: etree._Element) -> Revision:
    values: dict[str, object] = {}
    for child in rev:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = tag[tag.rfind("}") + 1 :]
        if name == "contributor":
            if child.get("deleted"):
                continue
            for c in child:
                if not isinstance(c.tag, str):
                    continue
                cname = c.tag[c.tag.rfind("}") + 1 :]
                values["c_" + cname] = c.text
        elif name == "minor":
            values["minor"] = True
        elif name == "text":
            values["text"] = None if child.get("deleted") else (child.text or "")
        elif name == "comment":
            values["comment"] = None if child.get("deleted") else child.text
        elif name == "content":
            # export-0.11 multi-slot form: <content><role>main</role><model/><format/><text/></content>
            role = None
            for c in child:
                if isinstance(c.tag, str):
                    cname = c.tag[c.tag.rfind("}") + 1 :]
                    if cname == "role":
                        role = c.text
                    elif role in (None, "main") and cname in ("model", "format"):
                        values[cname] = c.text
                    elif role in (None, "main") and cname == "text":
                        values["text"] = None if c.get("deleted") else (c.text or "")
        else:
            values[name] = child.text
    rev_id = _int(values.get("id"))  # type: ignore[arg-type]
    if rev_id is None:
        raise ValueError("<revision> has no <id>")
    timestamp = (values.get("timestamp") or "").strip()  # type: ignore[union-attr]
    if not timestamp:
        raise ValueError(f"revision {rev_id} has no <timestamp>")
    editor_id = _int(values.get("c_id"))  # type: ignore[arg-type]
    return Revision(
        id=rev_id,
        parent_id=_int(values.get("parentid")),  # type: ignore[arg-type]
        timestamp=timestamp,
        editor_id=editor_id,
        editor_name=values.get("c_username"),  # type: ignore[arg-type]
        editor_ip=values.get("c_ip"),  # type: ignore[arg-type]
        minor=bool(values.get("minor")),
        comment=values.get("comment"),  # type: ignore[arg-type]
        model=(values.get("model") or "wikitext"),  # type: ignore[arg-type]
        format=(values.get("format") or "text/x-wiki"),  # type: ignore[arg-type]
        text=values.get("text"),  # type: ignore[arg-type]
        sha1=values.get("sha1"),  # type: ignore[arg-type]
    )


def page_from_element(page: etree._Element, site: SiteInfo) -> RawPage:
    """Turn a `<page>` element into a RawPage (the last revision wins); ValueError when malformed."""
    title = None
    ns = None
    page_id = None
    redirect = None
    revision = None
    count = 0
    for child in page:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = tag[tag.rfind("}") + 1 :]
        if name == "revision":
            count += 1
            candidate = _revision_from_element(child)
            if revision is None or candidate.id > revision.id:
                revision = candidate
        elif name == "title":
            title = child.text
        elif name == "ns":
            ns = _int(child.text)
        elif name == "id":
            page_id = _int(child.text)
        elif name == "redirect":
            redirect = child.get("title")
            if redirect is None:  # export-0.3 style <redirect/> without a target
                redirect = ""
    if not title:
        raise ValueError("<page> has no <title>")
    if page_id is None:
        raise ValueError(f"page {title!r} has no <id>")
    if ns is None:
        # Exports before 0.6 carry no <ns>: derive it from the title's prefix.
        ns = site.split_title(title)[0]
    return RawPage(title=title, ns=ns, id=page_id, redirect=redirect, revision=revision, revisions_seen=count)


def _open_pages(
    path: str,
    stats: ReadStats,
    byte_range: tuple[int, int] | None,
    bz2_threads: int = 0,
    blocks: tuple[int, int] | None = None,
):
    """Open a dump for a page loop: `(stream, hasher, compression, base)`, or None with `stats.error`.

    `base` is the file offset the stream starts at (errors name offsets in the file, not the range).
    """
    base = byte_range[0] if byte_range else 0
    try:
        if blocks is not None:
            base = blocks[0] // 8
            stream, hasher, compression = open_blocks(path, *blocks)
        else:
            stream, hasher, compression = open_dump(path, byte_range=byte_range, bz2_threads=bz2_threads)
    except DumpError as exc:
        stats.error = exc
        return None
    except OSError as exc:  # a file that vanished or a mirror that stopped answering since launch
        stats.error = DumpError(path, f"cannot be read: {exc}", offset=base, kind="missing")
        return None
    stats.compression = compression
    if byte_range is not None:
        # A multistream range holds bare <page>s (the header stream is elsewhere): give them a
        # root. The last range ends with the dump's own </mediawiki>, which ends parsing early.
        stream = _Concat([b"<mediawiki>", stream, b"</mediawiki>"])
    return stream, hasher, compression, base


def _page_done(stats: ReadStats, count: int, progress, next_report: int) -> int:
    """After a page: bytes read so far into `stats`, `progress` about once per MB; the next report mark."""
    stats.bytes_read = count
    if progress is not None and count >= next_report:
        next_report = count + _READ_CHUNK
        progress(stats)
    return next_report


def iter_pages(
    path: str,
    site: SiteInfo,
    stats: ReadStats,
    *,
    progress=None,
    byte_range: tuple[int, int] | None = None,
    bz2_threads: int = 0,
    blocks: tuple[int, int] | None = None,
) -> Iterator[RawPage | PageFailure]:
    """Stream the pages of one dump file, of the bz2 streams in `byte_range` of a multistream dump,
    or of the pages owned by the bz2 blocks at bits `blocks` of a plain .bz2 dump (see bz2blocks).

    Yields a `RawPage` per well-formed page and a `PageFailure` (with the raw XML) per page that
    cannot be read; fills `stats` (bytes, pages, checksums) as it goes. A truncated or corrupt
    file ends the stream with `stats.error` set — the pages before it have been yielded.
    `progress(stats)` is called about once per MB of input when given.
    """
    opened = _open_pages(path, stats, byte_range, bz2_threads, blocks)
    if opened is None:
        return
    stream, hasher, compression, base = opened
    next_report = 0
    try:
        context = etree.iterparse(stream, events=("end",), tag=("{*}page", "{*}mediawiki"), huge_tree=True)
        finished = False
        for _, elem in context:
            tag = elem.tag
            if tag.endswith("}mediawiki") or tag == "mediawiki":
                finished = True
                break
            stats.pages += 1
            try:
                page = page_from_element(elem, site)
            except (ValueError, TypeError) as exc:
                yield PageFailure(
                    reason=f"malformed page: {exc}",
                    raw_xml=etree.tostring(elem, encoding="unicode"),
                    page_id=_int(elem.findtext("{*}id")) if elem.findtext("{*}id", "").strip().isdigit() else None,
                    title=elem.findtext("{*}title"),
                )
            else:
                stats.last_page = (page.id, page.title)
                yield page
            free_element(elem)
            next_report = _page_done(stats, hasher.count, progress, next_report)
        if not finished:
            raise etree.XMLSyntaxError("no closing </mediawiki>", None, 0, 0)  # type: ignore[call-arg]
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error) as exc:
        stats.error = stream_error(path, stats, base + hasher.count, compression, exc)
    finally:
        stats.bytes_read = hasher.count if blocks is None else min(hasher.count, blocks_span(*blocks))
        stats.md5 = hasher.md5.hexdigest() if blocks is None else ""  # a part's digest means nothing
        stats.sha1 = hasher.sha1.hexdigest() if blocks is None else ""
        stream.close()


def open_blocks(path: str, start_bit: int, end_bit: int):
    """(XML stream, reader with `count`, "bz2") of the pages the blocks `[start_bit, end_bit)` own."""
    from wikisnap.transforms.bz2blocks import BlockError, BlockRangeReader  # it builds on this module

    try:
        reader = BlockRangeReader(path, start_bit, end_bit, first=start_bit == FIRST_BLOCK_BIT)
    except BlockError as exc:
        raise DumpError(
            path, f"bz2 data is truncated or corrupt ({exc})", offset=start_bit // 8, kind="corrupt"
        ) from None
    return reader, reader, "bz2"


FIRST_BLOCK_BIT = 32  # after `BZh` and the level digit


def blocks_span(start_bit: int, end_bit: int) -> int:
    """Bytes of the file that blocks `[start_bit, end_bit)` touch."""
    return (end_bit + 7) // 8 - start_bit // 8


def free_element(elem: etree._Element) -> None:
    """Free a parsed element and every sibling before it: memory stays flat whatever the dump size."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def stream_error(path: str, stats: ReadStats, offset: int, compression: str, exc: Exception) -> DumpError:
    """The DumpError of a dump stream that stopped at `offset`: cut XML, or bad compressed data."""
    if isinstance(exc, etree.XMLSyntaxError):
        return _describe_truncation(path, stats, offset, str(exc))
    return DumpError(
        path,
        f"{compression} data is truncated or corrupt ({exc}); {_after_last(stats)}",
        offset=offset,
        kind="corrupt",
    )


def _after_last(stats: ReadStats) -> str:
    if stats.last_page is None:
        return "no complete page was read"
    page_id, title = stats.last_page
    return f"the last complete page was id {page_id} ({title!r}), page {stats.pages:,} of the file"


def _describe_truncation(path: str, stats: ReadStats, offset: int, detail: str) -> DumpError:
    premature = (
        "Premature end" in detail or "no closing" in detail or "EndTag" in detail or "end of data" in detail.lower()
    )
    if premature:
        if stats.pages == 0:
            problem = "ends without </mediawiki> and holds no <page>: a header-only part or a truncated file"
        else:
            problem = "ends without </mediawiki>: the file is truncated"
        return DumpError(path, f"{problem}; {_after_last(stats)}", offset=offset, kind="truncated")
    return DumpError(path, f"is not well-formed XML ({detail}); {_after_last(stats)}", offset=offset, kind="malformed")


def describe_input(path: str) -> str:
    """Short name of an input for logs: the file name, or the URL for remote inputs."""
    return os.path.basename(path.rstrip("/")) or path


class _Concat(io.RawIOBase):
    """Bytes and streams read one after the other as one stream."""

    def __init__(self, parts: list):
        self._parts = [io.BytesIO(p) if isinstance(p, bytes) else p for p in parts]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._parts:
            data = self._parts[0].read(len(buffer))
            if data:
                n = len(data)
                buffer[:n] = data
                return n
            self._parts.pop(0)
        return 0

    def read(self, size: int = -1) -> bytes:
        while self._parts:
            data = self._parts[0].read(size)
            if data:
                return data
            self._parts.pop(0)
        return b""

    def close(self) -> None:
        for part in self._parts:
            part.close()
        super().close()


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


# -- revision histories (stub-meta-history, stub-meta-current, any history dump) ------------

# How many of a page's last revisions `PageHistory.times` answers for, and how far back their
# parents are looked up. The window bounds a page's memory (a page can have a million revisions):
# a parent further back than this (after a history merge or import) stays unknown, and is counted.
HISTORY_TAIL = 4
HISTORY_WINDOW = 1024
# Pages looked at before a file whose <text> elements are all empty is called a text dump.
_SNIFF_PAGES = 100


@dataclass(frozen=True)
class PageHistory:
    """What a history dump says about one page, reduced to what the record rules need.

    `first` is the smallest revision timestamp; `root` says a revision without `<parentid>` (the
    page's creation) was seen. `times` maps revision id → timestamp for the page's last
    `HISTORY_TAIL` revisions and their parents (where the parent is within the last
    `HISTORY_WINDOW` revisions): enough to find the parent timestamp of a current revision that
    is, or follows, one of the last revisions of the history. Sorted by revision id.
    """

    page_id: int
    ns: int
    title: str
    revisions: int
    first: str
    root: bool
    times: tuple[tuple[int, str], ...]


def is_stub_dump(path: str) -> bool:
    """Whether a MediaWiki XML dump is a stub dump (revision metadata without text).

    Decided by content, not name: a stub's `<text>` elements are empty and point at the text
    (`<text bytes="116" location="tt:43" id="43" />`); a text dump's carry the text. Empty
    `<text bytes="0"/>` (empty pages) and revision-deleted text decide nothing, so up to
    `_SNIFF_PAGES` pages are looked at. A file that cannot be read that far is not a stub here
    (the dump reader then reports what is wrong with it).
    """
    try:
        stream, _hasher, _ = open_dump(path, read_ahead=False, head=True)
    except (DumpError, OSError):
        return False
    pages = 0
    try:
        for _event, elem in etree.iterparse(stream, events=("end",), tag=("{*}text", "{*}page"), huge_tree=True):
            if _local(elem.tag) == "page":
                pages += 1
                if pages >= _SNIFF_PAGES:
                    return False
                elem.clear()
                continue
            if elem.get("deleted"):
                continue
            if elem.text:
                return False
            if elem.get("id") or elem.get("location") or elem.get("bytes", "0") not in ("", "0"):
                return True
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error):
        return False
    finally:
        stream.close()
    return False


def _revision_times(rev: etree._Element) -> tuple[str | None, str | None, str | None]:
    """(id, parent id, timestamp) texts of a `<revision>`: every export schema writes them first,
    in this order (`<parentid>` only when there is a parent); anything else takes the slow path."""
    n = len(rev)
    if n >= 2:
        first, second = rev[0], rev[1]
        if first.tag.endswith("}id") or first.tag == "id":
            stag = second.tag
            if stag.endswith("timestamp"):
                return first.text, None, second.text
            if stag.endswith("parentid") and n >= 3 and rev[2].tag.endswith("timestamp"):
                return first.text, second.text, rev[2].text
    values: dict[str, str | None] = {}
    for child in rev:
        if isinstance(child.tag, str):
            values.setdefault(_local(child.tag), child.text)
    return values.get("id"), values.get("parentid"), values.get("timestamp")


def _page_history(page_id: int, ns: int, title: str, count: int, first: str, root: bool, window) -> PageHistory:
    """The `PageHistory` of a page whose last revisions `(id, parent, timestamp)` are in `window`."""
    times_by_id = {rev_id: ts for rev_id, _parent, ts in window}
    times: dict[int, str] = {}
    for rev_id, parent, ts in list(window)[-HISTORY_TAIL:]:
        times[rev_id] = ts
        if parent and parent in times_by_id:
            times[parent] = times_by_id[parent]
    return PageHistory(page_id, ns, title, count, first, root, tuple(sorted(times.items())))


def iter_history(
    path: str, site: SiteInfo, stats: ReadStats, *, progress=None, byte_range: tuple[int, int] | None = None
) -> Iterator[PageHistory | PageFailure]:
    """Stream one history dump (stub or with text) as a `PageHistory` per page.

    Each `<revision>` is read for its id, parent id and timestamp, then freed at once: memory is
    the last `HISTORY_WINDOW` revisions of the current page, whatever its history's length (the
    text of a full history dump is parsed by lxml but never kept). A page with a revision lacking
    its id or timestamp becomes a `PageFailure` naming the revision. Errors, `stats` and
    `progress` as `iter_pages` (truncated or corrupt files end the stream with `stats.error` set).
    """
    import collections

    opened = _open_pages(path, stats, byte_range)
    if opened is None:
        return
    stream, hasher, compression, base = opened
    window: collections.deque = collections.deque(maxlen=HISTORY_WINDOW)
    count, first, root, problem = 0, "", False, None
    next_report = 0
    try:
        # Whitespace between elements is most of a stub's text nodes: not building them is ~10% faster.
        context = etree.iterparse(
            stream,
            events=("end",),
            tag=("{*}revision", "{*}page", "{*}mediawiki"),
            huge_tree=True,
            remove_blank_text=True,
        )
        finished = False
        for _, elem in context:
            tag = elem.tag
            name = tag[tag.rfind("}") + 1 :]
            if name == "revision":
                rev_id, parent, ts = _revision_times(elem)
                count += 1
                try:
                    rid = int(rev_id)  # type: ignore[arg-type]
                    pid = int(parent) if parent and parent.strip() else 0
                except (TypeError, ValueError):
                    problem = problem or f"revision {count} has no numeric <id> or <parentid> ({rev_id!r}, {parent!r})"
                    rid = pid = 0
                ts = (ts or "").strip()
                if not ts and problem is None:
                    problem = f"revision {rev_id} has no <timestamp>"
                if rid:
                    window.append((rid, pid, ts))
                    if ts and (not first or ts < first):
                        first = ts
                    if not pid:
                        root = True
                # Free the revision now (a page can hold a million): cleared, and the one before
                # it (cleared too) taken out of the page, so at most one stays behind.
                elem.clear()
                prev = elem.getprevious()
                if prev is not None and prev.tag == tag:
                    elem.getparent().remove(prev)
                continue
            if name == "mediawiki":
                finished = True
                break
            stats.pages += 1
            page_id = _int(elem.findtext("{*}id"))
            title = elem.findtext("{*}title") or ""
            ns = _int(elem.findtext("{*}ns"))
            if ns is None and title:
                ns = site.split_title(title)[0]
            if page_id is None or not title or problem is not None or not window:
                reason = problem or ("page has no <id>" if page_id is None else "page has no <title>")
                if page_id is not None and title and problem is None:
                    reason = "page has no <revision>"
                yield PageFailure(
                    reason=f"malformed page in a history dump: {reason}",
                    raw_xml=etree.tostring(elem, encoding="unicode"),
                    page_id=page_id,
                    title=title or None,
                )
            else:
                stats.last_page = (page_id, title)
                yield _page_history(page_id, ns or 0, title, count, first, root, window)
            window.clear()
            count, first, root, problem = 0, "", False, None
            free_element(elem)
            next_report = _page_done(stats, hasher.count, progress, next_report)
        if not finished:
            raise etree.XMLSyntaxError("no closing </mediawiki>", None, 0, 0)  # type: ignore[call-arg]
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error) as exc:
        stats.error = stream_error(path, stats, base + hasher.count, compression, exc)
    finally:
        stats.bytes_read = hasher.count
        stats.md5 = hasher.md5.hexdigest()
        stats.sha1 = hasher.sha1.hexdigest()
        stream.close()
