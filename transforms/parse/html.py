"""Parsoid HTML → the fields WME derives from it: identity, categories, templates, abstract.

Pure functions, no Beam: `identify(html)` reads who a Parsoid document is (page id, revision,
title, wiki) from its `<head>`; `derive(html)` parses it once with lexbor (selectolax) and returns
`{categories, templates, abstract}` the way Wikimedia Enterprise's `general/parser` package
(GetCategories, GetTemplates, GetAbstract) computes them. Every problem raises `HtmlError` with a
reason the caller puts in a dead letter.

The rules, ported from reading WME's public Go code (not copied):
- categories: every `link[rel="mw:PageProp/Category"]` (hidden and template-added ones too); the
  href's `#sortkey` is dropped; name = href without `./`, `_` → space, then Go's
  `url.QueryUnescape` (so `+` becomes a space too); url = `https:` + `<base href>` + the raw href
  (or "" when the href holds a bad `%` escape, as WME's getFullURL does); one entry per name.
- templates: for every element with a `data-mw` holding `parts`, the `template.target.href` of
  each part, named and linked like categories. Parsoid writes one `data-mw` per top-level
  transclusion, so templates nested in another template's parameters are not listed.
- abstract: GetAbstract of WME's current code: drop references, pronunciations, hidden and
  no-excerpt nodes from the whole page, keep the first `<section>`, drop tables, divs, figures and
  styles in it, numeric `<sup>` → superscript code points (WME's 0x2070 + digit arithmetic,
  kept as is), lists → `  - item` lines, links and spans → their text, then strip parentheticals
  that contain a space (unless the lead holds a chemical formula or math), empty brackets and
  spaces before punctuation on the HTML Go's renderer writes, take the text and tidy whitespace.
  Go's `\\s` is ASCII whitespace only, so the regexes here spell it `[\\t\\n\\f\\r ]`.

Output lists are in document order (WME's come from a Go map, in random order).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = ["HtmlError", "HtmlIdentity", "derive", "identify", "looks_like_html"]


class HtmlError(ValueError):
    """A document that cannot give a record: not Parsoid's, or truncated.

    `base_url` is the document's wiki URL when its head named it (so the dead letter has a wiki).
    """

    def __init__(self, message: str, base_url: str | None = None):
        super().__init__(message)
        self.base_url = base_url


@dataclass(frozen=True)
class HtmlIdentity:
    """Who a Parsoid document is, read from its `<head>`."""

    page_id: int
    rev_id: int
    title: str  # with spaces, as `<title>` or dc:isVersionOf names it
    base_url: str  # `https://fr.wikipedia.org/wiki/`
    ns: int | None  # mw:pageNamespace, when the document says it
    modified: str | None  # dc:modified, RFC 3339


_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
_PAGE_ID = re.compile(r'<meta\s+property="mw:pageId"\s+content="(\d+)"')
_NAMESPACE = re.compile(r'<meta\s+property="mw:pageNamespace"\s+content="(-?\d+)"')
_MODIFIED = re.compile(r'<meta\s+property="dc:modified"\s+content="([^"]+)"')
_REVISION = re.compile(r'<html\b[^>]*\babout="[^"]*?/Special:Redirect/revision/(\d+)"')
_BASE = re.compile(r'<base\s+href="([^"]+)"')
_VERSION_OF = re.compile(r'<link\s+rel="dc:isVersionOf"\s+href="([^"]+)"')
_TITLE = re.compile(r"<title>([^<]*)</title>")
_END = re.compile(r"</html>\s*$", re.IGNORECASE)


def looks_like_html(head: str) -> bool:
    """True when the first bytes of a file look like an HTML document (not XML, not JSON)."""
    text = head.lstrip("\ufeff \t\r\n").lower()
    return text.startswith("<!doctype html") or text.startswith("<html")


def _unescape_entities(text: str) -> str:
    return (
        text.replace("&quot;", '"')
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
    )


def identify(html: str) -> HtmlIdentity:
    """Page id, revision, title and wiki URL of a Parsoid document; HtmlError when it lacks them.

    Reads only the `<head>` with regexes (Parsoid writes it in one fixed form), so telling
    documents apart costs nothing next to parsing them. A document that does not end in
    `</html>` is truncated.
    """
    end = _HEAD_END.search(html, 0, 1 << 16)
    if end is None:
        raise HtmlError("not a Parsoid HTML document: no </head> in its first 64 KiB")
    head = html[: end.start()]
    base = _BASE.search(head)
    base_href = _unescape_entities(base.group(1)) if base else ""
    base_url = "https:" + base_href if base_href.startswith("//") else base_href
    page_id = _PAGE_ID.search(head)
    revision = _REVISION.search(head)
    if page_id is None or revision is None:
        missing = [n for n, m in (("mw:pageId", page_id), ("revision (html about=…/revision/N)", revision)) if not m]
        raise HtmlError(f"not a Parsoid HTML document: no {' and no '.join(missing)} in its <head>", base_url)
    if base is None:
        raise HtmlError("not a Parsoid HTML document: no <base href> in its <head>")
    if not _END.search(html[-64:]):
        raise HtmlError("truncated HTML document: it does not end with </html>", base_url)
    title = None
    version_of = _VERSION_OF.search(head)
    if version_of:
        href = _unescape_entities(version_of.group(1))
        prefix = base_href if href.startswith(base_href) else None
        if prefix:
            title = _title_of(href[len(prefix) :])
    if not title:
        match = _TITLE.search(head)
        title = _unescape_entities(match.group(1)) if match else ""
    ns = _NAMESPACE.search(head)
    modified = _MODIFIED.search(head)
    mod = None
    if modified:
        mod = modified.group(1)
        mod = re.sub(r"\.\d+Z$", "Z", mod)
    return HtmlIdentity(
        page_id=int(page_id.group(1)),
        rev_id=int(revision.group(1)),
        title=title,
        base_url=base_url,
        ns=int(ns.group(1)) if ns else None,
        modified=mod,
    )


# -- names and URLs as WME writes them -----------------------------------------------------------

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _query_unescape(text: str) -> str | None:
    """Go's `url.QueryUnescape`: `+` → space, `%XX` decoded; None where Go returns an error."""
    if _BAD_ESCAPE.search(text):
        return None
    return unquote_plus(text, errors="replace")


