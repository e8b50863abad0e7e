"""Issue 22, item 1: names from the data never become paths outside the run's folders.

A wiki's db name comes from an XML <siteinfo>, a WME record's `is_part_of.identifier`, an SQL
file's name and an event's wiki; each is checked against MediaWiki's form before it names a file
(`layout.check_dbname`), and every path the layout builds is checked to lie under its root
(`layout.within`). The reproductions run the real CLI on the bundled dumps with one name changed.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_outputs import run_cli
from test_update import enwiki_events, page_change, records_by_id, write_lines

from conftest import DATA, ENWIKI, read_xml_bytes
from wikisnap.pipelines.commit import OutputFolder
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.dumpfiles import DumpError
from wikisnap.transforms.formats.dumpreader import siteinfo_from_element
from wikisnap.transforms.formats.sqldump import SqlDumpError, db_from_name
from wikisnap.transforms.read import DeadLetter
from wikisnap.transforms.records import record_key
from wikisnap.transforms.update.diffs import UNKNOWN_WIKI, DiffContext, _change_from_event, _parse_line

WME_LINES = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"
CRWIKI_PAGE = DATA / "sql" / "randomSearcher__crwiki-20160111-page.sql.gz"
PROJECTS = ["enwiki", "zh_min_nanwiki", "be_x_oldwiki", "wikidatawiki", "commonswiki", "simplewiki", "a" * 64]
# names a hostile or broken dump may carry, one per kind of escape
BAD_NAMES = {
    "traversal": "../../../../../../victim",
    "absolute": "/tmp/victim",
    "subfolder": "a/b",
    "nul": "en\x00wiki",
    "lookalike": "\u0435nwiki",  # Cyrillic е: a different folder that looks like enwiki's
    "windows": "..\\..\\victim",
    "dot": "..",
    "upper": "EnWiki",
    "dash": "en-wiki",
    "long": "a" * 65,
    "newline": "enwiki\n",
    "empty-after-strip": "_",
}


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def with_dbname(tmp_path: Path, name: str) -> Path:
    """The bundled enwiki dump with its <dbname> replaced (escaped as XML text)."""
    from xml.sax.saxutils import escape

    raw = read_xml_bytes(ENWIKI).replace(b"<dbname>enwiki</dbname>", f"<dbname>{escape(name)}</dbname>".encode())
    path = tmp_path / "in" / "dump.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def test_real_wikis_match_the_rule():
    for name in PROJECTS:
        assert layout.check_dbname(name) == name
    # every wiki metawiki's sites table names (1,025 of them, tests/data/sql) has MediaWiki's form
    text = gzip.open(DATA / "sql" / "wikidata-qrank__metawiki-20240401-sites.sql.gz", "rt", errors="replace").read()
    import re

    sites = re.findall(r"\(\d+,'([^']*)'", text)
    assert len(sites) > 1000
    assert [s for s in sites if not layout.is_dbname(s)] == []


def test_a_traversing_dbname_in_xml_writes_nothing_anywhere(tmp_path):
    """The issue's reproduction: `--out a/b/out` and `<dbname>../../../../../../victim</dbname>`."""
    dump = with_dbname(tmp_path, BAD_NAMES["traversal"])
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "victim_namespace_0.json").write_text("the user's file\n")
    before = files_under(tmp_path)
    code, _out, err = run_cli(["build", dump, "--out", tmp_path / "a" / "b" / "out"], timeout=120)
    assert code == 2, err
    assert str(dump) in err and "'../../../../../../victim' is not a wiki db name" in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert files_under(tmp_path) == before
    assert (tmp_path / "victim_namespace_0.json").read_text() == "the user's file\n"
    assert not (tmp_path / "a" / "b" / "out").exists()


@pytest.mark.parametrize("kind", ["subfolder", "absolute", "lookalike", "windows", "dot", "upper", "long"])
def test_any_other_bad_dbname_in_xml_is_refused_before_a_byte_is_written(kind, build, tmp_path):
    dump = with_dbname(tmp_path, BAD_NAMES[kind])
    out = tmp_path / "out"
    code, _stdout, err = build([dump], out)
    assert code == 2, err
    assert str(dump) in err and "is not a wiki db name" in err and repr(BAD_NAMES[kind])[1:12] in err
    assert not out.exists()
    assert files_under(tmp_path) == {"in/dump.xml"}


def bad_wme_lines() -> list[str]:
    """The three real WME records, then each with a bad `is_part_of.identifier`."""
    records = [json.loads(line) for line in WME_LINES.read_text().splitlines()]
    lines = [json.dumps(r) for r in records]
    for n, name in enumerate(BAD_NAMES.values()):
        bad = json.loads(lines[1])
        bad["is_part_of"]["identifier"] = name
        bad["identifier"] = 90_000_000 + n
        lines.append(json.dumps(bad))
    return lines


