"""SQL table rows → keyed enrichment facts, and a page's enrichment from the facts that meet it.

Pure functions, no Beam: `keyed_rows` reads one table dump (page_props, redirect, categorylinks,
linktarget, image, wbc_entity_usage, user_groups, flaggedpages, a QID map …) into small tuples
keyed for the join they take part in (`TAG_BY_*`); `page_enrichment` turns what met one page into
its record fields (QID, image, entities, protection, categories). The joins are `enrich.py`'s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.sqldump import (
    SqlDumpError,
    SqlHeader,
    date_from_name,
    iter_raw_batches,
    iter_rows,
    mysql_time_to_rfc3339,
    raw_column_index,
    sql_int,
    sql_text,
)

TAG_BY_PAGE = "by_page"
TAG_BY_TARGET = "by_target"
TAG_BY_REDIRECT = "by_redirect"
TAG_BY_TITLE = "by_title"
TAG_BY_FILE = "by_file"
TAG_BY_USER = "by_user"

WIKIDATA_ENTITY_URL = "https://www.wikidata.org/entity/"
UPLOAD_URL = "https://upload.wikimedia.org/"
COMMONS_DB = "commonswiki"
# PageImages' page properties (extensions/PageImages PageImages::PROP_NAME_FREE / PROP_NAME), best first.
PAGE_IMAGE_PROPS = {"page_image_free": 0, "page_image": 1}
QID_MAP_TABLE = "qid_map"  # SqlInput.table of a --qid-map file


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
    # `--date` as `YYYYMMDD`: group memberships that expired before it are dropped (without it,
    # before the user_groups dump's own date, from its file name).
    snapshot_date: str | None = None
    # wikis whose own image.sql is among the inputs (without it a page image's repository is assumed)
    image_wikis: tuple[str, ...] = ()
    # `--formats structured`: page_props' short descriptions (`wikibase-shortdesc`) are keyed to
    # their page (only then: enwiki has millions, which other formats would shuffle for nothing)
    descriptions: bool = False

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


_FAMILIES = ("wiktionary", "wikibooks", "wikinews", "wikiquote", "wikisource", "wikiversity", "wikivoyage")


def upload_dir(db: str, site: SiteInfo | None) -> str:
    """Where a wiki's own uploads live on upload.wikimedia.org: `wikipedia/en`, `wiktionary/fr`, `wikipedia/commons`.

    WMF's rule (`$wgUploadPath = //upload.wikimedia.org/$site/$lang`): the project family and the
    language of the db name (`zh_min_nanwiki` → `wikipedia/zh-min-nan`); wikis outside the language
    families (commons, meta, species, wikidata …; their host is not `*.wikipedia.org`) live under
    `wikipedia/{db without 'wiki'}`.
    """
    for family in _FAMILIES:
        if db.endswith(family):
            return f"{family}/{db[: -len(family)].replace('_', '-')}"
    prefix = db[:-4] if db.endswith("wiki") else db
    host = (urllib.parse.urlsplit(site.base).hostname or "") if site is not None else ""
    if host and not host.endswith(".wikipedia.org"):
        return f"wikipedia/{prefix}"
    return f"wikipedia/{prefix.replace('_', '-')}"


def file_url(directory: str, name: str) -> str:
    """MediaWiki's URL of an original upload: hashed directories of md5(name), name rawurlencoded.

    `name` is the file's database key (underscores): `FileRepo::getHashPathForLevel` hashes it,
    `File::getUrlRel` appends `rawurlencode(name)` — `AJ_Ginnis.png` on Commons is
    `https://upload.wikimedia.org/wikipedia/commons/a/a2/AJ_Ginnis.png`.
    """
    name = name.replace(" ", "_")
    digest = hashlib.md5(name.encode("utf-8", "surrogateescape")).hexdigest()
    quoted = urllib.parse.quote(name.encode("utf-8", "surrogateescape"), safe="")
    return f"{UPLOAD_URL}{directory}/{digest[0]}/{digest[:2]}/{quoted}"


def entity_url(entity_id: str) -> str:
    return WIKIDATA_ENTITY_URL + entity_id


# MediaWiki's implicit groups of a registered user that dumps can show; `autoconfirmed` also
# depends on edit count and registration date (the user table is not dumped), so it is left out.
IMPLICIT_GROUPS = ("*", "user")
TEMP_IMPLICIT_GROUPS = ("*", "temp")
# WME's editor flags from groups (services/eventstream-listener/packages/builder/editorbuilder.go).
PATROLLER_GROUPS = frozenset(
    {
        "rollback",
        "abusefilter",
        "patroller",
        "reviewer",
        "autoreview",
        "autoreviewer",
        "editor",
        "autoeditor",
        "eliminator",
    }
)
ADVANCED_GROUPS = frozenset({"checkuser", "bureaucrat", "oversight", "steward"})


def editor_fields(explicit: Iterable[str], name: str = "") -> dict:
    """A registered editor's explicit groups → WME's `groups`, `is_bot`, `is_admin`, `is_patroller`, `has_advanced_rights`.

    Groups as MediaWiki's effective groups list them: explicit ones (sorted, as user_groups keeps
    them), then the implicit `*` and `user` (`*` and `temp` for a temporary account, `~2025-…`).
    """
    groups = sorted(set(explicit))
    temp = name.startswith("~") and name[1:5].isdigit() and name[5:6] == "-"
    groups += [g for g in (TEMP_IMPLICIT_GROUPS if temp else IMPLICIT_GROUPS) if g not in groups]
    out: dict = {"groups": groups}
    if "bot" in groups:
        out["is_bot"] = True
    if "sysop" in groups:
        out["is_admin"] = True
    if PATROLLER_GROUPS.intersection(groups):
        out["is_patroller"] = True
    if ADVANCED_GROUPS.intersection(groups):
        out["has_advanced_rights"] = True
    return out


def membership_cutoff(snapshot_date: str | None, path: str) -> str | None:
    """MySQL timestamp before which a group membership counts as expired (None: keep every row)."""
    day = snapshot_date or date_from_name(path)
    return f"{day}000000" if day else None


# -- reading: file rows → keyed elements ----------------------------------------------------

_USED_COLUMNS: dict[str, tuple[str, ...]] = {
    "page": ("page_id", "page_namespace", "page_title", "page_is_redirect"),
    "page_props": ("pp_page", "pp_propname", "pp_value"),
    "redirect": ("rd_from", "rd_namespace", "rd_title", "rd_interwiki"),
    "categorylinks": ("cl_from", "cl_to", "cl_target_id"),
    "linktarget": ("lt_id", "lt_namespace", "lt_title"),
    "page_restrictions": ("pr_page", "pr_type", "pr_level", "pr_expiry"),
    "wb_items_per_site": ("ips_item_id", "ips_site_id", "ips_site_page"),
    "image": ("img_name", "img_width", "img_height"),
    "wbc_entity_usage": ("eu_page_id", "eu_entity_id", "eu_aspect"),
    "user_groups": ("ug_user", "ug_group", "ug_expiry"),
    "flaggedpages": ("fp_page_id", "fp_stable"),
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

    def count(name: str, n: int = 1) -> None:
        key = (db, f"enrich/{table}/{name}")
        counts[key] = counts.get(key, 0) + n

    if table in _FAST_TABLES:
        # Whole INSERT lines through one C regex (sqldump.iter_raw_batches); counts kept in locals.
        tally: dict[str, int] = {}
        try:
            batches = iter_raw_batches(inp.path, header, wanted)
            yield from _FAST_TABLES[table](batches, raw_column_index(header, wanted), db, inp, sites, tally)
        finally:
            for name, n in tally.items():
                if n:
                    count(name, n)
        return
    rows = iter_rows(inp.path, header, wanted)
    if table == "page_restrictions":
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


# The tables read through the fast path: (raw batches, column index, db, input, options, tally) → elements.
# Dumps come in primary-key order, so wbc_entity_usage rows of one page (mostly) and user_groups
# rows of one user (always) are neighbours: each run of them travels as one element, which spares
# the shuffle an element per row. Their strings travel as the dump wrote them (escaped bytes,
# NUL-separated: mysqldump writes a NUL byte as `\0`, so none is inside a value) and are decoded
# by `raw_values` after the join, only for the pages and editors of the snapshot.
_SEP = b"\x00"


def raw_values(joined: bytes) -> list[str]:
    """A run's NUL-separated escaped values (see `_entity_usage_rows`) → their text."""
    return [_text(v) for v in joined.split(_SEP)]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape") if b"\\" not in raw else sql_text(raw)


