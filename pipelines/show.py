"""`wikisnap show SNAPSHOT`: peek into a snapshot without unpacking a tarball.

    wikisnap show OUT                      # per (wiki, namespace): records, sizes of each output kind
    wikisnap show OUT --id 12              # the record of page 12, pretty-printed (WME JSON)
    wikisnap show OUT --title Anarchism    # the record(s) titled so
    wikisnap show OUT --schema             # the Arrow schema of each Parquet output kind

Counts and sizes come from the manifest; records and schemas from the Parquet shards it lists
(a pyarrow dataset filtered on `identifier`/`name`, which reads only the row groups whose
statistics can hold the value). A snapshot built without Parquet has no records to show here.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from wikisnap.pipelines.errors import UsageError
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import fs_for, join, open_read_arrow, read_bytes

# The columns a record is found by, per Parquet output kind: (id column, title column).
KEYS = {"parquet": ("identifier", "name"), "text": ("id", "title")}


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "snapshot",
        metavar="SNAPSHOT_DIR",
        help="a committed build/update output (has manifest.json): a folder or an fsspec URL (s3://, gs://, …)",
    )
    find = parser.add_mutually_exclusive_group()
    find.add_argument("--id", type=int, default=None, metavar="N", help="print the record of page id N (WME JSON)")
    find.add_argument("--title", default=None, metavar="T", help="print the record(s) whose title is T, as written")
    parser.add_argument(
        "--wiki", default=None, metavar="DB", help="with --id/--title: only this wiki (default: every wiki of it)"
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the Arrow schema of each Parquet output kind (records, text)"
    )
    parser.add_argument(
        "--counts",
        action="store_true",
        help="print per (wiki, namespace) the records and the bytes of each output kind (the default "
        "without --id, --title and --schema)",
    )


def read_manifest(snapshot: str) -> dict:
    """The manifest of a committed output; UsageError when there is none."""
    path = join(snapshot, layout.MANIFEST)
    try:
        return json.loads(read_bytes(path))
    except FileNotFoundError:
        raise UsageError(f"{snapshot}: no {layout.MANIFEST}, so not a committed wikisnap output") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None


def counts(manifest: dict) -> list[dict]:
    """Per (wiki, namespace): records and, per output kind, files and bytes (dead letters per wiki)."""
    rows: dict[tuple[str, int | None], dict] = {}
    for o in manifest.get("outputs", []):
        if "dbname" not in o:
            continue  # a file of the whole snapshot (its JSON Schemas), of no wiki
        row = rows.setdefault((o["dbname"], o.get("ns")), {"dbname": o["dbname"], "ns": o.get("ns"), "records": 0})
        kind = row.setdefault(o["kind"], {"files": 0, "bytes": 0, "records": 0})
        kind["files"] += 1
        kind["bytes"] += o["bytes"]
        kind["records"] += o.get("records", 0)
    for row in rows.values():
        # the records of a (wiki, ns): its tarball's, else its Parquet's, else its text's
        source = next((k for k in ("tarball", "parquet", "text", "batch", "deadletter") if k in row), None)
        row["records"] = row[source]["records"] if source else 0
    return [rows[key] for key in sorted(rows, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


def format_counts(rows: list[dict]) -> str:
    kinds = sorted({k for row in rows for k in row if isinstance(row[k], dict)})
    lines = [f"{'wiki':<16}{'ns':>4}{'records':>12}" + "".join(f"{k:>14}" for k in kinds)]
    for row in rows:
        cells = "".join(f"{_size(row[k]['bytes']) if k in row else '-':>14}" for k in kinds)
        ns = "-" if row["ns"] is None else str(row["ns"])
        lines.append(f"{row['dbname']:<16}{ns:>4}{row['records']:>12,}{cells}")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _shards(snapshot: str, manifest: dict, kind: str, wiki: str | None) -> list[str]:
    return [
        join(snapshot, o["path"])
        for o in manifest.get("outputs", [])
        if o["kind"] == kind and (wiki is None or o["dbname"] == wiki)
    ]


def schemas(snapshot: str, manifest: dict) -> dict[str, str]:
    """Output kind → its Arrow schema as text (from the footer of its first shard)."""
    import pyarrow.parquet as pq

    found = {}
    for kind in KEYS:
        shards = _shards(snapshot, manifest, kind, None)
        if shards:
            with open_read_arrow(shards[0]) as f:
                found[kind] = pq.read_schema(f).to_string(show_schema_metadata=False)
    if not found:
        raise UsageError(f"{snapshot}: no Parquet output (built with --formats ndjson alone?), so no schema to show")
    return found


def find_records(snapshot: str, manifest: dict, page_id: int | None, title: str | None, wiki: str | None) -> list[dict]:
    """The records of page `page_id` (or titled `title`) in the snapshot's Parquet, as WME JSON
    (the text output's rows when it has no record Parquet)."""
    import pyarrow.dataset as ds

    from wikisnap.schemas.arrow import table_to_records
    from wikisnap.schemas.serialize import format_time

    for kind, (id_column, title_column) in KEYS.items():
        shards = _shards(snapshot, manifest, kind, wiki)
        if not shards:
            continue
        fs, _ = fs_for(shards[0])
        dataset = ds.dataset([fs_for(s)[1] for s in shards], format="parquet", filesystem=fs)
        if page_id is not None:  # the text layout's id is the page id as a string (as wikimedia/wikipedia's)
            where = ds.field(id_column) == (page_id if kind == "parquet" else str(page_id))
        else:
            where = ds.field(title_column) == title
        table = dataset.to_table(filter=where)
        if kind == "parquet":
            return table_to_records(table)
        # times as the records print them (Go's RFC 3339), so the rows are JSON like the records
        return [{k: format_time(v) if isinstance(v, datetime) else v for k, v in r.items()} for r in table.to_pylist()]
    raise UsageError(
        f"{snapshot}: no Parquet output to look records up in (built with --formats ndjson alone?); "
        "rebuild with --formats ndjson,parquet"
    )


def show(snapshot: str, page_id: int | None = None, title: str | None = None, wiki: str | None = None,
         schema: bool = False, with_counts: bool = False) -> tuple[dict, str]:  # fmt: skip
    """What `wikisnap show` prints: (details for --json, the text). UsageError for a folder that is
    no committed output, or a record that is not there."""
    manifest = read_manifest(snapshot)
    details: dict = {}
    text: list[str] = []
    if page_id is not None or title is not None:
        records = find_records(snapshot, manifest, page_id, title, wiki)
        if not records:
            what = f"page id {page_id}" if page_id is not None else f"title {title!r}"
            raise UsageError(f"{snapshot}: no record with {what}{f' in {wiki}' if wiki else ''}")
        details["records"] = records
        text += [json.dumps(r, ensure_ascii=False, indent=2) for r in records]
    if schema:
        details["schemas"] = schemas(snapshot, manifest)
        text += [f"# {kind}\n{s}" for kind, s in details["schemas"].items()]
    if with_counts or not details:
        details["counts"] = counts(manifest)
        text.append(format_counts(details["counts"]))
    return details, "\n".join(text)
