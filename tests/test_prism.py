"""Prism, Beam's portable runner written in Go, as a second engine: the same bytes as the FnApiRunner.

Prism runs the graph its own way (its own bundles, stages run side by side, the SDK harness in
LOOPBACK in this process), so every output file of a build (the enwiki sample; the multistream
triple cut into several ranges) and of an update must have the bytes of the local run's.

The binary is `.ci/install-prism`'s `.venv/bin/prism` (or `WIKISNAP_PRISM`), built at the venv's
Beam version; wikisnap never lets Beam download it. Without it these tests fail under CI (`CI`
set) and are skipped, saying why, elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlfiles import CATEGORYLINKS_CL_TO, PAGE_RESTRICTIONS, RM_PAGE_PROPS, sql_dump
from test_enrich import HIDDEN, TS, page_props
from test_update import enwiki_events, page_change, records_by_id, write_lines

from conftest import DATA, ELWIKIVOYAGE, ENWIKI, MULTISTREAM

pytestmark = pytest.mark.prism

PRISM = Path(os.environ.get("WIKISNAP_PRISM") or Path(sys.executable).parent / "prism")
STUBS = DATA / "history" / "mwbzutils__elwikivoyage-sample-stubs-meta-history.xml.gz"
MULTI = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def prism_flags() -> list[str]:
    """The Beam flags of a Prism run, or the test fails (CI) / is skipped (elsewhere) without Prism."""
    beam = version("apache-beam")
    problem = None
    if not PRISM.is_file():
        problem = f"no Prism binary at {PRISM}"
    elif f"\tgithub.com/apache/beam/sdks/v2\tv{beam}\t".encode() not in PRISM.read_bytes():
        problem = f"{PRISM} is not Prism of Beam {beam}"
    if problem:
        problem += " (build it with `.ci/install-prism`, or point WIKISNAP_PRISM at one)"
        if _in_ci():
            pytest.fail(f"{problem}; CI is set, so the Prism tests must run", pytrace=False)
        pytest.skip(f"{problem}; CI is not set")
    return ["--runner", "PrismRunner", "--prism_location", str(PRISM)]


@pytest.fixture(autouse=True)
def two_cores(monkeypatch):
    """Prism's parallelism is this machine's cores: 2 in these tests, so the ranges planned are too."""
    from wikisnap.pipelines import engine

    monkeypatch.setattr(engine, "machine_cores", lambda: 2)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_same_bytes(local: Path, prism: Path) -> dict:
    """Both runs listed the same output files, each file on disk has its listed md5, and no file
    (but the manifests, which hold the engine and timings) differs by a byte. Returns the manifest."""
    want, got = (json.loads((d / "manifest.json").read_text()) for d in (local, prism))
    assert want["engine"].startswith("Beam FnApiRunner") and got["engine"] == "Beam PrismRunner"
    assert got["outputs"] == want["outputs"] and want["outputs"]
    assert got["counts"] == want["counts"]
    for out in want["outputs"]:
        assert _md5(local / out["path"]) == _md5(prism / out["path"]) == out["md5"], out["path"]

    def files(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): _md5(p)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and p.relative_to(folder).parts[0] != ".wikisnap"
        }

    assert files(prism) == files(local)
    assert set(files(local)) == {o["path"] for o in want["outputs"]}
    return got


def test_enwiki_sample_on_prism_gives_the_local_bytes(build, tmp_path, prism_flags):
    local, prism = tmp_path / "local", tmp_path / "prism"
    code, _, err = build([ENWIKI], local, "--member-size-mb", "0.5")
    assert code == 0, err
    # 1.7 MB is below the 8 MB floor of a range; with --unit-mb 1.6 (floor 0.2 MB) it is cut for Prism's 2 cores
    code, _, err = build([ENWIKI], prism, "--member-size-mb", "0.5", "--unit-mb", "1.6", *prism_flags)
    assert code == 0, err
    manifest = assert_same_bytes(local, prism)
    # the single-stream .bz2 is read whole locally, and as ranges of bz2 blocks side by side on Prism
    assert manifest["inputs"][0]["units"] == 7
    assert len([o for o in manifest["outputs"] if o["kind"] == "tarball"]) == 1


@pytest.mark.parametrize(
    ("flags", "local_ranges", "ranges"),
    [
        ([], 1, 1),
        (["--unit-mb", "0.005"], 3, 4),  # 4 ranges a worker: 1 worker locally, 2 cores on Prism
        (["--unit-mb", "0.001"], 4, 4),
        (["--unit-mb", "0.001", "--member-size-mb", "0.005"], 4, 4),
    ],
    ids=["1-range", "3-and-4-ranges", "4-ranges", "4-ranges-small-members"],
)
def test_multistream_ranges_on_prism_give_the_local_bytes(build, tmp_path, prism_flags, flags, local_ranges, ranges):
    local, prism = tmp_path / "local", tmp_path / "prism"
    code, _, err = build([MULTI], local, *flags)  # the index beside it is found
    assert code == 0, err
    code, _, err = build([MULTI], prism, *flags, *prism_flags)
    assert code == 0, err
    manifest = assert_same_bytes(local, prism)
    [entry] = manifest["inputs"]
    assert entry["units"] == ranges and entry["pages"] == 17
    assert json.loads((local / "manifest.json").read_text())["inputs"][0]["units"] == local_ranges


def enwiki_sql_dumps(folder: Path) -> list[Path]:
    """page_props, categorylinks (several rows a page, one for no page) and page_restrictions."""
    cl = sql_dump(
        folder / "enwiki-20240301-categorylinks.sql.gz",
        RM_PAGE_PROPS,
        [
            (12, "Anarchism", "ANARCHISM", "", TS, "uppercase", "page"),
            (12, HIDDEN, "ANARCHISM", "", TS, "uppercase", "page"),
            (12, "Political_ideologies", "ANARCHISM", "", TS, "uppercase", "page"),
            (25, HIDDEN, "AUTISM", "", TS, "uppercase", "page"),
            (25, "Neurological_disorders", "AUTISM", "", TS, "uppercase", "page"),
            (999_999_999, "Anarchism", "X", "", TS, "uppercase", "page"),
        ],
        create=CATEGORYLINKS_CL_TO,
    )
    pr = sql_dump(
        folder / "enwiki-20240301-page_restrictions.sql.gz",
        RM_PAGE_PROPS,
        [(1, 12, "edit", "autoconfirmed", 0, "infinity"), (2, 12, "move", "sysop", 0, "20300101000000")],
        create=PAGE_RESTRICTIONS,
    )
    return [pr, page_props(folder), cl]


@pytest.mark.parametrize(
    ("joined", "joins"),
    [
        ("sql-tables", {"enrich/categorylinks/rows_used": 6, "enrich/records_with_qid": 4}),
        ("stub-history", {"history/pages_joined": 2}),
    ],
    ids=["sql-tables", "stub-history"],
)
def test_enriched_build_on_prism_gives_the_local_bytes(build, tmp_path, prism_flags, joined, joins):
    """Inputs joined to the pages by key (Prism groups its own way): SQL tables, a stub history."""
    inputs = [ENWIKI, *enwiki_sql_dumps(tmp_path)] if joined == "sql-tables" else [ELWIKIVOYAGE, STUBS]
    local, prism = tmp_path / "local", tmp_path / "prism"
    code, _, err = build(inputs, local)
    assert code == 0, err
    code, _, err = build(inputs, prism, *prism_flags)
    assert code == 0, err
    counts = next(iter(assert_same_bytes(local, prism)["counts"].values()))
    assert {k: counts.get(k) for k in joins} == joins


def elwikivoyage_events(base: dict[int, dict]) -> list[dict]:
    """A delete, a move, a visibility change, an edit and a create on the multistream's pages."""
    domain = {"meta": {"stream": "mediawiki.page_change.v1", "domain": "el.wikivoyage.org"}, "wiki_id": "elwikivoyage"}

    def page(pid: int, **extra) -> dict:
        return {"page_id": pid, "page_title": base[pid]["name"].replace(" ", "_"), "namespace_id": 0, **extra}

    def text(body: str) -> dict:
        return {"content_slots": {"main": {"content_model": "wikitext", "content_body": body}}}

    editor = {"user_id": 7, "user_text": "Ταξιδιώτης"}
    events = [
        page_change("delete", "2016-10-05T08:00:00Z", page(2566), {"rev_id": base[2566]["version"]["identifier"]}),
        page_change(
            "move",
            "2016-10-05T08:30:00Z",
            {**page(2571), "page_title": "Καμτσάτκα_(χερσόνησος)"},
            {
                "rev_id": 30000001,
                "rev_dt": "2016-10-05T08:30:00Z",
                "rev_parent_id": base[2571]["version"]["identifier"],
                "comment": "μετακίνηση",
                "editor": editor,
                "is_minor_edit": True,
            },
            prior_state={"page": page(2571)},
            created_redirect_page={"page_id": 2600, "page_title": "Καμτσάτκα", "namespace_id": 0, "is_redirect": True},
        ),
        page_change(
            "visibility_change",
            "2016-10-05T09:10:00Z",
            page(2580),
            {
                "rev_id": base[2580]["version"]["identifier"],
                "rev_dt": base[2580]["date_modified"],
                "is_content_visible": True,
                "is_editor_visible": False,
                "is_comment_visible": True,
            },
        ),
        page_change(
            "edit",
            "2016-10-05T09:20:00Z",
            page(2572),
            {
                "rev_id": 30000002,
                "rev_dt": "2016-10-05T09:20:00Z",
                "rev_parent_id": base[2572]["version"]["identifier"],
                "editor": editor,
                "comment": "νέο κείμενο",
                **text("Η '''Γιακουτία''' είναι δημοκρατία της [[Ρωσία|Ρωσίας]]."),
            },
        ),
        page_change(
            "create",
            "2016-10-05T10:45:00Z",
            {"page_id": 2590, "page_title": "Γιακούτσκ", "namespace_id": 0, "is_redirect": False},
            {
                "rev_id": 30000003,
                "rev_dt": "2016-10-05T10:45:00Z",
                "editor": editor,
                "comment": "νέα σελίδα",
                **text("Το '''Γιακούτσκ''' είναι πόλη της [[Γιακουτία|Γιακουτίας]].\n\n[[Κατηγορία:Σιβηρία]]"),
            },
        ),
    ]
    return [{**e, **domain} for e in events]


