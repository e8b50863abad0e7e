"""What every job that writes an output folder (build, update) shares: its temp folder, report
collection, manifest outputs, writer options, `recover`, and the one line that names a crash.
(Exit codes and the command line's output: pipelines/api.py.)
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import re
from dataclasses import asdict, dataclass

import apache_beam as beam

from wikisnap.pipelines.commit import (
    MANIFEST,
    OutputFolder,
    environment_message,
    remove_dead_scratch,
)
from wikisnap.pipelines.errors import RunFailed, UsageError
from wikisnap.pipelines.options import flag_value
from wikisnap.schemas.files import schema_bytes
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import fs_for, join, write_bytes, write_bytes_atomic
from wikisnap.transforms.write import WriteOptions

log = logging.getLogger("wikisnap")


@dataclass(frozen=True)
class RecoverConfig:
    out: str


def recover(config: RecoverConfig) -> dict:
    """Take the folder's lock (which finishes or rolls back what dead runs left), release it.

    A folder that does not exist is a mistake in the command (UsageError), not a clean output.
    """
    remove_dead_scratch()  # killed publishes' scratch folders in the system temp
    fs, root = fs_for(config.out)
    if not fs.isdir(root):
        what = "is a file, not an output folder" if fs.exists(root) else "does not exist"
        raise UsageError(f"{config.out} {what}: nothing to recover")
    folder = OutputFolder.open(config.out, "recover")
    folder.close()
    return {"published": folder.fs.exists(f"{folder.root}/{MANIFEST}")}


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\n]+?): '([^'\n]+)'")


def describe_failure(exc: BaseException) -> str:
    """One line for an exception that escaped a run, found in Beam's wrapped worker errors too.

    Beam re-raises a worker's exception as a RuntimeError whose text holds the remote traceback,
    so an OSError is recognised by its `[Errno N] text: 'path'` and named with its path.
    """
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None:
            return environment_message(e)
    text = "\n".join(str(e) for e in chain)
    matches = list(_ERRNO_IN_TEXT.finditer(text))
    if matches:
        match = matches[-1]  # the innermost error, nearest the worker's own frame
        number, strerror, path = int(match.group(1)), match.group(2), match.group(3)
        return environment_message(OSError(number, strerror, path))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if re.match(r"^[A-Za-z_.]+(Error|Exception|Fault)\b", line)), None)
    return f"the run crashed: {(last or (lines[-1] if lines else type(chain[0]).__name__))[:400]}"


def check_dead_letters(report: list, fail: bool) -> None:
    """With --fail-on-dead-letters: RunFailed naming the dead-letter files when the run made any."""
    files = sorted((o for kind, o in report if kind == "output" and o.kind == "deadletter"), key=lambda o: o.path)
    total = sum(o.records for o in files)
    if fail and total:
        where = ", ".join(f"{o.path} ({o.records:,})" for o in files)
        raise RunFailed(
            f"{total:,} dead letter(s) and --fail-on-dead-letters, so nothing was published; read why in {where}"
        )


# -- graph ---------------------------------------------------------------------------------


class CollectReport(beam.PTransform):
    """Small report elements → one pickle under the temp folder, read by the launcher."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, items):
        path = self.path
        return (
            items
            | "GatherReport" >> beam.combiners.ToList()
            | "WriteReport" >> beam.Map(lambda report: write_bytes_atomic(path, pickle.dumps(report)))
        )


def run_temp_dir(temp_location: str | None, beam_args: list[str], folder: OutputFolder) -> str:
    """This run's temp folder: --temp-location, else Beam's --temp_location, else OUT/.wikisnap/tmp."""
    # On a cluster, Beam's own --temp_location (shared storage) is the natural home of spill runs.
    beam_temp = flag_value(beam_args, "--temp_location")
    if temp_location:
        return join(temp_location, folder.run_id)
    if beam_temp:
        return join(beam_temp, "wikisnap", folder.run_id)
    return folder.temp


def manifest_outputs(outputs: list, staging: str) -> list[dict]:
    """The manifest's `outputs`: each file with its path relative to the output folder."""
    return [
        {k: v for k, v in asdict(o).items() if v is not None} | {"path": relative_path(o.path, staging)}
        for o in outputs
    ]


