"""Record inputs: WME snapshot tarballs / NDJSON records and Parsoid HTML documents → spill runs.

An input is a file (plain, `.gz` or `.bz2`), a tar of such files (`{db}_namespace_{ns}.tar.gz`,
`…-ENTERPRISE-HTML.json.tar.gz`) or a folder of them. What each piece is, is told by content:

- a JSON line with an `identifier` is a **WME record**: kept as it is (every key and value; the
  writer serialises it back byte for byte) and spilled like a record parsed from XML, so it is
  written, enriched and deduplicated (newest revision wins) with the XML records of its wiki.
  Fields it lacks that its `article_body.html` supports (categories, templates, and the abstract
  of namespace 0) are derived from that HTML (`derive_missing`);
- an HTML document (a file, a tar member, or a JSON line's `html` field) is **Parsoid HTML**: it
  names its page and revision in its `<head>` (`html.identify`); its derived fields are computed
  here, in parallel, and spilled with the body to *HTML runs* of the same (db, ns, bucket) as the
  records — the bucket writer merge-joins them by page id (`HtmlJoin`), so bodies never go
  through a shuffle and memory stays one frame per run;
- anything else (a line that is not JSON, a record without `identifier`, HTML that is not
  Parsoid's, truncated, or with a broken `data-mw`) is a dead letter with its raw input.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import logging
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace

import apache_beam as beam
import fsspec
from apache_beam.metrics import Metrics

from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.schemas.siteinfo import SiteInfo, dbname_from_base
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import counter, per_namespace
from wikisnap.transforms.formats.dumpfiles import describe_input, open_head, open_raw
from wikisnap.transforms.formats.spill import SpillBuffer, merge_runs
from wikisnap.transforms.parse.html import HtmlError, derive, identify, looks_like_html
from wikisnap.transforms.read import (
    TAG_DEADLETTERS,
    TAG_EDITORS,
    TAG_RUNS,
    TAG_STATS,
    TAG_TITLES,
    TAG_UNITS,
    DeadLetter,
    UnitReport,
)

log = logging.getLogger(__name__)

TAG_HTML = "html"
# Key of a WME record's original line in its spilled dict: the writer writes that line itself
# when nothing changed the record (older WME records order some keys differently from the
# current struct order the serialiser writes, and their bytes must survive).
WME_LINE = "\x00wme_line"
_PRISTINE_KEYS = (
    "redirects",
    "main_entity",
    "protection",
    "categories",
    "templates",
    "abstract",
    "article_body",
    # fields from the extra SQL tables (the writer replaces `version` rather than changing it in place)
    "image",
    "additional_entities",
    "version",
)
HTML_FIELDS = ("categories", "templates", "abstract")
_TAR_MAGIC_AT = 257
_MAX_LINE = 256 << 20


class RecordInputError(ValueError):
    """An input that cannot be read as records or HTML (the message names the file)."""


@dataclass(frozen=True)
class RecordInput:
    """One WME/HTML input of a build: a file or a folder. `dbname`/`lang` of its first record."""

    path: str
    name: str  # stable, unique: names its spill files
    kind: str  # "wme" or "html": what its first piece is
    dbname: str | None = None
    lang: str | None = None
    base: str | None = None  # the wiki's main-page URL, from the first record's `url`
    files: tuple[str, ...] = ()  # a share of a folder's files (`split_folder`); () = all of `path`


@dataclass(frozen=True)
class RecordOptions:
    namespaces: frozenset[int]
    temp_dir: str
    bucket_span: int
    spill_bytes: int
    derive_missing: bool = True
    editors: bool = False  # emit `editors` keys like ReadDumps (user_groups.sql is joined on them)


# -- opening --------------------------------------------------------------------------------------


def _decompressed(raw) -> io.BufferedIOBase:
    head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    return raw


def _open(path: str, head: bool = False) -> io.BufferedReader:
    """Decompressed bytes of `path`; `head=True` for a look at its start only (remote files then
    by the small cached range reads the launcher's other header checks share, not a whole GET)."""
    raw = open_head(path) if head else open_raw(path)
    return io.BufferedReader(_decompressed(io.BufferedReader(raw, 1 << 16)), 1 << 16)


def _is_dir(path: str) -> bool:
    if path.startswith(("http://", "https://")):
        return False  # an HTTP "folder" would be a GET of the whole file to look for links
    try:
        fs, fs_path = fsspec.core.url_to_fs(path)
        return bool(fs.isdir(fs_path))
    except Exception:  # noqa: BLE001 - not a folder as far as we can tell
        return False


def _folder_files(path: str) -> list[str]:
    fs, fs_path = fsspec.core.url_to_fs(path)
    protocol = path.split("://", 1)[0] + "://" if "://" in path else ""
    return sorted(protocol + p if protocol else p for p in fs.find(fs_path))


def _classify_head(head: bytes) -> tuple[str, dict | None] | None:
    """("html", None) / ("wme", first record) / ("json", first object) / None from a piece's first bytes."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if looks_like_html(text[:64].decode("utf-8", "replace")):
        return ("html", None)
    if text.startswith(b"{"):
        line = text.split(b"\n", 1)[0]
        try:
            obj = json.loads(line)
        except ValueError:
            return ("json", None)  # a first line longer than the head, or broken: the reader decides
        if isinstance(obj, dict) and "identifier" in obj:
            return ("wme", obj)
        if isinstance(obj, dict) and isinstance(obj.get("html"), str):
            return ("html", None)
        return ("json", obj)
    return None


def sniff_record_input(path: str) -> RecordInput | None:
    """A RecordInput when `path` holds WME records or Parsoid HTML; None when it is something else.

    RecordInputError when it is JSON lines that are neither (e.g. events), so the user learns why.
    """
    # The first pieces decide: a bad first line (a dead letter later) must not hide the records.
    json_seen: dict | None = None
    found = None
    try:
        for number, (_label, head) in enumerate(iter_pieces(path, head=True)):
            found = _classify_head(head)
            if found is None or found[0] != "json":
                break
            json_seen = found[1] if found[1] is not None else json_seen or {}
            found = None
            if number >= 9:
                break
    except Exception:  # noqa: BLE001 - unreadable here: the XML checks will explain it
        return None
    if found is None:
        if json_seen is not None:
            raise RecordInputError(
                f"{path}: JSON lines that are neither WME records (no `identifier`) nor HTML documents "
                f"(no `html`); first keys: {', '.join(list(json_seen)[:8]) or 'none'}"
            )
        return None
    kind, obj = found
    dbname = lang = None
    if obj is not None:
        part_of = obj.get("is_part_of") or {}
        language = obj.get("in_language") or {}
        dbname = part_of.get("identifier") if isinstance(part_of, dict) else None
        # a name that cannot be a path part names no wiki: its lines become dead letters
        dbname = dbname if layout.is_dbname(dbname) else None
        lang = language.get("identifier") if isinstance(language, dict) else None
    base = None
    url = obj.get("url") if obj is not None else None
    if isinstance(url, str) and "/wiki/" in url:
        base = url.split("/wiki/", 1)[0] + "/wiki/Main_Page"
    name = "r" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]
    return RecordInput(path=path, name=name, kind=kind, dbname=dbname, lang=lang, base=base)


def split_folder(inp: RecordInput, files_per_unit: int = 64) -> list[RecordInput]:
    """A folder input as several units of `files_per_unit` files each (read in parallel); a file as itself."""
    if not _is_dir(inp.path):
        return [inp]
    files = _folder_files(inp.path)
    chunks = [tuple(files[i : i + files_per_unit]) for i in range(0, len(files), files_per_unit)]
    if len(chunks) <= 1:
        return [inp]
    return [replace(inp, name=f"{inp.name}-{n:05d}", files=chunk) for n, chunk in enumerate(chunks)]


def iter_pieces(path: str, files: tuple[str, ...] = (), head: bool = False) -> Iterator[tuple[str, bytes]]:
    """(source label, bytes) of every line or HTML document of an input, in a stable order.

    A folder is read file by file (sorted; only `files` when given), a tar member by member; a
    piece that starts like an HTML document is one document, anything else is NDJSON (one piece
    per non-empty line).
    """
    files = list(files) or (_folder_files(path) if _is_dir(path) else [path])
    for file in files:
        label = describe_input(file) if file != path else describe_input(path)
        with _open(file, head) as stream:
            head = stream.peek(512)[:512]
            if head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + 5] == b"ustar":
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        if not member.isfile():
                            continue
                        data = tar.extractfile(member)
                        if data is not None:
                            yield from _pieces_of(f"{label}:{member.name}", io.BufferedReader(data, 1 << 16))
            else:
                yield from _pieces_of(label, stream)


def _pieces_of(label: str, stream: io.BufferedReader) -> Iterator[tuple[str, bytes]]:
    head = stream.peek(64)[:64]
    if looks_like_html(head.decode("utf-8", "replace")):
        yield label, stream.read()
        return
    number = 0
    while True:
        line = stream.readline(_MAX_LINE + 1)
        if not line:
            return
        number += 1
        if len(line) > _MAX_LINE:
            rest = line
            while rest and not rest.endswith(b"\n"):  # skip the rest of an oversized line
                rest = stream.readline(1 << 20)
            yield f"{label}#{number}", line  # the reader dead-letters it as too long
            continue
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield f"{label}#{number}", line


# -- reading --------------------------------------------------------------------------------------


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def record_key(record: dict) -> tuple[str, int, int, int]:
    """(db, ns, page id, revision) of a WME record; ValueError naming what is missing."""
    page_id = _int(record.get("identifier"))
    if page_id is None:
        raise ValueError("no integer `identifier` (page id)")
    part_of = record.get("is_part_of")
    db = part_of.get("identifier") if isinstance(part_of, dict) else None
    if not isinstance(db, str) or not db:
        raise ValueError("no `is_part_of.identifier` (wiki)")
    layout.check_dbname(db)  # UnsafeName, a ValueError: the line is a dead letter
    namespace = record.get("namespace")
    ns = _int(namespace.get("identifier")) if isinstance(namespace, dict) else None
    version = record.get("version")
    rev = _int(version.get("identifier")) if isinstance(version, dict) else None
    return db, ns or 0, page_id, rev or 0


def complete_record(record: dict, ns: int) -> tuple[list[str], str | None]:
    """Derive the HTML fields a WME record lacks from its `article_body.html`, in place.

    Returns (fields derived, problem or None). Abstracts are WME's for namespace 0 only.
    """
    body = record.get("article_body")
    html = body.get("html") if isinstance(body, dict) else None
    wanted = [f for f in HTML_FIELDS if not record.get(f) and (f != "abstract" or ns == 0)]
    if not isinstance(html, str) or not html or not wanted:
        return [], None
    try:
        derived = derive(html, with_abstract="abstract" in wanted)
    except HtmlError as exc:
        return [], str(exc)
    added = [f for f in wanted if derived.get(f)]
    for f in added:
        record[f] = derived[f]
    return added, None


def html_item(text: str, namespaces: frozenset[int]) -> tuple[tuple[str, int, int, int], dict]:
    """A Parsoid document → ((db, ns, page id, rev), {html, title, derived fields}); HtmlError."""
    ident = identify(text)
    db = dbname_from_base(ident.base_url)
    if db is None or not layout.is_dbname(db):
        raise HtmlError(f"cannot tell the wiki of {ident.base_url} (not a Wikimedia project URL)")
    # Parsoid before HTML 2.x writes no mw:pageNamespace: the title's prefix, by canonical names
    ns = ident.ns if ident.ns is not None else SiteInfo(dbname=db).split_title(ident.title)[0]
    item = {"article_body": {"html": text}, "title": ident.title, "rev": ident.rev_id}
    if ns in namespaces:
        try:
            item.update(derive(text, with_abstract=ns == 0))
        except HtmlError as exc:
            raise HtmlError(str(exc), ident.base_url) from None
    return (db, ns, ident.page_id, ident.rev_id), item


class ReadRecordsFn(beam.DoFn):
    """RecordInput → tagged outputs like ReadParseSpillFn: record runs, HTML runs, titles,
    dead letters, counts `((db, name), n)` and one UnitReport."""

    def __init__(self, options: RecordOptions):
        self.options = options

    def setup(self) -> None:
        self.c_records = Metrics.counter("wikisnap", "wme_records_read")
        self.c_html = Metrics.counter("wikisnap", "html_documents_read")
        self.c_dead = Metrics.counter("wikisnap", "dead_lettered")

    def process(self, inp: RecordInput):
        opts = self.options
        records = SpillBuffer(opts.temp_dir, inp.name, opts.bucket_span, opts.spill_bytes)
        htmls = SpillBuffer(layout.html_spill_dir(opts.temp_dir), inp.name, opts.bucket_span, opts.spill_bytes)
        counts: dict[tuple[str, str], int] = {}
        fallback_db = inp.dbname or "unknown"
        pieces = 0
        bytes_read = 0
        error = None

        def count(db: str, name: str, n: int = 1) -> None:
            counts[(db, name)] = counts.get((db, name), 0) + n

        def dead(db: str, source: str, reason: str, raw: bytes, page_id=None, title=None, html=False):
            self.c_dead.inc()
            count(db, "html/dead_lettered" if html else "dead_lettered")
            if not html:
                count(db, "pages_read")
            text = raw.decode("utf-8", "replace")
            return beam.pvalue.TaggedOutput(TAG_DEADLETTERS, DeadLetter(db, source, reason, page_id, title, text))

        try:
            for source, raw in iter_pieces(inp.path, inp.files):
                pieces += 1
                bytes_read += len(raw)
                if len(raw) > _MAX_LINE:
                    yield dead(fallback_db, source, f"line longer than {_MAX_LINE:,} bytes", raw)
                    continue
                head = raw[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
                if head.startswith(b"{"):
                    try:
                        obj = json.loads(raw)
                    except ValueError as exc:
                        yield dead(fallback_db, source, f"not JSON: {exc}", raw)
                        continue
                    if isinstance(obj, dict) and "identifier" not in obj and isinstance(obj.get("html"), str):
                        yield from self._html(obj["html"].encode("utf-8"), source, fallback_db, htmls, count, dead)
                        continue
                    if not isinstance(obj, dict):
                        yield dead(fallback_db, source, "a JSON line that is not an object", raw)
                        continue
                    yield from self._record(obj, raw, source, fallback_db, records, count, dead)
                elif looks_like_html(head.decode("utf-8", "replace")):
                    yield from self._html(raw, source, fallback_db, htmls, count, dead)
                else:
                    yield dead(fallback_db, source, "neither a JSON line nor an HTML document", raw)
        except (OSError, EOFError, tarfile.TarError, ValueError) as exc:
            error = f"{inp.path}: cannot be read to the end ({type(exc).__name__}: {exc}); {pieces:,} pieces read"
            log.error("%s", error)
        for run in records.flush():
            yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
        for run in htmls.flush():
            yield beam.pvalue.TaggedOutput(TAG_HTML, run)
        for key, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, (key, n))
        yield beam.pvalue.TaggedOutput(
            TAG_UNITS,
            UnitReport(
                path=inp.path,
                dbname=inp.dbname or "",
                compression="records",
                bytes_read=bytes_read,
                size=None,
                pages=pieces,
                md5="",
                sha1="",
                error=error,
                error_kind="truncated" if error else None,
            ),
        )

    def _record(self, record: dict, raw: bytes, source: str, fallback_db: str, spill, count, dead):
        opts = self.options
        try:
            db, ns, page_id, rev = record_key(record)
        except ValueError as exc:
            yield dead(fallback_db, source, f"not a WME record: {exc}", raw)
            return
        self.c_records.inc()
        name = record.get("name") if isinstance(record.get("name"), str) else None
        if ns not in opts.namespaces:
            count(db, "pages_read")
            count(db, counter("pages", ns, "skipped"))
            return
        added, problem = complete_record(record, ns) if opts.derive_missing else ([], None)
        if problem:
            count(db, "html/derive_failed")
            log.warning("%s: page %s: fields not derived from its HTML: %s", source, page_id, problem)
        try:
            to_wme_json_bytes(record)  # a key WME's struct lacks: refuse here, not in the writer
        except ValueError as exc:
            yield dead(db, source, f"cannot serialise the record: {exc}", raw, page_id, name)
            return
        count(db, "pages_read")
        count(db, "wme_records")
        count(db, counter("records", ns, "parsed"))
        for f in HTML_FIELDS:
            if f in added:
                count(db, f"fields/{f}/html")
            elif record.get(f):
                count(db, f"fields/{f}/wme")
        # None: a WME record changed by derivation (the writer serialises it; it still counts as WME)
        record[WME_LINE] = None if added else raw + b"\n"
        for run in spill.add(db, ns, page_id, rev, record):
            yield beam.pvalue.TaggedOutput(TAG_RUNS, run)
        if name:
            yield beam.pvalue.TaggedOutput(TAG_TITLES, ((db, name), ("A", ns, page_id)))
        editor = (record.get("version") or {}).get("editor") or {}
        if opts.editors and isinstance(editor.get("identifier"), int) and editor["identifier"] > 0:
            yield beam.pvalue.TaggedOutput(TAG_EDITORS, ((db, editor["identifier"]), (ns, page_id)))

    def _html(self, raw: bytes, source: str, fallback_db: str, spill, count, dead):
        self.c_html.inc()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield dead(fallback_db, source, f"HTML is not UTF-8: {exc}", raw, html=True)
            return
        try:
            (db, ns, page_id, rev), item = html_item(text, self.options.namespaces)
        except HtmlError as exc:
            db = (dbname_from_base(exc.base_url) if exc.base_url else None) or fallback_db
            yield dead(db, source, str(exc), raw, html=True)
            return
        count(db, "html/read")
        if ns not in self.options.namespaces:
            count(db, counter("html", ns, "skipped"))
            return
        for run in spill.add(db, ns, page_id, rev, item):
            yield beam.pvalue.TaggedOutput(TAG_HTML, run)


class ReadRecordInputs(beam.PTransform):
    """RecordInput → DoOutputsTuple: runs, html, titles, deadletters, stats, units."""

    def __init__(self, options: RecordOptions):
        super().__init__()
        self.options = options

    def expand(self, inputs):
        return (
            inputs
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadRecordsAndHtml"
            >> beam.ParDo(ReadRecordsFn(self.options)).with_outputs(
                TAG_RUNS, TAG_HTML, TAG_TITLES, TAG_DEADLETTERS, TAG_STATS, TAG_UNITS, TAG_EDITORS
            )
        )


# -- joining HTML to records in the bucket writer -------------------------------------------------


class HtmlJoin:
    """Merge-join of a bucket's HTML runs with its records, both in page-id order.

    `attach(page_id, rev_id, record)` is called for each record the writer keeps (newest
    revision of a page): HTML of the same page and revision sets `article_body.html` and replaces
    categories, templates and abstract (HTML wins; an empty HTML-derived field removes the
    wikitext one, as WME would publish none); HTML of another revision is counted `html/stale`.
    HTML of a page without a record is `html/orphan` and a dead letter (`finish`).
    """

    def __init__(self, dbname: str, html_paths: list[str], counts: dict[str, int], letters: list, consume=False):
        self.dbname = dbname
        self.items = merge_runs(html_paths, consume=consume) if html_paths else iter(())
        self.counts = counts
        self.letters = letters
        self.next = next(self.items, None)

    def _add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _orphan(self, page_id: int, item: dict) -> None:
        self._add("html/orphan")
        reason = f"Parsoid HTML of page {page_id} revision {item['rev']}, but no record of that page in the XML inputs"
        html = item["article_body"]["html"]
        self.letters.append(DeadLetter(self.dbname, "html", reason, page_id, item.get("title"), html))

    def attach(self, page_id: int, rev_id: int, record: dict, from_wme: bool = False) -> None:
        while self.next is not None and self.next[0] < page_id:
            self._orphan(self.next[0], self.next[2])
            self.next = next(self.items, None)
        used = False
        while self.next is not None and self.next[0] == page_id:
            _pid, rev, item = self.next
            self.next = next(self.items, None)
            if rev == rev_id and not used:
                used = True
                attach_html(record, item)
                self._add("html/used")
            else:
                self._add("html/stale")
        if used or not from_wme:  # a WME record's own fields were counted when it was read
            source = "html" if used else "wikitext"
            for f in HTML_FIELDS:
                if record.get(f):
                    self._add(f"fields/{f}/{source}")

    def finish(self) -> None:
        while self.next is not None:
            self._orphan(self.next[0], self.next[2])
            self.next = next(self.items, None)


def attach_html(record: dict, item: dict) -> None:
    """A Parsoid document's item (`html_item`) → the record of the same page and revision, in place:
    `article_body.html` set, categories/templates/abstract replaced by the HTML's (an empty one
    removes the wikitext one, as WME would publish none)."""
    body = dict(record.get("article_body") or {})
    body["html"] = item["article_body"]["html"]
    record["article_body"] = body
    for f in HTML_FIELDS:
        if item.get(f):
            record[f] = item[f]
        else:
            record.pop(f, None)


def take_wme_line(record: dict) -> tuple[bool, bytes | None, tuple]:
    """Pop a record's WME marker: (from WME, its original line or None, the values writing may change)."""
    if WME_LINE not in record:
        return False, None, ()
    raw = record.pop(WME_LINE)
    return True, raw, tuple(record.get(k) for k in _PRISTINE_KEYS) if raw is not None else ()


def wme_line_if_unchanged(record: dict, raw: bytes | None, before: tuple) -> bytes | None:
    """The original line when redirects, enrichment and HTML left the record as it came."""
    if raw is None or tuple(record.get(k) for k in _PRISTINE_KEYS) != before:
        return None
    return raw


def reconcile_html(counts: dict[str, int]) -> str | None:
    """A problem when the HTML documents of a wiki are not each used, stale, orphaned or skipped."""
    read = counts.get("html/read", 0)
    accounted = counts.get("html/used", 0) + counts.get("html/stale", 0) + counts.get("html/orphan", 0)
    accounted += sum(per_namespace(counts, "html", "skipped").values())
    if read != accounted:
        return f"{read:,} HTML documents read but {accounted:,} used, stale, orphaned or skipped"
    return None


__all__ = [
    "HTML_FIELDS",
    "TAG_HTML",
    "WME_LINE",
    "HtmlJoin",
    "attach_html",
    "ReadRecordInputs",
    "RecordInput",
    "RecordInputError",
    "RecordOptions",
    "complete_record",
    "html_item",
    "iter_pieces",
    "reconcile_html",
    "record_key",
    "sniff_record_input",
    "split_folder",
    "take_wme_line",
    "wme_line_if_unchanged",
]
