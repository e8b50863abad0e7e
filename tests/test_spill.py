"""Spill runs on real records: pickled buffers, small frames, the budget in real bytes, the merge."""

from __future__ import annotations

import pickle

import pytest
from test_multistream import outputs
from test_prism import STUBS, enwiki_sql_dumps

from tests.conftest import ELWIKIVOYAGE, ENWIKI
from wikisnap.configs import license_for
from wikisnap.transforms import spilljoin
from wikisnap.transforms.formats import spill as spill_format
from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo
from wikisnap.transforms.formats.spill import SpillBuffer, iter_run, merge_runs, pack_record, write_run
from wikisnap.transforms.parse.article import page_to_article


def real_records() -> list[tuple[int, int, dict]]:
    site = read_siteinfo(str(ENWIKI))
    licence = license_for(site.dbname, 0)
    pages = iter_pages(str(ENWIKI), site, ReadStats(str(ENWIKI)))
    return [(p.id, p.revision.id, page_to_article(p, site, licence)) for p in pages if p.ns == 0]


def test_a_run_round_trips_records_over_many_small_frames(tmp_path):
    records = real_records()
    assert len(records) > 100
    run = tmp_path / "a.run"
    # dicts and already packed records are written alike
    items = [(i, r, pack_record(rec) if n % 2 else rec) for n, (i, r, rec) in enumerate(reversed(records))]
    write_run(str(run), items)
    back = list(iter_run(str(run)))
    assert back == sorted(records, key=lambda item: (item[0], -item[1]))
    # frames are small (a merge holds one per run): the enwiki sample's ~2 MB makes many
    packed = sum(len(pack_record(rec)) for _, _, rec in records)
    assert packed > 10 * spill_format._FRAME_TARGET
    frames = 0
    with open(run, "rb") as f:
        while head := f.read(spill_format._FRAME.size):
            packed_len, _raw_len = spill_format._FRAME.unpack(head)
            f.seek(packed_len, 1)
            frames += 1
    assert frames >= packed // spill_format._FRAME_TARGET // 2


def test_a_record_packs_with_the_utf8_page_to_article_made(tmp_path):
    """Right after `page_to_article`, a page's record packs with the UTF-8 it encoded for the size
    (not a second encoding); unpacked, it equals the record, keys in the same order, and a run
    mixing such records with plain pickles reads back the same through both readers."""
    site = read_siteinfo(str(ENWIKI))
    licence = license_for(site.dbname, 0)
    split = 0
    items = []
    for page in iter_pages(str(ENWIKI), site, ReadStats(str(ENWIKI))):
        if page.ns != 0:
            continue
        record = page_to_article(page, site, licence)
        blob = pack_record(record)
        text = record["article_body"]["wikitext"]
        assert blob[:1] == (b"\x80" if text.isascii() else spill_format._SPLIT)
        split += blob[:1] == spill_format._SPLIT
        assert pack_record(record)[:1] == b"\x80"  # the bytes are used once, then let go
        back = spill_format.unpack_record(blob)
        assert back == record and back is not record
        assert list(back) == list(record) and list(back["article_body"]) == list(record["article_body"])
        assert back["version"]["size"]["value"] == len(back["article_body"]["wikitext"].encode("utf-8"))
        items.append((page.id, page.revision.id, record, blob))
    assert split > 50
    run = tmp_path / "mixed.run"
    write_run(str(run), [(i, r, blob if n % 2 else pack_record(rec)) for n, (i, r, rec, blob) in enumerate(items)])
    expected = sorted(((i, r, rec) for i, r, rec, _ in items), key=lambda item: (item[0], -item[1]))
    assert list(iter_run(str(run))) == expected
    assert list(merge_runs([str(run)])) == expected


