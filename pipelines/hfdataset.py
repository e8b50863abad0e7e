"""The HuggingFace layout of `wikisnap publish`: a dataset repository folder, and its upload.

    FOLDER/README.md                                         dataset card: YAML header + description
    FOLDER/data/{db}/namespace_{ns}/train-{i:05d}-of-{n:05d}.parquet    full WME records, typed
    FOLDER/text/{db}/train-{i:05d}-of-{n:05d}.parquet        id, url, title, text, … (from --formats text)
    FOLDER/structured/{db}/train-{i:05d}-of-{n:05d}.parquet  Structured Contents (from --formats structured)
    FOLDER/schemas/{article,text,structured}.schema.json    JSON Schema of each config's rows
    FOLDER/manifest.json                                     the commit record (pipelines/commit.py)
    FOLDER/.gitignore                                        `.wikisnap/`: the lock is never pushed

One config per (wiki, namespace) (`enwiki_ns0`, the default, `enwiki_ns14`, …), per wiki's plain
text (`enwiki_text`) and its Structured Contents (`enwiki_structured`); the card and its configs
are pipelines/hfcard.py. Shards are the snapshot's Parquet row groups copied as they are (no
re-encoding of values) into files of at most `--shard-mb`.

A local or fsspec destination is committed like a build output (staged, verified, manifest
last); `hf://datasets/ORG/NAME` assembles the folder in a work folder and uploads it with
huggingface_hub (`HF_TOKEN`), which resumes an interrupted upload when run again.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from wikisnap.pipelines.commit import OutputFolder, local_path, scratch_dir
from wikisnap.pipelines.hfcard import dataset_card, default_config, load_call
from wikisnap.pipelines.snapshot import HF_PREFIX, PublishError, first_record, snapshot_date
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA, conform
from wikisnap.schemas.files import schema_bytes
from wikisnap.schemas.structured import STRUCTURED_SCHEMA
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import file_md5
from wikisnap.transforms.write import PARQUET_SETTINGS

# the top folder of a config's shards → the JSON Schema of its rows (schemas/files.py)
HF_SCHEMAS = {layout.HF_DATA: "article", layout.TEXT: "text", layout.HF_STRUCTURED: "structured"}
LICENSE_IDS = {
    # WME licence identifiers (configs/licenses.toml) → the Hub's licence ids
    "CC-BY-SA-4.0": "cc-by-sa-4.0",
    "CC-BY-SA-3.0": "cc-by-sa-3.0",
    "CC-BY-4.0": "cc-by-4.0",
    "CC-BY-2.5": "cc-by-2.5",
    "CC0-1.0": "cc0-1.0",
}


def _group_shards(
    sources: list[str], dest_dir: str, prefix: str, shard_bytes: int, schema: pa.Schema
) -> list[tuple[str, int]]:
    """Copy the row groups of `sources` (in order) into `{prefix}-{i:05d}-of-{n:05d}.parquet` files.

    A shard closes once it passes `shard_bytes`; names get their total only at the end. Returns
    (relative name, rows) per shard. Row groups are copied as Arrow tables in `schema`, this
    wikisnap's schema of their kind: the values are the snapshot's, and a snapshot written by an
    earlier wikisnap (other column types) is converted (`conform`), so every shard of the folder
    has the same types. The bytes are deterministic for the same inputs.
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
                writer = pq.ParquetWriter(sink, schema, **PARQUET_SETTINGS)
            try:
                table = conform(parquet.read_row_group(i), schema)
            except ValueError as exc:
                raise PublishError(f"{source}: not in a schema this wikisnap can publish ({exc})") from None
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


