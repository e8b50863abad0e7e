"""The JSON Schema of each kind of record wikisnap writes, as the files every snapshot ships.

    article     one WME Article: a line of the NDJSON tarballs and batches, a row of the record
                Parquet (`article.py` generates it from the struct table)
    text        one row of the plain-text Parquet (`--formats text`; arrow.py TEXT_SCHEMA)
    structured  one Structured Contents record: a line of its tarballs, a row of its Parquet
                (structured.py)
    metadata    a snapshot's (or hourly batch's, or structured snapshot's) metadata file: WME's
                Snapshot object (transforms/write.py `snapshot_metadata`)
    deadletter  one line of a dead-letter file (transforms/write.py `deadletter_line`)

The files sit beside this module (package data, `setup.py`); `python -m wikisnap.schemas.files`
regenerates them all (tests/test_schema.py fails when a file and its generator disagree). A run
copies them into its output (`schemas/{name}.schema.json`, listed in the manifest) so a snapshot
describes itself wherever it is copied to.

The schemas describe the JSON form, whose times are RFC 3339 strings. A row of the record or
structured Parquet is the same record: serialised by its omitempty rules (`to_wme_json` of
`table_to_records`, `structured_line`) it is the NDJSON line the schema validates (a raw row also
holds the zero values JSON leaves out). A text row validates with its time printed as Go prints it.
The Parquet types are in arrow.py (times `timestamp[ms, tz=UTC]`, WME's service times
`timestamp[ns, tz=UTC]`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from wikisnap.schemas import article

__all__ = ["NAMES", "json_schemas", "json_schema_text", "package_file", "schema_bytes"]

NAMES = ("article", "text", "structured", "metadata", "deadletter")
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TIME_MS = {"type": "string", "format": "date-time", "pattern": article.TIME_PATTERN["time[ms]"]}


def package_file(name: str) -> Path:
    """The JSON Schema file of `name` (one of NAMES) inside the installed package."""
    if name not in NAMES:
        raise ValueError(f"no JSON Schema named {name!r}")
    return Path(__file__).with_name(f"{name}.schema.json")


def schema_bytes(name: str) -> bytes:
    """The bytes of the shipped JSON Schema file of `name`."""
    return package_file(name).read_bytes()


def text_json_schema() -> dict:
    """The JSON Schema of one row of the plain-text Parquet (columns of arrow.py TEXT_SCHEMA)."""
    nullable = {"type": ["string", "null"]}
    return {
        "$schema": _DRAFT,
        "$id": "urn:wikisnap:schema:text",
        "title": "One row of wikisnap's plain-text Parquet (the columns of HuggingFace wikimedia/wikipedia, and more)",
        "description": (
            "Generated from wikisnap/schemas/files.py. Parquet types: id, url, title, text, qid, license string; "
            "date_modified timestamp[ms, tz=UTC], written here as Go's RFC 3339 UTC text. `id` is the page id "
            "as a string (as wikimedia/wikipedia has it)."
        ),
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "url": {"type": "string"},
            "title": {"type": "string"},
            "text": {"type": "string"},
            "qid": {**nullable, "pattern": "^Q[1-9][0-9]*$"},
            "date_modified": {"anyOf": [_TIME_MS, {"type": "null"}]},
            "license": nullable,
        },
        "required": ["id", "url", "title", "text"],
        "additionalProperties": False,
    }


def _object(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _list(items: dict) -> dict:
    return {"type": "array", "minItems": 1, "items": items}


def structured_json_schema() -> dict:
    """The JSON Schema of one Structured Contents record (structured.py: the Article's fields by
    the Article's rules, then description, infoboxes and sections as nested parts)."""
    from wikisnap.schemas.structured import ARTICLE_KEYS, STRUCTURED_KEYS

    base = article.json_schema()
    defs = copy.deepcopy(base["$defs"])
    fields = defs[article.ROOT]["properties"]
    text = {"type": "string", "minLength": 1}
    count = {"type": "integer", "not": {"const": 0}}
    image = _object({"content_url": text, "width": count, "height": count})
    defs["PartImage"] = image
    defs["PartLink"] = _object({"url": text, "text": text, "images": _list({"$ref": "#/$defs/PartImage"})})
    defs["Part"] = _object(
        {
            "type": text,
            "name": text,
            "value": text,
            "values": _list({"type": "string"}),
            "has_parts": _list({"$ref": "#/$defs/Part"}),
            "images": _list({"$ref": "#/$defs/PartImage"}),
            "links": _list({"$ref": "#/$defs/PartLink"}),
        }
    )
    properties = {}
    for key in STRUCTURED_KEYS:
        if key in ARTICLE_KEYS:
            properties[key] = fields[key]
        elif key == "description":
            properties[key] = text
        else:
            properties[key] = _list({"$ref": "#/$defs/Part"})
    defs["Structured"] = _object(properties)
    return {
        "$schema": _DRAFT,
        "$id": "urn:wikisnap:schema:structured",
        "title": "Wikimedia Enterprise Structured Contents record (one NDJSON line) as wikisnap writes it",
        "description": (
            "Generated from wikisnap/schemas/files.py. Keys appear in the order listed (Go struct order of "
            "general/schema Structured); the Article's fields follow the Article's schema; every key is "
            "omitempty. Times are RFC 3339 UTC as Go prints them."
        ),
        "$ref": "#/$defs/Structured",
        "$defs": defs,
    }


def metadata_json_schema() -> dict:
    """The JSON Schema of a snapshot metadata file (WME's Snapshot object: `{db}_namespace_{ns}.json`,
    a batch's and a structured snapshot's `.json`)."""
    ident = {"type": "string", "minLength": 1}
    return {
        "$schema": _DRAFT,
        "$id": "urn:wikisnap:schema:metadata",
        "title": "Wikimedia Enterprise snapshot metadata as wikisnap writes it (one JSON object)",
        "description": (
            "Generated from wikisnap/schemas/files.py. `version` is the md5 of the tarball it describes, "
            "`date_modified` the newest record (or change) time, or --date; `size.value` the tarball's MB."
        ),
        "type": "object",
        "properties": {
            # the snapshot's name, db and namespace (its form is transforms/formats/layout.py's to spell)
            "identifier": ident,
            "version": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "date_modified": {"type": "string", "format": "date-time", "pattern": article.TIME_PATTERN["time[ns]"]},
            "is_part_of": {**_object({"identifier": ident}), "required": ["identifier"]},
            "in_language": {**_object({"identifier": {"type": "string"}}), "required": ["identifier"]},
            "namespace": {**_object({"identifier": {"type": "integer"}}), "required": ["identifier"]},
            "size": {
                **_object({"value": {"type": "number", "minimum": 0}, "unit_text": {"const": "MB"}}),
                "required": ["value", "unit_text"],
            },
        },
        "required": ["identifier", "version", "date_modified", "is_part_of", "in_language", "namespace", "size"],
        "additionalProperties": False,
    }


def deadletter_json_schema() -> dict:
    """The JSON Schema of one dead letter (a line of `deadletter/{db}_deadletters.ndjson`)."""
    return {
        "$schema": _DRAFT,
        "$id": "urn:wikisnap:schema:deadletter",
        "title": "One dead letter: an input that did not become a record, why, and its raw input",
        "description": "Generated from wikisnap/schemas/files.py.",
        "type": "object",
        "properties": {
            "dbname": {"type": "string"},
            "source": {"type": "string"},
            "page_id": {"type": ["integer", "null"]},
            "title": {"type": ["string", "null"]},
            "reason": {"type": "string"},
            "raw": {"type": "string"},
        },
        "required": ["dbname", "source", "page_id", "title", "reason", "raw"],
        "additionalProperties": False,
    }


def json_schemas() -> dict[str, dict]:
    """Name → the JSON Schema it ships as (generated now, from the tables)."""
    return {
        "article": article.json_schema(),
        "text": text_json_schema(),
        "structured": structured_json_schema(),
        "metadata": metadata_json_schema(),
        "deadletter": deadletter_json_schema(),
    }


def json_schema_text(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    for name, schema in json_schemas().items():
        package_file(name).write_text(json_schema_text(schema), encoding="utf-8")
