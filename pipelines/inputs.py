"""Input discovery for `build`: what each INPUT is, its siteinfo, checksums and work units.

Everything here runs in the launcher before the graph is built, and fails in a second with a
UsageError that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace

from wikisnap.pipelines.commit import EnvironmentFailure
from wikisnap.pipelines.engine import parallelism, runs_on_this_machine
from wikisnap.pipelines.errors import UsageError
from wikisnap.pipelines.options import BuildConfig
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.bz2blocks import plan_blocks
from wikisnap.transforms.formats.dumpfiles import (
    DumpError,
    describe_input,
    index_path_for,
    input_size,
    open_dump,
    open_head,
    plan_ranges,
    read_index,
    supports_ranges,
)
from wikisnap.transforms.formats.dumpreader import is_stub_dump, read_siteinfo
from wikisnap.transforms.formats.dumprun import DumpRunError, plan_dump_run
from wikisnap.transforms.formats.fs import read_bytes
from wikisnap.transforms.formats.sqldump import SqlDumpError, check_header, db_from_name, read_sql_header, sql_table_of
from wikisnap.transforms.parse.sqlrows import COMMONS_DB, QID_MAP_TABLE, SqlInput, qid_map_layout, read_qid_map
from wikisnap.transforms.read import WorkUnit
from wikisnap.transforms.records import RecordInput, RecordInputError, sniff_record_input, split_folder

log = logging.getLogger("wikisnap")


class InputUnreachable(EnvironmentFailure):
    """An input's server could not be reached (exit 1; `sync` retries it later, exit 69)."""


def input_error(exc: DumpError) -> Exception:
    """The run's error for an input that cannot be read: EnvironmentFailure (exit 1) when its
    server could not be reached, UsageError (exit 2: the input or the command is wrong) else."""
    if exc.kind == "unreachable":
        return InputUnreachable(f"{exc}; check the network or the URL, then run the same command again")
    return UsageError(str(exc))


def discover_units(config: BuildConfig) -> list[WorkUnit]:
    """Check every input, read its siteinfo and cut it into work units.

    A multistream dump with its index (beside it under the standard name, or `--index`) becomes
    ranges of whole bz2 streams sized for balance; any other file is one unit. UsageError names
    the file and the problem.
    """
    fallback: SiteInfo | None = None
    if config.siteinfo_from:
        try:
            fallback = read_siteinfo(config.siteinfo_from)
        except DumpError as exc:
            raise UsageError(f"--siteinfo-from {exc}") from None
    if config.index and len(config.inputs) != 1:
        raise UsageError("--index names the index of one multistream dump: give exactly one INPUT with it")
    expected = load_checksums(config.checksums)
    for name, digests in config.expected_checksums.items():
        expected.setdefault(name, {}).update(digests)
    units: list[WorkUnit] = []
    seen: set[str] = set()
    for number, path in enumerate(config.inputs):
        if path in seen:
            raise UsageError(f"{path}: given twice")
        seen.add(path)
        try:
            site = read_siteinfo(path)
        except DumpError as exc:
            if exc.kind == "no-siteinfo" and fallback is not None:
                site = fallback
            else:
                raise input_error(exc) from None
        digests = expected.get(describe_input(path), {})
        if config.checksums and not digests and not config.allow_unverified:
            raise UsageError(
                f"{path}: not listed in --checksums {', '.join(config.checksums)}, so it cannot be verified; "
                "give the checksums file of its dump run, or --allow-unverified to read it unverified"
            )
        base = WorkUnit(
            path=path,
            site=site,
            name=f"u{number:05d}-{hashlib.sha1(path.encode('utf-8')).hexdigest()[:8]}",
            size=input_size(path),
            expected_md5=digests.get("md5"),
            expected_sha1=digests.get("sha1"),
        )
        units.extend(split_unit(base, config))
    return units


