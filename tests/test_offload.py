"""The write phase's background thread: gzip members and Parquet row groups written beside the caller.

On real records of the enwiki sample: the bytes do not depend on how the caller cuts its writes,
match writing in line, and a failure on the thread reaches the caller.
"""

from __future__ import annotations

import gzip
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_spill import real_records
from wikisnap.schemas.arrow import ARTICLE_SCHEMA, records_to_table
from wikisnap.schemas.serialize import to_wme_json_bytes
from wikisnap.transforms import files
from wikisnap.transforms.codecs import gzip_compressor
from wikisnap.transforms.files import GzipMemberWriter, Offload
from wikisnap.transforms.write import ParquetFileWriter


def real_lines() -> list[bytes]:
    return [to_wme_json_bytes(record) + b"\n" for _, _, record in real_records()]


def write_member(path, pieces) -> bytes:
    writer = GzipMemberWriter(str(path))
    for piece in pieces:
        writer.write(piece)
    writer.close()
    assert writer.size == sum(len(p) for p in pieces)
    return path.read_bytes()


def test_gzip_bytes_depend_on_the_data_not_on_how_it_was_written(tmp_path):
    lines = real_lines()
    data = b"".join(lines)
    assert len(data) > 3 * files._GZIP_BATCH  # several batches, and a remainder
    by_line = write_member(tmp_path / "a.gz", lines)
    whole = write_member(tmp_path / "b.gz", [data])
    odd = write_member(tmp_path / "c.gz", [data[i : i + 7919] for i in range(0, len(data), 7919)])
    assert by_line == whole == odd
    assert gzip.decompress(by_line) == data
    # and the same as compressing the 1 MB cuts in line, on the caller's thread
    comp = gzip_compressor(3)
    cuts = [data[i : i + files._GZIP_BATCH] for i in range(0, len(data), files._GZIP_BATCH)]
    assert by_line == b"".join(comp.compress(cut) for cut in cuts) + comp.flush()


def test_the_compression_runs_on_another_thread(tmp_path, monkeypatch):
    seen = []
    original = GzipMemberWriter._compress

    def spy(self, data):
        seen.append(threading.current_thread().name)
        return original(self, data)

    monkeypatch.setattr(GzipMemberWriter, "_compress", spy)
    write_member(tmp_path / "a.gz", real_lines())
    assert len(seen) > 3
    assert all(name.startswith("wikisnap-gzip") for name in seen)


def test_an_error_on_the_thread_reaches_the_caller_and_others_go_on():
    done = []
    gate = threading.Event()

    def fail():
        raise OSError("disk full: /out/part-1.ndjson.gz")

    offload = Offload("test", depth=3)
    offload.submit(done.append, 1)
    offload.submit(fail)
    offload.submit(done.append, 2)
    with pytest.raises(OSError, match="disk full: /out/part-1"):
        offload.wait()
    assert done == [1, 2]
    # close raises a failure it has not reported yet and drops the calls queued behind it
    offload.submit(gate.wait)
    offload.submit(fail)
    offload.submit(done.append, 3)
    gate.set()
    with pytest.raises(OSError, match="disk full"):
        offload.close()
    # another writer on the same helper thread is not affected
    other = Offload("test")
    other.submit(done.append, 4)
    other.close()
    assert done[-1] == 4 and done.count(3) <= 1


def test_writers_on_one_thread_share_one_helper_and_a_fork_gets_its_own(tmp_path):
    import multiprocessing

    names = []
    for _ in range(3):
        offload = Offload("share")
        offload.submit(lambda: names.append(threading.current_thread().name))
        offload.close()
    assert len(set(names)) == 1 and names[0].startswith("wikisnap-share")
    # a forked child (an engine's worker process) starts its own helper: the parent's did not come along
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply(_offload_in_child) == "ok"


def _offload_in_child() -> str:
    out = []
    offload = Offload("share")
    offload.submit(out.append, "ok")
    offload.close()
    return out[0]


def test_calls_run_in_order_and_at_most_depth_wait():
    order = []
    gate = threading.Event()
    offload = Offload("order", depth=2)
    offload.submit(gate.wait)
    offload.submit(order.append, "a")
    blocked = threading.Thread(target=offload.submit, args=(order.append, "b"))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()  # two calls wait: the third submit blocks
    gate.set()
    blocked.join(5)
    offload.submit(order.append, "c")
    offload.close()
    assert order == ["a", "b", "c"]


def test_parquet_row_groups_from_small_tables_are_the_bytes_of_one_table(tmp_path):
    records = [record for _, _, record in real_records()]
    half = len(records) // 2
    groups = [records[:half], records[half:]]
    # the old way: one table per row group, written in line
    expected = tmp_path / "inline.parquet"
    with pq.ParquetWriter(str(expected), ARTICLE_SCHEMA, compression="zstd", write_statistics=True) as writer:
        for group in groups:
            table = records_to_table(group)
            writer.write_table(table, row_group_size=table.num_rows)
    # the writer's way: each row group arrives as many small tables, on the thread
    path = tmp_path / "offload.parquet"
    out = ParquetFileWriter(str(path), ARTICLE_SCHEMA)
    for group in groups:
        out.write(pa.concat_tables([records_to_table(group[i : i + 5]) for i in range(0, len(group), 5)]))
    assert out.close()
    assert path.read_bytes() == expected.read_bytes()
    assert pq.ParquetFile(str(path)).metadata.num_row_groups == 2


def test_a_parquet_write_error_raises_from_close_naming_the_problem(tmp_path):
    out = ParquetFileWriter(str(tmp_path / "bad.parquet"), ARTICLE_SCHEMA)
    out.write(pa.table({"not_a_column": [1, 2]}))
    with pytest.raises(ValueError, match="schema"):
        out.close()
