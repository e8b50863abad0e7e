"""The HuggingFace layout of `wikisnap publish`: a dataset repository folder, and its upload.

    FOLDER/README.md                                         dataset card: YAML header + description
    FOLDER/data/{db}/namespace_{ns}/train-{i:05d}-of-{n:05d}.parquet    full WME records, typed
    FOLDER/text/{db}/train-{i:05d}-of-{n:05d}.parquet        id, url, title, text, … (from --formats text)
    FOLDER/structured/{db}/train-{i:05d}-of-{n:05d}.parquet  Structured Contents (from --formats structured)
    FOLDER/manifest.json                                     the commit record (pipelines/commit.py)

One config per wiki (`enwiki`: every namespace of its records) and one per wiki's plain text
(`enwiki_text`) and its Structured Contents (`enwiki_structured`, the columns of WME's
`wikimedia/structured-wikipedia`), each with `data_files` globs and typed `dataset_info` features, so that
`datasets.load_dataset(FOLDER, "enwiki")` reads it offline. Shards are the snapshot's Parquet
row groups copied as they are (no re-encoding of values) into files of at most `--shard-mb`.

A local or fsspec destination is committed like a build output (staged, verified, manifest
last); `hf://datasets/ORG/NAME` assembles the folder in a work folder and uploads it with
huggingface_hub (`HF_TOKEN`), which resumes an interrupted upload when run again.
"""

from __future__ import annotations

import json
import os
import tempfile

import pyarrow.parquet as pq

from wikisnap.pipelines.commit import OutputFolder
from wikisnap.pipelines.snapshot import HF_PREFIX, PublishError, first_record, snapshot_date
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import file_md5
from wikisnap.transforms.write import PARQUET_SETTINGS

LICENSE_IDS = {
    # WME licence identifiers (configs/licenses.toml) → the Hub's licence ids
    "CC-BY-SA-4.0": "cc-by-sa-4.0",
    "CC-BY-SA-3.0": "cc-by-sa-3.0",
    "CC-BY-4.0": "cc-by-4.0",
    "CC-BY-2.5": "cc-by-2.5",
    "CC0-1.0": "cc0-1.0",
}


def _group_shards(sources: list[str], dest_dir: str, prefix: str, shard_bytes: int) -> list[tuple[str, int]]:
    """Copy the row groups of `sources` (in order) into `{prefix}-{i:05d}-of-{n:05d}.parquet` files.

    A shard closes once it passes `shard_bytes`; names get their total only at the end. Returns
    (relative name, rows) per shard. Row groups are copied as Arrow tables: the values and schema
    are the snapshot's, the bytes are deterministic for the same inputs.
    """
    os.makedirs(dest_dir, exist_ok=True)
    shards: list[tuple[str, int]] = []
    writer = sink = None
    rows = 0

    def close() -> None:
        nonlocal writer, sink, rows
        if writer is not None:
            writer.close()
            sink.close()
            shards.append((sink.name, rows))
        writer = sink = None
        rows = 0

    for source in sources:
        parquet = pq.ParquetFile(source)
        for i in range(parquet.num_row_groups):
            if writer is None:
                sink = open(os.path.join(dest_dir, f"{prefix}-{len(shards):05d}.partial"), "wb")
                writer = pq.ParquetWriter(sink, parquet.schema_arrow, **PARQUET_SETTINGS)
            table = parquet.read_row_group(i)
            writer.write_table(table, row_group_size=table.num_rows)
            rows += table.num_rows
            if sink.tell() >= shard_bytes:
                close()
    close()
    named = []
    for n, (path, count) in enumerate(shards):
        final = os.path.join(dest_dir, f"{prefix}-{n:05d}-of-{len(shards):05d}.parquet")
        os.replace(path, final)
        named.append((final, count))
    return named


