"""Fold each touched page's changes over its base record (the update's second stage).

Per wiki, every page's Changes are applied in (time, revision, kind) order — the latest revision
wins whatever order the files came in — then redirect lists are fixed. Out: the final record (or a
removal) of every touched page keyed by (db, ns), the hourly-batch entries, counts, dead letters.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.schemas.serialize import parse_time_ns, to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.history import carry_previous
from wikisnap.transforms.parse.article import EVENT_NAMESPACE
from wikisnap.transforms.read import DeadLetter
from wikisnap.transforms.update.diffs import Change
from wikisnap.transforms.update.find import TAG_STATS, BaseHit

TAG_CHANGED = "changed"
TAG_BATCH = "batch"
TAG_DEADLETTERS = "deadletters"
# Fields derived from the text: a record whose text is hidden keeps none of them.
_TEXT_FIELDS = ("article_body", "abstract", "categories", "templates")
_TEXT_VERSION_FIELDS = ("number_of_characters", "size", "noindex", "maintenance_tags")


@dataclass(frozen=True)
class BatchEntry:
    """One record of an hourly batch: sorted by (time, page, kind) inside its file."""

    dbname: str
    ns: int
    time: str
    page_id: int
    order: int
    line: bytes

    def sort_key(self) -> tuple:
        return (parse_time_ns(self.time), self.page_id, self.order, self.line)


# -- the fold ------------------------------------------------------------------------------


def change_event_id(dbname: str, page_id: int, rev_id: int, kind: str, time: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"wikisnap:{dbname}:{page_id}:{rev_id}:{kind}:{time}"))


def delete_record(record: dict | None, change: Change, site: SiteInfo, event_kind: str = "delete") -> dict:
    """A WME `delete` record (OUTPUT-FORMAT §2.2): no body, a minimal version, event.type delete."""
    title = record["name"] if record else change.title
    ns = record["namespace"]["identifier"] if record else change.ns
    rev_id = (record or {}).get("version", {}).get("identifier") or change.rev_id
    out = {
        "name": title,
        "identifier": change.page_id,
        "date_modified": change.time,
        "version": {"identifier": rev_id},
        "url": record["url"] if record else site.url(title),
        "namespace": {"identifier": ns},
        "in_language": (record or {}).get("in_language") or {"identifier": site.lang},
        "is_part_of": (record or {}).get("is_part_of") or {"identifier": site.dbname, "url": site.project_url},
        "event": {
            "identifier": change_event_id(site.dbname, change.page_id, rev_id, event_kind, change.time),
            "type": "delete",
            "date_created": change.time,
            "date_published": change.time,
        },
    }
    return out


def _with_event(record: dict, change: Change, event_type: str) -> dict:
    record["event"] = {
        "identifier": change_event_id(change.dbname, change.page_id, change.rev_id, change.kind, change.time),
        "type": event_type,
        "date_created": change.time,
        "date_published": change.time,
    }
    return record


def _rev_of(record: dict | None) -> int:
    return int(((record or {}).get("version") or {}).get("identifier") or 0)


def _apply_version(record: dict, meta: dict) -> None:
    """A move's or visibility change's revision metadata onto a record whose text is unchanged."""
    prior = {k: copy.deepcopy(record[k]) for k in ("version", "date_modified", "date_created") if k in record}
    version = record.setdefault("version", {})
    version["identifier"] = meta["identifier"]
    version["comment"] = meta.get("comment", "")
    version["is_minor_edit"] = meta.get("is_minor_edit", False)
    if meta.get("editor"):
        version["editor"] = meta["editor"]
    else:
        version.pop("editor", None)
    record["date_modified"] = meta.get("rev_dt") or record.get("date_modified")
    if meta.get("parent"):
        record["previous_version"] = {"identifier": meta["parent"]}
        record.pop("date_previously_modified", None)  # the old parent's
        carry_previous(prior, record)


def hide(record: dict, visible: tuple[bool, bool, bool]) -> dict:
    """Apply a visibility change: hidden text drops the body and what derives from it."""
    text, editor, comment = visible
    if not text:
        for key in _TEXT_FIELDS:
            record.pop(key, None)
        for key in _TEXT_VERSION_FIELDS:
            record.get("version", {}).pop(key, None)
    if not editor:
        record.get("version", {}).pop("editor", None)
    if not comment:
        record.get("version", {}).pop("comment", None)
    record["visibility"] = {"text": text, "editor": editor, "comment": comment}
    return record


@dataclass
class PageOutcome:
    """What folding one page's Changes gave."""

    record: dict | None  # final record (None: not a record)
    ns: int | None
    redirect_to: str | None = None  # final state is a redirect page to this title
    batch: list[tuple[Change, dict, int]] = field(default_factory=list)  # (change, record, order)
    counts: dict[str, int] = field(default_factory=dict)
    deadletters: list[DeadLetter] = field(default_factory=list)
    titles: set[str] = field(default_factory=set)  # every title the page had


