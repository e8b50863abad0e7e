"""Reading MediaWiki XML dumps as values: the siteinfo, pages with their current revision, histories.

Pure functions and generators, no Beam: `read_siteinfo` reads only the header; `iter_pages` streams
`RawPage`s with bounded memory (each `<page>` element is freed once it has been turned into a
value) and reports a truncated or corrupt file as a `DumpError` that names the file, the byte
offset and the last complete page; `iter_history` streams each page's revision times from stub
histories. Files are opened by `dumpfiles`, bz2 block ranges by `bz2blocks`.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from wikisnap.schemas.siteinfo import Namespace, SiteInfo, dbname_from_base
from wikisnap.transforms.formats.bz2blocks import FIRST_BLOCK_BIT, BlockError, BlockRangeReader
from wikisnap.transforms.formats.dumpfiles import _READ_CHUNK, DumpError, _local, open_dump
from wikisnap.transforms.formats.layout import DBNAME_RULE, is_dbname


@dataclass
class Revision:
    """The current revision of a page, as the dump gives it."""

    id: int
    parent_id: int | None
    timestamp: str
    editor_id: int | None = None
    editor_name: str | None = None
    editor_ip: str | None = None
    minor: bool = False
    comment: str | None = None
    model: str = "wikitext"
    format: str = "text/x-wiki"
    text: str | None = None
    sha1: str | None = None


@dataclass
class RawPage:
    """One `<page>` with its last `<revision>` (pages-articles dumps carry exactly one)."""

    title: str
    ns: int
    id: int
    redirect: str | None
    revision: Revision | None
    revisions_seen: int = 1


@dataclass
class PageFailure:
    """A page the reader could not turn into a `RawPage`; keeps the raw XML for the dead letter."""

    reason: str
    raw_xml: str
    page_id: int | None = None
    title: str | None = None


@dataclass
class ReadStats:
    """What reading one file took and saw; filled in as the file is read."""

    path: str
    compression: str = ""
    bytes_read: int = 0
    size: int | None = None
    pages: int = 0
    md5: str = ""
    sha1: str = ""
    error: DumpError | None = None
    last_page: tuple[int, str] | None = None
    extra: dict = field(default_factory=dict)


def siteinfo_from_element(root: etree._Element, siteinfo: etree._Element | None, path: str) -> SiteInfo:
    """Build a SiteInfo from the `<mediawiki>` root and its `<siteinfo>` element."""
    if siteinfo is None:
        raise DumpError(
            path,
            "has no <siteinfo> header, so the wiki (db name, language, namespaces) is unknown; "
            "give a dump with its header, or --siteinfo-from another dump of the same wiki",
            kind="no-siteinfo",
        )
    values: dict[str, str] = {}
    namespaces: list[Namespace] = []
    for child in siteinfo:
        name = _local(child.tag) if isinstance(child.tag, str) else ""
        if name == "namespaces":
            for ns in child:
                if not isinstance(ns.tag, str):
                    continue
                try:
                    key = int(ns.get("key", ""))
                except ValueError:
                    raise DumpError(path, f"<namespace key={ns.get('key')!r}> is not a number") from None
                namespaces.append(
                    Namespace(key=key, name=(ns.text or "").strip(), case=ns.get("case") or "first-letter")
                )
        elif name:
            values[name] = (child.text or "").strip()
    # Exports before 0.4 carry no <dbname>: a Wikimedia <base> URL still tells the wiki.
    dbname = values.get("dbname", "") or dbname_from_base(values.get("base", "")) or ""
    if not dbname:
        raise DumpError(
            path,
            "<siteinfo> has no <dbname> and its <base> is not a Wikimedia project URL; "
            "wikisnap names its outputs after the db name",
            kind="no-siteinfo",
        )
    if not is_dbname(dbname):
        # it names every output file: refused before a byte is written (see layout.check_dbname)
        raise DumpError(path, f"<dbname> {dbname[:80]!r} is not a wiki db name ({DBNAME_RULE})", kind="bad-dbname")
    lang = root.get("{http://www.w3.org/XML/1998/namespace}lang") or ""
    return SiteInfo(
        dbname=dbname,
        sitename=values.get("sitename", ""),
        base=values.get("base", ""),
        lang=lang,
        case=values.get("case", "first-letter") or "first-letter",
        generator=values.get("generator", ""),
        schema_version=root.get("version", ""),
        namespaces=tuple(namespaces),
    )


def check_no_doctype(path: str, root: etree._Element) -> None:
    """DumpError when the document declares a DTD (`<!DOCTYPE …>`).

    MediaWiki's exports never carry one. An external DTD is never fetched (no network, no file
    read on a dump's say-so), so an entity it would define (`&ext;` in a text) would be dropped
    by the parser together with the rest of that text: silent loss. Such a file is refused.
    """
    doctype = root.getroottree().docinfo.doctype
    if doctype:
        raise DumpError(
            path,
            f"declares a DTD ({doctype[:200]}): MediaWiki dumps carry none, and its entities would not be "
            "read (wikisnap never loads a DTD); remove the DOCTYPE line",
        )


def read_siteinfo(path: str) -> SiteInfo:
    """Read only the `<siteinfo>` header of a dump (a few KB of decompression)."""
    stream, hasher, _ = open_dump(path, read_ahead=False, head=True)
    root = None
    try:
        for event, elem in etree.iterparse(stream, events=("start", "end"), huge_tree=True):
            if event == "start":
                if root is None:
                    root = elem
                    if _local(elem.tag) != "mediawiki":
                        raise DumpError(path, f"is XML but not a MediaWiki dump (root element <{_local(elem.tag)}>)")
                    check_no_doctype(path, elem)
                elif _local(elem.tag) == "page":
                    break
                continue
            if _local(elem.tag) == "siteinfo":
                return siteinfo_from_element(root, elem, path)
    except etree.XMLSyntaxError as exc:
        raise DumpError(path, f"is not well-formed XML before any page: {exc}", offset=hasher.count) from None
    except (EOFError, OSError, zlib.error) as exc:
        raise DumpError(path, f"cannot be decompressed: {exc}", offset=hasher.count, kind="corrupt") from None
    finally:
        stream.close()
    if root is None:
        raise DumpError(path, "contains no XML elements")
    return siteinfo_from_element(root, None, path)


# -- pages ---------------------------------------------------------------------------------


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text else None


def _revision_from_element(rev: etree._Element) -> Revision:
    values: dict[str, object] = {}
    for child in rev:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = tag[tag.rfind("}") + 1 :]
        if name == "contributor":
            if child.get("deleted"):
                continue
            for c in child:
                if not isinstance(c.tag, str):
                    continue
                cname = c.tag[c.tag.rfind("}") + 1 :]
                values["c_" + cname] = c.text
        elif name == "minor":
            values["minor"] = True
        elif name == "text":
            values["text"] = None if child.get("deleted") else (child.text or "")
        elif name == "comment":
            values["comment"] = None if child.get("deleted") else child.text
        elif name == "content":
            # export-0.11 multi-slot form: <content><role>main</role><model/><format/><text/></content>
            role = None
            for c in child:
                if isinstance(c.tag, str):
                    cname = c.tag[c.tag.rfind("}") + 1 :]
                    if cname == "role":
                        role = c.text
                    elif role in (None, "main") and cname in ("model", "format"):
                        values[cname] = c.text
                    elif role in (None, "main") and cname == "text":
                        values["text"] = None if c.get("deleted") else (c.text or "")
        else:
            values[name] = child.text
    rev_id = _int(values.get("id"))  # type: ignore[arg-type]
    if rev_id is None:
        raise ValueError("<revision> has no <id>")
    timestamp = (values.get("timestamp") or "").strip()  # type: ignore[union-attr]
    if not timestamp:
        raise ValueError(f"revision {rev_id} has no <timestamp>")
    editor_id = _int(values.get("c_id"))  # type: ignore[arg-type]
    return Revision(
        id=rev_id,
        parent_id=_int(values.get("parentid")),  # type: ignore[arg-type]
        timestamp=timestamp,
        editor_id=editor_id,
        editor_name=values.get("c_username"),  # type: ignore[arg-type]
        editor_ip=values.get("c_ip"),  # type: ignore[arg-type]
        minor=bool(values.get("minor")),
        comment=values.get("comment"),  # type: ignore[arg-type]
        model=(values.get("model") or "wikitext"),  # type: ignore[arg-type]
        format=(values.get("format") or "text/x-wiki"),  # type: ignore[arg-type]
        text=values.get("text"),  # type: ignore[arg-type]
        sha1=values.get("sha1"),  # type: ignore[arg-type]
    )


def page_from_element(page: etree._Element, site: SiteInfo) -> RawPage:
    """Turn a `<page>` element into a RawPage (the last revision wins); ValueError when malformed."""
    title = None
    ns = None
    page_id = None
    redirect = None
    revision = None
    count = 0
    for child in page:
        tag = child.tag
        if not isinstance(tag, str):
            continue
        name = tag[tag.rfind("}") + 1 :]
        if name == "revision":
            count += 1
            candidate = _revision_from_element(child)
            if revision is None or candidate.id > revision.id:
                revision = candidate
        elif name == "title":
            title = child.text
        elif name == "ns":
            ns = _int(child.text)
        elif name == "id":
            page_id = _int(child.text)
        elif name == "redirect":
            redirect = child.get("title")
            if redirect is None:  # export-0.3 style <redirect/> without a target
                redirect = ""
    if not title:
        raise ValueError("<page> has no <title>")
    if page_id is None:
        raise ValueError(f"page {title!r} has no <id>")
    if ns is None:
        # Exports before 0.6 carry no <ns>: derive it from the title's prefix.
        ns = site.split_title(title)[0]
    return RawPage(title=title, ns=ns, id=page_id, redirect=redirect, revision=revision, revisions_seen=count)


def _open_pages(
    path: str,
    stats: ReadStats,
    byte_range: tuple[int, int] | None,
    bz2_threads: int = 0,
    blocks: tuple[int, int] | None = None,
):
    """Open a dump for a page loop: `(stream, hasher, compression, base)`, or None with `stats.error`.

    `base` is the file offset the stream starts at (errors name offsets in the file, not the range).
    """
    base = byte_range[0] if byte_range else 0
    try:
        if blocks is not None:
            base = blocks[0] // 8
            stream, hasher, compression = open_blocks(path, *blocks, bz2_threads=bz2_threads)
        else:
            stream, hasher, compression = open_dump(path, byte_range=byte_range, bz2_threads=bz2_threads)
    except DumpError as exc:
        stats.error = exc
        return None
    except OSError as exc:  # a file that vanished or a mirror that stopped answering since launch
        stats.error = DumpError(path, f"cannot be read: {exc}", offset=base, kind="missing")
        return None
    stats.compression = compression
    if byte_range is not None:
        # A multistream range holds bare <page>s (the header stream is elsewhere): give them a
        # root. The last range ends with the dump's own </mediawiki>, which ends parsing early.
        stream = _Concat([b"<mediawiki>", stream, b"</mediawiki>"])
    return stream, hasher, compression, base


def _page_done(stats: ReadStats, count: int, progress, next_report: int) -> int:
    """After a page: bytes read so far into `stats`, `progress` about once per MB; the next report mark."""
    stats.bytes_read = count
    if progress is not None and count >= next_report:
        next_report = count + _READ_CHUNK
        progress(stats)
    return next_report


def iter_pages(
    path: str,
    site: SiteInfo,
    stats: ReadStats,
    *,
    progress=None,
    byte_range: tuple[int, int] | None = None,
    bz2_threads: int = 0,
    blocks: tuple[int, int] | None = None,
) -> Iterator[RawPage | PageFailure]:
    """Stream the pages of one dump file, of the bz2 streams in `byte_range` of a multistream dump,
    or of the pages owned by the bz2 blocks at bits `blocks` of a plain .bz2 dump (see bz2blocks).

    Yields a `RawPage` per well-formed page and a `PageFailure` (with the raw XML) per page that
    cannot be read; fills `stats` (bytes, pages, checksums) as it goes. A truncated or corrupt
    file ends the stream with `stats.error` set — the pages before it have been yielded.
    `progress(stats)` is called about once per MB of input when given.
    """
    opened = _open_pages(path, stats, byte_range, bz2_threads, blocks)
    if opened is None:
        return
    stream, hasher, compression, base = opened
    next_report = 0
    try:
        context = pull_events(stream, events=("end",), tag=("{*}page", "{*}mediawiki"), huge_tree=True)
        finished = False
        unclosed = None  # the <page> whose </page> is missing, once a page ended inside it
        for _, elem in context:
            tag = elem.tag
            if tag.endswith("}mediawiki") or tag == "mediawiki":
                finished = True
                break
            parent = elem.getparent()
            if parent is not None and parent is not unclosed and _is_page(parent):
                # A page that ends inside another: the outer one was never closed. Its own
                # elements stand before this one; freeing this page would drop them unsaid.
                unclosed = parent
                stats.pages += 1
                yield unclosed_page(parent, elem)
            stats.pages += 1
            try:
                page = page_from_element(elem, site)
            except (ValueError, TypeError) as exc:
                yield PageFailure(
                    reason=f"malformed page: {exc}",
                    raw_xml=etree.tostring(elem, encoding="unicode"),
                    page_id=_int(elem.findtext("{*}id")) if elem.findtext("{*}id", "").strip().isdigit() else None,
                    title=elem.findtext("{*}title"),
                )
            else:
                stats.last_page = (page.id, page.title)
                yield page
            free_element(elem)
            next_report = _page_done(stats, hasher.count, progress, next_report)
        if not finished:
            raise etree.XMLSyntaxError("no closing </mediawiki>", None, 0, 0)  # type: ignore[call-arg]
        drain(stream)
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error) as exc:
        exc = compressed_cause(stream, exc)
        stats.error = stream_error(path, stats, base + hasher.count, compression, exc)
    finally:
        stats.bytes_read = hasher.count if blocks is None else min(hasher.count, blocks_span(*blocks))
        stats.md5 = hasher.md5.hexdigest() if blocks is None else ""  # a part's digest means nothing
        stats.sha1 = hasher.sha1.hexdigest() if blocks is None else ""
        stream.close()


PULL_CHUNK = 1 << 15  # bytes fed to the parser at a time (as iterparse reads)


def compressed_cause(stream, exc: Exception) -> Exception:
    """The error to report for a stream that stopped with `exc`: at an XML error, the decompression
    error that the rest of the stream raises, if any. A corrupt block is decoded before its CRC is
    checked, so its garbage can reach the parser first; the damaged block, not the XML, is the cause."""
    if not isinstance(exc, etree.XMLSyntaxError):
        return exc
    try:
        drain(stream)
    except (EOFError, OSError, zlib.error, ValueError) as cause:
        return cause
    return exc


def drain(stream) -> None:
    """Read `stream` to its end once `</mediawiki>` was parsed: the compressed stream's last bytes
    (a bz2 end marker and CRC, a gzip trailer) are then counted, hashed and checked, and the
    input's size and digests are those of the whole file."""
    read = getattr(stream, "read1", stream.read)
    while read(1 << 20):
        pass