@pytest.mark.parametrize("dump", ["multistream", "enwiki"])
def test_update_on_prism_gives_the_local_bytes(build, update, tmp_path, prism_flags, dump):
    base = tmp_path / "base"
    if dump == "multistream":
        assert build([MULTI], base, "--unit-mb", "0.001", *prism_flags)[0] == 0
        records = records_by_id(base / "elwikivoyage_namespace_0.tar.gz")
        events = write_lines(tmp_path / "page-change.ndjson", elwikivoyage_events(records))
    else:
        assert build([ENWIKI], base, *prism_flags)[0] == 0
        records = records_by_id(base / "enwiki_namespace_0.tar.gz")
        events = write_lines(tmp_path / "page-change.ndjson", enwiki_events(records))
    local, prism = tmp_path / "local", tmp_path / "prism"
    code, _, err = update(base, [events], local)
    assert code == 0, err
    code, _, err = update(base, [events], prism, *prism_flags)
    assert code == 0, err
    manifest = assert_same_bytes(local, prism)
    # every event was applied: hourly batches were written and the snapshot is not the base's
    [counts] = manifest["counts"].values()
    assert counts["diff_changes"] == len(events.read_text().splitlines()), counts
    assert any(o["path"].startswith("batches/") for o in manifest["outputs"])
    name = f"{'elwikivoyage' if dump == 'multistream' else 'enwiki'}_namespace_0.tar.gz"
    assert _md5(prism / name) != _md5(base / name)


def test_a_prism_run_needs_a_local_binary(build, tmp_path):
    """Never a download at run time: no --prism_location, or one that is no local file, is refused."""
    code, _, err = build([ENWIKI], tmp_path / "out", "--runner", "PrismRunner")
    assert code == 2 and "--prism_location FILE" in err and ".ci/install-prism" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    for location in (tmp_path / "missing", "https://github.com/apache/beam/releases/tag/v2.78.0"):
        code, _, err = build([ENWIKI], tmp_path / "out", "--runner=PrismRunner", f"--prism_location={location}")
        assert code == 2 and "not a local file" in err
