"""`wikisnap update` reads the base in one scan and a touched member once more: the scan that finds
the touched records also maps the members, untouched members are copied without decompression
(checked against the scan's CRC-32 of their bytes), and a touched member is rewritten in one pass
(its NDJSON, Parquet and text shard together). The output bytes are those of the multi-pass code
this replaces: checked against independent references (the base's own gzip bytes, the member's
lines gzipped one by one, a sort of the Parquet rows), on the real enwiki sample of tests/data.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import threading
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_update import enwiki_events, records_by_id, write_lines

from conftest import ENWIKI, read_snapshot
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, records_to_table, table_to_records
from wikisnap.transforms.formats import tarball
from wikisnap.transforms.formats.tarball import BaseError, GzipMemberWriter, wikisnap_members
from wikisnap.transforms.update import find, rewrite
from wikisnap.transforms.update.find import BaseSnapshot, Wanted, find_in_base, json_name, scan_base
from wikisnap.transforms.update.rewrite import (
    _merge_shard_file,
    inserts_by_group,
    merge_shard,
    plan_members,
    rewrite_member,
)
from wikisnap.transforms.write import WriteOptions

TAR = "enwiki_namespace_0.tar.gz"


def gzip_spans_of(path: Path) -> list[tuple[int, int]]:
    """Byte spans of the gzip members of a file (stdlib zlib, independent of wikisnap's readers)."""
    data, spans, start = path.read_bytes(), [], 0
    while start < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[start:])
        end = len(data) - len(d.unused_data)
        spans.append((start, end))
        start = end
    return spans


