"""The Article as a typed, nested Arrow schema (for Parquet), and record ⇄ row conversion.

`ARTICLE_SCHEMA` is generated from the struct table in `article.py`: one column per Article
field, objects as Arrow structs, lists as Arrow lists (never JSON strings), Go `int` → int64,
`float64` → float64 (`version.size.value` too, as in WME), strings → string (`article_body.html`
and `.wikitext` → large_string: a row group of big pages passes 2 GiB), times → timestamp UTC:

- `ms` for MediaWiki times (`date_created`, `date_modified`, `date_previously_modified`,
  `version.editor.date_started`): whole seconds in practice. Parquet has no seconds unit —
  pyarrow writes `timestamp[s]` as MILLIS and reads it back as `ms` — so `ms` makes the schema
  read from a file equal to the one written.
- `ns` for times WME's Go services stamp (`event.date_created`, `event.date_published`,
  `is_part_of.date_modified`, and the `event` of nested objects): real WME output has 6 and 7
  fractional digits (`2023-07-28T15:58:38.923659Z`, `2024-08-06T08:45:21.6690873Z`); `us` would
  lose the 7th. Parquet stores them as TIMESTAMP(NANOS) (format 2.6, pyarrow's default);
  pyarrow, DuckDB, Polars and HF datasets read it, Spark only as longs
  (`spark.sql.legacy.parquet.nanosAsLong`).

Parquet leaves nothing out: every field the serialiser can write has a column, `version.scores`
included (structs of floats). `to_wme_json(record_from_arrow(row)) == to_wme_json(record)` for
every record `records_to_table` accepts. What Parquet does not keep is what JSON does not keep
either (the difference between a missing key and its omitempty zero value) — and the key order
of the input dict, which the serialiser fixes anyway.

Reading back: `table_to_records(table)` (times as exact ints, then `record_from_arrow`).
`record_from_arrow` also takes rows of `table.to_pylist()`, where pyarrow gives `datetime` for
`ms` columns but refuses `ns` values with a non-zero sub-microsecond part unless pandas is
installed — hence `table_to_records`.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from wikisnap.schemas.article import LARGE_STRINGS, ROOT, STRUCTS, TIME_UNITS, Field, is_list, struct_of
from wikisnap.schemas.serialize import format_time, format_time_ns, parse_time_ns

__all__ = [
    "ARTICLE_SCHEMA",
    "TEXT_SCHEMA",
    "arrow_type",
    "conform",
    "record_from_arrow",
    "records_to_table",
    "table_to_records",
]


def _element(t: pa.DataType) -> pa.DataType:
    # "element" is the Parquet-compliant list item name pyarrow writes and reads back.
    return pa.list_(pa.field("element", t))


def arrow_type(struct: str, f: Field) -> pa.DataType:
    """The Arrow type of field `f` of `struct` (public for tests and tools)."""
    t = f.type
    sub = struct_of(t)
    if sub:
        st = _struct_type(sub)
        return _element(st) if is_list(t) else st
    if t == "[]string":
        return _element(pa.string())
    if t == "string":
        return pa.large_string() if (struct, f.key) in LARGE_STRINGS else pa.string()
    if t in ("int", "*int", "*int64"):
        return pa.int64()
    if t in ("float64", "*float64"):
        return pa.float64()
    if t == "bool":
        return pa.bool_()
    if t in TIME_UNITS:
        return pa.timestamp(TIME_UNITS[t], tz="UTC")
    raise AssertionError(f"{struct}.{f.key}: no Arrow type for {t!r}")


def _struct_type(name: str) -> pa.StructType:
    return pa.struct([pa.field(f.key, arrow_type(name, f)) for f in STRUCTS[name]])


ARTICLE_SCHEMA: pa.Schema = pa.schema(
    [pa.field(f.key, arrow_type(ROOT, f)) for f in STRUCTS[ROOT]],
    metadata={"wikisnap.schema": "wme-article", "wikisnap.schema.source": "wikisnap/schemas/article.py"},
)


def _int_view(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, _int_view(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, _int_view(t.value_type)))
    return t


# ---------------------------------------------------------------------------------------------
# Compiled per-struct plans: (key, kind, sub-plan or time unit).

_VALUE, _TIME, _STRUCT, _LIST = range(4)
_UNIT_NS = {"ms": 1_000_000, "ns": 1}


class _Plan:
    __slots__ = ("name", "fields", "keys", "plain")

    def __init__(self, name: str):
        self.name = name
        self.fields: tuple = ()
        self.keys: frozenset[str] = frozenset()
        self.plain = False  # no time fields and no sub-structs: rows pass through unchanged


def _compile() -> dict[str, _Plan]:
    plans = {name: _Plan(name) for name in STRUCTS}
    for name, fields in STRUCTS.items():
        out = []
        for f in fields:
            sub = struct_of(f.type)
            if sub:
                out.append((f.key, _LIST if is_list(f.type) else _STRUCT, plans[sub]))
            elif f.type in TIME_UNITS:
                out.append((f.key, _TIME, TIME_UNITS[f.type]))
            else:
                out.append((f.key, _VALUE, None))
        p = plans[name]
        p.fields = tuple(out)
        p.keys = frozenset(f.key for f in fields)
        p.plain = all(kind == _VALUE for _, kind, _ in out)
    return plans


_PLANS = _compile()


def _bad(plan: _Plan, d: dict, path: str) -> ValueError:
    unknown = sorted(k for k in d if k not in plan.keys)
    return ValueError(f"unknown key {unknown[0]!r} in {plan.name} (at {path})")


def _time_to_int(v, unit: str, where: str) -> int:
    try:
        ns = parse_time_ns(v)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    scale = _UNIT_NS[unit]
    if ns % scale:
        raise ValueError(f"{where}: {v!r} is finer than the column's {unit} unit")
    return ns // scale


def _to_row(d: dict, plan: _Plan, path: str) -> dict:
    if type(d) is not dict:
        raise ValueError(f"{path} must be an object, not {type(d).__name__}")
    if not d.keys() <= plan.keys:
        raise _bad(plan, d, path)
    if plan.plain:
        return d
    out = dict(d)
    for key, kind, sub in plan.fields:
        v = d.get(key)
        if v is None or kind == _VALUE:
            continue
        if kind == _TIME:
            out[key] = _time_to_int(v, sub, f"{path}.{key}")
        elif kind == _STRUCT:
            out[key] = _to_row(v, sub, f"{path}.{key}")
        else:
            if sub.plain:
                for i, item in enumerate(v):
                    if type(item) is not dict or not item.keys() <= sub.keys:
                        _to_row(item, sub, f"{path}.{key}[{i}]")  # raises the precise error
                continue
            out[key] = [_to_row(item, sub, f"{path}.{key}[{i}]") for i, item in enumerate(v)]
    return out


def records_to_table(records: list[dict]) -> pa.Table:
    """Article dicts (as `to_wme_json` takes them) → a Table with `ARTICLE_SCHEMA`.

    Unknown keys and time strings not in Go's form raise ValueError; wrong value types raise
    pyarrow's ArrowInvalid / ArrowTypeError. The records are not modified.
    """
    root = _PLANS[ROOT]
    rows = [_to_row(r, root, ROOT) for r in records]
    return pa.Table.from_pylist(rows, schema=ARTICLE_SCHEMA)


def _time_text(v, unit: str) -> str:
    if type(v) is int:
        return format_time_ns(v * _UNIT_NS[unit])
    if isinstance(v, datetime):
        value = getattr(v, "value", None)  # pandas.Timestamp (a datetime subclass) keeps ns
        return format_time_ns(value) if type(value) is int else format_time(v)
    raise ValueError(f"unexpected time value {v!r}")


def _from_row(d: dict, plan: _Plan, path: str) -> dict:
    if not d.keys() <= plan.keys:
        raise _bad(plan, d, path)
    out = {}
    for key, kind, sub in plan.fields:
        v = d.get(key)
        if v is None:
            continue
        if kind == _VALUE:
            if type(v) is list and not v:
                continue
            out[key] = v
        elif kind == _TIME:
            out[key] = _time_text(v, sub)
        elif kind == _STRUCT:
            out[key] = _from_row(v, sub, f"{path}.{key}")
        elif v:
            out[key] = [_from_row(item, sub, f"{path}.{key}[{i}]") for i, item in enumerate(v)]
    return out


def record_from_arrow(row: dict) -> dict:
    """One row of an `ARTICLE_SCHEMA` table (a dict) → the Article record, keys in WME order.

    Nulls and empty lists are dropped; times become Go's RFC 3339 text again. Timestamps may be
    ints in the column unit (`table_to_records`), datetimes, or pandas Timestamps.
    """
    return _from_row(row, _PLANS[ROOT], ROOT)


def article_row(fields: dict) -> dict:
    """Article fields (any subset) → their Arrow row values (times as ints); ValueError on bad keys."""
    return _to_row(fields, _PLANS[ROOT], ROOT)


def article_fields(row: dict) -> dict:
    """`article_row`'s inverse: Arrow row values of Article fields → the fields, nulls dropped."""
    return _from_row(row, _PLANS[ROOT], ROOT)


