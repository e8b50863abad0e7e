"""EnrichFromSql: SQL table dumps (and `--qid-map`) → per-page enrichment for the bucket writers.

Only ids, titles and short values travel through these joins, never page bodies, and every join is
a keyed `CoGroupByKey` (no side inputs: enwiki's page_props alone has tens of millions of rows).

In:  `SqlInput`s (one per SQL file or QID map), the reader's `titles` `((db, title), ('A', ns, id))`,
     `redirects` `((db, target), ('R', RedirectRef))` and, with user_groups.sql, `editors`
     `((db, user_id), (ns, page_id))` (the registered editor of each article's revision).
Out: `enrichments`    `((db, ns, bucket), (page_id, {main_entity?, protection?, categories?, image?,
                      additional_entities?, flagged_stable?, editor_groups?}))`
     `redirect_lists` `((db, ns, bucket), (page_id, [(name, url), …]))` — redirects from redirect.sql,
                      the same shape as JoinRedirects' so the writer merges (and dedupes) them
     `stats` `((db, 'enrich/…'), n)`, `errors` `SqlDumpError` messages (a bad file fails the run).

The graph, as a table of contents:

    ReadSqlTables         each file → keyed rows (one file per call, spread by a Reshuffle)
    ResolveCategoryTargets (db, lt_id): categorylinks.cl_target_id rows meet linktarget titles
    NameRedirectPages     (db, rd_from): redirect.sql rows meet the redirect page's title
                          (page.sql or the XML dump's redirect page)
    JoinTitles            (db, title): SQL redirects and title-keyed QIDs meet the XML articles
    ResolvePageImages     file name: page_props page images meet image.sql rows (the wiki's own
                          and commonswiki's) → repository, upload URL, width and height
    JoinEditorGroups      (db, user_id): user_groups rows meet the editors of the articles
    GroupByPage           (db, page_id): QIDs, protections, categories, images, entity usage,
                          stable revisions and editor groups meet the XML articles
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.transforms.formats.sqldump import (
    SqlDumpError,
)
from wikisnap.transforms.parse.sqlrows import (
    COMMONS_DB,
    TAG_BY_FILE,
    TAG_BY_PAGE,
    TAG_BY_REDIRECT,
    TAG_BY_TARGET,
    TAG_BY_TITLE,
    TAG_BY_USER,
    EnrichOptions,
    SqlInput,
    file_url,
    keyed_rows,
    page_enrichment,
    raw_values,
    upload_dir,
)
from wikisnap.transforms.spilljoin import PARTITIONS, SpilledCoGroupByKey, map_each, sources

TAG_STATS = "stats"
TAG_ERRORS = "errors"
TAG_ENRICHMENTS = "enrichments"
TAG_REDIRECT_LISTS = "redirect_lists"
CATEGORY_MODES = ("wikitext", "sql", "both")
# Table → the record field whose coverage the writer counts (`enrich/{field}/…`) when it is given.
SQL_TABLE_COVERAGE = {
    "page_props": "image",
    "wbc_entity_usage": "entities",
    "user_groups": "editor_groups",
    "flaggedpages": "flagged",
}


class _ReadSqlFn(beam.DoFn):
    def __init__(self, options: EnrichOptions):
        self.options = options

    def setup(self) -> None:
        self.c_rows = Metrics.counter("wikisnap", "sql_rows_read")
        self.c_errors = Metrics.counter("wikisnap", "sql_input_errors")

    def process(self, inp: SqlInput):
        counts: dict[tuple[str, str], int] = {}
        try:
            for tag, element in keyed_rows(inp, self.options, counts):
                yield beam.pvalue.TaggedOutput(tag, element)
        except SqlDumpError as exc:
            # Not raised: Beam would bury the message in a traceback. The launcher fails the run.
            self.c_errors.inc()
            yield beam.pvalue.TaggedOutput(TAG_ERRORS, str(exc))
        self.c_rows.inc(sum(counts.values()))
        for key, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, (key, n))


# -- joins ----------------------------------------------------------------------------------


def _stat(db: str, name: str, n: int = 1):
    return beam.pvalue.TaggedOutput(TAG_STATS, ((db, f"enrich/{name}"), n))


class _ResolveTargetsFn(beam.DoFn):
    """(db, lt_id) → {L: [cl_from…], T: [category name]} → `((db, cl_from), ('C', name))`."""

    def setup(self) -> None:
        self.c_unmatched = Metrics.counter("wikisnap", "categorylinks_unmatched_target")

    def process(self, element):
        (db, _lt_id), groups = element
        names = sorted(set(groups["T"]))
        pages = list(groups["L"])
        if not pages:
            return
        if not names:
            # A link target outside namespace 14 (filtered) or missing from linktarget.sql.
            self.c_unmatched.inc(len(pages))
            yield _stat(db, "categorylinks/unmatched_target", len(pages))
            return
        for _l, page_id in pages:
            yield ((db, page_id), ("C", names[0][1]))


class _NameRedirectsFn(beam.DoFn):
    """(db, rd_from) → {D: [target], N: [redirect page title]} → `((db, target), ('S', name, url))`."""

    def __init__(self, options: EnrichOptions):
        self.options = options

    def setup(self) -> None:
        self.c_unnamed = Metrics.counter("wikisnap", "sql_redirects_without_title")

    def process(self, element):
        (db, _page_id), groups = element
        targets = sorted({t for (_d, t) in groups["D"]})
        if not targets:
            return
        names = sorted({n for (_n, n) in groups["N"]})
        site = self.options.site(db)
        if not names or site is None:
            # Neither page.sql nor the XML dump has the redirect page: its name is unknown.
            self.c_unnamed.inc()
            yield _stat(db, "redirect/without_title")
            return
        yield ((db, targets[0]), ("S", names[0], site.url(names[0])))


class _JoinTitlesFn(beam.DoFn):
    """(db, title) → {A: articles, S: SQL redirects, Q: title-keyed QIDs} → redirect lists, page items."""

    def __init__(self, bucket_span: int):
        self.bucket_span = bucket_span

    def setup(self) -> None:
        self.c_attached = Metrics.counter("wikisnap", "sql_redirects_attached")
        self.c_dangling = Metrics.counter("wikisnap", "sql_redirects_dangling")
        self.c_qids = Metrics.counter("wikisnap", "title_qids_matched")
        self.c_qids_unmatched = Metrics.counter("wikisnap", "title_qids_unmatched")

    def process(self, element):
        (db, _title), groups = element
        articles = sorted({(ns, page_id) for (_a, ns, page_id) in groups["A"]})
        redirects = sorted({(name, url) for (_s, name, url) in groups["S"]})
        qids = sorted({q for (_q, q) in groups["Q"]})
        if redirects:
            if articles:
                self.c_attached.inc(len(redirects))
                yield _stat(db, "redirect/attached", len(redirects))
                for ns, page_id in articles:
                    yield beam.pvalue.TaggedOutput(
                        TAG_REDIRECT_LISTS, ((db, ns, page_id // self.bucket_span), (page_id, redirects))
                    )
            else:
                self.c_dangling.inc(len(redirects))
                yield _stat(db, "redirect/unmatched_target", len(redirects))
        if qids:
            if articles:
                self.c_qids.inc()
                yield _stat(db, "title_qids/matched")
                for _ns, page_id in articles:
                    yield ((db, page_id), ("Q", qids[0]))
            else:
                self.c_qids_unmatched.inc()
                yield _stat(db, "title_qids/unmatched_title")


class _ResolveImagesFn(beam.DoFn):
    """file name → {P: [(db, page, rank)], L: [(db, w, h)]} → `((db, page), ('I', (rank, url, w, h)))`.

    The repository of a page's image: the wiki's own when its image.sql has the file, else Commons
    (MediaWiki looks locally first, then in the shared repository). Width and height come from the
    image.sql row of that repository, when it is given.
    """

    def __init__(self, options: EnrichOptions):
        self.options = options

    def setup(self) -> None:
        self.c_images = Metrics.counter("wikisnap", "page_images_resolved")

    def process(self, element):
        name, groups = element
        # no pages: a file no page of the run shows (most of image.sql). No early `return` here:
        # Beam warns about every generator DoFn whose process() holds both yield and return.
        pages = sorted(set(groups["P"]))
        sizes = {db: (w, h) for (_l, db, w, h) in sorted(set(groups["L"]))} if pages else {}
        for _p, db, page_id, rank in pages:
            if db in sizes:
                repo, directory = "local", upload_dir(db, self.options.site(db))
            else:
                repo, directory = "commons", upload_dir(COMMONS_DB, None)
                if db not in self.options.image_wikis:
                    # Without the wiki's own image.sql a local file cannot be told from a shared one.
                    yield _stat(db, "image/repository_assumed")
            width, height = sizes.get(db if repo == "local" else COMMONS_DB, (0, 0))
            self.c_images.inc()
            yield _stat(db, f"image/{repo}")
            yield _stat(db, "image/with_size" if width and height else "image/without_size")
            yield ((db, page_id), ("I", (rank, file_url(directory, name), width, height)))


class _JoinEditorGroupsFn(beam.DoFn):
    """(db, user_id) → {U: [(ns, page)], G: [NUL-joined groups]} → `((db, page), ('G', (user_id, groups)))` per page.

    Every page of a registered editor gets an item (groups may be empty), so the writer knows the
    editor was looked up: a record whose editor has no item keeps its editor as it is.
    """

    def setup(self) -> None:
        self.c_joined = Metrics.counter("wikisnap", "editor_groups_joined")

    def process(self, element):
        (db, user_id), groups = element
        pages = sorted(set(groups["U"]))
        names = tuple(sorted({name for run in groups["G"] for name in raw_values(run)}))
        if not pages:
            if names:  # members who made no revision of this snapshot: most of user_groups
                yield _stat(db, "editor_groups/users_without_revision")
            return
        if names:
            yield _stat(db, "editor_groups/editors_with_groups")
        for _ns, page_id in pages:
            self.c_joined.inc()
            yield ((db, page_id), ("G", (user_id, names)))


_KIND_SOURCE = {
    "Q": "main_entity",
    "P": "page_restrictions",
    "C": "categorylinks",
    "I": "image",
    "E": "entities",
    "F": "flagged",
    "G": "editor_groups",
    "D": "description",  # page_props' short descriptions (--formats structured)
}


class _GroupByPageFn(beam.DoFn):
    """(db, page_id) → {A: [ns], E: [(kind, value)]} → `((db, ns, bucket), (page_id, enrichment))`."""

    def __init__(self, options: EnrichOptions):
        self.options = options

    def setup(self) -> None:
        self.c_pages = Metrics.counter("wikisnap", "pages_enriched")
        self.c_unmatched = Metrics.counter("wikisnap", "sql_rows_unmatched_page")

    def process(self, element):
        (db, page_id), groups = element
        items = list(groups["E"])
        if not items:
            return
        namespaces = sorted(set(groups["A"]))
        if not namespaces:
            # Rows for pages that are not records of this run (other namespaces, redirects,
            # pages newer than the XML dump, or another part of the wiki).
            self.c_unmatched.inc(len(items))
            for kind in sorted({k for k, _ in items}):
                yield _stat(db, f"{_KIND_SOURCE[kind]}/unmatched_page", sum(1 for k, _ in items if k == kind))
            return
        enrichment = page_enrichment(self.options.site(db), items)
        self.c_pages.inc()
        for ns in namespaces:
            yield ((db, ns, page_id // self.options.bucket_span), (page_id, enrichment))


class EnrichFromSql(beam.PTransform):
    """(sql_inputs, titles, redirects[, editors]) → DoOutputsTuple(enrichments, redirect_lists, stats, errors).

    `sql_inputs` is a PCollection of `SqlInput`; `titles`/`redirects`/`editors` are ReadDumps'
    outputs (each one PCollection or a tuple of them). Every join goes through temp storage
    (`SpilledCoGroupByKey` under `temp_dir`): memory does not grow with rows or pages.
    `stats` is a tuple of PCollections of `((db, counter), n)`.
    """

    def __init__(self, options: EnrichOptions, temp_dir: str, consume: bool = False, partitions: int = PARTITIONS):
        super().__init__()
        self.options = options
        self.temp_dir = temp_dir
        self.consume = consume  # remove each join's runs once merged (see SpilledCoGroupByKey)
        self.partitions = partitions  # each join's merge tasks (`partitions_for`)

    def expand(self, pcolls):
        # (sql_inputs, titles, redirects[, editors]): editors only when user_groups.sql is given.
        sql_inputs, titles, xml_redirects, *rest = pcolls
        opts, temp = self.options, self.temp_dir
        rows = (
            sql_inputs
            # One file per call; spread them before reading (page_props and categorylinks are large).
            | "SpreadSqlFiles" >> beam.Reshuffle()
            | "ReadSqlTables"
            >> beam.ParDo(_ReadSqlFn(opts)).with_outputs(
                TAG_BY_PAGE,
                TAG_BY_TARGET,
                TAG_BY_REDIRECT,
                TAG_BY_TITLE,
                TAG_BY_FILE,
                TAG_BY_USER,
                TAG_STATS,
                TAG_ERRORS,
            )
        )
        link_rows = rows[TAG_BY_TARGET] | "SplitTargetRows" >> beam.Partition(
            lambda kv, n: 0 if kv[1][0] == "L" else 1, 2
        )
        categories = (
            {"L": link_rows[0], "T": link_rows[1]}
            | "GroupByLinkTarget" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
            | "ResolveCategoryTargets" >> beam.ParDo(_ResolveTargetsFn()).with_outputs(TAG_STATS, main="categories")
        )
        redirect_rows = rows[TAG_BY_REDIRECT] | "SplitRedirectRows" >> beam.Partition(
            lambda kv, n: 0 if kv[1][0] == "D" else 1, 2
        )
        xml_names = map_each(
            xml_redirects, "KeyRedirectPagesById", lambda kv: ((kv[0][0], kv[1][1].page_id), ("N", kv[1][1].name))
        )
        named = (
            {"D": redirect_rows[0], "N": (redirect_rows[1], *xml_names)}
            | "GroupByRedirectPage" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
            | "NameRedirectPages" >> beam.ParDo(_NameRedirectsFn(opts)).with_outputs(TAG_STATS, main="named")
        )
        joined = (
            {"A": sources(titles), "S": named.named, "Q": rows[TAG_BY_TITLE]}
            | "GroupByTitle" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
            | "JoinTitles"
            >> beam.ParDo(_JoinTitlesFn(opts.bucket_span)).with_outputs(TAG_STATS, TAG_REDIRECT_LISTS, main="qids")
        )
        file_rows = rows[TAG_BY_FILE] | "SplitFileRows" >> beam.Partition(lambda kv, n: 0 if kv[1][0] == "P" else 1, 2)
        images = (
            {"P": file_rows[0], "L": file_rows[1]}
            | "GroupByFileName" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
            | "ResolvePageImages" >> beam.ParDo(_ResolveImagesFn(opts)).with_outputs(TAG_STATS, main="images")
        )
        extra_items, extra_stats = [images.images], [images[TAG_STATS]]
        if rest:
            # Keyed by the editor's user id: one shuffle of (user, page) pairs meets user_groups.
            editor_groups = (
                {"U": sources(rest[0]), "G": rows[TAG_BY_USER]}
                | "GroupByEditor" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
                | "JoinEditorGroups" >> beam.ParDo(_JoinEditorGroupsFn()).with_outputs(TAG_STATS, main="groups")
            )
            extra_items.append(editor_groups.groups)
            extra_stats.append(editor_groups[TAG_STATS])
        articles = map_each(titles, "KeyArticlesById", lambda kv: ((kv[0][0], kv[1][2]), kv[1][1]))
        enriched = (
            {"A": articles, "E": (rows[TAG_BY_PAGE], categories.categories, joined.qids, *extra_items)}
            | "GroupByPage" >> SpilledCoGroupByKey(temp, self.partitions, consume=self.consume)
            | "BuildEnrichments" >> beam.ParDo(_GroupByPageFn(opts)).with_outputs(TAG_STATS, main=TAG_ENRICHMENTS)
        )
        stats = (
            rows[TAG_STATS],
            categories[TAG_STATS],
            named[TAG_STATS],
            joined[TAG_STATS],
            enriched[TAG_STATS],
            *extra_stats,
        )
        return {
            TAG_ENRICHMENTS: enriched[TAG_ENRICHMENTS],
            TAG_REDIRECT_LISTS: joined[TAG_REDIRECT_LISTS],
            TAG_STATS: stats,
            TAG_ERRORS: rows[TAG_ERRORS],
        }
