"""One page's Structured Contents record: its Article fields + the parts of its Parsoid HTML.

Pure, no Beam, no I/O. In: the Article record as the writer holds it (after the HTML join, SQL
enrichment and redirects), the page's short description (page_props `wikibase-shortdesc`, or
None). Out: the Structured record (schemas/structured.py key order), or None when the page has no
Parsoid HTML — its parts are never guessed from wikitext; the writer counts such pages.
"""

from __future__ import annotations

from wikisnap.schemas.structured import ARTICLE_KEYS
from wikisnap.transforms.parse.html import HtmlError, derive
from wikisnap.transforms.parse.structured import get_images, get_references, get_sections, parse, to_json
from wikisnap.transforms.parse.structured_infobox import get_infoboxes

__all__ = ["extract", "structured_record"]


def extract(html: str) -> dict:
    """Sections, infoboxes, references and images of one Parsoid document, parsed once.

    `{"sections": [Part], "infoboxes": [Part], "references": [Reference], "images": [Image]}`;
    GetSections runs last because it removes nodes from the tree.
    """
    doc = parse(html)
    out = {
        "infoboxes": get_infoboxes(doc),
        "references": get_references(doc),
        "images": get_images(doc),
    }
    out["sections"] = get_sections(doc)
    return {k: out[k] for k in ("sections", "infoboxes", "references", "images")}


def structured_record(article: dict, description: str | None = None) -> dict | None:
    """The Structured record of one page, or None without `article_body.html`.

    `abstract` is the record's (HTML-derived when the HTML was joined or the WME record had it;
    derived here from the HTML when a record kept as-is lacks it);
    `sections` and `infoboxes` come from WME's parser rules (transforms/parse/structured.py).
    """
    html = (article.get("article_body") or {}).get("html")
    if not isinstance(html, str) or not html:
        return None
    doc = parse(html)
    # only what the record holds (references and images of the whole page are not written);
    # GetSections last: it removes nodes from the tree
    infoboxes = [to_json(p) for p in get_infoboxes(doc)]
    sections = [to_json(p) for p in get_sections(doc)]
    record = {k: article[k] for k in ARTICLE_KEYS if k in article}
    if "abstract" not in record:
        # a WME record kept as-is (`--wme-records as-is`) may lack it: Structured Contents' abstract
        # is the HTML's (WME's GetAbstract), as the build derives it for every other record
        try:
            abstract = derive(html, with_abstract=True).get("abstract")
        except HtmlError:
            abstract = None
        if abstract:
            record["abstract"] = abstract
            record = {k: record[k] for k in ARTICLE_KEYS if k in record}  # back in WME's order
    if description:
        record["description"] = description
    if infoboxes:
        record["infoboxes"] = infoboxes
    if sections:
        record["sections"] = sections
    return record