def test_the_spill_budget_counts_the_pickled_bytes_it_holds(tmp_path):
    records = real_records()
    budget = 300_000
    spill = SpillBuffer(str(tmp_path), "u00000", bucket_span=1_000_000, budget_bytes=budget)
    runs = []
    for page_id, rev_id, record in records:
        runs += spill.add("enwiki", 0, page_id, rev_id, record)
        # what waits is bytes, never more than the budget plus the last record
        assert all(isinstance(blob, bytes) for items in spill.buffers.values() for _, _, blob in items)
        assert spill.buffered < budget + len(pack_record(record)) + 100
    runs += spill.flush()
    sizes = [len(pack_record(rec)) + 100 for _, _, rec in records]
    # a run is written once the waiting bytes pass the budget: never before, at most one record after
    assert sum(sizes) // (budget + max(sizes)) <= len(runs) <= sum(sizes) // budget + 1
    assert sum(run.records for run in runs) == len(records)
    merged = list(merge_runs([run.path for run in runs]))
    assert [(i, r) for i, r, _ in merged] == sorted((i, r) for i, r, _ in records)
    assert [pickle.dumps(rec) for _, _, rec in merged] == [
        pickle.dumps(rec) for _, _, rec in sorted(records, key=lambda item: item[0])
    ]


def test_runs_are_written_by_a_thread_and_complete_when_returned(tmp_path, calling_threads):
    writers = calling_threads(spill_format, "_write_frame")
    records = real_records()
    spill = SpillBuffer(str(tmp_path), "u00000", bucket_span=1_000_000, budget_bytes=300_000)
    returned = []
    for page_id, rev_id, record in records:
        for run in spill.add("enwiki", 0, page_id, rev_id, record):
            # a run handed on is whole on storage: every record reads back
            assert len(list(iter_run(run.path))) == run.records
            returned.append(run)
    assert returned  # the budget was passed several times before the end
    last = spill.flush()
    for run in last:
        assert len(list(iter_run(run.path))) == run.records
    runs = returned + last
    assert sum(run.records for run in runs) == len(records)
    assert len({run.path for run in runs}) == len(runs)
    assert writers and all(name.startswith("wikisnap-spill") for name in writers)
    # one helper thread, kept for the next unit read on this thread (not one per spill)
    assert len(set(writers)) == 1
    again = SpillBuffer(str(tmp_path), "u00001", bucket_span=1_000_000, budget_bytes=300_000)
    for page_id, rev_id, record in records[:50]:
        again.add("enwiki", 0, page_id, rev_id, record)
    again.flush()
    assert set(writers) == {writers[0]}


def test_a_spill_write_error_stops_the_unit(tmp_path, monkeypatch):
    def full(out, raw):
        raise OSError(f"No space left on device: {tmp_path}/spill")

    monkeypatch.setattr(spill_format, "_write_frame", full)
    spill = SpillBuffer(str(tmp_path), "u00000", bucket_span=1_000_000, budget_bytes=300_000)
    with pytest.raises(OSError, match="No space left on device"):
        for page_id, rev_id, record in real_records():
            spill.add("enwiki", 0, page_id, rev_id, record)
        spill.flush()


def test_a_consuming_merge_removes_each_run_once_its_last_record_is_out(tmp_path):
    """Units' runs cover page-id ranges one after another: each goes while the merge moves on."""
    records = sorted(real_records())
    spill = SpillBuffer(str(tmp_path), "u00000", bucket_span=1_000_000, budget_bytes=300_000)
    runs = []
    for page_id, rev_id, record in records:  # in page order, as a dump's pages come
        runs += spill.add("enwiki", 0, page_id, rev_id, record)
    runs += spill.flush()
    assert len(runs) >= 3
    paths = [run.path for run in runs]
    last_of = {path: max(page_id for page_id, _, _ in iter_run(path)) for path in paths}
    kept = list(merge_runs(paths))
    merged = []
    for page_id, rev_id, record in merge_runs(paths, consume=True):
        merged.append((page_id, rev_id, record))
        # a run whose last page came out earlier is gone; one still ahead of the merge is there
        for path, last in last_of.items():
            if last < page_id:
                assert not (tmp_path / path).exists(), path
            elif last > page_id:
                assert (tmp_path / path).exists(), path
    assert [pickle.dumps(item) for item in merged] == [pickle.dumps(item) for item in kept]
    assert not any((tmp_path / path).exists() for path in paths)


