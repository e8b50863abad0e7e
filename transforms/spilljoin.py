"""Joins whose memory does not grow with the number of pages: the shuffle goes through temp storage.

Beam's local runner keeps every element that crosses a stage boundary (a GroupByKey's table, a
Flatten's buffer) in memory until the next stage runs, so a per-page join — titles meeting
redirects, SQL rows meeting pages — held ~1-7 KB per page and a whole enwiki did not fit one
machine. Here the per-page elements never cross a boundary:

SpilledCoGroupByKey  `{tag: PCollection[(key, value)]}` → `PCollection[(key, {tag: [values]})]`,
                     what `beam.CoGroupByKey` gives. Each input is spilled, in the stage that
                     makes it, to sorted runs per key partition (a stable hash of the key) under
                     the temp folder; only the runs' paths are grouped (by partition); each
                     partition's runs are then merge-joined key by key. A group's values come
                     sorted by their encoded bytes: the same on every runner and bundle split.
SpillToBuckets       `PCollection[((db, ns, bucket), (page_id, item))]` → `((db, ns, bucket),
                     SpillRun)`: per-page join results (redirect lists, enrichments) as page-sorted
                     runs per bucket, which the bucket writer merge-joins with the records.

On a cluster the same graph shuffles run paths (the temp folder must be shared, as for the
records' spill runs); the runner's own shuffle carries only those.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import remove_files
from wikisnap.transforms.formats.layout import new_attempt
from wikisnap.transforms.formats.spill import SpillBuffer, merge_keyed_runs, merge_runs, write_keyed_run

PARTITIONS = 16  # key partitions of a spilled join at least: the merges a cluster can run side by side
# ... and at most: each spilling bundle writes one run per partition it has keys for, so more
# partitions are more, smaller temp files (and open files per merge), for no more parallelism.
MAX_PARTITIONS = 256
SPILL_BYTES = 4 << 20  # what one spilling step buffers before it writes its runs
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def partitions_for(workers: int) -> int:
    """Key partitions of a spilled join for a run of `workers` parallel workers: two per worker
    (a worker whose merge ends first takes another), at least PARTITIONS, rounded up to a power
    of two, at most MAX_PARTITIONS. The outputs do not depend on it: every merged group is keyed
    and sorted again by page before it is written (tests/test_spill.py builds with 16 and 64)."""
    wanted = max(PARTITIONS, 2 * max(1, workers))
    return min(MAX_PARTITIONS, 1 << (wanted - 1).bit_length())


def encode_key(key) -> bytes:
    """A key's bytes: equal keys (tuples of str and int) always pickle to equal bytes."""
    return pickle.dumps(key, protocol=_PROTOCOL)


def partition_of(key_bytes: bytes, partitions: int) -> int:
    """The partition of an encoded key: a stable hash (CRC-32), the same in every process."""
    return zlib.crc32(key_bytes) % partitions


def _global(value) -> WindowedValue:
    return WindowedValue(value, GlobalWindow().max_timestamp(), (GlobalWindow(),))


def sources(pcolls) -> tuple:
    """One PCollection or a tuple of them (per-page elements are never flattened: see spilljoin)."""
    return tuple(pcolls) if isinstance(pcolls, tuple | list) else (pcolls,)


def map_each(pcolls, label: str, fn) -> tuple:
    """`beam.Map(fn)` on each of `pcolls` (labels `label`, `label1`, …), fused where each is made."""
    return tuple(p | f"{label}{i or ''}" >> beam.Map(fn) for i, p in enumerate(sources(pcolls)))


class _SpillKeyedFn(beam.DoFn):
    """`(key, value)` → `(partition, run path)`: sorted runs per partition, written past a budget
    and at the end of each bundle (a retried bundle writes runs of a new attempt id)."""

    def __init__(self, temp_dir: str, join: str, tag: int, partitions: int, budget: int):
        self.temp_dir, self.join, self.tag = temp_dir, join, tag
        self.partitions, self.budget = partitions, budget

    def start_bundle(self) -> None:
        self.buffers: dict[int, list[tuple[bytes, int, bytes]]] = {}
        self.size = 0
        self.prefix = f"{self.tag}-{new_attempt()}"
        self.sequence = 0

    def process(self, element):
        key, value = element
        kb = encode_key(key)
        vb = pickle.dumps(value, protocol=_PROTOCOL)
        self.buffers.setdefault(partition_of(kb, self.partitions), []).append((kb, self.tag, vb))
        self.size += len(kb) + len(vb) + 80
        if self.size >= self.budget:
            yield from self._spill()

    def finish_bundle(self):
        for out in self._spill():
            yield _global(out)

    def _spill(self) -> Iterator[tuple[int, str]]:
        for partition, items in sorted(self.buffers.items()):
            path = layout.join_run_path(self.temp_dir, self.join, partition, self.prefix, self.sequence)
            write_keyed_run(path, items)
            yield (partition, path)
        self.buffers, self.size = {}, 0
        self.sequence += 1