def wanted_of(records: dict[int, dict]) -> Wanted:
    """Some ids (first, a middle one, last), a redirect target's title and a listed redirect."""
    ids = sorted(records)
    listed = next(r for r in records.values() if r.get("redirects"))
    target = records[ids[len(ids) // 3]]
    return Wanted(
        frozenset({ids[0], ids[len(ids) // 2], ids[-1]}),
        frozenset({json_name(target["name"])}),
        frozenset({listed["redirects"][0]["name"]}),
    )


# -- the scan --------------------------------------------------------------------------------


def test_one_scan_finds_the_hits_and_maps_the_members(small_base):
    tarball = small_base / TAR
    snapshot = BaseSnapshot("enwiki", 0, str(tarball))
    records = records_by_id(tarball)
    wanted = wanted_of(records)
    scan = scan_base(snapshot, wanted)
    # the hits of the line reader, in the same order
    expected = [(h.page_id, h.record) for h in find_in_base(snapshot, wanted)]
    assert [(h.page_id, h.record) for h in scan.hits] == expected
    assert len(expected) >= 5  # ids, the redirect target and the record listing the redirect
    # the member map of the separate span pass it replaces
    old = wikisnap_members(str(tarball))
    assert len(scan.members) == len(old) > 10
    assert [(m.index, m.data_size, m.start, m.end, m.first_id) for m in scan.members] == [
        (m.index, m.data_size, m.start, m.end, m.first_id) for m in old
    ]
    # spans are the real gzip members (header, data, …, end) and the counts the members' lines
    spans = gzip_spans_of(tarball)
    assert [(m.start, m.end) for m in scan.members] == spans[1:-1:2]
    names, _records, _lines = read_snapshot(tarball)
    with tarfile.open(tarball, "r:gz") as tar:
        for member, name in zip(scan.members, names, strict=True):
            lines = tar.extractfile(name).read().splitlines()
            assert member.records == len(lines)
            assert member.max_date == max(json.loads(line)["date_modified"] for line in lines)
            assert member.first_id == json.loads(lines[0])["identifier"]
    assert sum(m.records for m in scan.members) == len(records)


def test_a_tarball_of_another_layout_is_scanned_line_by_line(small_base, tmp_path):
    # a WME-style tarball: one gzip stream around the whole tar (tarfile's own writer)
    names, _records, _lines = read_snapshot(small_base / TAR)
    other = tmp_path / TAR
    with tarfile.open(small_base / TAR, "r:gz") as src, tarfile.open(other, "w:gz") as dst:
        for name in names:
            dst.addfile(src.getmember(name), src.extractfile(name))
    snapshot = BaseSnapshot("enwiki", 0, str(other))
    wanted = wanted_of(records_by_id(small_base / TAR))
    scan = scan_base(snapshot, wanted)
    assert scan.members is None
    assert [h.record for h in scan.hits] == [h.record for h in find_in_base(snapshot, wanted)] != []


@pytest.mark.parametrize("damage", ["flipped", "cut-inside", "cut-between"])
def test_a_damaged_base_fails_the_scan_naming_member_and_byte(small_base, tmp_path, damage):
    tarball = tmp_path / TAR
    data = (small_base / TAR).read_bytes()
    spans = gzip_spans_of(small_base / TAR)
    start, end = spans[5]  # the data member of enwiki_namespace_0_2.ndjson
    if damage == "flipped":
        middle = (start + end) // 2
        tarball.write_bytes(data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 32]) + data[middle + 32 :])
    elif damage == "cut-inside":
        tarball.write_bytes(data[: (start + end) // 2])
    else:
        tarball.write_bytes(data[:end])  # right after a data member: gzip and tar look complete
    with pytest.raises(BaseError) as caught:
        scan_base(BaseSnapshot("enwiki", 0, str(tarball)), wanted_of(records_by_id(small_base / TAR)))
    message = str(caught.value)
    assert message.startswith(f"{tarball}: base snapshot") and "restore the base" in message
    if damage == "cut-between":
        assert "cut off" in message
    else:
        assert "in member 'enwiki_namespace_0_2.ndjson'" in message and "at byte" in message


# -- the rewrite -----------------------------------------------------------------------------


def write_options(tmp: Path, formats: set[str]) -> WriteOptions:
    from wikisnap.transforms.formats.dumpreader import read_siteinfo

    site = read_siteinfo(str(ENWIKI))
    return WriteOptions(
        str(tmp / "out"), str(tmp / "tmp"), 200_000, frozenset(formats), None, sites=(("enwiki", site),)
    )


@pytest.mark.parametrize("formats", [{"ndjson"}, {"ndjson", "parquet", "text"}])
def test_only_touched_members_are_decompressed_and_parts_are_the_same(small_base, tmp_path, monkeypatch, formats):
    tarball = small_base / TAR
    snapshot = BaseSnapshot(
        "enwiki",
        0,
        str(tarball),
        str(small_base / "enwiki_namespace_0.json"),
        tuple(sorted(str(p) for p in (small_base / "parquet" / "enwiki_namespace_0").glob("*.parquet"))),
        tuple(sorted(str(p) for p in (small_base / "text" / "enwiki_namespace_0").glob("*.parquet"))),
    )
    assert len(snapshot.parquet) > 10
    records = records_by_id(tarball)
    scan = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset()))
    second, fifth = [m for m in scan.members if m.records >= 3][:2]
    changed = {
        second.first_id: {**records[second.first_id], "name": "Renamed by the test"},  # replaced
        fifth.first_id: None,  # removed
    }
    read: list[int] = []
    real_span_lines = rewrite._span_lines

    def spy(path, member):
        read.append(member.index)
        return real_span_lines(path, member)

    def parts(tmp: Path, members) -> list:
        opts = write_options(tmp, formats)
        tasks = plan_members(snapshot, changed, opts, members)
        return [rewrite_member(task, opts) for task in tasks]

    monkeypatch.setattr(rewrite, "_span_lines", spy)
    one_pass = parts(tmp_path / "a", scan.members)
    assert sorted(set(read)) == [second.index, fifth.index]  # the untouched ones were never decompressed
    planned_apart = parts(tmp_path / "b", None)  # the member map read by a pass of its own
    assert len(one_pass) == len(planned_apart) == len(scan.members)
    for (part_a, counts_a), (part_b, counts_b) in zip(one_pass, planned_apart, strict=True):
        assert counts_a == counts_b
        assert part_a is not None and part_b is not None  # no member was emptied
        fields = ("index", "data_size", "records", "max_date")
        assert [getattr(part_a, f) for f in fields] == [getattr(part_b, f) for f in fields]
        assert Path(part_a.gz_path).read_bytes() == Path(part_b.gz_path).read_bytes()
        for kind in ("parquet_path", "text_path"):
            if getattr(part_a, kind):
                assert Path(getattr(part_a, kind)).read_bytes() == Path(getattr(part_b, kind)).read_bytes()
    touched_part = one_pass[second.index][0]
    assert touched_part.records == second.records
    if "text" in formats:  # the text shard fed in the same pass holds the renamed record's row
        text = pq.read_table(touched_part.text_path)
        assert text.num_rows == second.records and "Renamed by the test" in text["title"].to_pylist()


def test_update_output_is_the_base_member_by_member_or_a_plain_recompression(small_base, update, tmp_path):
    events = write_lines(tmp_path / "events.ndjson", enwiki_events(records_by_id(small_base / TAR)))
    out = tmp_path / "out"
    code, _stdout, stderr = update(small_base, [events], out)
    assert code == 0, stderr
    base_bytes, out_bytes = (small_base / TAR).read_bytes(), (out / TAR).read_bytes()
    base_spans, out_spans = gzip_spans_of(small_base / TAR), gzip_spans_of(out / TAR)
    base_members = {base_bytes[s:e] for s, e in base_spans[1:-1:2]}
    emptied = len(base_spans) - len(out_spans)  # 2 spans (header, data) per member
    assert emptied % 2 == 0
    emptied //= 2
    copied = rewritten = 0
    for start, end in out_spans[1:-1:2]:
        member = out_bytes[start:end]
        if member in base_members:
            copied += 1  # an untouched member: the base's gzip bytes, never recompressed
            continue
        # a touched one: its lines gzipped one by one as any writer of these lines does
        rewritten += 1
        data = zlib.decompress(member, 31)
        writer = GzipMemberWriter(str(tmp_path / "member.gz"), 3)
        for line in data.splitlines(keepends=True):
            writer.write(line)
        writer.close()
        assert (tmp_path / "member.gz").read_bytes() == member
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert copied == counts["members/ns0/copied"]
    assert rewritten + emptied == counts["members/ns0/rewritten"] and rewritten >= 1
    # the tar headers and end blocks are the ones a build writes (same names, sizes, mtime)
    names, _records, _lines = read_snapshot(out / TAR)
    assert names == [f"enwiki_namespace_0_{n}.ndjson" for n in range(len(names))]
    # an untouched member's Parquet and text shards are the base's files
    for kind in ("parquet", "text"):
        base_shards = {p.read_bytes() for p in (small_base / kind / "enwiki_namespace_0").glob("*.parquet")}
        same = [p for p in (out / kind / "enwiki_namespace_0").glob("*.parquet") if p.read_bytes() in base_shards]
        assert len(same) == copied


# -- the Parquet shard of a touched member -----------------------------------------------------


def sorted_merge(table: pa.Table, touched: dict, inserts: list) -> pa.Table:
    """The reference: the base rows without the touched ids, plus the inserts, sorted by id."""
    keep = pc.invert(pc.is_in(table["identifier"], pa.array(sorted(touched), pa.int64())))
    tables = [table.filter(keep)] + ([records_to_table([r for _p, r in inserts])] if inserts else [])
    return pa.concat_tables(tables).sort_by("identifier")


def parquet_bytes(table: pa.Table, groups: list[int]) -> bytes:
    """The reference writer: the whole table made one chunk, cut into row groups of `groups` rows."""
    sink = io.BytesIO()
    whole, start = table.combine_chunks(), 0
    with pq.ParquetWriter(sink, whole.schema, compression="zstd", write_statistics=True) as writer:
        for rows in groups:
            writer.write_table(whole.slice(start, rows), row_group_size=rows)
            start += rows
    return sink.getvalue()


def _cases(rows: list[dict]) -> list[dict]:
    ids = [r["identifier"] for r in rows]

    def like(n: int, page_id: int) -> dict:
        return {**rows[n], "identifier": page_id, "name": f"Page {page_id}"}

    return [
        {ids[0]: None},
        {ids[-1]: None},
        {ids[1]: like(0, ids[1])},
        {1: like(0, 1), ids[-1] + 5: like(1, ids[-1] + 5)},
        {ids[1]: None, ids[1] + 1: like(2, ids[1] + 1), ids[2]: like(3, ids[2])},
        {ids[2]: None, ids[3]: None},  # a whole row group emptied (groups of 2 below)
        {ids[3]: None, ids[3] + 1: like(0, ids[3] + 1)},  # one in at the end of a group
        {pid: None for pid in ids},
        {pid: like(0, pid) for pid in ids},
    ]


def _largest_shard(small_base: Path) -> pa.Table:
    shards = (small_base / "parquet" / "enwiki_namespace_0").glob("*.parquet")
    return pq.read_table(max(shards, key=lambda p: pq.ParquetFile(p).metadata.num_rows), schema=ARTICLE_SCHEMA)


def test_merged_shard_rows_are_the_sorted_rows(small_base):
    table = _largest_shard(small_base)
    rows = table_to_records(table)
    assert len(rows) >= 6
    for touched in _cases(rows):
        inserts = sorted((pid, rec) for pid, rec in touched.items() if rec is not None)
        merged = merge_shard(table, touched, inserts)
        assert merged.combine_chunks().equals(sorted_merge(table, touched, inserts)), touched
    # rows whose ids are not ascending (not wikisnap's) are sorted
    ids = [r["identifier"] for r in rows]
    shuffled = table.take(pa.array(list(range(len(ids)))[::-1]))
    touched = {ids[1]: None, 1: {**rows[0], "identifier": 1}}
    inserts = [(1, touched[1])]
    assert merge_shard(shuffled, touched, inserts).equals(sorted_merge(shuffled, touched, inserts))


def test_updated_shard_keeps_the_bases_row_groups_and_the_bytes_of_one_chunk(small_base, tmp_path):
    # A member's shard after an update is cut where the build cut it (row groups bounded in rows
    # and bytes), not rewritten as one row group of the whole member. The base shard here is a
    # real one written in row groups of 2 rows, as a build with small groups would cut it.
    table = _largest_shard(small_base)
    rows = table_to_records(table)
    ids = [r["identifier"] for r in rows]
    base = tmp_path / "base.parquet"
    pq.write_table(table, base, row_group_size=2, compression="zstd", write_statistics=True)
    group_of = {pid: n // 2 for n, pid in enumerate(ids)}
    opts = WriteOptions(str(tmp_path), str(tmp_path), 10**8, frozenset({"ndjson", "parquet"}), None)
    for case, touched in enumerate(_cases(rows)):
        inserts = sorted((pid, rec) for pid, rec in touched.items() if rec is not None)
        out = tmp_path / f"out-{case}.parquet"
        _merge_shard_file(str(base), str(out), touched, inserts, opts)
        reference = sorted_merge(table, touched, inserts)
        written = pq.ParquetFile(out)
        assert written.read().equals(reference), touched
        groups = [written.metadata.row_group(g).num_rows for g in range(written.metadata.num_row_groups)]
        # each written group holds the kept rows of one base group (and the new rows among them)
        start, seen = 0, []
        for size in groups:
            kept = [pid for pid in reference["identifier"].to_pylist()[start : start + size] if pid not in touched]
            assert len({group_of[pid] for pid in kept}) <= 1, touched
            seen.extend({group_of[pid] for pid in kept})
            start += size
        assert seen == sorted(set(seen)) and len(groups) <= len(set(group_of.values())) + 1, touched
        # same bytes as the reference rows made one chunk and cut at the same rows
        assert out.read_bytes() == parquet_bytes(reference, groups), touched
    untouched = tmp_path / "untouched.parquet"
    _merge_shard_file(str(base), str(untouched), {}, [], opts)
    assert untouched.read_bytes() == parquet_bytes(table, [2] * (len(ids) // 2) + [1] * (len(ids) % 2))


def test_inserts_join_the_group_of_the_first_row_they_sort_before():
    inserts = [(1, "a"), (5, "b"), (10, "c"), (11, "d"), (99, "e")]
    assert inserts_by_group([5, 10, 20], inserts) == [[(1, "a"), (5, "b")], [(10, "c")], [(11, "d"), (99, "e")]]
    assert inserts_by_group([], inserts) == []


@pytest.mark.parametrize("which", ["untouched", "touched"])
def test_a_base_changed_after_the_scan_fails_the_rewrite(small_base, tmp_path, which):
    # The rewrite reads each member once more at most: an untouched one as raw bytes (checked
    # against the CRC-32 of the bytes the scan inflated), a touched one through zlib (its CRC).
    tarball = tmp_path / TAR
    shutil.copyfile(small_base / TAR, tarball)
    snapshot = BaseSnapshot("enwiki", 0, str(tarball))
    scan = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset()))
    member = [m for m in scan.members if m.records >= 3][0]
    records = records_by_id(tarball)
    changed = {member.first_id: {**records[member.first_id], "name": "Changed"}} if which == "touched" else {}
    opts = write_options(tmp_path, {"ndjson"})
    task = next(t for t in plan_members(snapshot, changed, opts, scan.members) if t.member.index == member.index)
    data = bytearray(tarball.read_bytes())
    data[(member.start + member.end) // 2] ^= 0xFF
    tarball.write_bytes(bytes(data))
    with pytest.raises(BaseError) as caught:
        rewrite_member(task, opts)
    message = str(caught.value)
    assert message.startswith(f"{tarball}: base snapshot") and f"{member.start:,}-{member.end:,}" in message
    assert "restore the base" in message


# -- the indexed scan: the base's md5 and Parquet shards instead of inflating every member -------------


def indexed(base: Path, tarball: Path | None = None, md5: str | None = "manifest") -> BaseSnapshot:
    """The snapshot of `base` as `update` sees it: tarball, Parquet shards and published md5."""
    if md5 == "manifest":
        outputs = json.loads((base / "manifest.json").read_text())["outputs"]
        md5 = next(o["md5"] for o in outputs if o["path"] == TAR)
    shards = tuple(sorted(str(p) for p in (base / "parquet" / "enwiki_namespace_0").glob("*.parquet")))
    return BaseSnapshot("enwiki", 0, str(tarball or base / TAR), None, shards, (), md5)


def member_of(members, page_id: int) -> int:
    return max(m.index for m in members if m.first_id <= page_id)


MEMBER_FIELDS = ("index", "data_size", "start", "end", "first_id", "raw_crc")


def test_the_indexed_scan_finds_what_the_full_scan_finds_inflating_only_members_with_hits(small_base, monkeypatch):
    snapshot = indexed(small_base)
    wanted = wanted_of(records_by_id(small_base / TAR))
    inflated: list[int] = []
    threads: set[str] = set()
    real_chunks = tarball._member_chunks

    def spy(path, member):
        inflated.append(member.index)
        threads.add(threading.current_thread().name)
        return real_chunks(path, member)

    monkeypatch.setattr(find, "_member_chunks", spy)
    scan = scan_base(snapshot, wanted)
    full = find._scan_wikisnap_layout(snapshot, wanted)  # every member inflated, every line read
    assert scan.indexed and not full.indexed
    assert [(h.page_id, h.record) for h in scan.hits] == [(h.page_id, h.record) for h in full.hits]
    assert len(full.hits) >= 5  # ids, the redirect target, the record listing the redirect
    assert [[getattr(m, f) for f in MEMBER_FIELDS] for m in scan.members] == [
        [getattr(m, f) for f in MEMBER_FIELDS] for m in full.members
    ]
    # only members holding a wanted record were inflated (each once, side by side, hits still in
    # member order above); the others never
    with_hits = sorted({member_of(full.members, h.page_id) for h in full.hits})
    assert sorted(inflated) == with_hits and len(with_hits) < len(scan.members) / 2
    assert len(with_hits) >= 2 and threads and all(name.startswith("wikisnap-hits") for name in threads)


def test_the_indexed_scan_stops_after_the_last_wanted_record(small_base, monkeypatch):
    snapshot = indexed(small_base)
    members = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset())).members
    member = max(members, key=lambda m: m.end - m.start)
    monkeypatch.setattr(tarball, "_HIT_READ", 1024)  # so a member takes many reads
    taken: list[int] = []
    real_read = tarball._read_span

    def spy(path, start, end, chunk=1 << 22):
        for data in real_read(path, start, end, chunk):
            if chunk == 1024:  # the reads looking for wanted records (not the first-line check)
                taken.append(len(data))
            yield data

    monkeypatch.setattr(tarball, "_read_span", spy)
    scan = scan_base(snapshot, Wanted(frozenset({member.first_id}), frozenset(), frozenset()))
    assert [h.page_id for h in scan.hits] == [member.first_id]
    assert 0 < sum(taken) < (member.end - member.start) / 2  # its first record needed only its first bytes


@pytest.mark.parametrize("case", ["no-md5", "other-md5", "swapped-shards", "changed-tarball"])
def test_the_indexed_scan_falls_back_to_the_full_scan(small_base, tmp_path, case):
    """Another md5 than the published one goes through the full scan too, which then refuses it
    (issue 22: every base file is checked against its manifest's md5)."""
    base = tmp_path / "base"
    shutil.copytree(small_base, base)
    snapshot = indexed(base, md5={"no-md5": None, "other-md5": "0" * 32}.get(case, "manifest"))
    if case == "swapped-shards":  # shard 1 holds member 2's rows and the other way round
        one, two = (base / "parquet" / "enwiki_namespace_0" / f"enwiki_namespace_0_{n}.parquet" for n in (1, 2))
        data = one.read_bytes()
        one.write_bytes(two.read_bytes())
        two.write_bytes(data)
    if case == "changed-tarball":  # a valid tarball, but not the one the manifest published
        data = (base / TAR).read_bytes()
        spans = gzip_spans_of(base / TAR)
        start, end = spans[3]
        lines = zlib.decompress(data[start:end], 31)
        (base / TAR).write_bytes(data[:start] + gzip.compress(lines, 1, mtime=0) + data[end:])
    wanted = wanted_of(records_by_id(small_base / TAR))
    full = find._scan_wikisnap_layout(snapshot, wanted)
    if case in ("other-md5", "changed-tarball"):
        with pytest.raises(BaseError, match="base's manifest says"):
            scan_base(snapshot, wanted)
        return
    scan = scan_base(snapshot, wanted)
    assert not scan.indexed
    assert [(h.page_id, h.record) for h in scan.hits] == [(h.page_id, h.record) for h in full.hits] != []
    assert [m.raw_crc for m in scan.members] == [m.raw_crc for m in full.members]


def test_update_through_the_index_writes_the_bytes_of_the_full_scan(small_base, update, tmp_path, monkeypatch):
    from test_update import md5s

    indexed_calls: list[str] = []
    real_indexed = find._scan_indexed

    def spy(snapshot, wanted):
        scan = real_indexed(snapshot, wanted)
        indexed_calls.append(snapshot.tarball)
        return scan

    monkeypatch.setattr(find, "_scan_indexed", spy)
    events = write_lines(tmp_path / "events.ndjson", enwiki_events(records_by_id(small_base / TAR)))
    code, _stdout, stderr = update(small_base, [events], tmp_path / "by-index")
    assert code == 0, stderr
    assert indexed_calls == [str(small_base / TAR)]

    # the same base through the full scan of every member (as when the index cannot vouch for it)
    def no_index(snapshot, wanted):
        indexed_calls.append("refused")
        raise find._NoIndex

    monkeypatch.setattr(find, "_scan_indexed", no_index)
    code, _stdout, stderr = update(small_base, [events], tmp_path / "by-scan")
    assert code == 0, stderr
    assert indexed_calls == [str(small_base / TAR), "refused"]
    assert md5s(tmp_path / "by-index") == md5s(tmp_path / "by-scan")


# -- the read-back of copied members ---------------------------------------------------------------------


def assembled(small_base: Path, tmp: Path, changed_members: int = 2):
    """An update of `small_base` assembled in-process: (tarball OutputFile, members, parts)."""
    from wikisnap.pipelines.update import discover_base
    from wikisnap.transforms.write import assemble_snapshot

    [snapshot] = discover_base(str(small_base)).snapshots
    scan = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset()))
    records = records_by_id(small_base / TAR)
    touched = [m for m in scan.members if m.records != 0][1 : 1 + changed_members]
    changed = {m.first_id: {**records[m.first_id], "name": f"Renamed {m.index}"} for m in touched}
    opts = write_options(tmp, {"ndjson", "parquet"})
    parts = [rewrite_member(task, opts)[0] for task in plan_members(snapshot, changed, opts, scan.members)]
    outputs = assemble_snapshot(("enwiki", 0), parts, "en", opts)
    return next(o for o in outputs if o.kind == "tarball"), scan.members, parts


def test_copied_members_are_hashed_not_inflated_by_the_read_back(small_base, tmp_path, monkeypatch):
    from wikisnap.transforms import verify

    tarball, members, parts = assembled(small_base, tmp_path)
    assert [p.copied for p in parts].count(False) == 2 and len(tarball.copied) == len(parts) - 2
    inflated = []
    real = verify.gzip_decompressor

    class Counting:
        def __init__(self):
            self.d = real()

        def decompress(self, data):
            out = self.d.decompress(data)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.d, name)

    monkeypatch.setattr(verify, "gzip_decompressor", Counting)
    counted, problems = verify.verify_file(tarball)
    assert problems == [] and counted == tarball.records == sum(p.records for p in parts)
    # only the headers, the two rewritten members and the end blocks were inflated
    rewritten = sum(p.data_size + (-p.data_size % 512) for p in parts if not p.copied)
    assert sum(inflated) == rewritten + 512 * len(parts) + 1024
    # the same file read back whole, every member inflated, gives the same count
    monkeypatch.undo()
    assert verify.verify_file(dataclasses.replace(tarball, copied=None)) == (counted, [])