def pull_events(stream, **options):
    """`etree.iterparse(stream, **options)`, except at a syntax error: every event the parser
    finished before the error is yielded first, then the error is raised.

    iterparse raises as soon as the chunk it fed holds the error, and the events of that chunk
    are lost: the complete pages just before a broken tag (up to a chunk of them) were dropped
    without a word. A pull parser keeps them for `read_events()`.
    """
    parser = etree.XMLPullParser(**options)
    # read1: what is decoded so far, not a full chunk, so the bytes before a cut-short
    # compressed stream's EOFError still reach the parser.
    read = getattr(stream, "read1", stream.read)
    while True:
        chunk = read(PULL_CHUNK)
        if not chunk:
            break
        try:
            parser.feed(chunk)
        except etree.XMLSyntaxError:
            yield from parser.read_events()  # what the parser finished before the error
            raise
        yield from parser.read_events()
    # At the end, a document cut short fails here, and the parser then closes every element left
    # open with an end event of its own: those elements are incomplete, so nothing more is read.
    parser.close()
    yield from parser.read_events()


def _is_page(elem: etree._Element) -> bool:
    tag = elem.tag
    return isinstance(tag, str) and (tag == "page" or tag.endswith("}page"))


def unclosed_page(page: etree._Element, inner: etree._Element) -> PageFailure:
    """The dead letter of a `<page>` left open: a page (`inner`) started and ended inside it.

    Its raw XML is what it held before `inner` (title, id, revisions read so far), so nothing of
    it is lost silently; the pages inside it are complete and are read as pages.
    """
    held = []
    for child in page:
        if child is inner or _is_page(child):
            break
        held.append(etree.tostring(child, encoding="unicode"))
    page_id = page.findtext("{*}id", "").strip()
    return PageFailure(
        reason="malformed page: no </page> before the next <page> began (the page is cut short in the file)",
        raw_xml="<page>" + "".join(held) + "</page>",
        page_id=int(page_id) if page_id.isdigit() else None,
        title=page.findtext("{*}title"),
    )


