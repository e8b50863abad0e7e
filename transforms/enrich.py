"""EnrichFromSql: SQL table dumps (and `--qid-map`) → per-page enrichment for the bucket writers.

Only ids, titles and short values travel through these joins, never page bodies, and every join is
a keyed `CoGroupByKey` (no side inputs: enwiki's page_props alone has tens of millions of rows).

In:  `SqlInput`s (one per SQL file or QID map), the reader's `titles` `((db, title), ('A', ns, id))`
     and `redirects` `((db, target), ('R', RedirectRef))`.
Out: `enrichments`    `((db, ns, bucket), (page_id, {main_entity?, protection?, categories?}))`
     `redirect_lists` `((db, ns, bucket), (page_id, [(name, url), …]))` — redirects from redirect.sql,
                      the same shape as JoinRedirects' so the writer merges (and dedupes) them
     `stats` `((db, 'enrich/…'), n)`, `errors` `SqlDumpError` messages (a bad file fails the run).

The graph, as a table of contents:

    ReadSqlTables         each file → keyed rows (one file per call, spread by a Reshuffle)
    ResolveCategoryTargets (db, lt_id): categorylinks.cl_target_id rows meet linktarget titles
    NameRedirectPages     (db, rd_from): redirect.sql rows meet the redirect page's title
                          (page.sql or the XML dump's redirect page)
    JoinTitles            (db, title): SQL redirects and title-keyed QIDs meet the XML articles
    GroupByPage           (db, page_id): QIDs, protections, categories meet the XML articles
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.sqldump import (
    SqlDumpError,
    SqlHeader,
    iter_rows,
    mysql_time_to_rfc3339,
)

TAG_BY_PAGE = "by_page"
TAG_BY_TARGET = "by_target"
TAG_BY_REDIRECT = "by_redirect"
TAG_BY_TITLE = "by_title"
TAG_STATS = "stats"
TAG_ERRORS = "errors"
TAG_ENRICHMENTS = "enrichments"
TAG_REDIRECT_LISTS = "redirect_lists"

WIKIDATA_ENTITY_URL = "https://www.wikidata.org/entity/"
QID_MAP_TABLE = "qid_map"  # SqlInput.table of a --qid-map file
CATEGORY_MODES = ("wikitext", "sql", "both")


@dataclass(frozen=True)
class SqlInput:
    """One SQL table dump (or `--qid-map` file) and the wiki its rows belong to."""

    path: str
    table: str
    dbname: str | None  # None only for wb_items_per_site / title-keyed maps (rows name their wiki)
    header: SqlHeader | None = None


@dataclass(frozen=True)
class EnrichOptions:
    bucket_span: int
    sites: tuple[tuple[str, SiteInfo], ...]  # (db, SiteInfo) of every wiki of the run

    def site(self, db: str) -> SiteInfo | None:
        for name, site in self.sites:
            if name == db:
                return site
        return None


def full_title(site: SiteInfo, ns: int, title: str) -> str:
    """MediaWiki's stored `(namespace, 'Foo_bar')` → `'Category:Foo bar'` with the localised prefix."""
    text = title.replace("_", " ")
    name = site.namespace_name(ns)
    return f"{name}:{text}" if name and ns != 0 else text


def qid_of(value) -> str | None:
    """`'Q42'`, `'q42'`, `42` → `'Q42'`; None for anything that is not an item id."""
    text = str(value).strip() if value is not None else ""
    if text[:1] in ("Q", "q"):
        text = text[1:]
    return f"Q{int(text)}" if text.isdigit() and int(text) > 0 else None


# -- reading: file rows → keyed elements ----------------------------------------------------

_USED_COLUMNS: dict[str, tuple[str, ...]] = {
    "page": ("page_id", "page_namespace", "page_title", "page_is_redirect"),
    "page_props": ("pp_page", "pp_propname", "pp_value"),
    "redirect": ("rd_from", "rd_namespace", "rd_title", "rd_interwiki"),
    "categorylinks": ("cl_from", "cl_to", "cl_target_id"),
    "linktarget": ("lt_id", "lt_namespace", "lt_title"),
    "page_restrictions": ("pr_page", "pr_type", "pr_level", "pr_expiry"),
    "wb_items_per_site": ("ips_item_id", "ips_site_id", "ips_site_page"),
}


