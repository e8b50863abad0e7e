"""`wikisnap build`: XML dumps → WME snapshots (NDJSON tarballs + metadata + Parquet) + manifest.

The job in four lines:

    units     = discovered inputs (one per dump file), each with its wiki's SiteInfo
    read      = ReadDumps(units)                 # read + parse + spill, fused, per unit
    redirects = JoinRedirects(read.titles, read.redirects)
    WriteBuckets(read.runs, redirects) → AssembleSnapshots → files;  WriteDeadLetters;  CollectReport

`run(argv)` validates everything it can before building the graph (missing files, unknown
compression, missing siteinfo fail in a second with a message naming the file), pins the local
engine, runs, then reconciles the counts and writes `manifest.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

import wikisnap
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.dumpreader import DumpError, input_size, read_siteinfo
from wikisnap.transforms.files import join, read_bytes, remove_empty_dir, remove_tree, write_bytes
from wikisnap.transforms.read import ReadDumps, ReadOptions, WorkUnit
from wikisnap.transforms.redirects import JoinRedirects
from wikisnap.transforms.write import AssembleSnapshots, WriteBuckets, WriteDeadLetters, WriteOptions

log = logging.getLogger("wikisnap")

DEFAULT_NAMESPACES = (0, 6, 10, 14)
FORMATS = ("ndjson", "parquet")
LOCAL_RUNNERS = {None, "", "direct", "directrunner", "fnapirunner"}


class UsageError(Exception):
    """A mistake in the command line or inputs; the message says what to change."""


class RunFailed(Exception):
    """The run finished but must not be trusted (bad input, counts that don't reconcile)."""


@dataclass
class BuildConfig:
    inputs: list[str]
    out: str
    namespaces: tuple[int, ...] = DEFAULT_NAMESPACES
    date: str | None = None
    workers: int = 1
    formats: tuple[str, ...] = FORMATS
    member_size_mb: float = 100.0
    gzip_level: int = 3
    bucket_span: int = 1_000_000
    spill_mb: int = 64
    max_page_bytes: int = 32 << 20
    allow_truncated: bool = False
    siteinfo_from: str | None = None
    temp_location: str | None = None
    keep_temp: bool = False
    progress_seconds: float = 10.0
    beam_args: list[str] = field(default_factory=list)


# -- command line --------------------------------------------------------------------------


def _namespaces(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--namespaces takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("--namespaces needs at least one namespace")
    return values


def _formats(text: str) -> tuple[str, ...]:
    values = tuple(sorted({part.strip() for part in text.split(",") if part.strip()}))
    unknown = [v for v in values if v not in FORMATS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"--formats takes a list of {', '.join(FORMATS)}, got {text!r}")
    return values


def _date(text: str) -> str:
    if len(text) != 8 or not text.isdigit():
        raise argparse.ArgumentTypeError(f"--date takes YYYYMMDD, got {text!r}")
    try:
        time.strptime(text, "%Y%m%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"--date {text!r} is not a calendar date") from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="pages-articles XML dumps (.xml, .xml.bz2, .xml.gz; compression is read from the file's "
        "first bytes): local paths or fsspec URLs (file://, https://, s3://, gs://). Several files may be "
        "parts of one wiki or different wikis; each wiki gets its own snapshots.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (local path or fsspec URL)")
    parser.add_argument(
        "--namespaces",
        type=_namespaces,
        default=DEFAULT_NAMESPACES,
        metavar="0,6,10,14",
        help="namespaces to snapshot (default: WME's 0,6,10,14); pages of others are counted as skipped",
    )
    parser.add_argument(
        "--date",
        type=_date,
        default=None,
        metavar="YYYYMMDD",
        help="snapshot date written to the metadata's date_modified and the tar members' mtime "
        "(default: the newest revision time in each snapshot, so reruns give the same bytes)",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="local worker processes (Beam multi_processing; 1 = in-process). Ignored by remote runners.",
    )
    parser.add_argument(
        "--formats",
        type=_formats,
        default=FORMATS,
        metavar="ndjson,parquet",
        help="outputs to write: ndjson (WME tarball + metadata) and/or parquet (default: both)",
    )
    parser.add_argument(
        "--member-size-mb",
        type=float,
        default=100.0,
        metavar="MB",
        help="an NDJSON member closes before it would pass this size (default 100, as WME's default)",
    )
    parser.add_argument(
        "--gzip-level",
        type=int,
        choices=range(1, 10),
        default=3,
        metavar="1-9",
        help="gzip level of the tarballs (default 3: on real enwiki pages 2.3x faster than 6 for 9%% "
        "larger files; 6 matches gzip's default)",
    )
    parser.add_argument(
        "--bucket-span",
        type=_positive_int,
        default=1_000_000,
        metavar="IDS",
        help="page ids per writer bucket: buckets are written in parallel and members never span two "
        "(default 1,000,000)",
    )
    parser.add_argument(
        "--spill-mb",
        type=_positive_int,
        default=64,
        metavar="MB",
        help="memory a reader buffers before spilling a sorted run to the temp folder (default 64)",
    )
    parser.add_argument(
        "--max-page-bytes",
        type=_positive_int,
        default=32 << 20,
        metavar="N",
        help="pages with more characters of text are dead-lettered, not parsed (default 33554432)",
    )
    parser.add_argument(
        "--allow-truncated",
        action="store_true",
        help="keep the complete pages of a truncated file (and publish) instead of failing the run",
    )
    parser.add_argument(
        "--siteinfo-from",
        metavar="DUMP",
        default=None,
        help="take <siteinfo> from this dump for inputs that have none (e.g. hand-made excerpts)",
    )
    parser.add_argument(
        "--temp-location",
        metavar="DIR",
        default=None,
        help="where spill runs and member parts go (default: OUT/.wikisnap-tmp); must be reachable by "
        "every worker (a bucket URL on a cluster)",
    )
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp folder after the run")
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between progress lines per input (default 10)",
    )


def config_from_args(args: argparse.Namespace, beam_args: list[str]) -> BuildConfig:
    return BuildConfig(
        inputs=list(args.inputs),
        out=args.out.rstrip("/") or args.out,
        namespaces=tuple(args.namespaces),
        date=args.date,
        workers=args.workers,
        formats=tuple(args.formats),
        member_size_mb=args.member_size_mb,
        gzip_level=args.gzip_level,
        bucket_span=args.bucket_span,
        spill_mb=args.spill_mb,
        max_page_bytes=args.max_page_bytes,
        allow_truncated=args.allow_truncated,
        siteinfo_from=args.siteinfo_from,
        temp_location=args.temp_location,
        keep_temp=args.keep_temp,
        progress_seconds=args.progress_seconds,
        beam_args=list(beam_args),
    )


# -- engine --------------------------------------------------------------------------------


def _flag_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def pipeline_options(config: BuildConfig) -> tuple[PipelineOptions, object, str]:
    """Beam options, the runner object to use, and a one-line description of the engine.

    The local engine is pinned to the FnApiRunner: recent Beam's DirectRunner first tries to
    download the Prism binary and silently falls back, so machines would differ.
    """
    args = list(config.beam_args)
    mode = _flag_value(args, "--direct_running_mode")
    if mode == "multi_threading":
        raise UsageError(
            "--direct_running_mode multi_threading is refused: Beam's threaded local mode shares one "
            "interpreter between workers and has corrupted data at scale; use --workers N, which runs N "
            "worker processes (multi_processing)"
        )
    runner = _flag_value(args, "--runner")
    if runner is None or runner.lower() in LOCAL_RUNNERS:
        args = [a for a in args if not (a.startswith("--runner") or a in ("DirectRunner", "FnApiRunner"))]
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        options = PipelineOptions(args)
        direct = options.view_as(DirectOptions)
        if config.workers > 1:
            direct.direct_num_workers = config.workers
            direct.direct_running_mode = "multi_processing"
            engine = f"Beam FnApiRunner, {config.workers} worker processes (multi_processing)"
        else:
            direct.direct_num_workers = 1
            direct.direct_running_mode = "in_memory"
            engine = "Beam FnApiRunner, in-process (1 worker)"
        return options, FnApiRunner(provision_info=_worker_provision_info()), engine
    options = PipelineOptions(args)
    return options, options.view_as(StandardOptions).runner, f"Beam {runner}"


def _worker_provision_info():
    """Options the local worker processes read at start-up: Beam's INFO chatter off, progress on.

    The FnApiRunner hands its subprocess workers no pipeline options of its own, so their log
    levels are set here.
    """
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner.fn_runner import ExtendedProvisionInfo
    from google.protobuf import struct_pb2

    options = struct_pb2.Struct()
    options.update(
        {"default_sdk_harness_log_level": "WARNING", "sdk_harness_log_level_overrides": {"wikisnap": "INFO"}}
    )
    return ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(retrieval_token="unused-retrieval-token", pipeline_options=options)
    )


# -- inputs --------------------------------------------------------------------------------


def discover_units(config: BuildConfig) -> list[WorkUnit]:
    """Check every input and read its siteinfo; UsageError names the file and the problem."""
    fallback: SiteInfo | None = None
    if config.siteinfo_from:
        try:
            fallback = read_siteinfo(config.siteinfo_from)
        except DumpError as exc:
            raise UsageError(f"--siteinfo-from {exc}") from None
    units = []
    seen: set[str] = set()
    for index, path in enumerate(config.inputs):
        if path in seen:
            raise UsageError(f"{path}: given twice")
        seen.add(path)
        try:
            site = read_siteinfo(path)
        except DumpError as exc:
            if exc.kind == "no-siteinfo" and fallback is not None:
                site = fallback
            else:
                raise UsageError(str(exc)) from None
        digest = hashlib.sha1(path.encode("utf-8")).hexdigest()[:8]
        units.append(WorkUnit(path=path, site=site, name=f"u{index:05d}-{digest}", size=input_size(path)))
    return units


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
            | "WriteReport" >> beam.Map(lambda report: write_bytes(path, pickle.dumps(report)))
        )


