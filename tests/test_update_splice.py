"""A touched member's Parquet shard is spliced: the row groups no change falls in are copied from the
base shard as bytes, the others encoded, and the footer is Arrow's with the copied groups' offsets
moved (transforms/update/splice.py). The bytes must be those of encoding every group, the way the
update wrote the shard before; checked on real shards of the enwiki sample (tests/data).
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_update import enwiki_events, records_by_id, write_lines
from test_update_onepass import TAR, _cases, _largest_shard

from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA, table_to_records
from wikisnap.transforms.update import rewrite, splice
from wikisnap.transforms.update.splice import CODECS, empty_footer, file_footer, footer_bytes, group_entries
from wikisnap.transforms.write import PARQUET_SETTINGS, WriteOptions


def written(table: pa.Table, rows: int, **settings) -> bytes:
    """`table` as the build's writer writes a shard (`PARQUET_SETTINGS` unless `settings` say
    otherwise), in row groups of `rows` rows, each written as one chunk."""
    sink, whole = io.BytesIO(), table.combine_chunks()
    with pq.ParquetWriter(sink, ARTICLE_SCHEMA, **(settings or PARQUET_SETTINGS)) as writer:
        for start in range(0, whole.num_rows, rows):
            part = whole.slice(start, rows)
            writer.write_table(part, row_group_size=part.num_rows)
    return sink.getvalue()


@pytest.mark.parametrize("kind, schema", [("parquet", ARTICLE_SCHEMA), ("text", TEXT_SCHEMA)])
def test_a_shards_footer_is_the_empty_files_with_its_groups_moved_in(small_base, kind, schema):
    # Every group moved to where it is: the footer Arrow wrote, byte for byte, from the footer of
    # an empty file of the same writer.
    shards = sorted((small_base / kind).rglob("*.parquet"))
    assert len(shards) > 5
    empty = empty_footer(schema, PARQUET_SETTINGS)
    for shard in shards:
        data = shard.read_bytes()
        raw = footer_bytes(data)
        groups = group_entries(raw, CODECS["zstd"], True)
        assert [g.num_rows for g in groups] == [
            m.num_rows for m in map(pq.ParquetFile(shard).metadata.row_group, range(len(groups)))
        ]
        # the column chunks are one run from after `PAR1` to the footer
        assert groups[0].start == 4 and groups[-1].end == len(data) - 8 - len(raw)
        assert all(a.end == b.start for a, b in zip(groups, groups[1:], strict=False))
        entries = [g.at(g.start, n) for n, g in enumerate(groups)]
        assert file_footer(empty, entries, sum(g.num_rows for g in groups)) == data[-8 - len(raw) :], shard
        # moved elsewhere, the offsets change and nothing else: Arrow reads the chunks there
        moved = [g.at(g.start + 1000, n) for n, g in enumerate(groups)]
        shifted = (
            data[:4]
            + b"\0" * 1000
            + data[4 : groups[-1].end]
            + file_footer(empty, moved, pq.ParquetFile(shard).metadata.num_rows)
        )
        assert pq.read_table(io.BytesIO(shifted)).equals(pq.read_table(shard))


def test_a_spliced_shard_has_the_bytes_of_every_group_encoded(small_base, tmp_path, monkeypatch):
    table = _largest_shard(small_base)
    rows = table_to_records(table)
    base = tmp_path / "base.parquet"
    base.write_bytes(written(table, 2))
    opts = WriteOptions(str(tmp_path), str(tmp_path), 10**8, frozenset({"ndjson", "parquet"}), None)
    encoded = []
    real_encoded_group = splice.encoded_group
    monkeypatch.setattr(splice, "encoded_group", lambda *a: encoded.append(1) or real_encoded_group(*a))
    for case, touched in enumerate([*_cases(rows), {}]):
        inserts = sorted((pid, rec) for pid, rec in touched.items() if rec is not None)
        reference = tmp_path / f"reference-{case}.parquet"
        rewrite._merge_shard_groups(str(base), str(reference), touched, inserts)  # every group encoded
        out = tmp_path / f"out-{case}.parquet"
        encoded.clear()
        with monkeypatch.context() as m:
            m.setattr(rewrite, "_merge_shard_groups", None)  # the splice must not fall back
            rewrite._merge_shard_file(str(base), str(out), touched, inserts, opts)
        assert out.read_bytes() == reference.read_bytes(), touched
        # only the groups a change falls in were encoded (an emptied one is not written)
        ids = table["identifier"].to_pylist()
        lasts = ids[1::2] + ([ids[-1]] if len(ids) % 2 else [])
        hit = {n // 2 for n, pid in enumerate(ids) if pid in touched}
        hit |= {g for g, group in enumerate(rewrite.inserts_by_group(lasts, inserts)) if group}
        assert len(encoded) <= len(hit), touched
    assert len(lasts) > 3  # and for one page removed, one group of them was encoded:
    encoded.clear()
    rewrite._merge_shard_file(str(base), str(tmp_path / "one.parquet"), {rows[5]["identifier"]: None}, [], opts)
    assert len(encoded) == 1


def test_a_shard_another_writer_wrote_is_encoded_group_by_group(small_base, tmp_path):
    # Copied groups must be the bytes today's writer would give: a shard written with other
    # settings (snappy) is not spliced, every group is encoded as before (in zstd).
    table = _largest_shard(small_base)
    rows = table_to_records(table)
    base = tmp_path / "base.parquet"
    base.write_bytes(written(table, 2, compression="snappy", write_statistics=True))
    with pytest.raises(splice.SpliceError, match="another codec"):
        splice.splice_shard(io.BytesIO(base.read_bytes()), io.BytesIO(), iter([]), ARTICLE_SCHEMA, PARQUET_SETTINGS)
    opts = WriteOptions(str(tmp_path), str(tmp_path), 10**8, frozenset({"ndjson", "parquet"}), None)
    touched = {rows[0]["identifier"]: None}
    reference, out = tmp_path / "reference.parquet", tmp_path / "out.parquet"
    rewrite._merge_shard_groups(str(base), str(reference), touched, [])
    rewrite._merge_shard_file(str(base), str(out), touched, [], opts)
    assert out.read_bytes() == reference.read_bytes()
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).compression == "ZSTD"


def test_a_page_index_or_another_codec_is_not_spliced(small_base):
    # Offsets this module does not move (a page index) and chunks today's settings would not
    # write make it refuse, never write a wrong footer.
    table = _largest_shard(small_base)
    with pytest.raises(splice.SpliceError, match="page index"):
        group_entries(footer_bytes(written(table, 2, **PARQUET_SETTINGS, write_page_index=True)))
    snappy = footer_bytes(written(table, 2, compression="snappy", write_statistics=True))
    with pytest.raises(splice.SpliceError, match="another codec"):
        group_entries(snappy, CODECS["zstd"], True)
    assert len(group_entries(snappy, CODECS["snappy"], True)) == (table.num_rows + 1) // 2


def test_more_than_fourteen_groups_take_the_long_list_header(tmp_path: Path):
    table = pa.table({"a": list(range(40_000)), "b": [str(i % 97) * 50 for i in range(40_000)]})
    data = splice.writer_bytes([table.slice(s, 2_000) for s in range(0, 40_000, 2_000)], table.schema, PARQUET_SETTINGS)
    raw = footer_bytes(data)
    groups = group_entries(raw)
    assert len(groups) == 20
    entries = [g.at(g.start, n) for n, g in enumerate(groups)]
    assert file_footer(empty_footer(table.schema, PARQUET_SETTINGS), entries, 40_000) == data[-8 - len(raw) :]


def test_an_update_with_damaged_base_shards_fails_with_exit_2_naming_them(small_base, update, tmp_path):
    # Touched members' shards (spliced) and untouched ones (copied) alike: each one's md5 is
    # checked before any of its bytes is used, and nothing is published.
    base = tmp_path / "base"
    shutil.copytree(small_base, base)
    events = write_lines(tmp_path / "events.ndjson", enwiki_events(records_by_id(base / TAR)))
    shards = sorted((base / "parquet").rglob("*.parquet"))
    for shard in shards:
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF  # same size: only its md5 tells
        shard.write_bytes(bytes(data))
    code, _stdout, stderr = update(base, [events], tmp_path / "out")
    assert code == 2, stderr
    assert all(f"{shard}: base snapshot has md5" in stderr for shard in shards), stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_two_merges_at_once_hand_the_default_memory_pool_back():
    # Two touched members are merged side by side; each asks for jemalloc around its shard. The
    # pool is process-wide: after both, the one from before is the default again.
    import threading

    before = pa.default_memory_pool().backend_name
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first():
        with rewrite._retaining_pool():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with rewrite._retaining_pool():
            second_in.set()
            first_out.wait(5)  # the first leaves while this one is still inside

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pa.default_memory_pool().backend_name == before
