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
import hashlib
import json
import logging
import os
import pickle
import time
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

import wikisnap
from wikisnap.pipelines.commit import OutputFolder, lock_for_reading
from wikisnap.pipelines.engine import check_cluster_run, pipeline_options
from wikisnap.pipelines.errors import RunFailed, UsageError
from wikisnap.pipelines.launch import (
    CollectReport,
    check_dead_letters,
    manifest_outputs,
    outputs_summary,
    relative_path,
    run_temp_dir,
    ship_schemas,
    write_options,
)
from wikisnap.pipelines.options import (
    DEFAULT_TEXT_NAMESPACES,
    FORMATS,
    RUN_FLAGS,
    RunOptions,
    add_shared_flags,
)
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.deadletters import DeadLetterGate, WriteDeadLetters
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.dumpfiles import DumpError
from wikisnap.transforms.formats.dumpreader import is_stub_dump, read_siteinfo
from wikisnap.transforms.formats.fs import fs_for, join, read_bytes, remove_tree
from wikisnap.transforms.formats.tarball import FIX_BASE, BaseError, iter_snapshot_lines
from wikisnap.transforms.records import RecordInputError, sniff_record_input, split_folder
from wikisnap.transforms.update.batches import WriteBatches
from wikisnap.transforms.update.diffs import TAG_ERRORS as TAG_DIFF_ERRORS
from wikisnap.transforms.update.diffs import DiffContext, DiffError, DiffInputError, DiffUnit, ReadDiffs, classify_diff
from wikisnap.transforms.update.find import TAG_ERRORS, TAG_HITS, TAG_LAYOUT, TAG_STATS, BaseSnapshot, FindInBase
from wikisnap.transforms.update.fold import TAG_BATCH, ResolveChanges
from wikisnap.transforms.update.html import JoinHtml
from wikisnap.transforms.update.rewrite import TAG_COPIED, TAG_PARTS, RewriteSnapshots
from wikisnap.transforms.update.rewrite import TAG_DEADLETTERS as TAG_REWRITE_LETTERS
from wikisnap.transforms.verify import VerifyOutputs
from wikisnap.transforms.write import AssembleSnapshots

log = logging.getLogger("wikisnap")


@dataclass
class UpdateConfig(RunOptions):
    """What one update is asked to write (its how-to-run fields come from `RunOptions`)."""

    base: str
    diffs: list[str]
    out: str
    date: str | None = None
    formats: tuple[str, ...] | None = None  # None: the base's
    siteinfo_from: list[str] = field(default_factory=list)
    max_page_bytes: int = 32 << 20
    allow_truncated: bool = False  # apply the complete part of a cut-off diff (never of a damaged base)
    fail_on_dead_letters: bool = False
    text_namespaces: tuple[int, ...] | None = None  # `--formats text`: which get text (None: the base's, else 0)


def add_update_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "diffs",
        nargs="+",
        metavar="DIFF",
        help="diff files, recognised by content: adds-changes XML (pages-meta-hist-incr, .xml/.bz2/.gz), "
        "WME hourly batch tarballs, EventStreams JSON lines (mediawiki.page_change.v1, recentchange)",
    )
    parser.add_argument("--base", required=True, metavar="DIR", help="a previous `wikisnap build`/`update` output")
    add_shared_flags(parser, "--out", "--formats", "--text-namespaces", formats=None, text_namespaces=None)
    add_shared_flags(parser, "--siteinfo-from")
    add_shared_flags(parser, "--date", "--workers", "--max-page-bytes", *RUN_FLAGS)
    add_shared_flags(parser, "--allow-truncated")


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
        break_lock=args.break_lock,
        shared_temp=args.shared_temp,
        beam_args=list(beam_args),
        allow_truncated=args.allow_truncated,
        fail_on_dead_letters=args.fail_on_dead_letters,
        text_namespaces=tuple(args.text_namespaces) if getattr(args, "text_namespaces", None) else None,
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
    text_namespaces: tuple[int, ...] | None = None  # of a base built with text


def text_namespaces_of(config: UpdateConfig, base: Base) -> tuple[int, ...]:
    """Namespaces that get text: `--text-namespaces`, else the base's, else 0."""
    return config.text_namespaces or base.text_namespaces or DEFAULT_TEXT_NAMESPACES