def fold_page(base: BaseHit | None, changes: list[Change], site: SiteInfo, namespaces: frozenset[int]) -> PageOutcome:
    """Fold one page's Changes over its base record. Pure; the base record is not modified.

    Order: (time, revision, kind, source). A revision older than the current one is a counted
    skip; the same change twice counts once (so applying a diff again changes nothing). A base
    record with Parsoid HTML that ends as a revision without it counts `html/fields_dropped`.
    """
    record = copy.deepcopy(base.record) if base else None
    ns = base.ns if base else None
    current = _rev_of(record)
    from_base = base is not None
    redirect_to: str | None = None
    deleted: dict | None = None
    out = PageOutcome(None, None)
    seen: set = set()

    def count(name: str) -> None:
        out.counts[name] = out.counts.get(name, 0) + 1

    def emit(change: Change, rec: dict, order: int) -> None:
        out.batch.append((change, rec, order))

    if record:
        out.titles.add(record["name"])
    for ch in sorted(changes, key=Change.sort_key):
        signature = (ch.kind, ch.rev_id, ch.time, ch.title, ch.visibility, ch.redirect_to, ch.in_scope)
        if signature in seen:
            count("skipped/duplicate_change")
            continue
        seen.add(signature)
        out.titles.add(ch.title)
        if ch.kind in ("revision", "undelete") and (
            ch.record is not None or ch.redirect_to is not None or not ch.in_scope
        ):
            if ch.rev_id < current or (ch.rev_id == current and (record is not None or redirect_to is not None)):
                count("skipped/older_than_base" if from_base and ch.rev_id < current else "skipped/already_applied")
                continue
            current, from_base = ch.rev_id, False
            if not ch.in_scope:
                if record is not None:
                    emit(ch, delete_record(record, ch, site), 1)
                else:
                    count("ignored/namespace")
                record, redirect_to = None, None
            elif ch.redirect_to is not None:
                if record is not None:
                    emit(ch, delete_record(record, ch, site), 1)
                record, redirect_to = None, ch.redirect_to
            else:
                kept = (record or {}).get("redirects")
                prior, record, ns, redirect_to = record, copy.deepcopy(ch.record), ch.ns, None
                carry_previous(prior, record)  # the page's creation date, its parent's time and size
                if kept and "redirects" not in record:
                    # Redirects belong to other pages: a new revision of this one keeps them.
                    record["redirects"] = kept
                emit(ch, copy.deepcopy(record), 0)
            continue
        if ch.kind == "undelete":
            if deleted is not None:
                record, redirect_to, deleted = deleted, None, None
                emit(ch, _with_event(copy.deepcopy(record), ch, "update"), 0)
            else:
                count("dead_lettered")
                out.deadletters.append(
                    DeadLetter(
                        ch.dbname,
                        ch.source,
                        "undelete without the page's text, and the page is not in the base",
                        ch.page_id,
                        ch.title,
                        "",
                    )
                )
            continue
        if ch.kind == "delete":
            if record is not None and ch.title != record["name"]:
                # A batch's `delete` of a moved page's old title: the page itself lives on.
                count("skipped/delete_of_old_title")
                continue
            if record is None and redirect_to is None:
                count("ignored/namespace" if ch.ns not in namespaces else "skipped/delete_of_absent_page")
            elif record is not None:
                emit(ch, delete_record(record, ch, site), 1)
            deleted, record, redirect_to = record, None, None
            continue
        if ch.kind == "move":
            if record is None:
                count("ignored/namespace" if not ch.in_scope else "skipped/move_of_page_not_in_snapshot")
                continue
            old = copy.deepcopy(record)
            if ch.rev_id > current:
                _apply_version(record, ch.version)
                current = ch.rev_id
            record["name"], record["url"] = ch.title, site.url(ch.title)
            record["namespace"] = {"identifier": ch.ns}
            if ch.ns != 0:
                record.pop("abstract", None)
            if ch.left_redirect:
                pairs = {(r["name"], r["url"]) for r in record.get("redirects", [])}
                pairs.add((ch.left_redirect, site.url(ch.left_redirect)))
                record["redirects"] = [{"name": n, "url": u} for n, u in sorted(pairs)]
            _with_event(record, ch, "update")
            if old["name"] != ch.title:
                emit(ch, delete_record(old, ch, site), 1)
            if ch.in_scope:
                ns = ch.ns
                emit(ch, copy.deepcopy(record), 0)
            else:
                record = None
            continue
        if ch.kind == "visibility":
            if record is None:
                count("skipped/visibility_of_page_not_in_snapshot")
            elif ch.rev_id != current:
                count("skipped/visibility_of_other_revision")
            elif all(ch.visibility) and "article_body" not in record and record.get("visibility"):
                count("skipped/visibility_restored_without_text")
            else:
                hide(record, ch.visibility)
                if all(ch.visibility):
                    record.pop("visibility", None)
                _with_event(record, ch, "visibility-change")
                emit(ch, copy.deepcopy(record), 0)
            continue
        count(f"skipped/{ch.kind}_without_text")
    out.record, out.ns, out.redirect_to = record, ns if record is not None else None, redirect_to
    if base is not None and record is not None and _has_html(base.record) and not _has_html(record):
        # A new revision from the diffs has no Parsoid HTML: its HTML-derived fields (the body's
        # html, HTML categories/templates/abstract) are gone. Counted, never silent.
        count("html/fields_dropped")
    return out


