"""JoinRedirects: attach redirect pages to the articles they point to.

Only titles and ids travel through this join (tens of bytes per page), never page bodies, and
they travel through temp storage (`SpilledCoGroupByKey`): memory does not grow with pages.
In:  titles    `((db, title), ('A', ns, page_id))` (one PCollection, or a tuple of them)
     redirects `((db, target), ('R', RedirectRef))`
Out: `redirect_lists` `((db, ns, bucket), (page_id, [(name, url), …]))` for the bucket writers,
     `stats` `((db, counter), n)`.
A redirect whose target is not an article of the run (a missing page, another namespace than the
snapshot's, a redirect to a redirect) is counted as dangling.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.transforms.spilljoin import PARTITIONS, SpilledCoGroupByKey

TAG_LISTS = "redirect_lists"
TAG_STATS = "stats"


class _ResolveFn(beam.DoFn):
    def __init__(self, bucket_span: int):
        self.bucket_span = bucket_span

    def setup(self) -> None:
        self.c_attached = Metrics.counter("wikisnap", "redirects_attached")
        self.c_dangling = Metrics.counter("wikisnap", "redirects_dangling")

    def process(self, element):
        (db, _title), groups = element
        articles = sorted({(ns, page_id) for (_a, ns, page_id) in groups["A"]})
        refs = sorted((ref for (_r, ref) in groups["R"]), key=lambda r: (r.name, r.page_id))
        if not refs:
            return
        if not articles:
            self.c_dangling.inc(len(refs))
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, "redirects_dangling"), len(refs)))
            return
        # Titles are unique within a wiki; several ids only happen when a run is given two
        # copies of a page, and the writer keeps one of them — attach to each, count once.
        pairs = [(ref.name, ref.url) for ref in refs]
        for ns, page_id in articles:
            yield ((db, ns, page_id // self.bucket_span), (page_id, pairs))
        self.c_attached.inc(len(refs))
        yield beam.pvalue.TaggedOutput(TAG_STATS, ((db, "redirects_attached"), len(refs)))


class JoinRedirects(beam.PTransform):
    """(titles, redirects) → DoOutputsTuple(main=redirect lists keyed by bucket, stats)."""

    def __init__(self, bucket_span: int, temp_dir: str, consume: bool = False, partitions: int = PARTITIONS):
        super().__init__()
        self.bucket_span = bucket_span
        self.temp_dir = temp_dir
        self.consume = consume  # remove the join's runs once merged (see SpilledCoGroupByKey)
        self.partitions = partitions  # the join's merge tasks (`partitions_for`)

    def expand(self, pcolls):
        titles, redirects = pcolls
        return (
            {"A": titles, "R": redirects}
            | "GroupByTargetTitle" >> SpilledCoGroupByKey(self.temp_dir, self.partitions, consume=self.consume)
            | "ResolveTargets"
            >> beam.ParDo(_ResolveFn(self.bucket_span))
            .with_output_types(tuple[tuple[str, int, int], tuple[int, list]])
            .with_outputs(TAG_STATS, main=TAG_LISTS)
        )