def keyed_rows(inp: SqlInput, sites: EnrichOptions, counts: dict[tuple[str, str], int]) -> Iterator[tuple[str, tuple]]:
    """Rows of one input → `(tag, (key, value))` elements for the joins; `counts[(db, name)]` per branch.

    Rows the snapshot cannot use (other properties, other namespaces, interwiki redirects) are
    counted and dropped here, before any shuffle.
    """
    if inp.table == QID_MAP_TABLE:
        yield from _qid_map_rows(inp, sites, counts)
        return
    header = inp.header
    assert header is not None
    # Convert only the columns used (most of the reader's time is value conversion).
    wanted = tuple(c for c in _USED_COLUMNS.get(inp.table, ()) if c in header.columns)
    cols = {name: i for i, name in enumerate(wanted)}
    db = inp.dbname
    site = sites.site(db) if db else None
    table = inp.table

    def count(name: str) -> None:
        key = (db, f"enrich/{table}/{name}")
        counts[key] = counts.get(key, 0) + 1

    rows = iter_rows(inp.path, header, wanted)
    if table == "page_props":
        i_page, i_name, i_value = cols["pp_page"], cols["pp_propname"], cols["pp_value"]
        for row in rows:
            if row[i_name] != "wikibase_item":
                count("rows_other_property")
                continue
            qid = qid_of(row[i_value])
            if qid is None:
                count("rows_bad_qid")
                continue
            count("rows_used")
            yield TAG_BY_PAGE, ((db, row[i_page]), ("Q", qid))
    elif table == "page_restrictions":
        i_page, i_type, i_level, i_expiry = cols["pr_page"], cols["pr_type"], cols["pr_level"], cols["pr_expiry"]
        for row in rows:
            count("rows_used")
            expiry = mysql_time_to_rfc3339(row[i_expiry]) or "infinity"
            yield TAG_BY_PAGE, ((db, row[i_page]), ("P", (row[i_type], row[i_level], expiry)))
    elif table == "categorylinks":
        i_from = cols["cl_from"]
        i_to = cols.get("cl_to")
        i_target = cols.get("cl_target_id")
        for row in rows:
            # During MediaWiki's migration both columns exist; cl_to needs no second join.
            if i_to is not None and row[i_to]:
                count("rows_used")
                yield TAG_BY_PAGE, ((db, row[i_from]), ("C", full_title(site, 14, row[i_to])))
            elif i_target is not None and row[i_target] is not None:
                count("rows_used")
                yield TAG_BY_TARGET, ((db, row[i_target]), ("L", row[i_from]))
            else:
                count("rows_without_target")
    elif table == "linktarget":
        i_id, i_ns, i_title = cols["lt_id"], cols["lt_namespace"], cols["lt_title"]
        for row in rows:
            # Only category targets are joined; linktarget also holds every link and template.
            if row[i_ns] != 14:
                count("rows_other_namespace")
                continue
            count("rows_used")
            yield TAG_BY_TARGET, ((db, row[i_id]), ("T", full_title(site, 14, row[i_title])))
    elif table == "redirect":
        i_from, i_ns, i_title = cols["rd_from"], cols["rd_namespace"], cols["rd_title"]
        i_iw = cols.get("rd_interwiki")
        for row in rows:
            if i_iw is not None and row[i_iw]:
                count("rows_interwiki")
                continue
            # rd_fragment names a section of the target: the target page is the same.
            target = site.normalize(full_title(site, row[i_ns], row[i_title]))
            if target is None:
                count("rows_without_target")
                continue
            count("rows_used")
            yield TAG_BY_REDIRECT, ((db, row[i_from]), ("D", target[1]))
    elif table == "page":
        i_id, i_ns, i_title = cols["page_id"], cols["page_namespace"], cols["page_title"]
        i_redirect = cols.get("page_is_redirect")
        for row in rows:
            # Only redirect pages' titles are needed (to name redirect.sql rows).
            if i_redirect is not None and not row[i_redirect]:
                count("rows_not_redirect")
                continue
            count("rows_used")
            yield TAG_BY_REDIRECT, ((db, row[i_id]), ("N", full_title(site, row[i_ns], row[i_title])))
    elif table == "wb_items_per_site":
        i_item, i_site, i_page = cols["ips_item_id"], cols["ips_site_id"], cols["ips_site_page"]
        yield from _title_qids(((r[i_site], r[i_page], r[i_item]) for r in rows), sites, counts, table)
    else:  # validated by the launcher; a guard for direct callers
        raise SqlDumpError(inp.path, f"table `{table}` is not read by wikisnap", kind="invalid")


