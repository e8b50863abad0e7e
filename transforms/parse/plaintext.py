"""Plain text of an article, for `--formats text`: from HTML when a record has it, else from wikitext.

`text_from_wikitext(text, site)`  wikitext → plain lines: headings (without `==`), paragraphs and
                                  list items, one per line; link labels kept; templates, tables,
                                  references, files, categories, comments, switches and markup gone.
`text_from_html(html)`            Parsoid/WME HTML (`article_body.html`) → the same kind of lines, with
                                  templates expanded (HTML has them rendered).
`text_row(record, site)`          a WME record → one row of the text Parquet (see schemas/arrow.py).

Why wikitext loses text: a pages-articles dump holds templates unexpanded, and expanding them needs
the wiki's templates, modules (Lua) and parser functions — a MediaWiki install, not a dump reader.
So what templates would render (infoboxes, dates, unit conversions, `{{lang|…}}` text) is missing
from text made from wikitext; HTML input (Parsoid/WME `article_body.html`) has it.

What is kept and dropped (wikitext), and why:
- kept: headings as plain lines, paragraphs, list items and indented (`:`/`;`) lines without their
  markers, link labels (`[[a|b]]` → b, `[[a]]` → a, `[http://x label]` → label), the text inside
  inline HTML (`<b>`, `<span>`, `<sup>` …), `<nowiki>`/`<pre>` content, `<poem>` as text lines;
- dropped: unpiped links to sister projects (`[[commons:Category:X]]`, `[[wikipedia:el:X]]`),
  templates and template arguments, tables (`{|` … `|}`, nested), `<ref>` and
  `<references>`, `<gallery>`, `<math>`/`<chem>` (LaTeX source is not prose and reads badly in
  language-model corpora; wikiextractor's `formula_1` placeholders say no more), `<syntaxhighlight>`,
  `<timeline>` and other non-prose extension tags, comments (an unclosed one runs to the end, as in
  MediaWiki), file/category/interlanguage links, behaviour switches (`__TOC__`), bold/italic quotes,
  block HTML with its content (`<div>`, `<table>`, `<center>`, `<blockquote>`, `<dl>`, `<h1>`…:
  the rules of the WME-style abstract, which keep prose only), horizontal rules.
- Markup MediaWiki itself would show as text (an unclosed `{{`, a stray `]]`) is removed too, so
  the output never holds wikitext tokens: `{{`, `}}`, `[[`, `]]`, `{|`, `|}`, `<ref`, `<!--`.

Every step is a linear scan or a regex with possessive quantifiers, reusing the brace and tag
scanners of transforms/parse/wikitext.py (MediaWiki's own pairing rules, guarded against quadratic time).
"""

from __future__ import annotations

import html
import re

from wikisnap.schemas.serialize import parse_time_ns
from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.parse.abstract import (
    _EXT_LINK,
    _QUOTES,
    _REDIRECT,
    _SPACE_RUN,
    _SWITCH,
    _ext_link_repl,
    _link_label,
    _quotes_repl,
    _remove_empty_brackets,
    _remove_spans,
    _remove_tables,
    _render_links,
    _strip_html,
    _switch_repl,
)
from wikisnap.transforms.parse.wikitext import _MARK, _PLACEHOLDER, _braces, _Scope

# Extension tags whose content is shown as text (placeholders are replaced by it); every other
# extension tag (ref, references, gallery, math, chem, syntaxhighlight, timeline, score …) goes.
_VERBATIM_TAGS = frozenset({"nowiki", "pre"})
_WIKITEXT_TAGS = frozenset({"poem"})
_SHOWN_TAGS = _VERBATIM_TAGS | _WIKITEXT_TAGS
_HEADING_LINE = re.compile(r"^(={1,6})(.+?)\1[ \t]*$")
# Wikitext tokens that must never reach the text, whatever the input: MediaWiki shows an unpaired
# `{{` or `]]` as text, but in a text corpus it is noise. `<ref…>` of an unclosed <ref> too.
_RESIDUE = re.compile(r"\{\{+|\}\}+|\[\[+|\]\]+|\{\||</?ref\b[^>\n]*>?|<!--|-->", re.IGNORECASE)
_STRAY_TABLE_CELL = re.compile(r"^[ \t]*(?:\|[-+}]?|!)[ \t]*")
_MAX_POEM_DEPTH = 2


