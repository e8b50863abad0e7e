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
from wikisnap.transforms.formats import fs, tarball
from wikisnap.transforms.formats.codecs import gzip_compressor
from wikisnap.transforms.formats.offload import Offload
from wikisnap.transforms.formats.tarball import GzipMemberWriter
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
    assert len(data) > 3 * tarball._GZIP_BATCH  # several batches, and a remainder
    by_line = write_member(tmp_path / "a.gz", lines)
    whole = write_member(tmp_path / "b.gz", [data])
    odd = write_member(tmp_path / "c.gz", [data[i : i + 7919] for i in range(0, len(data), 7919)])
    assert by_line == whole == odd
    assert gzip.decompress(by_line) == data
    # and the same as compressing the 1 MB cuts in line, on the caller's thread
    comp = gzip_compressor(3)
    cuts = [data[i : i + tarball._GZIP_BATCH] for i in range(0, len(data), tarball._GZIP_BATCH)]
    assert by_line == b"".join(comp.compress(cut) for cut in cuts) + comp.flush()


def test_the_compression_runs_on_another_thread(tmp_path, calling_threads):
    seen = calling_threads(GzipMemberWriter, "_compress")
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


def test_hashing_beside_gives_the_digests_of_hashing_in_line(calling_threads):
    # The read-back's md5 is taken on a helper thread while the reader inflates: the same
    # digests as in line, the hashing really on the helper, and `md5` waits for it.
    import hashlib
    import io

    from conftest import ENWIKI

    data = ENWIKI.read_bytes()
    threads = calling_threads(fs.HashingReader, "_hash")
    digests = []
    for beside in (False, True):
        threads.clear()
        reader = fs.HashingReader(io.BytesIO(data), beside=beside)
        while reader.read(7919):  # odd pieces: many hand-overs
            pass
        digests.append((reader.md5.hexdigest(), reader.sha1.hexdigest(), reader.count))
        reader.close()
        assert threads and all(name.startswith("wikisnap-hash") for name in threads) is beside
    assert digests[0] == digests[1] == (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(), len(data))


def test_assembled_tarball_md5_is_its_bytes_md5(tmp_path):
    # the tarball's md5 is taken on a helper thread while the parts are copied in
    import hashlib
    import io
    import tarfile

    from wikisnap.transforms.formats.tarball import MemberPart, assemble_tarball

    lines = real_lines()
    parts = []
    for n, chunk in enumerate((lines[:40], lines[40:])):
        gz = tmp_path / f"m{n}.gz"
        size = sum(len(line) for line in chunk)
        write_member(gz, [*chunk, tarball.tar_padding(size)])
        parts.append((f"m_{n}.ndjson", MemberPart("enwiki", 0, 0, n, size, len(chunk), str(gz), None, "")))
    md5, size, _copied = assemble_tarball(str(tmp_path / "t.tar.gz"), parts, 0)
    data = (tmp_path / "t.tar.gz").read_bytes()
    assert (md5, size) == (hashlib.md5(data).hexdigest(), len(data))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # a valid archive of the two members
        assert b"".join(tar.extractfile(m).read() for m in tar.getmembers()) == b"".join(lines)
