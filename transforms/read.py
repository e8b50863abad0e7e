"""ReadDumps: work units → parsed articles spilled to sorted runs, plus small join keys.

Reading, parsing and spilling are fused in one DoFn on purpose: page bodies never travel through
a shuffle (Beam's local runner would hold them all in memory), only descriptors do. Parallelism
comes from the work units, which a Reshuffle spreads over the workers.

Outputs (tagged):
- `runs`:        `SpillRun` — where a unit's records of one (db, ns, bucket) were spilled
- `titles`:      `((db, title), ('A', ns, page_id))` — every article, for the redirect join
- `redirects`:   `((db, target title), ('R', RedirectRef))` — every redirect page
- `editors`:     `((db, user_id), (ns, page_id))` — the registered editor of each article's revision,
                 only with `ReadOptions.editors` (user_groups.sql is joined on it)
- `deadletters`: `DeadLetter` — pages that could not become records, with their raw XML
- `stats`:       `((db, counter), n)` — per-unit counts for the manifest
- `units`:       `UnitReport` — per input file: bytes, pages, checksums, and any input error
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap import faults
from wikisnap.configs import license_for
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.formats.dumpfiles import DumpError, describe_input, open_raw
from wikisnap.transforms.formats.dumpreader import PageFailure, ReadStats, blocks_span, iter_pages
from wikisnap.transforms.formats.fs import ProgressFile
from wikisnap.transforms.formats.layout import count_attempts, mark_attempt, new_attempt
from wikisnap.transforms.formats.spill import SpillBuffer
from wikisnap.transforms.parse.article import page_to_article, redirect_of, redirect_target
from wikisnap.transforms.parse.plaintext import slim_article, with_early_text

log = logging.getLogger("wikisnap")

TAG_RUNS = "runs"
TAG_TITLES = "titles"
TAG_REDIRECTS = "redirects"
TAG_EDITORS = "editors"
TAG_DEADLETTERS = "deadletters"
TAG_STATS = "stats"
TAG_UNITS = "units"


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of input.

    kind "file":   a whole dump file, hashed while it is read;
    kind "range":  whole bz2 streams `[start, end)` of a multistream dump (header read elsewhere);
    kind "blocks": bz2 blocks at bits `[start, end)` of a plain .bz2 dump: the pages whose `<page>`
                   begins in their decompressed bytes (see bz2blocks);
    kind "verify": the raw bytes of a range-split file, only hashed against its expected checksum
                   (MD5/SHA-1 of separate ranges cannot be combined).
    """

    path: str
    site: SiteInfo
    name: str  # stable, unique: names the unit's spill files
    size: int | None = None
    kind: str = "file"
    start: int = 0
    end: int | None = None
    index_pages: int | None = None  # pages the multistream index puts in this range
    expected_md5: str | None = None
    expected_sha1: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A page that did not become a record: where it came from, why, and its raw input."""

    dbname: str
    source: str
    reason: str
    page_id: int | None
    title: str | None
    raw: str


@dataclass(frozen=True)
class UnitReport:
    path: str
    dbname: str
    compression: str
    bytes_read: int
    size: int | None
    pages: int
    md5: str
    sha1: str
    error: str | None
    error_kind: str | None
    kind: str = "file"
    start: int = 0
    end: int | None = None
    verified: bool = False  # the file's bytes matched an expected checksum


def unit_report(unit: WorkUnit, dbname: str, stats: ReadStats, verified: bool) -> UnitReport:
    """What reading `unit` came to: its bytes, pages, digests and error, as the launcher checks them."""
    return UnitReport(
        path=unit.path,
        dbname=dbname,
        compression=stats.compression,
        bytes_read=stats.bytes_read,
        size=unit.size,
        pages=stats.pages,
        md5=stats.md5,
        sha1=stats.sha1,
        error=str(stats.error) if stats.error else None,
        error_kind=stats.error.kind if stats.error else None,
        kind=unit.kind,
        start=unit.start,
        end=unit.end,
        verified=verified,
    )


@dataclass(frozen=True)
class ReadOptions:
    namespaces: frozenset[int]
    temp_dir: str
    bucket_span: int
    spill_bytes: int
    max_page_bytes: int
    progress_seconds: float = 10.0
    bz2_threads: int = 0  # > 0: local bz2 inputs decoded by indexed_bzip2 on that many threads
    slim: bool = False  # `--formats text` alone: records carry only what the text output needs
    # with `slim` and no HTML input: namespaces whose plain text the reader makes (with_early_text)
    early_text: frozenset[int] = frozenset()
    editors: bool = False  # emit `editors` keys (only when user_groups.sql is among the inputs)


def fmt_eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_progress(name: str, pages: int, done: int, size: int | None, elapsed: float) -> str:
    """`name: 1,234 pages, 56.7 MB read, 12.3 MB/s, 40%, ETA 1m30s` (ETA only when size is known)."""
    rate = done / max(elapsed, 1e-9)
    line = f"{name}: {pages:,} pages, {done / 1e6:,.1f} MB read, {rate / 1e6:.1f} MB/s"
    if size:
        line += f", {done / size:.0%}"
        if rate > 0:
            line += f", ETA {fmt_eta(max(size - done, 0) / rate)}"
    return line


class _Progress(ProgressFile):
    """Logs one unit's pages, MB/s and ETA at most every `every` seconds, and leaves the same
    numbers in `progress/{unit}.json` under the temp folder, where the launcher sums all units."""

    def __init__(self, name: str, size: int | None, every: float, path: str | None = None):
        super().__init__(path, every)
        self.name = name
        self.size = size
        self.start = self.last
        self.records = 0  # records parsed so far (set by the reader): what the writers will write

    def __call__(self, stats: ReadStats, *, final: bool = False) -> None:
        if not self.due(final):
            return
        if not final:
            log.info("%s", format_progress(self.name, stats.pages, stats.bytes_read, self.size, self.last - self.start))
        state = {"pages": stats.pages, "bytes": stats.bytes_read, "size": self.size, "records": self.records}
        self.write(state | {"final": final})


class ReadParseSpillFn(beam.DoFn):
    """WorkUnit → tagged outputs (see module doc). One unit is read start to end by one call."""

    def __init__(self, options: ReadOptions):
        self.options = options

    def setup(self) -> None:
        ns = "wikisnap"
        self.c_pages = Metrics.counter(ns, "pages_read")
        self.c_articles = Metrics.counter(ns, "articles_parsed")
        self.c_redirects = Metrics.counter(ns, "redirect_pages")
        self.c_skipped = Metrics.counter(ns, "skipped_namespace")
        self.c_dead = Metrics.counter(ns, "dead_lettered")
        self.c_input_errors = Metrics.counter(ns, "input_errors")
        self.c_retries = Metrics.counter(ns, "read_unit_retries")

    def process(self, unit: WorkUnit):
        if unit.kind == "verify":
            yield beam.pvalue.TaggedOutput(TAG_UNITS, verify_unit(unit))
            return
        yield from self._read(unit)

    def _read(self, unit: WorkUnit):
        opts = self.options
        site = unit.site
        db = site.dbname
        licenses: dict[int, list[dict]] = {}  # per namespace: Wikidata's entities are CC0, its talk pages not
        source = describe_input(unit.path)
        attempt = new_attempt()
        mark_attempt(opts.temp_dir, "read-unit", unit.name, attempt)
        spill = SpillBuffer(opts.temp_dir, unit.name, opts.bucket_span, opts.spill_bytes, unit.path, attempt)
        counts: dict[str, int] = {}

        def count(name: str, n: int = 1) -> None:
            counts[name] = counts.get(name, 0) + n

        def dead_letter(reason: str, page_id: int | None, title: str | None, raw: str):
            self.c_dead.inc()
            count("dead_lettered")
            return beam.pvalue.TaggedOutput(TAG_DEADLETTERS, DeadLetter(db, source, reason, page_id, title, raw))

        byte_range = (unit.start, unit.end) if unit.kind == "range" else None
        blocks = (unit.start, unit.end) if unit.kind == "blocks" else None
        length = unit_span(unit)
        if byte_range:
            source_label = f"{source}[{unit.start:,}:{unit.end:,}]"
        elif blocks:
            source_label = f"{source}[blocks at bits {unit.start:,}:{unit.end:,}]"
        else:
            source_label = source
        stats = ReadStats(unit.path, size=length)
        progress = _Progress(
            source_label, length, opts.progress_seconds, layout.progress_path(opts.temp_dir, unit.name)
        )
        pages = iter_pages(
            unit.path,
            site,
            stats,
            progress=progress,
            byte_range=byte_range,
            blocks=blocks,
            bz2_threads=opts.bz2_threads,
        )
        # (read in line: a reader thread beside the analysis was 5% slower on an idle 2-core machine,
        # its hand-offs costing more than the GIL-free decoding and parsing gave; docs/performance.md)
        for item in pages:
            self.c_pages.inc()
            if isinstance(item, PageFailure):
                yield dead_letter(item.reason, item.page_id, item.title, item.raw_xml)
                continue
            page = item
            target = redirect_target(page)
            if target is not None:
                ref = redirect_of(page, target, site)
                if ref is None:
                    count("redirects_without_target")
                    continue
                self.c_redirects.inc()
                count("redirect_pages")
                yield beam.pvalue.TaggedOutput(TAG_REDIRECTS, ((db, ref.target), ("R", ref)))
                continue
            if page.ns not in opts.namespaces:
                self.c_skipped.inc()
                count(counter("pages", page.ns, "skipped"))
                continue
            text = page.revision.text if page.revision is not None else None
            if text is not None and len(text) > opts.max_page_bytes:
                reason = f"page text of {len(text):,} characters exceeds --max-page-bytes {opts.max_page_bytes:,}"
                yield dead_letter(reason, page.id, page.title, text)
                continue
            try:
                license = licenses.get(page.ns)
                if license is None:
                    license = licenses[page.ns] = license_for(db, page.ns)
                record = (slim_article if opts.slim else page_to_article)(page, site, license)
                if page.ns in opts.early_text:
                    record = with_early_text(record, site)
            except Exception as exc:  # noqa: BLE001 - one bad page must never stop a file
                reason = f"cannot build the article: {type(exc).__name__}: {exc}"
                yield dead_letter(reason, page.id, page.title, text or "")
                continue
            self.c_articles.inc()
            count(counter("records", page.ns, "parsed"))
            progress.records += 1
            rev_id = page.revision.id if page.revision is not None else 0
            for run in spill.add(db, page.ns, page.id, rev_id, record):
                yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
            yield beam.pvalue.TaggedOutput(TAG_TITLES, ((db, site.normalize(page.title)[1]), ("A", page.ns, page.id)))
            if opts.editors and page.revision is not None and page.revision.editor_id:
                yield beam.pvalue.TaggedOutput(TAG_EDITORS, ((db, page.revision.editor_id), (page.ns, page.id)))
        for run in spill.flush():
            yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
        # after the runs are on disk: a test failing here leaves a whole superseded attempt behind
        faults.point(f"read-unit:{unit.name}")
        retries = count_attempts(opts.temp_dir, "read-unit", unit.name) - 1
        if retries > 0:  # attempts of this unit the engine discarded (absent on a run without any)
            self.c_retries.inc(retries)
            count("retries/read_unit_attempts", retries)
        count("pages_read", stats.pages)
        progress(stats, final=True)
        verified = False
        if stats.error is None and unit.kind == "file":
            stats.error, verified = check_digests(unit, stats.md5, stats.sha1)
        if stats.error is None and byte_range is not None and unit.index_pages is not None:
            if stats.pages != unit.index_pages:
                stats.error = DumpError(
                    unit.path,
                    f"bytes {unit.start:,}-{unit.end:,} hold {stats.pages:,} pages but the multistream index "
                    f"lists {unit.index_pages:,} there: the index does not belong to this file",
                    kind="index",
                )
        if stats.error is not None:
            self.c_input_errors.inc()
            log.error("%s", stats.error)
        for name, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))
        yield beam.pvalue.TaggedOutput(TAG_UNITS, unit_report(unit, db, stats, verified))
        log.info("%s: done, %s pages, %.1f MB", source_label, f"{stats.pages:,}", stats.bytes_read / 1e6)


def unit_span(unit: WorkUnit) -> int | None:
    """Bytes of its file a unit reads: a range its own length, blocks the bytes they touch."""
    if unit.kind == "range":
        return unit.end - unit.start
    if unit.kind == "blocks":
        return blocks_span(unit.start, unit.end)
    return unit.size


def check_digests(unit: WorkUnit, md5: str, sha1: str) -> tuple[DumpError | None, bool]:
    """Compare a file's digests with the expected ones: (error naming both digests, verified)."""
    for name, expected, got in (("md5", unit.expected_md5, md5), ("sha1", unit.expected_sha1, sha1)):
        if expected and expected.lower() != got:
            return (
                DumpError(
                    unit.path,
                    f"{name} checksum mismatch: expected {expected.lower()}, read {got}; the file is "
                    "damaged or not the one the checksums describe",
                    kind="checksum",
                ),
                False,
            )
    return None, bool(unit.expected_md5 or unit.expected_sha1)


