"""The three views of the Article agree: struct table (article.py) ↔ WME's Go structs ↔ Arrow
schema (arrow.py) ↔ JSON Schema (article.schema.json); NDJSON and Parquet hold the same records.

Documented exclusions (in every view): Go fields tagged `json:"-"` (Article.VersionIdentifier,
Event.IsInternal, Image.Thumbnail, ReferenceRiskData's Avro-only fields), which WME never writes.
Uses `jsonschema` (Draft 2020-12).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wikisnap.schemas import article
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, record_from_arrow, records_to_table, table_to_records
from wikisnap.schemas.article import ROOT, STRUCTS, is_list, reachable, struct_of
from wikisnap.schemas.serialize import to_wme_json

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "wme" / "field_order.json"
SCHEMA_FILE = Path(article.__file__).with_name("article.schema.json")
GOLDEN = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"
WME_REPO_3 = DATA / "html" / "wme-repo__articles-3records.ndjson"
MWPFH_2 = DATA / "html" / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson"

# Real `version` / `event` of a HuggingFace wikimedia/structured-wikipedia line (see
# test_serialize.py): `maintenance_tags` {}, scores, and a 7-digit date_published.
HF_RECORD_LINE = (
    '{"name":"Not Again SU","identifier":76716259,"date_created":"2024-04-23T16:50:32Z",'
    '"date_modified":"2024-04-23T16:53:55Z","version":{"identifier":1220413474,"comment":"Added # to title.",'
    '"is_minor_edit":true,"scores":{"revertrisk":{"probability":{"false":0.5951822996139526,'
    '"true":0.40481770038604736}}},"editor":{"identifier":47559838,"name":"T.olivia.p","edit_count":4,'
    '"groups":["*","user"],"date_started":"2024-03-19T15:34:53Z"},"number_of_characters":72,'
    '"size":{"value":72,"unit_text":"B"},"maintenance_tags":{}},"url":"https://en.wikipedia.org/wiki/Not_Again_SU",'
    '"in_language":{"identifier":"en"},"is_part_of":{"identifier":"enwiki","url":"https://en.wikipedia.org"},'
    '"event":{"identifier":"fa3cae5b-8707-4f55-9fab-5baa4c286a32","type":"update",'
    '"date_created":"2024-04-23T16:53:56.207887Z","date_published":"2024-08-06T08:45:21.6690873Z"}}'
)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def all_real_lines() -> list[str]:
    return lines(GOLDEN) + lines(WME_REPO_3) + lines(MWPFH_2) + [HF_RECORD_LINE]


# ---------------------------------------------------------------------------------------------
# Table ↔ WME's Go structs (reference file derived from general/schema/*.go)


def _go_struct_name(go_type: str) -> str | None:
    name = go_type.removeprefix("[]").removeprefix("*")
    return name if name[:1].isupper() else None


def test_table_is_the_go_structs_reachable_from_article():
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))

    # The closure of Article in the reference, following only JSON-visible fields.
    seen, todo = [], ["Article"]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        for f in ref[name]:
            sub = _go_struct_name(f["go_type"]) if f["json"] else None
            if sub and sub != "time.Time":
                todo.append(sub)
    assert sorted(seen) == sorted(reachable())

    for name in reachable():
        go_fields = [f for f in ref[name] if f["json"] is not None]
        ours = STRUCTS[name]
        assert [f["json"] for f in go_fields] == [f.key for f in ours], name
        assert [bool(f["omitempty"]) for f in go_fields] == [f.omitempty for f in ours], name
        for g, f in zip(go_fields, ours, strict=True):
            # The table spells types as Go does, except that it names the Parquet time unit.
            expected = "*time.Time" if f.type.startswith("time[") else f.type
            assert g["go_type"] == expected, f"{name}.{f.key}: Go {g['go_type']}, table {f.type}"


def test_excluded_go_fields_are_exactly_the_json_dash_ones():
    ref = json.loads(REFERENCE.read_text(encoding="utf-8"))
    hidden = sorted((n, f["go"]) for n in reachable() for f in ref[n] if f["json"] is None)
    assert hidden == [
        ("Article", "VersionIdentifier"),
        ("Event", "IsInternal"),
        ("Image", "Thumbnail"),
        ("ReferenceRiskData", "ReferenceCount"),
        ("ReferenceRiskData", "References"),
        ("ReferenceRiskData", "SurvivalRatio"),
    ]


# ---------------------------------------------------------------------------------------------
# Table ↔ Arrow schema


def _check_arrow(struct: str, arrow_struct) -> None:
    fields = STRUCTS[struct]
    names = [arrow_struct.field(i).name for i in range(arrow_struct.num_fields)]
    assert names == [f.key for f in fields], struct
    for f in fields:
        t = arrow_struct.field(f.key).type
        sub = struct_of(f.type)
        if sub and is_list(f.type):
            assert pa.types.is_list(t) and pa.types.is_struct(t.value_type), f"{struct}.{f.key}"
            _check_arrow(sub, t.value_type)
        elif sub:
            assert pa.types.is_struct(t), f"{struct}.{f.key}"
            _check_arrow(sub, t)
        elif f.type == "[]string":
            assert t == pa.list_(pa.field("element", pa.string()))
        elif f.type == "string":
            assert pa.types.is_string(t) or pa.types.is_large_string(t), f"{struct}.{f.key}"
        elif f.type in ("int", "*int", "*int64"):
            assert t == pa.int64(), f"{struct}.{f.key}"
        elif f.type in ("float64", "*float64"):
            assert t == pa.float64(), f"{struct}.{f.key}"
        elif f.type == "bool":
            assert t == pa.bool_(), f"{struct}.{f.key}"
        else:
            unit = {"time[ms]": "ms", "time[ns]": "ns"}[f.type]
            assert t == pa.timestamp(unit, tz="UTC"), f"{struct}.{f.key}"


def test_arrow_schema_matches_table():
    _check_arrow(ROOT, pa.struct(list(ARTICLE_SCHEMA)))


def test_arrow_time_units():
    v = ARTICLE_SCHEMA.field("version").type
    assert ARTICLE_SCHEMA.field("date_modified").type == pa.timestamp("ms", tz="UTC")
    assert v.field("editor").type.field("date_started").type == pa.timestamp("ms", tz="UTC")
    assert ARTICLE_SCHEMA.field("event").type.field("date_published").type == pa.timestamp("ns", tz="UTC")
    assert ARTICLE_SCHEMA.field("article_body").type.field("html").type == pa.large_string()
    assert v.field("size").type.field("value").type == pa.float64()


# ---------------------------------------------------------------------------------------------
# Table ↔ JSON Schema


def test_schema_file_is_generated_from_table():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == article.json_schema_text(), (
        "regenerate: python -m wikisnap.schemas.article > schemas/article.schema.json"
    )


def _resolve(prop: dict) -> str:
    return prop["$ref"].removeprefix("#/$defs/")


def test_json_schema_matches_table():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$ref"] == f"#/$defs/{ROOT}"
    defs = schema["$defs"]
    assert list(defs) == reachable()
    for name in reachable():
        d = defs[name]
        fields = STRUCTS[name]
        assert d["additionalProperties"] is False
        assert list(d["properties"]) == [f.key for f in fields], name
        assert d.get("required", []) == [f.key for f in fields if not f.omitempty], name
        for f in fields:
            p = d["properties"][f.key]
            sub = struct_of(f.type)
            if sub and is_list(f.type):
                assert p["type"] == "array" and p["minItems"] == 1 and _resolve(p["items"]) == sub
            elif sub:
                assert _resolve(p) == sub
            elif f.type == "[]string":
                assert p == {"type": "array", "minItems": 1, "items": {"type": "string"}}
            elif f.type.startswith("time["):
                assert p["type"] == "string" and p["format"] == "date-time"
            else:
                kind = {"string": "string", "bool": "boolean", "int": "integer", "*int": "integer"}
                kind |= {"*int64": "integer", "float64": "number", "*float64": "number"}
                assert p["type"] == kind[f.type], f"{name}.{f.key}"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("line", all_real_lines(), ids=lambda s: json.loads(s)["name"][:20])
def test_json_schema_accepts_real_records(validator, line):
    record = json.loads(line)
    assert list(validator.iter_errors(record)) == []
    assert list(validator.iter_errors(json.loads(to_wme_json(record)))) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("nmae",), "x"),  # unknown key
        (("version", "is_minor_edit"), False),  # omitempty bool is never written false
        (("name",), ""),  # omitempty string is never empty
        (("date_modified",), "2018-09-20T12:17:53.0Z"),  # not Go's time text
        (("event", "date_created"), "2023-07-28 15:58:38Z"),
        (("namespace",), {}),  # namespace.identifier is always written
        (("categories",), []),
        (("identifier",), "4042095"),
    ],
)
def test_json_schema_rejects(validator, path, value):
    record = json.loads(lines(GOLDEN)[0])
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(validator.iter_errors(record)) != []


# ---------------------------------------------------------------------------------------------
# NDJSON ⇄ Parquet


def _parquet_round_trip(table: pa.Table) -> pa.Table:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    buf.seek(0)
    assert pq.ParquetFile(buf).metadata.row_group(0).column(0).compression == "ZSTD"
    buf.seek(0)
    return pq.read_table(buf)


def test_parquet_round_trip_reproduces_every_line():
    golden = lines(GOLDEN)
    others = lines(WME_REPO_3) + lines(MWPFH_2) + [HF_RECORD_LINE]
    records = [json.loads(line) for line in golden + others]
    table = _parquet_round_trip(records_to_table(records))
    assert table.schema.equals(ARTICLE_SCHEMA)
    assert table.num_rows == len(records)
    back = table_to_records(table)
    # The golden lines are WME's own bytes; for the others, the canonical Go bytes of the input.
    assert [to_wme_json(r) for r in back[: len(golden)]] == golden
    assert [to_wme_json(r) for r in back[len(golden) :]] == [to_wme_json(r) for r in records[len(golden) :]]
    # Nothing is lost on the way: article_body.html and version.scores included.
    assert back[1]["article_body"]["html"] == records[1]["article_body"]["html"]
    assert back[1]["version"]["scores"] == records[1]["version"]["scores"]
    assert back[-1]["event"]["date_published"] == "2024-08-06T08:45:21.6690873Z"


def test_record_from_arrow_takes_to_pylist_rows():
    # Rows as pyarrow gives them (datetime objects); the golden times are at most microseconds.
    records = [json.loads(line) for line in lines(GOLDEN)]
    rows = _parquet_round_trip(records_to_table(records)).to_pylist()
    assert [to_wme_json(record_from_arrow(row)) for row in rows] == lines(GOLDEN)


def test_records_to_table_rejects_unknown_keys_and_bad_times():
    record = json.loads(lines(GOLDEN)[0])
    record["main_entity"]["ulr"] = "x"
    with pytest.raises(ValueError, match=r"'ulr' in Entity \(at Article\.main_entity\)"):
        records_to_table([record])
    record = json.loads(lines(GOLDEN)[0])
    record["additional_entities"][0]["aspect"] = ["S"]
    with pytest.raises(ValueError, match=r"'aspect' in Entity \(at Article\.additional_entities\[0\]\)"):
        records_to_table([record])
    record = json.loads(lines(GOLDEN)[0])
    record["date_modified"] = "2018-09-20T12:17:53.0001Z"  # finer than the ms column
    with pytest.raises(ValueError, match=r"Article\.date_modified"):
        records_to_table([record])
    record["date_modified"] = "20 Sep 2018"
    with pytest.raises(ValueError, match=r"Article\.date_modified"):
        records_to_table([record])


def test_records_to_table_does_not_modify_records():
    records = [json.loads(line) for line in lines(GOLDEN)]
    before = json.dumps(records)
    records_to_table(records)
    assert json.dumps(records) == before


def test_time_patterns_agree_with_parser():
    ms, ns = (re.compile(article.TIME_PATTERN[k]) for k in ("time[ms]", "time[ns]"))
    assert ms.match("2018-09-20T12:17:53.123Z") and not ms.match("2018-09-20T12:17:53.1234Z")
    assert ns.match("2024-08-06T08:45:21.6690873Z") and not ns.match("2024-08-06T08:45:21.6690870Z")


def test_every_shipped_json_schema_file_is_generated():
    from wikisnap.schemas.files import NAMES, json_schema_text, json_schemas, package_file

    schemas = json_schemas()
    assert tuple(schemas) == NAMES
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert package_file(name).read_text(encoding="utf-8") == json_schema_text(schema), (
            "regenerate: python -m wikisnap.schemas.files"
        )
    assert "*.json" in dict_of_package_data()["wikisnap.schemas"]  # shipped as package data


def dict_of_package_data() -> dict:
    import ast

    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    call = next(
        n for n in ast.walk(ast.parse(setup)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    )
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "package_data"))


def test_text_schema_follows_wikimedia_wikipedia_and_the_time_rule():
    from wikisnap.schemas.arrow import TEXT_SCHEMA

    assert TEXT_SCHEMA.field("id").type == pa.string()  # wikimedia/wikipedia's `id` is a string
    assert TEXT_SCHEMA.field("date_modified").type == pa.timestamp("ms", tz="UTC")