def _runs_of(tmp_path, records, n: int) -> list[str]:
    """`n` runs holding every n-th record each (so a merge interleaves them all)."""
    paths = []
    for k in range(n):
        path = str(tmp_path / f"r{k}.run")
        write_run(path, [(i, r, rec) for i, r, rec in records[k::n]])
        paths.append(path)
    return paths


def _open_files(paths: list[str]) -> list[str]:
    import os

    fds = "/proc/self/fd"
    return [p for p in (os.path.realpath(os.path.join(fds, fd)) for fd in os.listdir(fds)) if p in paths]


def test_a_merge_reads_and_inflates_its_runs_ahead_on_a_helper_thread(tmp_path, calling_threads):
    records = real_records()
    paths = _runs_of(tmp_path, records, 3)
    inflaters = calling_threads(spill_format.pa, "decompress")
    merged = list(merge_runs(paths, with_source=True))
    assert [(i, r) for i, r, _, _ in merged] == sorted((i, r) for i, r, _ in records)
    by_id = {i: rec for i, _, rec in records}
    assert all(pickle.dumps(rec) == pickle.dumps(by_id[i]) for i, _, rec, _ in merged)
    assert all(path == paths[[i for i, _, _ in records].index(page) % 3] for page, _, _, path in merged)
    # every frame was inflated beside the merging thread, by one kept helper
    assert len(inflaters) > 3 and set(inflaters) == {inflaters[0]}
    assert inflaters[0].startswith("wikisnap-merge-read")
    assert _open_files(paths) == []


def test_a_merge_given_up_early_closes_its_runs(tmp_path):
    import gc

    paths = _runs_of(tmp_path, real_records(), 3)
    merged = merge_runs(paths)
    next(merged)
    assert len(_open_files(paths)) == 3  # reading ahead
    del merged
    gc.collect()
    assert _open_files(paths) == []