def build_pipeline(pipeline: beam.Pipeline, config: BuildConfig, units: list[WorkUnit], temp_dir: str) -> None:
    """Assemble the build graph on `pipeline`."""
    read_opts = ReadOptions(
        namespaces=frozenset(config.namespaces),
        temp_dir=temp_dir,
        bucket_span=config.bucket_span,
        spill_bytes=config.spill_mb << 20,
        max_page_bytes=config.max_page_bytes,
        progress_seconds=config.progress_seconds,
    )
    snapshot_date = None
    if config.date:
        snapshot_date = f"{config.date[:4]}-{config.date[4:6]}-{config.date[6:]}T00:00:00Z"
    write_opts = WriteOptions(
        out_dir=config.out,
        temp_dir=temp_dir,
        member_bytes=int(config.member_size_mb * 1_000_000),
        formats=frozenset(config.formats),
        snapshot_date=snapshot_date,
        gzip_level=config.gzip_level,
    )
    languages = {unit.site.dbname: unit.site.lang for unit in units}

    read = pipeline | "CreateWorkUnits" >> beam.Create(units) | "ReadDumps" >> ReadDumps(read_opts)
    joined = (read.titles, read.redirects) | "JoinRedirects" >> JoinRedirects(config.bucket_span)
    written = (read.runs, joined.redirect_lists) | "WriteBuckets" >> WriteBuckets(write_opts)
    input_errors = read.units | "FindInputErrors" >> beam.Filter(lambda u: u.error is not None)
    outputs = written.parts | "AssembleSnapshots" >> AssembleSnapshots(
        write_opts, languages, input_errors, config.allow_truncated
    )
    letters = read.deadletters | "WriteDeadLetters" >> WriteDeadLetters(config.out)
    stats = (
        (read.stats, joined.stats, written.stats)
        | "FlattenCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "TagCounts" >> beam.Map(lambda kv: ("count", kv))
    )
    report_items = (
        stats,
        read.units | "TagUnits" >> beam.Map(lambda u: ("unit", u)),
        outputs | "TagOutputs" >> beam.Map(lambda o: ("output", o)),
        letters | "TagDeadLetterFiles" >> beam.Map(lambda o: ("output", o)),
    ) | "FlattenReport" >> beam.Flatten()
    _ = report_items | "CollectReport" >> CollectReport(join(temp_dir, "report.pickle"))