def _page_props_rows(batches, idx, db, inp, sites, tally):
    i_page, i_name, i_value = idx["pp_page"], idx["pp_propname"], idx["pp_value"]
    descriptions = sites.descriptions  # `sites`: the EnrichOptions
    used = other = bad = 0
    for rows in batches:
        for row in rows:
            name = row[i_name]
            if name == b"wikibase_item":
                qid = qid_of(_text(row[i_value]))
                if qid is None:
                    bad += 1
                    continue
                used += 1
                yield TAG_BY_PAGE, ((db, int(row[i_page])), ("Q", qid))
            elif name == b"wikibase-shortdesc" and descriptions:
                used += 1
                yield TAG_BY_PAGE, ((db, int(row[i_page])), ("D", _text(row[i_value])))
            elif name in _PAGE_IMAGE_PROPS_RAW:
                # Met with image.sql by file name (ResolvePageImages); the best one is picked per page.
                used += 1
                file_name = _text(row[i_value]).replace(" ", "_")
                yield TAG_BY_FILE, (file_name, ("P", db, int(row[i_page]), _PAGE_IMAGE_PROPS_RAW[name]))
            else:
                other += 1
    tally.update(rows_used=used, rows_other_property=other, rows_bad_qid=bad)


def _image_rows(batches, idx, db, inp, sites, tally):
    i_name, i_width, i_height = idx["img_name"], idx["img_width"], idx["img_height"]
    n = 0
    for rows in batches:
        n += len(rows)
        for row in rows:
            yield TAG_BY_FILE, (_text(row[i_name]), ("L", db, sql_int(row[i_width]) or 0, sql_int(row[i_height]) or 0))
    tally["rows_used"] = n