def with_dump_run(config: BuildConfig) -> BuildConfig:
    """Add a dump run's chosen files, indexes and checksums to the configuration."""
    try:
        plan = plan_dump_run(
            config.dump_run,
            mirror=config.mirror,
            force=config.force,
            with_sql=bool(config.enrichment),
            tables=config.enrichment,
        )
    except DumpRunError as exc:
        raise UsageError(str(exc)) from None
    log.info(
        "dump run %s: %s, %d XML file(s), %d SQL table file(s)", plan.run_url, plan.layout, len(plan.xml), len(plan.sql)
    )
    if plan.not_done:
        log.warning(
            "dump run %s is not finished (%s); going on because of --force", plan.run_url, "; ".join(plan.not_done)
        )
    return replace(
        config,
        inputs=[*config.inputs, *plan.xml, *plan.sql],
        index_for={**config.index_for, **plan.indexes},
        expected_checksums={**plan.checksums, **config.expected_checksums},
    )


def split_unit(unit: WorkUnit, config: BuildConfig) -> list[WorkUnit]:
    """One file → its work units: byte ranges when a multistream index is at hand, else itself."""
    index = config.index or config.index_for.get(unit.path) or index_path_for(unit.path)
    if index is None:
        return split_blocks(unit, config)
    if not supports_ranges(unit.path):
        log.warning(no_range_hint(unit.path))
        return [unit]
    if unit.size is None:
        raise UsageError(f"{unit.path}: its size is unknown, so it cannot be split by its index")
    try:
        offsets, counts = read_index(index)
    except DumpError as exc:
        raise input_error(exc) from None
    if offsets[-1] >= unit.size:
        raise UsageError(
            f"{index}: offset {offsets[-1]:,} lies beyond the end of {describe_input(unit.path)} "
            f"({unit.size:,} bytes): the file is truncated or the index does not belong to it"
        )
    workers, why = parallelism(config)
    ranges = plan_ranges(offsets, counts, unit.size, range_target(unit.size, config, workers))
    log.info(
        "%s: %d ranges of whole bz2 streams from %s, for %d parallel worker(s) (%s)",
        describe_input(unit.path),
        len(ranges),
        describe_input(index),
        workers,
        why,
    )
    units = [
        replace(unit, kind="range", name=f"{unit.name}-r{i:05d}", start=r.start, end=r.end, index_pages=r.pages)
        for i, r in enumerate(ranges)
    ]
    if unit.expected_md5 or unit.expected_sha1:
        units.append(replace(unit, kind="verify", name=f"{unit.name}-verify"))
    return units


# Ranges per parallel worker: a worker that draws short ranges (fast pages, a cheap stretch of the
# file) takes another, so the last one to finish is not left with a quarter of the input.
RANGES_PER_WORKER = 4
# The smallest range worth its start-up: each range opens the file (an HTTP connection, a seek),
# re-reads the siteinfo, starts a bz2 decoder, a bundle and a progress file, tens of ms to a few
# seconds on a cluster; 8 MB of bz2 is several CPU-seconds of decompressing and parsing, so
# start-up stays a few percent.
MIN_UNIT_BYTES = 8_000_000
# ... unless --unit-mb is below 8 × that: the floor is then an eighth of it (small inputs, tests).
FLOOR_SHARE_OF_CAP = 8