def text_from_wikitext(text: str, site: SiteInfo, _depth: int = 0) -> str:
    """Plain text of a wikitext page: one line per heading, paragraph or list item ("\\n"-joined).

    In: the page's wikitext and its wiki's SiteInfo (namespace names for file/category links).
    Out: text without markup (see the module doc); "" for a `#REDIRECT` page. Linear in the
    input: a fixed number of passes, each a linear scan.
    """
    scope = _Scope(text)
    s, elements = scope.s, scope.elements
    if _REDIRECT.match(s):
        return ""
    if "{{" in s:
        spans: list[tuple[int, int]] = []
        _braces(s, spans, names=False)
        s = _remove_spans(s, spans)
    s = _remove_tables(s)
    s = _strip_html(s)
    if "[[" in s:
        s = _links(s, site)
        if _has_double(s, "["):
            s = _UNCLOSED_LINK.sub(lambda m: _unclosed_link(m, site), s)
    if "[" in s:
        s = _EXT_LINK.sub(_ext_link_repl, s)
    if _has_double(s, "_"):
        s = _SWITCH.sub(_switch_repl, s)
    if "''" in s:
        s = _QUOTES.sub(_quotes_repl, s)
    lines: list[str] = []
    current: list[str] = []  # the lines of one paragraph: MediaWiki joins them with a space
    # (The paragraph's end is written out inline: a function call per line costs more.)
    for raw in s.split("\n"):
        line = raw.strip()
        if not line:
            if current:
                lines.append(" ".join(current))
                current = []
            continue
        first = line[0]
        if first == "=":
            m = _HEADING_LINE.match(line)
            if m:
                if current:
                    lines.append(" ".join(current))
                    current = []
                lines.append(m.group(2))
                continue
        elif first in "*#:;":
            if current:
                lines.append(" ".join(current))
                current = []
            lines.append(line.lstrip("*#:; \t"))
            continue
        elif first in "|!" or (first == "-" and line.startswith("----")):
            # A table row left by an unpaired `{|`, or a rule: not prose.
            if first == "-":
                line = line.lstrip("-")
            else:
                line = _STRAY_TABLE_CELL.sub("", line).replace("||", " ").replace("!!", " ")
            if not line.strip():
                continue
        current.append(line)
    if current:
        lines.append(" ".join(current))
    s = "\n".join(lines)
    if _MARK in s:
        s = _fill_placeholders(s, elements, site, _depth)
    return _tidy(s)


# A link without brackets inside: the innermost links of a page, in one C-speed pass each.
_SIMPLE_LINK = re.compile(r"\[\[([^\[\]|\n]*+)(?:\|([^\[\]]*+))?\]\]")
_LINK_PASSES = 3
# Wikimedia's interwiki prefixes to sister projects: an unpiped `[[commons:Category:X]]` or
# `[[wikipedia:el:X]]` is a box-like pointer, not prose ("[[w:X|X]]" keeps its label).
_INTERWIKI = frozenset(
    {"w", "wikipedia", "wikt", "wiktionary", "b", "wikibooks", "n", "wikinews", "q", "wikiquote", "s", "wikisource",
     "v", "wikiversity", "voy", "wikivoyage", "c", "commons", "m", "meta", "metawiki", "mw", "mediawikiwiki", "d",
     "wikidata", "species", "wikispecies", "f", "wikifunctions", "foundation", "wmf", "incubator", "outreach"}
)  # fmt: skip


