"""Read back every staged output before it is published: sizes, md5s, gzip members, tar structure, rows.

VerifyOutputs   OutputFile → OutputFile (records filled in where the writer copied a file and did
                not count) and, on a second output, one problem string per file that does not
                hold what the run wrote. Runs on the workers, one file per element, so a
                cluster verifies in parallel and the launcher only reads the small results.

What is checked, per kind of file:
- every file: its bytes and md5 equal what the writer reported (the storage kept what was written);
- tarballs and hourly batches: every gzip member decompresses with a good CRC, the tar stream is
  well-formed to its end-of-archive blocks, members hold whole NDJSON lines, and the line count
  equals the records written;
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

from wikisnap.transforms.codecs import DECOMPRESS_ERRORS, gzip_reader
from wikisnap.transforms.files import TAR_BLOCK, HashingReader, open_read

TAG_PROBLEMS = "problems"
TARBALL_KINDS = ("tarball", "batch")
PARQUET_KINDS = ("parquet", "text")  # text: the plain-text shards of `--formats text`
_ZERO_BLOCK = bytes(TAR_BLOCK)


def verify_file(output) -> tuple[int | None, list[str]]:
    """Check one written file against its OutputFile; returns (records counted or None, problems)."""
    problems: list[str] = []
    counted: int | None = None
    with open_read(output.path) as raw:
        reader = HashingReader(raw, sha1=False)
        try:
            if output.kind in TARBALL_KINDS:
                counted = _count_tar_lines(reader)
            elif output.kind == "deadletter":
                counted = _count_lines(reader)
            elif output.kind.endswith("metadata"):
                json.loads(reader.read())
        except (*DECOMPRESS_ERRORS, tarfile.TarError, ValueError) as exc:
            problems.append(f"{output.path}: unreadable ({exc})")
        reader.drain()
    if reader.count != output.bytes:
        problems.append(f"{output.path}: {reader.count:,} bytes on storage, {output.bytes:,} written")
    if reader.md5.hexdigest() != output.md5:
        problems.append(f"{output.path}: md5 {reader.md5.hexdigest()} on storage, {output.md5} written")
    if output.kind in PARQUET_KINDS:
        try:
            with open_read(output.path) as f:
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


class _VerifyFn(beam.DoFn):
    def setup(self) -> None:
        self.c_ok = Metrics.counter("wikisnap", "outputs_verified")
        self.c_bad = Metrics.counter("wikisnap", "outputs_failed_verification")

    def process(self, output):
        counted, problems = verify_file(output)
        if problems:
            self.c_bad.inc()
            for problem in problems:
                yield beam.pvalue.TaggedOutput(TAG_PROBLEMS, problem)
        else:
            self.c_ok.inc()
        if counted is not None and not output.records:
            output = dataclasses.replace(output, records=counted)
        yield output


class VerifyOutputs(beam.PTransform):
    """OutputFile → DoOutputsTuple(main: OutputFile, problems: str)."""

    def expand(self, outputs):
        return outputs | "ReadBackEachFile" >> beam.ParDo(_VerifyFn()).with_outputs(TAG_PROBLEMS, main="verified")
