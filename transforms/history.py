"""Revision histories → `date_created` and `date_previously_modified` of the XML articles.

A stub dump (`stub-meta-history`, `stub-meta-current`; `iter_history` reads history dumps with
text as well, but `build` takes those as text dumps) is read page by page into a small
`PageHistory` (dumpreader.iter_history): the smallest revision
timestamp, and the timestamps of the page's last revisions and of their parents. Only that
summary goes through a shuffle, never a page's revisions.

In:  history `WorkUnit`s (read.py's, one per file) and the reader's `titles`
     `((db, title), ('A', ns, page_id))`.
Out: `enrichments` `((db, ns, bucket), (page_id, {HISTORY_KEY: {...}}))` for the bucket writers,
     where `merge_history` turns the summary into the record's fields (only the writer knows the
     record's parent revision); `stats` `((db, 'history/…'), n)`; `units` `UnitReport`s (a bad
     history file fails the run like a bad XML dump); `deadletters` for malformed pages.

The graph:

    ReadHistories   each file → ((db, page_id), summary_of(page)) (one file per call, spread
                    first; pages outside the snapshot's namespaces dropped)
    JoinHistories   (db, page_id): a page's summaries (one per file holding it) meet its article

The rules (docs/records.md, "Revision histories"):
- `date_created` = the smallest revision timestamp of the page in the history inputs, given when
  those hold the page's creation (a revision without `<parentid>`) or more than one revision —
  a `stub-meta-current` page (one revision) gives it only when its current revision created it.
- `date_previously_modified` = the timestamp of the record's `previous_version.identifier` when
  the history has that revision among the page's last ones (see dumpreader's `HISTORY_TAIL`).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.transforms.formats.dumpfiles import describe_input
from wikisnap.transforms.formats.dumpreader import PageFailure, PageHistory, ReadStats, iter_history
from wikisnap.transforms.read import DeadLetter, WorkUnit, _Progress, check_digests, unit_report
from wikisnap.transforms.spilljoin import PARTITIONS, SpilledCoGroupByKey, map_each

TAG_STATS = "stats"
TAG_UNITS = "units"
TAG_DEADLETTERS = "deadletters"
TAG_ENRICHMENTS = "enrichments"

# The enrichment key the bucket writer hands to `merge_history` (never a record field).
HISTORY_KEY = "_history"
# `WriteOptions.coverage` member that turns on the history coverage counts.
HISTORY_COVERAGE = "history"


def summary_of(page: PageHistory) -> tuple:
    """What of a `PageHistory` travels through the shuffle: `(first, root, revisions, times)`."""
    return (page.first, page.root, page.revisions, page.times)


def combine_histories(items: list[tuple]) -> dict:
    """A page's summaries (`summary_of`) from every history input holding it → `{created?, times}`.

    Several inputs hold one page when a history is split inside a page or given twice: the
    smallest timestamp wins, revision counts add up and the revision times are united.
    """
    first = min(first for first, _root, _n, _times in items)
    root = any(root for _first, root, _n, _times in items)
    revisions = sum(n for _first, _root, n, _times in items)
    times: dict[int, str] = {}
    for _first, _root, _n, part in sorted(items, key=lambda h: (h[3], h[0], h[2])):
        times.update(part)
    out: dict = {"times": dict(sorted(times.items()))}
    if root or revisions > 1:
        out["created"] = first
    return out


def merge_history(record: dict, enrichment: dict | None, coverage: frozenset, counts: dict[str, int]) -> None:
    """Set `date_created` and `date_previously_modified` of one record from its page's history summary.

    In: the record, and the page's enrichment (its `HISTORY_KEY` item from JoinHistories; None or
    absent when no history input holds the page). Counts coverage when `HISTORY_COVERAGE` is in
    `coverage`: `enrich/date_created[_unknown]`, `enrich/date_previously_modified[_unknown]` (of
    records with a previous version) and `enrich/first_revision` (records without one).
    """
    history = (enrichment or {}).get(HISTORY_KEY) or {}
    created = history.get("created")
    # A history older than the record (a page recreated under the same id) must not date it later.
    if created and created <= (record.get("date_modified") or created):
        record["date_created"] = created
    parent = (record.get("previous_version") or {}).get("identifier")
    previous = history.get("times", {}).get(parent) if parent else None
    if previous:
        record["date_previously_modified"] = previous
    if HISTORY_COVERAGE not in coverage:
        return

    def add(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    add("enrich/date_created" if "date_created" in record else "enrich/date_created_unknown")
    if not parent:
        add("enrich/first_revision")
    else:
        add("enrich/date_previously_modified" if previous else "enrich/date_previously_modified_unknown")


def carry_previous(prior: dict | None, record: dict) -> None:
    """Fields of a page's new record known exactly from the record it replaces (`update`).

    `date_created` is the page's and does not change. When the new revision's parent is the
    prior record's revision, the prior record holds the parent's time (`date_modified`) and
    character count; hidden text has no count, and nothing is ever estimated from bytes.
    """
    if not prior:
        return
    if prior.get("date_created") and "date_created" not in record:
        record["date_created"] = prior["date_created"]
    previous = record.get("previous_version")
    prior_version = prior.get("version") or {}
    if not previous or not previous.get("identifier") or previous["identifier"] != prior_version.get("identifier"):
        return
    if prior.get("date_modified"):
        record["date_previously_modified"] = prior["date_modified"]
    if "number_of_characters" in prior_version:
        previous["number_of_characters"] = prior_version["number_of_characters"]


class _ReadHistoryFn(beam.DoFn):
    """History WorkUnit → `((db, page_id), summary_of(page))`, stats, a UnitReport, dead letters.

    Pages outside `namespaces` cannot meet a record: they are counted and dropped here, before
    the shuffle (on enwiki more than half the pages are talk and user pages).
    """

    def __init__(self, namespaces: frozenset[int], progress_seconds: float = 10.0):
        self.namespaces = namespaces
        self.progress_seconds = progress_seconds

    def setup(self) -> None:
        self.c_pages = Metrics.counter("wikisnap", "history_pages_read")
        self.c_revisions = Metrics.counter("wikisnap", "history_revisions_read")
        self.c_dead = Metrics.counter("wikisnap", "history_dead_lettered")
        self.c_errors = Metrics.counter("wikisnap", "input_errors")

    def process(self, unit: WorkUnit):
        db = unit.site.dbname
        source = describe_input(unit.path)
        byte_range = (unit.start, unit.end) if unit.kind == "range" else None
        stats = ReadStats(unit.path, size=unit.size)
        counts = {"history/pages_read": 0, "history/revisions_read": 0, "history/dead_lettered": 0}
        # Logged only: the launcher's overall progress counts the text dumps' bytes.
        progress = _Progress(source, unit.size, self.progress_seconds)
        for item in iter_history(unit.path, unit.site, stats, progress=progress, byte_range=byte_range):
            if isinstance(item, PageFailure):
                self.c_dead.inc()
                counts["history/dead_lettered"] += 1
                yield beam.pvalue.TaggedOutput(
                    TAG_DEADLETTERS, DeadLetter(db, source, item.reason, item.page_id, item.title, item.raw_xml)
                )
                continue
            counts["history/revisions_read"] += item.revisions
            if item.ns not in self.namespaces:
                counts["history/skipped_namespace"] = counts.get("history/skipped_namespace", 0) + 1
                continue
            yield ((db, item.page_id), summary_of(item))
        counts["history/pages_read"] = stats.pages
        progress(stats, final=True)
        self.c_pages.inc(stats.pages)
        self.c_revisions.inc(counts["history/revisions_read"])
        verified = False
        if stats.error is None and byte_range is None:
            stats.error, verified = check_digests(unit, stats.md5, stats.sha1)
        if stats.error is not None:
            self.c_errors.inc()
        for name, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))
        yield beam.pvalue.TaggedOutput(TAG_UNITS, unit_report(unit, db, stats, verified))


class ReadHistories(beam.PTransform):
    """PCollection[WorkUnit] of history dumps → main `((db, page_id), summary)` of the pages in
    `namespaces`, stats, units, deadletters."""

    def __init__(self, namespaces: frozenset[int], progress_seconds: float = 10.0):
        super().__init__()
        self.namespaces = namespaces
        self.progress_seconds = progress_seconds

    def expand(self, units):
        return (
            units
            | "SpreadHistoryUnits" >> beam.Reshuffle()
            | "ReadHistoryPages"
            >> beam.ParDo(_ReadHistoryFn(self.namespaces, self.progress_seconds)).with_outputs(
                TAG_STATS, TAG_UNITS, TAG_DEADLETTERS, main="pages"
            )
        )


class _JoinHistoryFn(beam.DoFn):
    """(db, page_id) → {A: [ns], H: [summary]} → `((db, ns, bucket), (page_id, {HISTORY_KEY: …}))`."""

    def __init__(self, bucket_span: int):
        self.bucket_span = bucket_span

    def setup(self) -> None:
        self.c_joined = Metrics.counter("wikisnap", "history_pages_joined")
        self.c_unmatched = Metrics.counter("wikisnap", "history_pages_unmatched")

    def process(self, element):
        (db, page_id), groups = element
        histories = list(groups["H"])
        if not histories:
            return
        namespaces = sorted(set(groups["A"]))
        if not namespaces:
            # Redirect pages, pages deleted since or of another part of the wiki.
            self.c_unmatched.inc()
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, "history/pages_without_record"), 1))
            return
        self.c_joined.inc()
        yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, "history/pages_joined"), 1))
        enrichment = {HISTORY_KEY: combine_histories(histories)}
        for ns in namespaces:
            yield ((db, ns, page_id // self.bucket_span), (page_id, enrichment))


class JoinHistories(beam.PTransform):
    """(pages from ReadHistories, titles) → main enrichments, stats."""

    def __init__(self, bucket_span: int, temp_dir: str, consume: bool = False, partitions: int = PARTITIONS):
        super().__init__()
        self.bucket_span = bucket_span
        self.temp_dir = temp_dir
        self.consume = consume  # remove the join's runs once merged (see SpilledCoGroupByKey)
        self.partitions = partitions  # the join's merge tasks (`partitions_for`)

    def expand(self, pcolls):
        pages, titles = pcolls
        articles = map_each(titles, "KeyArticlesByPageId", lambda kv: ((kv[0][0], kv[1][2]), kv[1][1]))
        return (
            {"A": articles, "H": pages}
            | "GroupHistoriesByPage" >> SpilledCoGroupByKey(self.temp_dir, self.partitions, consume=self.consume)
            | "JoinHistoriesToArticles"
            >> beam.ParDo(_JoinHistoryFn(self.bucket_span)).with_outputs(TAG_STATS, main=TAG_ENRICHMENTS)
        )