def test_wme_lines_with_bad_wiki_names_are_dead_letters_in_ndjson_and_tarballs(build, tmp_path):
    lines = bad_wme_lines()
    inputs = tmp_path / "in"
    inputs.mkdir()
    ndjson = inputs / "records.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    # the same lines in a WME-style tarball, one member named to climb out (it is never extracted)
    tarball = inputs / "records.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, part in (("good_0.ndjson", lines[:3]), ("../../../evil_1.ndjson", lines[3:])):
            data = ("\n".join(part) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for source in (ndjson, tarball):
        out = tmp_path / f"out-{source.name}"
        code, _stdout, err = build([source], out)
        assert code == 0, err
        letters = [json.loads(x) for x in (out / "deadletter" / "dewiki_deadletters.ndjson").read_text().splitlines()]
        assert len(letters) == len(BAD_NAMES)
        assert all("not a WME record" in d["reason"] and "is not a wiki db name" in d["reason"] for d in letters)
        assert sorted(p.name for p in out.glob("*.tar.gz")) == [
            "dewiki_namespace_0.tar.gz",
            "enwiki_namespace_0.tar.gz",
            "ruwiki_namespace_0.tar.gz",
        ]
        counts = json.loads((out / "manifest.json").read_text())["counts"]
        assert counts["dewiki"]["dead_lettered"] == len(BAD_NAMES)
        code, _stdout, err = build([source], tmp_path / f"strict-{source.name}", "--fail-on-dead-letters")
        assert code == 2 and "dead letter" in err
    # nothing outside the output folders (a failed strict run keeps its report in its own)
    tops = {p.split("/")[0] for p in files_under(tmp_path)}
    assert tops == {"in"} | {f"{kind}-records.{ext}" for kind in ("out", "strict") for ext in ("ndjson", "tar.gz")}


def test_an_sql_file_named_for_no_wiki_is_refused(build, tmp_path):
    long = tmp_path / ("a" * 65 + "wiki-20160111-page.sql.gz")
    shutil.copy(CRWIKI_PAGE, long)
    code, _stdout, err = build([ENWIKI, long], tmp_path / "out")
    assert code == 2 and "is not a wiki db name" in err and long.name in err, err
    assert not (tmp_path / "out").exists()


def test_events_and_xml_diffs_with_bad_wiki_names(enwiki_build, update, tmp_path):
    records = records_by_id(enwiki_build / "enwiki_namespace_0.tar.gz")
    good = enwiki_events(records)[0]
    bad = []
    for name in BAD_NAMES.values():
        bad.append({**good, "wiki_id": name})  # page_change
        bad.append({"$schema": "/mediawiki/recentchange/1.0.0", "wiki": name, "database": name, "type": "edit"})
        batch = dict(records[39], is_part_of={"identifier": name, "url": "https://x"}, event={"type": "update"})
        bad.append(batch)  # a WME batch record
    bad.append(page_change("delete", "2016-05-02T00:00:00Z", {"page_id": 25, "page_title": "Autism"}, {"rev_id": 1}))
    diff = write_lines(tmp_path / "events.ndjson", bad)
    out = tmp_path / "out"
    code, _stdout, err = update(enwiki_build, [diff], out)
    assert code == 0, err
    letters = (out / "deadletter" / "unknown_deadletters.ndjson").read_text().splitlines()
    assert len(letters) == 3 * len(BAD_NAMES)
    assert {p.split("/")[0] for p in files_under(tmp_path)} == {"events.ndjson", "out"}
    # an adds-changes XML diff whose <siteinfo> names a bad wiki: refused before anything is written
    xml = with_dbname(tmp_path / "x", "../../victim")
    code, _stdout, err = update(enwiki_build, [xml], tmp_path / "out2")
    assert code == 2 and "'../../victim' is not a wiki db name" in err and str(xml) in err, err
    assert not (tmp_path / "out2").exists()


def test_publish_refuses_a_file_outside_the_folder(tmp_path):
    folder = OutputFolder.open(str(tmp_path / "out"), "build")
    try:
        with pytest.raises(layout.PathEscape):
            folder.publish({"tool": {"name": "wikisnap"}}, [{"path": "../escaped.json", "bytes": 0, "md5": ""}])
    finally:
        folder.close()
    assert files_under(tmp_path) == set()


# -- property: generated names at every place that turns data into a path -----------------------

ROOT = "/srv/out"
hostile = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="./\\\x00\n\t:*?~abcz_09-\u0435\u2215\uff0f", max_size=40),
    st.builds(lambda a, b: f"{a}/../{b}", st.text(max_size=10), st.text(max_size=10)),
    st.builds(lambda n: "a" * n, st.integers(60, 300)),
    st.sampled_from(list(BAD_NAMES.values()) + PROJECTS),
)


def _inside(path: str, root: str) -> bool:
    import posixpath

    return posixpath.normpath(path).startswith(root + "/") and "\x00" not in path