# The JSON Schema each output kind's lines, rows or objects follow (schemas/files.py), shipped beside them.
SCHEMA_OF_KIND = {
    "tarball": "article",
    "parquet": "article",
    "batch": "article",
    "text": "text",
    "structured-tarball": "structured",
    "structured-parquet": "structured",
    "metadata": "metadata",
    "batch-metadata": "metadata",
    "structured-metadata": "metadata",
    "deadletter": "deadletter",
}


def ship_schemas(outputs: list, root: str) -> list[dict]:
    """Write the JSON Schema of every output kind among `outputs` (OutputFiles or manifest entries)
    under `root` (`layout.schema_path`); returns their manifest entries (kind `schema`, no wiki).

    The files are the package's own bytes (schemas/*.schema.json), so the same wikisnap writes the
    same schema files; the manifest lists them, so publish and `wikisnap verify` check them."""
    kinds = {o["kind"] if isinstance(o, dict) else o.kind for o in outputs}
    entries = []
    for name in sorted({SCHEMA_OF_KIND[k] for k in kinds if k in SCHEMA_OF_KIND}):
        data = schema_bytes(name)
        path = layout.schema_path(root, name)
        write_bytes(path, data)
        rel = relative_path(path, root)
        entries.append(
            {"kind": "schema", "path": rel, "bytes": len(data), "md5": hashlib.md5(data).hexdigest(), "records": 0}
        )
    return entries


# output kinds in the order the summary lists them, with a name for people
OUTPUT_KINDS = {
    "tarball": "NDJSON tarballs",
    "metadata": "snapshot metadata",
    "parquet": "Parquet shards",
    "text": "plain-text Parquet",
    "structured-tarball": "Structured Contents tarballs",
    "structured-parquet": "Structured Contents Parquet",
    "structured-metadata": "Structured Contents metadata",
    "batch": "hourly batches",
    "batch-metadata": "hourly batch metadata",
    "deadletter": "dead letters",
    "schema": "JSON Schemas",
}


def human_size(n: int) -> str:
    """`2.394 MB`, `46.590 kB`, `260 bytes`: three decimals of the largest unit under `n` (SI)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.3f} {unit}"
    return f"{n:,} bytes"


def outputs_summary(outputs: list[dict]) -> list[str]:
    """One line per output kind of a manifest's `outputs`: files, records (not of metadata, which
    describe a snapshot) and bytes."""
    lines = []
    kinds = sorted(
        {o["kind"] for o in outputs}, key=lambda k: (list(OUTPUT_KINDS).index(k) if k in OUTPUT_KINDS else 99, k)
    )
    for kind in kinds:
        files = [o for o in outputs if o["kind"] == kind]
        size = sum(o["bytes"] for o in files)
        records = sum(o.get("records", 0) for o in files)
        count = f", {records:,} records" if not kind.endswith("metadata") and kind != "schema" else ""
        lines.append(f"  {OUTPUT_KINDS.get(kind, kind)}: {len(files)} file(s){count}, {human_size(size)}")
    return lines


def relative_path(path: str, base: str) -> str:
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def write_options(
    out_dir: str,
    temp_dir: str,
    date: str | None,
    member_size_mb: float,
    formats,
    gzip_level: int,
    text_namespaces,
    sites: dict,
    **extra,
) -> WriteOptions:
    """The writers' options of a build or an update: `date` YYYYMMDD (None: from the records),
    `sites` {db: SiteInfo}; `extra` passes the build's own (categories, coverage)."""
    snapshot_date = f"{date[:4]}-{date[4:6]}-{date[6:]}T00:00:00Z" if date else None
    return WriteOptions(
        out_dir=out_dir,
        temp_dir=temp_dir,
        member_bytes=int(member_size_mb * 1_000_000),
        formats=frozenset(formats),
        snapshot_date=snapshot_date,
        gzip_level=gzip_level,
        text_namespaces=frozenset(text_namespaces),
        sites=tuple(sorted(sites.items())),
        **extra,
    )
