"""`wikisnap show`: counts and sizes from the manifest, records and schemas from the Parquet, never
a tarball opened."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

import wikisnap
from conftest import ENWIKI, cli, read_snapshot


@pytest.fixture(scope="module")
def without_tarballs(enwiki_build, tmp_path_factory):
    """The enwiki build with its tarballs removed: what show prints cannot have come from them."""
    folder = tmp_path_factory.mktemp("show") / "out"
    shutil.copytree(enwiki_build, folder)
    for tarball in folder.glob("*.tar.gz"):
        tarball.unlink()
    return folder


def same_record(shown, written) -> bool:
    """The Parquet's record is the NDJSON's, except that Parquet spells out the false and zero
    values NDJSON leaves out (`is_minor_edit`, `noindex`, maintenance counts) and sizes are doubles."""
    if isinstance(written, dict):
        return (
            isinstance(shown, dict)
            and all(same_record(shown.get(k), written.get(k)) if k in written else not v for k, v in shown.items())
            and written.keys() <= shown.keys()
        )
    if isinstance(written, list):
        return isinstance(shown, list) and len(shown) == len(written) and all(map(same_record, shown, written))
    return shown == written


def test_a_record_by_id_or_title_is_the_ndjson_record(enwiki_build, without_tarballs):
    _, records, _ = read_snapshot(enwiki_build / "enwiki_namespace_0.tar.gz")
    anarchism = next(r for r in records if r["identifier"] == 12)
    code, out, err = cli("show", str(without_tarballs), "--id", "12")
    assert code == 0, err
    assert same_record(json.loads(out), anarchism)
    assert not same_record(json.loads(out), next(r for r in records if r["identifier"] == 25))
    assert out.startswith('{\n  "name": "Anarchism",')  # pretty-printed, in WME's key order
    result = wikisnap.show(without_tarballs, title="Anarchism")
    assert result.details["records"] == [json.loads(out)] and "counts" not in result.details
    assert wikisnap.show(without_tarballs, id=12, wiki="enwiki").details["records"] == [json.loads(out)]


def test_counts_and_sizes_per_wiki_and_namespace_come_from_the_manifest(enwiki_build, without_tarballs):
    manifest = json.loads((enwiki_build / "manifest.json").read_text())
    result = wikisnap.show(without_tarballs)
    (row,) = result.details["counts"]
    assert (row["dbname"], row["ns"], row["records"]) == (
        "enwiki",
        0,
        manifest["counts"]["enwiki"]["records/ns0/written"],
    )
    for kind in ("tarball", "parquet", "metadata"):
        assert row[kind]["bytes"] == sum(o["bytes"] for o in manifest["outputs"] if o["kind"] == kind)
    code, out, err = cli("show", str(without_tarballs), "--counts")
    assert code == 0, err
    header, line = out.splitlines()
    assert header.split() == ["wiki", "ns", "records", "metadata", "parquet", "tarball"]
    assert line.split()[:3] == ["enwiki", "0", "106"]


def test_the_schema_is_the_parquet_footers(enwiki_build, without_tarballs):
    shard = next((enwiki_build / "parquet").rglob("*.parquet"))
    code, out, err = cli("show", str(without_tarballs), "--schema", "--json")
    assert code == 0, err
    schemas = json.loads(out)["details"]["schemas"]
    assert schemas == {"parquet": pq.read_schema(shard).to_string(show_schema_metadata=False)}
    assert "date_modified: timestamp[ms, tz=UTC]" in schemas["parquet"]


def test_a_text_only_snapshot_shows_its_text_rows(build, tmp_path):
    code, _, err = build([ENWIKI], tmp_path / "text", "--formats", "text")
    assert code == 0, err
    (row,) = wikisnap.show(tmp_path / "text", id=12).details["records"]
    assert row["title"] == "Anarchism" and row["text"].startswith("Anarchism is a political philosophy")
    assert row["id"] == "12" and row["date_modified"] == "2016-04-22T10:19:33Z"  # JSON, as the records
    assert "text" in wikisnap.show(tmp_path / "text", schema=True).details["schemas"]


def test_what_is_not_there_is_one_line_and_exit_2(without_tarballs, tmp_path):
    code, out, err = cli("show", str(without_tarballs), "--id", "999999999")
    assert code == 2 and err.strip() == f"wikisnap show: error: {without_tarballs}: no record with page id 999999999"
    code, out, err = cli("show", str(tmp_path))
    assert code == 2 and "no manifest.json" in err and "Traceback" not in err
    code, out, err = cli("show", str(without_tarballs), "--id", "12", "--title", "Anarchism")
    assert code == 2 and "not allowed with argument" in err
    with pytest.raises(wikisnap.UsageError, match="--id or --title, not both"):
        wikisnap.show(without_tarballs, id=12, title="Anarchism")


def test_a_snapshot_behind_an_fsspec_url_is_read_in_place(without_tarballs):
    """Object stores (s3://, gs://) go through fsspec: here its in-memory filesystem."""
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in without_tarballs.rglob("*"):
        if path.is_file() and ".wikisnap" not in path.parts:
            fs.pipe(f"/show-test/{path.relative_to(without_tarballs).as_posix()}", path.read_bytes())
    try:
        remote = wikisnap.show("memory://show-test", id=12, schema=True, counts=True)
        local = wikisnap.show(without_tarballs, id=12, schema=True, counts=True)
        assert remote.details == local.details and remote.details["records"][0]["name"] == "Anarchism"
    finally:
        fs.rm("/show-test", recursive=True)
