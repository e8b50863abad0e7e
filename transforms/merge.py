"""Merging diffs into a base snapshot: find the touched records, fold the changes, rewrite.

Three stages, each a pure core plus a thin PTransform:

FindInBase       per base snapshot (db, ns). With Parquet shards and a published md5 (a
                 wikisnap base), the indexed scan (`_scan_indexed`): one pass over the
                 compressed bytes checks the md5 and finds the members' byte spans (their gzip
                 headers; CRC-32 of each span), the shards' id, title and redirect columns say
                 which records the diffs touch, and only a member holding one is inflated, up to
                 its last one. Otherwise (or when a check fails) the full scan (`scan_base`):
                 every line's head (`{"name":…,"identifier":N`) read with a regex — no JSON
                 parse, no wikitext. Either way the lines of changed pages, of redirect targets
                 named by the diffs and of records listing a changed page as a redirect are
                 parsed and emitted (`BaseHit`), the same hits in the same order; output is
                 diff-sized, and the member map — byte spans, first page id, CRC-32 of the raw
                 bytes — comes with them, so nothing reads the base again to plan the rewrite.
ResolveWiki      per wiki: fold every page's Changes over its base record, in (time, revision,
                 kind) order — the latest revision wins whatever order the files came in — then
                 fix redirect lists. Out: the final record (or a removal) of every touched page,
                 keyed by (db, ns), the hourly-batch entries, counts and dead letters.
RewriteSnapshots per (db, ns): a snapshot no diff touches is copied as files; otherwise its
                 members (wikisnap's layout: one gzip member per NDJSON member) become tasks,
                 spread over the workers: an untouched member is copied as gzip bytes + its
                 Parquet shard (never decompressed; the copy's CRC-32 must be the scan's, the
                 shard's md5 the manifest's), a touched one re-gzipped with the changes merged
                 in page-id order (untouched lines byte for byte; its text shard fed in the same
                 pass) while, in a thread beside it, its shard is merged row group by row
                 group with Arrow (the touched rows out, the new ones in). Tarballs of another
                 layout are rewritten line by line in one pass.

A damaged base (empty, cut off, corrupt, a copied tarball or shard whose md5 is not the one
published) is a `BaseError` naming the file, member and byte (a tarball whose md5 is not its
manifest's goes through the full scan, which finds where); the DoFns emit it on their `errors`
output and `wikisnap update` fails the run before anything is published.

Why this shape: on Beam's local runner a shuffled element stays in memory, so base records never
go through a shuffle — only the Changes (diff-sized), the few base records they touch and member
tasks (a path, a byte span and that member's changes). With the indexed scan a base member is
never decompressed when no change falls in it (its bytes vouched for by the base's md5, its line
count by its shard's, so the read-back only hashes its copy) and one and a half times on average
when one does (the scan up to the last wanted line, then the rewrite — keeping the scan's output
for it would put the decompressed member on temp storage, slower than a second inflate at
scale); memory does not grow with the snapshot: a worker holds one decompressed chunk and line,
or one row group of a touched member's Parquet shard.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import gzip
import hashlib
import io
import itertools
import json
import re
import tarfile
import uuid
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap import faults
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, records_to_table
from wikisnap.schemas.serialize import format_time, parse_time_ns, to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.article import EVENT_NAMESPACE
from wikisnap.transforms.codecs import DECOMPRESS_ERRORS, gzip_decompressor
from wikisnap.transforms.diffs import Change
from wikisnap.transforms.files import (
    CountingReader,
    GzipMemberWriter,
    MemberPart,
    file_md5,
    fs_for,
    join,
    local_path,
    new_attempt,
    open_read,
    open_read_arrow,
    open_write,
    read_bytes,
    remove_tree,
    tar_padding,
)
from wikisnap.transforms.history import carry_previous
from wikisnap.transforms.read import DeadLetter
from wikisnap.transforms.tarlines import TarLines
from wikisnap.transforms.write import PARQUET_SETTINGS, MemberSink, OutputFile, TextShard, WriteOptions, snapshot_id

TAG_HITS = "hits"
TAG_CHANGED = "changed"
TAG_BATCH = "batch"
TAG_STATS = "stats"
TAG_DEADLETTERS = "deadletters"
TAG_PARTS = "parts"
TAG_COPIED = "copied"
TAG_ERRORS = "errors"
TAG_LAYOUT = "layout"
# Bytes per read of base and part files: 1 MB (3 MB inflated) is reused from the heap, while 4 MB
# reads (12 MB inflated) took fresh pages from the kernel each time — a touched 100 MB member cost
# ~25,000 page faults and 0.05-0.07 s of system time more (enwiki x50 benchmark).
READ_SIZE = 1 << 20
# What to do about a damaged base (the tail of every BaseError message).
FIX_BASE = "restore the base from a good copy (or rebuild it with `wikisnap build`) and run again"

# The head of every WME line: the serialiser always writes `name` first and `identifier` second.
_HEAD = re.compile(rb'\{"name":("(?:[^"\\]|\\.)*"),"identifier":(\d+)')
# Keys are the only place an unescaped quote precedes these names (quotes inside strings are \").
_REDIRECTS_KEY = b'"redirects":['
_DATE_KEY = re.compile(rb'"date_modified":"([^"]+)"')
# Fields derived from the text: a record whose text is hidden keeps none of them.
_TEXT_FIELDS = ("article_body", "abstract", "categories", "templates")
_TEXT_VERSION_FIELDS = ("number_of_characters", "size", "noindex", "maintenance_tags")


@dataclass(frozen=True)
class BaseSnapshot:
    """One snapshot of the base: its tarball and (optional) Parquet shards."""

    dbname: str
    ns: int
    tarball: str
    metadata: str | None = None
    parquet: tuple[str, ...] = ()
    text: tuple[str, ...] = ()  # plain-text shards (`--formats text`), shard n beside member n
    md5: str | None = None  # the tarball's md5 as the base's manifest published it (None: unknown)
    parquet_md5: tuple[str | None, ...] = ()  # the published md5 of each of `parquet`, when known


@dataclass(frozen=True)
class Wanted:
    """What FindInBase looks for in one wiki (all diff-sized)."""

    ids: frozenset[int]  # changed pages
    names: frozenset[bytes]  # JSON-encoded titles of redirect targets
    redirect_names: frozenset[str]  # titles that may be listed in some record's `redirects`


@dataclass(frozen=True)
class BaseHit:
    dbname: str
    ns: int
    page_id: int
    record: dict


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


class BaseError(Exception):
    """A base snapshot that cannot be read: one line naming the tarball, the member and the byte.

    Never excused by --allow-truncated: the records of a damaged base would vanish silently.
    """


def base_error(tarball: str, problem: str, offset: int | None = None) -> BaseError:
    where = f" (at byte {offset:,})" if offset is not None else ""
    return BaseError(f"{tarball}: base snapshot {problem}{where}; {FIX_BASE}")


# -- reading base lines ----------------------------------------------------------------------


def iter_snapshot_lines(tarball: str) -> Iterator[bytes]:
    """The NDJSON lines of a snapshot tarball, streamed member after member (tar order).

    BaseError (tarball, member, byte) when it is empty, cut off — also between two members — or
    corrupt; the lines before the damage have been yielded.
    """
    # gzip.GzipFile reads concatenated gzip members; tarfile's own "r|gz" stops after the first.
    try:
        raw = CountingReader(open_read(tarball))
    except OSError as exc:
        raise base_error(tarball, f"cannot be opened ({exc})") from None
    lines = TarLines(gzip.GzipFile(fileobj=io.BufferedReader(raw, 1 << 20)))
    try:
        yield from lines  # one line in memory
    except (EOFError, OSError, zlib.error, tarfile.TarError, ValueError) as exc:
        if raw.count == 0:
            raise base_error(tarball, "is an empty file") from None
        where = f"in member {lines.member!r}" if lines.member else "between members"
        problem = f"is cut off or corrupt {where}, after {lines.lines:,} complete line(s) ({exc})"
        raise base_error(tarball, problem, raw.count) from None
    finally:
        raw.close()


def line_head(line: bytes) -> tuple[bytes, int]:
    """`(JSON-encoded name, page id)` of a WME line, from its first bytes; ValueError otherwise."""
    match = _HEAD.match(line)
    if match is None:
        raise ValueError(f"not a wikisnap/WME record line: {line[:80]!r}")
    return match.group(1), int(match.group(2))


def base_line_head(tarball: str, line: bytes, number: int) -> tuple[bytes, int]:
    """`line_head` of a base line; BaseError naming the tarball and line when it is no record."""
    try:
        return line_head(line)
    except ValueError as exc:
        raise base_error(tarball, f"line {number:,} is not a WME record, the data is corrupt ({exc})") from None


def json_name(title: str) -> bytes:
    """A title encoded as the serialiser writes a JSON string (to compare with `line_head`)."""
    line = to_wme_json_bytes({"name": title, "namespace": {"identifier": 0}})
    return line[len(b'{"name":') : line.index(b',"namespace"')]


def listed_redirects(line: bytes) -> list[str]:
    """Names in a line's `redirects` list, parsing only that list (titles cannot contain `]`)."""
    start = line.find(_REDIRECTS_KEY)
    if start < 0:
        return []
    start += len(_REDIRECTS_KEY) - 1
    end = line.index(b"]", start)
    return [item["name"] for item in json.loads(line[start : end + 1])]


