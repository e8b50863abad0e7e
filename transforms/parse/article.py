"""Page → Article: the pure core of the parse stage.

`page_to_article` turns one `RawPage` of a dump into a WME Article record (a plain dict, keys in
any order — the serialiser orders them). Redirect pages are not records: `redirect_of` gives what
their target needs to list them. Nothing here touches Beam, files or the clock: the event id and
times derive from the page itself, so the same dump always gives the same bytes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.formats.dumpreader import RawPage
from wikisnap.transforms.formats.spill import remember_utf8
from wikisnap.transforms.parse.abstract import abstract
from wikisnap.transforms.parse.wikitext import analyze

# Content models whose text is wikitext; everything else (Scribunto, css, javascript, json,
# wikibase-item, flow-board, …) passes through with its text and no wikitext-derived fields.
WIKITEXT_MODELS = frozenset({"wikitext", "proofread-page", "proofread-index"})
EVENT_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # RFC 4122 URL namespace
_REDIRECT_IN_TEXT = re.compile(r"^\s*#REDIRECT\s*:?\s*\[\[([^\]|\n]+)", re.IGNORECASE)


class PageSkipped(Exception):
    """A page that is not a record for a reason the run counts (not an error)."""

    def __init__(self, counter: str):
        super().__init__(counter)
        self.counter = counter


@dataclass(frozen=True)
class RedirectRef:
    """A redirect page, as its target will list it."""

    dbname: str
    target: str  # normalised full title of the target (namespace prefix included)
    target_ns: int
    name: str  # the redirect page's own title
    page_id: int
    url: str


def redirect_target(page: RawPage) -> str | None:
    """The title a redirect page points to, or None when the page is not a redirect.

    Dumps since export-0.4 carry `<redirect title=…>`; older ones only the `#REDIRECT [[…]]`
    wikitext, read here as a fallback (English magic word only: localised ones are unknown).
    """
    if page.redirect:
        return page.redirect
    if page.redirect == "" and page.revision is not None and page.revision.text:
        match = _REDIRECT_IN_TEXT.match(page.revision.text)
        if match:
            return match.group(1)
    return None


def redirect_of(page: RawPage, target: str, site: SiteInfo) -> RedirectRef | None:
    """What the target of redirect page `page` needs; None when the target is empty."""
    normalised = site.normalize(target)
    if normalised is None:
        return None
    ns, full = normalised
    return RedirectRef(
        dbname=site.dbname, target=full, target_ns=ns, name=page.title, page_id=page.id, url=site.url(page.title)
    )


def event_id(dbname: str, page_id: int, rev_id: int) -> str:
    """A stable UUID for the `update` event of one revision (UUIDv5, not random)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"wikisnap:{dbname}:{page_id}:{rev_id}"))


def page_to_article(page: RawPage, site: SiteInfo, license: list[dict]) -> dict:
    """Build the WME Article for a non-redirect page; ValueError when the page cannot be one.

    In: a `RawPage` of a selected namespace. Out: the Article dict (no `redirects` yet — they are
    joined later). Fields follow OUTPUT-FORMAT.md §2 for the bulk shape of current-revision dumps.
    """
    rev = page.revision
    if rev is None:
        raise ValueError("page has no <revision>")
    text = rev.text
    editor: dict = {}
    if rev.editor_ip:
        editor = {"name": rev.editor_ip, "is_anonymous": True}
    elif rev.editor_name is not None or rev.editor_id:
        editor = {"identifier": rev.editor_id or 0, "name": rev.editor_name or ""}
    version: dict = {"identifier": rev.id, "comment": rev.comment or "", "is_minor_edit": rev.minor}
    if editor:
        version["editor"] = editor
    record: dict = {
        "name": page.title,
        "identifier": page.id,
        "date_modified": rev.timestamp,
        "version": version,
        "url": site.url(page.title),
        "namespace": {"identifier": page.ns},
        "in_language": {"identifier": site.lang},
        "is_part_of": {"identifier": site.dbname, "url": site.project_url},
        "license": license,
        "event": {
            "identifier": event_id(site.dbname, page.id, rev.id),
            "type": "update",
            "date_created": rev.timestamp,
            "date_published": rev.timestamp,
        },
    }
    if rev.parent_id:
        record["previous_version"] = {"identifier": rev.parent_id}
    if text is None:
        # Revision-deleted text: the record keeps its metadata and says the text is hidden.
        record["visibility"] = {"text": False, "editor": bool(editor), "comment": rev.comment is not None}
        return record
    version["number_of_characters"] = len(text)
    # (an ASCII text is its own UTF-8: `isascii` reads a flag, where `encode` copies the page;
    # a spill reuses the bytes of the encoding, see `remember_utf8`)
    if text.isascii():
        size = len(text)
    else:
        utf8 = text.encode("utf-8")
        size = len(utf8)
        remember_utf8(text, utf8)
    version["size"] = {"value": size, "unit_text": "B"}
    record["article_body"] = {"wikitext": text}
    if rev.model in WIKITEXT_MODELS:
        facts = analyze(text, site)
        version["noindex"] = facts.noindex
        version["maintenance_tags"] = {
            "citation_needed_count": facts.citation_needed_count,
            "pov_count": facts.pov_count,
            "clarification_needed_count": facts.clarification_needed_count,
            "update_count": facts.update_count,
        }
        if facts.categories:
            record["categories"] = [{"name": name, "url": site.url(name)} for name in facts.categories]
        if facts.templates:
            record["templates"] = [{"name": name, "url": site.url(name)} for name in facts.templates]
        if page.ns == 0:
            lead = abstract(text, site)
            if lead:
                record["abstract"] = lead
    return record