def _has_html(record: dict) -> bool:
    return bool((record.get("article_body") or {}).get("html"))


def _set_redirects(record: dict, pairs: set[tuple[str, str]]) -> None:
    if pairs:
        record["redirects"] = [{"name": n, "url": u} for n, u in sorted(pairs)]
    else:
        record.pop("redirects", None)


@dataclass
class WikiOutcome:
    changed: dict[tuple[int, int], dict | None]  # (ns, page id) → final record, or None = remove
    batch: list[BatchEntry]
    counts: dict[str, int]
    deadletters: list[DeadLetter]


def resolve_wiki(
    dbname: str, site: SiteInfo, namespaces: frozenset[int], changes: Iterable[Change], hits: Iterable[BaseHit]
) -> WikiOutcome:
    """Fold every touched page of one wiki, then fix the redirect lists the changes affect.

    In: the wiki's Changes and the base records FindInBase returned. Out: a `WikiOutcome` whose
    `changed` holds only records that differ from the base (equal ones keep their base bytes).
    """
    by_page: dict[int, list[Change]] = {}
    for ch in changes:
        by_page.setdefault(ch.page_id, []).append(ch)
    base: dict[int, BaseHit] = {}
    for hit in hits:
        base.setdefault(hit.page_id, hit)
    counts: dict[str, int] = {}
    deadletters: list[DeadLetter] = []
    batch: list[BatchEntry] = []
    final: dict[int, PageOutcome] = {}

    def count(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    for page_id in sorted(by_page):
        outcome = fold_page(base.get(page_id), by_page[page_id], site, namespaces)
        final[page_id] = outcome
        for name, n in outcome.counts.items():
            count(name, n)
        deadletters.extend(outcome.deadletters)
        for ch, rec, order in outcome.batch:
            rec_ns = rec["namespace"]["identifier"]
            batch.append(BatchEntry(dbname, rec_ns, ch.time, ch.page_id, order, to_wme_json_bytes(rec)))

    # Current records by id: touched pages take their final state, others their base record.
    records: dict[int, dict | None] = {pid: copy.deepcopy(hit.record) for pid, hit in base.items()}
    for page_id, outcome in final.items():
        records[page_id] = outcome.record
    by_title = {rec["name"]: pid for pid, rec in records.items() if rec is not None}
    # Redirect pages among the touched ones: drop their old listings, attach their new ones.
    # Only pages without a base record can have been redirect pages (a title is an article or a
    # redirect); a moved article's own left-behind redirect must stay listed.
    touched_titles: set[str] = set()
    for page_id, outcome in final.items():
        if page_id not in base:
            touched_titles |= outcome.titles
    for rec in records.values():
        # A touched page is listed again below only if it still is a redirect (to this record).
        if rec is not None and any(r["name"] in touched_titles for r in rec.get("redirects", [])):
            _set_redirects(rec, {(r["name"], r["url"]) for r in rec["redirects"] if r["name"] not in touched_titles})
    for page_id, outcome in sorted(final.items()):
        if outcome.redirect_to is None:
            continue
        title = _last_title(by_page[page_id])
        target = by_title.get(outcome.redirect_to)
        if target is None or not outcome.redirect_to:
            count("redirects_dangling")
            continue
        rec = records[target]
        pairs = {(r["name"], r["url"]) for r in rec.get("redirects", [])}
        pairs.add((title, site.url(title)))
        _set_redirects(rec, pairs)
        count("redirects_attached")
    # Keep only what differs from the base: equal records keep their base bytes.
    changed: dict[tuple[int, int], dict | None] = {}
    for page_id, rec in records.items():
        hit = base.get(page_id)
        new_ns = rec["namespace"]["identifier"] if rec is not None else None
        if hit is not None and rec == hit.record:
            if page_id in final:
                count("unchanged")
            continue
        if hit is not None and new_ns != hit.ns:
            changed[(hit.ns, page_id)] = None
        if rec is not None:
            changed[(new_ns, page_id)] = rec
        if page_id not in final:
            count("redirects_changed")
        elif hit is None and rec is not None:
            count("created")
        elif hit is not None and rec is None:
            count("deleted")
        elif hit is not None and rec is not None and rec["name"] != hit.record["name"]:
            count("moved")
        elif rec is not None:
            count("updated")
    return WikiOutcome(changed, batch, counts, deadletters)


def _last_title(changes: list[Change]) -> str:
    return max(changes, key=Change.sort_key).title


class _ResolveWikiFn(beam.DoFn):
    def __init__(self, sites: dict, namespaces: frozenset[int]):
        self.sites = sites
        self.namespaces = namespaces

    def setup(self) -> None:
        self.c_pages = Metrics.counter("wikisnap", "pages_changed")
        self.c_batch = Metrics.counter("wikisnap", "batch_records")
        self.c_dead = Metrics.counter("wikisnap", "merge_dead_lettered")

    def process(self, element):
        db, groups = element
        changes = [ch for listed in groups["changes"] for ch in listed]  # one list per wiki
        if not changes:
            return
        outcome = resolve_wiki(db, self.sites[db], self.namespaces, changes, groups["hits"])
        self.c_pages.inc(len(outcome.changed))
        self.c_batch.inc(len(outcome.batch))
        self.c_dead.inc(len(outcome.deadletters))
        for (ns, page_id), rec in sorted(outcome.changed.items(), key=lambda kv: kv[0]):
            yield ((db, ns), (page_id, rec))
        for entry in outcome.batch:
            yield beam.pvalue.TaggedOutput(TAG_BATCH, entry)
        for letter in outcome.deadletters:
            yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, letter)
        for name, n in sorted(outcome.counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))


class ResolveChanges(beam.PTransform):
    """(`(db, [Change])`, `(db, BaseHit)`) → main `((db, ns), (page_id, record | None))`, batch, stats, deadletters."""

    def __init__(self, sites: dict, namespaces: frozenset[int]):
        super().__init__()
        self.sites = sites
        self.namespaces = namespaces

    def expand(self, pcolls):
        by_wiki, hits = pcolls
        return (
            {"changes": by_wiki, "hits": hits}
            | "JoinChangesAndBase" >> beam.CoGroupByKey()
            | "FoldPages"
            >> beam.ParDo(_ResolveWikiFn(self.sites, self.namespaces))
            .with_output_types(tuple[tuple[str, int], tuple])
            .with_outputs(TAG_BATCH, TAG_STATS, TAG_DEADLETTERS, main=TAG_CHANGED)
        )