def find_in_base(snapshot: BaseSnapshot, wanted: Wanted) -> Iterator[BaseHit]:
    """The records of `snapshot` that the diffs touch (see `Wanted`), parsed; the rest skipped."""
    for number, line in enumerate(iter_snapshot_lines(snapshot.tarball), 1):
        name, page_id = base_line_head(snapshot.tarball, line, number)
        hit = page_id in wanted.ids or name in wanted.names
        if not hit and wanted.redirect_names:
            hit = any(n in wanted.redirect_names for n in listed_redirects(line))
        if hit:
            yield BaseHit(snapshot.dbname, snapshot.ns, page_id, json.loads(line))


def wanted_for(changes: Iterable[Change]) -> Wanted:
    ids, names, redirect_names = set(), set(), set()
    for ch in changes:
        ids.add(ch.page_id)
        redirect_names.add(ch.title)
        if ch.old_title:
            redirect_names.add(ch.old_title)
        if ch.redirect_to:
            names.add(json_name(ch.redirect_to))
    return Wanted(frozenset(ids), frozenset(names), frozenset(redirect_names))


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
    skip; the same change twice counts once (so applying a diff again changes nothing).
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
    return out


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


# -- rewriting a snapshot --------------------------------------------------------------------


def rewrite_snapshot(
    dbname: str, ns: int, tarball: str | None, changed: dict[int, dict | None], opts: WriteOptions
) -> tuple[list[MemberPart], dict[str, int]]:
    """Merge base lines (page-id order) with the changed records of one (db, ns) into members.

    Untouched lines are written as they are; changed records are serialised; `None` removes.
    Out: MemberParts for AssembleSnapshots and counts (`written/{ns}`, `copied/{ns}`).
    """
    # Parquet and text need whole records; the tarball alone only the date of an untouched line.
    parquet = "parquet" in opts.formats or opts.wants_text(ns)
    inserts = sorted((pid, rec) for pid, rec in changed.items() if rec is not None)
    parts: list[MemberPart] = []
    counts = {f"written/{ns}": 0, f"copied/{ns}": 0}
    sink: MemberSink | None = None

    def add(line: bytes, record: dict) -> None:
        nonlocal sink
        if sink is None or (sink.size and sink.size + len(line) > opts.member_bytes):
            if sink is not None:
                parts.append(sink.close())
            sink = MemberSink(opts, dbname, ns, 0, len(parts))
        sink.add(line, record)
        counts[f"written/{ns}"] += 1

    def light(line: bytes) -> dict:
        # Without Parquet the sink only needs the date: no JSON parse of an untouched line.
        if parquet:
            return json.loads(line)
        match = _DATE_KEY.search(line)
        return {"date_modified": match.group(1).decode() if match else ""}

    i = 0
    for number, line in enumerate(iter_snapshot_lines(tarball) if tarball else (), 1):
        _name, page_id = base_line_head(tarball, line, number)
        while i < len(inserts) and inserts[i][0] < page_id:
            add(to_wme_json_bytes(inserts[i][1]), inserts[i][1])
            i += 1
        if page_id in changed:
            continue  # replaced (by an insert at this id) or removed
        add(line, light(line))
        counts[f"copied/{ns}"] += 1
    for _pid, rec in inserts[i:]:
        add(to_wme_json_bytes(rec), rec)
    if sink is not None:
        parts.append(sink.close())
    return parts, counts


# -- rewriting member by member (the fast path for wikisnap's own tarballs) --------------------


@dataclass(frozen=True)
class BaseMember:
    """One NDJSON member of a wikisnap tarball: where its gzip member lies, its first page id."""

    index: int
    data_size: int
    start: int  # byte span of the gzip member holding the data (+ tar padding)
    end: int
    first_id: int
    records: int = -1  # its NDJSON lines, when the scan counted them (-1: not counted)
    max_date: str | None = None  # its newest `date_modified`, when the scan read it
    raw_crc: int | None = None  # CRC-32 of the span's bytes the scan decompressed (a copy must match)


def gzip_spans(path: str) -> list[tuple[int, int]]:
    """Byte spans of the gzip members concatenated in `path` (decompressed, never kept).

    BaseError when a member is corrupt (bad data or CRC) or the file ends inside one.
    """
    spans = []
    offset = 0
    with open_read(path) as f:
        data = f.read(1 << 22)
        d = gzip_decompressor()
        start = 0
        while data:
            try:
                d.decompress(data)
            except DECOMPRESS_ERRORS as exc:
                raise base_error(path, f"has a corrupt gzip member starting at byte {start:,} ({exc})") from None
            if d.eof:
                rest = d.unused_data
                end = offset + len(data) - len(rest)
                spans.append((start, end))
                start = end
                offset = end
                data = rest
                d = gzip_decompressor()
                if not data:
                    data = f.read(1 << 22)
                continue
            offset += len(data)
            data = f.read(1 << 22)
    if offset > start:
        raise base_error(path, f"ends inside the gzip member starting at byte {start:,}: it is cut off", offset)
    return spans


def _read_span(path: str, start: int, end: int, chunk: int = READ_SIZE) -> Iterator[bytes]:
    with open_read(path) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(chunk, left))
            if not data:
                raise base_error(path, f"ends inside the gzip member at bytes {start:,}-{end:,}: it is cut off")
            left -= len(data)
            yield data


def _span_lines(path: str, member: BaseMember) -> Iterator[bytes]:
    """The NDJSON lines of one member, decompressed from its span (tar padding dropped).

    Read to the end, the span must hold exactly one gzip member whose CRC and length zlib checked
    (BaseError otherwise: the base changed after it was scanned, or is damaged).
    """
    d = gzip_decompressor()
    left = member.data_size
    pending = b""
    for data in _read_span(path, member.start, member.end):
        try:
            out = d.decompress(data)
        except DECOMPRESS_ERRORS as exc:
            raise base_error(
                path, f"has a corrupt gzip member at bytes {member.start:,}-{member.end:,} ({exc})"
            ) from None
        if left <= 0:
            continue
        if len(out) > left:
            out = out[:left]  # the tar padding
        left -= len(out)
        # each line is sliced once out of the chunk (no split list, no joined copies of the chunk)
        start = 0
        if pending:
            end = out.find(b"\n")
            if end < 0:
                pending += out
                continue
            yield pending + out[: end + 1]
            pending, start = b"", end + 1
        while (end := out.find(b"\n", start)) >= 0:
            yield out[start : end + 1]
            start = end + 1
        pending = out[start:]
    if not d.eof or d.unused_data:
        raise base_error(path, f"bytes {member.start:,}-{member.end:,} are no longer one whole gzip member: it changed")
    if pending:
        yield pending