def int_view(t: pa.DataType) -> pa.DataType:
    """`t` with every timestamp as int64 (how rows are read back exactly, see `table_to_records`)."""
    return _int_view(t)


def table_to_records(table: pa.Table) -> list[dict]:
    """Every row of a table read back from Parquet → Article records (times exact to the ns)."""
    view = pa.schema([pa.field(f.name, _int_view(f.type)) for f in table.schema])
    return [record_from_arrow(row) for row in table.cast(view).to_pylist()]


# The plain-text output (`--formats text`): the columns of HuggingFace's wikimedia/wikipedia
# (id, url, title, text) plus qid, date_modified and license. `id` is the page id as a string, as
# wikimedia/wikipedia has it (its rows join on `id` without a cast). `date_modified` is the WME
# record's time in the unit of every MediaWiki time wikisnap writes (`timestamp[ms, tz=UTC]`, as
# `date_modified` of the record Parquet). `text` is a plain string, as in wikimedia/wikipedia: the
# writer closes a row group before 64 MB of text, far below Arrow's 2 GiB.
TEXT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("title", pa.string()),
        pa.field("text", pa.string()),
        pa.field("qid", pa.string()),
        pa.field("date_modified", pa.timestamp("ms", tz="UTC")),
        pa.field("license", pa.string()),
    ],
    metadata={"wikisnap.schema": "wikisnap-text", "wikisnap.schema.source": "wikisnap/schemas/arrow.py"},
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` (rows of a shard written by this or an earlier wikisnap) with exactly `schema`.

    Columns are matched by name and cast: older shards hold the same values in other types (text
    `id` int64, text `date_modified` RFC 3339 strings, timestamps without a time zone or in another
    unit). A column `schema` has and the table lacks is nulls; a column the table has and `schema`
    lacks is an error. Raises ValueError saying which column cannot be cast. A table already in
    `schema` is returned as it is.
    """
    if table.schema.equals(schema, check_metadata=True):
        return table
    extra = [name for name in table.schema.names if name not in schema.names]
    if extra:
        raise ValueError(f"column {extra[0]!r} is not in wikisnap's schema")
    columns = []
    for f in schema:
        if f.name not in table.schema.names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table[f.name]
        if column.type != f.type:
            try:
                column = column.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                why = str(exc).split(". ", 1)[0]  # Arrow's first sentence says which value
                raise ValueError(f"column {f.name!r} ({column.type}) cannot become {f.type}: {why}") from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
