"""Reading diffs: adds-changes XML, WME hourly batch tarballs and EventStreams → `Change`s.

A diff file is recognised by its content, never its name (`classify_diff`):

| kind     | what | becomes |
|---|---|---|
| `xml`    | `pages-meta-hist-incr.xml(.bz2/.gz)` — several full-text revisions per page | one `revision` Change per page: its newest revision, parsed once with `page_to_article` |
| `batch`  | WME hourly batch `.tar.gz` (NDJSON `update`/`delete` records; wikisnap's or WME's) | `revision` (the record as is) or `delete` |
| `events` | JSON lines of `mediawiki.page_change.v1` and `mediawiki.recentchange` | `revision` (when the event carries the text), `delete`, `undelete`, `move`, `visibility` |

Everything here is pure (no Beam) except `ReadDiffs` at the bottom. A line or page that cannot
become a Change is a `DeadLetter` (reason + raw input); an expected skip (a namespace outside the
snapshot, a recentchange edit without text) is a count. Nothing is dropped silently.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.configs import license_for
from wikisnap.schemas.serialize import format_time, parse_time_ns, to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.dumpfiles import DumpError, describe_input, open_dump, open_stream
from wikisnap.transforms.formats.dumpreader import PageFailure, RawPage, ReadStats, Revision, iter_pages
from wikisnap.transforms.formats.fs import CountingReader
from wikisnap.transforms.formats.tarball import TarLines
from wikisnap.transforms.parse.article import page_to_article, redirect_of, redirect_target
from wikisnap.transforms.read import DeadLetter

TAG_CHANGES = "changes"
TAG_DEADLETTERS = "deadletters"
TAG_STATS = "stats"
TAG_ERRORS = "errors"
# What to do about a diff that cannot be read to the end (the tail of every such message).
FIX_DIFF = "re-download or repair it, or give --allow-truncated to apply its complete part"
# Errors a stream of compressed bytes raises when it is cut off or damaged.
STREAM_ERRORS = (EOFError, OSError, zlib.error)

# Order of kinds at the same time and revision: an edit before the move it precedes, a delete last.
KIND_RANK = {"revision": 0, "move": 1, "visibility": 2, "undelete": 3, "delete": 4}
UNKNOWN_WIKI = "unknown"


@dataclass(frozen=True)
class Change:
    """One thing that happened to one page, normalised from whatever diff said it.

    `kind` ∈ revision, delete, undelete, move, visibility. `time` is Go RFC 3339 UTC (the revision
    time for revisions, the event time otherwise). `record` is the full Article of a revision (or
    of an undelete that carries its text); None for a redirect page (`redirect_to` says where it
    points) or a page outside the snapshot's namespaces (`in_scope` False).
    """

    dbname: str
    page_id: int
    kind: str
    time: str
    rev_id: int
    ns: int
    title: str
    source: str
    record: dict | None = None
    redirect_to: str | None = None  # normalised full title of the target
    in_scope: bool = True
    old_title: str | None = None  # move: the title before
    left_redirect: str | None = None  # move: the redirect page created at the old title
    visibility: tuple[bool, bool, bool] | None = None  # (text, editor, comment) visible?
    version: dict = field(default_factory=dict)  # move/visibility: the revision's metadata

    def sort_key(self) -> tuple:
        return (parse_time_ns(self.time), self.rev_id, KIND_RANK[self.kind], self.source)


class DiffError(Exception):
    """A diff file that cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class DiffInputError:
    """A diff file that could not be read to the end: one user-facing line (file, byte, cause, fix).

    The Changes read before the error have been emitted; the run fails unless --allow-truncated.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return self.message


# -- recognising a diff --------------------------------------------------------------------


def classify_diff(path: str) -> str:
    """`'xml'`, `'batch'` or `'events'` from the first decompressed bytes; DiffError otherwise."""
    try:
        stream = open_any(path)
    except DumpError as exc:
        raise DiffError(str(exc)) from None
    try:
        head = stream.read(1024)
    except (OSError, EOFError) as exc:
        raise DiffError(f"{path}: cannot be decompressed: {exc}") from None
    finally:
        stream.close()
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "batch"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "xml"
    if text.startswith(b"{"):
        return "events"
    raise DiffError(
        f"{path}: not a diff wikisnap knows (first bytes {head[:8].hex(' ') or 'none'}); give adds-changes "
        "XML, WME hourly batch tarballs or EventStreams JSON lines"
    )


def open_any(path: str):
    """Open `path` for reading decompressed bytes: bz2 and gzip by magic, anything else as is.

    (dumpreader's `open_dump` refuses what does not look like XML; diffs may be JSON lines.)
    """
    stream, _counter, _compression = open_dump_raw(path)
    return stream


def open_dump_raw(path: str):
    """`(decompressed stream, raw byte counter with .count, compression)` of a diff file."""
    try:
        return open_dump(path, read_ahead=False)
    except DumpError as exc:
        if exc.kind != "compression" or "unknown compression" not in exc.problem:
            raise
    counter = CountingReader(open_stream(path))
    return io.BufferedReader(counter), counter, "plain"


# -- time ----------------------------------------------------------------------------------


def normalize_time(value) -> str:
    """An event time (ISO 8601 string or epoch seconds) → Go RFC 3339 UTC; ValueError if neither."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return format_time(datetime.fromtimestamp(value, UTC))
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a time: {value!r}")
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Python < 3.11 quirks aside, fromisoformat takes at most 6 fraction digits
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        text = f"{head}.{(digits + '000000')[:6]}{tz}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return format_time(dt)


# -- XML (adds-changes) ----------------------------------------------------------------------


@dataclass(frozen=True)
class DiffContext:
    """What the readers need to know about the base: its wikis and snapshot namespaces."""

    sites: dict  # dbname → SiteInfo
    namespaces: frozenset[int]
    max_page_bytes: int = 32 << 20


def change_from_page(page: RawPage, site: SiteInfo, ctx: DiffContext, source: str, kind: str = "revision") -> Change:
    """A RawPage (newest revision) → a `revision` Change; ValueError when no article can be built."""
    rev = page.revision
    if rev is None:
        raise ValueError("page has no <revision>")
    base = {"dbname": site.dbname, "page_id": page.id, "time": rev.timestamp, "rev_id": rev.id, "source": source}
    target = redirect_target(page)
    if target is not None:
        ref = redirect_of(page, target, site)
        return Change(kind=kind, ns=page.ns, title=page.title, redirect_to=ref.target if ref else "", **base)
    if page.ns not in ctx.namespaces:
        return Change(kind=kind, ns=page.ns, title=page.title, in_scope=False, **base)
    if rev.text is not None and len(rev.text) > ctx.max_page_bytes:
        raise ValueError(f"page text of {len(rev.text):,} characters exceeds --max-page-bytes {ctx.max_page_bytes:,}")
    record = page_to_article(page, site, license_for(site.dbname, page.ns))
    return Change(kind=kind, ns=page.ns, title=page.title, record=record, **base)


def changes_from_xml(path: str, ctx: DiffContext, site: SiteInfo) -> Iterator[Change | DeadLetter]:
    """Stream an adds-changes dump: one Change per page (its newest revision) or a DeadLetter."""
    source = describe_input(path)
    stats = ReadStats(path)
    for item in iter_pages(path, site, stats):
        if isinstance(item, PageFailure):
            yield DeadLetter(site.dbname, source, item.reason, item.page_id, item.title, item.raw_xml)
            continue
        try:
            yield change_from_page(item, site, ctx, source)
        except Exception as exc:  # noqa: BLE001 - one bad page must never stop a file
            text = item.revision.text if item.revision is not None else ""
            reason = f"cannot build the article: {type(exc).__name__}: {exc}"
            yield DeadLetter(site.dbname, source, reason, item.id, item.title, text or "")
    if stats.error is not None:
        raise stats.error  # ReadDiffs turns it into a DiffInputError; the pages above are kept


# -- WME hourly batches ----------------------------------------------------------------------


def change_from_batch_record(record: dict, ctx: DiffContext, source: str) -> Change:
    """A WME `update` or `delete` record → Change; ValueError when it lacks what a Change needs."""
    try:
        db = record["is_part_of"]["identifier"]
        page_id = int(record["identifier"])
        ns = int(record.get("namespace", {}).get("identifier", 0))
        event = record.get("event") or {}
        rev_id = int((record.get("version") or {}).get("identifier") or 0)
        title = record["name"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"record lacks is_part_of/identifier/name: {exc!r}") from None
    if db not in ctx.sites:
        raise LookupError(db)
    kind = {"delete": "delete", "visibility-change": "visibility"}.get(event.get("type"), "revision")
    time = normalize_time(event.get("date_published") or event.get("date_created") or record.get("date_modified"))
    base = {"dbname": db, "page_id": page_id, "time": time, "rev_id": rev_id, "ns": ns, "title": title}
    if kind == "delete":
        return Change(kind="delete", source=source, **base)
    if kind == "visibility":
        seen = record.get("visibility") or {}
        flags = (bool(seen.get("text")), bool(seen.get("editor")), bool(seen.get("comment")))
        return Change(kind="visibility", source=source, visibility=flags, **base)
    if ns not in ctx.namespaces:
        return Change(kind="revision", source=source, in_scope=False, **base)
    time = normalize_time(record.get("date_modified") or time)
    to_wme_json_bytes(record)  # fields wikisnap cannot write must fail here, not in the writer
    return Change(kind="revision", source=source, record=record, **{**base, "time": time})


def iter_batch_lines(path: str) -> Iterator[bytes]:
    """The NDJSON lines of every member of a (gzip'd) tarball, in member order.

    DumpError (naming the member and the byte) when the tarball is cut off or corrupt, also
    when it stops cleanly between two members (no end-of-archive blocks).
    """
    stream, counter, _compression = open_dump_raw(path)
    lines = TarLines(stream)
    try:
        yield from lines
    except (*STREAM_ERRORS, tarfile.TarError, ValueError) as exc:
        where = f"in member {lines.member!r}" if lines.member else "between members"
        raise DumpError(
            path,
            f"batch tarball is cut off or corrupt {where}, after {lines.lines:,} complete line(s) ({exc}); {FIX_DIFF}",
            offset=counter.count,
            kind="truncated",
        ) from None
    finally:
        stream.close()


# -- EventStreams ----------------------------------------------------------------------------


def _editor(user: dict | None) -> dict:
    """page_change `performer`/`editor` → WME editor, the way `page_to_article` builds it."""
    if not user:
        return {}
    user_id = user.get("user_id") or 0
    name = user.get("user_text") or ""
    if not user_id and name:
        return {"name": name, "is_anonymous": True}
    return {"identifier": user_id, "name": name}


def _version_meta(revision: dict) -> dict:
    meta = {
        "identifier": int(revision["rev_id"]),
        "comment": revision.get("comment") or "",
        "is_minor_edit": bool(revision.get("is_minor_edit")),
        "parent": revision.get("rev_parent_id") or 0,
        "rev_dt": normalize_time(revision.get("rev_dt")),
    }
    editor = _editor(revision.get("editor"))
    if editor:
        meta["editor"] = editor
    return meta


def change_from_page_change(event: dict, ctx: DiffContext, source: str) -> Change | tuple[str, str]:
    """A `mediawiki.page_change.v1` event → Change, or `(db, counter)` of a counted skip.

    ValueError when required fields are missing; LookupError(wiki) for a wiki not in the base.
    """
    db = event.get("wiki_id")
    if not isinstance(db, str) or not db:
        raise ValueError("event has no wiki_id")
    if db not in ctx.sites:
        raise LookupError(db)
    site = ctx.sites[db]
    kind = event["page_change_kind"]
    page = event["page"]
    revision = event["revision"]
    page_id = int(page["page_id"])
    title = page["page_title"].replace("_", " ")
    ns = page.get("namespace_id")
    ns = int(ns) if ns is not None else site.split_title(title)[0]
    time = normalize_time(event["dt"])
    rev_id = int(revision["rev_id"])
    common = {"dbname": db, "page_id": page_id, "time": time, "rev_id": rev_id, "ns": ns, "title": title}
    if kind == "delete":
        return Change(kind="delete", source=source, **common)
    if kind == "visibility_change":
        flags = (
            revision.get("is_content_visible", True) is not False,
            revision.get("is_editor_visible", True) is not False,
            revision.get("is_comment_visible", True) is not False,
        )
        return Change(kind="visibility", source=source, visibility=flags, version=_version_meta(revision), **common)
    if kind == "move":
        prior = (event.get("prior_state") or {}).get("page") or {}
        left = event.get("created_redirect_page") or {}
        return Change(
            kind="move",
            source=source,
            old_title=(prior.get("page_title") or "").replace("_", " ") or None,
            left_redirect=(left.get("page_title") or "").replace("_", " ") or None,
            in_scope=ns in ctx.namespaces,
            version=_version_meta(revision),
            **common,
        )
    if kind not in ("create", "edit", "undelete"):
        raise ValueError(f"unknown page_change_kind {kind!r}")
    main = ((revision.get("content_slots") or {}).get("main")) or {}
    body = main.get("content_body")
    if body is None and kind == "undelete":
        # Restorable only when the same diffs deleted it (the fold keeps the deleted record).
        return Change(kind="undelete", source=source, in_scope=ns in ctx.namespaces, **common)
    if body is None:
        return (db, f"skipped/page_change_{kind}_without_text")
    redirect = None
    if page.get("is_redirect"):
        link = page.get("redirect_page_link") or {}
        redirect = (link.get("page_title") or "").replace("_", " ")
    editor = revision.get("editor") or {}
    raw = RawPage(
        title=title,
        ns=ns,
        id=page_id,
        redirect=redirect,
        revision=Revision(
            id=rev_id,
            parent_id=revision.get("rev_parent_id") or None,
            timestamp=normalize_time(revision.get("rev_dt") or event["dt"]),
            editor_id=editor.get("user_id") or None,
            editor_name=editor.get("user_text") if editor.get("user_id") else None,
            editor_ip=editor.get("user_text") if not editor.get("user_id") else None,
            minor=bool(revision.get("is_minor_edit")),
            comment=revision.get("comment"),
            model=main.get("content_model") or "wikitext",
            format=main.get("content_format") or "text/x-wiki",
            text=body if revision.get("is_content_visible", True) is not False else None,
        ),
    )
    change = change_from_page(raw, site, ctx, source, kind="undelete" if kind == "undelete" else "revision")
    # The event time orders events; the record keeps its revision time.
    return Change(**{**change.__dict__, "time": time})


def change_from_recentchange(event: dict, ctx: DiffContext) -> tuple[str, str]:
    """recentchange events carry neither page ids nor text: a counted skip, named by its type.

    (A record cannot be brought up to a revision whose text is unknown, and a log event without
    a page id cannot be matched safely; page_change events carry both.)
    """
    db = event.get("wiki")
    if not isinstance(db, str) or db not in ctx.sites:
        raise LookupError(db or "")
    kind = event.get("log_type") or event.get("type") or "unknown"
    return (db, f"skipped/recentchange_{kind}_without_page_id_or_text")


def _parse_line(raw: bytes, where: str, what: str, convert, ctx: DiffContext) -> Change | DeadLetter | tuple[str, str]:
    """One JSON line → `convert(object, ctx, where)`, or a DeadLetter keeping the line and the reason.

    `convert` raises LookupError(wiki) for a wiki that is not in the base, ValueError & co. for
    anything it cannot read.
    """
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("a JSON line that is not an object")
        return convert(obj, ctx, where)
    except LookupError as exc:
        wiki = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        return DeadLetter(UNKNOWN_WIKI, where, f"{what} for wiki {wiki!r}, which is not in the base", None, None, text)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return DeadLetter(UNKNOWN_WIKI, where, f"unparseable {what}: {type(exc).__name__}: {exc}", None, None, text)


def _change_from_event(event: dict, ctx: DiffContext, where: str):
    """Dispatch one EventStreams (or batch) object on its schema."""
    schema = str(event.get("$schema", ""))
    if "page/change" in schema or "page_change_kind" in event:
        return change_from_page_change(event, ctx, where)
    if "recentchange" in schema or "wiki" in event and "type" in event:
        return change_from_recentchange(event, ctx)
    if "identifier" in event and "is_part_of" in event:
        return change_from_batch_record(event, ctx, where)
    raise ValueError(f"unknown event schema {schema!r}")


def changes_from_events(path: str, ctx: DiffContext) -> Iterator[Change | DeadLetter | tuple[str, str]]:
    """JSON lines → Changes, DeadLetters (bad lines, unknown wikis) and `(db, counter)` skips.

    DumpError when the file is cut off: its compressed data ends early or is damaged, or its
    last line lacks the newline and is no JSON (a line cut in half is not a bad event).
    """
    source = describe_input(path)
    stream, counter, compression = open_dump_raw(path)
    number = 0
    try:
        for number, raw in enumerate(stream, 1):  # noqa: B007 - `number` names the error's line
            if not raw.strip():
                continue
            where = f"{source}:{number}"
            item = _parse_line(raw, where, "event", _change_from_event, ctx)
            if isinstance(item, DeadLetter) and not raw.endswith(b"\n") and _not_json(raw):
                raise DumpError(
                    path,
                    f"ends inside line {number:,} (no newline, not JSON): the file is cut off; {FIX_DIFF}",
                    offset=counter.count,
                    kind="truncated",
                )
            yield item
    except STREAM_ERRORS as exc:
        raise DumpError(
            path,
            f"{compression} data is cut off or corrupt after line {number:,} ({exc}); {FIX_DIFF}",
            offset=counter.count,
            kind="truncated",
        ) from None
    finally:
        stream.close()


def _not_json(raw: bytes) -> bool:
    """Whether `raw` does not parse as JSON at all (a last line without newline: cut in half)."""
    try:
        json.loads(raw)
    except ValueError:
        return True
    return False


def changes_from_batch(path: str, ctx: DiffContext) -> Iterator[Change | DeadLetter]:
    """A batch tarball's records → Changes and DeadLetters; DumpError when it is cut off."""
    source = describe_input(path)
    for number, raw in enumerate(iter_batch_lines(path), 1):
        if not raw.strip():
            continue
        where = f"{source}:{number}"
        yield _parse_line(raw, where, "record", change_from_batch_record, ctx)


# -- the PTransform ------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffUnit:
    """One diff file, classified by the launcher; `site` is set for XML diffs."""

    path: str
    kind: str  # xml, batch, events
    site: SiteInfo | None = None


def read_diff(unit: DiffUnit, ctx: DiffContext) -> Iterator[Change | DeadLetter | tuple[str, str]]:
    """One diff file → Changes, DeadLetters and `(db, counter)` skips, whatever its kind."""
    if unit.kind == "xml":
        if unit.site is None or unit.site.dbname not in ctx.sites:
            db = unit.site.dbname if unit.site else ""
            yield DeadLetter(
                UNKNOWN_WIKI, describe_input(unit.path), f"dump of wiki {db!r}, not in the base", None, None, ""
            )
            return
        yield from changes_from_xml(unit.path, ctx, unit.site)
    elif unit.kind == "batch":
        yield from changes_from_batch(unit.path, ctx)
    else:
        yield from changes_from_events(unit.path, ctx)


def diff_error(unit: DiffUnit, exc: Exception) -> DiffInputError:
    """The one-line message of a diff that stopped being readable (a DumpError names file and byte)."""
    if isinstance(exc, DumpError):
        text = str(exc)
        return DiffInputError(unit.path, text if FIX_DIFF in text else f"{text}; {FIX_DIFF}")
    return DiffInputError(
        unit.path, f"{unit.path}: cannot be read to the end ({type(exc).__name__}: {exc}); {FIX_DIFF}"
    )


class _ReadDiffFn(beam.DoFn):
    def __init__(self, ctx: DiffContext):
        self.ctx = ctx

    def setup(self) -> None:
        self.c_changes = Metrics.counter("wikisnap", "diff_changes")
        self.c_dead = Metrics.counter("wikisnap", "diff_dead_lettered")
        self.c_skipped = Metrics.counter("wikisnap", "diff_skipped")
        self.c_errors = Metrics.counter("wikisnap", "diff_input_errors")

    def process(self, unit: DiffUnit):
        counts: dict[tuple[str, str], int] = {}
        try:
            for item in read_diff(unit, self.ctx):
                if isinstance(item, Change):
                    self.c_changes.inc()
                    counts[(item.dbname, "diff_changes")] = counts.get((item.dbname, "diff_changes"), 0) + 1
                    yield ((item.dbname, item.page_id), item)
                elif isinstance(item, DeadLetter):
                    self.c_dead.inc()
                    key = (item.dbname, "dead_lettered")
                    counts[key] = counts.get(key, 0) + 1
                    yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, item)
                else:
                    self.c_skipped.inc()
                    counts[item] = counts.get(item, 0) + 1
        except Exception as exc:  # noqa: BLE001 - a bad diff is reported with its name, never a traceback
            # What was read before the error stays emitted: --allow-truncated applies it.
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, diff_error(unit, exc))
        for key, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, (key, n))


class ReadDiffs(beam.PTransform):
    """PCollection[DiffUnit] → DoOutputsTuple(main `((db, page_id), Change)`, deadletters, stats, errors).

    errors: a `DiffInputError` per diff that could not be read to the end.
    """

    def __init__(self, ctx: DiffContext):
        super().__init__()
        self.ctx = ctx

    def expand(self, units):
        return (
            units
            | "SpreadDiffs" >> beam.Reshuffle()
            | "ParseDiffs"
            >> beam.ParDo(_ReadDiffFn(self.ctx)).with_outputs(TAG_DEADLETTERS, TAG_STATS, TAG_ERRORS, main=TAG_CHANGES)
        )
