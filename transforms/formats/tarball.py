"""The snapshot tarball: a tar of NDJSON members, each its own gzip member, written and read.

Writing: members are gzipped one by one (in parallel across buckets) and the tarball is their
concatenation with tar headers between them, since gzip members concatenate into one valid gzip
stream and nothing is recompressed by a single process. Reading: the lines of every member as a
stream, with truncation told apart from the end (Python's `tarfile` in stream mode ends quietly
when the data stops exactly between two members, so the bytes it consumed are counted and
`TarCutOff` raised when the two zero blocks that close every tar archive never came), and the
gzip member map of a tarball wikisnap wrote, so an update can reach one member without inflating
the others.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from wikisnap import faults
from wikisnap.transforms.formats.codecs import DECOMPRESS_ERRORS, gzip_compressor, gzip_decompressor
from wikisnap.transforms.formats.fs import CountingReader, move, open_read, open_write
from wikisnap.transforms.formats.offload import Offload

TAR_BLOCK = 512


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
    # `update`: the md5 of `parquet_path` when taken as it was written (a byte copy of a base
    # shard, hashed on the way), so assembly does not read it again; None: assembly hashes it
    parquet_md5: str | None = None
    # `--formats structured`: the Structured Contents member beside it (its own gz part, size,
    # records and Parquet shard; the same number in its tarball)
    structured: MemberPart | None = None


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


class TarCutOff(ValueError):
    """The tar stream ended without its end-of-archive blocks: the file is truncated."""


class TarLines:
    """Iterate the lines of every regular member of the tar stream `stream` (decompressed bytes).

    `member` names the member being read (None before the first), for error messages. Raises
    tarfile/zlib/EOF errors as they come and `TarCutOff` when the archive has no end blocks.
    """

    def __init__(self, stream):
        self._stream = CountingReader(stream)
        self.member: str | None = None
        self.lines = 0

    def __iter__(self) -> Iterator[bytes]:
        with tarfile.open(fileobj=self._stream, mode="r|") as tar:
            for info in tar:
                self.member = info.name
                if not info.isfile():
                    continue
                data = tar.extractfile(info)
                if data is None:
                    continue
                for line in io.BufferedReader(data):
                    self.lines += 1
                    yield line
            # tarfile stopped: on the zero block that ends an archive (read past `tar.offset`),
            # or because the data ended right at a header position (a file cut between members).
            if self._stream.count < tar.offset + tarfile.BLOCKSIZE:
                self.member = None
                raise TarCutOff(f"no end-of-archive block after member {info_name(tar)}: the tarball is cut off")


def info_name(tar: tarfile.TarFile) -> str:
    last = tar.members[-1].name if tar.members else None
    return repr(last) if last else "(none)"


# Bytes per read of base and part files: 1 MB (3 MB inflated) is reused from the heap, while 4 MB
# reads (12 MB inflated) took fresh pages from the kernel each time — a touched 100 MB member cost
# ~25,000 page faults and 0.05-0.07 s of system time more (enwiki x50 benchmark).
READ_SIZE = 1 << 20
# What to do about a damaged base (the tail of every BaseError message).
FIX_BASE = "restore the base from a good copy (or rebuild it with `wikisnap build`) and run again"

# The head of every WME line: the serialiser always writes `name` first and `identifier` second.
_HEAD = re.compile(rb'\{"name":("(?:[^"\\]|\\.)*"),"identifier":(\d+)')


class BaseError(Exception):
    """A base snapshot that cannot be read: one line naming the tarball, the member and the byte.

    Never excused by --allow-truncated: the records of a damaged base would vanish silently.
    """


def base_error(tarball: str, problem: str, offset: int | None = None) -> BaseError:
    where = f" (at byte {offset:,})" if offset is not None else ""
    return BaseError(f"{tarball}: base snapshot {problem}{where}; {FIX_BASE}")


# -- reading base lines ----------------------------------------------------------------------


def iter_snapshot_lines(tarball: str) -> Iterator[bytes]:
    """The NDJSON lines of a snapshot tarball, streamed member after member (tar order).

    BaseError (tarball, member, byte) when it is empty, cut off — also between two members — or
    corrupt; the lines before the damage have been yielded.
    """
    # gzip.GzipFile reads concatenated gzip members; tarfile's own "r|gz" stops after the first.
    try:
        raw = CountingReader(open_read(tarball))
    except OSError as exc:
        raise base_error(tarball, f"cannot be opened ({exc})") from None
    lines = TarLines(gzip.GzipFile(fileobj=io.BufferedReader(raw, 1 << 20)))
    try:
        yield from lines  # one line in memory
    except (EOFError, OSError, zlib.error, tarfile.TarError, ValueError) as exc:
        if raw.count == 0:
            raise base_error(tarball, "is an empty file") from None
        where = f"in member {lines.member!r}" if lines.member else "between members"
        problem = f"is cut off or corrupt {where}, after {lines.lines:,} complete line(s) ({exc})"
        raise base_error(tarball, problem, raw.count) from None
    finally:
        raw.close()


def line_head(line: bytes) -> tuple[bytes, int]:
    """`(JSON-encoded name, page id)` of a WME line, from its first bytes; ValueError otherwise."""
    match = _HEAD.match(line)
    if match is None:
        raise ValueError(f"not a wikisnap/WME record line: {line[:80]!r}")
    return match.group(1), int(match.group(2))


# -- rewriting member by member (the fast path for wikisnap's own tarballs) --------------------


@dataclass(frozen=True)
class BaseMember:
    """One NDJSON member of a wikisnap tarball: where its gzip member lies, its first page id."""

    index: int
    data_size: int
    start: int  # byte span of the gzip member holding the data (+ tar padding)
    end: int
    first_id: int
    records: int = -1  # its NDJSON lines, when the scan counted them (-1: not counted)
    max_date: str | None = None  # its newest `date_modified`, when the scan read it
    raw_crc: int | None = None  # CRC-32 of the span's bytes the scan decompressed (a copy must match)


def gzip_spans(path: str) -> list[tuple[int, int]]:
    """Byte spans of the gzip members concatenated in `path` (decompressed, never kept).

    BaseError when a member is corrupt (bad data or CRC) or the file ends inside one.
    """
    spans = []
    offset = 0
    with open_read(path) as f:
        data = f.read(1 << 22)
        d = gzip_decompressor()
        start = 0
        while data:
            try:
                d.decompress(data)
            except DECOMPRESS_ERRORS as exc:
                raise base_error(path, f"has a corrupt gzip member starting at byte {start:,} ({exc})") from None
            if d.eof:
                rest = d.unused_data
                end = offset + len(data) - len(rest)
                spans.append((start, end))
                start = end
                offset = end
                data = rest
                d = gzip_decompressor()
                if not data:
                    data = f.read(1 << 22)
                continue
            offset += len(data)
            data = f.read(1 << 22)
    if offset > start:
        raise base_error(path, f"ends inside the gzip member starting at byte {start:,}: it is cut off", offset)
    return spans


def _read_span(path: str, start: int, end: int, chunk: int = READ_SIZE) -> Iterator[bytes]:
    with open_read(path) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                raise base_error(path, f"ends inside the gzip member at bytes {start:,}-{end:,}: it is cut off")
            left -= len(data)
            yield data


def _span_lines(path: str, member: BaseMember) -> Iterator[bytes]:
    """The NDJSON lines of one member, decompressed from its span (tar padding dropped).

    Read to the end, the span must hold exactly one gzip member whose CRC and length zlib checked
    (BaseError otherwise: the base changed after it was scanned, or is damaged).
    """
    d = gzip_decompressor()
    left = member.data_size
    pending = b""
    for data in _read_span(path, member.start, member.end):
        try:
            out = d.decompress(data)
        except DECOMPRESS_ERRORS as exc:
            raise base_error(
                path, f"has a corrupt gzip member at bytes {member.start:,}-{member.end:,} ({exc})"
            ) from None
        if left <= 0:
            continue
        if len(out) > left:
            out = out[:left]  # the tar padding
        left -= len(out)
        # each line is sliced once out of the chunk (no split list, no joined copies of the chunk)
        start = 0
        if pending:
            end = out.find(b"\n")
            if end < 0:
                pending += out
                continue
            yield pending + out[: end + 1]
            pending, start = b"", end + 1
        while (end := out.find(b"\n", start)) >= 0:
            yield out[start : end + 1]
            start = end + 1
        pending = out[start:]
    if not d.eof or d.unused_data:
        raise base_error(path, f"bytes {member.start:,}-{member.end:,} are no longer one whole gzip member: it changed")
    if pending:
        yield pending


def wikisnap_members(tarball: str) -> list[BaseMember] | None:
    """The members of a tarball written by wikisnap (header member, data member, …, end member).

    None when the tarball is not laid out that way (e.g. a WME tarball): callers fall back to
    the line-by-line rewrite.
    """
    spans = gzip_spans(tarball)
    if len(spans) < 3 or len(spans) % 2 == 0:
        return None
    if zlib.decompress(b"".join(_read_span(tarball, *spans[-1])), 31) != bytes(2 * tarfile.BLOCKSIZE):
        return None  # no end-of-archive member: not this layout, or cut off (the line reader tells)
    members = []
    for n in range((len(spans) - 1) // 2):
        (hs, he), (ds, de) = spans[2 * n], spans[2 * n + 1]
        header = zlib.decompress(b"".join(_read_span(tarball, hs, he)), 31)
        if len(header) != tarfile.BLOCKSIZE:
            return None
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.TarError:
            return None
        probe = BaseMember(n, info.size, ds, de, 0)
        first = next(_span_lines(tarball, probe), b"")
        if not first:
            return None
        members.append(BaseMember(n, info.size, ds, de, line_head(first)[1]))
    return members


# -- one pass over the base: find the touched records and map the members ---------------------


class _NotWikisnapLayout(Exception):
    """The tarball is not laid out as wikisnap writes it (or ends between two members)."""


class _Damaged(Exception):
    """A gzip member that does not decompress (bad data or CRC) or is cut off, at a raw byte."""

    def __init__(self, problem: str, offset: int):
        super().__init__(problem)
        self.problem, self.offset = problem, offset


def _inflate_members(path: str, chunk: int = 1 << 20, digest=None) -> Iterator[tuple[int, int, bytes | int]]:
    """The gzip members of `path` decompressed in one streaming pass, one chunk in memory.

    Yields `(member number, start byte, data)` for each decompressed chunk of a member and, when
    the member ends (its CRC and length checked by zlib), `(member number, end byte, CRC-32 of
    the member's raw bytes)` — what a later byte copy of the member is checked against.
    Raises `_Damaged` on corrupt data or a file that ends inside a member. `digest` (a hashlib
    object), when given, is fed every raw byte read.
    """
    with open_read(path) as f:
        number, start, offset, raw_crc = 0, 0, 0, 0  # offset: raw bytes before `data`
        d = gzip_decompressor()
        if digest is not None:
            f = _Hashing(f, digest)
        data = f.read(chunk)
        while data:
            try:
                out = d.decompress(data)
            except DECOMPRESS_ERRORS as exc:
                raise _Damaged(f"corrupt gzip member starting at byte {start:,}: {exc}", offset) from None
            if out:
                yield number, start, out
            if d.eof:
                end = offset + len(data) - len(d.unused_data)
                raw_crc = zlib.crc32(data[: len(data) - len(d.unused_data)], raw_crc)
                data = d.unused_data or f.read(chunk)
                yield number, end, raw_crc
                number, start, offset, raw_crc = number + 1, end, end, 0
                d = gzip_decompressor()
                continue
            raw_crc = zlib.crc32(data, raw_crc)
            offset += len(data)
            data = f.read(chunk)
        if offset > start:
            raise _Damaged(f"ends inside the gzip member starting at byte {start:,}", offset)


class _Hashing:
    """A reader that feeds what it reads to a hashlib object."""

    def __init__(self, f, digest):
        self.f, self.digest = f, digest

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        return data


def _tar_info(header: bytes) -> tarfile.TarInfo:
    """The regular-file tar header a header member holds; `_NotWikisnapLayout` for anything else."""
    if len(header) != tarfile.BLOCKSIZE:
        raise _NotWikisnapLayout
    try:
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.TarError:
        raise _NotWikisnapLayout from None
    if not info.isfile():
        raise _NotWikisnapLayout
    return info


# -- the indexed scan: the base's own md5 and Parquet shards instead of a full inflate -----------


class _NoIndex(Exception):
    """The indexed scan cannot vouch for this base (another md5 or layout, shards that do not match)."""


# bytes kept back at the end of each chunk read: a header member (~100 bytes compressed) with
# the 8-byte trailer before it is checked only once it is whole in the buffer
_HOLD = 1 << 12
_CHUNK = 1 << 22
_HIT_READ = 1 << 20  # compressed bytes inflated at a time while looking for wanted records
# how every member of a wikisnap tarball starts (`gzip_member`, GzipMemberWriter): magic, deflate,
# no flags, mtime 0 — with ISA-L and with zlib alike
_GZIP_HEAD = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
_END_OF_ARCHIVE = bytes(2 * tarfile.BLOCKSIZE)


def _small_member(buf: bytes, at: int) -> tuple[bytes, int] | None:
    """The data of the small gzip member (a tar header or the end blocks) at `buf[at:]` and its
    compressed length, or None when no complete member of at most 1 KB of data starts there."""
    d = zlib.decompressobj(31)
    try:
        out = d.decompress(buf[at : at + _HOLD], 2 * tarfile.BLOCKSIZE + 1)
    except zlib.error:
        return None
    if not d.eof or len(out) > 2 * tarfile.BLOCKSIZE:
        return None
    return out, min(len(buf) - at, _HOLD) - len(d.unused_data)


def _header_at(buf: bytes, at: int, name: str) -> tuple[int, int] | None:
    """(data size, compressed length) of the header member of tar member `name` at `buf[at:]`."""
    found = _small_member(buf, at)
    if found is None or len(found[0]) != tarfile.BLOCKSIZE:
        return None
    try:
        info = tarfile.TarInfo.frombuf(found[0], "utf-8", "surrogateescape")
    except tarfile.TarError:
        return None
    return (info.size, found[1]) if info.isfile() and info.name == name else None


def _map_by_headers(path: str, sid: str, digest=None) -> list[tuple[int, int, int, int]]:
    """`(data size, start, end, CRC-32 of the raw bytes)` of each data member of a wikisnap tarball,
    found in one pass over the compressed bytes without inflating the data members.

    The layout is `assemble_tarball`'s: header member of `{sid}_0.ndjson`, its data member, header
    of `{sid}_1.ndjson`, …, end-of-archive member. A data member ends where the next header (or
    the end member) starts: a gzip magic preceded by the trailer's ISIZE of the padded size the
    header gave, where a gzip member holding exactly that next tar header (or the end blocks,
    ending the file) starts. `digest` (a hashlib object, when given) is fed every byte: the caller
    checks the md5. `_NoIndex` when the layout differs.
    """
    spans: list[tuple[int, int, int, int]] = []
    # one buffer reused for every read (fresh 4 MB objects cost more in page faults than the md5)
    buf = bytearray(_CHUNK + 2 * _HOLD)
    view = memoryview(buf)
    filled, off = 0, 0  # buf[:filled] holds the file's bytes [off, off + filled)
    at = 0  # where the next small member starts (header state), or where the search goes on
    searching, closed, n = False, False, 0
    size = start = crc = crc_at = 0  # the data member being searched: its size, start, CRC so far
    isize = b""
    with open_read(path) as f:
        while not closed:
            got = f.readinto(view[filled : filled + _CHUNK]) or 0
            eof = not got
            if digest is not None:
                digest.update(view[filled : filled + got])
            filled += got
            while True:
                safe = off + filled - (0 if eof else _HOLD)  # positions before this can be checked
                if not searching:
                    if at > safe or (at == safe and not eof):
                        break  # read on
                    header = _header_at(view[:filled], at - off, f"{sid}_{n}.ndjson")
                    if header is None:
                        end = _small_member(view[:filled], at - off)
                        if eof and n and end is not None and end[0] == _END_OF_ARCHIVE and at + end[1] == off + filled:
                            closed = True
                            break
                        raise _NoIndex  # not the next header, nor the end member ending the file
                    size, length = header
                    start = crc_at = at + length
                    crc = 0
                    isize = ((size + (-size % tarfile.BLOCKSIZE)) & 0xFFFFFFFF).to_bytes(4, "little")
                    searching = True
                    at = start + 18  # a gzip member has at least its 10-byte header and 8-byte trailer
                    continue
                hit = buf.find(_GZIP_HEAD, at - off, filled)
                while 0 <= hit < safe - off:
                    if buf[hit - 4 : hit] == isize and (
                        _header_at(view[:filled], hit, f"{sid}_{n + 1}.ndjson") is not None
                        or ((end := _small_member(view[:filled], hit)) is not None and end[0] == _END_OF_ARCHIVE)
                    ):
                        break
                    hit = buf.find(_GZIP_HEAD, hit + 1, filled)
                else:
                    if eof:
                        raise _NoIndex  # a data member without an end: cut off
                    at = max(at, safe)
                    break
                crc = zlib.crc32(view[crc_at - off : hit], crc)
                spans.append((size, start, off + hit, crc))
                n, at, searching = n + 1, off + hit, False
            if eof and not closed:
                raise _NoIndex
            # keep only what a later check needs (at most _HOLD + 4 bytes): the 4 ISIZE bytes
            # before the search point; a data member's bytes leave the buffer through its CRC
            keep = at - 4 if searching else at
            if searching:
                crc = zlib.crc32(view[crc_at - off : keep - off], crc)
                crc_at = keep
            tail = filled - (keep - off)
            buf[:tail] = bytes(view[keep - off : filled])  # (a copy: the two ranges may overlap)
            filled, off = tail, keep
    if not spans:
        raise _NoIndex
    return spans


def _first_line(path: str, start: int, end: int) -> bytes:
    """The first NDJSON line of the data member at bytes `start`-`end` (inflating only that far)."""
    d = gzip_decompressor()
    out = b""
    for data in _read_span(path, start, end, 1 << 16):
        try:
            out += d.decompress(data)
        except DECOMPRESS_ERRORS:
            raise _NoIndex from None
        if b"\n" in out or d.eof:
            break
    return out.split(b"\n", 1)[0]


def _member_chunks(path: str, member: BaseMember) -> Iterator[bytes]:
    """The decompressed bytes of a data member from its start, inflated only as far as they are
    taken (1 MB of compressed bytes at a time); `_NoIndex` when they do not decompress."""
    d = gzip_decompressor()
    for data in _read_span(path, member.start, member.end, _HIT_READ):
        try:
            out = d.decompress(data)
        except DECOMPRESS_ERRORS:
            raise _NoIndex from None  # the full scan names the member and byte
        if out:
            yield out
        if d.eof:
            return