def _title_of(href: str) -> str:
    title = href.removeprefix("./").replace("_", " ")
    unescaped = _query_unescape(title)
    return title if unescaped is None else unescaped


def _url_of(href: str, base_url: str) -> str:
    url = base_url + href.removeprefix("./")
    return url if _query_unescape(url) is not None else ""


def _base_url(tree: LexborHTMLParser) -> str:
    base = tree.css_first("base")
    href = base.attributes.get("href") if base is not None else None
    return f"https:{href}" if href else ""


def categories_of(tree: LexborHTMLParser, base_url: str) -> list[dict]:
    found: dict[str, dict] = {}
    for link in tree.css('link[rel="mw:PageProp/Category"]'):
        href = link.attributes.get("href")
        if href is None:
            continue
        href = href.split("#", 1)[0]
        name = _title_of(href)
        if name:
            found[name] = {"name": name, "url": _url_of(href, base_url)}  # last wins, as in WME's map
    return list(found.values())


def templates_of(tree: LexborHTMLParser, base_url: str) -> list[dict]:
    found: dict[str, dict] = {}
    for node in tree.css("[data-mw]"):
        raw = node.attributes.get("data-mw") or ""
        if "parts" not in raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            # Not JSON as Parsoid wrote it (bswiki's Sablon:Infokutija_filozof: `"wt":"Infobox\","href"…`,
            # a backslash lost before a quote; goquery decodes the attribute to the same bytes). WME reads
            # it with gjson, which never fails and finds no template there: none is taken from this node.
            continue
        parts = data.get("parts") if isinstance(data, dict) else None
        if not isinstance(parts, list):
            continue
        for part in parts:
            template = part.get("template") if isinstance(part, dict) else None
            target = template.get("target") if isinstance(template, dict) else None
            href = target.get("href") if isinstance(target, dict) else None
            if not isinstance(href, str):
                continue  # a parser function ({{#if:…}}) has no href
            name = _title_of(href)
            if name not in found:
                found[name] = {"name": name, "url": _url_of(href, base_url)}
    return list(found.values())


# -- abstract ------------------------------------------------------------------------------------