def wikisnap_members(tarball: str) -> list[BaseMember] | None:
    """The members of a tarball written by wikisnap (header member, data member, …, end member).

    None when the tarball is not laid out that way (e.g. a WME tarball): callers fall back to
    the line-by-line rewrite.
    """
    spans = gzip_spans(tarball)
    if len(spans) < 3 or len(spans) % 2 == 0:
        return None
    if zlib.decompress(b"".join(_read_span(tarball, *spans[-1])), 31) != bytes(2 * tarfile.BLOCKSIZE):
        return None  # no end-of-archive member: not this layout, or cut off (the line reader tells)
    members = []
    for n in range((len(spans) - 1) // 2):
        (hs, he), (ds, de) = spans[2 * n], spans[2 * n + 1]
        header = zlib.decompress(b"".join(_read_span(tarball, hs, he)), 31)
        if len(header) != tarfile.BLOCKSIZE:
            return None
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
        except tarfile.TarError:
            return None
        probe = BaseMember(n, info.size, ds, de, 0)
        first = next(_span_lines(tarball, probe), b"")
        if not first:
            return None
        members.append(BaseMember(n, info.size, ds, de, line_head(first)[1]))
    return members


# -- one pass over the base: find the touched records and map the members ---------------------


class _NotWikisnapLayout(Exception):
    """The tarball is not laid out as wikisnap writes it (or ends between two members)."""


class _Damaged(Exception):
    """A gzip member that does not decompress (bad data or CRC) or is cut off, at a raw byte."""

    def __init__(self, problem: str, offset: int):
        super().__init__(problem)
        self.problem, self.offset = problem, offset


def _inflate_members(path: str, chunk: int = 1 << 20) -> Iterator[tuple[int, int, bytes | int]]:
    """The gzip members of `path` decompressed in one streaming pass, one chunk in memory.

    Yields `(member number, start byte, data)` for each decompressed chunk of a member and, when
    the member ends (its CRC and length checked by zlib), `(member number, end byte, CRC-32 of
    the member's raw bytes)` — what a later byte copy of the member is checked against.
    Raises `_Damaged` on corrupt data or a file that ends inside a member.
    """
    with open_read(path) as f:
        number, start, offset, raw_crc = 0, 0, 0, 0  # offset: raw bytes before `data`
        d = gzip_decompressor()
        data = f.read(chunk)
        while data:
            try:
                out = d.decompress(data)
            except DECOMPRESS_ERRORS as exc:
                raise _Damaged(f"corrupt gzip member starting at byte {start:,}: {exc}", offset) from None
            if out:
                yield number, start, out
            if d.eof:
                end = offset + len(data) - len(d.unused_data)
                raw_crc = zlib.crc32(data[: len(data) - len(d.unused_data)], raw_crc)
                data = d.unused_data or f.read(chunk)
                yield number, end, raw_crc
                number, start, offset, raw_crc = number + 1, end, end, 0
                d = gzip_decompressor()
                continue
            raw_crc = zlib.crc32(data, raw_crc)
            offset += len(data)
            data = f.read(chunk)
        if offset > start:
            raise _Damaged(f"ends inside the gzip member starting at byte {start:,}", offset)


@dataclass
class BaseScan:
    """What one pass over a base snapshot found: the records the diffs touch and its members."""

    hits: list[BaseHit]
    members: tuple[BaseMember, ...] | None  # None: not wikisnap's layout (planned the slow way)
    indexed: bool = False  # found through the Parquet index (`_scan_indexed`), not a full inflate


def scan_base(snapshot: BaseSnapshot, wanted: Wanted) -> BaseScan:
    """One pass over a base tarball: `find_in_base`'s hits, plus the member map `plan_members` needs.

    The only decompression of the base's untouched members and the first of its touched ones: every
    gzip member is inflated once (CRC and length checked), each NDJSON line's head is matched
    (`find_in_base`'s rules), and each data member's byte span, first page id, line count and
    newest date are recorded — so planning reads nothing again, and an untouched member is later
    copied as bytes with its counts from here. A tarball of another layout (a WME download) is
    read by `find_in_base` instead and gets no member map. BaseError as `iter_snapshot_lines`.

    A snapshot with Parquet shards and a published md5 takes `_scan_indexed` first: the same hits
    and map without inflating the members no record is wanted from; when its checks do not hold
    (another md5, another layout, shards that do not match), this full scan runs instead.
    """
    if snapshot.md5 and snapshot.parquet:
        try:
            return _scan_indexed(snapshot, wanted)
        except _NoIndex:
            pass  # the full scan finds what is wrong, or reads a base that is right but unindexed
    try:
        return _scan_wikisnap_layout(snapshot, wanted)
    except _NotWikisnapLayout:
        return BaseScan(list(find_in_base(snapshot, wanted)), None)


def _scan_wikisnap_layout(snapshot: BaseSnapshot, wanted: Wanted) -> BaseScan:
    """`scan_base` of a tarball in wikisnap's layout; `_NotWikisnapLayout` as soon as it is not.

    The layout: per tar member one gzip member holding its 512-byte header and one holding its
    data plus padding; last, one gzip member holding the two zero blocks that end the archive.
    """
    tarball = snapshot.tarball
    hits: list[BaseHit] = []
    members: list[BaseMember] = []
    number = 0  # lines of the whole tarball, for messages
    name: str | None = None  # the tar member being read
    head = b""  # bytes of a header (or end-of-archive) member
    closed = False  # the end-of-archive member was read
    size = padded = taken = 0  # the data member's size, with padding, and its bytes so far
    data_start, pending, first_id, records, max_date = 0, b"", -1, 0, ""

    def line_seen(line: bytes) -> None:
        nonlocal number, first_id, records, max_date
        number += 1
        page_id = _scan_line(snapshot, wanted, line, number, hits)
        first_id = page_id if first_id < 0 else first_id
        records += 1
        match = _DATE_KEY.search(line)
        max_date = max(max_date, match.group(1).decode() if match else "")

    try:
        for member, where, data in _inflate_members(tarball):
            if closed:
                raise _NotWikisnapLayout  # a member after the end-of-archive one
            if member % 2 == 0:  # a tar header, or the end-of-archive blocks
                if isinstance(data, bytes):
                    head += data
                    if len(head) > 2 * tarfile.BLOCKSIZE:
                        raise _NotWikisnapLayout
                elif head == bytes(2 * tarfile.BLOCKSIZE):
                    closed = True
                else:
                    info = _tar_info(head)
                    name, size, head = info.name, info.size, b""
                    padded, taken = size + (-size % tarfile.BLOCKSIZE), 0
                    data_start, pending, first_id, records, max_date = where, b"", -1, 0, ""
                continue
            if isinstance(data, bytes):  # the member's NDJSON data, then its tar padding
                before, taken = taken, taken + len(data)
                if taken > padded:
                    raise _NotWikisnapLayout
                lines = (pending + data[: max(0, size - before)]).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    line_seen(line + b"\n")
                continue
            if taken != padded:
                raise _NotWikisnapLayout
            if pending:  # a last line without its newline: kept as it is, like the line reader
                line_seen(pending)
                pending = b""
            if first_id < 0:
                raise _NotWikisnapLayout  # an empty member: planned the slow way, as before
            members.append(BaseMember(member // 2, size, data_start, where, first_id, records, max_date, data))
            name = None
    except _Damaged as exc:
        where = f"in member {name!r}" if name else "between members"
        problem = f"is cut off or corrupt {where}, after {number:,} complete line(s) ({exc.problem})"
        raise base_error(tarball, problem, exc.offset) from None
    except OSError as exc:
        raise base_error(tarball, f"cannot be read ({exc})") from None
    if not closed or not members:
        raise _NotWikisnapLayout  # cut between members, or empty: the line reader says which
    return BaseScan(hits, tuple(members))


def _tar_info(header: bytes) -> tarfile.TarInfo:
    """The regular-file tar header a header member holds; `_NotWikisnapLayout` for anything else."""
    if len(header) != tarfile.BLOCKSIZE:
        raise _NotWikisnapLayout
    try:
        info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    except tarfile.TarError:
        raise _NotWikisnapLayout from None
    if not info.isfile():
        raise _NotWikisnapLayout
    return info


def _scan_line(snapshot: BaseSnapshot, wanted: Wanted, line: bytes, number: int, hits: list[BaseHit]) -> int:
    """`find_in_base`'s test of one line (a hit is parsed and kept); returns its page id."""
    name, page_id = base_line_head(snapshot.tarball, line, number)
    hit = page_id in wanted.ids or name in wanted.names
    if not hit and wanted.redirect_names:
        hit = any(n in wanted.redirect_names for n in listed_redirects(line))
    if hit:
        hits.append(BaseHit(snapshot.dbname, snapshot.ns, page_id, json.loads(line)))
    return page_id


# -- the indexed scan: the base's own md5 and Parquet shards instead of a full inflate -----------


class _NoIndex(Exception):
    """The indexed scan cannot vouch for this base (another md5 or layout, shards that do not match)."""


# bytes kept back at the end of each chunk read: a header member (~100 bytes compressed) with
# the 8-byte trailer before it is checked only once it is whole in the buffer
_HOLD = 1 << 12
_CHUNK = 1 << 22
_HIT_READ = 1 << 20  # compressed bytes inflated at a time while looking for wanted records
# how every member of a wikisnap tarball starts (`gzip_member`, GzipMemberWriter): magic, deflate,
# no flags, mtime 0 — with ISA-L and with zlib alike
_GZIP_HEAD = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
_END_OF_ARCHIVE = bytes(2 * tarfile.BLOCKSIZE)


def _small_member(buf: bytes, at: int) -> tuple[bytes, int] | None:
    """The data of the small gzip member (a tar header or the end blocks) at `buf[at:]` and its
    compressed length, or None when no complete member of at most 1 KB of data starts there."""
    d = zlib.decompressobj(31)
    try:
        out = d.decompress(buf[at : at + _HOLD], 2 * tarfile.BLOCKSIZE + 1)
    except zlib.error:
        return None
    if not d.eof or len(out) > 2 * tarfile.BLOCKSIZE:
        return None
    return out, min(len(buf) - at, _HOLD) - len(d.unused_data)


def _header_at(buf: bytes, at: int, name: str) -> tuple[int, int] | None:
    """(data size, compressed length) of the header member of tar member `name` at `buf[at:]`."""
    found = _small_member(buf, at)
    if found is None or len(found[0]) != tarfile.BLOCKSIZE:
        return None
    try:
        info = tarfile.TarInfo.frombuf(found[0], "utf-8", "surrogateescape")
    except tarfile.TarError:
        return None
    return (info.size, found[1]) if info.isfile() and info.name == name else None


def _map_by_headers(path: str, sid: str, digest=None) -> list[tuple[int, int, int, int]]:
    """`(data size, start, end, CRC-32 of the raw bytes)` of each data member of a wikisnap tarball,
    found in one pass over the compressed bytes without inflating the data members.

    The layout is `assemble_tarball`'s: header member of `{sid}_0.ndjson`, its data member, header
    of `{sid}_1.ndjson`, …, end-of-archive member. A data member ends where the next header (or
    the end member) starts: a gzip magic preceded by the trailer's ISIZE of the padded size the
    header gave, where a gzip member holding exactly that next tar header (or the end blocks,
    ending the file) starts. `digest` (a hashlib object, when given) is fed every byte: the caller
    checks the md5. `_NoIndex` when the layout differs.
    """
    spans: list[tuple[int, int, int, int]] = []
    # one buffer reused for every read (fresh 4 MB objects cost more in page faults than the md5)
    buf = bytearray(_CHUNK + 2 * _HOLD)
    view = memoryview(buf)
    filled, off = 0, 0  # buf[:filled] holds the file's bytes [off, off + filled)
    at = 0  # where the next small member starts (header state), or where the search goes on
    searching, closed, n = False, False, 0
    size = start = crc = crc_at = 0  # the data member being searched: its size, start, CRC so far
    isize = b""
    with open_read(path) as f:
        while not closed:
            got = f.readinto(view[filled : filled + _CHUNK]) or 0
            eof = not got
            if digest is not None:
                digest.update(view[filled : filled + got])
            filled += got
            while True:
                safe = off + filled - (0 if eof else _HOLD)  # positions before this can be checked
                if not searching:
                    if at > safe or (at == safe and not eof):
                        break  # read on
                    header = _header_at(view[:filled], at - off, f"{sid}_{n}.ndjson")
                    if header is None:
                        end = _small_member(view[:filled], at - off)
                        if eof and n and end is not None and end[0] == _END_OF_ARCHIVE and at + end[1] == off + filled:
                            closed = True
                            break
                        raise _NoIndex  # not the next header, nor the end member ending the file
                    size, length = header
                    start = crc_at = at + length
                    crc = 0
                    isize = ((size + (-size % tarfile.BLOCKSIZE)) & 0xFFFFFFFF).to_bytes(4, "little")
                    searching = True
                    at = start + 18  # a gzip member has at least its 10-byte header and 8-byte trailer
                    continue
                hit = buf.find(_GZIP_HEAD, at - off, filled)
                while 0 <= hit < safe - off:
                    if buf[hit - 4 : hit] == isize and (
                        _header_at(view[:filled], hit, f"{sid}_{n + 1}.ndjson") is not None
                        or ((end := _small_member(view[:filled], hit)) is not None and end[0] == _END_OF_ARCHIVE)
                    ):
                        break
                    hit = buf.find(_GZIP_HEAD, hit + 1, filled)
                else:
                    if eof:
                        raise _NoIndex  # a data member without an end: cut off
                    at = max(at, safe)
                    break
                crc = zlib.crc32(view[crc_at - off : hit], crc)
                spans.append((size, start, off + hit, crc))
                n, at, searching = n + 1, off + hit, False
            if eof and not closed:
                raise _NoIndex
            # keep only what a later check needs (at most _HOLD + 4 bytes): the 4 ISIZE bytes
            # before the search point; a data member's bytes leave the buffer through its CRC
            keep = at - 4 if searching else at
            if searching:
                crc = zlib.crc32(view[crc_at - off : keep - off], crc)
                crc_at = keep
            tail = filled - (keep - off)
            buf[:tail] = bytes(view[keep - off : filled])  # (a copy: the two ranges may overlap)
            filled, off = tail, keep
    if not spans:
        raise _NoIndex
    return spans


def _md5_hex(path: str) -> str:
    """The base tarball's md5 (its own name: the thread beside the scan shows in profiles)."""
    return file_md5(path)[0]


def _is_local(path: str) -> bool:
    return local_path(path) is not None


def _first_line(path: str, start: int, end: int) -> bytes:
    """The first NDJSON line of the data member at bytes `start`-`end` (inflating only that far)."""
    d = gzip_decompressor()
    out = b""
    for data in _read_span(path, start, end, 1 << 16):
        try:
            out += d.decompress(data)
        except DECOMPRESS_ERRORS:
            raise _NoIndex from None
        if b"\n" in out or d.eof:
            break
    return out.split(b"\n", 1)[0]


def _shard_index(path: str, wanted: Wanted) -> tuple[int, int, list[int]]:
    """(rows, first page id, ids of the rows `find_in_base` would take) of one base Parquet shard.

    Its rule, on the shard's columns: the page id is wanted, the title is a wanted redirect
    target, or a wanted title is among the listed redirects. Only those columns are read.
    """
    columns = ["identifier", "name"] + (["redirects"] if wanted.redirect_names else [])
    with open_read_arrow(path) as f:
        table = pq.ParquetFile(f).read(columns=columns)
    if table.num_rows == 0:
        raise _NoIndex
    ids = table["identifier"].combine_chunks()
    mask = pc.is_in(ids, value_set=pa.array(sorted(wanted.ids), pa.int64()))
    targets = sorted(json.loads(name) for name in wanted.names)
    if targets:
        mask = pc.or_(mask, pc.is_in(table["name"].combine_chunks(), value_set=pa.array(targets, pa.string())))
    if wanted.redirect_names:
        lists = table["redirects"].combine_chunks()
        names = pc.struct_field(pc.list_flatten(lists), "name")
        listed = pc.is_in(names, value_set=pa.array(sorted(wanted.redirect_names), pa.string()))
        rows = pc.list_parent_indices(lists).filter(pc.fill_null(listed, False)).unique()
        mask = pc.or_(mask, pc.is_in(pa.array(range(table.num_rows), pa.int64()), value_set=rows.cast(pa.int64())))
    return table.num_rows, ids[0].as_py(), ids.filter(pc.fill_null(mask, False)).to_pylist()


def _scan_indexed(snapshot: BaseSnapshot, wanted: Wanted) -> BaseScan:
    """`scan_base` through the base's own index: its published md5 and Parquet shard n of member n.

    One pass over the compressed bytes maps the members (`_map_by_headers`, CRC-32 of each span
    for the copy, as the full scan) and the whole file's md5 must be the published one; the shards' id, title and redirect
    columns say which records the diffs touch (`find_in_base`'s rule) and the line counts; only a
    member holding such a record is inflated, and only up to its last one. Each member's first
    line is inflated to check it is its shard's first row. Same hits, in the same order, and the
    same map as the full scan; `_NoIndex` when any check fails (the caller then runs that scan).
    """
    # A local tarball's md5 is computed in a thread beside the map and the hits (hashlib works
    # without the GIL; the second read comes from the page cache); a remote one's in the map's pass.
    with ThreadPoolExecutor(1, thread_name_prefix="wikisnap-md5") as beside:
        local = _is_local(snapshot.tarball)
        digest = None if local else hashlib.md5()
        md5 = beside.submit(_md5_hex, snapshot.tarball) if local else None
        scan = _indexed_hits(snapshot, wanted, digest)
        if (md5.result() if md5 is not None else digest.hexdigest()) != snapshot.md5:
            raise _NoIndex  # not the bytes the base published (the full scan finds what changed)
    return scan


HIT_THREADS = 2  # members inflated at once for their hits (beside the base's md5 thread)


def _indexed_hits(snapshot: BaseSnapshot, wanted: Wanted, digest=None) -> BaseScan:
    """`_scan_indexed` but the md5 check (`digest` is fed the tarball's bytes when given)."""
    sid = snapshot_id(snapshot.dbname, snapshot.ns)
    shards = _parquet_shards(snapshot)
    spans = _map_by_headers(snapshot.tarball, sid, digest)
    if sorted(shards) != list(range(len(spans))):
        raise _NoIndex
    members: list[BaseMember] = []
    touched: list[tuple[BaseMember, list[int]]] = []
    for index, (size, start, end, crc) in enumerate(spans):
        rows, first_id, wanted_ids = _shard_index(shards[index], wanted)
        try:
            head = line_head(_first_line(snapshot.tarball, start, end))[1]
        except ValueError:
            raise _NoIndex from None
        if head != first_id:
            raise _NoIndex  # the shard is not this member's
        # records and newest date are left to the rewrite: with Parquet they come from the shard
        member = BaseMember(index, size, start, end, first_id, -1, None, crc)
        members.append(member)
        if wanted_ids:
            touched.append((member, wanted_ids))
    # Members are inflated side by side (the inflater works without the GIL), hits kept in
    # member order; an error (`_NoIndex`) comes out of `map` in that order too.
    with ThreadPoolExecutor(HIT_THREADS, thread_name_prefix="wikisnap-hits") as pool:
        found = pool.map(lambda item: list(_member_hits(snapshot, *item)), touched)
        hits = [hit for member_hits in found for hit in member_hits]
    return BaseScan(hits, tuple(members), indexed=True)


def _member_chunks(path: str, member: BaseMember) -> Iterator[bytes]:
    """The decompressed bytes of a data member from its start, inflated only as far as they are
    taken (1 MB of compressed bytes at a time); `_NoIndex` when they do not decompress."""
    d = gzip_decompressor()
    for data in _read_span(path, member.start, member.end, _HIT_READ):
        try:
            out = d.decompress(data)
        except DECOMPRESS_ERRORS:
            raise _NoIndex from None  # the full scan names the member and byte
        if out:
            yield out
        if d.eof:
            return


def _member_hits(snapshot: BaseSnapshot, member: BaseMember, ids: list[int]) -> Iterator[BaseHit]:
    """The records of `ids` (ascending, as the member's lines), parsed from their lines, inflating
    the member only up to the last one; `_NoIndex` when one of them is not there.

    Lines are not split: a wanted line is found by its id as the head writes it, then checked
    to be that line's head (`_HEAD`), so an equal nested identifier is passed over.
    """
    pending = iter(ids)
    want: int | None = next(pending)
    text, pos = b"", 0
    for out in _member_chunks(snapshot.tarball, member):
        text = text + out if text else out
        while want is not None:
            at = text.find(b',"identifier":%d,' % want, pos)
            if at < 0:
                break
            start, end = text.rfind(b"\n", 0, at) + 1, text.find(b"\n", at)
            if end < 0:
                break  # the line goes on in the next chunk
            match = _HEAD.match(text, start)
            if match is None or int(match.group(2)) != want:
                pos = at + 1  # a nested identifier: search on
                continue
            yield BaseHit(snapshot.dbname, snapshot.ns, want, json.loads(text[start : end + 1]))
            want, pos = next(pending, None), end + 1
        if want is None:
            return
        cut = text.rfind(b"\n") + 1  # keep only the unfinished last line
        text, pos = text[cut:], max(0, pos - cut)
    match = _HEAD.match(text)
    if want is not None and text and match is not None and int(match.group(2)) == want:
        # a last line without its newline: kept as it is, like the line reader
        yield BaseHit(snapshot.dbname, snapshot.ns, want, json.loads(text))
        want = next(pending, None)
    if want is not None:
        raise _NoIndex  # the shard lists a page this member does not hold


def _parquet_shards(snapshot: BaseSnapshot, paths: tuple[str, ...] | None = None) -> dict[int, str]:
    """Shard number → path of the snapshot's Parquet shards (or of `paths`, e.g. its text shards)."""
    shards = {}
    for path in snapshot.parquet if paths is None else paths:
        stem = path.rsplit("/", 1)[-1][: -len(".parquet")]
        number = stem.rsplit("_", 1)[-1]
        if number.isdigit():
            shards[int(number)] = path
    return shards


def _shard_rows_and_max_date(path: str) -> tuple[int, str]:
    """Rows and newest `date_modified` of a Parquet shard, from one read of its footer (row count
    and statistics; no data read)."""
    with open_read_arrow(path) as f:
        meta = pq.read_metadata(f)
    column = meta.schema.names.index("date_modified")
    best = None
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is not None and stats.has_min_max and (best is None or stats.max > best):
            best = stats.max
    if best is None:
        return meta.num_rows, ""
    return meta.num_rows, format_time(best if best.tzinfo else best.replace(tzinfo=UTC))


@dataclass(frozen=True)
class MemberTask:
    """One base member to copy or rewrite, with the changes that fall in it (diff-sized)."""

    snapshot: BaseSnapshot
    member: BaseMember
    shard: str | None  # the base's Parquet shard of this member
    touched: dict  # page id → record | None (remove); empty: copy the member as bytes
    text_shard: str | None = None  # the base's plain-text shard of this member, when it has one


def plan_members(
    snapshot: BaseSnapshot,
    changed: dict[int, dict | None],
    opts: WriteOptions,
    members: tuple[BaseMember, ...] | None = None,
) -> list[MemberTask] | None:
    """Assign every changed page to the base member whose id range holds it.

    `members`: the map `scan_base` made while finding the hits; without it (a snapshot no diff
    scanned) the tarball is read for one. None when the base is not laid out as wikisnap writes
    it (then `rewrite_snapshot` is used).
    """
    if members is None:
        members = wikisnap_members(snapshot.tarball)
    if members is None:
        return None
    parquet = "parquet" in opts.formats
    shards = _parquet_shards(snapshot)
    if parquet and sorted(shards) != list(range(len(members))):
        return None
    firsts = [m.first_id for m in members]
    by_member: dict[int, dict[int, dict | None]] = {}
    for page_id, rec in changed.items():
        index = max(0, bisect.bisect_right(firsts, page_id) - 1)
        by_member.setdefault(index, {})[page_id] = rec
    texts = _parquet_shards(snapshot, snapshot.text) if len(snapshot.text) == len(members) else {}
    return [
        MemberTask(snapshot, m, shards.get(m.index), by_member.get(m.index, {}), texts.get(m.index)) for m in members
    ]


def rewrite_member(task: MemberTask, opts: WriteOptions) -> tuple[MemberPart | None, dict[str, int]]:
    """Copy (untouched) or rewrite (touched) one member; returns its part (None if emptied) and counts.

    Keeps the base's member layout (member n of the base → member n of the output, so Parquet
    shard n follows it): a member no change falls in is copied (gzip bytes and Parquet shard,
    nothing decompressed; `MemberPart.copied` when the scan's CRC-32 and the shard's published md5
    vouch for it); a touched member is re-gzipped from its lines with the changes merged in
    (untouched lines byte for byte), and its Parquet shard — made in a thread beside that pass —
    is the base shard filtered by page id plus the new rows (Arrow compute, no JSON).
    """
    snapshot, member, touched = task.snapshot, task.member, task.touched
    dbname, ns = snapshot.dbname, snapshot.ns
    parquet = "parquet" in opts.formats
    counts = {f"written/{ns}": 0, f"copied/{ns}": 0, f"members_copied/{ns}": 0, f"members_rewritten/{ns}": 0}
    # a fresh attempt id per call: a retried task never writes into another attempt's files
    base = join(opts.temp_dir, "parts", snapshot_id(dbname, ns), f"{0:06d}-{member.index:04d}-{new_attempt()}")
    gz_path, pq_path = base + ".ndjson.gz", (base + ".parquet" if parquet else None)
    if not touched:
        raw_crc = 0
        with open_write(gz_path) as out:
            for data in _read_span(snapshot.tarball, member.start, member.end):
                raw_crc = zlib.crc32(data, raw_crc)
                out.write(data)
        if member.raw_crc is not None and raw_crc != member.raw_crc:
            # copied without decompression: these must be the very bytes the scan inflated
            raise base_error(
                snapshot.tarball, f"bytes {member.start:,}-{member.end:,} changed after they were read: it is damaged"
            )
        # whether the line count is vouched for (then the read-back only hashes the copy)
        vouched = member.raw_crc is not None
        if parquet:
            digest = hashlib.md5()
            with open_read(task.shard) as f, open_write(pq_path) as g:
                while chunk := f.read(READ_SIZE):
                    digest.update(chunk)
                    g.write(chunk)
            published = dict(zip(snapshot.parquet, snapshot.parquet_md5, strict=False)).get(task.shard)
            if published and digest.hexdigest() != published:
                raise base_error(
                    task.shard, f"has md5 {digest.hexdigest()} but the base's manifest says {published}: it is damaged"
                )
            vouched = vouched and bool(published)  # its row count is the member's line count
            records, max_date = _shard_rows_and_max_date(pq_path)
        elif member.records >= 0 and member.max_date is not None:
            records, max_date = member.records, member.max_date  # counted by scan_base
        else:
            records, max_date = 0, ""
            for line in _span_lines(snapshot.tarball, member):
                records += 1
                match = _DATE_KEY.search(line)
                max_date = max(max_date, match.group(1).decode() if match else "")
        counts[f"copied/{ns}"] += records
        counts[f"written/{ns}"] += records
        counts[f"members_copied/{ns}"] += 1
        text_path = member_text(task, opts, base + ".text.parquet", {})
        part = MemberPart(dbname, ns, 0, member.index, member.data_size, records, gz_path, pq_path, max_date)
        return replace(part, text_path=text_path, copied=vouched), counts
    counts[f"members_rewritten/{ns}"] += 1
    inserts = sorted((pid, rec) for pid, rec in touched.items() if rec is not None)
    with ThreadPoolExecutor(1, thread_name_prefix="wikisnap-shard") as beside:
        # The Parquet shard needs nothing from the line pass: it is merged in a thread beside it
        # (Arrow and the gzip codec work without the GIL), so a touched member takes about the
        # longer of the two in wall time, not their sum. Leaving the block waits for it.
        shard = beside.submit(_merge_shard_file, task.shard, pq_path, touched, inserts, opts) if parquet else None
        part, records = _rewrite_lines(task, opts, gz_path, base, inserts, counts)
        if shard is not None:
            shard.result()  # its error, if any, is this task's
    counts[f"written/{ns}"] += records
    return (part if records else None), counts


def _merge_shard_file(
    shard: str, path: str, touched: dict, inserts: list[tuple[int, dict]], opts: WriteOptions
) -> None:
    """The Parquet shard of a touched member: the base shard `merge_shard`ed, written to `path`.

    Row group by row group: each of the base's groups is read, loses its touched rows, gains the
    inserts that sort into it (`inserts_by_group`) and is written as one group, so the shard keeps
    the build's cuts (groups bounded in rows and bytes) and memory holds one group, not the
    member's shard (the whole-shard copy was a quarter of an update's page faults). A shard whose
    ids are not ascending (not wikisnap's), or an empty one, is read whole and written as one group.
    """
    with _retaining_pool():
        source = _shard_fragment(shard)
        ids = source.to_table(columns=["identifier"])["identifier"].to_pylist()
        if not ids or any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
            merged = merge_shard(source.to_table(schema=ARTICLE_SCHEMA), touched, inserts).combine_chunks()
            with open_write(path) as sink:
                pq.write_table(merged, sink, row_group_size=max(1, merged.num_rows), **PARQUET_SETTINGS)
            return
        groups = source.split_by_row_group()
        ends = itertools.accumulate(group.row_groups[0].num_rows for group in groups)
        lasts = [ids[end - 1] for end in ends]
        with open_write(path) as sink, pq.ParquetWriter(sink, ARTICLE_SCHEMA, **PARQUET_SETTINGS) as writer:
            for group, group_inserts in zip(groups, inserts_by_group(lasts, inserts), strict=True):
                rows = merge_shard(group.to_table(schema=ARTICLE_SCHEMA), touched, group_inserts)
                if rows.num_rows:
                    # one chunk per column: the bytes of the whole table made one chunk and cut here
                    writer.write_table(rows.combine_chunks(), row_group_size=rows.num_rows)
                del rows


def _shard_fragment(shard: str):
    """A base shard as an Arrow dataset fragment read with wikisnap's schema (a column an older
    shard lacks reads as nulls), row group by row group; a local file is read by Arrow itself."""
    local = local_path(shard)
    if local is not None:
        dataset = pads.dataset(local, format="parquet", schema=ARTICLE_SCHEMA)
    else:
        fs, p = fs_for(shard)
        dataset = pads.dataset(p, filesystem=fs, format="parquet", schema=ARTICLE_SCHEMA)
    return next(iter(dataset.get_fragments()))


def inserts_by_group(lasts: list[int], inserts: list[tuple[int, dict]]) -> list[list[tuple[int, dict]]]:
    """The sorted `inserts` split over row groups whose last page ids are `lasts` (ascending).

    An insert joins the group holding the first base row it sorts before or replaces (the first
    with an id >= its own); one past every row joins the last group. No groups: none.
    """
    if not lasts:
        return []
    split: list[list[tuple[int, dict]]] = [[] for _ in lasts]
    for item in inserts:
        split[min(bisect.bisect_left(lasts, item[0]), len(lasts) - 1)].append(item)
    return split


def _rewrite_lines(
    task: MemberTask, opts: WriteOptions, gz_path: str, base: str, inserts: list[tuple[int, dict]], counts: dict
) -> tuple[MemberPart, int]:
    """The line pass of a touched member: its lines re-gzipped with the changes merged in (and its
    text shard fed); returns its part and line count."""
    snapshot, member, touched = task.snapshot, task.member, task.touched
    dbname, ns = snapshot.dbname, snapshot.ns
    pq_path = base + ".parquet" if "parquet" in opts.formats else None
    writer = GzipMemberWriter(gz_path, opts.gzip_level)
    # The plain-text shard is fed in the same pass (the member is decompressed once).
    text = TextShard(base + ".text.parquet", dict(opts.sites).get(dbname), opts) if opts.wants_text(ns) else None
    records, max_date, i = 0, "", 0

    def put(line: bytes, date: str, record: dict | None) -> None:
        nonlocal records, max_date
        writer.write(line)
        records += 1
        max_date = max(max_date, date)
        if text is not None:
            text.add(record if record is not None else json.loads(line))

    for line in _span_lines(snapshot.tarball, member):
        _name, page_id = line_head(line)
        while i < len(inserts) and inserts[i][0] < page_id:
            put(to_wme_json_bytes(inserts[i][1]), inserts[i][1].get("date_modified", ""), inserts[i][1])
            i += 1
        if page_id in touched:
            continue
        match = _DATE_KEY.search(line)
        put(line, match.group(1).decode() if match else "", None)
        counts[f"copied/{ns}"] += 1
    for _pid, rec in inserts[i:]:
        put(to_wme_json_bytes(rec), rec.get("date_modified", ""), rec)
    text_path = text.close() if text is not None else None
    size = writer.size
    writer.write(tar_padding(size))
    writer.close()
    return MemberPart(dbname, ns, 0, member.index, size, records, gz_path, pq_path, max_date, text_path), records


@contextlib.contextmanager
def _retaining_pool() -> Iterator[None]:
    """Arrow allocations of a touched shard (read, sliced, combined, written: ~3x its records) go
    through jemalloc when pyarrow has it, then the pool is handed back (the builders keep theirs).

    The default pool (mimalloc) returns freed pages to the kernel at once and takes fresh ones for
    the next buffers: 0.3-0.5 s of system time for the first 100 MB shard of the x50 benchmark
    against ~0.15 s with jemalloc, which keeps them for reuse. The bytes written are the same.
    """
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        yield
        return
    default = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(default)


def merge_shard(table: pa.Table, touched: dict, inserts: list[tuple[int, dict]]) -> pa.Table:
    """Base Parquet rows without the touched pages' rows, plus the changed records, by page id.

    In: the rows (a shard or one of its row groups; ids ascending, as wikisnap writes them), the
    touched page ids and the sorted `(page id, record)` inserts that belong there. Out: the rows
    sliced around the touched ones, no copy and no sort (its columns come in pieces: the writer
    makes each group one chunk). Rows whose ids are not ascending are sorted instead.
    """
    ids = table["identifier"].to_pylist()
    new_rows = records_to_table([rec for _pid, rec in inserts]) if inserts else None
    if any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
        keep = pc.invert(pc.is_in(table["identifier"], pa.array(sorted(touched), pa.int64())))
        return pa.concat_tables([table.filter(keep)] + ([new_rows] if new_rows is not None else [])).sort_by(
            "identifier"
        )
    removed = [n for n, pid in enumerate(ids) if pid in touched]
    at = [bisect.bisect_left(ids, pid) for pid, _rec in inserts]  # each insert goes before row `at`
    pieces, start, r, k = [], 0, 0, 0
    for point in sorted(set(removed) | set(at)):
        if point > start:
            pieces.append(table.slice(start, point - start))
        start = point
        while k < len(at) and at[k] == point:
            pieces.append(new_rows.slice(k, 1))
            k += 1
        if r < len(removed) and removed[r] == point:
            start, r = point + 1, r + 1
    if start < len(ids):
        pieces.append(table.slice(start))
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def member_text(task: MemberTask, opts: WriteOptions, path: str, inserts: dict[int, dict]) -> str | None:
    """The plain-text shard of one output member (`--formats text`), or None when not wanted.

    An untouched member whose base has its text shard copies it as bytes; otherwise the shard is
    made from the member's records: the base lines (parsed) minus the touched pages, plus the
    changed records, in page-id order — the text of the updated revision. (`rewrite_member`
    feeds a touched member's shard in its own pass instead; this stays for tools and tests.)
    """
    if not opts.wants_text(task.snapshot.ns):
        return None
    if not task.touched and task.text_shard:
        with open_read(task.text_shard) as f, open_write(path) as g:
            while chunk := f.read(READ_SIZE):
                g.write(chunk)
        return path
    shard = TextShard(path, dict(opts.sites).get(task.snapshot.dbname), opts)
    pending = sorted(inserts.items())
    i = 0
    for line in _span_lines(task.snapshot.tarball, task.member):
        _name, page_id = line_head(line)
        while i < len(pending) and pending[i][0] < page_id:
            shard.add(pending[i][1])
            i += 1
        if page_id in task.touched:
            continue
        shard.add(json.loads(line))
    for _pid, rec in pending[i:]:
        shard.add(rec)
    return shard.close()


def rewrite_members(
    snapshot: BaseSnapshot, changed: dict[int, dict | None], opts: WriteOptions
) -> tuple[list[MemberPart], dict[str, int]] | None:
    """`plan_members` + `rewrite_member` for every member, in one process (tests, tools)."""
    tasks = plan_members(snapshot, changed, opts)
    if tasks is None:
        return None
    parts, counts = [], {}
    for task in tasks:
        part, member_counts = rewrite_member(task, opts)
        if part is not None:
            parts.append(part)
        for name, n in member_counts.items():
            counts[name] = counts.get(name, 0) + n
    return parts, counts


def copy_snapshot(snapshot: BaseSnapshot, out_dir: str) -> list[OutputFile]:
    """A snapshot no diff touches: its tarball, metadata and Parquet shards copied as bytes."""
    outputs = []
    sid = snapshot_id(snapshot.dbname, snapshot.ns)
    files = [("tarball", snapshot.tarball, join(out_dir, f"{sid}.tar.gz"))]
    if snapshot.metadata:
        files.append(("metadata", snapshot.metadata, join(out_dir, f"{sid}.json")))
    for path in snapshot.parquet:
        files.append(("parquet", path, join(out_dir, "parquet", sid, path.rsplit("/", 1)[-1])))
    for path in snapshot.text:
        files.append(("text", path, join(out_dir, "text", sid, path.rsplit("/", 1)[-1])))
    expected = None
    if snapshot.metadata:
        expected = json.loads(read_bytes(snapshot.metadata)).get("version")
    for kind, src, dst in files:
        with open_read(src) as f, open_write(dst) as g:
            while chunk := f.read(READ_SIZE):
                g.write(chunk)
        md5, size = file_md5(dst)
        if kind == "tarball" and expected and md5 != expected:
            # Copied as bytes, never decompressed: its metadata's md5 is the only check (and it
            # comes first, so nothing else of the snapshot has been copied).
            remove_tree(dst)
            raise base_error(src, f"has md5 {md5} but its metadata {snapshot.metadata} says {expected}: it is damaged")
        outputs.append(OutputFile(kind, snapshot.dbname, snapshot.ns, dst, size, md5, 0))
    return outputs


# -- PTransforms -----------------------------------------------------------------------------


class _FindInBaseFn(beam.DoFn):
    def setup(self) -> None:
        self.c_hits = Metrics.counter("wikisnap", "base_records_touched")
        self.c_untouched = Metrics.counter("wikisnap", "base_snapshots_untouched")
        self.c_mapped = Metrics.counter("wikisnap", "base_snapshots_mapped")
        self.c_indexed = Metrics.counter("wikisnap", "base_snapshots_indexed")
        self.c_other = Metrics.counter("wikisnap", "base_snapshots_other_layout")
        self.c_errors = Metrics.counter("wikisnap", "base_errors")

    def process(self, snapshot: BaseSnapshot, wanted: dict):
        w = wanted.get(snapshot.dbname)
        if w is None:
            self.c_untouched.inc()
            return
        try:
            scan = scan_base(snapshot, w)
        except BaseError as exc:
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(exc))
            return
        for hit in scan.hits:
            self.c_hits.inc()
            yield (hit.dbname, hit)
        if scan.members is None:
            self.c_other.inc()
        else:
            (self.c_indexed if scan.indexed else self.c_mapped).inc()
            yield beam.pvalue.TaggedOutput(TAG_LAYOUT, ((snapshot.dbname, snapshot.ns), scan.members))


class FindInBase(beam.PTransform):
    """(BaseSnapshot, `(db, [Change])`) → main `(db, BaseHit)`: the base records the diffs touch;
    layout: `((db, ns), (BaseMember, …))` of each scanned snapshot in wikisnap's layout (for
    RewriteSnapshots, so planning reads nothing again); errors: one message (str) per base
    tarball that cannot be read to the end. One pass over each snapshot of a changed wiki."""

    def __init__(self, by_wiki):
        super().__init__()
        self.by_wiki = by_wiki

    def expand(self, snapshots):
        wanted = self.by_wiki | "ListWantedRecords" >> beam.Map(lambda kv: (kv[0], wanted_for(kv[1])))
        return snapshots | "ScanBaseHeads" >> beam.ParDo(
            _FindInBaseFn(), wanted=beam.pvalue.AsDict(wanted)
        ).with_outputs(TAG_ERRORS, TAG_LAYOUT, main=TAG_HITS)


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


class _PlanRewriteFn(beam.DoFn):
    """Per (db, ns): copy an untouched snapshot as files, or split it into member tasks."""

    def __init__(self, opts: WriteOptions):
        self.opts = opts

    def setup(self) -> None:
        self.c_files = Metrics.counter("wikisnap", "snapshots_copied_as_files")
        self.c_tasks = Metrics.counter("wikisnap", "member_tasks")
        self.c_slow = Metrics.counter("wikisnap", "snapshots_rewritten_line_by_line")
        self.c_errors = Metrics.counter("wikisnap", "base_errors")

    def process(self, element, blocked=()):
        try:
            yield from self._plan(element, blocked)
        except BaseError as exc:
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(exc))

    def _plan(self, element, blocked):
        (db, ns), groups = element
        snapshots = list(groups["base"])
        changed = dict(groups["changed"])
        layouts = list(groups.get("layout", ()))
        snapshot = snapshots[0] if snapshots else None
        if snapshot is None and not changed:
            return
        if not changed and self.opts.snapshot_date is None:
            # (With --date the metadata changes, so the members are copied and reassembled.)
            if snapshot is not None and not blocked:  # a failed run copies nothing into --out
                self.c_files.inc()
                for out in copy_snapshot(snapshot, self.opts.out_dir):
                    yield beam.pvalue.TaggedOutput(TAG_COPIED, out)
            return
        members = layouts[0] if layouts else None  # FindInBase's map; None: read the tarball for one
        tasks = plan_members(snapshot, changed, self.opts, members) if snapshot is not None else None
        if tasks is not None:
            self.c_tasks.inc(len(tasks))
            yield from tasks
            return
        # No base, or not wikisnap's layout: one line-by-line pass, cut by size like build.
        self.c_slow.inc()
        parts, counts = rewrite_snapshot(db, ns, snapshot.tarball if snapshot else None, changed, self.opts)
        for part in parts:
            yield beam.pvalue.TaggedOutput(TAG_PARTS, ((db, ns), part))
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, name), n))


