"""The fast codecs (indexed_bzip2, ISA-L) against the stdlib, on the real dumps in tests/data.

Decoding must give the stdlib's bytes, pages and errors (file, offset, cause); encoding must give
valid, deterministic gzip; and a machine without the wheels must build the same records.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from tests.conftest import ELWIKIVOYAGE, ENWIKI, MULTISTREAM
from wikisnap.transforms.formats import codecs
from wikisnap.transforms.formats.dumpfiles import read_index
from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo

MULTI = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"
INDEX = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-index-p2566p2583.txt.bz2"


def pages_of(path: Path, threads: int, byte_range=None) -> tuple[list, ReadStats]:
    site = read_siteinfo(str(path))
    stats = ReadStats(str(path))
    pages = [
        (p.id, p.title, p.revision.id, p.revision.text)
        for p in iter_pages(str(path), site, stats, byte_range=byte_range, bz2_threads=threads)
    ]
    return pages, stats


@pytest.mark.parametrize("dump", [ENWIKI, ELWIKIVOYAGE, MULTI], ids=["enwiki", "elwikivoyage", "multistream"])
def test_indexed_bzip2_reads_the_pages_and_digests_the_stdlib_reads(dump):
    assert codecs.fast_bz2_available()
    expected, stdlib_stats = pages_of(dump, 0)
    raw = dump.read_bytes()
    for threads in (1, 2, 4):
        pages, stats = pages_of(dump, threads)
        assert pages == expected
        assert stats.error is None and stats.pages == stdlib_stats.pages == len(expected)
        assert stats.md5 == hashlib.md5(raw).hexdigest() == stdlib_stats.md5
        assert stats.sha1 == hashlib.sha1(raw).hexdigest()
        assert stats.bytes_read == len(raw) == stdlib_stats.bytes_read


def test_indexed_bzip2_reads_multistream_ranges_like_the_stdlib():
    offsets, _counts = read_index(str(INDEX))
    size = MULTI.stat().st_size
    bounds = [*offsets[1:], size]  # offsets[0] is the header stream
    ranges = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)] + [(offsets[1], size)]
    assert len(ranges) >= 3
    for byte_range in ranges:
        expected, stdlib_stats = pages_of(MULTI, 0, byte_range)
        pages, stats = pages_of(MULTI, 2, byte_range)
        assert pages == expected and stats.pages == stdlib_stats.pages
        assert stats.md5 == stdlib_stats.md5 == hashlib.md5(MULTI.read_bytes()[slice(*byte_range)]).hexdigest()
        assert stats.bytes_read == byte_range[1] - byte_range[0]


def test_a_cut_bz2_file_keeps_its_good_pages_and_names_the_end(tmp_path):
    raw = ENWIKI.read_bytes()
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    expected, stdlib_stats = pages_of(cut, 0)
    pages, stats = pages_of(cut, 2)
    assert stdlib_stats.error is not None and stats.error is not None
    # both decoders stop at the same bz2 block: the same complete pages come out first
    assert pages == expected and len(pages) > 0
    assert stats.error.path == str(cut) and stats.error.kind == "corrupt"
    assert str(stats.error) == str(stdlib_stats.error)  # the stdlib's words: "end-of-stream marker"
    assert stats.error.offset == stdlib_stats.error.offset == cut.stat().st_size
    assert f"id {expected[-1][0]}" in str(stats.error)


def test_a_flipped_byte_is_a_crc_error_at_its_block(tmp_path):
    raw = bytearray(ENWIKI.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.xml.bz2"
    bad.write_bytes(bytes(raw))
    expected, stdlib_stats = pages_of(bad, 0)
    pages, stats = pages_of(bad, 2)
    assert stats.error is not None and stdlib_stats.error is not None
    assert pages == expected
    assert "Invalid data stream" in str(stats.error) and stats.error.kind == "corrupt"
    # the offset is where the bad block starts: before the flipped byte, after the good pages' bytes
    assert 0 < stats.error.offset <= len(raw) // 2


def test_isal_gzip_is_valid_deterministic_and_close_to_zlib_in_size():
    data = bz2.decompress(ENWIKI.read_bytes())
    members = []
    for _ in range(2):
        comp = codecs.gzip_compressor(3)
        members.append(b"".join(comp.compress(data[i : i + 65536]) for i in range(0, len(data), 65536)) + comp.flush())
    assert members[0] == members[1]
    assert gzip.decompress(members[0]) == data
    assert codecs.gzip_codec(3).startswith("isal ")
    zlib_size = len(zlib.compress(data, 3))
    assert abs(len(members[0]) - zlib_size) / zlib_size < 0.03
    # ISA-L has no levels above 3: those go to zlib, whose bytes they are
    comp = codecs.gzip_compressor(6)
    assert zlib.decompress(comp.compress(data) + comp.flush(), 31) == data
    assert codecs.gzip_codec(6).startswith("zlib ")


def _ndjson_lines(tarball: Path) -> list[bytes]:
    with tarfile.open(tarball, "r:gz") as tar:
        return [line for m in tar for line in tar.extractfile(m).read().splitlines()]


WITHOUT_WHEELS = (
    "import sys\n"
    "for name in ('indexed_bzip2', 'isal', 'isal.igzip', 'isal.isal_zlib', 'orjson'):\n"
    "    sys.modules[name] = None  # as on a platform without their wheels\n"
    "from wikisnap.pipelines.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_without_the_wheels_the_stdlib_builds_the_same_records(tmp_path):
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    for out, cmd in ((fast, ["-m", "wikisnap.pipelines.cli"]), (slow, ["-c", WITHOUT_WHEELS])):
        done = subprocess.run(
            [sys.executable, *cmd, "build", str(ENWIKI), "--out", str(out)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    fast_manifest = json.loads((fast / "manifest.json").read_text())
    slow_manifest = json.loads((slow / "manifest.json").read_text())
    assert fast_manifest["codecs"]["bz2"].startswith("indexed_bzip2") and fast_manifest["codecs"]["gzip"].startswith(
        "isal"
    )
    assert slow_manifest["codecs"] == {"bz2": "bz2 (stdlib)", "gzip": f"zlib {zlib.ZLIB_RUNTIME_VERSION} level 3"}
    tarball = "enwiki_namespace_0.tar.gz"
    assert _ndjson_lines(fast / tarball) == _ndjson_lines(slow / tarball)
    assert len(_ndjson_lines(fast / tarball)) == 106
    # Parquet does not depend on the gzip codec: the same bytes
    fast_parquet = sorted((fast / "parquet").rglob("*.parquet"))
    assert fast_parquet and [p.read_bytes() for p in fast_parquet] == [
        (slow / p.relative_to(fast)).read_bytes() for p in fast_parquet
    ]
    assert fast_manifest["inputs"] == slow_manifest["inputs"]