def verify_unit(unit: WorkUnit) -> UnitReport:
    """Hash the raw bytes of a range-split file (no decompression) and check them."""
    md5, sha1 = hashlib.md5(), hashlib.sha1()
    total = 0
    error: DumpError | None = None
    try:
        with open_raw(unit.path) as f:
            while True:
                chunk = f.read(8 << 20)
                if not chunk:
                    break
                md5.update(chunk)
                sha1.update(chunk)
                total += len(chunk)
    except DumpError as exc:
        error = exc
    except OSError as exc:
        error = DumpError(unit.path, f"cannot be read: {exc}", offset=total, kind="corrupt")
    verified = False
    if error is None:
        error, verified = check_digests(unit, md5.hexdigest(), sha1.hexdigest())
    if error is not None:
        log.error("%s", error)
    return UnitReport(
        path=unit.path,
        dbname=unit.site.dbname,
        compression="",
        bytes_read=total,
        size=unit.size,
        pages=0,
        md5=md5.hexdigest(),
        sha1=sha1.hexdigest(),
        error=str(error) if error else None,
        error_kind=error.kind if error else None,
        kind="verify",
        verified=verified,
    )


class ReadDumps(beam.PTransform):
    """PCollection[WorkUnit] → DoOutputsTuple with the tags listed in the module doc."""

    def __init__(self, options: ReadOptions):
        super().__init__()
        self.options = options

    def expand(self, units):
        return (
            units
            # Spread units over workers before the heavy read (one unit must not pin them all).
            | "SpreadUnits" >> beam.Reshuffle()
            | "ReadParseSpill"
            >> beam.ParDo(ReadParseSpillFn(self.options)).with_outputs(
                TAG_RUNS, TAG_TITLES, TAG_REDIRECTS, TAG_DEADLETTERS, TAG_STATS, TAG_UNITS, TAG_EDITORS
            )
        )
