"""ReadDumps: work units → parsed articles spilled to sorted runs, plus small join keys.

Reading, parsing and spilling are fused in one DoFn on purpose: page bodies never travel through
a shuffle (Beam's local runner would hold them all in memory), only descriptors do. Parallelism
comes from the work units, which a Reshuffle spreads over the workers.

Outputs (tagged):
- `runs`:        `SpillRun` — where a unit's records of one (db, ns, bucket) were spilled
- `titles`:      `((db, title), ('A', ns, page_id))` — every article, for the redirect join
- `redirects`:   `((db, target title), ('R', RedirectRef))` — every redirect page
- `deadletters`: `DeadLetter` — pages that could not become records, with their raw XML
- `stats`:       `((db, counter), n)` — per-unit counts for the manifest
- `units`:       `UnitReport` — per input file: bytes, pages, checksums, and any input error
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.configs import license_for
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.article import page_to_article, redirect_of, redirect_target
from wikisnap.transforms.dumpreader import PageFailure, ReadStats, describe_input, iter_pages
from wikisnap.transforms.files import SpillBuffer

log = logging.getLogger("wikisnap")

TAG_RUNS = "runs"
TAG_TITLES = "titles"
TAG_REDIRECTS = "redirects"
TAG_DEADLETTERS = "deadletters"
TAG_STATS = "stats"
TAG_UNITS = "units"


@dataclass(frozen=True)
class WorkUnit:
    """One independent piece of input: today a whole dump file."""

    path: str
    site: SiteInfo
    name: str  # stable, unique: names the unit's spill files
    size: int | None = None


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


@dataclass(frozen=True)
class ReadOptions:
    namespaces: frozenset[int]
    temp_dir: str
    bucket_span: int
    spill_bytes: int
    max_page_bytes: int
    progress_seconds: float = 10.0


def _fmt_eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Progress:
    """Logs pages, MB/s and ETA for one unit at most every `every` seconds."""

    def __init__(self, name: str, size: int | None, every: float):
        self.name = name
        self.size = size
        self.every = every
        self.start = time.monotonic()
        self.last = self.start

    def __call__(self, stats: ReadStats) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = stats.bytes_read / elapsed
        line = f"{self.name}: {stats.pages:,} pages, {stats.bytes_read / 1e6:,.1f} MB read, {rate / 1e6:.1f} MB/s"
        if self.size:
            done = stats.bytes_read / self.size
            line += f", {done:.0%}"
            if rate > 0:
                line += f", ETA {_fmt_eta((self.size - stats.bytes_read) / rate)}"
        log.info("%s", line)


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

    def process(self, unit: WorkUnit):
        opts = self.options
        site = unit.site
        db = site.dbname
        licenses: dict[int, list[dict]] = {}  # per namespace: Wikidata's entities are CC0, its talk pages not
        source = describe_input(unit.path)
        spill = SpillBuffer(opts.temp_dir, unit.name, opts.bucket_span, opts.spill_bytes)
        counts: dict[str, int] = {}

        def count(name: str, n: int = 1) -> None:
            counts[name] = counts.get(name, 0) + n

        stats = ReadStats(unit.path, size=unit.size)
        progress = _Progress(source, unit.size, opts.progress_seconds)
        for item in iter_pages(unit.path, site, stats, progress=progress):
            self.c_pages.inc()
            if isinstance(item, PageFailure):
                self.c_dead.inc()
                count("dead_lettered")
                yield beam.pvalue.TaggedOutput(
                    TAG_DEADLETTERS, DeadLetter(db, source, item.reason, item.page_id, item.title, item.raw_xml)
                )
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
                count(f"skipped_namespace/{page.ns}")
                continue
            text = page.revision.text if page.revision is not None else None
            if text is not None and len(text) > opts.max_page_bytes:
                self.c_dead.inc()
                count("dead_lettered")
                yield beam.pvalue.TaggedOutput(
                    TAG_DEADLETTERS,
                    DeadLetter(
                        db,
                        source,
                        f"page text of {len(text):,} characters exceeds --max-page-bytes {opts.max_page_bytes:,}",
                        page.id,
                        page.title,
                        text,
                    ),
                )
                continue
            try:
                license = licenses.get(page.ns)
                if license is None:
                    license = licenses[page.ns] = license_for(db, page.ns)
                record = page_to_article(page, site, license)
            except Exception as exc:  # noqa: BLE001 - one bad page must never stop a file
                self.c_dead.inc()
                count("dead_lettered")
                yield beam.pvalue.TaggedOutput(
                    TAG_DEADLETTERS,
                    DeadLetter(
                        db,
                        source,
                        f"cannot build the article: {type(exc).__name__}: {exc}",
                        page.id,
                        page.title,
                        text or "",
                    ),
                )
                continue
            self.c_articles.inc()
            count(f"parsed/{page.ns}")
            rev_id = page.revision.id if page.revision is not None else 0
            for run in spill.add(db, page.ns, page.id, rev_id, record, len(text or "")):
                yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
            yield beam.pvalue.TaggedOutput(TAG_TITLES, ((db, site.normalize(page.title)[1]), ("A", page.ns, page.id)))
        for run in spill.flush():
            yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
        count("pages_read", stats.pages)
        if stats.error is not None:
            self.c_input_errors.inc()
            log.error("%s", stats.error)
        for name, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))
        yield beam.pvalue.TaggedOutput(
            TAG_UNITS,
            UnitReport(
                path=unit.path,
                dbname=db,
                compression=stats.compression,
                bytes_read=stats.bytes_read,
                size=unit.size,
                pages=stats.pages,
                md5=stats.md5,
                sha1=stats.sha1,
                error=str(stats.error) if stats.error else None,
                error_kind=stats.error.kind if stats.error else None,
            ),
        )
        log.info("%s: done, %s pages, %.1f MB", source, f"{stats.pages:,}", stats.bytes_read / 1e6)


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
                TAG_RUNS, TAG_TITLES, TAG_REDIRECTS, TAG_DEADLETTERS, TAG_STATS, TAG_UNITS
            )
        )