# -- report and manifest -------------------------------------------------------------------


def reconcile(counts: dict[str, dict[str, int]]) -> list[str]:
    """Problems with the per-wiki counts; [] when every page read is accounted for once."""
    problems = []
    for db, c in sorted(counts.items()):
        written = sum(v for k, v in c.items() if k.startswith("written/"))
        parsed = sum(v for k, v in c.items() if k.startswith("parsed/"))
        skipped = sum(v for k, v in c.items() if k.startswith("skipped_namespace/"))
        accounted = (
            written
            + c.get("duplicates_superseded", 0)
            + c.get("redirects_attached", 0)
            + c.get("redirects_dangling", 0)
            + c.get("redirects_without_target", 0)
            + skipped
            + c.get("dead_lettered", 0)
        )
        if accounted != c.get("pages_read", 0):
            problems.append(f"{db}: {c.get('pages_read', 0):,} pages read but {accounted:,} accounted for ({c})")
        if parsed != written + c.get("duplicates_superseded", 0):
            problems.append(f"{db}: {parsed:,} articles parsed but {written:,} written + duplicates")
        if c.get("redirect_pages", 0) != c.get("redirects_attached", 0) + c.get("redirects_dangling", 0):
            problems.append(f"{db}: redirect pages and attached + dangling redirects differ")
    return problems