def test_a_run_longer_than_a_piece_is_read_and_freed_piece_by_piece(tmp_path, monkeypatch):
    """Pieces chain in page order: a consuming merge frees temp storage while a run is being read."""
    monkeypatch.setattr(spill_format, "_PIECE_TARGET", 100_000)
    records = sorted(real_records())
    spill = SpillBuffer(str(tmp_path), "u00000", bucket_span=1_000_000, budget_bytes=1_000_000)
    runs = []
    for page_id, rev_id, record in records:
        runs += spill.add("enwiki", 0, page_id, rev_id, record)
    runs += spill.flush()
    files = lambda: sorted(p for p in tmp_path.rglob("*.run*") if p.is_file())  # noqa: E731
    pieces = files()
    assert len(runs) >= 2 and len(pieces) >= 3 * len(runs)
    assert {str(p) for p in pieces} > {run.path for run in runs}  # piece 0 of each run is its path
    expected = sorted(records, key=lambda item: (item[0], -item[1]))
    for run in runs:  # each run reads back whole, across its pieces
        back = list(iter_run(run.path))
        assert len(back) == run.records and back == sorted(back, key=lambda item: (item[0], -item[1]))
    left = []
    merged = []
    for item in merge_runs([run.path for run in runs], consume=True):
        merged.append(item)
        left.append(len(files()))
    assert [pickle.dumps(item) for item in merged] == [pickle.dumps(item) for item in expected]
    # (the last piece goes once the merge asks past its last item)
    assert left == sorted(left, reverse=True) and left[-1] == 1 and not files()
    # freed along the way, not at the end of each run: half-way, most pieces of the first run are gone
    assert left[len(left) // 2] < len(pieces) - len(pieces) // (2 * len(runs))


# -- merges wider than the fan-in -----------------------------------------------------------


def _max_open_runs(monkeypatch) -> list[int]:
    """Track how many runs are open for reading at once: [most so far, open now]."""
    seen = [0, 0]
    real_open = spill_format.open_read

    class Tracked:
        def __init__(self, path):
            self.f = real_open(path)
            seen[1] += 1
            seen[0] = max(seen[0], seen[1])

        def read(self, n=-1):
            return self.f.read(n)

        def close(self):
            if self.f is not None:
                self.f.close()
                self.f = None
                seen[1] -= 1

    monkeypatch.setattr(spill_format, "open_read", Tracked)
    return seen


@pytest.mark.parametrize("consume", [False, True])
def test_a_merge_of_more_runs_than_its_fan_in_merges_groups_first(tmp_path, monkeypatch, consume):
    """20 runs at a fan-in of 3 (two levels of groups): the same items in the same order, ties
    (two copies of one revision, told apart by their bytes) in their runs' order, never more than
    3 runs open, and the merged runs gone once merged; the given runs kept unless `consume`."""
    records = real_records()
    # every page twice: a copy of the same revision with another byte in it, in another run
    twins = [(i, r, {**rec, "twin": n}) for n in (0, 1) for i, r, rec in records]
    paths = _runs_of(tmp_path, twins, 20)
    expected = [pickle.dumps(item) for item in merge_runs(paths)]  # 20 ≤ the default fan-in
    assert len(expected) == len(twins) and spill_format.MERGE_FAN_IN >= 20
    monkeypatch.setattr(spill_format, "MERGE_FAN_IN", 3)
    levels = []
    real_path = spill_format.layout.merged_run_path
    monkeypatch.setattr(spill_format.layout, "merged_run_path", lambda *a: levels.append(a[1]) or real_path(*a))
    open_runs = _max_open_runs(monkeypatch)
    merged = [pickle.dumps(item) for item in merge_runs(paths, consume=consume)]
    assert merged == expected
    assert sorted(set(levels)) == [1, 2] and levels.count(1) == 7 and levels.count(2) == 3
    assert open_runs == [3, 0]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ([] if consume else sorted(f"r{k}.run" for k in range(20)))


def test_a_keyed_merge_wider_than_its_fan_in_gives_the_same_items(tmp_path, monkeypatch):
    records = real_records()
    items = [(pickle.dumps(("enwiki", i)), n % 2, pack_record(rec)) for n, (i, _r, rec) in enumerate(records)]
    paths = []
    for k in range(10):
        paths.append(str(tmp_path / f"k{k}.run"))
        spill_format.write_keyed_run(paths[-1], items[k::10])
    expected = list(spill_format.merge_keyed_runs(paths))
    assert expected == sorted(items)
    monkeypatch.setattr(spill_format, "MERGE_FAN_IN", 4)
    open_runs = _max_open_runs(monkeypatch)
    assert list(spill_format.merge_keyed_runs(paths)) == expected
    assert open_runs == [4, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"k{k}.run" for k in range(10))
    assert list(spill_format.merge_keyed_runs(paths, consume=True)) == expected
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("joined", ["sql-tables", "stub-history"])
def test_joins_spilled_in_many_runs_merged_in_groups_give_the_same_bytes(build, tmp_path, monkeypatch, joined):
    """Every joined item its own run (a spill budget of one byte) and merges of at most 2 runs:
    the redirect lists, SQL enrichments and history of a build are the default build's bytes."""
    inputs = [ENWIKI, *enwiki_sql_dumps(tmp_path)] if joined == "sql-tables" else [ELWIKIVOYAGE, STUBS]
    code, _, err = build(inputs, tmp_path / "default")
    assert code == 0, err
    monkeypatch.setattr(spilljoin, "SPILL_BYTES", 1)
    monkeypatch.setattr(spill_format, "MERGE_FAN_IN", 2)
    widths = []
    real_premerge = spill_format._premerge
    monkeypatch.setattr(
        spill_format, "_premerge", lambda paths, *a, **k: widths.append(len(paths)) or real_premerge(paths, *a, **k)
    )
    code, _, err = build(inputs, tmp_path / "grouped")
    assert code == 0, err
    assert max(widths) > 8  # merges that had to be cut down, more than two levels deep
    assert outputs(tmp_path / "grouped") == outputs(tmp_path / "default") and outputs(tmp_path / "default")