def _title_qids(rows, sites: EnrichOptions, counts: dict[tuple[str, str], int], table: str):
    for site_id, page, item in rows:
        site = sites.site(site_id)
        if site is None:
            continue  # rows of wikis not in this run (wb_items_per_site covers every wiki)
        key = (site_id, f"enrich/{table}/rows_used")
        counts[key] = counts.get(key, 0) + 1
        target = site.normalize(page)
        qid = qid_of(item)
        if target is None or qid is None:
            continue
        yield TAG_BY_TITLE, ((site_id, target[1]), ("Q", qid))


def read_qid_map(path: str) -> tuple[tuple[str, ...], list[tuple]]:
    """A `--qid-map` file → (column names, rows). CSV, TSV (tab in the header line) or Parquet."""
    from wikisnap.transforms.files import open_read

    with open_read(path) as f:
        data = f.read()
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return tuple(table.column_names), list(
            zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
        )
    text = data.decode("utf-8-sig")
    first = text.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter="\t" if "\t" in first else ",")
    rows = list(reader)
    if not rows:
        return (), []
    return tuple(c.strip() for c in rows[0]), [tuple(r) for r in rows[1:] if r]


QID_MAP_LAYOUTS = (("page_id", "qid"), ("ips_item_id", "ips_site_id", "ips_site_page"))


def qid_map_layout(path: str, columns: tuple[str, ...]) -> str:
    """`'page_id'` or `'wb_items_per_site'`; SqlDumpError naming the file when neither fits."""
    if {"page_id", "qid"} <= set(columns):
        return "page_id"
    if {"ips_item_id", "ips_site_id", "ips_site_page"} <= set(columns):
        return "wb_items_per_site"
    raise SqlDumpError(
        path,
        f"a --qid-map needs columns page_id,qid or ips_item_id,ips_site_id,ips_site_page; it has {list(columns)}",
        kind="invalid",
    )


def _qid_map_rows(inp: SqlInput, sites: EnrichOptions, counts: dict[tuple[str, str], int]):
    columns, rows = read_qid_map(inp.path)
    cols = {name: i for i, name in enumerate(columns)}
    if qid_map_layout(inp.path, columns) == "wb_items_per_site":
        i_item, i_site, i_page = cols["ips_item_id"], cols["ips_site_id"], cols["ips_site_page"]
        yield from _title_qids(((r[i_site], r[i_page], r[i_item]) for r in rows), sites, counts, QID_MAP_TABLE)
        return
    i_page, i_qid = cols["page_id"], cols["qid"]
    i_db = cols.get("db", cols.get("wiki"))
    for row in rows:
        db = row[i_db] if i_db is not None else inp.dbname
        qid = qid_of(row[i_qid])
        try:
            page_id = int(row[i_page])
        except (TypeError, ValueError):
            qid = None
        key = (db, "enrich/qid_map/rows_used" if qid else "enrich/qid_map/rows_bad")
        counts[key] = counts.get(key, 0) + 1
        if qid:
            yield TAG_BY_PAGE, ((db, page_id), ("Q", qid))


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


def page_enrichment(site: SiteInfo | None, items: Iterable[tuple]) -> dict:
    """The `(kind, value)` items of one page → the fields the writer merges into its record.

    `Q` → `main_entity` (the smallest id if sources disagree, so reruns agree), `P` → `protection`
    sorted by type, `C` → `categories` sorted by name (SQL has no order), with urls.
    """
    qids, protections, categories = set(), set(), set()
    for kind, value in items:
        if kind == "Q":
            qids.add(value)
        elif kind == "P":
            protections.add(value)
        elif kind == "C":
            categories.add(value)
    out: dict = {}
    if qids:
        qid = min(qids, key=lambda q: (len(q), q))
        out["main_entity"] = {"identifier": qid, "url": WIKIDATA_ENTITY_URL + qid}
    if protections:
        out["protection"] = [{"type": t, "level": lv, "expiry": e} for t, lv, e in sorted(protections)]
    if categories:
        url = site.url if site is not None else (lambda name: "")
        out["categories"] = [{"name": name, "url": url(name)} for name in sorted(categories)]
    return out