# derandomize: the same examples on every run, so a failure in CI reproduces on a laptop
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(hostile)
def test_property_no_generated_name_becomes_a_path_outside_its_root(name):
    valid = layout.is_dbname(name)
    builders = [
        lambda: layout.deadletter_path(ROOT, name),
        lambda: layout.shard_path(ROOT, layout.PARQUET, layout.snapshot_id(name, 0), 0),
        lambda: layout.shard_dir(ROOT, layout.TEXT, f"{name}_namespace_0"),
        lambda: layout.shard_path(ROOT, layout.PARQUET, f"{name}_namespace_0", 0),
        lambda: ROOT + "/" + layout.tarball_name(name, 0),
        lambda: ROOT + "/" + layout.metadata_name(name, 4),
        lambda: layout.spill_run_path(ROOT, name, 0, 1, "u", 2),
        lambda: layout.part_base(ROOT, f"{name}_namespace_0", "000001-0001-abcd"),
        lambda: layout.batch_paths(ROOT, "2024-01-01/00", f"{name}_namespace_0")[0],
        lambda: layout.batch_paths(ROOT, name, "enwiki_namespace_0")[1],  # the hour from an event's time
    ]
    for make in builders:
        try:
            path = make()
        except (layout.UnsafeName, layout.PathEscape):
            continue
        assert _inside(path, ROOT), (name, path)
    # the inputs: siteinfo, WME record, SQL file name, an event's wiki
    from lxml import etree

    xml_name = "".join(c for c in name if c in "\t\n\r" or (c >= " " and c not in "\ufffe\uffff"))
    text = xml_name.replace("&", "&amp;").replace("<", "&lt;")
    root = etree.fromstring(f"<mediawiki><siteinfo><dbname>{text}</dbname></siteinfo></mediawiki>".encode())
    try:
        site = siteinfo_from_element(root, root[0], "dump.xml")
        assert layout.is_dbname(site.dbname)
    except DumpError as exc:
        assert "dump.xml" in str(exc)
    record = {"identifier": 1, "is_part_of": {"identifier": name}}
    if valid:
        assert record_key(record)[0] == name
    else:
        with pytest.raises(ValueError):
            record_key(record)
    # an event's wiki: a Change only for a wiki of the base (whose names discover_base checked)
    ctx = DiffContext(sites={"enwiki": SiteInfo(dbname="enwiki")}, namespaces=frozenset({0}))
    line = json.dumps(
        {"$schema": "/mediawiki/page/change/1.2.0", "wiki_id": name, "page_change_kind": "delete", "dt": "2024-01-01T00:00:00Z",
         "page": {"page_id": 1, "page_title": "A", "namespace_id": 0}, "revision": {"rev_id": 1}}
    ).encode()  # fmt: skip
    item = _parse_line(line, "events.ndjson:1", "event", _change_from_event, ctx)
    if name == "enwiki":
        assert item.dbname == "enwiki"
    else:
        assert isinstance(item, DeadLetter) and item.dbname == UNKNOWN_WIKI
    if "/" not in name and "\x00" not in name:
        try:
            found = db_from_name(f"{name}-20240101-page.sql.gz")
        except SqlDumpError:
            found = None
        assert found is None or layout.is_dbname(found)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(["..", ".", "a", "b", "", "/", "x/../..", "\x00"]), max_size=6))
def test_property_within_accepts_exactly_the_paths_under_the_root(parts):
    import posixpath

    path = ROOT + "/" + "/".join(parts)
    inside = "\x00" not in path and (
        posixpath.normpath(path) == ROOT or posixpath.normpath(path).startswith(ROOT + "/")
    )
    if inside:
        assert layout.within(ROOT, path) == path
    else:
        with pytest.raises(layout.PathEscape):
            layout.within(ROOT, path)


def test_a_snapshot_manifest_naming_a_bad_wiki_or_an_outside_file_is_not_published(enwiki_build, tmp_path):
    """`publish` turns the manifest's db names into mirror file names and dataset folders."""
    for field, value, message in (
        ("dbname", "../../../victim", "is not a wiki db name"),
        ("path", "../outside.tar.gz", "outside the snapshot folder"),
    ):
        snap = tmp_path / f"snap-{field}"
        shutil.copytree(enwiki_build, snap)
        manifest = json.loads((snap / "manifest.json").read_text())
        manifest["outputs"][0][field] = value
        (snap / "manifest.json").write_text(json.dumps(manifest))
        code, _o, err = run_cli(["publish", snap, "--to", tmp_path / f"mirror-{field}"])
        assert code == 2 and message in err and repr(value)[:20] in err, err
        assert not (tmp_path / f"mirror-{field}").exists()
    assert not (tmp_path.parent / "victim").exists()


@pytest.mark.parametrize("name", ["enwiki\n", "../enwiki", "EN", "a" * 65])
def test_a_sync_config_naming_a_bad_wiki_is_refused(name, tmp_path):
    from wikisnap.pipelines.syncconfig import ConfigError, load_config

    config = tmp_path / "sync.toml"
    example = (Path(__file__).resolve().parents[1] / "configs" / "sync.example.toml").read_text()
    config.write_text(example.replace('wikis = ["elwikivoyage", "simplewiki"]', f"wikis = [{json.dumps(name)}]"))
    with pytest.raises(ConfigError, match="is not a database name"):
        load_config(str(config))
