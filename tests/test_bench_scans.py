"""The tools of the scanner round: benchmarks/bench_scans.py and benchmarks/diff_outputs.py, on real
data (the enwiki sample dump and real WME records in tests/data)."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import bench_scans, diff_outputs
from conftest import DATA, ENWIKI

RECORDS = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"


def test_bench_scans_reads_the_pages_and_prints_each_stage(capsys) -> None:
    site, pages = bench_scans.load_pages(str(ENWIKI))
    assert site.dbname == "enwiki" and len(pages) > 10
    assert all(isinstance(text, str) for _, text in pages)
    bench_scans.main([str(ENWIKI), "--runs", "1"])
    out = capsys.readouterr().out
    assert f"{len(pages):,} wikitext pages" in out
    for stage in ("analyze", "abstract", "text", "build"):
        assert f"  {stage}" in out


def _snapshot(folder: Path, lines: list[bytes]) -> None:
    """A build-like folder: a tarball of one NDJSON member and a Parquet file of the same lines."""
    folder.mkdir(parents=True)
    data = b"".join(lines)
    with tarfile.open(folder / "enwiki_namespace_0.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("enwiki_namespace_0_0.ndjson")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (folder / "parquet").mkdir()
    pq.write_table(pa.table({"line": [line.decode() for line in lines]}), folder / "parquet" / "part.parquet")


def test_diff_outputs_finds_a_changed_line_and_row(tmp_path, capsys) -> None:
    lines = RECORDS.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    _snapshot(tmp_path / "a", lines)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert diff_outputs.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "compared 3 NDJSON lines and 3 Parquet rows" in capsys.readouterr().out

    changed = [*lines[:2], lines[2].replace(b'"name"', b'"nome"', 1)]
    _snapshot(tmp_path / "c", changed)
    assert diff_outputs.main([str(tmp_path / "a"), str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    assert "enwiki_namespace_0.tar.gz: line 3 differs" in out
    assert "part.parquet: row 3 differs" in out

    _snapshot(tmp_path / "d", lines[:2])
    assert diff_outputs.main([str(tmp_path / "a"), str(tmp_path / "d")]) == 1
    assert "(one file is shorter)" in capsys.readouterr().out
