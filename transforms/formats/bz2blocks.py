"""Block-aligned ranges of a plain (single-stream or concatenated-stream) .bz2 dump.

A bz2 stream is `BZh` + level digit, then blocks that each start with the 48-bit magic
0x314159265359 followed by the block's 32-bit CRC, then the 48-bit end-of-stream magic
0x177245385090 and the stream CRC (each block CRC folded in by rotate-left-1-and-xor). Blocks are
not byte-aligned: a magic can start at any bit. This module

- finds block starts at any bit offset (`find_magic`): for each of the 8 bit shifts the magic
  covers at least 5 fixed whole bytes, found with `bytes.find`, then all 48 bits are checked;
- plans cut points near byte targets (`plan_blocks`), reading only a window after each target;
- re-packs the blocks of `[start_bit, stop_bit)` into a valid bz2 stream of their own
  (`BlockStream`: header, the blocks' bits shifted to byte alignment, end-of-stream magic and the
  combined CRC), streamed in chunks, crossing the ends of concatenated streams;
- reads one range as XML for `iter_pages` (`BlockRangeReader`): a page belongs to the range in
  whose decompressed bytes its `<page>` tag begins, so consecutive ranges hand the parser the
  whole document between them, each byte exactly once.

Blocks are decoded in one of two ways (`BlockDecoder`): the re-packed stream by the stdlib's bz2
in a thread beside the parse (`decompressor_for`, the one place the stdlib decodes here), or, where
no core is spare, indexed_bzip2 reading the file itself from the range's first block, the file's
bytes after the range replaced by an end-of-stream marker (`EndedSource`): no bit shifting in
Python and 1.3x the stdlib's speed per CPU second. Bad data there is decoded again by the stdlib,
so errors and their offsets are the stdlib path's.
"""

from __future__ import annotations

import bz2
import io
from collections import deque
from dataclasses import dataclass

from wikisnap.transforms.formats.codecs import ThreadedReadAhead, bz2_from_block, fast_bz2_available
from wikisnap.transforms.formats.dumpfiles import RawView, open_raw

BLOCK_MAGIC = 0x314159265359
EOS_MAGIC = 0x177245385090
_MASK32 = 0xFFFFFFFF
# Compressed bz2 blocks are at most ~900 KB (level 9, incompressible data a little more): a window
# this long after a target holds a block start unless the file ends first.
_WINDOW = 1 << 20
_CHUNK = 1 << 20
_DECOMPRESSED_CHUNK = 8 << 20
_TAIL_CHUNK = 256 << 10
# A block header sane enough to be believed: magic, CRC, randomised bit, origPtr, used map.
_HEADER_BITS = 48 + 32 + 1 + 24 + 16
_PAGE = b"<page>"
FIRST_BLOCK_BIT = 32  # after `BZh` and the level digit


class BlockError(OSError):
    """The bz2 structure is not what the plan said (a wrong cut point, a truncated or corrupt file)."""


def decompressor_for(fileobj) -> io.BufferedIOBase:
    """A readable binary stream of the decompressed bytes of the bz2 stream(s) in `fileobj`.

    The one place block ranges decompress: truncated or corrupt data raises EOFError/OSError.
    """
    return bz2.BZ2File(fileobj, "rb")


# -- finding magics ------------------------------------------------------------------------------


def _patterns(magic: int) -> list[tuple[int, bytes, int]]:
    """(bit shift k, the whole bytes the magic fixes when it starts at bit k of a byte, their
    index from that byte): 6 bytes at k = 0, 5 otherwise."""
    out = []
    for k in range(8):
        total = k + 48
        nbytes = (total + 7) // 8
        value = (magic << (nbytes * 8 - total)).to_bytes(nbytes, "big")
        first = 0 if k == 0 else 1
        last = nbytes if total % 8 == 0 else nbytes - 1
        out.append((k, value[first:last], first))
    return out


_PATTERNS = {BLOCK_MAGIC: _patterns(BLOCK_MAGIC), EOS_MAGIC: _patterns(EOS_MAGIC)}