_S = r"[\t\n\f\r ]"  # Go RE2's \s
# Removed from the whole page before the lead is taken. WME's list also has
# `span[data-mw*="target":{"wt":"IPA"]` and the figure-inline twin: invalid CSS that its
# selector library silently matches to nothing, so they are left out here.
_RM_NODES = (
    '[class*="mw-ref"]',
    ".mw-ref",
    ".mw-reflink-text",
    ".reference",
    '[title*="pronunciation"]',
    '[data-mw*="IPA"]',
    ".IPA",
    ".pronunciation",
    ".respelling",
    'span[style="display:none"]',
    "span.Z3988",
    "#coordinates",
    "table.navbox",
    ".geo-nondefault",
    ".geo-multi-punct",
    ".hide-when-compact",
    "div.infobox",
    "div.magnify",
    ".noprint",
    ".noexcerpt",
    ".nomobile",
    'span[class*="error"]',
    ".sortkey",
    "ul.gallery",
    '[encoding="application/x-tex"]',
    ".lang-comment",
    ".rt-commentedText",
    '[data-mw*="respell"]',
    '[title*="Help:Pronunciation"]',
)
_RM_IN_LEAD = "table,div,input,script,style,link,figure,figcaption,caption"
_RM_ATTRS = ("about", "data-mw", "id", "typeof")
_LISTS = ("ul", "ol", "dl")
_VOID = frozenset("area base br col embed hr img input keygen link meta param source track wbr".split())
_RAW_TEXT = frozenset("iframe noembed noframes noscript plaintext script style xmp".split())

_FORMULA = re.compile(r"(\d|[A-Z][a-z]?|\))<su[bp]>[0-9+-]{1,3}</su[bp]>")
_MATH = re.compile(r"\(( |&nbsp;)*<i>([A-z]|[0-9+-]){1}</i>")
_NESTED = re.compile(r"([(（][^()（）]*)([(（][^()（）]+[)）])")
_BRACES_SPACE = re.compile(r"( |&nbsp;)\([^)]+ [^)]*\)")
_BRACES_NONLATIN = re.compile(r"（[^）]+[ ：，][^）]+）")
_EMPTY_BRACES = re.compile(r"\(" + _S + r"*\)")
_EMPTY_BRACKET = re.compile(r"\[" + _S + r"*\]")
_SPACE_PUNCT_NONLATIN = re.compile(r"(" + _S + r"|&nbsp;)([，。])")
_SPACE_PUNCT_LATIN = re.compile(r"(" + _S + r"|&nbsp;)([,.!?])(" + _S + r"|&nbsp;|</)")
_SPACE_PUNCT = re.compile(r"(" + _S + r"|&nbsp;)([,.!?])")
_SPACES_OR_HYPHEN = re.compile(r"(" + _S + r"{2,}-)|" + _S + r"{2,}")
_PAREN_SEMICOLON = re.compile(r"\(" + _S + r"*;" + _S + r"*")
_BLANK_LINES = re.compile(r"^" + _S + r"*$\n?", re.MULTILINE)
_NUMERIC = re.compile(r"^[0-9]+$")
_PARENS = re.compile(r"[()]")


def _children(node: LexborNode):
    child = node.first_child
    while child is not None:
        nxt = child.next
        yield child
        child = nxt


def _text(node: LexborNode) -> str:
    """goquery's Text(): the text nodes under `node`, in order (comments left out)."""
    if node.is_text_node:
        return node.text_content or ""
    out = []
    for n in node.traverse(include_text=True):
        if n.is_text_node:
            out.append(n.text_content or "")
    return "".join(out)


def _escape(text: str) -> str:
    """x/net/html's escape(): what Go's renderer escapes in text and attribute values."""
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\r", "&#13;")
    )


def _render(node: LexborNode, out: list[str], raw: bool = False) -> None:
    """Go's html.Render of one node (void elements as `<br/>`), appended to `out`."""
    if node.is_text_node:
        text = node.text_content or ""
        out.append(text if raw else _escape(text))
        return
    if node.is_comment_node:
        out.append(f"<!--{node.comment_content or ''}-->")
        return
    if not node.is_element_node:
        return
    tag = node.tag
    out.append("<" + tag)
    for key, value in node.attributes.items():
        out.append(f' {key}="{_escape(value or "")}"')
    if tag in _VOID:
        out.append("/>")
        return
    out.append(">")
    inner_raw = tag in _RAW_TEXT
    for child in _children(node):
        _render(child, out, inner_raw)
    out.append(f"</{tag}>")