def _per_wiki(raw_counts: list[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for (db, name), n in raw_counts:
        counts.setdefault(db, {})[name] = n
    return {db: dict(sorted(c.items())) for db, c in sorted(counts.items())}


def run(config: BuildConfig) -> dict:
    """Run a build; returns the manifest. UsageError/RunFailed carry user-facing messages."""
    units = discover_units(config)
    options, runner, engine = pipeline_options(config)
    run_id = uuid.uuid4().hex[:12]
    temp_dir = join(config.temp_location or join(config.out, ".wikisnap-tmp"), run_id)
    total = sum(u.size or 0 for u in units)
    log.info(
        "wikisnap %s: %d input(s), %.1f MB, wikis %s",
        wikisnap.__version__,
        len(units),
        total / 1e6,
        ", ".join(sorted({u.site.dbname for u in units})),
    )
    log.info("engine: %s", engine)
    started = time.time()
    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
        build_pipeline(pipeline, config, units, temp_dir)
        result = pipeline.run()
        result.wait_until_finish()
        elapsed = time.time() - started
        report = pickle.loads(read_bytes(join(temp_dir, "report.pickle")))
    finally:
        if not config.keep_temp:
            remove_tree(temp_dir)
            if not config.temp_location:
                remove_empty_dir(join(config.out, ".wikisnap-tmp"))
    counts = _per_wiki([item for kind, item in report if kind == "count"])
    unit_reports = sorted((item for kind, item in report if kind == "unit"), key=lambda u: u.path)
    outputs = sorted((item for kind, item in report if kind == "output"), key=lambda o: o.path)
    errors = [u for u in unit_reports if u.error]
    if errors and not config.allow_truncated:
        lines = "\n".join(f"  - {u.error}" for u in errors)
        raise RunFailed(
            f"{len(errors)} input(s) could not be read to the end, so nothing was published:\n{lines}\n"
            "Fix or re-download the file(s); --allow-truncated keeps their complete pages instead."
        )
    problems = reconcile(counts)
    if problems:
        raise RunFailed(
            "the run's counts do not reconcile, so its output must not be trusted:\n  - " + "\n  - ".join(problems)
        )
    pages = sum(u.pages for u in unit_reports)
    read_bytes_total = sum(u.bytes_read for u in unit_reports)
    manifest = {
        "tool": {"name": "wikisnap", "version": wikisnap.__version__, "apache_beam": beam.__version__},
        "engine": engine,
        "options": {
            "namespaces": list(config.namespaces),
            "date": config.date,
            "formats": list(config.formats),
            "member_size_mb": config.member_size_mb,
            "gzip_level": config.gzip_level,
            "bucket_span": config.bucket_span,
            "allow_truncated": config.allow_truncated,
            "workers": config.workers,
        },
        "inputs": [
            {
                "path": u.path,
                "dbname": u.dbname,
                "compression": u.compression,
                "bytes": u.bytes_read,
                "pages": u.pages,
                "md5": u.md5,
                "sha1": u.sha1,
                **({"error": u.error} if u.error else {}),
            }
            for u in unit_reports
        ],
        "counts": counts,
        "outputs": [
            {k: v for k, v in asdict(o).items() if v is not None} | {"path": _relative(o.path, config.out)}
            for o in outputs
        ],
        "timing": {
            "seconds": round(elapsed, 3),
            "pages_per_second": round(pages / elapsed, 1) if elapsed else None,
            "input_mb_per_second": round(read_bytes_total / 1e6 / elapsed, 2) if elapsed else None,
        },
    }
    write_bytes(
        join(config.out, "manifest.json"), (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    )
    return manifest


def _relative(path: str, base: str) -> str:
    prefix = base.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def summary(manifest: dict) -> str:
    """The lines printed at the end of a run."""
    lines = []
    timing = manifest["timing"]
    pages = sum(i["pages"] for i in manifest["inputs"])
    lines.append(
        f"read {pages:,} pages from {len(manifest['inputs'])} input(s) in {timing['seconds']:.1f} s "
        f"({timing['pages_per_second']:,} pages/s, {timing['input_mb_per_second']} MB/s of input)"
    )
    for db, c in manifest["counts"].items():
        written = ", ".join(f"ns {k.split('/')[1]}: {v:,}" for k, v in c.items() if k.startswith("written/"))
        lines.append(
            f"{db}: written {written or 'nothing'}; redirects attached {c.get('redirects_attached', 0):,}, "
            f"dangling {c.get('redirects_dangling', 0):,}; skipped by namespace "
            f"{sum(v for k, v in c.items() if k.startswith('skipped_namespace/')):,}; "
            f"dead-lettered {c.get('dead_lettered', 0):,}"
        )
    for o in manifest["outputs"]:
        if o["kind"] in ("tarball", "deadletter"):
            lines.append(f"  {o['path']}  {o['bytes'] / 1e6:.3f} MB  {o['records']:,} records  md5 {o['md5']}")
    return "\n".join(lines)


def main_build(args: argparse.Namespace, beam_args: list[str]) -> int:
    config = config_from_args(args, beam_args)
    try:
        manifest = run(config)
    except (UsageError, RunFailed) as exc:
        print(f"wikisnap build: error: {exc}", file=sys.stderr)
        return 2
    print(summary(manifest))
    print(f"manifest: {os.path.join(config.out, 'manifest.json')}")
    return 0
