"""What a run prints: with -q only the summary; without it wikisnap's own lines in one format,
nothing from Beam (its worker processes included), no warning on a clean run."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys

import apache_beam as beam
from apache_beam.transforms.core import _check_fn_use_yield_and_return

from conftest import ENWIKI

LINE = re.compile(r"^\d\d:\d\d:\d\d INFO ")  # wikisnap's format, and not one warning


def wikisnap(*argv) -> subprocess.CompletedProcess:
    program = "import sys; from wikisnap.pipelines.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", program, *map(str, argv)], capture_output=True, text=True)


def test_quiet_prints_the_summary_alone(tmp_path):
    done = wikisnap("-q", "build", ENWIKI, "--out", tmp_path / "out", "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("read 206 pages from 1 input file(s); the run took ")
    assert lines[-1] == f"manifest: {tmp_path / 'out' / 'manifest.json'}"
    # every output kind with its size
    assert "  NDJSON tarballs: 1 file(s), 106 records, 2.394 MB" in lines
    assert any(line.startswith("  Parquet shards: 1 file(s), 106 records, ") for line in lines)
    assert any(line.startswith("  snapshot metadata: 1 file(s), ") for line in lines)


def test_without_quiet_no_line_comes_from_beam_or_its_workers(tmp_path):
    for workers in ("1", "2"):
        done = wikisnap("build", ENWIKI, "--out", tmp_path / workers, "--workers", workers)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert lines and all(LINE.match(line) for line in lines), done.stderr
        assert any("done, " in line and " pages, " in line for line in lines)  # the workers' own progress
        for noise in ("Worker:", "semi_persistent", "apitools", "Logging handler", "apache_beam"):
            assert noise not in done.stderr, noise


def test_no_dofn_makes_beam_warn_about_yield_and_return():
    import wikisnap.pipelines
    import wikisnap.transforms

    found = []
    for package in (wikisnap.transforms, wikisnap.pipelines):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, beam.DoFn) and obj.__module__ == module.__name__:
                    found.append(obj)
                    assert not _check_fn_use_yield_and_return(obj.process), f"{info.name}.{name}"
    assert len(found) > 10


def test_the_summary_lists_every_output_kind_with_its_size():
    from wikisnap.pipelines.launch import OUTPUT_KINDS, human_size, outputs_summary

    kinds = ["deadletter", "structured-parquet", "tarball", "metadata", "parquet", "text", "structured-tarball",
             "structured-metadata", "batch", "batch-metadata", "schema"]  # fmt: skip
    outputs = [{"kind": k, "bytes": 1_500 * (i + 1), "records": 2} for i, k in enumerate(kinds)]
    lines = outputs_summary(outputs)
    # one line each, in the table's order, by its name for people, with a size in a unit that shows it
    assert [line.split(":")[0].strip() for line in lines] == [OUTPUT_KINDS[k] for k in OUTPUT_KINDS]
    assert "  NDJSON tarballs: 1 file(s), 2 records, 4.500 kB" in lines
    assert "  dead letters: 1 file(s), 2 records, 1.500 kB" in lines
    assert "  Structured Contents metadata: 1 file(s), 12.000 kB" in lines  # metadata: no records
    assert "  JSON Schemas: 1 file(s), 16.500 kB" in lines  # nor the schema files
    assert [human_size(n) for n in (260, 46_590, 2_393_551, 12 * 10**9)] == [
        "260 bytes", "46.590 kB", "2.394 MB", "12.000 GB"
    ]  # fmt: skip