_KIND_SOURCE = {"Q": "main_entity", "P": "page_restrictions", "C": "categorylinks"}


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
    """(sql_inputs, titles, redirects) → DoOutputsTuple(enrichments, redirect_lists, stats, errors).

    `sql_inputs` is a PCollection of `SqlInput`; `titles`/`redirects` are ReadDumps' outputs.
    """

    def __init__(self, options: EnrichOptions):
        super().__init__()
        self.options = options

    def expand(self, pcolls):
        sql_inputs, titles, xml_redirects = pcolls
        opts = self.options
        rows = (
            sql_inputs
            # One file per call; spread them before reading (page_props and categorylinks are large).
            | "SpreadSqlFiles" >> beam.Reshuffle()
            | "ReadSqlTables"
            >> beam.ParDo(_ReadSqlFn(opts)).with_outputs(
                TAG_BY_PAGE, TAG_BY_TARGET, TAG_BY_REDIRECT, TAG_BY_TITLE, TAG_STATS, TAG_ERRORS
            )
        )
        link_rows = rows[TAG_BY_TARGET] | "SplitTargetRows" >> beam.Partition(
            lambda kv, n: 0 if kv[1][0] == "L" else 1, 2
        )
        categories = (
            {"L": link_rows[0], "T": link_rows[1]}
            | "GroupByLinkTarget" >> beam.CoGroupByKey()
            | "ResolveCategoryTargets" >> beam.ParDo(_ResolveTargetsFn()).with_outputs(TAG_STATS, main="categories")
        )
        redirect_rows = rows[TAG_BY_REDIRECT] | "SplitRedirectRows" >> beam.Partition(
            lambda kv, n: 0 if kv[1][0] == "D" else 1, 2
        )
        xml_names = xml_redirects | "KeyRedirectPagesById" >> beam.Map(
            lambda kv: ((kv[0][0], kv[1][1].page_id), ("N", kv[1][1].name))
        )
        page_names = (redirect_rows[1], xml_names) | "FlattenRedirectNames" >> beam.Flatten()
        named = (
            {"D": redirect_rows[0], "N": page_names}
            | "GroupByRedirectPage" >> beam.CoGroupByKey()
            | "NameRedirectPages" >> beam.ParDo(_NameRedirectsFn(opts)).with_outputs(TAG_STATS, main="named")
        )
        joined = (
            {"A": titles, "S": named.named, "Q": rows[TAG_BY_TITLE]}
            | "GroupByTitle" >> beam.CoGroupByKey()
            | "JoinTitles"
            >> beam.ParDo(_JoinTitlesFn(opts.bucket_span)).with_outputs(TAG_STATS, TAG_REDIRECT_LISTS, main="qids")
        )
        articles = titles | "KeyArticlesById" >> beam.Map(lambda kv: ((kv[0][0], kv[1][2]), kv[1][1]))
        page_items = (rows[TAG_BY_PAGE], categories.categories, joined.qids) | "FlattenPageItems" >> beam.Flatten()
        enriched = (
            {"A": articles, "E": page_items}
            | "GroupByPage" >> beam.CoGroupByKey()
            | "BuildEnrichments" >> beam.ParDo(_GroupByPageFn(opts)).with_outputs(TAG_STATS, main=TAG_ENRICHMENTS)
        )
        stats = (
            rows[TAG_STATS],
            categories[TAG_STATS],
            named[TAG_STATS],
            joined[TAG_STATS],
            enriched[TAG_STATS],
        ) | "FlattenEnrichCounts" >> beam.Flatten()
        return {
            TAG_ENRICHMENTS: enriched[TAG_ENRICHMENTS],
            TAG_REDIRECT_LISTS: joined[TAG_REDIRECT_LISTS],
            TAG_STATS: stats,
            TAG_ERRORS: rows[TAG_ERRORS],
        }
