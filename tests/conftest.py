"""Shared fixtures: the real dumps bundled in tests/data (see tests/data/PROVENANCE.md)."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

# benchmarks/make_corpus.py holds the multistream re-packer the tests share with the benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).parent / "data"
MULTISTREAM = DATA / "multistream"
XML = DATA / "xml"
ENWIKI = XML / "gensim__enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
ELWIKIVOYAGE = XML / "mwbzutils__elwikivoyage-sample-pages-articles.xml.bz2"
ENWIKTIONARY = XML / "wiktextract__enwiktionary-test-pages-articles.xml.bz2"
BGWIKI_UTF16 = XML / "gensim__bgwiki-latest-pages-articles-shortened.xml.bz2"
NO_SITEINFO = XML / "gensim__enwiki-table-markup.xml.bz2"
VIWIKI_TRUNCATED = XML / "wikiextractor__viwiki-test.xml"
WIKIDATA = XML / "operations-dumps"


def pytest_addoption(parser):
    parser.addoption(
        "--airflow",
        metavar="AIRFLOW",
        default=os.environ.get("WIKISNAP_AIRFLOW"),
        help="the `airflow` program of an environment where wikisnap and apache-airflow are installed: runs "
        "the tests marked airflow (examples/airflow_dag.py under `airflow dags test`, about a minute)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "engines: runs the way distributed engines run (bundle retries, shared temp); see test_engines.py"
    )
    config.addinivalue_line(
        "markers", "prism: runs on Prism (.ci/install-prism; fails without it when CI is set); see test_prism.py"
    )
    config.addinivalue_line(
        "markers", "airflow: needs apache-airflow (pytest --airflow PATH); deselected without it, as in CI"
    )


def pytest_collection_modifyitems(config, items):
    """Without --airflow the airflow tests are deselected (not skipped): CI installs no Airflow."""
    if config.getoption("--airflow"):
        return
    chosen = [item for item in items if "airflow" not in item.keywords]
    if len(chosen) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if "airflow" in item.keywords])
        items[:] = chosen


def wikisnap(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the program in its own process: (exit code, stdout, stderr) in a CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "wikisnap.pipelines.cli", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def read_xml_bytes(path: Path) -> bytes:
    """Decompressed bytes of a bundled dump (tests build bad inputs from real ones)."""
    raw = path.read_bytes()
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    return raw


def read_snapshot(tar_path: Path) -> tuple[list[str], list[dict], list[bytes]]:
    """(member names, records, raw lines) of a snapshot tarball, in member order."""
    names, records, lines = [], [], []
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar.getmembers():
            names.append(member.name)
            data = tar.extractfile(member).read()
            for line in data.splitlines(keepends=True):
                lines.append(line)
                records.append(json.loads(line))
    return names, records, lines


def published(root: Path) -> dict[str, bytes | str]:
    """Every file under a published tree → its bytes; symlinks → their target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def _in_process(argv: list[str], catch_exit: bool) -> tuple[int, str, str]:
    import contextlib
    import io

    from wikisnap.pipelines.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(argv)
        except SystemExit as exc:
            if not catch_exit:
                raise
            code = exc.code
    return code, stdout.getvalue(), stderr.getvalue()


def cli(*argv: str | Path) -> tuple[int, str, str]:
    """Run `wikisnap -q ARGV…` in-process: (exit code, stdout, stderr); argparse's exit is a code.
    The tests of the program as a process (exit on a signal, a kill, a lock held by another pid) use
    test_outputs.start/run_cli instead; this one saves each call the interpreter's start and Beam's import."""
    return _in_process(["-q", *[str(a) for a in argv]], catch_exit=True)


@pytest.fixture(scope="session")
def build():
    """Run `wikisnap build` in-process: `build(inputs, out, *flags) -> (exit code, stdout, stderr)`;
    argparse's usage error raises SystemExit, as the tests of bad flags expect."""

    def _run(inputs, out, *flags):
        return _in_process(["-q", "build", *[str(p) for p in inputs], "--out", str(out), *flags], catch_exit=False)

    return _run


@pytest.fixture(scope="session")
def enwiki_build(tmp_path_factory, build):
    """The enwiki sample built once with default options (1 worker)."""
    out = tmp_path_factory.mktemp("enwiki-1")
    code, stdout, stderr = build([ENWIKI], out)
    assert code == 0, stderr
    return out


@pytest.fixture(scope="session")
def small_base(build, tmp_path_factory) -> Path:
    """The enwiki sample built with 0.2 MB members (a dozen members) and every format."""
    out = tmp_path_factory.mktemp("small-members")
    code, _stdout, stderr = build([ENWIKI], out, "--member-size-mb", "0.2", "--formats", "ndjson,parquet,text")
    assert code == 0, stderr
    return out


@pytest.fixture(scope="session")
def update():
    """Run `wikisnap update` in-process: `update(base, diffs, out, *flags) -> (code, stdout, stderr)`."""
    import contextlib
    import io

    from wikisnap.pipelines.cli import main

    def _run(base, diffs, out, *flags):
        stdout, stderr = io.StringIO(), io.StringIO()
        argv = ["-q", "update", "--base", str(base), *[str(d) for d in diffs], "--out", str(out), *flags]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        return code, stdout.getvalue(), stderr.getvalue()

    return _run


@pytest.fixture
def type_checked(monkeypatch):
    """The labels of the steps Beam's construction-time type check looks at during the test."""
    import apache_beam as beam

    checked: list[str] = []
    original = beam.PTransform.type_check_inputs

    def spy(self, pvalueish):
        checked.append(self.label)
        return original(self, pvalueish)

    monkeypatch.setattr(beam.PTransform, "type_check_inputs", spy)
    return checked


@pytest.fixture
def calling_threads(monkeypatch):
    """`watch(owner, name)`: `owner.name` keeps working and the returned list gets the name of
    the thread of each call (for the work that must run on a helper thread)."""
    import threading

    def watch(owner, name: str) -> list[str]:
        names: list[str] = []
        original = getattr(owner, name)

        def spy(*args, **kwargs):
            names.append(threading.current_thread().name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)
        return names

    return watch
