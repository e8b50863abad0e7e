"""Parsoid HTML → WME's infobox parts (GetInfoBoxes), on the text engine of `structured`.

An infobox (`.infobox`, `.infobox_v3`, `.infobox_v2`, `.sinottico`, nested ones too) becomes a
part of type "infobox" named after its template, holding "section" parts: one per header row
(`.infobox-above/-below/-header/-subheader`, Italian `.sinottico_*`), and before the first header
one named after `.infobox-title` (French infobox_v3: `div.entete`). Every other row is a part of
type "field" (label + value), "image" (a row with pictures and no text, or an `.infobox-image`
cell) or "list" (a row whose data cell holds a list: `values` are the list's lines
"  - item", `value` the cell's text outside it). Rows with nothing are skipped.

As in `structured`, WME's per-infobox clone with cleanHTML's removals is a set of node ids; the
lists WME deletes from a row once read are added to that set, so later reads of the row (its
links, its images) no longer see them, as in WME.
"""

from __future__ import annotations

import json
from dataclasses import replace

from selectolax.lexbor import LexborNode

from wikisnap.transforms.parse.structured import (
    _DELIM_END,
    _INFOBOX_CSS,
    _ITEMS,
    _LISTS,
    _NEWLINES,
    _TD,
    _TEXT,
    _TH,
    _TR,
    FIELD,
    IMAGE,
    INFOBOX,
    LIST,
    SECTION,
    Document,
    Part,
    _children,
    _Draft,
    _find,
    _has_class,
    _images,
    _links,
    _select,
    get_text,
)

__all__ = ["get_infoboxes"]

_IGN_TR = frozenset((_TR,))
# a row holding one of these starts a new section of the infobox, named by its text
_HEADER_CSS = (
    ".infobox-above",
    ".infobox-below",
    ".infobox-header",
    ".infobox-subheader",
    ".sinottico_divisione",
    ".sinottico_testata",
    ".sinottico_piede",
    ".sinottico_piede2",
)
_DATA_LISTS = ".infobox-data ul, .infobox-data ol, .infobox-data dl"


def _template_wts(data_mw: str) -> list[str]:
    """gjson's `parts.#.template.target.wt`: the wikitext names of a transclusion's templates."""
    try:
        data = json.loads(data_mw)
    except ValueError:
        return []
    parts = data.get("parts") if isinstance(data, dict) else None
    if not isinstance(parts, list):
        return []
    out = []
    for part in parts:
        template = part.get("template") if isinstance(part, dict) else None
        target = template.get("target") if isinstance(template, dict) else None
        if isinstance(target, dict) and "wt" in target:
            wt = target["wt"]
            out.append(wt if isinstance(wt, str) else json.dumps(wt))
    return out


def _list_lines(node: LexborNode, out: list[str], depth: int, excl) -> None:
    """WME's getList: a list as "  - item" lines, two spaces more per nesting level."""
    tid = node.tag_id
    item = tid in _ITEMS
    if item:
        out.append("  " * depth + "- ")
    if tid == _TEXT:
        out.append(node.text_content or "")
    child = node.first_child
    while child is not None:
        ctid = child.tag_id
        if ctid > 5 and excl and child.mem_id in excl:
            pass
        elif ctid in _LISTS:
            out.append("\n")
            _list_lines(child, out, depth + 1, excl)
        else:
            _list_lines(child, out, depth, excl)
        child = child.next
    if item:
        out.append("\n")


