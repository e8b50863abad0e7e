"""Plain .bz2 dumps split at bz2 block boundaries: finder, planner, re-packed streams, page
ownership, errors, and builds with several ranges giving the same bytes as one reader."""

from __future__ import annotations

import bz2
import hashlib
import json
import re
import shutil

import pytest
from httpserver import LoopbackServer

from conftest import BGWIKI_UTF16, ELWIKIVOYAGE, ENWIKI, MULTISTREAM, VIWIKI_TRUNCATED, XML, read_xml_bytes
from wikisnap.pipelines.build import discover_units
from wikisnap.pipelines.options import BuildConfig
from wikisnap.transforms.formats import bz2blocks
from wikisnap.transforms.formats.bz2blocks import (
    BLOCK_MAGIC,
    EOS_MAGIC,
    BlockDecoder,
    BlockStream,
    find_magic,
    plan_blocks,
)
from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo

MULTI = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"
MULTI_SINGLE = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-p2566p2583.xml.bz2"
# a multistream file without its <siteinfo> stream: it starts with an empty bz2 stream
NOHEADER = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-noheader-p2566p2583.xml.bz2"


def outputs(folder):
    """md5 of every snapshot file (tarballs, metadata, parquet) under an output folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".gz", ".json", ".parquet"))
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in files if p.name != "manifest.json"
    }


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def shifted(data: bytes, k: int) -> bytes:
    """`data` with `k` zero bits in front (padded with zero bits to whole bytes at the end)."""
    bits = len(data) * 8 + k
    value = int.from_bytes(data, "big") << ((-bits) % 8)
    return value.to_bytes((bits + 7) // 8, "big")


# -- finding magics --------------------------------------------------------------------------------


def test_block_magics_are_found_at_every_bit_shift():
    data = ENWIKI.read_bytes()
    blocks = find_magic(data, BLOCK_MAGIC)
    assert blocks[0] == 32 and len(blocks) == 7  # 6.1 MB of XML in 900 KB blocks
    assert len({b % 8 for b in blocks}) > 1  # real blocks do start mid-byte
    [eos] = find_magic(data, EOS_MAGIC)
    assert 0 <= len(data) * 8 - (eos + 80) < 8
    for k in range(8):
        moved = shifted(data, k)
        assert find_magic(moved, BLOCK_MAGIC) == [b + k for b in blocks]
        assert find_magic(moved, EOS_MAGIC) == [eos + k]
        # a search window that starts or ends inside a magic does not report it
        assert find_magic(moved, BLOCK_MAGIC, blocks[1] + k + 1) == [b + k for b in blocks[2:]]
        assert find_magic(moved, BLOCK_MAGIC, 0, blocks[1] + k) == [32 + k]


# -- planning and re-packed streams ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target", "ranges"),
    [(ENWIKI, 50_000, 7), (ELWIKIVOYAGE, 200_000, 9), (MULTI, 3_000, 5), (NOHEADER, 3_000, 5)],
)
def test_block_ranges_tile_the_file_and_decompress_to_it(path, target, ranges):
    data = path.read_bytes()
    plan = plan_blocks(str(path), len(data), target)
    assert plan is not None and len(plan.ranges) == ranges
    assert plan.bounds[0] == 32 and all(a < b for a, b in plan.ranges)
    assert set(plan.bounds[1:-1]) <= set(find_magic(data, BLOCK_MAGIC))
    parts = [bz2.decompress(BlockStream(str(path), a, b).read()) for a, b in plan.ranges]
    assert b"".join(parts) == bz2.decompress(data)  # across the stream ends of the multistream files too
    assert all(parts[:-1])


def test_small_read_windows_give_the_same_streams(monkeypatch):
    """Magics cut by the edge of the read window are still found (1 KB windows instead of 1 MB)."""
    data = ELWIKIVOYAGE.read_bytes()
    plan = plan_blocks(str(ELWIKIVOYAGE), len(data), 200_000)
    before = [BlockStream(str(ELWIKIVOYAGE), a, b).read() for a, b in plan.ranges]
    monkeypatch.setattr(bz2blocks, "_CHUNK", 1000)
    monkeypatch.setattr(bz2blocks, "_WINDOW", 1000)
    assert plan_blocks(str(ELWIKIVOYAGE), len(data), 200_000) == plan
    assert [BlockStream(str(ELWIKIVOYAGE), a, b).read() for a, b in plan.ranges] == before


def decode(decoder: BlockDecoder, chunk: int = 1 << 20) -> bytes:
    try:
        return b"".join(iter(lambda: decoder.read(chunk), b""))
    finally:
        decoder.close()


@pytest.mark.parametrize(
    ("path", "target"), [(ENWIKI, 50_000), (ELWIKIVOYAGE, 200_000), (MULTI, 3_000), (NOHEADER, 3_000)]
)
def test_indexed_bzip2_decodes_block_ranges_as_the_stdlib_does(path, target):
    """indexed_bzip2 reading the file itself from a range's first block (no re-packed stream) gives
    the stdlib's bytes, range by range and for the rest of the file after each cut, across stream
    ends; it does not fall back to the stdlib on good data."""
    data = path.read_bytes()
    plan = plan_blocks(str(path), len(data), target)
    whole = bz2.decompress(data)
    parts = []
    for start, end in plan.ranges:
        fast = BlockDecoder(str(path), start, end, fast=True, threaded=False)
        part = decode(fast, chunk=100_000)
        assert fast.fast, (start, end)  # still indexed_bzip2 at the end
        assert part == decode(BlockDecoder(str(path), start, end, fast=False, threaded=True))
        parts.append(part)
        rest = BlockDecoder(str(path), start, None, fast=True, threaded=False)
        assert decode(rest) == whole[sum(map(len, parts[:-1])) :]
    assert b"".join(parts) == whole


def test_indexed_bzip2_on_a_corrupt_block_gives_the_stdlib_bytes_and_error(tmp_path):
    """A damaged block: indexed_bzip2 fails on it; the stdlib decodes the range again from the
    first byte not handed over, so the same good bytes come out, then the stdlib's own error."""
    data = bytearray(ENWIKI.read_bytes())
    blocks = find_magic(bytes(data), BLOCK_MAGIC)
    data[(blocks[3] + blocks[4]) // 16] ^= 0x55  # a byte in the middle of the 4th block
    bad = tmp_path / "enwiki-damaged.xml.bz2"
    bad.write_bytes(bytes(data))
    got = {}
    for fast in (True, False):
        decoder = BlockDecoder(str(bad), blocks[1], blocks[5], fast=fast, threaded=False)
        out = bytearray()
        with pytest.raises(OSError) as caught:
            while chunk := decoder.read(200_000):
                out += chunk
        got[fast] = (bytes(out), str(caught.value), decoder.position)
        assert not decoder.fast
        decoder.close()
    assert got[True] == got[False]
    good = bz2.decompress(BlockStream(str(ENWIKI), blocks[1], blocks[3]).read())  # the blocks before
    out, error, position = got[True]
    assert out == good[: len(out)] and len(out) > len(good) - 200_000  # all but the read it failed in
    assert "Invalid data stream" in error and blocks[3] // 8 <= position <= blocks[5] // 8


def test_files_not_ending_in_a_stream_end_are_not_planned(tmp_path):
    data = ENWIKI.read_bytes()
    for name, content in [("cut", data[: len(data) // 2]), ("tail", data + b"\0" * 20), ("gzip", b"\x1f\x8b" + data)]:
        path = tmp_path / f"{name}.bz2"
        path.write_bytes(content)
        assert plan_blocks(str(path), len(content), 100_000) is None, name


# -- page ownership ----------------------------------------------------------------------------------


def pages_by_range(path, target, bz2_threads=0):
    """Page ids read from each block range of `path` (bz2_threads 1: decoded by indexed_bzip2)."""
    site = read_siteinfo(str(path))
    plan = plan_blocks(str(path), path.stat().st_size, target)
    per_range, errors = [], []
    for start, end in plan.ranges:
        stats = ReadStats(str(path))
        pages = iter_pages(str(path), site, stats, blocks=(start, end), bz2_threads=bz2_threads)
        per_range.append([p.id for p in pages])
        errors.append(stats.error)
    return per_range, errors


def whole_ids(path):
    site = read_siteinfo(str(path))
    stats = ReadStats(str(path))
    ids = [p.id for p in iter_pages(str(path), site, stats)]
    assert stats.error is None
    return ids


@pytest.mark.parametrize("bz2_threads", [0, 1])
@pytest.mark.parametrize(("path", "target"), [(ENWIKI, 50_000), (ELWIKIVOYAGE, 50_000), (MULTI, 3_000)])
def test_every_page_is_read_by_exactly_one_range(path, target, bz2_threads):
    per_range, errors = pages_by_range(path, target, bz2_threads)
    assert errors == [None] * len(per_range)
    assert [i for ids in per_range for i in ids] == whole_ids(path)
    assert sum(1 for ids in per_range if ids) > 1


def test_a_range_in_which_no_page_begins_reads_none():
    per_range, errors = pages_by_range(ELWIKIVOYAGE, 50_000)
    # a page of the real sample longer than a whole block: the range inside it owns no page
    assert [] in per_range[1:-1] and errors == [None] * len(per_range)
    assert len(per_range) == 13


@pytest.mark.parametrize("bz2_threads", [0, 1])
@pytest.mark.parametrize("chunk", [1, 5, 7, 4096])
def test_page_tags_cut_by_decompressed_chunks(monkeypatch, chunk, bz2_threads):
    monkeypatch.setattr(bz2blocks, "_DECOMPRESSED_CHUNK", chunk)
    monkeypatch.setattr(bz2blocks, "_TAIL_CHUNK", chunk)
    per_range, errors = pages_by_range(MULTI, 3_000, bz2_threads)
    assert errors == [None] * len(per_range)
    assert [i for ids in per_range for i in ids] == whole_ids(MULTI)


def block_lengths(path):
    """Decompressed length of each bz2 block of a file."""
    data = path.read_bytes()
    bounds = [*find_magic(data, BLOCK_MAGIC), find_magic(data, EOS_MAGIC)[-1]]
    return [len(bz2.decompress(BlockStream(str(path), a, b).read())) for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("bz2_threads", [0, 1])
@pytest.mark.parametrize("before", [0, 1, 5, 6])
def test_a_page_tag_across_the_block_boundary(tmp_path, before, bz2_threads):
    """Real elwikivoyage pages re-compressed at level 1 (100 KB blocks), with filler text in the
    first page moving a `<page>` tag so that `before` of its bytes end the first block: the range
    whose bytes hold its `<` owns the page, whoever holds the rest of the tag."""
    xml = read_xml_bytes(ELWIKIVOYAGE)
    original = xml[: xml.index(b"</page>", 250_000)] + b"</page>\n</mediawiki>\n"  # three blocks
    text_at = original.index(b">", original.index(b"<text ")) + 1
    path = tmp_path / "moved.xml.bz2"
    page = None
    length = 0
    for _attempt in range(10):
        # filler without runs: bzip2's run-length step shrinks runs, so the block's byte count
        # moves a little with what the filler pushes out of it; a few rounds settle it
        xml = original[:text_at] + (b"xy" * length)[:length] + original[text_at:]
        path.write_bytes(bz2.compress(xml, 1))
        boundary = block_lengths(path)[0]
        if page is None:
            page = max(m.start() for m in re.finditer(b"<page>", original[: boundary - before + 1]))
        tag = page + length
        if tag == boundary - before:
            break
        length += boundary - before - tag
    else:
        pytest.fail("could not move a <page> onto the block boundary")
    assert xml.startswith(b"<page>", tag)
    data = path.read_bytes()
    blocks = find_magic(data, BLOCK_MAGIC)
    end = find_magic(data, EOS_MAGIC)[-1]
    site = read_siteinfo(str(path))
    stats = [ReadStats(str(path)), ReadStats(str(path))]
    first = [p.id for p in iter_pages(str(path), site, stats[0], blocks=(32, blocks[1]), bz2_threads=bz2_threads)]
    rest = [p.id for p in iter_pages(str(path), site, stats[1], blocks=(blocks[1], end), bz2_threads=bz2_threads)]
    assert stats[0].error is None and stats[1].error is None
    assert first + rest == whole_ids(path)
    moved_id = int(re.search(rb"<id>(\d+)</id>", xml[tag : tag + 500]).group(1))
    assert (moved_id in first) == (before > 0) and (moved_id in rest) == (before == 0)


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bz2_threads", [0, 1])
def test_a_wrong_cut_fails_loudly(bz2_threads):
    data = ENWIKI.read_bytes()
    site = read_siteinfo(str(ENWIKI))
    blocks = find_magic(data, BLOCK_MAGIC)
    eos = find_magic(data, EOS_MAGIC)[0]
    for start, end, needle in [
        (32, blocks[2] + 1, "is not a bz2 block boundary"),  # a cut one bit off
        (blocks[1] - 8, eos, "no bz2 block starts at bit"),
        (32, blocks[1] - 3, "is not a bz2 block boundary"),
    ]:
        stats = ReadStats(str(ENWIKI))
        list(iter_pages(str(ENWIKI), site, stats, blocks=(start, end), bz2_threads=bz2_threads))
        assert stats.error is not None and stats.error.kind == "corrupt", (start, end)
        assert needle in str(stats.error) and ENWIKI.name in str(stats.error) and "at byte" in str(stats.error)


def test_corrupt_block_fails_the_run_naming_file_and_offset(build, tmp_path):
    data = bytearray(ENWIKI.read_bytes())
    blocks = find_magic(bytes(data), BLOCK_MAGIC)
    at = (blocks[3] + blocks[4]) // 16  # a byte in the middle of the 4th block
    data[at] ^= 0x55
    bad = tmp_path / "enwiki-damaged.xml.bz2"
    bad.write_bytes(bytes(data))
    config = BuildConfig(inputs=[str(bad)], out=str(tmp_path / "x"), workers=2, unit_mb=0.3)
    assert [u.kind for u in discover_units(config)] == ["blocks"] * 7
    code, _, err = build([bad], tmp_path / "o", "--workers", "2", "--unit-mb", "0.3", "--bz2-threads", "1")
    assert code == 2 and "Traceback" not in err
    assert bad.name in err and "bz2 data is truncated or corrupt" in err and "nothing was published" in err
    offset = int(re.search(r"at byte ([\d,]+)", err).group(1).replace(",", ""))
    assert blocks[3] // 8 <= offset <= blocks[5] // 8  # where decompression found the damaged block
    assert not list((tmp_path / "o").glob("*.tar.gz"))


def test_truncated_bz2_is_read_whole_and_reported_as_before(build, tmp_path):
    data = ENWIKI.read_bytes()
    cut = tmp_path / "enwiki-cut.xml.bz2"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    config = BuildConfig(inputs=[str(cut)], out=str(tmp_path / "x"), workers=2, unit_mb=0.3)
    assert [u.kind for u in discover_units(config)] == ["file"]
    code, _, err = build([cut], tmp_path / "o", "--workers", "2", "--unit-mb", "0.3")
    assert code == 2 and cut.name in err and "truncated or corrupt" in err and "at byte" in err


def test_truncated_xml_in_a_whole_bz2_is_still_a_truncation(build, tmp_path):
    """Real XML cut mid-page and compressed whole: the last range must see no </mediawiki>."""
    xml = read_xml_bytes(ENWIKI)
    cut = tmp_path / "enwiki-xmlcut.xml.bz2"
    cut.write_bytes(bz2.compress(xml[: int(len(xml) * 0.8)]))
    flags = ("--workers", "2", "--unit-mb", "0.2")
    code, _, err = build([cut], tmp_path / "o", *flags)
    assert code == 2 and cut.name in err and "ends without </mediawiki>: the file is truncated" in err
    assert "nothing was published" in err
    # --allow-truncated keeps the same complete pages as one reader does
    assert build([cut], tmp_path / "one", "--allow-truncated")[0] == 0
    assert build([cut], tmp_path / "split", "--allow-truncated", *flags)[0] == 0
    one, split = manifest(tmp_path / "one"), manifest(tmp_path / "split")
    assert split["inputs"][0]["units"] > 1 and one["inputs"][0]["pages"] == split["inputs"][0]["pages"]
    assert outputs(tmp_path / "one") == outputs(tmp_path / "split")


# -- builds ------------------------------------------------------------------------------------------


def counts_without_timing(m):
    return {db: {k: v for k, v in c.items() if not k.startswith("retries/")} for db, c in m["counts"].items()}


@pytest.mark.parametrize("path", [ENWIKI, ELWIKIVOYAGE])
def test_two_workers_on_one_single_stream_file_give_the_same_bytes(build, tmp_path, path):
    one = tmp_path / "one"
    assert build([path], one)[0] == 0
    assert manifest(one)["inputs"][0]["units"] == 1
    # one bz2 thread per worker: indexed_bzip2 decodes the ranges; two: the stdlib, beside the parse
    two = ("--workers", "2", "--unit-mb", "0.2", "--bz2-threads", "1")
    for name, flags in [("two", two), ("split1", ("--unit-mb", "0.2", "--bz2-threads", "2"))]:
        code, _, err = build([path], tmp_path / name, *flags)
        assert code == 0, err
        m = manifest(tmp_path / name)
        [entry] = m["inputs"]
        assert entry["units"] >= 7 and entry["pages"] == manifest(one)["inputs"][0]["pages"]
        assert outputs(tmp_path / name) == outputs(one) and outputs(one)
        assert counts_without_timing(m) == counts_without_timing(manifest(one))


def test_multistream_without_its_index_is_split_at_blocks(build, tmp_path):
    lone = tmp_path / "in" / "elwv-pages-articles-multistream.xml.bz2"
    lone.parent.mkdir()
    shutil.copy(MULTI, lone)
    config = BuildConfig(inputs=[str(lone)], out=str(tmp_path / "x"), workers=2, unit_mb=0.004)
    assert [u.kind for u in discover_units(config)] == ["blocks"] * 5
    code, _, err = build([lone], tmp_path / "split", "--workers", "2", "--unit-mb", "0.004")
    assert code == 0, err
    assert build([MULTI_SINGLE], tmp_path / "single")[0] == 0
    assert outputs(tmp_path / "split") == outputs(tmp_path / "single")
    assert manifest(tmp_path / "split")["inputs"][0]["pages"] == 17


def test_block_ranges_over_http_with_range_requests(build, tmp_path):
    with LoopbackServer(XML) as server:
        url = server.url(ENWIKI.name)
        config = BuildConfig(inputs=[url], out=str(tmp_path / "x"), workers=2, unit_mb=0.3)
        assert {u.kind for u in discover_units(config)} == {"blocks"}
        code, _, err = build([url], tmp_path / "http", "--workers", "2", "--unit-mb", "0.3")
        assert code == 0, err
    assert build([ENWIKI], tmp_path / "local")[0] == 0
    assert outputs(tmp_path / "http") == outputs(tmp_path / "local")
    with LoopbackServer(XML, ranges=False) as server:
        config = BuildConfig(inputs=[server.url(ENWIKI.name)], out=str(tmp_path / "y"), workers=2, unit_mb=0.3)
        assert [u.kind for u in discover_units(config)] == ["file"]


def test_files_that_are_not_split(tmp_path):
    gz = tmp_path / "enwiki.xml.gz"
    import gzip

    gz.write_bytes(gzip.compress(read_xml_bytes(ENWIKI)))

    def kinds(path, workers=2, unit_mb=0.3):
        return [
            u.kind
            for u in discover_units(
                BuildConfig(inputs=[str(path)], out=str(tmp_path / "o"), workers=workers, unit_mb=unit_mb)
            )
        ]

    assert kinds(gz) == ["file"]  # gzip
    assert kinds(VIWIKI_TRUNCATED, unit_mb=0.01) == ["file"]  # plain XML
    assert kinds(BGWIKI_UTF16, unit_mb=0.001) == ["file"]  # UTF-16 XML
    assert kinds(ENWIKI, workers=1, unit_mb=64) == ["file"]  # one local worker, within --unit-mb
    # 2 workers, but 1.7 MB is below the 8 MB floor (MIN_UNIT_BYTES): a range would cost more than it gains
    assert kinds(ENWIKI, workers=2, unit_mb=64) == ["file"]
    assert kinds(ENWIKI, workers=2, unit_mb=1.6) == ["blocks"] * 7  # ~4 ranges per worker, whole blocks
    assert kinds(ENWIKI, workers=1, unit_mb=0.5) == ["blocks"] * 4  # --unit-mb caps a unit


def test_checksums_of_a_block_split_file_are_verified(build, tmp_path):
    sums = tmp_path / "md5sums.txt"
    digest = hashlib.md5(ENWIKI.read_bytes()).hexdigest()
    sums.write_text(f"{digest}  {ENWIKI.name}\n")
    config = BuildConfig(inputs=[str(ENWIKI)], out=str(tmp_path / "x"), workers=2, unit_mb=0.3, checksums=[str(sums)])
    assert [u.kind for u in discover_units(config)][-2:] == ["blocks", "verify"]
    code, _, err = build([ENWIKI], tmp_path / "o", "--workers", "2", "--unit-mb", "0.3", "--checksums", str(sums))
    assert code == 0, err
    [entry] = manifest(tmp_path / "o")["inputs"]
    assert entry["verified"] and entry["md5"] == digest and entry["units"] == 7
    sums.write_text(f"{'0' * 32}  {ENWIKI.name}\n")
    code, _, err = build([ENWIKI], tmp_path / "bad", "--workers", "2", "--unit-mb", "0.3", "--checksums", str(sums))
    assert code == 2 and "checksum mismatch" in err
