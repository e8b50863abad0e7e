"""Split inputs: multistream byte ranges, split parts, checksums, and reading over HTTP from loopback."""

from __future__ import annotations

import bz2
import hashlib
import json
import shutil

import pytest
from httpserver import LoopbackServer

from benchmarks.make_corpus import repack_multistream
from conftest import ELWIKIVOYAGE, ENWIKI, MULTISTREAM, WIKIDATA, read_xml_bytes
from wikisnap.pipelines.build import discover_units
from wikisnap.pipelines.options import BuildConfig
from wikisnap.transforms.formats.dumpfiles import plan_ranges, read_index
from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo

SINGLE = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-p2566p2583.xml.bz2"
MULTI = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"
INDEX = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-index-p2566p2583.txt.bz2"


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def outputs(folder):
    """md5 of every snapshot file (tarballs, metadata, parquet) under an output folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".gz", ".json", ".parquet"))
    return {str(p.relative_to(folder)): md5(p) for p in files if p.name != "manifest.json"}


@pytest.fixture(scope="module")
def repacked(tmp_path_factory):
    """The elwikivoyage sample re-packed into 100-page bz2 streams with an index (as recompressxml does)."""
    folder = tmp_path_factory.mktemp("repacked")
    data, index = repack_multistream(read_xml_bytes(ELWIKIVOYAGE), 100)
    multi = folder / "elwikivoyage-20200101-pages-articles-multistream.xml.bz2"
    multi.write_bytes(data)
    (folder / "elwikivoyage-20200101-pages-articles-multistream-index.txt.bz2").write_bytes(index)
    return multi


def test_index_offsets_and_ranges():
    offsets, counts = read_index(str(INDEX))
    assert offsets == [718, 4735, 8475, 12237] and sum(counts.values()) == 17
    ranges = plan_ranges(offsets, counts, MULTI.stat().st_size, 1)
    assert [(r.start, r.end, r.pages) for r in ranges] == [
        (718, 4735, 5),
        (4735, 8475, 5),
        (8475, 12237, 5),
        (12237, MULTI.stat().st_size, 2),
    ]
    big = plan_ranges(offsets, counts, MULTI.stat().st_size, 10_000)
    assert len(big) == 2 and big[0].start == 718 and big[-1].end == MULTI.stat().st_size


def test_a_range_reads_exactly_its_bytes_and_pages():
    site = read_siteinfo(str(MULTI))
    offsets, counts = read_index(str(INDEX))
    seen = []
    for r in plan_ranges(offsets, counts, MULTI.stat().st_size, 1):
        stats = ReadStats(str(MULTI))
        pages = list(iter_pages(str(MULTI), site, stats, byte_range=(r.start, r.end)))
        assert stats.error is None
        assert stats.bytes_read == r.end - r.start  # never a byte outside the range
        assert len(pages) == r.pages
        seen += [p.id for p in pages]
    whole = [p.id for p in iter_pages(str(SINGLE), site, ReadStats(str(SINGLE)))]
    assert seen == whole


@pytest.mark.parametrize("workers", ["1", "2"])
def test_single_and_multistream_give_identical_snapshots(build, tmp_path, workers):
    a, b = tmp_path / "single", tmp_path / "multi"
    assert build([SINGLE], a, "--workers", workers)[0] == 0
    # index found beside it; --unit-mb below the 8 MB floor's lowers it, so 15 KB is cut
    code, _, err = build([MULTI], b, "--workers", workers, "--unit-mb", "0.005")
    assert code == 0, err
    assert outputs(a) == outputs(b) and outputs(a)
    manifest = json.loads((b / "manifest.json").read_text())
    [entry] = manifest["inputs"]
    assert entry["units"] > 1 and entry["pages"] == 17


def test_repacked_real_dump_gives_the_same_bytes_with_two_workers(build, tmp_path, repacked):
    a, b = tmp_path / "original", tmp_path / "repacked"
    assert build([ELWIKIVOYAGE], a)[0] == 0
    code, _, err = build([repacked], b, "--workers", "2", "--unit-mb", "1")
    assert code == 0, err
    assert outputs(a) == outputs(b)
    manifest = json.loads((b / "manifest.json").read_text())
    [entry] = manifest["inputs"]
    assert entry["units"] >= 4 and entry["pages"] == 2040
    config = BuildConfig(inputs=[str(repacked)], out=str(tmp_path / "x"), workers=2, unit_mb=1)
    units = discover_units(config)
    assert [u.kind for u in units] == ["range"] * len(units)
    # ranges tile the file from the first page stream to the end, in whole streams
    assert units[0].start == 718 and units[-1].end == repacked.stat().st_size
    assert all(x.end == y.start for x, y in zip(units, units[1:], strict=False))


def test_explicit_index_and_no_index(build, tmp_path, caplog):
    lone = tmp_path / "in" / "elwv-multistream.xml.bz2"
    lone.parent.mkdir()
    shutil.copy(MULTI, lone)
    config = BuildConfig(inputs=[str(lone)], out=str(tmp_path / "o"))
    assert [u.kind for u in discover_units(config)] == ["file"]  # no index beside it: one stream
    config = BuildConfig(inputs=[str(lone)], out=str(tmp_path / "o"), index=str(INDEX))
    assert {u.kind for u in discover_units(config)} == {"range"}
    assert build([lone], tmp_path / "a")[0] == 0
    assert build([lone], tmp_path / "b", "--index", str(INDEX))[0] == 0
    assert outputs(tmp_path / "a") == outputs(tmp_path / "b")


def test_index_of_another_file_is_refused(build, tmp_path, repacked):
    index = repacked.with_name("elwikivoyage-20200101-pages-articles-multistream-index.txt.bz2")
    code, _, err = build([MULTI], tmp_path, "--index", str(index))
    assert code == 2 and "does not belong to it" in err


def test_split_parts_are_units_and_equal_the_whole(build, tmp_path):
    parts = sorted(WIKIDATA.glob("pages-articles-sample2.xml-p*.bz2"))
    config = BuildConfig(inputs=[str(p) for p in parts], out=str(tmp_path / "o"))
    assert len(discover_units(config)) == len(parts) == 3
    assert build(parts, tmp_path / "parts", "--namespaces", "0,120,122")[0] == 0
    assert build([WIKIDATA / "pages-articles-sample2.xml.bz2"], tmp_path / "whole", "--namespaces", "0,120,122")[0] == 0
    assert outputs(tmp_path / "parts") == outputs(tmp_path / "whole")


# -- checksums and damaged input ------------------------------------------------------------


def write_sums(path, entries):
    path.write_text("".join(f"{digest}  {name}\n" for digest, name in entries))
    return path


def test_right_checksums_are_verified(build, tmp_path):
    sums = write_sums(tmp_path / "md5sums.txt", [(md5(ENWIKI), ENWIKI.name), (md5(MULTI), MULTI.name)])
    sha = hashlib.sha1(MULTI.read_bytes()).hexdigest()
    sha_sums = write_sums(tmp_path / "sha1sums.txt", [(sha, MULTI.name)])
    flags = ("--checksums", str(sums), "--checksums", str(sha_sums), "--unit-mb", "0.005")  # MULTI in ranges
    code, _, err = build([ENWIKI, MULTI], tmp_path / "o", *flags)
    assert code == 0, err
    manifest = json.loads((tmp_path / "o/manifest.json").read_text())
    assert all(i["verified"] for i in manifest["inputs"])
    entry = next(i for i in manifest["inputs"] if i["path"].endswith(MULTI.name))
    assert entry["md5"] == md5(MULTI) and entry["sha1"] == sha and entry["units"] > 1


@pytest.mark.parametrize("target", [ENWIKI, MULTI])
def test_wrong_checksum_stops_the_run_before_publishing(build, tmp_path, target):
    wrong = "0" * 32
    sums = write_sums(tmp_path / "md5sums.txt", [(wrong, target.name)])
    code, _, err = build([target], tmp_path / "o", "--checksums", str(sums))
    assert code == 2
    assert target.name in err and wrong in err and md5(target) in err and "checksum mismatch" in err
    assert not list((tmp_path / "o").glob("*.tar.gz")) and not (tmp_path / "o/manifest.json").exists()


def test_truncated_multistream_names_file_and_offset(build, tmp_path):
    data = MULTI.read_bytes()
    cut = tmp_path / "elwv-pages-articles-multistream.xml.bz2"
    cut.write_bytes(data[:13_000])  # inside the last page stream, which starts at 12,237
    code, _, err = build([cut], tmp_path / "o", "--index", str(INDEX))
    assert code == 2 and cut.name in err and "nothing was published" in err
    assert "truncated or corrupt" in err and "at byte 13,000" in err  # an offset in the file
    assert not list((tmp_path / "o").glob("*.tar.gz"))
    # an index pointing past the end is caught before anything runs
    cut.write_bytes(data[:10_000])
    code, _, err = build([cut], tmp_path / "o2", "--index", str(INDEX))
    assert code == 2 and "offset 12,237 lies beyond the end" in err and "truncated" in err


# -- remote reading ---------------------------------------------------------------------------


def test_reading_over_http_from_loopback_gives_the_same_bytes(build, tmp_path):
    a, b, c = tmp_path / "local", tmp_path / "http", tmp_path / "http-single"
    split = ("--workers", "2", "--unit-mb", "0.005")  # ranges of size // 8: 4 per worker, above the floor
    assert build([MULTI], a, *split)[0] == 0
    with LoopbackServer(MULTISTREAM) as server:
        code, _, err = build([server.url(MULTI.name)], b, *split)
        assert code == 0, err
        assert build([server.url(SINGLE.name)], c)[0] == 0
        requests = list(server.requests)
    assert outputs(a) == outputs(b) == outputs(c)
    # the index was found beside the dump on the server; page streams were fetched by range
    assert any(path.endswith(INDEX.name) for path, *_ in requests)
    offsets, counts = read_index(str(INDEX))
    ranges = plan_ranges(offsets, counts, MULTI.stat().st_size, MULTI.stat().st_size // 8)
    for path, start, end in requests:
        if path.endswith(MULTI.name) and start >= offsets[0]:
            assert any(r.start <= start and end <= r.end for r in ranges), (start, end)


def test_bz2_of_repack_is_valid_multistream(repacked):
    # every stream decompresses on its own, as seeking readers need
    offsets, _ = read_index(str(repacked.with_name("elwikivoyage-20200101-pages-articles-multistream-index.txt.bz2")))
    data = repacked.read_bytes()
    for start, end in zip(offsets, offsets[1:], strict=False):
        assert bz2.decompress(data[start:end]).count(b"<page>") <= 100


# -- dump-run discovery ---------------------------------------------------------------------


def make_run(folder, repacked, *, status="done", md5_of=None):
    """A dump run folder in WMF's layout holding real files: the repacked multistream file with its
    index, the original single file, and a dumpstatus.json describing them (real sizes and digests)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        "articlesmultistreamdumprecombine": [
            repacked.name,
            "elwikivoyage-20200101-pages-articles-multistream-index.txt.bz2",
        ],
        "articlesdumprecombine": ["elwikivoyage-20200101-pages-articles.xml.bz2"],
    }
    shutil.copy(repacked, folder / repacked.name)
    shutil.copy(repacked.with_name(names["articlesmultistreamdumprecombine"][1]), folder)
    shutil.copy(ELWIKIVOYAGE, folder / names["articlesdumprecombine"][0])
    jobs = {}
    for job, files in names.items():
        jobs[job] = {"status": status if job.startswith("articlesmulti") else "done", "files": {}}
        for name in files:
            data = (folder / name).read_bytes()
            digest = md5_of(name) if md5_of else hashlib.md5(data).hexdigest()
            jobs[job]["files"][name] = {"size": len(data), "md5": digest, "sha1": hashlib.sha1(data).hexdigest()}
    (folder / "dumpstatus.json").write_text(json.dumps({"jobs": jobs, "version": "0.8"}))
    return folder