@pytest.mark.parametrize("damage", ["rewritten-member", "span-off-by-one", "span-missing", "header"])
def test_the_read_back_of_copied_members_still_finds_damage(small_base, tmp_path, damage):
    from wikisnap.transforms import verify

    tarball, _members, parts = assembled(small_base, tmp_path)
    path = Path(tarball.path)
    data = bytearray(path.read_bytes())
    spans = gzip_spans_of(path)
    copied_starts = {s for s, _e, _n in tarball.copied}
    output = tarball
    if damage == "rewritten-member":  # the bytes written differ from what was read back
        start, end = next((s, e) for s, e in spans[1:-1:2] if s not in copied_starts)
        data[(start + end) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        output = dataclasses.replace(tarball, md5=hashlib.md5(data).hexdigest())  # as if written so
    elif damage == "span-off-by-one":
        s, e, n = tarball.copied[0]
        output = dataclasses.replace(tarball, copied=((s + 1, e, n), *tarball.copied[1:]))
    elif damage == "span-missing":  # a copied member where a header is expected
        s, e, n = tarball.copied[0]
        header = next(hs for hs, he in spans if he == s)
        output = dataclasses.replace(tarball, copied=((header, e, n), *tarball.copied[1:]))
    else:  # a header member that holds no tar header
        header_start, header_end = spans[0]
        fake = gzip.compress(bytes(512), 3, mtime=0)
        data = data[:header_start] + fake + data[header_end:]
        path.write_bytes(bytes(data))
        output = dataclasses.replace(
            tarball,
            md5=hashlib.md5(data).hexdigest(),
            bytes=len(data),
            copied=tuple((s + len(fake) - header_end, e + len(fake) - header_end, n) for s, e, n in tarball.copied),
        )
    _counted, problems = verify.verify_file(output)
    assert problems and all(p.startswith(f"{path}: unreadable") for p in problems), problems


def test_a_base_shard_changed_after_it_was_published_fails_the_copy(small_base, tmp_path):
    from wikisnap.pipelines.update import discover_base

    base = tmp_path / "base"
    shutil.copytree(small_base, base)
    [snapshot] = discover_base(str(base)).snapshots
    scan = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset()))
    assert scan.indexed
    opts = write_options(tmp_path, {"ndjson", "parquet"})
    task = plan_members(snapshot, {}, opts, scan.members)[3]
    shard = Path(task.shard)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only its md5 tells
    shard.write_bytes(bytes(data))
    with pytest.raises(BaseError) as caught:
        rewrite_member(task, opts)
    assert str(caught.value).startswith(f"{shard}: base snapshot has md5") and "restore the base" in str(caught.value)


