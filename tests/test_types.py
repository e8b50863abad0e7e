"""Consistent types (issue 23 item 4): every Parquet output of a real build, its HF copy and an
update of a base written with the old types; the JSON Schemas shipped in the snapshot and HF folder.

The rule checked: every timestamp column, nested ones included, is `timestamp[ms, tz=UTC]` except
the documented exception (schemas/arrow.py): times WME's services stamp (`event.date_created`,
`event.date_published` wherever an `event` is, `is_part_of.date_modified`) are
`timestamp[ns, tz=UTC]`, the only unit that keeps WME's 7 fractional digits. Text `id` is a string,
as in HuggingFace `wikimedia/wikipedia`.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_structured_build import ndjson, wme_record
from test_update import RECENTCHANGE, enwiki_events, records_by_id, write_lines

from conftest import ENWIKI, read_snapshot, read_xml_bytes
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA, table_to_records
from wikisnap.schemas.files import NAMES, schema_bytes
from wikisnap.schemas.serialize import format_time, to_wme_json
from wikisnap.schemas.structured import STRUCTURED_SCHEMA, structured_from_table

PARQUET_KINDS = {"parquet": ARTICLE_SCHEMA, "text": TEXT_SCHEMA, "structured-parquet": STRUCTURED_SCHEMA}
# the documented exception: (parent, field) of the times WME's services stamp
NS_TIMES = {("event", "date_created"), ("event", "date_published"), ("is_part_of", "date_modified")}
MS_UTC, NS_UTC = pa.timestamp("ms", tz="UTC"), pa.timestamp("ns", tz="UTC")


def cli(*args) -> tuple[int, str]:
    """`wikisnap ARGS` in-process: (exit code, stderr)."""
    from wikisnap.pipelines.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["-q", *[str(a) for a in args]])
    return code, stderr.getvalue()


def timestamps(t: pa.DataType, path: tuple[str, ...]):
    """(path, type) of every timestamp inside `t`, through structs and lists."""
    if pa.types.is_timestamp(t):
        yield path, t
    elif pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from timestamps(t.field(i).type, (*path, t.field(i).name))
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        yield from timestamps(t.value_type, path)


def check_types(schema: pa.Schema) -> tuple[int, int]:
    """Assert the rule on one Parquet schema; returns (ms columns, ns columns) seen."""
    seen = {MS_UTC: 0, NS_UTC: 0}
    for f in schema:
        for path, t in timestamps(f.type, (f.name,)):
            want = NS_UTC if tuple(path[-2:]) in NS_TIMES else MS_UTC
            assert t == want, f"{'.'.join(path)}: {t}, the rule says {want}"
            seen[t] += 1
    if "id" in schema.names:  # the text layout
        assert schema.field("id").type == pa.string()
    return seen[MS_UTC], seen[NS_UTC]


def parquet_outputs(folder: Path) -> list[tuple[str, Path]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [(o["kind"], folder / o["path"]) for o in manifest["outputs"] if o["kind"] in PARQUET_KINDS]


@pytest.fixture(scope="module")
def typed(build, tmp_path_factory):
    """(enwiki build with records, text, small members and one dead letter (page 12 without its
    id); a structured build of WME records). (Text of WME records: tests/test_plaintext.py.)"""
    root = tmp_path_factory.mktemp("typed")
    enwiki = root / "enwiki"
    xml = read_xml_bytes(ENWIKI).decode("utf-8")
    broken = xml.replace(
        "<title>Anarchism</title>\n    <ns>0</ns>\n    <id>12</id>", "<title>Anarchism</title>\n    <ns>0</ns>"
    )
    dump = root / "enwiki-broken.xml.bz2"
    dump.write_bytes(bz2.compress(broken.encode()))
    code, _o, err = build([dump], enwiki, "--formats", "ndjson,parquet,text", "--member-size-mb", "0.5")
    assert code == 0, err
    src = ndjson(root / "records.ndjson", [wme_record(t) for t in ("Coset", "Kyoto", "Malta")])
    structured = root / "structured"
    code, _o, err = build([src], structured, "--date", "20240101", "--formats", "ndjson,parquet,structured")
    assert code == 0, err
    return enwiki, structured


def test_every_parquet_output_follows_the_type_rule(typed):
    kinds, ms, ns = set(), 0, 0
    for folder in typed:
        for kind, path in parquet_outputs(folder):
            schema = pq.read_schema(path)
            assert schema.equals(PARQUET_KINDS[kind], check_metadata=True), path
            got = check_types(schema)
            kinds.add(kind)
            ms, ns = ms + got[0], ns + got[1]
    assert kinds == set(PARQUET_KINDS)
    assert ms and ns  # both units were met, so the rule was tested on each


def text_row_json(row: dict) -> dict:
    """A text Parquet row as JSON (times as Go's RFC 3339 text), the form text.schema.json describes."""
    return {k: format_time(v) if isinstance(v, datetime) else v for k, v in row.items()}


def validators(folder: Path) -> dict[str, jsonschema.Draft202012Validator]:
    found = {}
    for name in NAMES:
        path = folder / "schemas" / f"{name}.schema.json"
        if path.exists():
            assert path.read_bytes() == schema_bytes(name)  # the package's own file
            schema = json.loads(path.read_bytes())
            jsonschema.Draft202012Validator.check_schema(schema)
            found[name] = jsonschema.Draft202012Validator(schema)
    return found


def test_json_schemas_ship_in_the_snapshot_listed_verified_and_validating(typed):
    enwiki, structured = typed
    both = {"article", "metadata"}
    for folder, names in ((enwiki, both | {"text", "deadletter"}), (structured, both | {"structured"})):
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = {o["path"] for o in manifest["outputs"] if o["kind"] == "schema"}
        assert listed == {f"schemas/{n}.schema.json" for n in names}
        assert set(validators(folder)) == names
        assert cli("verify", folder)[0] == 0
    check = validators(structured) | validators(enwiki)
    # metadata files (records' and structured snapshots') and dead letters validate too
    for folder in typed:
        for meta in [*folder.glob("*_namespace_*.json"), *(folder / "structured-snapshots").glob("*.json")]:
            check["metadata"].validate(json.loads(meta.read_text()))
    letters = (enwiki / "deadletter" / "enwiki_deadletters.ndjson").read_text().splitlines()
    assert len(letters) == 1
    check["deadletter"].validate(json.loads(letters[0]))
    # NDJSON lines and Parquet rows (read back as records) of each kind validate
    _n, records, _l = read_snapshot(enwiki / "enwiki_namespace_0.tar.gz")
    for record in records:
        check["article"].validate(record)
    for kind, path in parquet_outputs(enwiki):
        table = pq.read_table(path)
        # a record row stands for its NDJSON line (Parquet does not tell a missing key from its zero value)
        lines = [json.loads(to_wme_json(r)) for r in table_to_records(table)] if kind == "parquet" else None
        rows = lines if kind == "parquet" else [text_row_json(r) for r in table.to_pylist()]
        assert rows
        for row in rows:
            validators(enwiki)["article" if kind == "parquet" else "text"].validate(row)
    _n, srecords, _l = read_snapshot(structured / "structured-snapshots" / "enwiki_namespace_0.tar.gz")
    assert srecords
    for record in srecords:
        check["structured"].validate(record)
    for kind, path in parquet_outputs(structured):
        if kind == "structured-parquet":
            for record in structured_from_table(pq.read_table(path)):
                check["structured"].validate(record)


def test_a_schema_file_that_is_not_listed_fails_verify(typed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(typed[0], copy)
    (copy / "schemas" / "structured.schema.json").write_bytes(schema_bytes("structured"))
    code, err = cli("verify", copy)
    assert code != 0 and "schemas/structured.schema.json: a snapshot file that manifest.json does not list" in err


@pytest.mark.parametrize("which,tops", [(0, {"data", "text"}), (1, {"data", "structured"})])
def test_hf_folder_has_the_types_and_the_schemas(typed, tmp_path, which, tops):
    folder = tmp_path / "hf"
    code, err = cli("publish", typed[which], "--to", folder, "--layout", "hf")
    assert code == 0, err
    shards = sorted(folder.rglob("train-*.parquet"))
    assert {p.relative_to(folder).parts[0] for p in shards} == tops
    for path in shards:
        check_types(pq.read_schema(path))
    names = {"data": "article", "text": "text", "structured": "structured"}
    assert set(validators(folder)) == {names[t] for t in tops}
    card = (folder / "README.md").read_text()
    assert "## Types and JSON Schemas" in card and "`timestamp[ns, tz=UTC]`" in card
    for top in tops:
        assert f"`schemas/{names[top]}.schema.json`: one row of the" in card
    assert cli("verify", folder)[0] == 0


# -- an update of a base written with the old types ---------------------------------------------------

OLD_TEXT = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        *[pa.field(n, pa.string()) for n in ("url", "title", "text", "qid", "date_modified", "license")],
    ]
)


