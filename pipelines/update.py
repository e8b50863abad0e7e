"""`wikisnap update`: a previous snapshot + revision diffs → a new snapshot + WME hourly batches.

The job in five lines:

    changes  = ReadDiffs(diff files)                      # adds-changes XML, batch tarballs, events
    hits     = FindInBase(base snapshots, changes)        # only the base records the diffs touch
    resolved = ResolveChanges(changes, hits)              # fold per page: latest revision wins
    RewriteSnapshots(base, resolved) → AssembleSnapshots  # untouched lines copied byte for byte
    WriteBatches(resolved.batch);  WriteDeadLetters;  CollectReport → manifest.json

`run(config)` checks the base and classifies every diff before building the graph (a missing
base, an unknown diff format or a wiki whose siteinfo cannot be found fail in a second with a
message naming the file), runs, and writes `manifest.json` with per-wiki counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import time
import uuid
from dataclasses import asdict, dataclass, field

import apache_beam as beam

import wikisnap
from wikisnap.pipelines.build import (
    FORMATS,
    CollectReport,
    UsageError,
    add_shared_temp_argument,
    check_cluster_run,
    parse_date,
    parse_formats,
    pipeline_options,
    positive_int,
    relative_path,
    run_job,
)
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.batches import WriteBatches
from wikisnap.transforms.diffs import DiffContext, DiffError, DiffUnit, ReadDiffs, classify_diff
from wikisnap.transforms.dumpreader import DumpError, read_siteinfo
from wikisnap.transforms.files import fs_for, join, read_bytes, remove_empty_dir, remove_tree, write_bytes
from wikisnap.transforms.merge import (
    TAG_BATCH,
    TAG_COPIED,
    TAG_PARTS,
    TAG_STATS,
    BaseSnapshot,
    FindInBase,
    ResolveChanges,
    RewriteSnapshots,
    iter_snapshot_lines,
)
from wikisnap.transforms.write import AssembleSnapshots, WriteDeadLetters, WriteOptions

log = logging.getLogger("wikisnap")


@dataclass
class UpdateConfig:
    base: str
    diffs: list[str]
    out: str
    date: str | None = None
    workers: int = 1
    formats: tuple[str, ...] | None = None  # None: the base's
    siteinfo_from: list[str] = field(default_factory=list)
    max_page_bytes: int = 32 << 20
    temp_location: str | None = None
    keep_temp: bool = False
    shared_temp: bool = False  # the temp folder, though a local path, is seen by every worker
    beam_args: list[str] = field(default_factory=list)


def add_update_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "diffs",
        nargs="+",
        metavar="DIFF",
        help="diff files, recognised by content: adds-changes XML (pages-meta-hist-incr, .xml/.bz2/.gz), "
        "WME hourly batch tarballs, EventStreams JSON lines (mediawiki.page_change.v1, recentchange)",
    )
    parser.add_argument("--base", required=True, metavar="DIR", help="a previous `wikisnap build`/`update` output")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must differ from --base)")
    parser.add_argument("--date", type=parse_date, default=None, metavar="YYYYMMDD", help="snapshot date (as build)")
    parser.add_argument("--workers", type=positive_int, default=1, metavar="N", help="local worker processes")
    parser.add_argument(
        "--formats", type=parse_formats, default=None, metavar="ndjson,parquet", help="outputs (default: the base's)"
    )
    parser.add_argument(
        "--siteinfo-from",
        action="append",
        default=[],
        metavar="DUMP",
        help="a dump whose <siteinfo> describes a wiki of the base (namespaces for titles, categories); "
        "without it, XML diffs' own siteinfo or a minimal one from the base records is used",
    )
    parser.add_argument("--max-page-bytes", type=positive_int, default=32 << 20, metavar="N")
    parser.add_argument("--temp-location", metavar="DIR", default=None)
    parser.add_argument("--keep-temp", action="store_true")
    add_shared_temp_argument(parser)


def config_from_args(args: argparse.Namespace, beam_args: list[str]) -> UpdateConfig:
    return UpdateConfig(
        base=args.base.rstrip("/") or args.base,
        diffs=list(args.diffs),
        out=args.out.rstrip("/") or args.out,
        date=args.date,
        workers=args.workers,
        formats=tuple(args.formats) if args.formats else None,
        siteinfo_from=list(args.siteinfo_from),
        max_page_bytes=args.max_page_bytes,
        temp_location=args.temp_location,
        keep_temp=args.keep_temp,
        shared_temp=args.shared_temp,
        beam_args=list(beam_args),
    )


# -- the base --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    snapshots: tuple[BaseSnapshot, ...]
    namespaces: frozenset[int]
    formats: tuple[str, ...]
    member_size_mb: float
    gzip_level: int
    languages: dict
    project_urls: dict


def discover_base(path: str) -> Base:
    """The snapshots of a previous output and the options it was built with; UsageError if none."""
    fs, root = fs_for(path)
    if not fs.isdir(root):
        raise UsageError(f"--base {path}: no such folder")
    manifest: dict = {}
    if fs.exists(f"{root}/manifest.json"):
        manifest = json.loads(read_bytes(join(path, "manifest.json")))
    options = manifest.get("options", {})
    snapshots, languages, urls = [], {}, {}
    for name in sorted(os.path.basename(p) for p in fs.glob(f"{root}/*_namespace_*.tar.gz")):
        sid = name[: -len(".tar.gz")]
        db, _, ns_text = sid.rpartition("_namespace_")
        if not ns_text.isdigit():
            continue
        meta_path = join(path, f"{sid}.json")
        meta = json.loads(read_bytes(meta_path)) if fs.exists(f"{root}/{sid}.json") else None
        if meta:
            languages[db] = meta.get("in_language", {}).get("identifier", "")
        protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
        parquet = tuple(protocol + p for p in sorted(fs.glob(f"{root}/parquet/{sid}/*.parquet")))
        snapshots.append(BaseSnapshot(db, int(ns_text), join(path, name), meta_path if meta else None, parquet))
        if db not in urls:
            for line in iter_snapshot_lines(join(path, name)):
                record = json.loads(line)
                urls[db] = record.get("is_part_of", {}).get("url", "")
                languages.setdefault(db, record.get("in_language", {}).get("identifier", ""))
                break
    if not snapshots:
        raise UsageError(f"--base {path}: holds no {{db}}_namespace_{{ns}}.tar.gz snapshot")
    namespaces = frozenset(options.get("namespaces") or sorted({s.ns for s in snapshots}))
    return Base(
        snapshots=tuple(snapshots),
        namespaces=namespaces,
        formats=tuple(options.get("formats") or FORMATS),
        member_size_mb=float(options.get("member_size_mb") or 100.0),
        gzip_level=int(options.get("gzip_level") or 3),
        languages=languages,
        project_urls=urls,
    )


def discover_diffs(config: UpdateConfig, base: Base) -> tuple[list[DiffUnit], dict[str, SiteInfo]]:
    """Classify every diff and find a SiteInfo for every wiki of the base; UsageError on problems."""
    sites: dict[str, SiteInfo] = {}
    for path in config.siteinfo_from:
        try:
            site = read_siteinfo(path)
        except DumpError as exc:
            raise UsageError(f"--siteinfo-from {exc}") from None
        sites.setdefault(site.dbname, site)
    units, seen = [], set()
    for path in config.diffs:
        if path in seen:
            raise UsageError(f"{path}: given twice")
        seen.add(path)
        try:
            kind = classify_diff(path)
        except DiffError as exc:
            raise UsageError(str(exc)) from None
        site = None
        if kind == "xml":
            try:
                site = read_siteinfo(path)
            except DumpError as exc:
                dbs = sorted({s.dbname for s in base.snapshots})
                if exc.kind != "no-siteinfo" or len(dbs) != 1:
                    raise UsageError(str(exc)) from None
                site = sites.get(dbs[0])
            if site is not None:
                sites.setdefault(site.dbname, site)
        units.append(DiffUnit(path=path, kind=kind, site=site))
    for db, url in base.project_urls.items():
        # Events only: a minimal SiteInfo (canonical namespace names) from the base records.
        sites.setdefault(db, SiteInfo(dbname=db, base=f"{url}/wiki/Main_Page", lang=base.languages.get(db, "")))
    # XML diffs without <siteinfo> (only allowed when the base holds one wiki) take that wiki's.
    only = next(iter(base.project_urls), "")
    units = [u if u.kind != "xml" or u.site is not None else DiffUnit(u.path, u.kind, sites.get(only)) for u in units]
    return units, {db: s for db, s in sites.items() if db in base.project_urls}


# -- graph -----------------------------------------------------------------------------------


def build_update_pipeline(
    pipeline: beam.Pipeline, config: UpdateConfig, base: Base, units: list[DiffUnit], sites: dict, temp_dir: str
) -> None:
    """Assemble the update graph on `pipeline` (see the module doc)."""
    formats = config.formats or base.formats
    snapshot_date = None
    if config.date:
        snapshot_date = f"{config.date[:4]}-{config.date[4:6]}-{config.date[6:]}T00:00:00Z"
    write_opts = WriteOptions(
        out_dir=config.out,
        temp_dir=temp_dir,
        member_bytes=int(base.member_size_mb * 1_000_000),
        formats=frozenset(formats),
        snapshot_date=snapshot_date,
        gzip_level=base.gzip_level,
    )
    ctx = DiffContext(sites=sites, namespaces=base.namespaces, max_page_bytes=config.max_page_bytes)
    # Untouched snapshots are copied as files; a changed format choice needs a rewrite instead.
    same_formats = frozenset(formats) == frozenset(base.formats)

    diffs = pipeline | "CreateDiffUnits" >> beam.Create(units) | "ReadDiffs" >> ReadDiffs(ctx)
    by_wiki = (
        diffs.changes
        | "KeyChangesByWiki" >> beam.Map(lambda kv: (kv[0][0], kv[1]))
        | "GroupChangesByWiki" >> beam.GroupByKey()
        | "ListChanges" >> beam.MapTuple(lambda db, changes: (db, list(changes)))
    )
    snapshots = pipeline | "CreateBaseSnapshots" >> beam.Create(list(base.snapshots))
    hits = snapshots | "FindInBase" >> FindInBase(by_wiki)
    resolved = (by_wiki, hits) | "ResolveChanges" >> ResolveChanges(sites, base.namespaces)
    changed = resolved.changed
    if not same_formats:
        # Force every snapshot through the writer with an empty change set.
        changed = (
            changed,
            snapshots | "TouchEverySnapshot" >> beam.Map(lambda s: ((s.dbname, s.ns), (-1, None))),
        ) | "FlattenTouches" >> beam.Flatten()
    rewritten = (snapshots, changed) | "RewriteSnapshots" >> RewriteSnapshots(write_opts)
    no_errors = pipeline | "NoInputErrors" >> beam.Create([])
    assembled = rewritten[TAG_PARTS] | "AssembleSnapshots" >> AssembleSnapshots(
        write_opts, dict(base.languages), no_errors, True
    )
    batches = resolved[TAG_BATCH] | "WriteBatches" >> WriteBatches(
        config.out, dict(base.languages), write_opts.member_bytes, base.gzip_level
    )
    letters = (
        (diffs.deadletters, resolved.deadletters)
        | "FlattenDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters" >> WriteDeadLetters(config.out)
    )
    stats = (
        (diffs.stats, resolved.stats, rewritten[TAG_STATS])
        | "FlattenCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "TagCounts" >> beam.Map(lambda kv: ("count", kv))
    )
    outputs = (
        assembled,
        rewritten[TAG_COPIED],
        batches,
        letters,
    ) | "FlattenOutputs" >> beam.Flatten()
    report = (stats, outputs | "TagOutputs" >> beam.Map(lambda o: ("output", o))) | "FlattenReport" >> beam.Flatten()
    _ = report | "CollectReport" >> CollectReport(join(temp_dir, "report.pickle"))


# -- run -------------------------------------------------------------------------------------


def run(config: UpdateConfig) -> dict:
    """Run an update; returns the manifest. UsageError/RunFailed carry user-facing messages."""
    if os.path.abspath(config.out) == os.path.abspath(config.base):
        raise UsageError("--out must differ from --base (the base is read while the output is written)")
    base = discover_base(config.base)
    units, sites = discover_diffs(config, base)
    options, runner, engine = pipeline_options(config)  # type: ignore[arg-type]
    temp_dir = join(config.temp_location or join(config.out, ".wikisnap-tmp"), uuid.uuid4().hex[:12])
    check_cluster_run(config, temp_dir)
    log.info("wikisnap update: base %s (%d snapshots), %d diff(s)", config.base, len(base.snapshots), len(units))
    started = time.time()
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
        build_update_pipeline(pipeline, config, base, units, sites, temp_dir)
        pipeline.run().wait_until_finish()
        elapsed = time.time() - started
        report = pickle.loads(read_bytes(join(temp_dir, "report.pickle")))
    finally:
        if not config.keep_temp:
            remove_tree(temp_dir)
            if not config.temp_location:
                remove_empty_dir(join(config.out, ".wikisnap-tmp"))
    counts: dict[str, dict[str, int]] = {}
    for kind, item in report:
        if kind == "count":
            (db, name), n = item
            counts.setdefault(db, {})[name] = n
    counts = {db: dict(sorted(c.items())) for db, c in sorted(counts.items())}
    outputs = sorted((item for kind, item in report if kind == "output"), key=lambda o: o.path)
    manifest = {
        "tool": {"name": "wikisnap", "version": wikisnap.__version__, "apache_beam": beam.__version__},
        "command": "update",
        "engine": engine,
        "options": {
            "namespaces": sorted(base.namespaces),
            "date": config.date,
            "formats": list(config.formats or base.formats),
            "member_size_mb": base.member_size_mb,
            "gzip_level": base.gzip_level,
            "workers": config.workers,
        },
        "base": config.base,
        "diffs": [{"path": u.path, "kind": u.kind} for u in units],
        "counts": counts,
        "outputs": [
            {k: v for k, v in asdict(o).items() if v is not None} | {"path": relative_path(o.path, config.out)}
            for o in outputs
        ],
        "timing": {"seconds": round(elapsed, 3)},
    }
    write_bytes(
        join(config.out, "manifest.json"), (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    )
    return manifest


SUMMARY_COUNTS = ("updated", "created", "deleted", "moved", "unchanged", "ignored/namespace", "dead_lettered")


def summary(manifest: dict) -> str:
    lines = [f"applied {len(manifest['diffs'])} diff(s) in {manifest['timing']['seconds']:.1f} s"]
    for db, c in manifest["counts"].items():
        main = ", ".join(f"{k} {c.get(k, 0):,}" for k in SUMMARY_COUNTS)
        skipped = sum(v for k, v in c.items() if k.startswith("skipped/"))
        lines.append(f"{db}: {main}; skipped {skipped:,}")
    for o in manifest["outputs"]:
        if o["kind"] in ("tarball", "batch", "deadletter"):
            lines.append(f"  {o['path']}  {o['bytes'] / 1e6:.3f} MB  md5 {o['md5']}")
    return "\n".join(lines)


def main_update(args: argparse.Namespace, beam_args: list[str]) -> int:
    return run_job("update", run, summary, config_from_args(args, beam_args))