def bits_at(data: bytes, bit: int, count: int) -> int:
    """The `count` bits of `data` from bit `bit` (most significant first) as an int."""
    first = bit // 8
    last = (bit + count + 7) // 8
    value = int.from_bytes(data[first:last], "big")
    return (value >> ((last * 8) - bit - count)) & ((1 << count) - 1)


def find_magic(data: bytes, magic: int, start_bit: int = 0, end_bit: int | None = None) -> list[int]:
    """Bit offsets p with start_bit <= p < end_bit where all 48 bits of `magic` are in `data`, sorted."""
    limit = len(data) * 8 - 48
    end_bit = limit + 1 if end_bit is None else min(end_bit, limit + 1)
    found = []
    for k, pattern, first in _PATTERNS[magic]:
        # the byte a hit at shift k starts in must be >= start_bit's byte
        at = max(0, start_bit // 8 + first - (1 if k < start_bit % 8 else 0))
        while True:
            i = data.find(pattern, at)
            if i < 0:
                break
            at = i + 1
            bit = (i - first) * 8 + k
            if bit < start_bit:
                continue
            if bit >= end_bit:
                break
            if bit >= 0 and bits_at(data, bit, 48) == magic:
                found.append(bit)
    found.sort()
    return found


def sane_block_header(data: bytes, bit: int) -> bool:
    """Whether the block header at `bit` (its magic) looks real: not randomised (no bzip2 since
    0.9.5 writes that), origPtr within a level-9 block, some byte values used."""
    if bit + _HEADER_BITS > len(data) * 8:
        return False
    if bits_at(data, bit + 80, 1):
        return False
    if bits_at(data, bit + 81, 24) > 900_000:
        return False
    return bits_at(data, bit + 105, 16) != 0


# -- planning --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockPlan:
    """Cut points of a plain .bz2 file: `bounds[i]..bounds[i+1]` (bits) is range i; the first
    bound is the first block, the last the end-of-stream magic of the file's last stream."""

    bounds: list[int]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.bounds, self.bounds[1:], strict=False))


def final_eos(tail: bytes, tail_start: int) -> int | None:
    """The bit offset of the end-of-stream magic that ends a file whose last bytes are `tail`
    (starting at byte `tail_start`): magic + CRC + under 8 bits of padding reach the end exactly."""
    end = len(tail) * 8
    for bit in find_magic(tail, EOS_MAGIC):
        if 0 <= end - (bit + 80) < 8:
            return tail_start * 8 + bit
    return None