def base_manifest(path: str) -> dict:
    """The manifest of a committed wikisnap output, after checking its files are all there.

    UsageError when the folder has no wikisnap manifest (an unfinished or foreign folder) or a
    file the manifest lists is missing or has another size (changed since it was published).
    """
    fs, root = fs_for(path)
    try:
        manifest = json.loads(read_bytes(join(path, layout.MANIFEST)))
    except FileNotFoundError:
        raise UsageError(
            f"--base {path}: has no manifest.json, so it is not a finished wikisnap output (a run that was "
            "killed, or a folder made by hand); give the --out of a build or update that completed"
        ) from None
    except ValueError as exc:
        raise UsageError(f"--base {path}: manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("tool", {}).get("name") != "wikisnap":
        raise UsageError(f"--base {path}: manifest.json is not a wikisnap manifest")
    for entry in manifest.get("outputs", []):
        file_path = f"{root}/{entry['path']}"
        if not fs.exists(file_path):
            raise UsageError(
                f"--base {join(path, entry['path'])}: listed in the base snapshot's manifest but missing; "
                "restore the base from its source or rebuild it"
            )
        size = fs.size(file_path)
        if size != entry.get("bytes", size):
            raise UsageError(
                f"--base {join(path, entry['path'])}: the base snapshot file has {size:,} bytes but its manifest "
                f"says {entry['bytes']:,}: it changed after it was published; restore the base from its source or "
                "rebuild it"
            )
    return manifest


def discover_base(path: str) -> Base:
    """The snapshots of a previous output and the options it was built with; UsageError if none."""
    fs, root = fs_for(path)
    if not fs.isdir(root):
        raise UsageError(f"--base {path}: no such folder")
    manifest = base_manifest(path)
    options = manifest.get("options", {})
    # the published md5 of each tarball: the indexed scan trusts a base member only through it
    # every file an update reads or copies is checked against these (FindInBase, RewriteSnapshots)
    md5s = {e["path"]: e.get("md5") for e in manifest.get("outputs", [])}
    snapshots, languages, urls = [], {}, {}
    for name in sorted(os.path.basename(p) for p in fs.glob(layout.tarball_glob(root))):
        parsed = layout.parse_snapshot_id(name)
        if parsed is None or parsed[1] < 0:
            continue
        db, ns = parsed
        if not layout.is_dbname(db):
            raise UsageError(f"--base {join(path, name)}: {db[:80]!r} is not a wiki db name ({layout.DBNAME_RULE})")
        sid = layout.snapshot_id(db, ns)
        meta_name = layout.metadata_name(db, ns)
        meta_path = join(path, meta_name)
        meta = None
        if fs.exists(join(root, meta_name)):
            raw = read_bytes(meta_path)
            if md5s.get(meta_name) and hashlib.md5(raw).hexdigest() != md5s[meta_name]:
                raise UsageError(
                    f"--base {meta_path}: has md5 {hashlib.md5(raw).hexdigest()} but the base's manifest says "
                    f"{md5s[meta_name]}: it is damaged; restore the base from its source or rebuild it"
                )
            meta = json.loads(raw)
        if meta:
            languages[db] = meta.get("in_language", {}).get("identifier", "")
        protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
        shards = sorted(fs.glob(layout.shard_dir(root, layout.PARQUET, sid) + "/*.parquet"))
        parquet = tuple(protocol + p for p in shards)
        texts = sorted(fs.glob(layout.shard_dir(root, layout.TEXT, sid) + "/*.parquet"))
        text = tuple(protocol + p for p in texts)
        structured = base_structured(path, db, ns, md5s)
        for rel in [
            name,
            *([meta_name] if meta else []),
            *(relative_path(p, root) for p in shards + texts),
            *(rel for rel, _p in structured),
        ]:
            if not md5s.get(rel):
                raise UsageError(
                    f"--base {join(path, rel)}: not listed with its md5 in the base's manifest, so it cannot be "
                    "checked; remove the file or rebuild the base"
                )
        snapshots.append(
            BaseSnapshot(
                db,
                ns,
                join(path, name),
                meta_path if meta else None,
                parquet,
                text,
                md5s.get(name),
                tuple(md5s.get(relative_path(p, root)) for p in shards),
                tuple(md5s.get(relative_path(p, root)) for p in texts),
                md5s.get(meta_name) if meta else None,
                structured=structured[0][1] if structured else None,
                structured_metadata=structured[1][1] if structured else None,
                structured_parquet=tuple(p for _rel, p in structured[2:]),
                structured_md5=tuple((p, md5s.get(rel)) for rel, p in structured),
            )
        )
        if db not in urls:
            record = first_record(join(path, name))
            urls[db] = record.get("is_part_of", {}).get("url", "")
            languages.setdefault(db, record.get("in_language", {}).get("identifier", ""))
    if not snapshots:
        if fs.exists(join(root, layout.TEXT)):
            raise UsageError(
                f"--base {path}: holds only plain text (--formats text), which cannot be updated: update "
                "needs the NDJSON records of a build with --formats ndjson (add text to keep both)"
            )
        raise UsageError(f"--base {path}: holds no {layout.SNAPSHOT_PATTERN}.tar.gz snapshot")
    namespaces = frozenset(options.get("namespaces") or sorted({s.ns for s in snapshots}))
    return Base(
        snapshots=tuple(snapshots),
        namespaces=namespaces,
        formats=tuple(options.get("formats") or FORMATS),
        member_size_mb=float(options.get("member_size_mb") or 100.0),
        gzip_level=int(options.get("gzip_level") or 3),
        languages=languages,
        project_urls=urls,
        text_namespaces=tuple(options["text_namespaces"]) if options.get("text_namespaces") else None,
    )


def base_structured(path: str, db: str, ns: int, md5s: dict) -> list[tuple[str, str]]:
    """`(name in the base, full path)` of one snapshot's Structured Contents files: tarball,
    metadata, then its Parquet shards; [] when the base has no structured tarball for it.
    UsageError when the tarball is there without its metadata."""
    fs, root = fs_for(path)
    tar, meta = layout.structured_paths(path, db, ns)
    tar_rel, meta_rel = (relative_path(fs_for(p)[1], root) for p in (tar, meta))
    if not fs.exists(fs_for(tar)[1]):
        return []
    if not fs.exists(fs_for(meta)[1]):
        raise UsageError(f"--base {meta}: missing beside its structured snapshot; restore the base or rebuild it")
    protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
    shards = sorted(
        fs.glob(layout.shard_dir(root, layout.STRUCTURED_PARQUET, layout.snapshot_id(db, ns)) + "/*.parquet")
    )
    return [(tar_rel, tar), (meta_rel, meta), *((relative_path(p, root), protocol + p) for p in shards)]


def first_record(tarball: str) -> dict:
    """The first record of a base snapshot; UsageError naming the tarball when it cannot be read."""
    try:
        for line in iter_snapshot_lines(tarball):
            return json.loads(line)
    except BaseError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(f"{tarball}: base snapshot's first line is not a WME record ({exc}); {FIX_BASE}") from None
    raise UsageError(f"{tarball}: base snapshot holds no record; {FIX_BASE}")


def discover_html(config: UpdateConfig) -> list:
    """The inputs among the diffs that are Parsoid HTML of the new revisions (RecordInputs, a
    folder split in shares); the others are diffs."""
    found = []
    for path in config.diffs:
        try:
            inp = sniff_record_input(path)
        except RecordInputError:  # JSON lines that are neither records nor HTML: events, a diff
            continue
        if inp is not None and inp.kind == "html":
            found.extend(split_folder(inp))
    return found


def discover_diffs(
    config: UpdateConfig, base: Base, html_paths: frozenset[str] = frozenset()
) -> tuple[list[DiffUnit], dict[str, SiteInfo]]:
    """Classify every diff (not `html_paths`, the HTML inputs) and find a SiteInfo for every wiki
    of the base; UsageError on problems."""
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
        if path in html_paths:
            continue
        try:
            kind = classify_diff(path)
        except DiffError as exc:
            raise UsageError(str(exc)) from None
        site = None
        if kind == "xml" and is_stub_dump(path):
            # Its empty <text/> elements would become records without text.
            raise UsageError(
                f"{path}: a stub dump (revision metadata without text) is not a diff; update takes "
                "adds-changes XML with text, WME batches or events (stub histories date records in `build`)"
            )
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
    pipeline: beam.Pipeline,
    config: UpdateConfig,
    base: Base,
    units: list[DiffUnit],
    sites: dict,
    temp_dir: str,
    out_dir: str | None = None,
    html_inputs: tuple = (),
) -> None:
    """Assemble the update graph on `pipeline` (see the module doc); `html_inputs`: RecordInputs
    of Parsoid HTML of the new revisions (transforms/update/html.py).

    Every output goes under `out_dir` (the run's staging folder; default `config.out`) and is
    read back by VerifyOutputs before the launcher publishes it.
    """
    out_dir = out_dir or config.out
    formats = config.formats or base.formats
    write_opts = write_options(
        out_dir,
        temp_dir,
        config.date,
        base.member_size_mb,
        formats,
        base.gzip_level,
        text_namespaces_of(config, base),
        sites,
    )
    ctx = DiffContext(sites=sites, namespaces=base.namespaces, max_page_bytes=config.max_page_bytes)
    # Untouched snapshots are copied as files; a changed format choice needs a rewrite instead.
    same_formats = frozenset(formats) == frozenset(base.formats)

    diffs = pipeline | "CreateDiffUnits" >> beam.Create(units) | "ReadDiffs" >> ReadDiffs(ctx)
    changes, html_stats, html_letters = diffs.changes, [], []
    if html_inputs:
        html = pipeline | "CreateHtmlInputs" >> beam.Create(list(html_inputs))
        changes, stats_h, letters_h = (changes, html) | "JoinHtml" >> JoinHtml(base.namespaces, frozenset(sites))
        html_stats, html_letters = [stats_h], [letters_h]
    by_wiki = (
        changes
        | "KeyChangesByWiki" >> beam.Map(lambda kv: (kv[0][0], kv[1]))
        | "GroupChangesByWiki" >> beam.GroupByKey()
        | "ListChanges" >> beam.MapTuple(lambda db, changes: (db, list(changes)))
    )
    snapshots = pipeline | "CreateBaseSnapshots" >> beam.Create(list(base.snapshots))
    found = snapshots | "FindInBase" >> FindInBase(by_wiki)
    hits = found[TAG_HITS]
    resolved = (by_wiki, hits) | "ResolveChanges" >> ResolveChanges(sites, base.namespaces)
    changed = resolved.changed
    if not same_formats:
        # Force every snapshot through the writer with an empty change set.
        changed = (
            changed,
            snapshots | "TouchEverySnapshot" >> beam.Map(lambda s: ((s.dbname, s.ns), (-1, None))),
        ) | "FlattenTouches" >> beam.Flatten()
    # Input errors: DiffInputErrors (excused by --allow-truncated) and base errors (str, never).
    # With --fail-on-dead-letters, any dead letter blocks the writers like a base error.
    dead = (diffs.deadletters, resolved.deadletters, *html_letters) | "FlattenDeadLetters" >> beam.Flatten()
    gate = [dead | "GateOnDeadLetters" >> DeadLetterGate()] if config.fail_on_dead_letters else []
    early_errors = (diffs[TAG_DIFF_ERRORS], found[TAG_ERRORS]) | "FlattenEarlyErrors" >> beam.Flatten()
    early_blocking = (early_errors, *gate) | "FlattenEarlyBlocking" >> beam.Flatten()
    rewritten = (snapshots, changed) | "RewriteSnapshots" >> RewriteSnapshots(
        write_opts,
        early_blocking | "KeepBlockingEarlyErrors" >> beam.Filter(blocks, config.allow_truncated),
        layouts=found[TAG_LAYOUT],
    )
    input_errors = (early_errors, rewritten[TAG_ERRORS]) | "FlattenInputErrors" >> beam.Flatten()
    # Structured Contents that failed to extract (in the rewrite): dead letters like the others
    rewrite_letters = rewritten[TAG_REWRITE_LETTERS]
    late_gate = (
        [rewrite_letters | "GateOnRewriteDeadLetters" >> DeadLetterGate()] if config.fail_on_dead_letters else []
    )
    blocking = (input_errors, *gate, *late_gate) | "FlattenBlocking" >> beam.Flatten()
    assembled = rewritten[TAG_PARTS] | "AssembleSnapshots" >> AssembleSnapshots(
        write_opts, dict(base.languages), blocking, config.allow_truncated
    )
    batch_entries = resolved[TAG_BATCH] | "WithholdBatchesOnErrors" >> beam.ParDo(
        _WithholdFn(config.allow_truncated), errors=beam.pvalue.AsList(blocking)
    )
    batches = batch_entries | "WriteBatches" >> WriteBatches(
        out_dir, dict(base.languages), write_opts.member_bytes, base.gzip_level
    )
    letters = (
        (dead, rewrite_letters)
        | "FlattenAllDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters" >> WriteDeadLetters(out_dir)
    )
    stats = (
        (diffs.stats, resolved.stats, rewritten[TAG_STATS], *html_stats)
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
    verified = outputs | "VerifyStagedOutputs" >> VerifyOutputs()
    report = (
        stats,
        verified.verified | "TagOutputs" >> beam.Map(lambda o: ("output", o)),
        verified.problems | "TagVerifyProblems" >> beam.Map(lambda p: ("verify_problem", p)),
        input_errors | "TagInputErrors" >> beam.Map(lambda e: ("input_error", e)),
    ) | "FlattenReport" >> beam.Flatten()
    _ = report | "CollectReport" >> CollectReport(layout.report_path(temp_dir))


def blocks(error, allow_truncated: bool) -> bool:
    """Whether an input error withholds the outputs: a base error (str) always, a diff's unless allowed."""
    return isinstance(error, str) or not allow_truncated


class _WithholdFn(beam.DoFn):
    """Passes batch entries through only when no input error withholds the run's outputs."""

    def __init__(self, allow_truncated: bool):
        self.allow_truncated = allow_truncated

    def setup(self) -> None:
        self.c_withheld = Metrics.counter("wikisnap", "batch_records_withheld")

    def process(self, entry, errors):
        if any(blocks(e, self.allow_truncated) for e in errors):
            self.c_withheld.inc()
            return
        yield entry


# -- run -------------------------------------------------------------------------------------


def check_input_errors(report: list, config: UpdateConfig) -> list[DiffInputError]:
    """RunFailed (exit 2) naming every unreadable diff or base tarball, unless only diffs failed and
    --allow-truncated was given; returns the excused diff errors (the manifest lists them)."""
    errors = [item for kind, item in report if kind == "input_error"]
    base_errors = sorted(e for e in errors if isinstance(e, str))
    diff_errors = sorted((e for e in errors if isinstance(e, DiffInputError)), key=lambda e: e.path)
    failing = base_errors + ([] if config.allow_truncated else [e.message for e in diff_errors])
    if failing:
        raise RunFailed(
            f"{len(failing)} input(s) could not be read to the end, so nothing was published:\n  - "
            + "\n  - ".join(failing)
        )
    for error in diff_errors:
        log.warning("--allow-truncated: applied only the complete part of %s", error.message)
    return diff_errors


def describe_diffs(units: list[DiffUnit], excused: list[DiffInputError]) -> list[dict]:
    """Manifest entries of the diffs; a diff cut off under --allow-truncated carries its error."""
    errors = {e.path: e.message for e in excused}
    return [{"path": u.path, "kind": u.kind} | ({"error": errors[u.path]} if u.path in errors else {}) for u in units]


def run(config: UpdateConfig) -> dict:
    """Run an update; returns the manifest once it is published.

    As `build`: `--out` is checked and locked before anything is read, outputs are staged, read
    back and published with the manifest last (pipelines/commit.py). `--out` may not be `--base`
    (compared after resolving links) and `--base` must be a complete wikisnap output.
    """
    folder = OutputFolder.open(config.out, "update", base=config.base, break_lock=config.break_lock)
    base_lock = None
    try:
        # read-locked: no build or update may rewrite the base while this run reads it
        base_lock = lock_for_reading(config.base, "update")
        return _run_locked(config, folder)
    except RunFailed:
        raise
    except BaseException:
        folder.discard()
        raise
    finally:
        if base_lock is not None:
            base_lock.release()
        folder.close()


def check_structured(config: UpdateConfig, base: Base) -> None:
    """UsageError when `--formats structured` asks for what the base cannot give.

    A base built without structured lacks the short descriptions of its page_props (they are
    only in a structured snapshot), so it cannot gain one by an update; a base built with it
    must have the structured snapshot of each of its namespace-0 snapshots.
    """
    if "structured" not in (config.formats or base.formats):
        return
    if "structured" not in base.formats:
        raise UsageError(
            f"--base {config.base}: was built without Structured Contents, so an update cannot add them "
            "(the base keeps no page_props descriptions); build again with --formats ...,structured"
        )
    for snapshot in base.snapshots:
        if snapshot.ns == 0 and snapshot.structured is None:
            tar, _meta = layout.structured_paths(config.base, snapshot.dbname, 0)
            raise UsageError(f"--base {tar}: missing, though the base was built with --formats structured")


def _run_locked(config: UpdateConfig, folder: OutputFolder) -> dict:
    base = discover_base(config.base)
    check_structured(config, base)
    html_inputs = discover_html(config)
    units, sites = discover_diffs(config, base, frozenset(i.path for i in html_inputs))
    options, runner, engine = pipeline_options(config)  # type: ignore[arg-type]
    temp_dir = run_temp_dir(config.temp_location, config.beam_args, folder)
    check_cluster_run(config, temp_dir)
    log.info("wikisnap update: base %s (%d snapshots), %d diff(s)", config.base, len(base.snapshots), len(units))
    started = time.time()
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
        build_update_pipeline(
            pipeline, config, base, units, sites, temp_dir, out_dir=folder.staging, html_inputs=tuple(html_inputs)
        )
        pipeline.run().wait_until_finish()
        elapsed = time.time() - started
        report = pickle.loads(read_bytes(layout.report_path(temp_dir)))
    finally:
        if not config.keep_temp:
            remove_tree(temp_dir)
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
            "text_namespaces": list(text_namespaces_of(config, base))
            if "text" in (config.formats or base.formats)
            else None,
        },
        "base": config.base,
        "diffs": describe_diffs(units, [e for kind, e in report if kind == "input_error" and not isinstance(e, str)]),
        "counts": counts,
        "outputs": manifest_outputs(outputs, folder.staging) + ship_schemas(outputs, folder.staging),
        "timing": {"seconds": round(elapsed, 3)},
    }
    try:
        check_input_errors(report, config)
        check_dead_letters(report, config.fail_on_dead_letters)
        problems = sorted(item for kind, item in report if kind == "verify_problem")
        if problems:
            raise RunFailed(
                "written files do not hold what the run wrote, so nothing was published:\n  - "
                + "\n  - ".join(problems)
            )
    except RunFailed as exc:
        kept = folder.keep_failed({**manifest, "error": str(exc)})
        raise RunFailed(f"{exc}\n{config.out} is unchanged; this run's dead letters and report are in {kept}") from None
    folder.publish(manifest, manifest["outputs"])
    return manifest