# `[[Category:X]` — a file, category or sister-project link whose closing brackets were
# mistyped (MediaWiki shows it as text): dropped to the end of its line.
_UNCLOSED_LINK = re.compile(r"\[\[([^\[\]|\n:]*+):[^\n]*+")


def _has_double(s: str, char: str) -> bool:
    """`char * 2 in s`, for a text where `char` is rare: the text is searched for the one
    character (ten times faster than for two on long texts, and most texts lack the pair)."""
    find = s.find
    at = find(char)
    while at >= 0:
        if s.startswith(char, at + 1):
            return True
        at = find(char, at + 2)
    return False


def _unclosed_link(m: re.Match[str], site: SiteInfo) -> str:
    prefix = m.group(1).strip()
    ns = site.namespace_for_prefix(prefix)
    return "" if ns in (6, 14) or (ns is None and prefix.lower() in _INTERWIKI) else m.group(0)


def _links(s: str, site: SiteInfo) -> str:
    """`[[…]]` links → their labels; files, categories and interlanguage links dropped.

    Innermost links first with one regex (a file caption's links, then the file link itself);
    after a few passes whatever is left (a caption holding a lone `[`, deeper nesting) goes
    through wikitext.py's exact bracket walk. Both are linear per pass.

    A pass splits the text at its links (`re.split` hands over every link's target and label
    in one C call) and labels them in a list comprehension: most links have no `:` in their
    target and take the label or the stripped target inline, without a Python call per link
    (a `sub` callback per link cost more than the regex scan itself).
    """
    split = _SIMPLE_LINK.split
    for _ in range(_LINK_PASSES):
        parts = split(s)
        n = len(parts) // 3  # parts: text, target, label (None when unpiped), text, …, text
        if n:
            labels = [
                (target.strip() if text is None else text) if ":" not in target else _colon_label(target, text, site)
                for target, text in zip(parts[1::3], parts[2::3], strict=True)
            ]
            joined = [""] * (2 * n + 1)
            joined[::2] = parts[::3]
            joined[1::2] = labels
            s = "".join(joined)
        if not _has_double(s, "["):
            return s
        if not n:
            break
    return _render_links(s, site)


def _colon_label(target: str, text: str | None, site: SiteInfo) -> str:
    """The label of a link whose target holds a `:` (a namespace, interwiki or a plain colon);
    "" for a file, category, interlanguage or unpiped sister-project link."""
    keep, shown = _link_label(target, text is not None, site)
    if not keep:
        return ""
    if text is None and not target.startswith(":"):
        prefix = target.split(":", 1)[0].strip()
        if prefix.lower() in _INTERWIKI and site.namespace_for_prefix(prefix) is None:
            return ""
    return shown if text is None else text


def _fill_placeholders(s: str, elements: list, site: SiteInfo, depth: int) -> str:
    """`s` with each `\x7f<n>\x7f` replaced by the text of element n, and stray `\x7f`s removed.

    Placeholders come whole out of every pass before this one, so `s.split("\x7f")` alternates
    text and element numbers: one list operation instead of a regex callback per <ref> (which
    gives ""). Anything else (a mark split from its number) takes the regex.
    """
    parts = s.split(_MARK)
    numbers = parts[1::2]
    digits = "".join(numbers)
    if len(parts) % 2 and "" not in numbers and digits.isascii() and digits.isdigit():
        parts[1::2] = [
            _element_text(element, site, depth) if (element := elements[int(n)]).name in _SHOWN_TAGS else ""
            for n in numbers
        ]
        return "".join(parts)
    s = _PLACEHOLDER.sub(lambda m: _element_text(elements[int(m.group(1))], site, depth), s)
    return s.replace(_MARK, "")


