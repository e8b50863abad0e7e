"""The WME Article model, once: every object wikisnap emits, its keys in WME order, and omitempty.

WME serialises records with Go's `encoding/json`, so the byte layout of a line is fixed by the Go
structs in `general/schema/*.go` of github `wikimedia-enterprise/wikimedia-enterprise` (see
`tests/data/wme/field_order.json`, which `tests/test_schema.py` checks this table against).
Only the structs reachable from `Article` are here; struct fields Go never writes (`json:"-"`:
`Article.VersionIdentifier`, `Event.IsInternal`, `Image.Thumbnail`, the Avro-only parts of
`ReferenceRiskData`) are left out of all three views (NDJSON, Parquet, JSON Schema).

Each field is `(json key, type[, omitempty])`; omitempty is True unless a third item says False.
Types use Go's spelling where it matters for encoding:

| type | Go | written when empty? |
|---|---|---|
| `string`, `int`, `float64`, `bool` | value | no (omitempty drops `""`, `0`, `false`) unless omitempty is False |
| `time[ms]`, `time[ns]` | `*time.Time` | no (nil pointer); RFC 3339 string in records |
| `*int`, `*int64`, `*float64` | pointer to scalar | only nil is dropped: `0` is written |
| `*Name` | pointer to struct | nil dropped; a present struct is always written, `{}` if all empty |
| `[]*Name`, `[]string` | slice | nil and empty dropped |

The time unit is wikisnap's Parquet choice (the JSON text is the same for both): `time[ms]` for
times MediaWiki stores to the second (revision, page and registration times; Parquet has no
seconds unit, so `ms` is what any reader sees), `time[ns]` for times WME's Go services stamp
themselves (`event.*`, `is_part_of.date_modified`), which real WME output writes with 6–7
fractional digits (`2024-08-06T08:45:21.6690873Z`).

Run `python -m wikisnap.schemas.article > schemas/article.schema.json` to regenerate the JSON
Schema from this table (the test fails when the file and the table disagree).
"""

from __future__ import annotations

import json
from typing import NamedTuple

ROOT = "Article"


class Field(NamedTuple):
    key: str
    type: str
    omitempty: bool = True


def _s(*fields: tuple) -> tuple[Field, ...]:
    return tuple(Field(*f) for f in fields)


_NAME_URL = _s(("name", "string"), ("url", "string"))