def range_target(size: int, config: BuildConfig, workers: int) -> int:
    """Bytes per range of a file of `size` bytes for a run of `workers` parallel workers.

    About RANGES_PER_WORKER ranges per worker, but none above --unit-mb (the cap: a unit's
    memory and retry cost) and none below min(MIN_UNIT_BYTES, --unit-mb / 8) (the floor: start-up).
    """
    cap = int(config.unit_mb * 1e6)
    floor = min(MIN_UNIT_BYTES, cap // FLOOR_SHARE_OF_CAP)
    return max(1, min(cap, max(floor, size // (RANGES_PER_WORKER * max(workers, 1)))))


def split_blocks(unit: WorkUnit, config: BuildConfig) -> list[WorkUnit]:
    """A plain .bz2 file → ranges of whole bz2 blocks (kind "blocks", bits), else the file itself.

    Not split: other containers, remote files without Range support, files within one range,
    XML not in UTF-8 (the ranges after the first are parsed under a `<mediawiki>` root of their
    own), and, with one local worker, files within --unit-mb (ranges would only add work).
    """
    name = describe_input(unit.path)
    workers, why = parallelism(config)
    one_local_worker = workers <= 1 and runs_on_this_machine(config)
    cap = int(config.unit_mb * 1e6)
    if unit.size is None or (one_local_worker and unit.size <= cap):
        return [unit]
    target = range_target(unit.size, config, workers)
    if unit.size <= target or not _is_bz2(unit.path):
        return [unit]
    if not supports_ranges(unit.path):
        log.info("%s: the server does not support HTTP Range requests, so one worker reads it whole", name)
        return [unit]
    if not _utf8_xml(unit.path):
        log.info("%s: its XML is not in UTF-8, so one worker reads it whole", name)
        return [unit]
    try:
        plan = plan_blocks(unit.path, unit.size, target)
    except (OSError, DumpError) as exc:  # the reader reports an unreadable file properly
        log.info("%s: not split into bz2 block ranges (%s)", name, exc)
        return [unit]
    if plan is None or len(plan.ranges) < 2:
        if plan is None:
            log.info("%s: does not end in a bz2 end-of-stream marker, so one worker reads it whole", name)
        return [unit]
    if "multistream" in name:
        log.info("%s: no multistream index found beside it; splitting it at bz2 blocks instead", name)
    log.info("%s: %d ranges of whole bz2 blocks, for %d parallel worker(s) (%s)", name, len(plan.ranges), workers, why)
    units = [
        replace(unit, kind="blocks", name=f"{unit.name}-b{i:05d}", start=start, end=end)
        for i, (start, end) in enumerate(plan.ranges)
    ]
    if unit.expected_md5 or unit.expected_sha1:
        units.append(replace(unit, kind="verify", name=f"{unit.name}-verify"))
    return units


def _is_bz2(path: str) -> bool:
    try:
        with open_head(path) as f:
            return f.read(4)[:3] == b"BZh"
    except (OSError, ValueError, DumpError):
        return False


def _utf8_xml(path: str) -> bool:
    """Whether a dump's XML is UTF-8: no UTF-16 byte order mark, no other declared encoding."""
    try:
        stream, _, _ = open_dump(path, read_ahead=False, head=True)
        with stream:
            head = stream.read(256)
    except (OSError, EOFError, DumpError):
        return False
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head.startswith(b"<"):
        return False
    match = re.match(rb"<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)", head)
    return match is None or match.group(1).lower() in (b"utf-8", b"utf8")


def no_range_hint(path: str) -> str:
    return (
        f"{path}: the server does not support HTTP Range requests, so this multistream dump is read as "
        "one stream by one worker instead of byte ranges in parallel (a mirror with Range support, or a "
        "local copy, is faster)"
    )


def load_checksums(paths: list[str]) -> dict[str, dict[str, str]]:
    """`md5sums`/`sha1sums` files (`digest  file name` lines) → {file name: {"md5"|"sha1": digest}}."""
    table: dict[str, dict[str, str]] = {}
    for path in paths:
        try:
            text = read_bytes(path).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read checksums: {exc}") from None
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) not in (32, 40):
                raise UsageError(f"{path}: line {line_no} is not 'digest  file name': {line[:80]!r}")
            digest, name = parts
            kind = "md5" if len(digest) == 32 else "sha1"
            table.setdefault(name.lstrip("*").rsplit("/", 1)[-1], {})[kind] = digest.lower()
    return table


def classify_inputs(inputs: list[str]) -> tuple[list[str], list[str], list[RecordInput]]:
    """(XML dumps, SQL table dumps, WME/HTML record inputs) of the command line, told apart by content.

    UsageError when an input is JSON lines that are neither WME records nor HTML documents.
    """
    xml, sql, records = [], [], []
    for path in inputs:
        if sql_table_of(path) is not None:
            sql.append(path)
            continue
        try:
            found = sniff_record_input(path)
        except RecordInputError as exc:
            raise UsageError(str(exc)) from None
        if found is not None:
            records.extend(split_folder(found))
        else:
            xml.append(path)
    return xml, sql, records


def record_sites(record_inputs: list[RecordInput]) -> dict[str, SiteInfo]:
    """A SiteInfo (canonical namespace names) per wiki known only from WME records."""
    return {
        r.dbname: SiteInfo(dbname=r.dbname, lang=r.lang or "", base=r.base or "") for r in record_inputs if r.dbname
    }


def discover_sql_inputs(config: BuildConfig, units: list[WorkUnit]) -> list[SqlInput]:
    """Check every SQL input (and `--qid-map`) before the graph is built; UsageError names file and problem.

    The wiki of a table dump is its file name's `{db}-{date}-` prefix, else the run's only wiki.
    """
    wikis = sorted({u.site.dbname for u in units} | set(record_sites(config.record_inputs)))
    found: list[SqlInput] = []
    seen: set[str] = set()
    for path in config.sql_inputs:
        if path in seen:
            raise UsageError(f"{path}: given twice")
        seen.add(path)
        try:
            header = read_sql_header(path)
            check_header(path, header)
        except SqlDumpError as exc:
            raise input_error(exc) from None
        db = None
        if header.table != "wb_items_per_site":  # its rows name their wiki (ips_site_id)
            try:
                db = db_from_name(path) or (wikis[0] if len(wikis) == 1 else None)
            except SqlDumpError as exc:
                raise UsageError(str(exc)) from None
            if db is None:
                raise UsageError(
                    f"{path}: cannot tell which wiki this `{header.table}` dump belongs to; name it "
                    f"{{db}}-{{date}}-{header.table}.sql.gz (wikis of this run: {', '.join(wikis)})"
                )
            # Commons' image.sql gives the size of shared files to every wiki of the run.
            if db not in wikis and not (header.table == "image" and db == COMMONS_DB):
                raise UsageError(
                    f"{path}: a `{header.table}` dump of {db}, but no XML dump of {db} is given "
                    f"(wikis of this run: {', '.join(wikis) or 'none'})"
                )
        found.append(SqlInput(path=path, table=header.table, dbname=db, header=header))
    tables = {(i.dbname, i.table) for i in found}
    for db, table in sorted(tables, key=str):
        columns = _columns_of(found, db, table)
        if table == "categorylinks" and "cl_to" not in columns and (db, "linktarget") not in tables:
            raise UsageError(
                f"the categorylinks dump of {db} names categories by cl_target_id: give its "
                f"{db}-…-linktarget.sql.gz too"
            )
    if config.qid_map:
        try:
            columns, _rows = read_qid_map(config.qid_map)
            layout = qid_map_layout(config.qid_map, columns)
        except SqlDumpError as exc:
            raise UsageError(f"--qid-map {exc}") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--qid-map {config.qid_map}: cannot read it ({exc})") from None
        db = None
        if layout == "page_id" and "db" not in columns and "wiki" not in columns:
            if len(wikis) != 1:
                raise UsageError(
                    f"--qid-map {config.qid_map}: maps page ids of one wiki but the run has {', '.join(wikis)}; "
                    "add a db column"
                )
            db = wikis[0]
        found.append(SqlInput(path=config.qid_map, table=QID_MAP_TABLE, dbname=db))
    if config.categories == "sql" and not any(i.table == "categorylinks" for i in found):
        raise UsageError("--categories sql needs a categorylinks dump among the inputs")
    return found


def _columns_of(inputs: list[SqlInput], db: str | None, table: str) -> set[str]:
    return {c for i in inputs if i.dbname == db and i.table == table and i.header for c in i.header.columns}


def split_history_inputs(paths: list[str]) -> tuple[list[str], list[str]]:
    """(text dumps, stub history dumps) of the XML inputs, told apart by content (`is_stub_dump`)."""
    texts, stubs = [], []
    for path in paths:
        (stubs if is_stub_dump(path) else texts).append(path)
    return texts, stubs


def discover_history_units(config: BuildConfig, paths: list[str], units: list[WorkUnit]) -> list[WorkUnit]:
    """Check the history dumps (siteinfo, checksums) as `discover_units` does; one unit per file.

    UsageError when a history dump is of a wiki no text dump of the run is of (it would date nothing).
    """
    if not paths:
        return []
    found = discover_units(replace(config, inputs=paths, index=None))
    wikis = sorted({u.site.dbname for u in units})
    for unit in found:
        if unit.site.dbname not in wikis:
            raise UsageError(
                f"{unit.path}: a stub (history) dump of {unit.site.dbname}, but no XML dump with the pages' "
                f"text of {unit.site.dbname} is given (wikis of this run: {', '.join(wikis) or 'none'})"
            )
    return found
