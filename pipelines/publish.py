"""`wikisnap publish`: a committed snapshot → a dumps-mirror run, or a HuggingFace dataset.

    wikisnap publish OUT --to /srv/mirror/enterprise                       # mirror layout
    wikisnap publish OUT --to rsync://mirror.example.org/enterprise        # the same, to an rsync daemon
    wikisnap publish OUT --to ./hf-enwiki --layout hf                      # a dataset repository folder
    wikisnap publish OUT --to hf://datasets/ORG/NAME [--dry-run]           # … uploaded with huggingface_hub

The input must be a committed `build`/`update` output: its manifest is read and every file it
lists is checked (size and md5) before anything is copied.

Mirror layout (what Wikimedia's mirrors publish under other/enterprise_html/runs/):

    DEST/runs/{YYYYMMDD}/{db}-NS{ns}-{YYYYMMDD}-ENTERPRISE-HTML.json.tar.gz     records carry HTML
    DEST/runs/{YYYYMMDD}/{db}-NS{ns}-{YYYYMMDD}-WIKISNAP-WIKITEXT.json.tar.gz   wikitext only
    DEST/runs/{YYYYMMDD}/{db}-NS{ns}-{YYYYMMDD}-WIKISNAP-STRUCTURED.json.tar.gz Structured Contents
    DEST/runs/{YYYYMMDD}/{tarball name minus .json.tar.gz, last word STATS}.json  {"wiki","md5sum","date_modified"}
    DEST/runs/{YYYYMMDD}/schemas/{article,structured}.schema.json  JSON Schema of a tarball's lines (the snapshot's)
    DEST/runs/{YYYYMMDD}/md5sums.txt, sha1sums.txt     coreutils format, as WMF's dumps
    DEST/runs/{YYYYMMDD}/wikisnap-manifest.json        the snapshot's manifest (inputs, counts)
    DEST/runs/{YYYYMMDD}/index.html                    a plain listing
    DEST/runs/{YYYYMMDD}/dumpstatus.json               written last: files, sizes, checksums, "done"
    DEST/latest -> runs/{YYYYMMDD} (symlink where the target has them) and DEST/latest.txt

A run is complete when its dumpstatus.json says `done`; `latest` moves only then. Files are
copied data first, status last; an interrupted publish is resumed by running it again, which
skips every file already at DEST with the same checksum. A published run is immutable: the same
date with other bytes is refused.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import html
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass

from wikisnap import faults
from wikisnap.pipelines.commit import owned_files, remove_dead_scratch
from wikisnap.pipelines.destinations import destination_for
from wikisnap.pipelines.options import parse_yyyymmdd, positive_int
from wikisnap.pipelines.snapshot import HF_PREFIX, PublishError, Snapshot, first_record, load_snapshot, snapshot_date
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import file_digests, fs_for, local_path

log = logging.getLogger("wikisnap")

STATUS = "dumpstatus.json"
DEFAULT_SHARD_MB = 256.0  # the hf layout's largest Parquet shard


@dataclass
class PublishConfig:
    snapshot: str
    to: str
    layout: str | None = None  # None: hf for hf:// URLs, else mirror
    run_date: str | None = None  # YYYYMMDD; default: the snapshot's date
    keep: int | None = None
    shard_mb: float = DEFAULT_SHARD_MB
    dry_run: bool = False
    work_dir: str | None = None


# -- mirror layout -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MirrorFile:
    rel: str  # name inside the run folder
    local: str
    bytes: int
    md5: str
    sha1: str


def mirror_name(dbname: str, ns: int, date: str, has_html: bool) -> str:
    """WMF's name for an Enterprise HTML dump, and wikisnap's as regular twin for wikitext-only ones."""
    kind = "ENTERPRISE-HTML" if has_html else "WIKISNAP-WIKITEXT"
    return f"{dbname}-NS{ns}-{date}-{kind}.json.tar.gz"


def stats_name(tarball_name: str) -> str:
    """`…-ENTERPRISE-HTML.json.tar.gz` → `…-ENTERPRISE-STATS.json` (WMF's pairing), likewise for ours."""
    stem = tarball_name[: -len(".json.tar.gz")]
    return stem.rsplit("-", 1)[0] + "-STATS.json"


# The JSON Schema of the lines of each kind of tarball a mirror run holds (pipelines/launch.py
# SCHEMA_OF_KIND, not imported: it would bring Beam into publish). STATS files are not metadata files.
MIRROR_SCHEMAS = {"tarball": "article", "structured-tarball": "structured"}


def mirror_schemas(snapshot: Snapshot) -> list[MirrorFile]:
    """The snapshot's own JSON Schema files (listed in its manifest, checked by `load_snapshot`) of
    the tarballs a mirror run holds, each at its snapshot path inside the run; none from a snapshot
    built before wikisnap shipped them."""
    shipped = {os.path.normpath(f.path): f for f in snapshot.of_kind("schema")}
    files = []
    for name in sorted({MIRROR_SCHEMAS[k] for k in MIRROR_SCHEMAS if snapshot.of_kind(k)}):
        path = os.path.normpath(layout.schema_path(snapshot.folder, name))
        found = shipped.get(path)
        if found is not None:
            rel = os.path.relpath(path, os.path.normpath(snapshot.folder)).replace(os.sep, "/")
            files.append(MirrorFile(rel, found.path, found.bytes, found.md5, found.sha1))
    return files


def plan_mirror_run(snapshot: Snapshot, date: str, scratch: str) -> list[MirrorFile]:
    """Every file of a mirror run, in publishing order (status last); small files written to `scratch`."""
    files: list[MirrorFile] = []

    def small(rel: str, data: bytes) -> None:
        path = os.path.join(scratch, rel)
        with open(path, "wb") as f:
            f.write(data)
        files.append(MirrorFile(rel, path, len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest()))

    metadata = {(m.dbname, m.ns): m for m in snapshot.of_kind("metadata")}
    stats = []
    for tar in sorted(snapshot.of_kind("tarball"), key=lambda f: (f.dbname, f.ns)):
        record = first_record(tar.path)
        name = mirror_name(tar.dbname, tar.ns, date, bool(record.get("article_body", {}).get("html")))
        files.append(MirrorFile(name, tar.path, tar.bytes, tar.md5, tar.sha1))
        meta = metadata.get((tar.dbname, tar.ns))
        modified = ""
        if meta is not None:
            with open(meta.path, "rb") as f:
                modified = json.loads(f.read()).get("date_modified", "")
        stats.append((stats_name(name), {"wiki": tar.dbname, "md5sum": tar.md5, "date_modified": modified}))
    structured_meta = {(m.dbname, m.ns): m for m in snapshot.of_kind("structured-metadata")}
    for tar in sorted(snapshot.of_kind("structured-tarball"), key=lambda f: (f.dbname, f.ns)):
        # `--formats structured`: no WMF dump has a name for it, so wikisnap's twin of its others
        name = f"{tar.dbname}-NS{tar.ns}-{date}-WIKISNAP-STRUCTURED.json.tar.gz"
        files.append(MirrorFile(name, tar.path, tar.bytes, tar.md5, tar.sha1))
        with open(structured_meta[(tar.dbname, tar.ns)].path, "rb") as f:
            modified = json.loads(f.read()).get("date_modified", "")
        # its own STATS name: `stats_name` would give the wikitext twin's (…-WIKISNAP-STATS.json)
        stats_rel = name.removesuffix(".json.tar.gz") + "-STATS.json"
        stats.append((stats_rel, {"wiki": tar.dbname, "md5sum": tar.md5, "date_modified": modified}))
    if not files:
        raise PublishError(
            f"{snapshot.folder}: no snapshot tarball to publish in the mirror layout (built without ndjson?)"
        )
    files += mirror_schemas(snapshot)
    for rel, obj in stats:
        small(rel, (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8"))
    small("wikisnap-manifest.json", json.dumps(snapshot.manifest, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")
    listed = sorted(files, key=lambda f: f.rel)
    small("md5sums.txt", "".join(f"{f.md5}  {f.rel}\n" for f in listed).encode("utf-8"))
    small("sha1sums.txt", "".join(f"{f.sha1}  {f.rel}\n" for f in listed).encode("utf-8"))
    small("index.html", index_html(date, sorted(files, key=lambda f: f.rel)))
    return files


def index_html(date: str, files: list[MirrorFile]) -> bytes:
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(f.rel)}">{html.escape(f.rel)}</a></td>'
        f"<td>{f.bytes:,}</td><td><code>{f.md5}</code></td></tr>"
        for f in files
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wikisnap run {date}</title></head>
<body><h1>wikisnap run {date}</h1>
<p>Wikimedia Enterprise-format snapshots built with wikisnap from Wikimedia's public dumps.
Checksums: <a href="md5sums.txt">md5sums.txt</a>, <a href="sha1sums.txt">sha1sums.txt</a>;
status: <a href="{STATUS}">{STATUS}</a>. Content © Wikimedia contributors, under the licence
named in each record's <code>license</code> field.</p>
<table><tr><th>file</th><th>bytes</th><th>md5</th></tr>
{rows}
</table></body></html>
"""
    return page.encode("utf-8")


def status_document(date: str, files: list[MirrorFile], updated: str, state: str) -> bytes:
    """A dumpstatus.json as WMF writes one (one job), readable by `wikisnap build --dump-run` too."""
    doc = {
        "jobs": {
            "wikisnap": {
                "status": state,
                "updated": updated,
                "files": {
                    f.rel: {"size": f.bytes, "md5": f.md5, "sha1": f.sha1} for f in sorted(files, key=lambda f: f.rel)
                },
            }
        },
        "version": "0.8",
        "wikisnap": {"run": date},
    }
    return (json.dumps(doc, indent=1) + "\n").encode("utf-8")


@dataclass
class MirrorResult:
    run: str
    copied: list[str]
    skipped: list[str]
    pruned: list[str]


def publish_mirror(snapshot: Snapshot, config: PublishConfig) -> MirrorResult:
    """Copy a snapshot into DEST/runs/{date}/ (data first, status last), move latest, prune old runs."""
    date = config.run_date or snapshot_date(snapshot)
    # The command line checks both; a caller's config is checked here, before any write.
    if not (len(date) == 8 and date.isascii() and date.isdigit()):
        raise PublishError(f"the run date {date!r} is not YYYYMMDD")
    if config.keep is not None and config.keep < 1:
        raise PublishError(f"keep {config.keep}: keep the newest N runs with N ≥ 1 (None removes none)")
    dest = destination_for(config.to)
    run = f"runs/{date}"
    remove_dead_scratch()  # what killed publishes left in the system temp
    with tempfile.TemporaryDirectory(prefix=layout.scratch_prefix("publish")) as scratch:
        files = plan_mirror_run(snapshot, date, scratch)
        modified = max(
            (json.loads(open(m.path, "rb").read()).get("date_modified", "") for m in snapshot.of_kind("metadata")),
            default="",
        )
        updated = modified.replace("T", " ").rstrip("Z") or f"{date[:4]}-{date[4:6]}-{date[6:]} 00:00:00"
        existing = dest.read_bytes(f"{run}/{STATUS}")
        if existing is not None:
            status = json.loads(existing).get("jobs", {}).get("wikisnap", {})
            published = {name: entry.get("md5") for name, entry in status.get("files", {}).items()}
            if status.get("status") == "done":
                if published == {f.rel: f.md5 for f in files}:
                    log.info("%s/%s: already published with these bytes; nothing to do", config.to, run)
                    _point_latest(dest, run, date)
                    return MirrorResult(run, [], [f.rel for f in files], prune(dest, config.keep, date))
                raise PublishError(
                    f"{config.to}/{run} is already published with other files: a published run is immutable; "
                    "give another --run-date"
                )
        if config.dry_run:
            for f in files:
                print(f"{run}/{f.rel}  {f.bytes:,} bytes  md5 {f.md5}")
            print(f"{run}/{STATUS}  written last; then latest -> {run}")
            return MirrorResult(run, [], [], [])
        # An interrupted earlier attempt may have left some files: they stay if their checksum matches.
        dest.write_bytes(f"{run}/{STATUS}", status_document(date, files, updated, "in-progress"))
        copied, skipped = [], []
        for f in files:
            if dest.same(f.local, f"{run}/{f.rel}", f.md5):
                skipped.append(f.rel)
                continue
            dest.put(f.local, f"{run}/{f.rel}")
            copied.append(f.rel)
            faults.point(f"publish-mirror:copied:{f.rel}")
        dest.write_bytes(f"{run}/{STATUS}", status_document(date, files, updated, "done"))
    _point_latest(dest, run, date)
    return MirrorResult(run, copied, skipped, prune(dest, config.keep, date))


def _point_latest(dest, run: str, date: str) -> None:
    """Move `latest` to `run` unless a newer complete run is already there."""
    current = (dest.read_bytes("latest.txt") or b"").decode("utf-8").strip()
    if current and current.rsplit("/", 1)[-1] > date:
        return
    dest.point_latest(run)


def prune(dest, keep: int | None, newest: str) -> list[str]:
    """Remove the oldest runs beyond `keep` (complete or not); never the one `latest` names."""
    if not keep:
        return []
    runs = sorted(name for name in dest.listdir("runs") if name.isdigit() and len(name) == 8)
    latest = (dest.read_bytes("latest.txt") or b"").decode("utf-8").strip().rsplit("/", 1)[-1]
    doomed = [r for r in runs[: max(len(runs) - keep, 0)] if r != latest]
    for name in doomed:
        log.info("removing run %s (--keep %d)", name, keep)
        dest.delete_tree(f"runs/{name}")
    return doomed


# -- verify --------------------------------------------------------------------------------------------------


def verify_folder(folder: str) -> list[str]:
    """Problems of a published mirror run (dumpstatus.json + checksum files) or a snapshot (manifest.json)."""
    fs, root = fs_for(folder)
    root = root.rstrip("/")
    problems: list[str] = []

    def digest(rel: str) -> tuple[str, str, int] | None:
        if not fs.exists(f"{root}/{rel}"):
            return None
        return file_digests(f"{folder.rstrip('/')}/{rel}", sha1=True)

    if fs.exists(f"{root}/{STATUS}"):
        status = json.loads(fs.cat_file(f"{root}/{STATUS}")).get("jobs", {}).get("wikisnap", {})
        if status.get("status") != "done":
            problems.append(f"{folder}: {STATUS} says {status.get('status')!r}, not 'done': the run is incomplete")
        expected: dict[str, dict[str, str]] = {}
        for sums, algo in (("md5sums.txt", "md5"), ("sha1sums.txt", "sha1")):
            if not fs.exists(f"{root}/{sums}"):
                problems.append(f"{folder}: {sums} is missing")
                continue
            for line in fs.cat_file(f"{root}/{sums}").decode("utf-8").splitlines():
                value, _, name = line.partition("  ")
                expected.setdefault(name, {})[algo] = value
        for name, entry in status.get("files", {}).items():
            want = expected.setdefault(name, {})
            for key in ("size", "md5", "sha1"):
                if entry.get(key) is not None and want.setdefault(key, entry[key]) != entry[key]:
                    problems.append(f"{folder}/{name}: {STATUS} and the {key} checksum file disagree")
        for name, want in sorted(expected.items()):
            got = digest(name)
            if got is None:
                problems.append(f"{folder}/{name}: missing")
                continue
            md5, sha1, size = got
            if "md5" in want and want["md5"] != md5:
                problems.append(f"{folder}/{name}: md5 {md5}, the run's checksums say {want['md5']}")
            if "sha1" in want and want["sha1"] != sha1:
                problems.append(f"{folder}/{name}: sha1 {sha1}, the run's checksums say {want['sha1']}")
            if want.get("size") is not None and want["size"] != size:
                problems.append(f"{folder}/{name}: {size:,} bytes, {STATUS} says {want['size']:,}")
        return problems
    if fs.exists(f"{root}/{layout.MANIFEST}"):
        manifest = json.loads(fs.cat_file(f"{root}/{layout.MANIFEST}"))
        for entry in manifest.get("outputs", []):
            got = digest(entry["path"])
            if got is None:
                problems.append(f"{folder}/{entry['path']}: missing")
            elif got[0] != entry["md5"] or got[2] != entry["bytes"]:
                problems.append(
                    f"{folder}/{entry['path']}: md5 {got[0]} ({got[2]:,} bytes), manifest says {entry['md5']} ({entry['bytes']:,})"
                )
        # "exactly the files it lists": a snapshot file the manifest does not list is not this snapshot's
        listed = {entry["path"] for entry in manifest.get("outputs", [])}
        for rel in owned_files(fs, root):
            if rel not in listed:
                problems.append(f"{folder}/{rel}: a snapshot file that manifest.json does not list")
        return problems
    return [f"{folder}: neither {STATUS} (a published run) nor manifest.json (a snapshot): nothing to verify"]


# -- command line ----------------------------------------------------------------------------------------------


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("snapshot", metavar="SNAPSHOT_DIR", help="a committed build/update output (has manifest.json)")
    parser.add_argument(
        "--to",
        required=True,
        metavar="DEST",
        help="a folder, an fsspec URL (file://, s3://, gs://), rsync://host[:port]/module/path, or "
        "hf://datasets/ORG/NAME",
    )
    parser.add_argument(
        "--layout",
        choices=("mirror", "hf"),
        default=None,
        help="mirror: runs/YYYYMMDD/ as dumps mirrors publish WME snapshots (default); hf: a HuggingFace dataset "
        "repository (default for hf:// destinations)",
    )
    parser.add_argument(
        "--run-date",
        type=parse_yyyymmdd,
        metavar="YYYYMMDD",
        default=None,
        help="the run's date, names runs/YYYYMMDD/ (default: the snapshot's)",
    )
    parser.add_argument(
        "--keep",
        type=positive_int,
        default=None,
        metavar="N",
        help="mirror layout only: keep the newest N runs (N ≥ 1), remove older ones (default: keep all)",
    )
    parser.add_argument(
        "--shard-mb",
        type=float,
        default=None,
        metavar="MB",
        help=f"hf layout only: largest Parquet shard (default {DEFAULT_SHARD_MB:g})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written or uploaded, change nothing"
    )
    parser.add_argument(
        "--work-dir",
        metavar="DIR",
        default=None,
        help="hf layout to hf://datasets/ only: where the dataset folder is assembled before the upload "
        "(default: a temp folder)",
    )


def check_destination(snapshot: str, to: str) -> None:
    """Refuse (PublishError) a local `to` that cannot hold a publish of the local `snapshot`.

    A destination inside the snapshot (or the snapshot itself) would write runs/ and latest into
    the snapshot, changing the folder its manifest certifies; a snapshot inside the destination
    would be mixed with the runs it is published to. A destination that is a file is no folder.
    """
    snap, dest = local_path(snapshot), local_path(to)
    if snap is None or dest is None:
        return
    snap, dest = os.path.realpath(snap), os.path.realpath(dest)
    if dest == snap or dest.startswith(snap.rstrip(os.sep) + os.sep):
        raise PublishError(f"--to {to} is the snapshot {snapshot} or a folder inside it: give a folder outside it")
    if snap.startswith(dest.rstrip(os.sep) + os.sep):
        raise PublishError(f"the snapshot {snapshot} is inside --to {to}: give a destination that does not hold it")
    for parent in (dest, *_parents(dest)):
        if os.path.exists(parent) and not os.path.isdir(parent):
            raise PublishError(f"--to {to}: {parent} is a file, not a folder")


def _parents(path: str) -> list[str]:
    parents = []
    while os.path.dirname(path) != path:
        path = os.path.dirname(path)
        parents.append(path)
    return parents


# Errors of a destination that trying again cannot fix: the message says what to change instead.
_LASTING = {
    errno.EACCES: "permission denied: give a destination you can write to",
    errno.EPERM: "operation not permitted: give a destination you can write to",
    errno.EROFS: "the filesystem is read-only: give a writable destination",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder stands where a file must be written",
    errno.ENOSPC: "no space left: free space there or give another destination, then run the same command again",
    errno.EDQUOT: "disk quota exceeded: free space there, then run the same command again",
}


def destination_problem(exc: OSError, to: str) -> str:
    """One line for an OSError while publishing to `to`: what is wrong, and whether to just retry."""
    where = exc.filename or to
    lasting = _LASTING.get(exc.errno)
    if lasting:
        return f"--to {to}: writing {where}: {lasting}"
    return f"--to {to}: writing {where}: {exc.strerror or exc}; run the same command again to resume"


def config_from_args(args: argparse.Namespace) -> PublishConfig:
    """The publish asked for; PublishError (exit 2) for an option its layout does not take (refused,
    not ignored: `--keep 3` to an hf folder would otherwise keep every run silently)."""
    chosen = args.layout or ("hf" if args.to.startswith(HF_PREFIX) else "mirror")
    wrong = {
        "mirror": [("--shard-mb", args.shard_mb), ("--work-dir", args.work_dir)],
        "hf": [("--keep", args.keep)],
    }[chosen]
    given = [flag for flag, value in wrong if value is not None]
    if given:
        raise PublishError(f"{', '.join(given)} does not apply to the {chosen} layout; leave it out")
    if args.work_dir is not None and not args.to.startswith(HF_PREFIX):
        raise PublishError("--work-dir applies only to uploads to hf://datasets/ORG/NAME; leave it out")
    return PublishConfig(
        snapshot=args.snapshot,
        to=args.to,
        layout=args.layout,
        run_date=args.run_date,
        keep=args.keep,
        shard_mb=DEFAULT_SHARD_MB if args.shard_mb is None else args.shard_mb,
        dry_run=args.dry_run,
        work_dir=args.work_dir,
    )


def run(config: PublishConfig) -> dict:
    """Publish a snapshot as `config` asks; what was done: {"layout", "to", "message", "seconds",
    and for the mirror layout "run", "copied", "skipped", "pruned"}.

    PublishError (exit 2) when the snapshot or the request is wrong, DestinationError or OSError
    (exit 1: run it again to resume) when the destination fails.
    """
    chosen = config.layout or ("hf" if config.to.startswith(HF_PREFIX) else "mirror")
    started = time.time()
    check_destination(config.snapshot, config.to)
    snapshot = load_snapshot(config.snapshot)
    if chosen == "hf":
        from wikisnap.pipelines.hfdataset import publish_hf

        message = publish_hf(snapshot, config)
        return {"layout": chosen, "to": config.to, "message": message, "seconds": round(time.time() - started, 3)}
    if config.to.startswith(HF_PREFIX):
        raise PublishError("hf:// destinations take --layout hf")
    result = publish_mirror(snapshot, config)
    seconds = time.time() - started
    message = (
        f"published {config.to}/{result.run} in {seconds:.1f} s: {len(result.copied)} file(s) copied, "
        f"{len(result.skipped)} already there"
        + (f"; removed old runs {', '.join(result.pruned)}" if result.pruned else "")
    )
    return {
        "layout": chosen,
        "to": config.to,
        "message": "" if config.dry_run else message,
        "seconds": round(seconds, 3),
        "run": result.run,
        "copied": result.copied,
        "skipped": result.skipped,
        "pruned": result.pruned,
    }