def _row(doc: Document, row: LexborNode, excl: set[int]) -> Part | None:
    """WME's getInfoBoxPart: one `<tr>` as a field, image or list part (None when empty)."""

    def text(nodes: list[LexborNode]) -> str:
        return _DELIM_END.sub("", get_text(nodes, excl, _IGN_TR))  # no trailing "," ";" ":"

    lines = ""
    for lst in _find(row, _DATA_LISTS, excl):
        out: list[str] = []
        _list_lines(lst, out, 1, excl)
        lines = _NEWLINES.sub("\n", "".join(out))  # the last list read wins, nested ones too
        excl.add(lst.mem_id)  # WME deletes the list from the row once read

    label = text(_find(row, ".infobox-label", excl)[:1])
    if not label:
        label = text(_find(row, ".infobox-label tr", excl))
    data = ""
    if not lines:
        data = text(_find(row, ".infobox-data", excl)[:1])
        if not data:
            data = text(_find(row, ".infobox-data tr", excl))
    if not data and not lines:
        data = text(_find(row, ".infobox-full-data", excl))
        if not data:
            data = text(_find(row, ".infobox-full-data tr", excl))
    if not data and not lines:
        cells = _children(row, excl)
        ths = [c for c in cells if c.tag_id == _TH]
        tds = [c for c in cells if c.tag_id == _TD]
        if len(tds) == 2 and not ths:
            label, data = text(tds[:1]), text(tds[-1:])
        elif len(tds) == 1 and len(ths) == 1:
            label, data = text(ths), text(tds)
        if not data and not lines:
            data = text([row])

    images = _images([row], excl)
    if not label and not lines and not data and not images:
        return None
    kind = FIELD
    if (not data and images) or _find(row, ".infobox-image", excl):
        kind = IMAGE
    if lines:
        kind = LIST
        for cell in _find(row, ".infobox-data", excl):  # the last data cell wins
            contents = []
            child = cell.first_child
            while child is not None:
                tid = child.tag_id
                if not (tid > 5 and (child.mem_id in excl or tid in _LISTS)):
                    contents.append(child)
                child = child.next
            data = text(contents)
    return Part(
        name=label,
        type=kind,
        value=data,
        values=tuple(lines.split("\n")),
        images=tuple(images),
        links=tuple(_links(row, doc.base_url, excl, excl)),
    )


def _infobox(doc: Document, box: LexborNode) -> Part:
    """WME's getInfoBox: one infobox as an "infobox" part of sections of rows."""
    name = ""
    about = box.attributes.get("about")
    body = doc.tree.body
    if about and body is not None:
        quoted = about.replace("\\", "\\\\").replace('"', '\\"')
        for node in body.css(f'[about="{quoted}"]'):  # the last of the transclusion's nodes wins
            data_mw = node.attributes.get("data-mw") or ""
            if "parts" in data_mw:
                wts = _template_wts(data_mw)
                if wts:
                    name = wts[0].strip()

    excl = set(doc.clean)  # WME's clone of the infobox with cleanHTML's removals
    title = get_text(_find(box, ".infobox-title", excl), excl)
    v3 = _has_class(box, "infobox_v3")
    if v3 and not title:
        title = get_text(_find(box, "div.entete", excl), excl)

    parts: list[_Draft] = []
    section: _Draft | None = None
    for row in _find(box, "tr", excl):
        header = ""
        for css in _HEADER_CSS:
            header = get_text(_find(row, css, excl), excl)
            if header:
                break
        if header:
            section = _Draft(name=header, type=SECTION)
            parts.append(section)
            continue
        if section is None:
            section = _Draft(name=title, type=SECTION)
            if v3:
                # French infobox_v3: the main image is outside the table rows. Read from the
                # infobox as it is in the page (not the cleaned clone), as WME does.
                images = _images(_find(box, ".images", None), doc.clean)
                if images:
                    legend = _find(box, ".legend", None)[:1]
                    images[0] = replace(images[0], caption=get_text(legend, doc.clean))
                section.images = tuple(images)
            parts.append(section)
        part = _row(doc, row, excl)
        if part is not None:
            section.has_parts.append(part)
    return Part(name=name, type=INFOBOX, has_parts=tuple(p.freeze() for p in parts))


def get_infoboxes(doc: Document) -> list[Part]:
    """WME's GetInfoBoxes: every infobox of the page, in document order (nested ones too)."""
    return [_infobox(doc, box) for box in _select(doc.tree, _INFOBOX_CSS)]
