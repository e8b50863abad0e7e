"""`wikisnap build`: XML dumps → WME snapshots (NDJSON tarballs + metadata + Parquet) + manifest.

The job in six lines:

    units     = discovered inputs (one per dump file), each with its wiki's SiteInfo
    read      = ReadDumps(units)                 # read + parse + spill, fused, per unit
    records   = ReadRecordInputs(WME/HTML inputs) # WME records → read's runs; HTML → HTML runs
    redirects = JoinRedirects(read.titles, read.redirects)
    enrich    = EnrichFromSql(sql inputs, read.titles, read.redirects[, editors])   # only with SQL table dumps
    WriteBuckets(read.runs, redirects, enrich, html runs) → AssembleSnapshots → files;  WriteDeadLetters;  CollectReport

`run(argv)` validates everything it can before building the graph (missing files, unknown
compression, missing siteinfo fail in a second with a message naming the file), pins the local
engine, runs, then reconciles the counts and writes `manifest.json`.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import time
from dataclasses import replace

import apache_beam as beam

import wikisnap
from wikisnap.pipelines.buildreport import _per_wiki, check_build_report, summarize_inputs, summary  # noqa: F401 (summary: the job's, for the API)
from wikisnap.pipelines.commit import (
    OutputFolder,
)
from wikisnap.pipelines.engine import (
    bz2_threads_for,
    check_cluster_run,
    local_workers,
    never_retries,
    parallelism,
    pipeline_options,
)
from wikisnap.pipelines.errors import RunFailed, UsageError
from wikisnap.pipelines.inputs import (
    classify_inputs,
    discover_history_units,
    discover_sql_inputs,
    discover_units,
    record_sites,
    split_history_inputs,
    with_dump_run,
)
from wikisnap.pipelines.launch import (
    CollectReport,
    manifest_outputs,
    run_temp_dir,
    ship_schemas,
    write_options,
)
from wikisnap.pipelines.options import (
    DEFAULT_NAMESPACES,
    DEFAULT_TEXT_NAMESPACES,
    RUN_FLAGS,
    BuildConfig,
    add_shared_flags,
    parse_namespaces,
    positive_int,
)
from wikisnap.pipelines.progress import OverallProgress
from wikisnap.transforms.deadletters import DeadLetterGate, WriteDeadLetters
from wikisnap.transforms.enrich import CATEGORY_MODES, SQL_TABLE_COVERAGE, EnrichFromSql
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.codecs import bz2_codec, gzip_codec
from wikisnap.transforms.formats.dumprun import DEFAULT_MIRROR
from wikisnap.transforms.formats.fs import read_bytes, remove_tree
from wikisnap.transforms.history import HISTORY_COVERAGE, JoinHistories, ReadHistories
from wikisnap.transforms.parse.sqlrows import QID_MAP_TABLE, EnrichOptions, SqlInput
from wikisnap.transforms.read import (
    TAG_EDITORS,
    TAG_RUNS,
    TAG_STATS,
    TAG_TITLES,
    TAG_UNITS,
    ReadDumps,
    ReadOptions,
    WorkUnit,
    unit_span,
)
from wikisnap.transforms.records import (
    TAG_HTML,
    ReadRecordInputs,
    RecordOptions,
)
from wikisnap.transforms.redirects import JoinRedirects
from wikisnap.transforms.spilljoin import partitions_for
from wikisnap.transforms.verify import VerifyOutputs
from wikisnap.transforms.write import (
    TAG_DEADLETTERS,
    AssembleSnapshots,
    WriteBuckets,
)

log = logging.getLogger("wikisnap")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="pages-articles XML dumps (.xml, .xml.bz2, .xml.gz; compression is read from the file's "
        "first bytes): local paths or fsspec URLs (file://, https://, s3://, gs://). Several files may be "
        "parts of one wiki or different wikis; each wiki gets its own snapshots. MySQL table dumps "
        "(.sql, .sql.gz, .sql.bz2 of page_props, categorylinks, linktarget, redirect, page, "
        "page_restrictions, wb_items_per_site, image, wbc_entity_usage, user_groups, flaggedpages) are "
        "recognised by their CREATE TABLE and enrich the records of their wiki (named by the file's {db}-{date}- prefix, or the only wiki of the run). "
        "WME snapshot tarballs and NDJSON ({db}_namespace_{ns}.tar.gz, …-ENTERPRISE-HTML.json.tar.gz, "
        ".ndjson) become records as they are; Parsoid HTML documents (.html files, a folder or tar of "
        "them, NDJSON lines with an `html` field) give article_body.html, categories, templates and "
        "abstract to the record of the same page and revision.",
    )
    add_shared_flags(parser, "--out")
    parser.add_argument(
        "--namespaces",
        type=parse_namespaces,
        default=DEFAULT_NAMESPACES,
        metavar="0,6,10,14",
        help="namespaces to snapshot (default: WME's 0,6,10,14); pages of others are counted as skipped",
    )
    add_shared_flags(parser, "--formats", "--text-namespaces")
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
        "larger files; 6 matches gzip's default). Levels 1-3 are written by ISA-L (3x faster than zlib, "
        "same size within 0.5%%), 4-9 by zlib",
    )
    parser.add_argument(
        "--bz2-threads",
        type=positive_int,
        default=0,
        metavar="N",
        help="threads decoding each local .bz2 input ahead of the parse (indexed_bzip2; default: the "
        "machine's cores divided by --workers, at most 4; 1 on remote runners)",
    )
    parser.add_argument(
        "--bucket-span",
        type=positive_int,
        default=1_000_000,
        metavar="IDS",
        help="page ids per writer bucket: buckets are written in parallel and members never span two "
        "(default 1,000,000)",
    )
    parser.add_argument(
        "--spill-mb",
        type=positive_int,
        default=16,
        metavar="MB",
        help="memory a reader buffers (pickled records) before spilling a sorted run to the temp folder (default 16)",
    )
    add_shared_flags(parser, "--allow-truncated", "--siteinfo-from")
    parser.add_argument(
        "--index",
        metavar="FILE",
        default=None,
        help="multistream index (offset:page_id:title, .bz2 or plain) of the one INPUT; by default the "
        "index is looked for beside each multistream dump under its standard name",
    )
    parser.add_argument(
        "--unit-mb",
        type=float,
        default=64.0,
        metavar="MB",
        help="largest byte range of a split multistream or .bz2 dump given to one worker (default 64); smaller "
        "files are cut into about 4 ranges per parallel worker of the runner (--workers, --parallelism, "
        "Dataflow's --max_num_workers: see docs/cluster.md), none under 8 MB or an eighth of --unit-mb",
    )
    parser.add_argument(
        "--checksums",
        action="append",
        metavar="FILE",
        help="md5sums/sha1sums file of the dump run (repeatable); each input is verified while it is "
        "read and a mismatch stops the run before anything is published",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="with --checksums: read a dump those files do not list, unverified (its manifest entry says "
        "verified: false); without it such a dump stops the run before anything is read",
    )
    parser.add_argument(
        "--dump-run",
        metavar="RUN",
        default=None,
        help="read a whole dump run: a folder or URL such as …/enwiki/20241101, or 'enwiki/20241101' on "
        "--mirror. Its dumpstatus.json picks the best layout (multistream parts + indexes, else the "
        "multistream file, else split parts, else one file) and the SQL tables, with their checksums",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        default=DEFAULT_MIRROR,
        help=f"dumps mirror for --dump-run names (default {DEFAULT_MIRROR}; pick one near you)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="use a dump run whose jobs are not all 'done' (its files may be partial)",
    )
    add_shared_flags(parser, "--date", "--workers", "--max-page-bytes", *RUN_FLAGS)
    add_shared_flags(parser, "--enrichment")
    parser.add_argument(
        "--categories",
        choices=CATEGORY_MODES,
        default=None,
        help="where record categories come from: wikitext (the page's own [[Category:]] links), sql "
        "(categorylinks.sql: also hidden and template-added ones), both (wikitext order, then the SQL-only "
        "ones sorted). Default: both when a categorylinks dump is given, else wikitext",
    )
    parser.add_argument(
        "--qid-map",
        metavar="FILE",
        default=None,
        help="Wikidata ids without SQL dumps: CSV/TSV/Parquet with columns page_id,qid (optional db), or "
        "Wikidata's wb_items_per_site rows ips_item_id,ips_site_id,ips_site_page (matched by title)",
    )
    parser.add_argument(
        "--wme-records",
        choices=("complete", "as-is"),
        default="complete",
        help="WME record inputs: derive the categories, templates and abstract a record lacks from its "
        "article_body.html (complete, default) or keep every record byte for byte (as-is)",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds between progress lines: per input while reading, over all writers while writing (default 10)",
    )


def with_text_namespaces(config: BuildConfig) -> BuildConfig:
    """Apply `--text-namespaces`: text alone reads only them; with records they must be snapshotted."""
    if "text" not in config.formats:
        return config
    if set(config.formats) == {"text"}:
        return replace(config, namespaces=tuple(config.text_namespaces))
    missing = sorted(set(config.text_namespaces) - set(config.namespaces))
    if missing:
        raise UsageError(
            f"--text-namespaces {','.join(map(str, missing))} not among --namespaces "
            f"{','.join(map(str, config.namespaces))}: add them there, or write --formats text alone"
        )
    return config


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
        bz2_threads=args.bz2_threads,
        bucket_span=args.bucket_span,
        spill_mb=args.spill_mb,
        max_page_bytes=args.max_page_bytes,
        allow_truncated=args.allow_truncated,
        fail_on_dead_letters=args.fail_on_dead_letters,
        siteinfo_from=one_siteinfo(args.siteinfo_from),
        index=args.index,
        unit_mb=args.unit_mb,
        checksums=list(args.checksums or []),
        allow_unverified=args.allow_unverified,
        dump_run=args.dump_run,
        mirror=args.mirror,
        force=args.force,
        temp_location=args.temp_location,
        keep_temp=args.keep_temp,
        break_lock=args.break_lock,
        shared_temp=args.shared_temp,
        progress_seconds=args.progress_seconds,
        beam_args=list(beam_args),
        categories=getattr(args, "categories", None),
        qid_map=getattr(args, "qid_map", None),
        wme_records=getattr(args, "wme_records", "complete"),
        text_namespaces=tuple(getattr(args, "text_namespaces", DEFAULT_TEXT_NAMESPACES)),
        enrichment=tuple(args.enrichment),
    )


def one_siteinfo(paths: list[str] | None) -> str | None:
    """Build's `--siteinfo-from`: at most one dump (its inputs carry no wiki name to match several by)."""
    if paths and len(paths) > 1:
        raise UsageError("build takes one --siteinfo-from (it stands for every input without a <siteinfo>)")
    return paths[0] if paths else None