def naive(t: pa.DataType) -> pa.DataType:
    """`t` with every timestamp without its time zone (as an older writer could have left them)."""
    if pa.types.is_timestamp(t):
        return pa.timestamp(t.unit)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, naive(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, naive(t.value_type)))
    return t


def old_text_table(table: pa.Table) -> pa.Table:
    rows = table.to_pylist()
    for row in rows:
        row["id"] = int(row["id"])
        row["date_modified"] = format_time(row["date_modified"]) if row["date_modified"] else None
    return pa.Table.from_pylist(rows, schema=OLD_TEXT)


def make_old_base(source: Path, dest: Path, text=old_text_table) -> Path:
    """A copy of `source` whose shards have the previous version's types (text: id int64,
    date_modified RFC 3339 strings; records and Structured Contents: naive timestamps, as an
    older writer could have left them), its manifest fixed to match."""
    shutil.copytree(source, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    for entry in manifest["outputs"]:
        path = dest / entry["path"]
        if entry["kind"] == "schema":
            path.unlink()  # the old version shipped none
            continue
        if entry["kind"] not in PARQUET_KINDS:
            continue
        shard = pq.ParquetFile(path)
        old = OLD_TEXT if entry["kind"] == "text" else naive_schema(PARQUET_KINDS[entry["kind"]])
        with pq.ParquetWriter(path.with_suffix(".old"), old) as w:
            for g in range(shard.num_row_groups):
                group = shard.read_row_group(g)
                w.write_table(text(group) if entry["kind"] == "text" else group.cast(old))
        path.with_suffix(".old").replace(path)
        data = path.read_bytes()
        entry["bytes"], entry["md5"] = len(data), hashlib.md5(data).hexdigest()
    manifest["outputs"] = [o for o in manifest["outputs"] if o["kind"] != "schema"]
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def naive_schema(schema: pa.Schema = ARTICLE_SCHEMA) -> pa.Schema:
    return pa.schema([pa.field(f.name, naive(f.type)) for f in schema])


def update_both(update, old_base, new_base, given, tmp_path) -> dict[str, Path]:
    """The same diffs applied to the old-schema base and to the base in today's types: their outputs."""
    outs = {}
    for name, base in (("old", old_base), ("new", new_base)):
        code, _o, err = update(base, given, tmp_path / f"out-{name}")
        assert code == 0, err
        outs[name] = tmp_path / f"out-{name}"
    return outs


@pytest.mark.parametrize("diffs", ["events", "nothing"])
def test_update_of_an_old_schema_base_converts_its_copied_shards(typed, update, tmp_path, diffs):
    new_base = typed[0]
    old_base = make_old_base(new_base, tmp_path / "old-base")
    assert pq.read_schema(next((old_base / "text").rglob("*.parquet"))).field("id").type == pa.int64()
    if diffs == "events":  # some members touched (rewritten), the others copied
        events = enwiki_events(records_by_id(new_base / "enwiki_namespace_0.tar.gz"))
        given = [write_lines(tmp_path / "page-change.ndjson", events)]
    else:  # nothing to apply: the whole snapshot is copied as files
        given = [RECENTCHANGE]
    outs = update_both(update, old_base, new_base, given, tmp_path)
    counts = json.loads((outs["old"] / "manifest.json").read_text())["counts"]["enwiki"]
    if diffs == "events":
        assert counts["members/ns0/copied"] and counts["members/ns0/rewritten"]
    got, want = parquet_outputs(outs["old"]), parquet_outputs(outs["new"])
    assert [(k, p.relative_to(outs["old"])) for k, p in got] == [(k, p.relative_to(outs["new"])) for k, p in want]
    for (kind, path), (_kind, reference) in zip(got, want, strict=True):
        # one schema across every shard, and the values of an update of the same base in the new types
        assert pq.read_schema(path).equals(PARQUET_KINDS[kind], check_metadata=True), path
        assert pq.read_table(path).equals(pq.read_table(reference)), path
    assert set(validators(outs["old"])) == {"article", "text", "metadata"}
    assert cli("verify", outs["old"])[0] == 0


def test_an_old_shard_that_cannot_be_converted_fails_the_update_in_one_line(typed, update, tmp_path):
    def garbled(table: pa.Table) -> pa.Table:
        old = old_text_table(table)
        return old.set_column(5, "date_modified", pa.array(["yesterday"] * old.num_rows))

    base = make_old_base(typed[0], tmp_path / "old-base", text=garbled)
    code, _o, err = update(base, [RECENTCHANGE], tmp_path / "out")
    assert code == 2, err
    line = next(x for x in err.splitlines() if "not in a schema this wikisnap can convert" in x)
    assert "enwiki_namespace_0_0.parquet" in line and "date_modified" in line
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_text_dates_are_the_records_dates(typed):
    enwiki = typed[0]
    _n, records, _l = read_snapshot(enwiki / "enwiki_namespace_0.tar.gz")
    rows = [r for _k, p in parquet_outputs(enwiki) if _k == "text" for r in pq.read_table(p).to_pylist()]
    got = {r["id"]: r["date_modified"] for r in rows}
    assert len(got) == len(rows) == len(records)
    assert got == {
        str(r["identifier"]): datetime.strptime(r["date_modified"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        for r in records
    }


def test_conform_casts_old_columns_and_names_the_one_it_cannot():
    from wikisnap.schemas.arrow import conform

    old = pa.table({"id": pa.array([12], pa.int64()), "date_modified": ["2016-04-22T10:19:33Z"]})
    old = old.append_column("title", pa.array(["Anarchism"]))
    new = conform(old, TEXT_SCHEMA)
    assert new.schema.equals(TEXT_SCHEMA, check_metadata=True)
    row = new.to_pylist()[0]
    assert row["id"] == "12" and row["text"] is None  # a column the old shard lacks is nulls
    assert format_time(row["date_modified"]) == "2016-04-22T10:19:33Z"
    assert conform(new, TEXT_SCHEMA) is new
    with pytest.raises(ValueError, match="column 'date_modified' \\(string\\) cannot become timestamp"):
        conform(old.set_column(1, "date_modified", pa.array(["yesterday"])), TEXT_SCHEMA)
    with pytest.raises(ValueError, match="column 'extra' is not in wikisnap's schema"):
        conform(old.append_column("extra", pa.array([1])), TEXT_SCHEMA)
    # records: times an older writer left without a time zone get UTC, nested ones too
    naive_table = pa.Table.from_pylist([], schema=naive_schema())
    assert conform(naive_table, ARTICLE_SCHEMA).schema.equals(ARTICLE_SCHEMA, check_metadata=True)


def test_update_of_an_old_schema_structured_base_converts_its_copied_structured_shards(build, update, tmp_path):
    """Structured Contents shards of an older base: an untouched member's shard of a touched
    snapshot (Kyoto's, one page per member), and every shard of an untouched snapshot (dewiki)."""
    from test_update_structured import delete_event

    records = [wme_record(t) for t in ("Coset", "Kyoto", "Malta")]
    src = ndjson(tmp_path / "records.ndjson", records)
    new_base = tmp_path / "base"
    flags = ("--date", "20240101", "--formats", "ndjson,parquet,structured", "--member-size-mb", "0.05")
    code, _o, err = build([src], new_base, *flags)
    assert code == 0, err
    old_base = make_old_base(new_base, tmp_path / "old-base")
    old_shard = next((old_base / "structured-snapshots" / "parquet").rglob("*.parquet"))
    assert pq.read_schema(old_shard).field("event").type.field("date_published").type == pa.timestamp("ns")
    given = [delete_event(tmp_path, records[0])]
    outs = update_both(update, old_base, new_base, given, tmp_path)
    counts = json.loads((outs["old"] / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["members/ns0/copied"] == 1 and counts["members/ns0/rewritten"] == 1, counts
    got, want = parquet_outputs(outs["old"]), parquet_outputs(outs["new"])
    assert {k for k, _p in got} == {"parquet", "structured-parquet"}
    assert len(got) == len(want) >= 4  # Kyoto's and Malta's member, each with its two shards
    for (kind, path), (_kind, reference) in zip(got, want, strict=True):
        assert pq.read_schema(path).equals(PARQUET_KINDS[kind], check_metadata=True), path
        assert pq.read_table(path).equals(pq.read_table(reference)), path
    assert set(validators(outs["old"])) == {"article", "structured", "metadata"}
    assert cli("verify", outs["old"])[0] == 0


def test_hf_publish_of_an_old_schema_snapshot_converts_its_shards(typed, tmp_path):
    old = make_old_base(typed[0], tmp_path / "old")
    folders = {}
    for name, snapshot in (("old", old), ("new", typed[0])):
        folders[name] = tmp_path / f"hf-{name}"
        code, err = cli("publish", snapshot, "--to", folders[name], "--layout", "hf")
        assert code == 0, err
    shards = sorted(p.relative_to(folders["new"]) for p in folders["new"].rglob("train-*.parquet"))
    assert shards and shards == sorted(p.relative_to(folders["old"]) for p in folders["old"].rglob("train-*.parquet"))
    for rel in shards:
        check_types(pq.read_schema(folders["old"] / rel))
        assert (folders["old"] / rel).read_bytes() == (folders["new"] / rel).read_bytes(), rel