def _entity_usage_rows(batches, idx, db, inp, sites, tally):
    i_page, i_entity, i_aspect = idx["eu_page_id"], idx["eu_entity_id"], idx["eu_aspect"]
    n = 0
    page, usages = None, []
    for rows in batches:
        n += len(rows)
        for row in rows:
            if row[i_page] != page:
                if usages:
                    yield TAG_BY_PAGE, ((db, int(page)), ("E", _SEP.join(usages)))
                page, usages = row[i_page], []
            usages.append(row[i_entity])
            usages.append(row[i_aspect])
    if usages:
        yield TAG_BY_PAGE, ((db, int(page)), ("E", _SEP.join(usages)))
    tally["rows_used"] = n


def _flaggedpages_rows(batches, idx, db, inp, sites, tally):
    i_page, i_stable = idx["fp_page_id"], idx["fp_stable"]
    n = 0
    for rows in batches:
        n += len(rows)
        for row in rows:
            yield TAG_BY_PAGE, ((db, int(row[i_page])), ("F", int(row[i_stable])))
    tally["rows_used"] = n


def _user_groups_rows(batches, idx, db, inp, sites, tally):
    i_user, i_group = idx["ug_user"], idx["ug_group"]
    i_expiry = idx.get("ug_expiry")
    cutoff = membership_cutoff(sites.snapshot_date, inp.path)
    raw_cutoff = cutoff.encode("ascii") if cutoff else None
    used = expired = 0
    user, groups = None, []
    check = raw_cutoff is not None and i_expiry is not None
    for rows in batches:
        for row in rows:
            # ug_expiry: NULL (never) or a MySQL timestamp; both compare as ASCII bytes
            if check and row[i_expiry] not in (b"", b"NULL") and row[i_expiry] < raw_cutoff:
                expired += 1
                continue
            used += 1
            if row[i_user] != user:
                if groups:
                    yield TAG_BY_USER, ((db, int(user)), _SEP.join(groups))
                user, groups = row[i_user], []
            groups.append(row[i_group])
    if groups:
        yield TAG_BY_USER, ((db, int(user)), _SEP.join(groups))
    tally.update(rows_used=used, rows_expired=expired)


