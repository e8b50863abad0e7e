"""A committed snapshot read back for publishing: its manifest, its files checked, its date.

Shared by the publishers (`publish` for mirrors, `hfdataset` for HuggingFace folders): every file
the manifest lists is hashed and compared before anything is copied.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field

from wikisnap.pipelines.errors import WikisnapError
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import file_digests

HF_PREFIX = "hf://datasets/"


class PublishError(WikisnapError):
    """The snapshot or the destination cannot be published as asked; the message says why."""


# -- the snapshot --------------------------------------------------------------------------------------------


@dataclass
class SnapshotFile:
    """One file of a committed snapshot, checked against its manifest."""

    kind: str
    dbname: str | None  # None: a file of the whole snapshot (its JSON Schemas)
    ns: int | None
    path: str  # local path
    rel: str  # path in the snapshot folder
    bytes: int
    md5: str
    sha1: str = ""
    records: int = 0


@dataclass
class Snapshot:
    folder: str
    manifest: dict
    files: list[SnapshotFile] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[SnapshotFile]:
        return [f for f in self.files if f.kind == kind]


def load_snapshot(folder: str) -> Snapshot:
    """A committed wikisnap output, every listed file hashed and compared with its manifest.

    PublishError names the first problem: no manifest, a missing file, another size or md5.
    """
    if "://" in folder and not folder.startswith("file://"):
        raise PublishError(f"{folder}: publish reads a snapshot from a local folder")
    folder = folder[len("file://") :] if folder.startswith("file://") else folder
    manifest_path = os.path.join(folder, layout.MANIFEST)
    try:
        with open(manifest_path, "rb") as f:
            manifest = json.loads(f.read())
    except FileNotFoundError:
        raise PublishError(
            f"{folder}: no manifest.json, so not a committed wikisnap output (a run still going, killed, or "
            "never made); publish the --out of a build or update that finished"
        ) from None
    except ValueError as exc:
        raise PublishError(f"{manifest_path}: not valid JSON ({exc})") from None
    if manifest.get("tool", {}).get("name") != "wikisnap":
        raise PublishError(f"{manifest_path}: not a wikisnap manifest")
    snapshot = Snapshot(folder=folder, manifest=manifest)
    for entry in manifest.get("outputs", []):
        # names from the manifest become paths of the destination (mirror names, dataset folders)
        if entry.get("dbname") and not layout.is_dbname(entry["dbname"]):
            raise PublishError(f"{manifest_path}: {entry['dbname']!r:.80} is not a wiki db name ({layout.DBNAME_RULE})")
        try:
            layout.within(folder, os.path.join(folder, entry["path"]))
        except layout.PathEscape:
            raise PublishError(f"{manifest_path}: lists {entry['path']!r:.80}, outside the snapshot folder") from None
        path = os.path.join(folder, entry["path"])
        if not os.path.isfile(path):
            raise PublishError(f"{folder}: {entry['path']} is listed in the manifest but missing")
        md5, sha1, size = file_digests(path, sha1=True)
        if size != entry["bytes"] or md5 != entry["md5"]:
            raise PublishError(
                f"{folder}: {entry['path']} has {size:,} bytes and md5 {md5}, its manifest says "
                f"{entry['bytes']:,} and {entry['md5']}: the snapshot changed after it was committed"
            )
        snapshot.files.append(
            SnapshotFile(
                kind=entry["kind"],
                dbname=entry.get("dbname"),  # None: a file of the whole snapshot (its JSON Schemas)
                ns=entry.get("ns"),
                path=path,
                rel=entry["path"],
                bytes=size,
                md5=md5,
                sha1=sha1,
                records=entry.get("records", 0),
            )
        )
    if not any(snapshot.of_kind(kind) for kind in ("tarball", "parquet", "structured-parquet")):
        raise PublishError(f"{folder}: the manifest lists no snapshot tarball or Parquet shard to publish")
    return snapshot


def first_record(tarball: str) -> dict:
    """The first NDJSON record of a snapshot tarball (its first member, after the tar header)."""
    with gzip.open(tarball, "rb") as f:
        f.read(512)  # the first member's tar header
        line = f.readline(1 << 30)
    return json.loads(line)


def snapshot_date(snapshot: Snapshot) -> str:
    """YYYYMMDD of a snapshot: its --date, else the newest date_modified of its metadata."""
    if snapshot.manifest.get("options", {}).get("date"):
        return snapshot.manifest["options"]["date"]
    dates = []
    for meta in snapshot.of_kind("metadata") + snapshot.of_kind("structured-metadata"):
        with open(meta.path, "rb") as f:
            dates.append(json.loads(f.read()).get("date_modified", ""))
    if not dates:
        raise PublishError(f"{snapshot.folder}: no snapshot metadata to date the run; give --run-date")
    return max(dates)[:10].replace("-", "")