# -- inputs --------------------------------------------------------------------------------


def build_pipeline(
    pipeline: beam.Pipeline,
    config: BuildConfig,
    units: list[WorkUnit],
    temp_dir: str,
    sql_inputs: list[SqlInput] | None = None,
    out_dir: str | None = None,
    history_units: list[WorkUnit] | None = None,
) -> None:
    """Assemble the build graph on `pipeline` (`sql_inputs`: checked by `discover_sql_inputs`;
    `history_units`: history dumps, see transforms/history.py).

    Every output goes under `out_dir` (the run's staging folder; default `config.out`) and is
    read back by VerifyOutputs before the launcher publishes it.
    """
    sql_inputs = sql_inputs or []
    out_dir = out_dir or config.out
    tables = {i.table for i in sql_inputs}
    coverage = set()
    if tables & {"page_props", "wb_items_per_site", QID_MAP_TABLE}:
        coverage.add("main_entity")
    if "categorylinks" in tables:
        coverage.add("categories")
    if "page_restrictions" in tables:
        coverage.add("protection")
    # the extra tables: each one's coverage is counted only when it is given
    coverage |= {field for table, field in SQL_TABLE_COVERAGE.items() if table in tables}
    if history_units:
        coverage.add(HISTORY_COVERAGE)
    read_opts = ReadOptions(
        namespaces=frozenset(config.namespaces),
        temp_dir=temp_dir,
        bucket_span=config.bucket_span,
        spill_bytes=config.spill_mb << 20,
        max_page_bytes=config.max_page_bytes,
        progress_seconds=config.progress_seconds,
        bz2_threads=bz2_threads_for(config),
        # Text alone needs no WME analysis (templates, categories, abstract): slim records.
        slim=set(config.formats) == {"text"},
        # ... and then, unless HTML may come (WME records or Parsoid inputs), the text is made as
        # pages are read, beside the bz2 threads, and spilled instead of the wikitext
        early_text=frozenset(config.text_namespaces)
        if set(config.formats) == {"text"} and not config.record_inputs
        else frozenset(),
        editors="user_groups" in tables,
    )
    # On the pinned local engine a failed bundle fails the run (no retry needs a consumed run again):
    # temp runs are removed as soon as they are merged, so peak temp disk stays near the output's.
    consume = never_retries(config)
    # Every wiki's SiteInfo: an XML dump's own, else one from the first WME record of an input.
    sites = {**record_sites(config.record_inputs), **{unit.site.dbname: unit.site for unit in units}}
    write_opts = write_options(
        out_dir,
        temp_dir,
        config.date,
        config.member_size_mb,
        config.formats,
        config.gzip_level,
        config.text_namespaces,
        sites,
        record_wikis=bool(config.record_inputs),
        categories=config.categories or ("both" if "categorylinks" in tables else "wikitext"),
        coverage=frozenset(coverage),
        consume_runs=consume,
        progress_seconds=config.progress_seconds,
    )
    languages = {unit.site.dbname: unit.site.lang for unit in units}
    # each spilled join merges in partitions enough for the run's workers (the bytes do not depend on it)
    partitions = partitions_for(parallelism(config)[0])

    for r in config.record_inputs:
        if r.dbname and r.lang:
            languages.setdefault(r.dbname, r.lang)

    read = pipeline | "CreateWorkUnits" >> beam.Create(units) | "ReadDumps" >> ReadDumps(read_opts)
    runs, titles, units_read, letters_in = read.runs, read.titles, read.units, [read.deadletters]
    editors = read[TAG_EDITORS]
    html_runs, record_stats = [], []
    if config.record_inputs:
        # WME records join the XML records' spill runs; HTML goes to runs of its own (see records.py).
        record_opts = RecordOptions(
            read_opts.namespaces,
            temp_dir,
            config.bucket_span,
            read_opts.spill_bytes,
            config.wme_records == "complete",
            editors=read_opts.editors,
        )
        recs = (
            pipeline
            | "CreateRecordInputs" >> beam.Create(config.record_inputs)
            | "ReadRecordInputs" >> ReadRecordInputs(record_opts)
        )
        runs = (runs, recs[TAG_RUNS]) | "FlattenRuns" >> beam.Flatten()
        # per-page elements are never flattened (the local runner would hold them): joins spill each
        titles = (titles, recs[TAG_TITLES])
        if read_opts.editors:
            editors = (editors, recs[TAG_EDITORS])
        units_read = (units_read, recs[TAG_UNITS]) | "FlattenUnits" >> beam.Flatten()
        html_runs, record_stats = [recs[TAG_HTML]], [recs[TAG_STATS]]
        letters_in.append(recs[TAG_DEADLETTERS])
    write_buckets = WriteBuckets(write_opts, html=bool(html_runs))
    joined = (titles, read.redirects) | "JoinRedirects" >> JoinRedirects(
        config.bucket_span, temp_dir, consume, partitions
    )
    extra_stats, sql_errors, enrichments = [], [], []
    redirect_lists = (joined.redirect_lists,)
    if sql_inputs:
        enriched = (
            pipeline | "CreateSqlInputs" >> beam.Create(sql_inputs),
            titles,
            read.redirects,
            *([editors] if read_opts.editors else []),
        ) | "EnrichFromSql" >> EnrichFromSql(
            EnrichOptions(
                config.bucket_span,
                tuple(sorted(sites.items())),
                snapshot_date=config.date,
                image_wikis=tuple(sorted({i.dbname for i in sql_inputs if i.table == "image" and i.dbname})),
                descriptions="structured" in config.formats,
            ),
            temp_dir,
            consume,
            partitions,
        )
        redirect_lists = (joined.redirect_lists, enriched["redirect_lists"])
        enrichments.append(enriched["enrichments"])
        extra_stats, sql_errors = list(enriched["stats"]), [enriched["errors"]]
    if history_units:
        # Revision histories: one small summary per page, joined to the articles by (db, page id).
        histories = (
            pipeline
            | "CreateHistoryUnits" >> beam.Create(history_units)
            | "ReadHistories" >> ReadHistories(read_opts.namespaces, config.progress_seconds)
        )
        dated = (histories.pages, titles) | "JoinHistories" >> JoinHistories(
            config.bucket_span, temp_dir, consume, partitions
        )
        enrichments.append(dated.enrichments)
        extra_stats += [histories.stats, dated.stats]
        units_read = (units_read, histories.units) | "FlattenHistoryUnits" >> beam.Flatten()
        letters_in.append(histories.deadletters)
    written = (runs, redirect_lists, tuple(enrichments), *html_runs) | "WriteBuckets" >> write_buckets
    letters_in.append(written[TAG_DEADLETTERS])
    dead = tuple(letters_in) | "FlattenDeadLetters" >> beam.Flatten()
    input_errors = units_read | "FindInputErrors" >> beam.Filter(lambda u: u.error is not None)
    if sql_errors or config.fail_on_dead_letters:
        # A bad SQL dump (or, when asked, a dead letter) withholds the snapshots like a bad XML dump does.
        gate = [dead | "GateOnDeadLetters" >> DeadLetterGate()] if config.fail_on_dead_letters else []
        input_errors = (input_errors, *sql_errors, *gate) | "FlattenInputErrors" >> beam.Flatten()
    outputs = written.parts | "AssembleSnapshots" >> AssembleSnapshots(
        write_opts, languages, input_errors, config.allow_truncated
    )
    letters = dead | "WriteDeadLetters" >> WriteDeadLetters(out_dir)
    verified = (outputs, letters) | "FlattenOutputs" >> beam.Flatten() | "VerifyStagedOutputs" >> VerifyOutputs()
    # Counts come per page from some steps: each is summed where it is made (a lifted combine holds
    # one value per counter), and only the sums are flattened.
    stat_sources = (read.stats, joined.stats, written.stats, *record_stats, *extra_stats)
    sums = tuple(s | f"SumCounts{i}" >> beam.CombinePerKey(sum) for i, s in enumerate(stat_sources))
    stats = (
        sums
        | "FlattenCounts" >> beam.Flatten()
        | "SumCounts" >> beam.CombinePerKey(sum)
        | "TagCounts" >> beam.Map(lambda kv: ("count", kv))
    )
    report_items = (
        stats,
        units_read | "TagUnits" >> beam.Map(lambda u: ("unit", u)),
        verified.verified | "TagOutputs" >> beam.Map(lambda o: ("output", o)),
        verified.problems | "TagVerifyProblems" >> beam.Map(lambda p: ("verify_problem", p)),
        *[errors | "TagSqlErrors" >> beam.Map(lambda e: ("sql_error", e)) for errors in sql_errors],
    ) | "FlattenReport" >> beam.Flatten()
    _ = report_items | "CollectReport" >> CollectReport(layout.report_path(temp_dir))