SUMMARY_COUNTS = ("updated", "created", "deleted", "moved", "unchanged", "ignored/namespace", "dead_lettered")


def nothing_applied_warning(manifest: dict) -> str | None:
    """A summary line when every diff line became a dead letter (nothing applied, yet exit 0)."""
    counts = manifest["counts"].values()
    changes = sum(c.get("diff_changes", 0) for c in counts)
    skipped = sum(v for c in counts for k, v in c.items() if k.startswith("skipped/"))
    dead = sum(c.get("dead_lettered", 0) for c in counts)
    if changes or skipped or not dead:
        return None
    return (
        f"WARNING: every diff line became a dead letter ({dead:,}): nothing was applied; read why in "
        "deadletter/ (--fail-on-dead-letters makes this a failure)"
    )


def summary(manifest: dict) -> str:
    lines = [f"applied {len(manifest['diffs'])} diff(s) in {manifest['timing']['seconds']:.1f} s"]
    lines += [w for w in [nothing_applied_warning(manifest)] if w]
    lines += [
        f"WARNING: --allow-truncated: only the complete part of {d['error']}" for d in manifest["diffs"] if "error" in d
    ]
    for db, c in manifest["counts"].items():
        main = ", ".join(f"{k} {c.get(k, 0):,}" for k in SUMMARY_COUNTS)
        skipped = sum(v for k, v in c.items() if k.startswith("skipped/"))
        lines.append(f"{db}: {main}; skipped {skipped:,}")
        if c.get("html/fields_dropped"):
            lines.append(
                f"WARNING: {db}: {c['html/fields_dropped']:,} page(s) lost their Parsoid HTML fields "
                "(the diffs' new revisions come without HTML; counted as html/fields_dropped)"
            )
        for name, n in c.items():
            if name.startswith("structured/") and name.endswith("/without_html") and n:
                lines.append(
                    f"WARNING: {db}: {n:,} changed page(s) have no Structured Contents: their new revisions "
                    f"come without Parsoid HTML (counted as {name}; nothing is kept from the old revision)"
                )
    lines.append("outputs:")
    lines += outputs_summary(manifest["outputs"])
    for o in manifest["outputs"]:
        if o["kind"] in ("tarball", "batch", "deadletter"):
            lines.append(f"  {o['path']}  {o['bytes'] / 1e6:.3f} MB  md5 {o['md5']}")
    return "\n".join(lines)