def _element_text(element, site: SiteInfo, depth: int) -> str:
    if element.name in _VERBATIM_TAGS:
        return " ".join(html.unescape(element.content).split())
    if element.name in _WIKITEXT_TAGS and depth < _MAX_POEM_DEPTH:
        # A poem's lines are lines of the text (the placeholders are replaced before `_tidy`
        # splits the text into lines); a blank line after each keeps them from joining.
        return "\n" + text_from_wikitext(element.content.replace("\n", "\n\n"), site, depth + 1) + "\n"
    return ""


def _tidy(s: str, unescape: bool = True) -> str:
    """Entities decoded, wikitext residue removed, spaces collapsed, empty lines dropped.

    Whole-text passes with str methods or regexes that start with a literal (a pattern starting
    with a character class is tried at every character, and a regex over every space costs more
    than the rest of the stripper).
    """
    if unescape and "&" in s:
        s = html.unescape(s)
    # Each `_RESIDUE` token holds one of these (a pattern starting with a class scans slowly,
    # and most texts hold none of them; a lone `[` or `]`, as in "[1]", is common and no token).
    if "{" in s or "}" in s or "<" in s or "-->" in s or _has_double(s, "[") or _has_double(s, "]"):
        s = _RESIDUE.sub("", s)
    for blank in ("\t", "\r", "\f", "\v", "\u00a0"):
        if blank in s:
            s = s.replace(blank, " ")
    if "(" in s:
        # Parentheses emptied by removed templates: "born ( ) in" → "born in". (Before the
        # spaces are collapsed, which then need one pass only: the same brackets are empty.)
        s = _remove_empty_brackets(s)[0]
    s = _SPACE_RUN.sub(" ", s)
    # A space left before a comma or full stop by a removed template or reference.
    s = s.replace(" ,", ",").replace(" .", ".")
    return "\n".join([line for raw in s.split("\n") if (line := raw.strip())])


# -- HTML --------------------------------------------------------------------------------------

# Elements dropped with their content: references and their lists, tables (infoboxes, navboxes),
# figures and images, styles and scripts, maths (its MathML/LaTeX is not prose), edit links,
# hidden and metadata elements.
_HTML_DROP_TAGS = frozenset(
    {"style", "script", "table", "figure", "figcaption", "img", "math", "link", "meta", "noscript", "audio",
     "video", "map", "head", "title"}
)  # fmt: skip
_HTML_DROP_CLASSES = frozenset(
    {"reference", "references", "reflist", "mw-references-wrap", "mw-editsection", "navbox", "hatnote",
     "noprint", "metadata", "mw-empty-elt", "mwe-math-element", "thumb", "gallery", "infobox", "sistersitebox",
     "shortdescription", "mw-ref", "ambox", "toc"}
)  # fmt: skip
_HTML_BLOCKS = frozenset(
    {"p", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "div", "section", "blockquote", "pre", "ul", "ol",
     "dl", "br", "tr", "caption", "body", "html"}
)  # fmt: skip


def text_from_html(markup: str) -> str:
    """Plain text of an article's HTML (Parsoid, WME `article_body.html`): one line per block.

    In: the page's HTML as a string. Out: headings, paragraphs and list items, one per line,
    templates expanded as rendered; references (`<sup class="mw-ref">`, reference lists), tables,
    figures, maths, styles, edit links and hidden elements dropped. Uses lxml's HTML parser,
    which never fails on bad markup; "" for an empty document.
    """
    from lxml import etree
    from lxml import html as lxml_html

    if not markup or not markup.strip():
        return ""
    try:
        root = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return ""
    parts: list[str] = []
    _walk_html(root, parts)
    return _tidy("".join(parts), unescape=False)  # lxml has decoded the entities


def _dropped(el) -> bool:
    tag = el.tag
    if not isinstance(tag, str):  # comments, processing instructions
        return True
    if tag in _HTML_DROP_TAGS:
        return True
    get = el.get
    classes = get("class")
    if classes and not _HTML_DROP_CLASSES.isdisjoint(classes.split()):
        return True
    style = get("style")
    if style and "none" in style and re.search(r"display\s*:\s*none", style):
        return True
    typeof = get("typeof")
    return bool(typeof and ("mw:Extension/ref" in typeof or "mw:Extension/references" in typeof))


