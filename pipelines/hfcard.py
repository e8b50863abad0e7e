"""The dataset card (README.md) of a `publish --layout hf` folder: YAML header and description.

In: the committed snapshot (its manifest: tool, options, inputs, counts), the folder's shards
({relative path: rows}), the wikis' languages and licences, the snapshot date and where the
dataset lives (a local folder or a Hub repository id). Out: the README.md text. No placeholder
reaches the card: a value the inputs do not hold is left out (the project link, a checksum
column), never written as an empty cell or a stand-in.

Configs: one per (wiki, namespace) — `enwiki_ns0` (articles; the default), `enwiki_ns14`
(category pages), … — so that category, file and template pages never sit in the articles'
`train` split; one per wiki's plain text (`enwiki_text`) and Structured Contents
(`enwiki_structured`). Each has `data_files` globs and typed `dataset_info` features, so
`datasets.load_dataset(FOLDER, "enwiki_ns0")` reads it offline.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import per_namespace

NAMESPACE_WORDS = {
    # what a page of a namespace is called in a sentence: (one, many)
    0: ("article", "articles"),
    6: ("file page", "file pages"),
    10: ("template", "templates"),
    14: ("category page", "category pages"),
}

# One line per top-level column. The WME fields follow Wikimedia Enterprise's article schema
# (schemas/article.py keeps its keys and types, not prose); the text and structured columns are
# wikisnap's (schemas/arrow.py TEXT_SCHEMA, schemas/structured.py).
FIELD_DESCRIPTIONS = {
    "name": "page title",
    "identifier": "page id in its wiki",
    "abstract": "the lead section as plain text",
    "date_created": "when the page was created (its first revision), where history dumps were read",
    "date_modified": "time of the revision this row holds",
    "date_previously_modified": "time of the revision before it",
    "protection": "edit and move protections (type, level, expiry)",
    "version": "the revision: id, comment, tags, minor-edit flag, editor, size, …",
    "previous_version": "the revision before it: id and number of characters",
    "url": "the page's URL",
    "watchers_count": "number of watchers, where the inputs hold it",
    "namespace": "the page's namespace (id and name)",
    "in_language": "the wiki's language",
    "main_entity": "the page's Wikidata item (QID and URL)",
    "additional_entities": "other Wikidata items the page uses",
    "categories": "categories the page is in (name and URL)",
    "templates": "templates the page transcludes (name and URL)",
    "redirects": "pages that redirect to this one (name and URL)",
    "is_part_of": "the wiki (db name, URL, project)",
    "article_body": "the page body: wikitext, and Parsoid HTML where the build read it",
    "license": "licence(s) of the text (name, identifier, URL)",
    "visibility": "whether text, editor and comment are visible (not revision-deleted)",
    "event": "the event that produced this row (id, type, date)",
    "image": "the page's main image",
    "description": "the short description (page_props.sql)",
    "infoboxes": "infoboxes as trees of typed parts (name, value, links, images)",
    "sections": "sections as trees of typed parts: paragraphs, lists, fields",
    # the plain-text configs
    "id": "page id in its wiki, as a string (as in wikimedia/wikipedia)",
    "title": "page title",
    "text": "the page's plain text",
    "qid": "the page's Wikidata item",
}
TEXT_DESCRIPTIONS = {"license": "licence of the text"}
# which configs' rows each shipped JSON Schema describes (schemas/files.py)
SCHEMA_CONFIGS = {"article": "`{db}_ns{n}`", "text": "`*_text`", "structured": "`*_structured`"}


def count_words(ns: int, n: int) -> str:
    """`16 articles`, `1 category page`, `3 pages in namespace 4`."""
    one, many = NAMESPACE_WORDS.get(ns, ("page", "pages"))
    noun = one if n == 1 else many
    return f"{n:,} {noun}" if ns in NAMESPACE_WORDS else f"{n:,} {noun} in namespace {ns}"


def project_url() -> str | None:
    """The project's web address from the installed package metadata (Home-page, else the first
    Project-URL); None when the metadata names none, so the card names no link at all."""
    try:
        meta = importlib.metadata.metadata("wikisnap")
    except importlib.metadata.PackageNotFoundError:
        return None
    candidates = [meta.get("Home-page") or ""]
    candidates += [entry.partition(",")[2].strip() for entry in meta.get_all("Project-URL") or []]
    for url in candidates:
        # setuptools writes "UNKNOWN" for a missing url on old versions; a bare host is no project page
        if re.match(r"https?://[^/]+/.+", url):
            return url
    return None


def data_configs(rows: dict[str, int]) -> list[tuple[str, str, int]]:
    """(config name, wiki, namespace) of the record shards in `rows`, by wiki then namespace."""
    found = set()
    for rel in rows:
        parts = rel.split("/")
        if parts[0] == "data":
            found.add((parts[1], int(parts[2].rsplit("_", 1)[1])))
    return [(f"{db}_ns{ns}", db, ns) for db, ns in sorted(found)]


def default_config(rows: dict[str, int]) -> str:
    """The config `load_dataset` picks without a name: the first wiki's articles (namespace 0),
    else the first config there is."""
    configs = data_configs(rows)
    for name, _db, ns in configs:
        if ns == 0:
            return name
    if configs:
        return configs[0][0]
    for kind, suffix in ((layout.TEXT, "text"), (layout.HF_STRUCTURED, "structured")):
        wikis = sorted({rel.split("/")[1] for rel in rows if rel.startswith(kind + "/")})
        if wikis:
            return f"{wikis[0]}_{suffix}"
    return ""


def load_call(target: str, config: str) -> str:
    """The one line that loads a config of the dataset at `target` (a folder or a Hub repo id)."""
    return f'load_dataset("{target}", "{config}", split="train")'


def type_words(t: pa.DataType) -> str:
    """A column's type in a few words: `string`, `list of struct`, `timestamp (UTC)`."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list of " + type_words(t.value_type)
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_timestamp(t):
        return "timestamp (UTC)" if t.tz else "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    return str(t)


