"""Parsoid HTML → WME Structured Contents parts: sections, infoboxes, links, images, references.

Pure functions, no Beam, no I/O. A Parsoid document goes in (parsed once with lexbor, see
`parse`); typed, frozen facts come out: `Part` (name, type, value, values, has_parts, images,
links), `Link`, `Image`, `Reference`, in the order and with the quirks of Wikimedia Enterprise's
`general/parser` package (GetSections, GetInfoBoxes, GetLinks, GetImages, GetReferences,
GetText), ported from reading its public Go code, not copied. `to_json` turns them into the
JSON-ready dicts WME writes (field order and `omitempty` of `general/schema`).

How the Go code is mirrored without copying a tree per call: WME clones the selection for each
GetText/GetImages and removes, inside the clone, every descendant that is a `<script>`/`<style>`
or whose class holds "noprint", "noviewer", "navigation-only" or whose style holds "display:none"
(cleanHTML), then joins `<wbr>`-split text nodes. Here the tree is never copied: the removed
elements are one set of node ids (`excl`), skipped below the node a call starts from (never the
node itself, as a clone's root is never removed), and `<wbr>` joins are done while walking.
GetSections really removes nodes (it works on its own copy of the document), so it runs on a
tree of its own or last.

Where the port could differ from WME (none seen on WME's 59 test documents): a selector with a
descendant part (`.infobox-data ul`) matched from a node of a clone may, in lexbor, use ancestors
above the clone's root, which goquery's clone does not have (an infobox nested in another's data
cell); `<wbr>` joins are made after cleanHTML's removals (GetInfoBoxes also joins before them);
a `data-mw` that is not JSON names no template (gjson may still read the parts before the break).

Go's regexp `\\s` is ASCII whitespace only, so the regexes here spell it `[\\t\\n\\f\\r ]`; Go's
`$` without `(?m)` is the end of the text, spelt `\\Z`.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass, field
from functools import cache

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "Document",
    "Image",
    "Link",
    "Part",
    "Reference",
    "get_images",
    "get_links",
    "get_references",
    "get_sections",
    "get_text",
    "parse",
    "to_json",
]

# Part types, as WME names them.
INFOBOX, FIELD, IMAGE, SECTION, LIST, LIST_ITEM, PARAGRAPH = (
    "infobox",
    "field",
    "image",
    "section",
    "list",
    "list_item",
    "paragraph",
)


@dataclass(frozen=True, slots=True)
class Image:
    """An `<img>` as WME's parser reads it. `height` is the `width` attribute again: WME's quirk."""

    content_url: str = ""
    alternative_text: str = ""
    caption: str = ""
    height: int = 0
    width: int = 0


@dataclass(frozen=True, slots=True)
class Link:
    """An `<a>`: absolute URL, its text (or its title when it has none) and the images inside it."""

    url: str = ""
    text: str = ""
    images: tuple[Image, ...] = ()


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a page: a section, paragraph, list, list item, infobox, infobox field or image."""

    name: str = ""
    type: str = ""
    value: str = ""
    values: tuple[str, ...] = ()
    has_parts: tuple[Part, ...] = ()
    images: tuple[Image, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """An entry of a references list (id, position, text, links)."""

    id: str = ""
    index: int = 0
    text: str = ""
    links: tuple[Link, ...] = ()


# -- lexbor tag ids (comparing ints is ~5x cheaper than reading node.tag) ------------------------

_TEXT, _COMMENT = 2, 4  # lexbor's _TEXT and _EM_COMMENT; element ids are all above 5


def _tag_ids() -> dict[str, int]:
    names = "section p ul ol dl li dt dd tr th td wbr figure img a h1 h2 h3 h4 h5 h6".split()
    tree = LexborHTMLParser("<body>" + "".join(f"<{n}></{n}>" for n in names if n not in ("tr", "th", "td")) + "")
    ids = {n.tag: n.tag_id for n in tree.body.traverse() if n.tag_id > 5}
    table = LexborHTMLParser("<table><tr><th></th><td></td></tr></table>")
    ids.update({n.tag: n.tag_id for n in table.body.traverse() if n.tag_id > 5})
    return ids


_IDS = _tag_ids()
_SECTION, _P, _UL, _OL, _DL = (_IDS[t] for t in ("section", "p", "ul", "ol", "dl"))
_LI, _DT, _DD, _TR, _TH, _TD = (_IDS[t] for t in ("li", "dt", "dd", "tr", "th", "td"))
_WBR, _FIGURE = _IDS["wbr"], _IDS["figure"]
_HEADINGS = frozenset(_IDS[f"h{i}"] for i in range(1, 7))
_LISTS = frozenset((_UL, _OL, _DL))
_ITEMS = frozenset((_LI, _DT, _DD))

# -- GetText's regexes ---------------------------------------------------------------------------

_S = r"[\t\n\f\r ]"


@cache
def _c_classes() -> tuple[re.Pattern, re.Pattern]:
    """Go's `\\p{C}` as two regexes, its code points below U+10000 and above.

    Python's `re` has no `\\p{..}`: the ranges come from unicodedata (whose Unicode version may trail
    Go's by one: only newly assigned code points can differ). Built on first use (0.4 s, once per
    process), not at import. Split at U+FFFF because `re` tests a BMP class as one bitmap while the
    hundreds of astral ranges (unassigned planes) would be tried one by one on every character.
    """
    # category names are two characters and only the first is upper case, so a run of "C?" pairs
    # found in the joined names starts at an even offset: offset // 2 is the code point
    names = "".join(map(unicodedata.category, map(chr, range(sys.maxunicode + 1))))
    ranges = [(m.start() // 2, m.end() // 2 - 1) for m in re.finditer(r"(?:C[a-z])+", names)]

    def char_class(rngs: list[tuple[int, int]]) -> re.Pattern:
        body = "".join(re.escape(chr(lo)) + ("" if lo == hi else "-" + re.escape(chr(hi))) for lo, hi in rngs)
        return re.compile("[" + body + "]")

    bmp = char_class([(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF])
    astral = char_class([(max(lo, 0x10000), hi) for lo, hi in ranges if hi > 0xFFFF])
    return bmp, astral


# WME's allInOneEmpty, `\\p{C}|\\[[^\\]]+\\]|•`, in two passes: no C code point is "[", "]" or "•", so
# removing the bracketed spans first, then the C code points, removes exactly what the one pass does.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_BRACKETS = re.compile(r"\[[^\]]+\]|•")
# Go's \\p{Zs} (space separators; unchanged since Unicode 4.1), each made a space by allInOneSpace
_ZS_TO_SPACE = dict.fromkeys([0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000], " ")
_DELIM_AFTER_SPACES = re.compile(r" +([:;：；, ，、])")
_SPACE_RUNS = re.compile(r"  +")
_PAREN_SPACES = re.compile(r"( *\() +| +(\))")
_PUNCT_AFTER_SPACE = re.compile(r" ([,.!?])")
_IS_REF = re.compile(r"\[[0-9]+\]")
_EDIT = re.compile(r"\(" + _S + r"*edit" + _S + r"*\)")
_DELIM_END = re.compile(r"(?:[:;；,，、]+)\Z")
_NEWLINES = re.compile(r"\n+")
_ATOI = re.compile(r"[+-]?[0-9]+\Z")

# cleanHTML's removals (rmNodesText + cleanHTMlLookup). Its "#comment" never matches (Find("*")
# yields elements only); comments carry no text anyway.
_CLEAN_CSS = (
    'script, style, [class*="noprint"], [class*="noviewer"], [class*="navigation-only"], [style*="display:none"]'
)


def _clean_text(text: str) -> str:
    """GetText's clean-up regexes, in WME's order, on the joined text nodes.

    Once the C code points are gone, so are \\t \\n \\f \\r: Go's `\\s` can only be " " in the
    later steps, which lets them be plain string operations where no regex is needed.
    """
    if "[" in text or "•" in text:
        text = _BRACKETS.sub("", text)
    c_bmp, c_astral = _c_classes()
    text = c_bmp.sub("", text)
    if _ASTRAL.search(text):
        text = c_astral.sub("", text)
    text = _DELIM_AFTER_SPACES.sub(r"\1", text)  # allInOneDelimiter
    if "&" in text:  # allInOneSpace: space runs, &#160;, &nbsp; and \\p{Zs} each become one space
        text = text.replace("&#160;", " ").replace("&nbsp;", " ")
    text = text.translate(_ZS_TO_SPACE)
    if "  " in text:
        text = _SPACE_RUNS.sub(" ", text)  # spaces
    if "(" in text or ")" in text:
        text = _PAREN_SPACES.sub(r"\1\2", text)  # spacesAroundParenthesis
    text = _PUNCT_AFTER_SPACE.sub(r"\1", text)  # spaceBeforePunctuation (its &nbsp; is gone by now)
    return text.strip()


# -- the document --------------------------------------------------------------------------------


class Document:
    """A parsed Parsoid document: lexbor tree, wiki base URL and the ids of cleanHTML's removals."""

    __slots__ = ("tree", "base_url", "clean")

    def __init__(self, tree: LexborHTMLParser):
        self.tree = tree
        base = tree.css_first("base")
        href = base.attributes.get("href") if base is not None else None
        self.base_url = f"https:{href}" if href else ""  # WME's getBaseURL
        self.clean = frozenset(n.mem_id for n in tree.css(_CLEAN_CSS))


def parse(html: str) -> Document:
    """Parse one Parsoid HTML document for the functions of this module."""
    return Document(LexborHTMLParser(html))


def _find(root: LexborNode, selector: str, excl: frozenset[int] | set[int] | None) -> list[LexborNode]:
    """goquery's Find: matches strictly below `root`, in document order, none inside a removed node."""
    rid = root.mem_id
    found = []
    seen = {rid}  # lexbor's css() also tests the node itself
    for node in root.css(selector):
        mid = node.mem_id
        if mid in seen:
            continue  # lexbor lists a node once per selector of a group it matches
        seen.add(mid)
        if excl and _removed(node, rid, excl):
            continue
        found.append(node)
    return found


def _select(tree: LexborHTMLParser, selector: str) -> list[LexborNode]:
    """The tree's matches of a selector group, each once, in document order (as goquery)."""
    return _unique(tree.css(selector))


def _removed(node: LexborNode, root_id: int, excl) -> bool:
    while node is not None and node.mem_id != root_id:
        if node.mem_id in excl:
            return True
        node = node.parent
    return False


def _has_class(node: LexborNode, name: str) -> bool:
    return name in (node.attributes.get("class") or "").split()


def _children(node: LexborNode, excl) -> list[LexborNode]:
    """Element children of `node` (goquery's Children), removed ones left out."""
    out = []
    child = node.first_child
    while child is not None:
        if child.tag_id > 5 and not (excl and child.mem_id in excl):
            out.append(child)
        child = child.next
    return out


# -- GetText -------------------------------------------------------------------------------------


def _walk_text(node: LexborNode, out: list[str], excl, ign: frozenset[int]) -> None:
    """Text nodes below `node`, in order, as WME's GetText writes them (each is followed by a space).

    WME also writes a space before a text whose node or first three ancestors follow an element;
    since every text is already followed by one, that changes nothing once spaces are squeezed.
    A `<wbr>` between two text nodes joins them (RemoveWordBreakOpportunity): no space there.
    """
    pending: str | None = None
    state = 0  # 1: the last kept sibling is text; 2: text, then removed <wbr>s
    child = node.first_child
    while child is not None:
        tid = child.tag_id
        if tid == _TEXT:
            data = child.text_content or ""
            if state == 2:
                pending += data
            else:
                if pending is not None:
                    out.append(pending)
                pending = data
            state = 1
        elif tid > 5:
            if excl and child.mem_id in excl:
                pass  # removed from the clone: not a sibling at all
            elif tid == _WBR:
                state = 2 if state else 0
            else:
                state = 0
                if not (ign and tid in ign):
                    if pending is not None:
                        out.append(pending)
                        pending = None
                    _walk_text(child, out, excl, ign)
        else:
            state = 0  # a comment: not text, so no join across it
        child = child.next
    if pending is not None:
        out.append(pending)


def get_text(nodes: list[LexborNode], excl=None, ign: frozenset[int] = frozenset()) -> str:
    """WME's GetText: the visible text of `nodes`, whitespace squeezed, `[..]` and `•` dropped.

    `excl` holds the ids of nodes removed below each of `nodes` (Document.clean); `ign` the tag ids
    of child elements not descended into (WME passes "tr" for infobox cells).
    """
    out: list[str] = []
    for node in nodes:
        tid = node.tag_id
        if tid == _TEXT:
            out.append(node.text_content or "")
        elif tid > 5 or tid == 3:
            _walk_text(node, out, excl, ign)
    return _clean_text(" ".join(out)) if out else ""


def _raw_text(node: LexborNode, excl) -> str:
    """goquery's Text() on a cleaned clone: every text node below `node` joined, nothing squeezed."""
    out = []
    child = node.first_child
    while child is not None:
        tid = child.tag_id
        if tid == _TEXT:
            out.append(child.text_content or "")
        elif tid > 5 and not (excl and child.mem_id in excl):
            out.append(_raw_text(child, excl))
        child = child.next
    return "".join(out)


# -- GetImages and GetLinks ----------------------------------------------------------------------


def _atoi(value: str | None) -> int:
    """Go's strconv.Atoi, 0 on a syntax error (as WME ignores the error)."""
    if value and _ATOI.match(value):
        return int(value)
    return 0


def _unique(nodes: list[LexborNode]) -> list[LexborNode]:
    seen: set[int] = set()
    out = []
    for node in nodes:
        if node.mem_id not in seen:
            seen.add(node.mem_id)
            out.append(node)
    return out


def _images(roots: list[LexborNode], excl) -> list[Image]:
    images: list[Image] = []
    for root in roots:
        rid = root.mem_id
        for img in root.css("img"):
            if img.mem_id == rid or (excl and img.mem_id in excl):
                continue
            # ancestors inside the clone, closest first (the clone's root included)
            ancestors = []
            node = img.parent
            dropped = False
            while node is not None:
                ancestors.append(node)
                if node.mem_id == rid:
                    break
                if excl and node.mem_id in excl:
                    dropped = True
                    break
                node = node.parent
            if dropped:
                continue
            attrs = img.attributes
            width = _atoi(attrs.get("width"))
            # caption: goquery Text() of the `.infobox-caption`s under an `.infobox-image` ancestor,
            # else GetText of the `figcaption`s under a `figure` ancestor
            boxes = [a for a in ancestors if _has_class(a, "infobox-image")]
            caption = "".join(
                _raw_text(c, excl) for c in _unique([c for a in boxes for c in _find(a, ".infobox-caption", excl)])
            )
            if not caption:
                figures = [a for a in ancestors if a.tag_id == _FIGURE]
                if figures:
                    caption = get_text(_unique([c for a in figures for c in _find(a, "figcaption", excl)]), excl)
            images.append(
                Image(
                    content_url="https:" + (attrs.get("src") or ""),  # "https:https://…" for math: WME's
                    alternative_text=attrs.get("alt") or "",
                    caption=caption,
                    height=width,  # WME reads the width attribute for both
                    width=width,
                )
            )
    return images


def get_images(doc: Document, node: LexborNode | None = None) -> list[Image]:
    """WME's GetImages: every visible `<img>` below `node` (default: the whole page), in order.

    content_url = "https:" + src; width and height both from the `width` attribute (WME's quirk);
    caption from an enclosing infobox image cell, else from the enclosing figure's figcaption.
    """
    return _images([node if node is not None else doc.tree.root], doc.clean)


def _links(root: LexborNode, base_url: str, find_excl, excl) -> list[Link]:
    links = []
    for a in _find(root, "a", find_excl):
        href = a.attributes.get("href") or ""
        if href.startswith("./File:"):
            continue
        text = get_text([a], excl)
        images = tuple(_images([a], excl))
        if not text:
            text = a.attributes.get("title") or ""
        if href.startswith("./"):
            url = base_url + href[2:]
        elif href.startswith("//"):
            url = "https:" + href
        elif not href.startswith("http"):
            url = base_url + href  # "#cite_note-1" → the wiki's base URL + fragment, as WME does
        else:
            url = href
        links.append(Link(url=url, text=text, images=images))
    return links


def get_links(doc: Document, node: LexborNode) -> list[Link]:
    """WME's GetLinks: the `<a>`s below `node` but file links (`./File:…`), with absolute URLs.

    WME's links keep the prefix "./File:" only in English: a file link of another wiki's namespace
    name (`./Datei:…`) is kept, as WME keeps it.
    """
    return _links(node, doc.base_url, None, doc.clean)


def get_text_of(doc: Document, node: LexborNode) -> str:
    """GetText of one node of `doc` (its cleanHTML removals applied)."""
    return get_text([node], doc.clean)


# -- GetSections ---------------------------------------------------------------------------------

_INFOBOX_CSS = ".infobox, .infobox_v3, .infobox_v2, .sinottico"
# WME's rmSelector: removed from the page before sections are read
_RM_CSS = ", ".join(
    """figure footer input link nav noscript script style sub sup table
    .book .catlinks .citation .gallery .gallerybox .hatnote .listaref .metadata
    .mw-authority-control .mw-editsection-bracket .mw-editsection-divider
    .mw-editsection-like .mw-editsection-visualeditor .mw-editsection
    .mw-footer-container .mw-gallery-packed .mw-magiclink-isbn .mw-mf-linked-projects .mw-redirectedfrom
    .NavFrame .navigation-not-searchable .noprint .normdaten .portal-bar .printfooter
    .refbegin-columns .refbegin .references .reflist .side-box .sister-box .sistersitebox
    .vector-body-before-content .vector-dropdown .vector-header-container .vector-page-toolbar .vector-settings
    *[role="navigation"]""".split()
)
# WME's rmHeaderParent: a section whose heading has one of these ids goes. Kept as WME writes it,
# two commas missing: "#Notable_people #Primary_sources" and "#Article_connexe #Bibliografia" are
# descendant selectors, so "Notable people", "Primary sources" and "Article connexe" headings stay.
_RM_HEADER_CSS = """#References, #Explanatory_notes, #Further_reading, #See_also, #External_links, #Notes, #Notable_people
	#Primary_sources, #Secondary_sources, #Tertiary_sources, #Citations, #General_and_cited_sources, #Bibliography,
	#Referencias, #Véase_también, #Bibliografía, #Enlaces_externos, #Ciudades_hermanas, #Referencias_y_notas,
	#Literatur, #Weblinks, #Einzelnachweise,
	#Références, #Voir_aussi, #Bibliographie, #Liens_externes, #Notes_et_références, #Notes, #Références,
	#Galerie_photos, #Liens_externes, #Notes_et_références, #Notes, #Références, #Bibliographie, #Voir_aussi,
	#Referencias, #Véase_también, #Bibliografía, #Enlaces_externos, #Ciudades_hermanas, #Referencias_y_notas,
	#Referências, #Ver_também, #Bibliografia, #Ligações_externas, #Notas, #Referências,
	#Annexes, #Bibliographie, #Liens_externes, #Notes_et_références, #Notes, #Références, #Article_connexe
	#Bibliografia, #Voci_correlate, #Altri_progetti, #Collegamenti_esterni, #Note_e_riferimenti, #Note, #Riferimenti"""


@dataclass(slots=True)
class _Draft:
    """A Part while it is built (WME appends to a section's parts after creating it)."""

    name: str = ""
    type: str = ""
    value: str = ""
    values: tuple[str, ...] = ()
    has_parts: list = field(default_factory=list)
    images: tuple[Image, ...] = ()
    links: tuple[Link, ...] = ()

    def freeze(self) -> Part:
        return Part(
            self.name,
            self.type,
            self.value,
            self.values,
            tuple(p.freeze() if isinstance(p, _Draft) else p for p in self.has_parts),
            self.images,
            self.links,
        )


def _unlink(node: LexborNode | None) -> None:
    if node is not None and node.parent is not None:
        node.remove()


def _without_citations(doc: Document, node: LexborNode) -> str:
    """WME's removeInlineCitation: GetText without `[12]` and `(edit)`, no space before a full stop."""
    text = _EDIT.sub(" ", _IS_REF.sub(" ", get_text([node], doc.clean)))
    return text.replace(" .", ".").strip()


def _paragraphs(doc: Document, node: LexborNode) -> list[Part]:
    """WME's GetParagraphs of one `<p>`, `<ul>` or `<ol>`; kept when it has text, links or items."""
    if node.tag_id == _P:
        part = Part(type=PARAGRAPH, value=_without_citations(doc, node), links=tuple(get_links(doc, node)))
    else:
        # GetListItems: every `<li>` below, nested ones too, each with the text of its sub-lists
        items = []
        for li in _find(node, "li", None):
            item = Part(type=LIST_ITEM, value=_without_citations(doc, li), links=tuple(get_links(doc, li)))
            if item.value or item.links:
                items.append(item)
        part = Part(type=LIST, has_parts=tuple(items))
    return [part] if part.value or part.links or part.has_parts else []


def _sections(doc: Document, node: LexborNode, parent: _Draft | None) -> list[_Draft]:
    sections: list[_Draft] = []
    for child in _children(node, None):
        tid = child.tag_id
        if tid == _SECTION:
            heading = _find(child, "h2,h3,h4,h5,h6,h7", None)[:1]  # the first below, at any depth
            draft = _Draft(type=SECTION, name=_IS_REF.sub(" ", get_text(heading, doc.clean)))
            if not draft.name and child.attributes.get("data-mw-section-id") == "0":
                draft.name = "Abstract"
            # Go appends the sub-sections after the call that appended the paragraphs: in a
            # section's parts, its paragraphs and lists come first, then its sub-sections
            draft.has_parts.extend(_sections(doc, child, draft))
            sections.append(draft)
        elif tid in (_P, _UL, _OL):
            if parent is not None:  # text outside any section is dropped
                parent.has_parts.extend(_paragraphs(doc, child))
        else:
            sections.extend(_sections(doc, child, parent))
    return sections


def get_sections(doc: Document) -> list[Part]:
    """WME's GetSections: the page's `<section>`s as nested section parts, named by their heading.

    Removed first: infoboxes; a section holding a `div.reflist` or an `External_links` heading; the
    nodes of WME's rmSelector (figures, tables, `sup`/`sub`, references, navigation, hatnotes, …);
    the sections headed References, See also, External links and their French, Spanish, German,
    Portuguese and Italian names; sections left with a heading only. Section 0 without a heading is
    "Abstract". A section's parts are its paragraphs and lists (found at any depth outside
    sub-sections; citation marks removed from their text) and then its sub-sections.

    This removes nodes from `doc`'s tree: call it after the other functions, or on its own parse.
    """
    tree = doc.tree
    for node in _select(tree, _INFOBOX_CSS):
        _unlink(node)
    for node in _select(tree, 'section > div.reflist, section > *[id="External_links"]'):
        _unlink(node.parent)
    for node in _select(tree, _RM_CSS):
        _unlink(node)
    for node in _select(tree, _RM_HEADER_CSS):
        _unlink(node.parent)
    for section in tree.css("section"):
        children = _children(section, None)
        if len(children) == 1 and children[0].tag_id in _HEADINGS:
            _unlink(section)
    body = tree.body
    if body is None:
        return []
    return [draft.freeze() for draft in _sections(doc, body, None)]


# -- GetReferences -------------------------------------------------------------------------------


def get_references(doc: Document) -> list[Reference]:
    """WME's GetReferences, quirk kept: the `<li>` children of `.references a` links whose text is
    a `[n]` mark. Links have no `<li>` children, so WME's function returns no reference on Parsoid
    pages; it is ported as written so that a page where it finds one gives the same answer."""
    tree = doc.tree
    refs = []
    index = 0
    for a in tree.css(".references a"):
        if not _IS_REF.search(_raw_text(a, None)):
            continue
        for li in _children(a, None):
            if li.tag_id != _LI or not li.css_matches(".references li"):
                continue
            text = get_text([li], doc.clean).removeprefix("↑ ")
            refs.append(Reference(li.attributes.get("id") or "", index, text, tuple(get_links(doc, li))))
            index += 1
    return refs


# -- JSON ----------------------------------------------------------------------------------------


def _image_json(image: Image) -> dict:
    # general/schema's Image: content_url, width, height (WME's schema has no alt text nor caption)
    out: dict = {}
    if image.content_url:
        out["content_url"] = image.content_url
    if image.width:
        out["width"] = image.width
    if image.height:
        out["height"] = image.height
    return out


def _link_json(link: Link) -> dict:
    out: dict = {}
    if link.url:
        out["url"] = link.url
    if link.text:
        out["text"] = link.text
    if link.images:
        out["images"] = [_image_json(i) for i in link.images]
    return out


def to_json(part: Part) -> dict:
    """A Part as WME's JSON writes it (general/schema HasParts): `type, name, value, values,
    has_parts, images, links`, each left out when empty (Go's omitempty; `values: [""]` is not
    empty, so infobox fields carry it as WME's do)."""
    out: dict = {}
    if part.type:
        out["type"] = part.type
    if part.name:
        out["name"] = part.name
    if part.value:
        out["value"] = part.value
    if part.values:
        out["values"] = list(part.values)
    if part.has_parts:
        out["has_parts"] = [to_json(p) for p in part.has_parts]
    if part.images:
        out["images"] = [_image_json(i) for i in part.images]
    if part.links:
        out["links"] = [_link_json(link) for link in part.links]
    return out