_PAGE_IMAGE_PROPS_RAW = {name.encode("ascii"): rank for name, rank in PAGE_IMAGE_PROPS.items()}
_FAST_TABLES = {
    "page_props": _page_props_rows,
    "image": _image_rows,
    "wbc_entity_usage": _entity_usage_rows,
    "flaggedpages": _flaggedpages_rows,
    "user_groups": _user_groups_rows,
}


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
    from wikisnap.transforms.formats.fs import open_read

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


def page_enrichment(site: SiteInfo | None, items: Iterable[tuple]) -> dict:
    """The `(kind, value)` items of one page → the fields the writer merges into its record.

    `Q` → `main_entity` (the smallest id if sources disagree, so reruns agree), `P` → `protection`
    sorted by type, `C` → `categories` sorted by name (SQL has no order), with urls;
    `I` → `image` (page_image_free before page_image); `E` → `additional_entities` in the order
    MediaWiki's API lists wbc_entity_usage (entity id, then aspect, byte order); `F` → the page's
    stable revision id (`flagged_stable`); `G` → `editor_groups` `{user_id: (groups…)}`; `D` →
    `description`, the short description (page_props' primary key allows one; the smallest if not).
    """
    qids, protections, categories, images, usages, stable, editors = set(), set(), set(), set(), set(), set(), {}
    descriptions = set()
    for kind, value in items:
        if kind == "Q":
            qids.add(value)
        elif kind == "D":
            descriptions.add(value)
        elif kind == "P":
            protections.add(value)
        elif kind == "C":
            categories.add(value)
        elif kind == "I":
            images.add(value)
        elif kind == "E":  # entity, aspect, entity, aspect … of one run of rows
            values = raw_values(value)
            usages.update(zip(values[::2], values[1::2], strict=True))
        elif kind == "F":
            stable.add(value)
        elif kind == "G":
            editors[value[0]] = tuple(sorted(set(editors.get(value[0], ())) | set(value[1])))
    out: dict = {}
    if qids:
        qid = min(qids, key=lambda q: (len(q), q))
        out["main_entity"] = {"identifier": qid, "url": WIKIDATA_ENTITY_URL + qid}
    if protections:
        out["protection"] = [{"type": t, "level": lv, "expiry": e} for t, lv, e in sorted(protections)]
    if categories:
        url = site.url if site is not None else (lambda name: "")
        out["categories"] = [{"name": name, "url": url(name)} for name in sorted(categories)]
    if images:
        _rank, content_url, width, height = min(images)
        image: dict = {"content_url": content_url}
        if width and height:
            image["width"], image["height"] = width, height
        out["image"] = image
    if usages:
        aspects: dict[str, list[str]] = {}
        # MySQL compares these VARBINARY columns as bytes: sort the UTF-8 bytes, not the code points.
        for entity, aspect in sorted(usages, key=lambda u: (u[0].encode("utf-8"), u[1].encode("utf-8"))):
            aspects.setdefault(entity, []).append(aspect)
        out["additional_entities"] = [
            {"identifier": entity, "url": entity_url(entity), "aspects": list(asp)} for entity, asp in aspects.items()
        ]
    if stable:
        out["flagged_stable"] = max(stable)
    if editors:
        out["editor_groups"] = editors
    if descriptions:
        out["description"] = min(descriptions)
    return out