def _walk_html(el, parts: list[str]) -> None:
    """Append the text of `el` (not its tail) to `parts`, with "\\n" around block elements."""
    block = el.tag in _HTML_BLOCKS
    if block:
        parts.append("\n")
    if el.text:
        parts.append(el.text)
    for child in el:
        if not _dropped(child):
            _walk_html(child, parts)
        if child.tail:
            parts.append(child.tail)
    if block:
        parts.append("\n")


# -- records and rows --------------------------------------------------------------------------------------


def slim_article(page, site: SiteInfo, license: list[dict]) -> dict:
    """A `RawPage` → the part of its WME Article the text output reads (for `--formats text` alone).

    Same values as `page_to_article` for these keys (name, identifier, url, date_modified,
    namespace, version.identifier, license, article_body.wikitext), without the wikitext
    analysis (templates, categories, abstract, maintenance tags) a text row does not use.
    """
    rev = page.revision
    if rev is None:
        raise ValueError("page has no <revision>")
    record = {
        "name": page.title,
        "identifier": page.id,
        "date_modified": rev.timestamp,
        "version": {"identifier": rev.id},
        "url": site.url(page.title),
        "namespace": {"identifier": page.ns},
        "license": license,
    }
    if rev.text is not None:
        record["article_body"] = {"wikitext": rev.text}
    return record


def license_id(record: dict) -> str | None:
    """The record's licence identifier (`CC-BY-SA-4.0`), the first one WME lists; None without one."""
    licenses = record.get("license") or []
    return licenses[0].get("identifier") if licenses else None


def with_early_text(record: dict, site: SiteInfo) -> dict:
    """A `slim_article` record with its plain text made now, in place of its wikitext.

    For `--formats text` alone with no HTML input, the reader strips each page as it reads it:
    the stripping then runs while the bz2 threads decode ahead (the reader used to wait on them),
    and the spill carries the text (about half the wikitext's bytes) instead of the wikitext.
    The internal keys `_text` and `_weight` (the wikitext's length, which cuts members as before)
    replace `article_body`; such a record is never serialised (the WME encoder refuses them).
    """
    body = record.pop("article_body", None) or {}
    wikitext = body.get("wikitext")
    record["_text"] = "" if wikitext is None else text_from_wikitext(wikitext, site)
    record["_weight"] = max(1, len(wikitext or ""))
    return record


def record_text(record: dict, site: SiteInfo) -> str:
    """An article's plain text: made by the reader (`with_early_text`), else from `article_body.html`
    when present, else from its wikitext."""
    if "_text" in record:
        return record["_text"]
    body = record.get("article_body") or {}
    markup = body.get("html")
    if markup:
        return text_from_html(markup)
    wikitext = body.get("wikitext")
    if wikitext is None:
        return ""  # revision-deleted text
    return text_from_wikitext(wikitext, site)


def text_row(record: dict, site: SiteInfo) -> dict:
    """A WME record → one row of the text Parquet (schemas/arrow.py TEXT_SCHEMA): id (the page id
    as a string), url, title, text, qid, date_modified (ms since the epoch, the column's unit), license."""
    entity = record.get("main_entity") or {}
    modified = record.get("date_modified")
    return {
        "id": str(record["identifier"]),
        "url": record.get("url", ""),
        "title": record.get("name", ""),
        "text": record_text(record, site),
        "qid": entity.get("identifier") or None,
        # ms, the column's unit; MediaWiki times are whole seconds (the record Parquet refuses finer)
        "date_modified": parse_time_ns(modified) // 1_000_000 if modified else None,
        "license": license_id(record),
    }