# Struct name → fields in WME (Go struct) order.
STRUCTS: dict[str, tuple[Field, ...]] = {
    "Article": _s(
        ("name", "string"),
        ("identifier", "int"),
        ("abstract", "string"),
        ("date_created", "time[ms]"),
        ("date_modified", "time[ms]"),
        ("date_previously_modified", "time[ms]"),
        ("protection", "[]*Protection"),
        ("version", "*Version"),
        ("previous_version", "*PreviousVersion"),
        ("url", "string"),
        ("watchers_count", "int"),
        ("namespace", "*Namespace"),
        ("in_language", "*Language"),
        ("main_entity", "*Entity"),
        ("additional_entities", "[]*Entity"),
        ("categories", "[]*Category"),
        ("templates", "[]*Template"),
        ("redirects", "[]*Redirect"),
        ("is_part_of", "*Project"),
        ("article_body", "*ArticleBody"),
        ("license", "[]*License"),
        ("visibility", "*Visibility"),
        ("event", "*Event"),
        ("image", "*Image"),
    ),
    "Protection": _s(("type", "string"), ("level", "string"), ("expiry", "string")),
    "Version": _s(
        ("identifier", "int"),
        ("comment", "string"),
        ("tags", "[]string"),
        ("is_minor_edit", "bool"),
        ("is_flagged_stable", "bool"),
        ("has_tag_needs_citation", "bool"),
        ("scores", "*Scores"),
        ("editor", "*Editor"),
        ("number_of_characters", "int"),
        ("size", "*Size"),
        ("event", "*Event"),
        ("diff", "*Diff"),
        ("is_breaking_news", "bool"),
        ("noindex", "bool"),
        ("maintenance_tags", "*MaintenanceTags"),
    ),
    "Scores": _s(
        ("damaging", "*ProbabilityScore"),
        ("goodfaith", "*ProbabilityScore"),
        ("revertrisk", "*ProbabilityScore"),
        ("referencerisk", "*ReferenceRiskData"),
        ("referenceneed", "*ReferenceNeedData"),
    ),
    "ProbabilityScore": _s(("prediction", "bool"), ("probability", "*Probability")),
    # Go field False is tagged json:"false", True json:"true" (in that order).
    "Probability": _s(("false", "float64"), ("true", "float64")),
    "ReferenceRiskData": _s(("reference_risk_score", "float64", False)),
    "ReferenceNeedData": _s(("reference_need_score", "float64", False)),
    "Editor": _s(
        ("identifier", "int"),
        ("name", "string"),
        ("edit_count", "int"),
        ("groups", "[]string"),
        ("is_bot", "bool"),
        ("is_anonymous", "bool"),
        ("is_admin", "bool"),
        ("is_patroller", "bool"),
        ("has_advanced_rights", "bool"),
        ("date_started", "time[ms]"),
    ),
    "Size": _s(("value", "float64"), ("unit_text", "string")),
    "Event": _s(
        ("identifier", "string"),
        ("type", "string"),
        ("date_created", "time[ns]"),
        ("fail_count", "int"),
        ("fail_reason", "string"),
        ("date_published", "time[ns]"),
        ("partition", "*int"),
        ("offset", "*int64"),
    ),
    "Diff": _s(
        ("longest_new_repeated_character", "int"),
        ("dictionary_words", "*Delta"),
        ("non_dictionary_words", "*Delta"),
        ("non_safe_words", "*Delta"),
        ("informal_words", "*Delta"),
        ("uppercase_words", "*Delta"),
        ("size", "*Size"),
    ),
    "Delta": _s(
        ("increase", "int", False),
        ("decrease", "int", False),
        ("sum", "int", False),
        ("proportional_increase", "float64", False),
        ("proportional_decrease", "float64", False),
    ),
    "MaintenanceTags": _s(
        ("citation_needed_count", "int"),
        ("pov_count", "int"),
        ("clarification_needed_count", "int"),
        ("update_count", "int"),
    ),
    "PreviousVersion": _s(("identifier", "int"), ("number_of_characters", "int")),
    "Namespace": _s(
        ("name", "string"),
        ("identifier", "int", False),
        ("alternate_name", "string"),
        ("description", "string"),
        ("event", "*Event"),
    ),
    "Language": _s(
        ("identifier", "string"),
        ("name", "string"),
        ("alternate_name", "string"),
        ("direction", "string"),
        ("event", "*Event"),
    ),
    "Entity": _s(("identifier", "string"), ("url", "string"), ("aspects", "[]string")),
    "Category": _NAME_URL,
    "Template": _NAME_URL,
    "Redirect": _NAME_URL,
    "Project": _s(
        ("name", "string"),
        ("identifier", "string"),
        ("url", "string"),
        ("version", "string"),
        ("additional_type", "string"),
        ("code", "string"),
        ("namespace", "*Namespace"),
        ("date_modified", "time[ns]"),
        ("in_language", "*Language"),
        ("size", "*Size"),
        ("event", "*Event"),
    ),
    "ArticleBody": _s(("html", "string"), ("wikitext", "string")),
    "License": _s(("name", "string"), ("identifier", "string"), ("url", "string")),
    "Visibility": _s(("text", "bool", False), ("editor", "bool", False), ("comment", "bool", False)),
    "Image": _s(
        ("content_url", "string"),
        ("width", "int"),
        ("height", "int"),
        ("alternative_text", "string"),
        ("caption", "string"),
    ),
}