@pytest.mark.parametrize("where", [0.5, 0.999])
def test_a_touched_base_shard_that_changed_fails_on_its_md5_beside_the_merge(small_base, tmp_path, where):
    # The md5 is taken beside the merge: whether the damaged bytes break the merge (a data page)
    # or not (the footer's end is left alone here), the error is the md5's, naming the shard.
    from wikisnap.pipelines.update import discover_base

    base = tmp_path / "base"
    shutil.copytree(small_base, base)
    [snapshot] = discover_base(str(base)).snapshots
    scan = scan_base(snapshot, Wanted(frozenset(), frozenset(), frozenset()))
    opts = write_options(tmp_path, {"ndjson", "parquet"})
    first = plan_members(snapshot, {}, opts, scan.members)[3].member.first_id
    [task] = [t for t in plan_members(snapshot, {first: None}, opts, scan.members) if t.touched]
    shard = Path(task.shard)
    data = bytearray(shard.read_bytes())
    data[int(len(data) * where) - 16] ^= 0xFF  # same size: only its md5 tells for sure
    shard.write_bytes(bytes(data))
    with pytest.raises(BaseError) as caught:
        rewrite_member(task, opts)
    assert str(caught.value).startswith(f"{shard}: base snapshot has md5") and "restore the base" in str(caught.value)


