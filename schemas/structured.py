"""WME's Structured Contents record, once: key order, omitempty, its NDJSON line and typed Arrow rows.

The record is general/schema's `Structured` struct (github wikimedia-enterprise/wikimedia-enterprise,
`general/schema/structured.go`), keys in its Go field order, every one omitempty:

    name, identifier, abstract, version, event, url, date_created, date_modified, main_entity,
    is_part_of, additional_entities, in_language, image, visibility, license, description,
    infoboxes, sections

(the order of WME's HF dataset `wikimedia/structured-wikipedia` lines too). Every field but
`description`, `infoboxes` and `sections` has the Article's type and is serialised by the Article's
rules (`serialize.to_wme_json_bytes_in`); the parts are `HasParts` trees as
`transforms/parse/structured.to_json` writes them. Not written: `references` and `tables` (WME fills
them from its citation and table parsers, which are not ported; the HF dataset has neither) and
`attribution`.

Parquet (`STRUCTURED_SCHEMA`): the Article fields as in `ARTICLE_SCHEMA` (same Arrow types), parts
as nested lists of structs `type, name, value, values, has_parts, images, links` typed down to
`PART_DEPTH` levels; below that `has_parts` is the JSON text of the deeper parts, as WME's own Avro
schema stores every level (`AvroHasParts.has_parts` is a JSON string). Nothing is lost:
`structured_line` of each row read back equals the record's line (as for the Article, Parquet does
not tell a missing key from its omitempty zero value; the parts' zero values are dropped on reading).
"""

from __future__ import annotations

import json

import pyarrow as pa

from wikisnap.schemas.arrow import ARTICLE_SCHEMA, article_fields, article_row, int_view
from wikisnap.schemas.serialize import to_wme_json_bytes_in

__all__ = [
    "ARTICLE_KEYS",
    "PART_DEPTH",
    "STRUCTURED_KEYS",
    "STRUCTURED_SCHEMA",
    "structured_from_table",
    "structured_line",
    "structured_to_table",
]

STRUCTURED_KEYS = (
    "name",
    "identifier",
    "abstract",
    "version",
    "event",
    "url",
    "date_created",
    "date_modified",
    "main_entity",
    "is_part_of",
    "additional_entities",
    "in_language",
    "image",
    "visibility",
    "license",
    "description",
    "infoboxes",
    "sections",
)
PLAIN_KEYS = ("description", "infoboxes", "sections")
ARTICLE_KEYS = tuple(k for k in STRUCTURED_KEYS if k not in PLAIN_KEYS)
# Typed levels of parts; WME's test pages go 5 deep (section > section > list > list_item > …).
PART_DEPTH = 8


def structured_line(record: dict) -> bytes:
    """A Structured record (dict) → its NDJSON line as WME's Go encoder writes it."""
    article = {k: record[k] for k in ARTICLE_KEYS if k in record}
    plain = {k: record[k] for k in PLAIN_KEYS if record.get(k)}
    return to_wme_json_bytes_in(article, STRUCTURED_KEYS, plain)


# -- Arrow ---------------------------------------------------------------------------------------

_IMAGE = pa.struct([("content_url", pa.string()), ("width", pa.int64()), ("height", pa.int64())])


def _list(t: pa.DataType) -> pa.DataType:
    return pa.list_(pa.field("element", t))


_LINK = pa.struct([("url", pa.string()), ("text", pa.string()), ("images", _list(_IMAGE))])


def _part_type(level: int) -> pa.StructType:
    deeper = pa.string() if level == PART_DEPTH else _list(_part_type(level + 1))
    return pa.struct(
        [
            ("type", pa.string()),
            ("name", pa.string()),
            ("value", pa.string()),
            ("values", _list(pa.string())),
            ("has_parts", deeper),
            ("images", _list(_IMAGE)),
            ("links", _list(_LINK)),
        ]
    )


_PARTS = _list(_part_type(1))
STRUCTURED_SCHEMA = pa.schema(
    [
        pa.field(k, ARTICLE_SCHEMA.field(k).type)
        if k in ARTICLE_KEYS
        else pa.field(k, pa.string() if k == "description" else _PARTS)
        for k in STRUCTURED_KEYS
    ],
    metadata={"wikisnap.schema": "wme-structured", "wikisnap.schema.source": "wikisnap/schemas/structured.py"},
)


def _part_row(part: dict, level: int) -> dict:
    row = dict(part)
    parts = part.get("has_parts")
    if parts:
        if level == PART_DEPTH:
            row["has_parts"] = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
        else:
            row["has_parts"] = [_part_row(p, level + 1) for p in parts]
    return row


def _part_of_row(row: dict, level: int) -> dict:
    out = {}
    for key in ("type", "name", "value", "values", "has_parts", "images", "links"):
        v = row.get(key)
        if v is None or v == "" or v == []:
            continue
        if key == "has_parts":
            v = json.loads(v) if level == PART_DEPTH else [_part_of_row(p, level + 1) for p in v]
        elif key == "images":
            v = [_drop_empty(i) for i in v]
        elif key == "links":
            v = [_drop_empty(link) for link in v]
        out[key] = v
    return out


def _drop_empty(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if v is None or v == "" or v == [] or v == 0:
            continue
        out[k] = [_drop_empty(i) for i in v] if k == "images" else v
    return out


def structured_to_table(records: list[dict]) -> pa.Table:
    """Structured records → a Table with `STRUCTURED_SCHEMA` (records not modified)."""
    rows = []
    for record in records:
        row = article_row({k: record[k] for k in ARTICLE_KEYS if k in record})
        row["description"] = record.get("description")
        for key in ("infoboxes", "sections"):
            parts = record.get(key)
            row[key] = [_part_row(p, 1) for p in parts] if parts else None
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=STRUCTURED_SCHEMA)


def structured_from_table(table: pa.Table) -> list[dict]:
    """Rows of a `STRUCTURED_SCHEMA` table (read back from Parquet) → Structured records, key order
    and omitempty as the NDJSON lines have them (times exact to the ns)."""
    view = pa.schema([pa.field(f.name, int_view(f.type)) for f in table.schema])
    out = []
    for row in table.cast(view).to_pylist():
        fields = article_fields({k: row[k] for k in ARTICLE_KEYS})
        record = {}
        for key in STRUCTURED_KEYS:
            if key in fields:
                record[key] = fields[key]
            elif key == "description" and row[key]:
                record[key] = row[key]
            elif key in ("infoboxes", "sections") and row[key]:
                record[key] = [_part_of_row(p, 1) for p in row[key]]
        out.append(record)
    return out