def fields_table(schema: pa.Schema, descriptions: dict[str, str]) -> str:
    """A markdown table of `schema`'s top-level columns: name, type, one line of description."""
    lines = ["| field | type | description |", "|---|---|---|"]
    for field in schema:
        text = descriptions.get(field.name) or FIELD_DESCRIPTIONS.get(field.name) or f"WME field `{field.name}`"
        lines.append(f"| `{field.name}` | {type_words(field.type)} | {text} |")
    return "\n".join(lines)


def source_section(manifest: dict) -> str:
    """Where the snapshot came from: the command and options, each dump file with the checksums the
    manifest holds (a column no input has is left out), the SQL tables, history files, base and diffs."""
    out = [
        f"Built by `wikisnap {manifest.get('command', 'build')}` with options "
        f"`{json.dumps(manifest.get('options', {}), sort_keys=True)}`."
    ]
    inputs = manifest.get("inputs", [])
    if inputs:
        sums = [k for k in ("md5", "sha1") if any(i.get(k) for i in inputs)]
        out += ["", "Dump files read:", ""]
        out.append("| file | wiki | bytes | pages |" + "".join(f" {k} |" for k in sums))
        out.append("|---|---|---:|---:|" + "---|" * len(sums))
        for i in inputs:
            cells = [f"`{_file_name(i)}`", _cell(i.get("dbname") or "?"), f"{i.get('bytes', 0):,}"]
            cells.append(f"{i.get('pages', 0):,}")
            # a range-split file without a published checksum has none to give
            cells += [f"`{i[k]}`" if i.get(k) else "not recorded" for k in sums]
            out.append("| " + " | ".join(cells) + " |")
    sql = manifest.get("sql_inputs", [])
    if sql:
        out += ["", "SQL table dumps read:", ""]
        out += [f"- `{_file_name(s)}` ({_cell(s.get('table', '?'))}, {_cell(s.get('dbname', '?'))})" for s in sql]
    history = manifest.get("history_inputs", [])
    if history:
        out += ["", "History dumps read:", ""] + [f"- `{_cell(os.path.basename(str(h)))}`" for h in history]
    base = manifest.get("base")
    if base:
        # `update` names its base folder; a sync's published manifest names the base snapshot's id
        name = base.get("snapshot", "") if isinstance(base, dict) else os.path.basename(str(base).rstrip("/"))
        out += ["", f"Updated from the snapshot `{name}`." if name else "Updated from an earlier snapshot."]
    diffs = manifest.get("diffs", [])
    if diffs:
        out += ["", "Diffs applied:", ""]
        for d in diffs:
            md5 = f", md5 `{d['md5']}`" if d.get("md5") else ""
            out.append(f"- `{_file_name(d)}` ({d.get('kind', 'diff')}{md5})")
    return "\n".join(out)


def _file_name(entry: dict) -> str:
    """The file name of a manifest input entry (a local path or, in a sync's manifest, a URL)."""
    return _cell(os.path.basename(str(entry.get("path") or entry.get("url") or "?").rstrip("/")))