def test_the_copied_hint_stays_out_of_the_manifest(small_base, update, tmp_path):
    events = write_lines(tmp_path / "events.ndjson", enwiki_events(records_by_id(small_base / TAR)))
    code, _stdout, stderr = update(small_base, [events], tmp_path / "out")
    assert code == 0, stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["enwiki"]["members/ns0/copied"] > 0
    assert all("copied" not in entry for entry in manifest["outputs"])


@pytest.mark.parametrize("local", [True, False])
def test_the_published_md5_is_checked_beside_or_in_the_map_pass(small_base, monkeypatch, local):
    # A local tarball is hashed in a thread of its own, a remote one in the pass that maps it.
    monkeypatch.setattr(find, "_is_local", lambda path: local)
    hashed: list[str] = []
    real_md5 = find._md5_hex
    monkeypatch.setattr(find, "_md5_hex", lambda path: hashed.append(path) or real_md5(path))
    wanted = wanted_of(records_by_id(small_base / TAR))
    good = scan_base(indexed(small_base), wanted)
    assert good.indexed and good.hits
    with pytest.raises(
        BaseError,
        match=f"has md5 {hashlib.md5((small_base / TAR).read_bytes()).hexdigest()} but the base's manifest says f{{32}}",
    ):
        scan_base(indexed(small_base, md5="f" * 32), wanted)  # the indexed scan, then the full one: both hash
    assert hashed == ([str(small_base / TAR)] * 3 if local else [])


def test_inserts_into_an_empty_shard_are_written(small_base, tmp_path):
    table = _largest_shard(small_base)
    rows = table_to_records(table)
    empty = tmp_path / "empty.parquet"
    pq.write_table(table.slice(0, 0), empty)
    opts = WriteOptions(str(tmp_path), str(tmp_path), 10**8, frozenset({"ndjson", "parquet"}), None)
    inserts = [(r["identifier"], r) for r in rows[:3]]
    _merge_shard_file(str(empty), str(tmp_path / "out.parquet"), dict(inserts), inserts, opts)
    assert pq.read_table(tmp_path / "out.parquet").equals(table.slice(0, 3))
