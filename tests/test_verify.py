"""The read-back of tarballs before commit, on the enwiki sample's real tarball and damaged copies of it."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from wikisnap.transforms.formats.tarball import TAR_BLOCK
from wikisnap.transforms.verify import verify_file
from wikisnap.transforms.write import OutputFile


@pytest.fixture(scope="module")
def real_tarball(enwiki_build):
    path = enwiki_build / "enwiki_namespace_0.tar.gz"
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar]
    return path.read_bytes(), members


def output_for(path, data: bytes, records: int) -> OutputFile:
    return OutputFile("tarball", "enwiki", 0, str(path), len(data), hashlib.md5(data).hexdigest(), records)


def check(tmp_path, data: bytes, records: int) -> tuple[int | None, list[str]]:
    path = tmp_path / "enwiki_namespace_0.tar.gz"
    path.write_bytes(data)
    return verify_file(output_for(path, data, records))


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]], after: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buf.getvalue() + after, mtime=0)


def regular(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def test_the_real_tarball_reads_back_with_its_line_count(tmp_path, real_tarball):
    data, members = real_tarball
    lines = sum(body.count(b"\n") for _, body in members)
    assert lines > 100
    assert check(tmp_path, data, lines) == (lines, [])
    counted, problems = check(tmp_path, data, lines + 1)
    assert counted == lines and problems == [
        f"{tmp_path}/enwiki_namespace_0.tar.gz: {lines:,} records on storage, {lines + 1:,} written"
    ]


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("member ends mid-line", "ends inside a line"),
        ("a symlink member", "is not a regular file"),
        ("bytes after the archive", "bytes after the end-of-archive blocks"),
        ("no end-of-archive blocks", "archive cut short in a tar header"),
        ("bad header checksum", "unreadable"),
        ("gzip cut short", "unreadable"),
    ],
)
def test_a_damaged_tarball_is_named_with_its_problem(tmp_path, real_tarball, damage, problem):
    data, members = real_tarball
    name, body = members[0]
    if damage == "member ends mid-line":
        cut = body[: body.index(b"\n") + 50]
        bad = tar_gz([(regular(name, cut), cut)])
    elif damage == "a symlink member":
        link = tarfile.TarInfo("enwiki_namespace_0_9.ndjson")
        link.type, link.linkname = tarfile.SYMTYPE, name
        bad = tar_gz([(regular(name, body), body), (link, b"")])
    elif damage == "bytes after the archive":
        bad = tar_gz([(regular(name, body), body)], after=b"\0" * TAR_BLOCK + b"junk")
    elif damage == "no end-of-archive blocks":
        raw = gzip.decompress(tar_gz([(regular(name, body), body)]))
        bad = gzip.compress(raw[: TAR_BLOCK + len(body) + (-len(body) % TAR_BLOCK)], mtime=0)
    elif damage == "bad header checksum":
        raw = bytearray(gzip.decompress(tar_gz([(regular(name, body), body)])))
        raw[10] ^= 0x20  # a letter of the member name
        bad = gzip.compress(bytes(raw), mtime=0)
    else:
        bad = data[: len(data) // 2]
    counted, problems = check(tmp_path, bad, body.count(b"\n"))
    assert len(problems) == 1 and problem in problems[0], problems
    assert problems[0].startswith(f"{tmp_path}/enwiki_namespace_0.tar.gz: ")