SCALAR_TYPES = frozenset({"string", "int", "float64", "bool", "time[ms]", "time[ns]", "*int", "*int64", "*float64"})
TIME_UNITS = {"time[ms]": "ms", "time[ns]": "ns"}
# Strings that can be very large get Arrow large_string (64-bit offsets) in Parquet.
LARGE_STRINGS = frozenset({("ArticleBody", "html"), ("ArticleBody", "wikitext")})


def struct_of(type_: str) -> str | None:
    """`*Version` / `[]*Entity` → the struct name; None for scalars and `[]string`."""
    name = type_.removeprefix("[]").removeprefix("*")
    return name if name in STRUCTS else None


def is_list(type_: str) -> bool:
    return type_.startswith("[]")


def reachable(root: str = ROOT) -> list[str]:
    """Struct names reachable from `root`, depth first in field order (root first)."""
    seen: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.append(name)
        for f in STRUCTS[name]:
            sub = struct_of(f.type)
            if sub:
                visit(sub)

    visit(root)
    return seen


def _check_table() -> None:
    for name, fields in STRUCTS.items():
        keys = [f.key for f in fields]
        if len(set(keys)) != len(keys):
            raise AssertionError(f"{name}: duplicate key")
        for f in fields:
            if struct_of(f.type) is None and f.type not in SCALAR_TYPES and f.type != "[]string":
                raise AssertionError(f"{name}.{f.key}: unknown type {f.type!r}")
            if not f.omitempty and f.type not in ("int", "float64", "bool", "string"):
                raise AssertionError(f"{name}.{f.key}: only value scalars can be non-omitempty")


_check_table()


# ---------------------------------------------------------------------------------------------
# JSON Schema (draft 2020-12) of a serialised line, generated from the table above.

TIME_PATTERN = {
    # MediaWiki times: whole seconds in practice; up to ms (the Parquet unit) is allowed.
    "time[ms]": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,2}[1-9])?Z$",
    # Go RFC 3339 with trimmed fraction: no fraction, or 1–9 digits not ending in 0.
    "time[ns]": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,8}[1-9])?Z$",
}


def _json_type(struct: str, f: Field) -> dict:
    t = f.type
    sub = struct_of(t)
    if sub:
        ref = {"$ref": f"#/$defs/{sub}"}
        return {"type": "array", "minItems": 1, "items": ref} if is_list(t) else ref
    if t == "[]string":
        return {"type": "array", "minItems": 1, "items": {"type": "string"}}
    if t in TIME_PATTERN:
        return {"type": "string", "format": "date-time", "pattern": TIME_PATTERN[t]}
    if t in ("*int", "*int64"):
        return {"type": "integer"}
    if t == "*float64":
        return {"type": "number"}
    # Value scalars: omitempty means the serialised value is never the zero value.
    if t == "string":
        return {"type": "string", "minLength": 1} if f.omitempty else {"type": "string"}
    if t == "bool":
        return {"type": "boolean", "const": True} if f.omitempty else {"type": "boolean"}
    base = {"type": "integer"} if t == "int" else {"type": "number"}
    return {**base, "not": {"const": 0}} if f.omitempty else base


def json_schema() -> dict:
    """The JSON Schema of one serialised Article line (what `to_wme_json` writes)."""
    defs = {}
    for name in reachable():
        fields = STRUCTS[name]
        d: dict = {
            "type": "object",
            "properties": {f.key: _json_type(name, f) for f in fields},
            "additionalProperties": False,
        }
        required = [f.key for f in fields if not f.omitempty]
        if required:
            d["required"] = required
        defs[name] = d
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:wikisnap:schema:article",
        "title": "Wikimedia Enterprise Article record (one NDJSON line) as wikisnap writes it",
        "description": (
            "Generated from wikisnap/schemas/article.py. Keys appear in the order listed (Go struct "
            "order). Fields Go drops when empty (omitempty) are optional and never hold their zero "
            "value; non-omitempty fields are required. Times are RFC 3339 UTC as Go prints them."
        ),
        "$ref": f"#/$defs/{ROOT}",
        "$defs": defs,
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(json_schema_text())