def plan_blocks(path: str, size: int, target_bytes: int) -> BlockPlan | None:
    """Cut a plain .bz2 file into ranges of whole blocks of about `target_bytes` each.

    Reads the header, the last bytes and a window after each target only. None when the file is
    not one to split: not bz2, no block, or not ending in an end-of-stream marker (truncated or
    with trailing bytes) — one reader then reads it whole and reports any damage as usual.
    """
    if size < 32:
        return None
    with open_raw(path, exact=True) as f:
        head = f.read(16)
        if len(head) < 16 or not head.startswith(b"BZh") or head[3:4] not in b"123456789":
            return None
        if bits_at(head, 32, 48) not in (BLOCK_MAGIC, EOS_MAGIC):  # a first stream may be empty
            return None
        f.seek(size - 16)
        end_bit = final_eos(f.read(16), size - 16)
        if end_bit is None or end_bit <= 32:
            return None
        bounds = [32]
        target = target_bytes
        while target < size:
            found = _next_block(f, target, end_bit)
            if found is None:
                break
            if found > bounds[-1]:
                bounds.append(found)
            target = max(target + target_bytes, found // 8 + 1)
    if end_bit <= bounds[-1]:
        return None
    return BlockPlan([*bounds, end_bit])


def _next_block(f, byte: int, end_bit: int) -> int | None:
    """The first believable block start at or after `byte` and before `end_bit`, or None."""
    at = byte
    carry = b""
    while at * 8 < end_bit:
        f.seek(at)
        data = f.read(_WINDOW)
        if not data:
            return None
        window = carry + data
        base = at - len(carry)
        for bit in find_magic(window, BLOCK_MAGIC):
            if base * 8 + bit >= end_bit:
                return None
            if sane_block_header(window, bit):
                return base * 8 + bit
        at += len(data)
        carry = window[-32:]
    return None


# -- one range as its own bz2 stream --------------------------------------------------------------


class BlockStream(io.RawIOBase):
    """The blocks of `path` from bit `start_bit` up to `stop_bit` (None: the end of the file) as
    one valid bz2 stream.

    `start_bit` and `stop_bit` are block starts or end-of-stream magics. Emits `BZh9` (level 9
    decodes blocks of any level, and concatenated streams may mix levels), the blocks' bits
    shifted to byte alignment, skipping the ends and headers of concatenated streams between
    them, then the end-of-stream magic and the CRC combined from the CRCs of the blocks copied.
    A cut point where the file's structure puts no block start raises BlockError, as does a file
    that ends inside a block. `count`: bytes of the file read so far.
    """

    def __init__(self, path: str, start_bit: int, stop_bit: int | None):
        self.path = path
        self.stop = stop_bit
        self.count = 0
        self._file = open_raw(path, exact=True)
        self._file.seek(start_bit // 8)
        self._buf = b""  # file bytes from byte self._buf_byte on
        self._buf_byte = start_bit // 8
        self._eof = False
        self._copy_from = start_bit  # absolute bit: the next bit to copy out
        self._scanned = start_bit + 1  # bits before this were searched for magics
        self._marks: deque[int] = deque()  # block starts found, not yet reached
        self._cur = start_bit  # the block being copied
        self._acc = 0  # output bits not yet a whole byte, and their number
        self._acc_bits = 0
        self._crc = 0
        self._out = bytearray(b"BZh9")
        self._done = False
        if not self._need(start_bit + 48):
            raise BlockError(f"the file ends before bit {start_bit:,} (byte {start_bit // 8:,})")
        magic = bits_at(self._buf, self._bit(start_bit), 48)
        if magic == BLOCK_MAGIC:
            self._block(start_bit)
        elif magic == EOS_MAGIC:
            self._stream_end(start_bit)
        else:
            raise BlockError(f"no bz2 block starts at bit {start_bit:,} (byte {start_bit // 8:,})")

    @property
    def position(self) -> int:
        """Byte of the file up to which blocks were handed out (for error offsets)."""
        return max(self._copy_from // 8 - len(self._out), 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._out and not self._done:
            self._step()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        del self._out[:n]
        return n

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            super().close()

    # -- input window

    def _fill(self) -> bool:
        """Append the next chunk of the file to the window; False at the end of the file."""
        if self._eof:
            return False
        try:
            data = self._file.read(_CHUNK)
        except ValueError as exc:  # fsspec: the server stopped answering Range requests
            raise OSError(f"a byte-range read failed ({exc})") from None
        if not data:
            self._eof = True
            return False
        self.count += len(data)
        drop = self._copy_from // 8 - self._buf_byte  # copied out already
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_byte += drop
        self._buf += data
        return True

    def _bit(self, absolute: int) -> int:
        return absolute - self._buf_byte * 8

    def _need(self, absolute_end_bit: int) -> bool:
        """Make sure the window reaches `absolute_end_bit`; False when the file ends first."""
        while (self._buf_byte + len(self._buf)) * 8 < absolute_end_bit:
            if not self._fill():
                return False
        return True

    def _scan(self) -> None:
        """Find the block starts in the window not searched yet (stream ends are looked for only
        where a block starts a new stream, or at the end of the file: see `_step`)."""
        window_end = (self._buf_byte + len(self._buf)) * 8
        # a block magic is believed once its header is in the window (see sane_block_header)
        limit = window_end - (48 if self._eof else _HEADER_BITS)
        lo, hi = self._bit(self._scanned), self._bit(limit) + 1
        if hi <= lo:
            return
        base = self._buf_byte * 8
        found = find_magic(self._buf, BLOCK_MAGIC, lo, hi)
        self._marks.extend(base + b for b in found if sane_block_header(self._buf, b))
        self._scanned = limit + 1

    def _stream_starts_at(self, bit: int) -> bool:
        """Whether the block at `bit` follows a stream header (`BZh` + level on the bytes before)."""
        at = self._bit(bit) // 8
        if bit % 8 or at < 4:
            return False
        head = self._buf[at - 4 : at]
        return len(head) == 4 and head.startswith(b"BZh") and head[3:4] in b"123456789"

    def _first_end(self, upto: int | None) -> int | None:
        """The first end-of-stream magic after the current block's magic (before bit `upto`)."""
        lo = self._bit(self._cur + 48)
        found = find_magic(self._buf, EOS_MAGIC, lo, None if upto is None else self._bit(upto))
        return self._buf_byte * 8 + found[0] if found else None

    # -- output

    def _copy(self, upto: int) -> None:
        """Copy the file's bits [_copy_from, upto) to the output, shifted to byte alignment."""
        count = upto - self._copy_from
        if count <= 0:
            return
        self._push(bits_at(self._buf, self._bit(self._copy_from), count), count)
        self._copy_from = upto

    def _push(self, value: int, count: int) -> None:
        total = self._acc_bits + count
        value |= self._acc << count
        rest = total % 8
        if total >= 8:
            self._out += (value >> rest).to_bytes(total // 8, "big")
        self._acc = value & ((1 << rest) - 1)
        self._acc_bits = rest

    def _block(self, bit: int) -> None:
        """A block starts at absolute `bit`: fold its CRC into the stream CRC."""
        if not self._need(bit + 80):
            raise BlockError(f"the file ends inside the header of the bz2 block at byte {bit // 8:,}: it is truncated")
        block_crc = bits_at(self._buf, self._bit(bit) + 48, 32)
        self._crc = (((self._crc << 1) | (self._crc >> 31)) & _MASK32) ^ block_crc
        self._scanned = max(self._scanned, bit + 1)
        self._cur = bit

    def _finish(self) -> None:
        self._push(EOS_MAGIC, 48)
        self._push(self._crc, 32)
        if self._acc_bits:
            self._push(0, 8 - self._acc_bits)
        self._done = True

    def _step(self) -> None:
        """Copy the current block out once its end (next block start or stream end) is in the window."""
        if not self._marks:
            self._scan()
        if not self._marks:
            if self._fill():
                return  # the block goes on: look again with more of it in the window
            self._scan()  # the last bits, up to the end of the file
            if self._marks:
                return
            end = self._first_end(None)
            if end is None:
                raise BlockError(
                    f"the file ends inside a bz2 block (at byte {self._copy_from // 8:,}) without an "
                    "end-of-stream marker: it is truncated"
                )
            self._to_end(end)
            return
        bit = self._marks.popleft()
        if self.stop is not None and bit > self.stop:
            raise self._not_a_cut(bit)
        if self._stream_starts_at(bit):
            end = self._first_end(bit)
            if end is not None:  # the current block ends its stream; `bit` starts the next one
                self._to_end(end)
                return
        self._copy(bit)
        if bit == self.stop:
            self._finish()
        else:
            self._block(bit)

    def _to_end(self, end: int) -> None:
        """The current block ends at the end-of-stream magic at `end`."""
        if self.stop is not None and end > self.stop:
            raise self._not_a_cut(end)
        self._copy(end)
        if end == self.stop:
            self._finish()
        else:
            self._stream_end(end)

    def _not_a_cut(self, found: int | None) -> BlockError:
        nxt = f"the next block boundary is at byte {found // 8:,}" if found is not None else "none is there"
        return BlockError(
            f"the planned cut at bit {self.stop:,} (byte {self.stop // 8:,}) is not a bz2 block boundary "
            f"({nxt}): the file changed since the run was planned, or a block magic was found inside "
            "compressed data"
        )

    def _stream_end(self, eos: int) -> None:
        """Skip an end-of-stream marker and the header of the stream after it (and empty streams)."""
        while True:
            after = (eos + 80 + 7) // 8  # the byte after the padded stream CRC
            if not self._need(after * 8 + 80):
                break  # the end of the file (or bytes too few to be a stream: ignored, as bz2 does)
            head = self._buf[after - self._buf_byte : after - self._buf_byte + 4]
            if not (head.startswith(b"BZh") and head[3:4] in b"123456789"):
                break  # trailing bytes after the last stream: ignored, as the bz2 module does
            first = after * 8 + 32
            magic = bits_at(self._buf, self._bit(first), 48)
            self._copy_from = first
            while self._marks and self._marks[0] <= first:
                self._marks.popleft()
            if first == self.stop:
                self._finish()
                return
            if magic == BLOCK_MAGIC:
                self._block(first)
                return
            if magic != EOS_MAGIC:
                raise BlockError(f"the bz2 stream at byte {after:,} starts with neither a block nor its end")
            eos = first
        if self.stop is not None:
            raise BlockError(f"the file's last bz2 stream ends at byte {eos // 8:,}, before the planned cut")
        self._copy_from = eos
        self._marks.clear()
        self._finish()


# -- decoding blocks ------------------------------------------------------------------------------


class EndedSource(RawView):
    """The bytes of `path` up to bit `end_bit`, then an end-of-stream marker and its padding: a bz2
    decoder reading this from a block before `end_bit` stops where the block at `end_bit` begins.

    Seekable (indexed_bzip2 reads by seek and read); `end_bit` None: the whole file. The file is read
    in `_CHUNK` pieces (one range request each on a remote file). The marker's stream CRC is 0: it
    is checked only by decoders that start at the stream's start, which `bz2_from_block` is not.
    """

    def __init__(self, path: str, end_bit: int | None):
        super().__init__(path, clamp=False)
        self._buf = b""  # file bytes from byte _buf_at on
        self._buf_at = 0
        if end_bit is None:
            self._cut = self._file.seek(0, io.SEEK_END)
            self._patch = b""
        else:
            self._cut = end_bit // 8
            kept = end_bit % 8  # the bits of the last block's end in the byte the cut falls in
            head = self.file_bytes(self._cut, 1)[:1] if kept else b"\0"
            if not head:
                raise BlockError(f"the file ends before bit {end_bit:,} (byte {self._cut:,})")
            bits = kept + 48 + 32
            value = (((head[0] >> (8 - kept)) << 80) | (EOS_MAGIC << 32)) << ((-bits) % 8)
            self._patch = value.to_bytes((bits + 7) // 8, "big")
        self._size = self._cut + len(self._patch)

    def file_bytes(self, at: int, size: int) -> bytes:
        """Up to `size` file bytes from byte `at`, from the chunk in hand or a new one."""
        if not self._buf_at <= at < self._buf_at + len(self._buf):
            self._buf = self.read_file(at, max(size, _CHUNK))
            self._buf_at = at
        return self._buf[at - self._buf_at : at - self._buf_at + size]

    def readinto(self, buffer) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        if self._pos < self._cut:
            data = self.file_bytes(self._pos, min(want, self._cut - self._pos))
        else:
            at = self._pos - self._cut
            data = self._patch[at : at + want]
        n = len(data)
        memoryview(buffer).cast("B")[:n] = data
        self._pos += n
        return n


class BlockDecoder:
    """Decompressed bytes of the blocks of `path` from bit `start_bit` (a block start or an
    end-of-stream marker) to bit `stop_bit` (the same; None: the end of the file). `read(n)`,
    `position` (the byte of the file decoding has got to), `close()`.

    `fast`: indexed_bzip2 in the reading thread (see `bz2_from_block`); on any error it raises,
    the blocks are decoded again by the stdlib from the first byte not yet handed over, so the same
    good bytes come out and then the same error as without it. Else, and after that: the stdlib's
    bz2 on the re-packed `BlockStream`, in a thread of its own when `threaded` (it releases the GIL).
    """

    def __init__(self, path: str, start_bit: int, stop_bit: int | None, *, fast: bool, threaded: bool):
        self.path, self._start, self._stop, self._threaded = path, start_bit, stop_bit, threaded
        self._delivered = 0
        self._raw: BlockStream | None = None
        self._stream = None
        self._fast = None
        if not fast:
            self._open_stdlib()
            return
        source = EndedSource(path, stop_bit)
        try:
            head = source.file_bytes(start_bit // 8, 7)
            magic = bits_at(head, start_bit % 8, 48) if len(head) == 7 else None
            if magic not in (BLOCK_MAGIC, EOS_MAGIC):
                BlockStream(path, start_bit, stop_bit).close()  # raises the stdlib path's BlockError
        except BaseException:
            source.close()
            raise
        if magic == EOS_MAGIC and start_bit != FIRST_BLOCK_BIT:
            # the end of the file (the last range's tail), where there is nothing to decode; and
            # indexed_bzip2 cannot seek to a stream's end
            source.close()
            self._open_stdlib()
            return
        self._fast = _FastBlocks(source, start_bit)

    @property
    def fast(self) -> bool:
        """Whether indexed_bzip2 decodes (still: it hands over to the stdlib at bad data)."""
        return self._fast is not None

    @property
    def position(self) -> int:
        if self._fast is not None:
            return self._fast.position if self._delivered else self._start // 8
        return self._raw.position if self._raw is not None else self._start // 8

    def read(self, size: int) -> bytes:
        if self._fast is not None:
            try:
                data = self._fast.read(size)
            except Exception:  # noqa: BLE001 - indexed_bzip2 raises several kinds; the stdlib names it
                self._fast.close()
                self._fast = None
                self._open_stdlib()
                self._skip(self._delivered)
            else:
                self._delivered += len(data)
                return data
        return self._stream.read(size)

    def _open_stdlib(self) -> None:
        self._raw = BlockStream(self.path, self._start, self._stop)
        stream = decompressor_for(self._raw)
        self._stream = ThreadedReadAhead(stream) if self._threaded else stream

    def _skip(self, count: int) -> None:
        """Drop the first `count` decompressed bytes (handed over already by the fast decoder)."""
        while count:
            data = self._stream.read(min(count, _DECOMPRESSED_CHUNK))
            if not data:
                return
            count -= len(data)

    def close(self) -> None:
        try:
            if self._fast is not None:
                self._fast.close()
        finally:
            if self._stream is not None:
                self._stream.close()
            if self._raw is not None:
                self._raw.close()


class _FastBlocks:
    """indexed_bzip2 over an `EndedSource`, opened at the first read (that decodes the first block)."""

    def __init__(self, source: EndedSource, start_bit: int):
        self._source = source
        self._start = start_bit
        self._reader = None

    @property
    def position(self) -> int:
        return self._reader.tell_compressed() // 8 if self._reader is not None else self._start // 8

    def read(self, size: int) -> bytes:
        if self._reader is None:
            self._reader = bz2_from_block(self._source, self._start, FIRST_BLOCK_BIT)
        return self._reader.read(size)

    def close(self) -> None:
        try:
            if self._reader is not None:
                self._reader.close()
        finally:
            self._source.close()


# -- one range as XML ---------------------------------------------------------------------------


class BlockRangeReader(io.RawIOBase):
    """The XML `iter_pages` parses for blocks `[start_bit, end_bit)` of a plain .bz2 dump.

    Ownership: a page belongs to the range in whose decompressed bytes its `<page>` tag begins.
    The first range (`first=True`) hands over the document from its very first byte (root
    element and `<siteinfo>`); the others skip to their first own `<page>` and are given a
    `<mediawiki>` root. Each range reads on past its own blocks (a second stream from
    `end_bit` to the end of the file, decompressed only as far as needed) up to the next
    range's first `<page>`, and then closes the root; the range that reaches the end of the file
    hands over the file's own ending, so a missing `</mediawiki>` is still a truncation. A range
    in which no `<page>` begins yields an empty `<mediawiki></mediawiki>`. `count`: bytes of the
    file from `start_bit // 8` to where decompression has got (for error offsets and progress).

    `fast`: decode with indexed_bzip2 in the reading thread (for a worker with no core to spare:
    the least CPU), else with the stdlib, the own blocks in a thread beside the parse (see
    `BlockDecoder`). The bytes handed over are the same either way.
    """

    def __init__(self, path: str, start_bit: int, end_bit: int, *, first: bool, fast: bool = False):
        self.path = path
        self._start, self._end = start_bit, end_bit
        self._first = first
        self._fast = fast and fast_bz2_available()
        # the own blocks are read to their end (by the stdlib: in a thread, beside the parse); the
        # tail is read in small steps, only as far as needed
        self._own = BlockDecoder(path, start_bit, end_bit, fast=self._fast, threaded=True)
        self._tail: BlockDecoder | None = None
        self._pieces = self._generate()
        self._pending = b""
        self._offset = 0

    @property
    def count(self) -> int:
        """Bytes from `start_bit // 8` to where decompression has got to in the file."""
        reading = self._tail if self._tail is not None else self._own
        return reading.position - self._start // 8

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_CHUNK), b""))
        # hand out slices of the pending piece without copying its rest again and again
        while self._offset >= len(self._pending):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._pending, self._offset = piece, 0
        data = self._pending[self._offset : self._offset + size]
        self._offset += len(data)
        return data

    def close(self) -> None:
        try:
            for stream in (self._own, self._tail):
                if stream is not None:
                    stream.close()
        finally:
            super().close()

    def _own_chunks(self):
        while True:
            chunk = self._own.read(_DECOMPRESSED_CHUNK)
            if not chunk:
                return
            yield chunk

    def _tail_chunks(self):
        """The decompressed bytes after the own blocks, in small reads: the decompressor goes no
        further into the file than the next range's first <page> needs."""
        self._tail = BlockDecoder(self.path, self._end, None, fast=self._fast, threaded=False)  # empty at the end
        while True:
            chunk = self._tail.read(_TAIL_CHUNK)
            if not chunk:
                return
            yield chunk

    def _generate(self):
        keep = len(_PAGE) - 1
        emitting = self._first
        carry = b""  # the own bytes a <page> tag may begin in (while skipping)
        if not emitting:
            yield b"<mediawiki>"
        for chunk in self._own_chunks():
            if emitting:  # every <page> in the own bytes is this range's: no need to look
                yield chunk
                continue
            buf = carry + chunk
            i = buf.find(_PAGE)
            if i >= 0:
                emitting = True
                yield buf[i:]
            else:
                carry = buf[-keep:]
        tail = self._tail_chunks()
        buf = b""
        search = 0  # tail bytes before this cannot begin the next range's first <page>
        if not emitting:
            # a tag begun in the last own bytes still makes its page this range's
            while len(buf) < keep:
                chunk = next(tail, None)
                if chunk is None:
                    break
                buf += chunk
            i = (carry + buf[:keep]).find(_PAGE)
            if i < 0 or i >= len(carry):
                yield b"</mediawiki>"  # no page begins in this range
                return
            emitting = True
            yield carry[i:]
            search = i + len(_PAGE) - len(carry)
        while True:
            j = buf.find(_PAGE, search)
            if j >= 0:  # the next range's first page: stop before it
                yield buf[:j]
                yield b"</mediawiki>"
                return
            cut = max(len(buf) - keep, 0)
            yield buf[:cut]
            buf, search = buf[cut:], max(search - cut, 0)
            chunk = next(tail, None)
            if chunk is None:
                yield buf  # the end of the file: its own </mediawiki>, or a truncation
                return
            buf += chunk
