"""Read back every staged output before it is published: sizes, md5s, gzip members, tar structure, rows.

VerifyOutputs   OutputFile → OutputFile (records filled in where the writer copied a file and did
                not count) and, on a second output, one problem string per file that does not
                hold what the run wrote. Runs on the workers, one file per element, so a
                cluster verifies in parallel and the launcher only reads the small results.

What is checked, per kind of file:
- every file: its bytes and md5 equal what the writer reported (the storage kept what was written);
- tarballs and hourly batches: every gzip member decompresses with a good CRC, the tar stream is
  well-formed to its end-of-archive blocks, members hold whole NDJSON lines, and the line count
  equals the records written (an update's members copied from its base are hashed, not inflated:
  `_count_tar_lines_copied`);
- Parquet shards (full records and plain text): the footer reads and its row count equals the
  records written;
- dead letters: the line count equals the letters written; metadata: it parses as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import tarfile

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap.transforms.formats.codecs import DECOMPRESS_ERRORS, gzip_decompressor, gzip_reader
from wikisnap.transforms.formats.fs import HashingReader, open_read, open_read_arrow
from wikisnap.transforms.formats.tarball import TAR_BLOCK
from wikisnap.transforms.pooled import PooledDoFn

TAG_PROBLEMS = "problems"
TARBALL_KINDS = ("tarball", "batch", "structured-tarball")
# text: the plain-text shards of `--formats text`; structured-parquet: of `--formats structured`
PARQUET_KINDS = ("parquet", "text", "structured-parquet")
_ZERO_BLOCK = bytes(TAR_BLOCK)


def verify_file(output) -> tuple[int | None, list[str]]:
    """Check one written file against its OutputFile; returns (records counted or None, problems)."""
    problems: list[str] = []
    counted: int | None = None
    with open_read(output.path) as raw:
        # hashed on a helper thread while this one inflates and counts
        reader = HashingReader(raw, sha1=False, beside=True)
        try:
            if output.kind in TARBALL_KINDS and output.copied:
                counted = _count_tar_lines_copied(reader, output.copied)
            elif output.kind in TARBALL_KINDS:
                counted = _count_tar_lines(reader)
            elif output.kind == "deadletter":
                counted = _count_lines(reader)
            elif output.kind.endswith("metadata"):
                json.loads(reader.read())
        except (*DECOMPRESS_ERRORS, tarfile.TarError, ValueError) as exc:
            problems.append(f"{output.path}: unreadable ({exc})")
        reader.drain()
        reader.close()
    if reader.count != output.bytes:
        problems.append(f"{output.path}: {reader.count:,} bytes on storage, {output.bytes:,} written")
    if reader.md5.hexdigest() != output.md5:
        problems.append(f"{output.path}: md5 {reader.md5.hexdigest()} on storage, {output.md5} written")
    if output.kind in PARQUET_KINDS:
        try:
            with open_read_arrow(output.path) as f:
                counted = pq.ParquetFile(f).metadata.num_rows
        except (OSError, ValueError) as exc:
            problems.append(f"{output.path}: unreadable Parquet ({exc})")
    # A writer that copied a file without reading it reports 0 records: the count is filled in.
    if counted is not None and output.records and counted != output.records:
        problems.append(f"{output.path}: {counted:,} records on storage, {output.records:,} written")
    return counted, problems


def _count_lines(reader) -> int:
    lines = 0
    while chunk := reader.read(1 << 22):
        lines += chunk.count(b"\n")
    return lines


def _read_exact(stream, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ValueError(f"archive cut short in {what}")
    return data


def _count_tar_lines(reader) -> int:
    """NDJSON lines in a (multi-member) .tar.gz, checking gzip CRCs and tar framing on the way.

    The tar stream is walked header by header (ustar, which is all a snapshot holds) and member
    data read in 4 MB pieces: `tarfile`'s stream mode reads 10 kB at a time and spent twice the
    inflate time copying buffers.
    """
    lines = 0
    # GzipFile reads concatenated members and checks each one's CRC and length.
    with gzip_reader(reader) as gz:
        while True:
            header = _read_exact(gz, TAR_BLOCK, "a tar header")
            if header == _ZERO_BLOCK:
                _read_exact(gz, TAR_BLOCK, "the end-of-archive blocks")
                break
            # checks the header's checksum and fields (tarfile.HeaderError otherwise)
            member = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
            if not member.isreg():
                raise ValueError(f"member {member.name} is not a regular file")
            left, last = member.size, b""
            # in 4 MB pieces: a member is up to --member-size-mb of NDJSON
            while left:
                chunk = gz.read(min(left, 1 << 22))
                if not chunk:
                    raise ValueError(f"member {member.name} cut short ({left:,} of {member.size:,} bytes missing)")
                lines += chunk.count(b"\n")
                left -= len(chunk)
                last = chunk
            if last and not last.endswith(b"\n"):
                raise ValueError(f"member {member.name} ends inside a line")
            _read_exact(gz, -member.size % TAR_BLOCK, f"the padding of member {member.name}")
        trailer = gz.read()
    if trailer.strip(b"\0"):
        raise ValueError("bytes after the end-of-archive blocks")
    return lines


def _count_tar_lines_copied(reader, copied: tuple[tuple[int, int, int], ...]) -> int:
    """`_count_tar_lines` of a tarball in wikisnap's layout (one gzip member per tar header, one
    per member's data, one for the end blocks) whose data members at `copied` — `(start, end,
    lines)` — are byte copies of base members: their bytes only pass through `reader` (md5, size)
    and count their known lines; every other member is inflated and checked as before.

    An update copies members whose bytes carry the base's published md5 and whose line count is
    their base shard's (md5 checked too): they were read back when the base was published.
    """
    spans = {start: (end, lines) for start, end, lines in copied}
    buf, pos = b"", 0  # raw bytes read but not used yet, from file offset `pos`
    lines, size, expect = 0, 0, "header"

    def more() -> bool:
        nonlocal buf
        data = reader.read(1 << 20)  # (smaller reads reuse heap memory: see merge.READ_SIZE)
        buf += data
        return bool(data)

    while buf or more():
        if pos in spans:
            if expect != "data":
                raise ValueError(f"a copied member at byte {pos:,} does not follow a tar header")
            end, count = spans.pop(pos)
            while pos + len(buf) < end:
                pos, buf = pos + len(buf), b""
                if not more():
                    raise ValueError(f"ends inside the copied member at bytes {pos:,}-{end:,}")
            buf, pos = buf[end - pos :], end
            lines, expect = lines + count, "header"
            continue
        if expect == "end":
            raise ValueError(f"bytes after the end-of-archive blocks (at byte {pos:,})")
        d = gzip_decompressor()
        taken, newlines, last, head = 0, 0, b"", b""
        while True:
            out = d.decompress(buf)
            if expect == "data":
                limit = min(len(out), max(0, size - taken))  # the NDJSON, then the tar padding
                newlines += out.count(b"\n", 0, limit)
                last = out[limit - 1 : limit] if limit else last
                if limit < len(out) and out[limit:].strip(b"\0"):
                    raise ValueError(f"tar padding that is not zeros (at byte {pos:,})")
            elif len(head) + len(out) <= 2 * tarfile.BLOCKSIZE:
                head += out
            else:
                raise ValueError(
                    f"a gzip member of {len(head) + len(out):,}+ bytes where a tar header is (byte {pos:,})"
                )
            taken += len(out)
            if d.eof:
                pos += len(buf) - len(d.unused_data)
                buf = d.unused_data
                break
            pos, buf = pos + len(buf), b""
            if not more():
                raise EOFError(f"cut off inside the gzip member ending at byte {pos:,}")
        if expect == "data":
            if taken != size + (-size % tarfile.BLOCKSIZE):
                raise ValueError(f"a data member of {taken:,} bytes, its header says {size:,} (+ padding)")
            if size and last != b"\n":
                raise ValueError(f"a member ends inside a line (at byte {pos:,})")
            lines, expect = lines + newlines, "header"
        elif head == bytes(2 * tarfile.BLOCKSIZE):
            expect = "end"
        else:
            info = tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
            if not info.isfile():
                raise ValueError(f"member {info.name} is not a regular file")
            size, expect = info.size, "data"
    if expect != "end" or spans:
        raise ValueError(
            "no end-of-archive blocks" if expect != "end" else f"copied members not found: {sorted(spans)}"
        )
    return lines


# Files read back at once by one worker: a tarball's read-back inflates on one core while its md5
# runs on the other, which then idles a third of the time; the Parquet shards' md5s, read back
# after it one by one, were 0.2 s of an update's wall time that fit there.
VERIFY_THREADS = 2


class _VerifyFn(PooledDoFn):
    """OutputFile → itself (records filled in) and its problems. Each file is read back on a pool
    of `VERIFY_THREADS` threads as it comes (`PooledDoFn`); the outputs come out in the order the
    files came."""

    threads = VERIFY_THREADS
    thread_name = "wikisnap-verify"

    def setup(self) -> None:
        super().setup()
        self.c_ok = Metrics.counter("wikisnap", "outputs_verified")
        self.c_bad = Metrics.counter("wikisnap", "outputs_failed_verification")
        self.c_hashed = Metrics.counter("wikisnap", "copied_members_hashed_not_inflated")

    def work(self, output):
        return verify_file(output)

    def outputs(self, output, result):
        """The checked file's outputs (counters counted here, on the bundle's own thread)."""
        if output.copied:
            self.c_hashed.inc(len(output.copied))
        counted, problems = result
        if problems:
            self.c_bad.inc()
            for problem in problems:
                yield beam.pvalue.TaggedOutput(TAG_PROBLEMS, problem)
        else:
            self.c_ok.inc()
        if counted is not None and not output.records:
            output = dataclasses.replace(output, records=counted)
        if output.copied is not None:
            output = dataclasses.replace(output, copied=None)  # a hint for this check, not for the manifest
        yield output


class VerifyOutputs(beam.PTransform):
    """OutputFile → DoOutputsTuple(main: OutputFile, problems: str)."""

    def expand(self, outputs):
        return outputs | "ReadBackEachFile" >> beam.ParDo(_VerifyFn()).with_outputs(TAG_PROBLEMS, main="verified")
