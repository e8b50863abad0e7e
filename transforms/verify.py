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
import gzip
import json
import tarfile
import zlib

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap.transforms.files import HashingReader, open_read

TAG_PROBLEMS = "problems"
TARBALL_KINDS = ("tarball", "batch")
PARQUET_KINDS = ("parquet", "text")  # text: the plain-text shards of `--formats text`


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
        except (OSError, EOFError, zlib.error, tarfile.TarError, ValueError) as exc:
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


def _count_tar_lines(reader) -> int:
    """NDJSON lines in a (multi-member) .tar.gz, checking gzip CRCs and tar framing on the way."""
    lines = 0
    # GzipFile reads concatenated members and checks each one's CRC and length.
    with gzip.GzipFile(fileobj=reader, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        for member in tar:
            data = tar.extractfile(member)
            if data is None:
                raise ValueError(f"member {member.name} is not a regular file")
            body = data.read()
            if body and not body.endswith(b"\n"):
                raise ValueError(f"member {member.name} ends inside a line")
            lines += body.count(b"\n")
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