class _RewriteMemberFn(beam.DoFn):
    def __init__(self, opts: WriteOptions):
        self.opts = opts

    def setup(self) -> None:
        self.c_copied = Metrics.counter("wikisnap", "members_copied")
        self.c_rewritten = Metrics.counter("wikisnap", "members_rewritten")
        self.c_errors = Metrics.counter("wikisnap", "base_errors")

    def process(self, task: MemberTask):
        (self.c_rewritten if task.touched else self.c_copied).inc()
        try:
            part, counts = rewrite_member(task, self.opts)
        except BaseError as exc:
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(exc))
            return
        # after the member's files are written: a retry must write its own, and assembly take one copy
        faults.point(f"rewrite-member:{snapshot_id(task.snapshot.dbname, task.snapshot.ns)}-{task.member.index}")
        if part is not None:
            yield ((part.dbname, part.ns), part)
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((task.snapshot.dbname, name), n))


class RewriteSnapshots(beam.PTransform):
    """(BaseSnapshot, `((db, ns), (page_id, record|None))`) → dict(parts, copied, stats, errors).

    parts: `((db, ns), MemberPart)` for AssembleSnapshots; copied: OutputFiles of untouched
    snapshots; stats: `((db, counter), n)`; errors: one message (str) per unreadable base
    tarball. Members are rewritten in parallel (Reshuffle first). `blocked` (optional, small):
    errors known before the rewrite; when it holds any, untouched snapshots are not copied.
    `layouts` (optional): FindInBase's member maps, one small element per scanned snapshot;
    a snapshot without one is read for its map here.
    """

    def __init__(self, opts: WriteOptions, blocked=None, layouts=None):
        super().__init__()
        self.opts = opts
        self.blocked = blocked
        self.layouts = layouts

    def expand(self, pcolls):
        snapshots, changed = pcolls
        keyed = snapshots | "KeySnapshots" >> beam.Map(lambda s: ((s.dbname, s.ns), s))
        groups = {"base": keyed, "changed": changed}
        if self.layouts is not None:
            groups["layout"] = self.layouts
        planned = (
            groups
            | "GroupBySnapshot" >> beam.CoGroupByKey()
            | "PlanMembers"
            >> beam.ParDo(
                _PlanRewriteFn(self.opts),
                **({"blocked": beam.pvalue.AsList(self.blocked)} if self.blocked is not None else {}),
            ).with_outputs(TAG_COPIED, TAG_STATS, TAG_PARTS, TAG_ERRORS, main="tasks")
        )
        rewritten = (
            planned.tasks
            | "SpreadMembers" >> beam.Reshuffle()
            | "CopyOrRewriteMembers"
            >> beam.ParDo(_RewriteMemberFn(self.opts))
            .with_output_types(tuple[tuple[str, int], MemberPart])
            .with_outputs(TAG_STATS, TAG_ERRORS, main=TAG_PARTS)
        )
        parts = (
            (planned[TAG_PARTS], rewritten[TAG_PARTS])
            | "FlattenParts" >> beam.Flatten()
            | "TypeParts" >> beam.Map(lambda kv: kv).with_output_types(tuple[tuple[str, int], MemberPart])
        )
        stats = (planned[TAG_STATS], rewritten[TAG_STATS]) | "FlattenRewriteCounts" >> beam.Flatten()
        errors = (planned[TAG_ERRORS], rewritten[TAG_ERRORS]) | "FlattenBaseErrors" >> beam.Flatten()
        return {TAG_PARTS: parts, TAG_COPIED: planned[TAG_COPIED], TAG_STATS: stats, TAG_ERRORS: errors}