def open_blocks(path: str, start_bit: int, end_bit: int, *, bz2_threads: int = 0):
    """(XML stream, reader with `count`, "bz2") of the pages the blocks `[start_bit, end_bit)` own.

    `bz2_threads` 1 (a worker with no core to spare): indexed_bzip2 decodes them in the reading
    thread, the least CPU; else the stdlib, beside the parse in a thread of its own (indexed_bzip2's
    threads cannot start mid-stream, and its one-thread decoder holds the GIL).
    """
    try:
        reader = BlockRangeReader(path, start_bit, end_bit, first=start_bit == FIRST_BLOCK_BIT, fast=bz2_threads == 1)
    except BlockError as exc:
        raise DumpError(
            path, f"bz2 data is truncated or corrupt ({exc})", offset=start_bit // 8, kind="corrupt"
        ) from None
    return reader, reader, "bz2"


def blocks_span(start_bit: int, end_bit: int) -> int:
    """Bytes of the file that blocks `[start_bit, end_bit)` touch."""
    return (end_bit + 7) // 8 - start_bit // 8


def free_element(elem: etree._Element) -> None:
    """Free a parsed element and every sibling before it: memory stays flat whatever the dump size."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def stream_error(path: str, stats: ReadStats, offset: int, compression: str, exc: Exception) -> DumpError:
    """The DumpError of a dump stream that stopped at `offset`: cut XML, or bad compressed data."""
    if isinstance(exc, etree.XMLSyntaxError):
        return _describe_truncation(path, stats, offset, str(exc))
    return DumpError(
        path,
        f"{compression} data is truncated or corrupt ({exc}); {_after_last(stats)}",
        offset=offset,
        kind="corrupt",
    )


def _after_last(stats: ReadStats) -> str:
    if stats.last_page is None:
        return "no complete page was read"
    page_id, title = stats.last_page
    return f"the last complete page was id {page_id} ({title!r}), page {stats.pages:,} of the file"


def _describe_truncation(path: str, stats: ReadStats, offset: int, detail: str) -> DumpError:
    premature = (
        "Premature end" in detail or "no closing" in detail or "EndTag" in detail or "end of data" in detail.lower()
    )
    if premature:
        if stats.pages == 0:
            problem = "ends without </mediawiki> and holds no <page>: a header-only part or a truncated file"
        else:
            problem = "ends without </mediawiki>: the file is truncated"
        return DumpError(path, f"{problem}; {_after_last(stats)}", offset=offset, kind="truncated")
    return DumpError(path, f"is not well-formed XML ({detail}); {_after_last(stats)}", offset=offset, kind="malformed")


class _Concat(io.RawIOBase):
    """Bytes and streams read one after the other as one stream."""

    def __init__(self, parts: list):
        self._parts = [io.BytesIO(p) if isinstance(p, bytes) else p for p in parts]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._parts:
            data = self._parts[0].read(len(buffer))
            if data:
                n = len(data)
                buffer[:n] = data
                return n
            self._parts.pop(0)
        return 0

    def read(self, size: int = -1) -> bytes:
        while self._parts:
            data = self._parts[0].read(size)
            if data:
                return data
            self._parts.pop(0)
        return b""

    def close(self) -> None:
        for part in self._parts:
            part.close()
        super().close()


# -- revision histories (stub-meta-history, stub-meta-current, any history dump) ------------

# How many of a page's last revisions `PageHistory.times` answers for, and how far back their
# parents are looked up. The window bounds a page's memory (a page can have a million revisions):
# a parent further back than this (after a history merge or import) stays unknown, and is counted.
HISTORY_TAIL = 4
HISTORY_WINDOW = 1024
# Pages looked at before a file whose <text> elements are all empty is called a text dump.
_SNIFF_PAGES = 100


@dataclass(frozen=True)
class PageHistory:
    """What a history dump says about one page, reduced to what the record rules need.

    `first` is the smallest revision timestamp; `root` says a revision without `<parentid>` (the
    page's creation) was seen. `times` maps revision id → timestamp for the page's last
    `HISTORY_TAIL` revisions and their parents (where the parent is within the last
    `HISTORY_WINDOW` revisions): enough to find the parent timestamp of a current revision that
    is, or follows, one of the last revisions of the history. Sorted by revision id.
    """

    page_id: int
    ns: int
    title: str
    revisions: int
    first: str
    root: bool
    times: tuple[tuple[int, str], ...]


def is_stub_dump(path: str) -> bool:
    """Whether a MediaWiki XML dump is a stub dump (revision metadata without text).

    Decided by content, not name: a stub's `<text>` elements are empty and point at the text
    (`<text bytes="116" location="tt:43" id="43" />`); a text dump's carry the text. Empty
    `<text bytes="0"/>` (empty pages) and revision-deleted text decide nothing, so up to
    `_SNIFF_PAGES` pages are looked at. A file that cannot be read that far is not a stub here
    (the dump reader then reports what is wrong with it).
    """
    try:
        stream, _hasher, _ = open_dump(path, read_ahead=False, head=True)
    except (DumpError, OSError):
        return False
    pages = 0
    try:
        for _event, elem in etree.iterparse(stream, events=("end",), tag=("{*}text", "{*}page"), huge_tree=True):
            if _local(elem.tag) == "page":
                pages += 1
                if pages >= _SNIFF_PAGES:
                    return False
                elem.clear()
                continue
            if elem.get("deleted"):
                continue
            if elem.text:
                return False
            if elem.get("id") or elem.get("location") or elem.get("bytes", "0") not in ("", "0"):
                return True
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error):
        return False
    finally:
        stream.close()
    return False


def _revision_times(rev: etree._Element) -> tuple[str | None, str | None, str | None]:
    """(id, parent id, timestamp) texts of a `<revision>`: every export schema writes them first,
    in this order (`<parentid>` only when there is a parent); anything else takes the slow path."""
    n = len(rev)
    if n >= 2:
        first, second = rev[0], rev[1]
        if first.tag.endswith("}id") or first.tag == "id":
            stag = second.tag
            if stag.endswith("timestamp"):
                return first.text, None, second.text
            if stag.endswith("parentid") and n >= 3 and rev[2].tag.endswith("timestamp"):
                return first.text, second.text, rev[2].text
    values: dict[str, str | None] = {}
    for child in rev:
        if isinstance(child.tag, str):
            values.setdefault(_local(child.tag), child.text)
    return values.get("id"), values.get("parentid"), values.get("timestamp")


def _page_history(page_id: int, ns: int, title: str, count: int, first: str, root: bool, window) -> PageHistory:
    """The `PageHistory` of a page whose last revisions `(id, parent, timestamp)` are in `window`."""
    times_by_id = {rev_id: ts for rev_id, _parent, ts in window}
    times: dict[int, str] = {}
    for rev_id, parent, ts in list(window)[-HISTORY_TAIL:]:
        times[rev_id] = ts
        if parent and parent in times_by_id:
            times[parent] = times_by_id[parent]
    return PageHistory(page_id, ns, title, count, first, root, tuple(sorted(times.items())))


def iter_history(
    path: str, site: SiteInfo, stats: ReadStats, *, progress=None, byte_range: tuple[int, int] | None = None
) -> Iterator[PageHistory | PageFailure]:
    """Stream one history dump (stub or with text) as a `PageHistory` per page.

    Each `<revision>` is read for its id, parent id and timestamp, then freed at once: memory is
    the last `HISTORY_WINDOW` revisions of the current page, whatever its history's length (the
    text of a full history dump is parsed by lxml but never kept). A page with a revision lacking
    its id or timestamp becomes a `PageFailure` naming the revision. Errors, `stats` and
    `progress` as `iter_pages` (truncated or corrupt files end the stream with `stats.error` set).
    """
    import collections

    opened = _open_pages(path, stats, byte_range)
    if opened is None:
        return
    stream, hasher, compression, base = opened
    window: collections.deque = collections.deque(maxlen=HISTORY_WINDOW)
    count, first, root, problem = 0, "", False, None
    next_report = 0
    try:
        # Whitespace between elements is most of a stub's text nodes: not building them is ~10% faster.
        context = pull_events(
            stream,
            events=("end",),
            tag=("{*}revision", "{*}page", "{*}mediawiki"),
            huge_tree=True,
            remove_blank_text=True,
        )
        finished = False
        for _, elem in context:
            tag = elem.tag
            name = tag[tag.rfind("}") + 1 :]
            if name == "revision":
                rev_id, parent, ts = _revision_times(elem)
                count += 1
                try:
                    rid = int(rev_id)  # type: ignore[arg-type]
                    pid = int(parent) if parent and parent.strip() else 0
                except (TypeError, ValueError):
                    problem = problem or f"revision {count} has no numeric <id> or <parentid> ({rev_id!r}, {parent!r})"
                    rid = pid = 0
                ts = (ts or "").strip()
                if not ts and problem is None:
                    problem = f"revision {rev_id} has no <timestamp>"
                if rid:
                    window.append((rid, pid, ts))
                    if ts and (not first or ts < first):
                        first = ts
                    if not pid:
                        root = True
                # Free the revision now (a page can hold a million): cleared, and the one before
                # it (cleared too) taken out of the page, so at most one stays behind.
                elem.clear()
                prev = elem.getprevious()
                if prev is not None and prev.tag == tag:
                    elem.getparent().remove(prev)
                continue
            if name == "mediawiki":
                finished = True
                break
            stats.pages += 1
            page_id = _int(elem.findtext("{*}id"))
            title = elem.findtext("{*}title") or ""
            ns = _int(elem.findtext("{*}ns"))
            if ns is None and title:
                ns = site.split_title(title)[0]
            if page_id is None or not title or problem is not None or not window:
                reason = problem or ("page has no <id>" if page_id is None else "page has no <title>")
                if page_id is not None and title and problem is None:
                    reason = "page has no <revision>"
                yield PageFailure(
                    reason=f"malformed page in a history dump: {reason}",
                    raw_xml=etree.tostring(elem, encoding="unicode"),
                    page_id=page_id,
                    title=title or None,
                )
            else:
                stats.last_page = (page_id, title)
                yield _page_history(page_id, ns or 0, title, count, first, root, window)
            window.clear()
            count, first, root, problem = 0, "", False, None
            free_element(elem)
            next_report = _page_done(stats, hasher.count, progress, next_report)
        if not finished:
            raise etree.XMLSyntaxError("no closing </mediawiki>", None, 0, 0)  # type: ignore[call-arg]
        drain(stream)
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error) as exc:
        exc = compressed_cause(stream, exc)
        stats.error = stream_error(path, stats, base + hasher.count, compression, exc)
    finally:
        stats.bytes_read = hasher.count
        stats.md5 = hasher.md5.hexdigest()
        stats.sha1 = hasher.sha1.hexdigest()
        stream.close()