def _cell(text: str) -> str:
    """`text` safe inside a markdown table cell or list item: one line, no column bar, no backtick."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("`", "'")


def counts_lines(manifest: dict, rows: dict[str, int]) -> str:
    """One line per wiki of what the dataset holds in words: the rows of its record shards per
    namespace, else (a wiki published without record shards) the manifest's `records/ns{ns}/written`
    counts (or, in a manifest of an earlier version, `written/{ns}`)."""
    per_wiki: dict[str, dict[int, int]] = {}
    for rel, n in rows.items():
        parts = rel.split("/")
        if parts[0] == "data":
            ns = int(parts[2].rsplit("_", 1)[1])
            per_wiki.setdefault(parts[1], {}).setdefault(ns, 0)
            per_wiki[parts[1]][ns] += n
    for db, counts in manifest.get("counts", {}).items():
        if db not in per_wiki and isinstance(counts, dict):
            written = per_namespace(counts, "records", "written")
            if written:
                per_wiki[db] = written
    return "\n".join(
        f"- {db}: " + ", ".join(count_words(ns, n) for ns, n in sorted(c.items())) for db, c in sorted(per_wiki.items())
    )


def dataset_card(
    snapshot, folder: str, rows: dict[str, int], languages: dict, licenses: list[str], date: str, target: str
) -> str:
    """README.md of the dataset in `folder`: YAML header (licence, languages, configs, features) and
    the description; `target` is where it is loaded from (an absolute folder or ORG/NAME)."""
    import datasets
    import yaml

    configs, infos = [], []
    texts = sorted({rel.split("/")[1] for rel in rows if rel.startswith(layout.TEXT + "/")})
    structured = sorted({rel.split("/")[1] for rel in rows if rel.startswith(layout.HF_STRUCTURED + "/")})
    wikis = sorted({db for _name, db, _ns in data_configs(rows)})

    def info(name: str, prefix: str) -> dict:
        shards = sorted(rel for rel in rows if rel.startswith(prefix))
        schema = pq.read_schema(os.path.join(folder, shards[0]))
        features = datasets.Features.from_arrow_schema(schema)
        entry = datasets.DatasetInfo(features=features)._to_yaml_dict()
        num_bytes = sum(os.path.getsize(os.path.join(folder, rel)) for rel in shards)
        return {
            "config_name": name,
            "features": entry["features"],
            "splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": sum(rows[r] for r in shards)}],
            "download_size": num_bytes,
            "dataset_size": num_bytes,
        }

    kinds: dict[str, str] = {}  # config → what its rows are, for the table of configs
    schemas: dict[str, str] = {}  # the kind of config → the first shard of that kind (its columns)
    for name, db, ns in data_configs(rows):
        prefix = f"data/{db}/namespace_{ns}/"
        configs.append({"config_name": name, "data_files": [{"split": "train", "path": prefix + "train-*.parquet"}]})
        infos.append(info(name, prefix))
        kinds[name] = NAMESPACE_WORDS.get(ns, ("", f"pages in namespace {ns}"))[1]
        schemas.setdefault("records", min(rel for rel in rows if rel.startswith(prefix)))
    for kind, suffix, dbs, what in (
        (layout.TEXT, "text", texts, "plain text"),
        (layout.HF_STRUCTURED, "structured", structured, "Structured Contents"),
    ):
        for db in dbs:
            name = f"{db}_{suffix}"
            configs.append(
                {"config_name": name, "data_files": [{"split": "train", "path": f"{kind}/{db}/train-*.parquet"}]}
            )
            infos.append(info(name, f"{kind}/{db}/"))
            kinds[name] = what
            schemas.setdefault(suffix, min(rel for rel in rows if rel.startswith(f"{kind}/{db}/")))
    default = default_config(rows)
    for c in configs:
        if c["config_name"] == default:
            c["default"] = True
    header = {
        "license": licenses[0] if len(licenses) == 1 else licenses,
        "language": sorted({lang for lang in languages.values() if lang}) or ["multilingual"],
        "pretty_name": f"wikisnap snapshot {', '.join(wikis or texts or structured)} {date}",
        "task_categories": ["text-generation"],
        "tags": ["wikipedia", "wikimedia", "wikimedia-enterprise"],
        "configs": configs,
        "dataset_info": infos,
    }
    manifest = snapshot.manifest
    config_rows = "\n".join(
        f"| `{c['config_name']}`{' (default)' if c.get('default') else ''} | {kinds[c['config_name']]} | "
        f"`{c['data_files'][0]['path']}` | {i['splits'][0]['num_examples']:,} |"
        for c, i in zip(configs, infos, strict=True)
    )
    field_sections = []
    for key, title, descriptions in (
        ("records", "Fields of the `{db}_ns{n}` configs (Wikimedia Enterprise records)", {}),
        ("text", "Fields of the `*_text` configs", TEXT_DESCRIPTIONS),
        ("structured", "Fields of the `*_structured` configs", {}),
    ):
        if key in schemas:
            table = fields_table(pq.read_schema(os.path.join(folder, schemas[key])), descriptions)
            field_sections.append(f"### {title}\n\n{table}")
    tool = manifest.get("tool", {})
    url = project_url()
    wikisnap_name = f"[wikisnap]({url})" if url else "wikisnap"
    beam = f" (Apache Beam {tool['apache_beam']})" if tool.get("apache_beam") else ""
    fields = "\n\n".join(field_sections)
    body = f"""