def test_dump_run_picks_multistream_and_verifies(build, tmp_path, repacked):
    run = make_run(tmp_path / "elwikivoyage" / "20200101", repacked)
    code, _, err = build([], tmp_path / "o", "--dump-run", str(run), "--workers", "2", "--unit-mb", "1")
    assert code == 0, err
    assert build([ELWIKIVOYAGE], tmp_path / "ref")[0] == 0
    assert outputs(tmp_path / "o") == outputs(tmp_path / "ref")
    [entry] = json.loads((tmp_path / "o/manifest.json").read_text())["inputs"]
    assert entry["path"].endswith("-multistream.xml.bz2") and entry["units"] > 1 and entry["verified"]


def test_dump_run_not_done_is_refused_unless_forced(build, tmp_path, repacked):
    run = make_run(tmp_path / "run", repacked, status="in-progress")
    code, _, err = build([], tmp_path / "o", "--dump-run", str(run))
    assert code == 2 and "not finished" in err and "articlesmultistreamdumprecombine: in-progress" in err
    assert build([], tmp_path / "o", "--dump-run", str(run), "--force")[0] == 0


def test_dump_run_with_a_wrong_digest_fails(build, tmp_path, repacked):
    run = make_run(tmp_path / "run", repacked, md5_of=lambda name: "f" * 32)
    code, _, err = build([], tmp_path / "o", "--dump-run", str(run))
    assert code == 2 and "checksum mismatch" in err and "f" * 32 in err and md5(repacked) in err


def test_dump_run_over_http(build, tmp_path, repacked):
    run = make_run(tmp_path / "mirror" / "elwikivoyage" / "20200101", repacked)
    assert build([], tmp_path / "local", "--dump-run", str(run))[0] == 0
    with LoopbackServer(tmp_path / "mirror") as server:
        code, _, err = build(
            [],
            tmp_path / "http",
            "--dump-run",
            "elwikivoyage/20200101",
            "--mirror",
            server.url("").rstrip("/"),
            "--workers",
            "2",
        )
    assert code == 0, err
    assert outputs(tmp_path / "local") == outputs(tmp_path / "http")


def test_dump_run_without_status_file(build, tmp_path):
    code, _, err = build([], tmp_path / "o", "--dump-run", str(tmp_path))
    assert code == 2 and "no dumpstatus.json" in err