def run(config: BuildConfig) -> dict:
    """Run a build; returns the manifest once it is published.

    The output folder is checked and locked before any input is read; every output is written
    to the run's staging folder, read back, and published only when the run is sound (see
    pipelines/commit.py). UsageError/RunFailed/OutputError/EnvironmentFailure/LockHeld carry
    user-facing messages.
    """
    folder = OutputFolder.open(config.out, "build", break_lock=config.break_lock)
    try:
        return _run_locked(config, folder)
    except RunFailed:
        raise  # its staging folder holds the dead letters and report the message points to
    except BaseException:
        folder.discard()  # partial outputs of a crashed run: free the space they take
        raise
    finally:
        folder.close()


def _run_locked(config: BuildConfig, folder: OutputFolder) -> dict:
    asked = config.workers  # capped quietly now (units are sized by it), said once they are known
    config = with_text_namespaces(replace(config, workers=local_workers(config, say=False)))
    if config.dump_run:
        config = with_dump_run(config)
    # SQL table dumps are routed off before the XML inputs are checked and split into units.
    xml_inputs, sql_paths, record_inputs = classify_inputs(config.inputs)
    # Stub dumps (revision metadata, no text) date the records; they are not records themselves.
    xml_inputs, history_paths = split_history_inputs(xml_inputs)
    record_inputs = [*config.record_inputs, *record_inputs]
    if not xml_inputs and not any(r.kind == "wme" for r in record_inputs):
        raise UsageError(
            "no XML dump among the inputs (nor WME records): SQL table dumps, stub dumps and Parsoid HTML "
            "only enrich the pages of an XML dump or WME tarball"
        )
    config = replace(
        config, inputs=xml_inputs, sql_inputs=[*config.sql_inputs, *sql_paths], record_inputs=record_inputs
    )
    units = discover_units(config)
    config = replace(config, workers=local_workers(replace(config, workers=asked), units=len(units)))
    sql_inputs = discover_sql_inputs(config, units)
    history_units = discover_history_units(config, history_paths, units)
    options, runner, engine = pipeline_options(config)
    temp_dir = run_temp_dir(config.temp_location, config.beam_args, folder)
    check_cluster_run(config, temp_dir)
    # bytes the readers will go through: a range counts its own length, not its file's size
    total = sum(unit_span(u) or 0 for u in units if u.kind != "verify")
    log.info(
        "wikisnap %s: %d input file(s) in %d work unit(s), %.1f MB, wikis %s",
        wikisnap.__version__,
        len({u.path for u in units}),
        len(units),
        total / 1e6,
        ", ".join(sorted({u.site.dbname for u in units})),
    )
    log.info("engine: %s", engine)
    workers, why = parallelism(config)
    log.info("%d parallel worker(s) (%s): spilled joins merge in %d partitions", workers, why, partitions_for(workers))
    started = time.time()
    readers = sum(1 for u in units if u.kind != "verify")
    watcher = OverallProgress(
        layout.progress_dir(temp_dir), total, config.progress_seconds, readers, layout.write_progress_dir(temp_dir)
    )
    try:
        watcher.start()
        pipeline = beam.Pipeline(runner=runner, options=options)
        build_pipeline(
            pipeline, config, units, temp_dir, sql_inputs, out_dir=folder.staging, history_units=history_units
        )
        result = pipeline.run()
        result.wait_until_finish()
        elapsed = time.time() - started
        report = pickle.loads(read_bytes(layout.report_path(temp_dir)))
    finally:
        watcher.stop()
        if not config.keep_temp:
            remove_tree(temp_dir)
    counts = _per_wiki([item for kind, item in report if kind == "count"])
    unit_reports = sorted((item for kind, item in report if kind == "unit"), key=lambda u: u.path)
    outputs = sorted((item for kind, item in report if kind == "output"), key=lambda o: o.path)
    pages = sum(u.pages for u in unit_reports)
    read_bytes_total = sum(u.bytes_read for u in unit_reports if u.kind != "verify")
    manifest = {
        "tool": {"name": "wikisnap", "version": wikisnap.__version__, "apache_beam": beam.__version__},
        "codecs": {"gzip": gzip_codec(config.gzip_level), "bz2": bz2_codec()},
        "command": "build",
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
            "categories": config.categories
            or ("both" if any(i.table == "categorylinks" for i in sql_inputs) else "wikitext"),
            "qid_map": config.qid_map,
            "text_namespaces": list(config.text_namespaces) if "text" in config.formats else None,
        },
        "inputs": summarize_inputs(unit_reports),
        "sql_inputs": [{"path": i.path, "table": i.table, "dbname": i.dbname} for i in sql_inputs],
        "counts": counts,
        "outputs": manifest_outputs(outputs, folder.staging) + ship_schemas(outputs, folder.staging),
        "timing": {
            "seconds": round(elapsed, 3),
            "pages_per_second": round(pages / elapsed, 1) if elapsed else None,
            "input_mb_per_second": round(read_bytes_total / 1e6 / elapsed, 2) if elapsed else None,
        },
    }
    if history_units:
        manifest["history_inputs"] = sorted({u.path for u in history_units})
    try:
        check_build_report(config, report, counts, unit_reports, outputs)
    except RunFailed as exc:
        kept = folder.keep_failed({**manifest, "error": str(exc)})
        raise RunFailed(f"{exc}\n{config.out} is unchanged; this run's dead letters and report are in {kept}") from None
    folder.publish(manifest, manifest["outputs"])
    return manifest