# wikisnap snapshot: {", ".join(wikis or texts or structured)} ({date})

Wikimedia Enterprise-format article records built with {wikisnap_name} {tool.get("version", "")}{beam}
from Wikimedia's public dumps: one row per page, with its wikitext, Wikidata id, categories,
templates, redirects, licence and revision metadata, typed as nested Parquet columns (structs and
lists, never JSON strings). Each namespace of a wiki is its own config (`{{db}}_ns0` articles,
`{{db}}_ns14` category pages, …).{TEXT_CARD if texts else ""}{STRUCTURED_CARD if structured else ""}

| config | rows are | files | rows |
|---|---|---|---:|
{config_rows}

```python
from datasets import load_dataset
ds = {load_call(target, default)}
```

This snapshot holds:

{counts_lines(manifest, rows)}

## Fields

{fields}

{types_section(folder)}

## Source

{source_section(manifest)}

The snapshot's own manifest, with every input, count and output checksum, is `manifest.json`.

## Licence and attribution

The text of Wikipedia and the other Wikimedia projects is written by their contributors and
published under the Creative Commons Attribution-ShareAlike licence ({", ".join(licenses)}; older
revisions also under the GFDL); Wikidata is CC0. Each record's `license` field names its licence.
Reusers must attribute the authors — a link to the article (`url`) satisfies this — and share
adaptations under the same licence. See https://foundation.wikimedia.org/wiki/Policy:Terms_of_Use.
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + body


def types_section(folder: str) -> str:
    """The card's `Types and JSON Schemas` section: the time units, and the schema files in `folder`."""
    files = []
    for name, configs in SCHEMA_CONFIGS.items():
        path = layout.schema_path(folder, name)
        if os.path.isfile(path):
            files.append(f"- `{os.path.relpath(path, folder)}`: one row of the {configs} configs")
    listing = "\n".join(files)
    return f"""## Types and JSON Schemas

Every time column is `timestamp[ms, tz=UTC]` (MediaWiki stores times to the second), except the
times Wikimedia Enterprise's services stamp — `event.date_created`, `event.date_published` (also
the `event` of nested objects) and `is_part_of.date_modified` — which are `timestamp[ns, tz=UTC]`:
WME writes them with up to 7 fractional digits (`2024-08-06T08:45:21.6690873Z`), which only
nanoseconds keep. The text configs' `id` is a string, as in `wikimedia/wikipedia`. The JSON Schema
(draft 2020-12) of each kind of row, as JSON with times as RFC 3339 text, ships with the data:

{listing}"""


TEXT_CARD = """ The `*_text` configs hold plain text (`id`, `url`, `title`, `text`, `qid`,
`date_modified`, `license`) of the namespaces the snapshot was built with `--formats text` for."""

STRUCTURED_CARD = """

The `*_structured` configs hold **Structured Contents** (`--formats structured`): each article's
Parsoid HTML as typed parts, following Wikimedia Enterprise's public parser rules
(`general/parser` of github wikimedia-enterprise/wikimedia-enterprise) — `infoboxes` and
`sections` (the API's `article_sections`) as trees of `section` / `paragraph` / `list` /
`list_item` / `field` parts with their `value`, `values`, `links` and `images`; `abstract`;
`description` (the short description, from page_props.sql); and the page's WME metadata (`version`,
`event`, `url`, dates, `main_entity`, `is_part_of`, `in_language`, `license`). Columns and order
are those of WME's `wikimedia/structured-wikipedia` (its `20240916.en` is this `enwiki_structured`).
How it differs from WME's: it is built for any wiki and dump run from public dumps and HTML;
parts nest as typed columns down to 8 levels (deeper ones as JSON text in `has_parts`, as WME's
own Avro schema stores every level); `references` and `tables` (WME's citation and table parsers)
are not produced; `version.scores`, `editor` details and `event` are only what the inputs hold
(WME adds its ML scores); pages without Parsoid HTML have no row (counted in the manifest as
`structured/ns{ns}/without_html`) rather than parts guessed from wikitext. On WME's own parser test
documents the sections and infoboxes equal WME's expected output on 59 of 59 pages."""