class _MergeJoinFn(beam.DoFn):
    """`(partition, [run paths])` → `(key, {tag name: [values]})` for every key of the partition;
    with `consume`, the runs are removed once every key went downstream (see SpilledCoGroupByKey)."""

    def __init__(self, tags: tuple[str, ...], consume: bool = False):
        self.tags = tags
        self.consume = consume

    def process(self, element):
        _partition, paths = element
        key_bytes, groups = None, None
        for kb, tag, vb in merge_keyed_runs(paths, self.consume):
            if kb != key_bytes:
                if groups is not None:
                    yield pickle.loads(key_bytes), groups
                key_bytes, groups = kb, {name: [] for name in self.tags}
            groups[self.tags[tag]].append(pickle.loads(vb))
        if groups is not None:
            yield pickle.loads(key_bytes), groups
        if self.consume:
            remove_files(paths)


class SpilledCoGroupByKey(beam.PTransform):
    """`{tag: PCollection | tuple of PCollections of (key, value)}` → `(key, {tag: [values]})`.

    The drop-in for `beam.CoGroupByKey` on per-page keys (see the module doc). `consume=True`
    removes each partition's runs once it is merged: only where a failed bundle fails the run
    rather than being retried (the pinned local engine), since a retry would need them. A tag may take
    several PCollections: each is spilled where it is made, never flattened first (a Flatten of
    per-page elements is held in memory by the local runner too). Keys must pickle alike when
    equal (tuples of str and int do).
    """

    def __init__(self, temp_dir: str, partitions: int = PARTITIONS, budget: int | None = None, consume: bool = False):
        super().__init__()
        self.temp_dir, self.partitions, self.consume = temp_dir, partitions, consume
        self.budget = budget or SPILL_BYTES

    def expand(self, inputs: dict):
        tags = tuple(sorted(inputs))
        name = self.label.replace("/", "-")
        runs = []
        for n, tag in enumerate(tags):
            sources = inputs[tag] if isinstance(inputs[tag], tuple | list) else (inputs[tag],)
            for i, pcoll in enumerate(sources):
                spill = _SpillKeyedFn(self.temp_dir, name, n, self.partitions, self.budget)
                runs.append(pcoll | f"Spill{tag}{i or ''}" >> beam.ParDo(spill))
        return (
            tuple(runs)
            | "FlattenRunPaths" >> beam.Flatten()
            | "GroupRunsByPartition" >> beam.GroupByKey()
            | "MergeJoinRuns" >> beam.ParDo(_MergeJoinFn(tags, self.consume))
        )


class _SpillBucketItemsFn(beam.DoFn):
    """`((db, ns, bucket), (page_id, item))` → `((db, ns, bucket), SpillRun)` sorted by page id."""

    def __init__(self, temp_dir: str, kind: str, budget: int):
        self.temp_dir, self.kind, self.budget = temp_dir, kind, budget

    def start_bundle(self) -> None:
        self.spill = SpillBuffer(
            layout.bucket_items_dir(self.temp_dir, self.kind), self.kind, 1, self.budget, attempt=new_attempt()
        )

    def process(self, element):
        key, (page_id, item) = element
        # packed here: an item is a redirect list or an enrichment, not a record
        for run in self.spill.add_to(key, page_id, 0, pickle.dumps(item, protocol=_PROTOCOL)):
            yield ((run.dbname, run.ns, run.bucket), run)

    def finish_bundle(self):
        for run in self.spill.flush():
            yield _global(((run.dbname, run.ns, run.bucket), run))


class SpillToBuckets(beam.PTransform):
    """`((db, ns, bucket), (page_id, item))` → `((db, ns, bucket), SpillRun)` (see the module doc)."""

    def __init__(self, temp_dir: str, kind: str, budget: int | None = None):
        super().__init__()
        self.temp_dir, self.kind, self.budget = temp_dir, kind, budget or SPILL_BYTES

    def expand(self, items):
        return items | "SpillItemsByBucket" >> beam.ParDo(_SpillBucketItemsFn(self.temp_dir, self.kind, self.budget))


class PageItems:
    """A stream of `(page_id, item)` in page-id order, taken page by page as the records come.

    `take(page_id)` returns the items of that page (none: []) and drops those of smaller ids (pages
    without a record in this bucket). A page's items come sorted by their pickled bytes, so which
    of several items wins does not depend on the order runs were merged in.
    """

    def __init__(self, items: Iterable[tuple[int, object]]):
        self._items = iter(items)
        self._next = next(self._items, None)

    def take(self, page_id: int) -> list:
        while self._next is not None and self._next[0] < page_id:
            self._next = next(self._items, None)
        found = []
        while self._next is not None and self._next[0] == page_id:
            found.append(self._next[1])
            self._next = next(self._items, None)
        if len(found) > 1:
            found.sort(key=lambda item: pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        return found


def page_items(run_paths: list[str], consume: bool = False) -> Iterator[tuple[int, object]]:
    """The `(page_id, item)` of a bucket's item runs (`SpillToBuckets`), merged in page-id order;
    `consume`: each run removed once merged (`merge_runs`)."""
    return ((page_id, item) for page_id, _rev, item in merge_runs(run_paths, consume=consume))


def flatten(pcolls: tuple, label: str):
    """One PCollection of `pcolls` (a Flatten only when there are several: run paths, never pages)."""
    return pcolls[0] if len(pcolls) == 1 else pcolls | label >> beam.Flatten()
