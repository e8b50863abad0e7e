"""Find the base records the diffs touch, in one pass over each base snapshot (the update's first stage).

With Parquet shards and a published md5 (a wikisnap base) the indexed scan reads only the members
holding a wanted record; otherwise every line's head is matched. Out: the touched records
(`BaseHit`) and the base's member map, so nothing reads the base again to plan the rewrite.
The update's design as a whole is in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics

from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.transforms.formats.fs import (
    file_md5,
    local_path,
    open_read_arrow,
)
from wikisnap.transforms.formats.layout import snapshot_id
from wikisnap.transforms.formats.tarball import (
    _HEAD,
    BaseError,
    BaseMember,
    _Damaged,
    _first_line,
    _inflate_members,
    _map_by_headers,
    _member_chunks,
    _NoIndex,
    _NotWikisnapLayout,
    _tar_info,
    base_error,
    iter_snapshot_lines,
    line_head,
)
from wikisnap.transforms.update.diffs import Change

TAG_HITS = "hits"
TAG_STATS = "stats"
TAG_ERRORS = "errors"
TAG_LAYOUT = "layout"
# Keys are the only place an unescaped quote precedes these names (quotes inside strings are \").
_REDIRECTS_KEY = b'"redirects":['
_DATE_KEY = re.compile(rb'"date_modified":"([^"]+)"')


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
    text_md5: tuple[str | None, ...] = ()  # the published md5 of each of `text`, when known
    metadata_md5: str | None = None  # the published md5 of `metadata`, when known
    # `--formats structured`: the Structured Contents tarball, metadata and Parquet shards of this
    # snapshot (shard n beside member n; None/empty: the base has none) and the published md5s of
    # those files as (path, md5) pairs
    structured: str | None = None
    structured_metadata: str | None = None
    structured_parquet: tuple[str, ...] = ()
    structured_md5: tuple[tuple[str, str | None], ...] = ()

    def published_md5(self, path: str) -> str | None:
        """The md5 the base's manifest gives one of this snapshot's files (None: not known)."""
        if path == self.tarball:
            return self.md5
        if path == self.metadata:
            return self.metadata_md5
        pairs = zip(self.parquet + self.text, self.parquet_md5 + self.text_md5, strict=False)
        return dict(pairs).get(path) or dict(self.structured_md5).get(path)


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
    # A published md5 is checked here too: bytes the gzip CRCs do not cover (headers, padding)
    # or a whole tarball swapped for another are damage as well. A local tarball is hashed in a
    # thread beside the scan (as `_scan_indexed`), a remote one in the scan's own pass.
    local = _is_local(snapshot.tarball)
    with ThreadPoolExecutor(1, thread_name_prefix="wikisnap-md5") as beside:
        md5 = beside.submit(_md5_hex, snapshot.tarball) if snapshot.md5 and local else None
        digest = hashlib.md5() if snapshot.md5 and not local else None
        try:
            scan = _scan_wikisnap_layout(snapshot, wanted, digest)
            got = md5.result() if md5 is not None else digest.hexdigest() if digest is not None else None
        except _NotWikisnapLayout:
            scan = BaseScan(list(find_in_base(snapshot, wanted)), None)
            got = md5.result() if md5 is not None else _md5_hex(snapshot.tarball) if snapshot.md5 else None
    if got is not None and got != snapshot.md5:
        raise base_error(snapshot.tarball, f"has md5 {got} but the base's manifest says {snapshot.md5}: it is damaged")
    return scan


def _scan_wikisnap_layout(snapshot: BaseSnapshot, wanted: Wanted, digest=None) -> BaseScan:
    """`scan_base` of a tarball in wikisnap's layout; `_NotWikisnapLayout` as soon as it is not.

    The layout: per tar member one gzip member holding its 512-byte header and one holding its
    data plus padding; last, one gzip member holding the two zero blocks that end the archive.
    `digest` (optional, a hashlib object) is fed the tarball's raw bytes as they are read.
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
        for member, where, data in _inflate_members(tarball, digest=digest):
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


def _scan_line(snapshot: BaseSnapshot, wanted: Wanted, line: bytes, number: int, hits: list[BaseHit]) -> int:
    """`find_in_base`'s test of one line (a hit is parsed and kept); returns its page id."""
    name, page_id = base_line_head(snapshot.tarball, line, number)
    hit = page_id in wanted.ids or name in wanted.names
    if not hit and wanted.redirect_names:
        hit = any(n in wanted.redirect_names for n in listed_redirects(line))
    if hit:
        hits.append(BaseHit(snapshot.dbname, snapshot.ns, page_id, json.loads(line)))
    return page_id


def _md5_hex(path: str) -> str:
    """The base tarball's md5 (its own name: the thread beside the scan shows in profiles)."""
    return file_md5(path)[0]


def _is_local(path: str) -> bool:
    return local_path(path) is not None


def _shard_index(path: str, wanted: Wanted) -> tuple[int, int, list[int]]:
    """(rows, first page id, ids of the rows `find_in_base` would take) of one base Parquet shard.

    Its rule, on the shard's columns: the page id is wanted, the title is a wanted redirect
    target, or a wanted title is among the listed redirects. Only those columns are read.
    """
    columns = ["identifier", "name"] + (["redirects"] if wanted.redirect_names else [])
    try:
        with open_read_arrow(path) as f:
            table = pq.ParquetFile(f).read(columns=columns)
    except (pa.ArrowException, OSError, ValueError):
        # a damaged shard: the full scan reads the tarball instead, and the rewrite's md5 check
        # of this shard (copied or merged) names it. (A damaged footer can hold a column name
        # that is not UTF-8: Arrow's reader raises UnicodeDecodeError, a ValueError, for it.)
        raise _NoIndex from None
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