def _list_markdown(node: LexborNode, out: list[str], depth: int) -> None:
    item = node.is_element_node and node.tag in ("li", "dt", "dd")
    if item:
        out.append("  " * depth + "- ")
    if node.is_text_node:
        out.append(node.text_content or "")
    for child in _children(node):
        if child.is_element_node and child.tag in _LISTS:
            out.append("\n")
            _list_markdown(child, out, depth + 1)
        else:
            _list_markdown(child, out, depth)
    if item:
        out.append("\n")


def _inside_list(node: LexborNode, stop: LexborNode) -> bool:
    parent = node.parent
    while parent is not None and parent.mem_id != stop.mem_id:
        if parent.tag in _LISTS:
            return True
        parent = parent.parent
    # the lead section itself is never a list; WME's `ul ul` filter looks at the whole page,
    # where a lead section is never inside a list either
    return False


def _remove_nested_braces(html: str) -> str:
    while True:
        html, n = _NESTED.subn(r"\1", html)
        if not n or not _NESTED.search(html):
            return html


def abstract_of(tree: LexborHTMLParser) -> str:
    """WME's GetAbstract on a parsed document (the tree is modified)."""
    nihongo = tree.css_first('[data-mw*="Nihongo"]')
    nih = _text(nihongo) if nihongo is not None else ""
    for selector in _RM_NODES:
        for node in tree.css(selector):
            node.remove()
    lead = tree.css_first("body section")
    hml = ""
    if lead is not None:
        for node in lead.css(_RM_IN_LEAD):
            node.remove()
        for sup in lead.css("sup"):
            text = _text(sup)
            if _NUMERIC.match(text):
                sup.replace_with("".join(chr(0x2070 + ord(c) - 48) for c in text))
        for lst in lead.css(",".join(_LISTS)):
            if _inside_list(lst, lead):
                continue
            out = ["\n"]
            _list_markdown(lst, out, 1)
            lst.replace_with("".join(out))
        for node in lead.css("a,span"):
            if node.parent is None:
                continue
            node.replace_with(_text(node))
        for node in lead.traverse():
            if node.mem_id == lead.mem_id or not node.is_element_node:
                continue
            attrs = node.attrs
            for key in _RM_ATTRS:
                if key in attrs:
                    del attrs[key]
            for key, value in list(node.attributes.items()):
                if value and _PARENS.search(value):
                    attrs[key] = value.replace("(", "substitue_for_open_paren_in_attr").replace(
                        ")", "substitue_for_closed_paren_in_attr"
                    )
        out: list[str] = []
        for child in _children(lead):
            _render(child, out)
        hml = " " + "".join(out)
    if not _FORMULA.search(hml) and not _MATH.search(hml):
        hml = _remove_nested_braces(hml)
        hml = _BRACES_SPACE.sub("", hml)
        hml = _BRACES_NONLATIN.sub("", hml)
    hml = _EMPTY_BRACES.sub("", hml)
    hml = _EMPTY_BRACKET.sub("", hml)
    hml = _SPACE_PUNCT_NONLATIN.sub(r"\2", hml)
    hml = _SPACE_PUNCT_LATIN.sub(r"\2\3", hml)
    doc = LexborHTMLParser(hml)
    abs_ = _text(doc.root) if doc.root is not None else ""
    if not abs_.startswith(nih):
        abs_ = f"{nih} {abs_}"
    abs_ = _SPACES_OR_HYPHEN.sub(lambda m: m.group(0) if m.group(0).endswith("-") else " ", abs_)
    abs_ = _SPACE_PUNCT.sub(r"\2", abs_)
    abs_ = _PAREN_SEMICOLON.sub("(", abs_)
    abs_ = _BLANK_LINES.sub("", abs_)
    return abs_.strip()


def derive(html: str, *, with_abstract: bool = True) -> dict:
    """`{categories, templates[, abstract]}` of one Parsoid document (empty values left out).

    A `data-mw` that is not JSON gives no template, as in WME. The document is parsed once; the abstract runs last
    because it edits the tree.
    """
    tree = LexborHTMLParser(html)
    base_url = _base_url(tree)
    out: dict = {}
    categories = categories_of(tree, base_url)
    if categories:
        out["categories"] = categories
    templates = templates_of(tree, base_url)
    if templates:
        out["templates"] = templates
    if with_abstract:
        text = abstract_of(tree)
        if text:
            out["abstract"] = text
    return out