def build_hf_folder(snapshot, folder: str, shard_mb: float, date: str) -> dict:
    """Write the dataset folder's files under `folder`; returns {relative path: rows} of the shards."""

    shard_bytes = int(shard_mb * 1_000_000)
    rows: dict[str, int] = {}
    by_snapshot: dict[tuple[str, int], list] = {}
    for f in snapshot.of_kind("parquet"):
        by_snapshot.setdefault((f.dbname, f.ns), []).append(f)
    text_by_wiki: dict[str, list] = {}
    for f in snapshot.of_kind("text"):
        text_by_wiki.setdefault(f.dbname, []).append(f)
    for (db, ns), files in sorted(by_snapshot.items()):
        files.sort(key=lambda f: int(f.rel.rsplit("_", 1)[-1].split(".")[0]))
        for path, n in _group_shards(
            [f.path for f in files], os.path.join(folder, "data", db, f"namespace_{ns}"), "train", shard_bytes
        ):
            rows[os.path.relpath(path, folder)] = n
    structured_by_wiki: dict[str, list] = {}
    for f in snapshot.of_kind("structured-parquet"):
        structured_by_wiki.setdefault(f.dbname, []).append(f)
    for kind, by_wiki in ((layout.TEXT, text_by_wiki), (layout.HF_STRUCTURED, structured_by_wiki)):
        for db, files in sorted(by_wiki.items()):
            files.sort(key=lambda f: (f.ns or 0, int(f.rel.rsplit("_", 1)[-1].split(".")[0])))
            for path, n in _group_shards([f.path for f in files], os.path.join(folder, kind, db), "train", shard_bytes):
                rows[os.path.relpath(path, folder)] = n
    if not rows:
        raise PublishError(f"{snapshot.folder}: no Parquet output to publish as a dataset (built without parquet?)")
    languages, licenses = {}, set()
    for tar in snapshot.of_kind("tarball") + snapshot.of_kind("structured-tarball"):
        try:
            record = first_record(tar.path)
        except ValueError:  # a structured tarball whose first member is empty (no page had HTML)
            continue
        languages[tar.dbname] = record.get("in_language", {}).get("identifier", "")
        for entry in record.get("license", []):
            licenses.add(LICENSE_IDS.get(entry.get("identifier", ""), "other"))
    card = dataset_card(snapshot, folder, rows, languages, sorted(licenses) or ["cc-by-sa-4.0"], date)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    return rows


def dataset_card(snapshot, folder: str, rows: dict[str, int], languages: dict, licenses: list[str], date: str) -> str:
    """README.md of the dataset: YAML header (licence, languages, configs, features) and the story."""
    import datasets
    import yaml

    configs, infos = [], []
    wikis = sorted({rel.split("/")[1] for rel in rows if rel.startswith("data/")})
    texts = sorted({rel.split("/")[1] for rel in rows if rel.startswith("text/")})
    structured = sorted({rel.split("/")[1] for rel in rows if rel.startswith(layout.HF_STRUCTURED + "/")})

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

    for db in wikis:
        configs.append({"config_name": db, "data_files": [{"split": "train", "path": f"data/{db}/*/train-*.parquet"}]})
        infos.append(info(db, f"data/{db}/"))
    for db in texts:
        name = f"{db}_text"
        configs.append(
            {"config_name": name, "data_files": [{"split": "train", "path": f"{layout.TEXT}/{db}/train-*.parquet"}]}
        )
        infos.append(info(name, f"{layout.TEXT}/{db}/"))
    for db in structured:
        name = f"{db}_structured"
        path = f"{layout.HF_STRUCTURED}/{db}/train-*.parquet"
        configs.append({"config_name": name, "data_files": [{"split": "train", "path": path}]})
        infos.append(info(name, f"{layout.HF_STRUCTURED}/{db}/"))
    if configs:
        configs[0]["default"] = True
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
    inputs = "\n".join(
        f"| `{os.path.basename(i['path'])}` | {i.get('dbname', '')} | {i.get('bytes', 0):,} | `{i.get('md5', '')}` | `{i.get('sha1', '')}` |"
        for i in manifest.get("inputs", [])
    )
    counts = "\n".join(
        f"| {db} | " + ", ".join(f"{k} {v:,}" for k, v in c.items() if k.startswith("written/")) + " |"
        for db, c in manifest.get("counts", {}).items()
    )
    config_rows = "\n".join(
        f"| `{c['config_name']}` | `{c['data_files'][0]['path']}` | {i['splits'][0]['num_examples']:,} |"
        for c, i in zip(configs, infos, strict=True)
    )
    tool = manifest.get("tool", {})
    body = f"""
# wikisnap snapshot: {", ".join(wikis or texts or structured)} ({date})

Wikimedia Enterprise-format article records built with [wikisnap](https://github.com/) {tool.get("version", "")}
(Apache Beam {tool.get("apache_beam", "")}) from Wikimedia's public dumps: one row per page, with its
wikitext, Wikidata id, categories, templates, redirects, licence and revision metadata, typed as
nested Parquet columns (structs and lists, never JSON strings). The `*_text` configs hold plain
text (`id`, `url`, `title`, `text`, `qid`, `date_modified`, `license`) where the snapshot was built
with `--formats text`.{STRUCTURED_CARD if structured else ""}

| config | files | rows |
|---|---|---:|
{config_rows}

```python
from datasets import load_dataset
ds = load_dataset("PATH_OR_REPO", "{configs[0]["config_name"] if configs else ""}", split="train")
```

## Source

Built by `wikisnap {manifest.get("command", "build")}` with options
`{json.dumps(manifest.get("options", {}), sort_keys=True)}` from these dump files:

| file | wiki | bytes | md5 | sha1 |
|---|---|---:|---|---|
{inputs}

Records written per namespace:

| wiki | records |
|---|---|
{counts}

The snapshot's own manifest, with every input, count and output checksum, is `manifest.json`.

## Licence and attribution

The text of Wikipedia and the other Wikimedia projects is written by their contributors and
published under the Creative Commons Attribution-ShareAlike licence ({", ".join(licenses)}; older
revisions also under the GFDL); Wikidata is CC0. Each record's `license` field names its licence.
Reusers must attribute the authors — a link to the article (`url`) satisfies this — and share
adaptations under the same licence. See https://foundation.wikimedia.org/wiki/Policy:Terms_of_Use.
"""
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + body


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
`structured/{ns}/without_html`) rather than parts guessed from wikitext. On WME's own parser test
documents the sections and infoboxes equal WME's expected output on 59 of 59 pages."""