def build_hf_folder(snapshot, folder: str, shard_mb: float, date: str, target: str) -> dict:
    """Write the dataset folder's files under `folder`; returns {relative path: rows} of the shards.

    `target` is where users load it from (the destination folder, absolute, or the Hub's ORG/NAME):
    the card's load example names it.
    """

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
            [f.path for f in files],
            os.path.join(folder, layout.HF_DATA, db, f"namespace_{ns}"),
            "train",
            shard_bytes,
            ARTICLE_SCHEMA,
        ):
            rows[os.path.relpath(path, folder)] = n
    structured_by_wiki: dict[str, list] = {}
    for f in snapshot.of_kind("structured-parquet"):
        structured_by_wiki.setdefault(f.dbname, []).append(f)
    kinds = ((layout.TEXT, text_by_wiki, TEXT_SCHEMA), (layout.HF_STRUCTURED, structured_by_wiki, STRUCTURED_SCHEMA))
    for kind, by_wiki, schema in kinds:
        for db, files in sorted(by_wiki.items()):
            files.sort(key=lambda f: (f.ns or 0, int(f.rel.rsplit("_", 1)[-1].split(".")[0])))
            dest = os.path.join(folder, kind, db)
            for path, n in _group_shards([f.path for f in files], dest, "train", shard_bytes, schema):
                rows[os.path.relpath(path, folder)] = n
    if not rows:
        raise PublishError(f"{snapshot.folder}: no Parquet output to publish as a dataset (built without parquet?)")
    # the JSON Schema of each config's rows, as the snapshot ships them (schemas/files.py)
    top = {os.path.normpath(rel).split(os.sep)[0] for rel in rows}
    for name in sorted({HF_SCHEMAS[t] for t in top if t in HF_SCHEMAS}):
        path = layout.schema_path(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(schema_bytes(name))
    languages, licenses = {}, set()
    for tar in snapshot.of_kind("tarball") + snapshot.of_kind("structured-tarball"):
        try:
            record = first_record(tar.path)
        except ValueError:  # a structured tarball whose first member is empty (no page had HTML)
            continue
        languages[tar.dbname] = record.get("in_language", {}).get("identifier", "")
        for entry in record.get("license", []):
            licenses.add(LICENSE_IDS.get(entry.get("identifier", ""), "other"))
    card = dataset_card(snapshot, folder, rows, languages, sorted(licenses) or ["cc-by-sa-4.0"], date, target)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    # the folder is a git-able dataset repository: its lock and staging must never be pushed
    with open(os.path.join(folder, layout.HF_GITIGNORE), "w", encoding="utf-8") as f:
        f.write(f"{layout.CONTROL}/\n")
    return rows


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
        work = config.work_dir or scratch_dir("hf")
        folder = os.path.join(work, repo_id.replace("/", "__"))
        rows = commit_folder(snapshot, folder, config.shard_mb, date, repo_id)
        plan = upload_plan(repo_id, folder)
        if config.dry_run:
            lines = [
                f"upload to {repo_id} (dataset): {len(plan['files'])} files, {plan['bytes']:,} bytes; {plan['commits']}"
            ]
            lines += [f"  {rel}  {size:,} bytes" for rel, size in plan["files"]]
            return "\n".join(lines)
        upload(repo_id, folder)
        return (
            f"uploaded {len(plan['files'])} files ({plan['bytes']:,} bytes) to https://huggingface.co/datasets/{repo_id}"
            f"\nload it: {load_call(repo_id, default_config(rows))}"
        )
    if "://" in config.to and not config.to.startswith("file://"):
        raise PublishError(f"--layout hf writes a local folder or uploads to hf://datasets/ORG/NAME, not {config.to}")
    if config.dry_run:
        return f"would write a dataset folder at {config.to}"
    target = os.path.abspath(local_path(config.to))
    rows = commit_folder(snapshot, config.to, config.shard_mb, date, target)
    return f"dataset folder {config.to} written and committed\nload it: {load_call(target, default_config(rows))}"


def commit_folder(snapshot, dest: str, shard_mb: float, date: str, target: str) -> dict:
    """Assemble the dataset folder in `dest`'s staging area and publish it with its manifest last;
    returns {relative path: rows} of its shards. `target`: where the card says to load it from."""
    folder = OutputFolder.open(dest, "publish")
    try:
        staging = folder.staging
        rows = build_hf_folder(snapshot, staging, shard_mb, date, target)
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
        return rows
    except BaseException:
        folder.discard()
        raise
    finally:
        folder.close()