def file_list(folder: str) -> list[tuple[str, int, str]]:
    """(relative path, bytes, md5) of every file under `folder`, sorted."""
    found = []
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(dirpath, name)
            md5, size = file_md5(path)
            found.append((os.path.relpath(path, folder), size, md5))
    return sorted(found)


def upload_plan(repo_id: str, folder: str) -> dict:
    """What the upload would send: the repository, its files and sizes, the commit(s)."""
    files = [(rel, size) for rel, size, _md5 in file_list(folder) if not rel.startswith(layout.CONTROL)]
    return {
        "repo_id": repo_id,
        "repo_type": "dataset",
        "folder": folder,
        "files": files,
        "bytes": sum(size for _rel, size in files),
        # huggingface_hub splits a large folder into several commits itself and resumes by re-running.
        "commits": "one upload_folder call; the hub client batches commits and resumes when run again",
    }


def upload(repo_id: str, folder: str, api=None) -> object:
    """Create the dataset repository if needed and upload the folder (token from HF_TOKEN)."""
    from huggingface_hub import HfApi

    api = api or HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    large = getattr(api, "upload_large_folder", None)
    if large is not None:  # huggingface_hub < 2: the resumable upload has its own name
        return large(repo_id=repo_id, folder_path=folder, repo_type="dataset", ignore_patterns=[f"{layout.CONTROL}/**"])
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="dataset",
        commit_message="wikisnap publish",
        ignore_patterns=[f"{layout.CONTROL}/**"],
    )


def publish_hf(snapshot, config) -> str:
    """Build the dataset folder at DEST (committed), or in a work folder and upload it; a summary line."""

    try:
        import datasets  # noqa: F401 - the card's features come from it
        import yaml  # noqa: F401
    except ImportError:
        raise PublishError("--layout hf needs the hf extra: pip install 'wikisnap[hf]'") from None
    date = config.run_date or snapshot_date(snapshot)
    if config.to.startswith(HF_PREFIX):
        repo_id = config.to[len(HF_PREFIX) :].strip("/")
        work = config.work_dir or tempfile.mkdtemp(prefix="wikisnap-hf-")
        folder = os.path.join(work, repo_id.replace("/", "__"))
        commit_folder(snapshot, folder, config.shard_mb, date)
        plan = upload_plan(repo_id, folder)
        if config.dry_run:
            lines = [
                f"upload to {repo_id} (dataset): {len(plan['files'])} files, {plan['bytes']:,} bytes; {plan['commits']}"
            ]
            lines += [f"  {rel}  {size:,} bytes" for rel, size in plan["files"]]
            return "\n".join(lines)
        upload(repo_id, folder)
        return f"uploaded {len(plan['files'])} files ({plan['bytes']:,} bytes) to https://huggingface.co/datasets/{repo_id}"
    if "://" in config.to and not config.to.startswith("file://"):
        raise PublishError(f"--layout hf writes a local folder or uploads to hf://datasets/ORG/NAME, not {config.to}")
    if config.dry_run:
        return f"would write a dataset folder at {config.to}"
    commit_folder(snapshot, config.to, config.shard_mb, date)
    return f"dataset folder {config.to} written and committed"


def commit_folder(snapshot, dest: str, shard_mb: float, date: str) -> None:
    """Assemble the dataset folder in `dest`'s staging area and publish it with its manifest last."""
    folder = OutputFolder.open(dest, "publish")
    try:
        staging = folder.staging
        rows = build_hf_folder(snapshot, staging, shard_mb, date)
        files = [
            {"path": rel, "bytes": size, "md5": md5, "records": rows.get(rel, 0)}
            for rel, size, md5 in file_list(staging)
        ]
        manifest = {
            "tool": snapshot.manifest.get("tool", {}),
            "command": "publish",
            "layout": "hf",
            "snapshot": snapshot.folder,
            "snapshot_outputs": [{"path": f.rel, "md5": f.md5} for f in snapshot.files],
            "outputs": [{"kind": "hf", **f} for f in files],
        }
        folder.publish(manifest, files)
    except BaseException:
        folder.discard()
        raise
    finally:
        folder.close()
