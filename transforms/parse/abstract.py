"""The plain-text abstract of a wikitext page: its lead section with markup, asides and clutter removed.

`abstract(text, site)` follows WME's rules for the lead of a namespace-0 page: no references,
templates, files, tables or comments; links rendered as their labels; parentheticals with spaces
dropped unless the lead holds a formula; blank lines and spaces before punctuation removed. The
scanning it shares with `wikitext.analyze` (tags, placeholders, the brace stack) is imported from there.
"""

from __future__ import annotations

import html
import re

from wikisnap.schemas.siteinfo import SiteInfo
from wikisnap.transforms.parse.wikitext import _MARK, _PLACEHOLDER, _Element, _name_trie, _prepare

from .magic_words import MAGIC_WORDS

# -- abstract -----------------------------------------------------------------------------------
_HEADING = re.compile(r"^=[^\n]*=[ \t]*$", re.MULTILINE)
# A heading after the first line, found from its newline: a pattern starting with `^` is tried at
# every character, one starting with a literal skips to each candidate.
_HEADING_AFTER_NEWLINE = re.compile(r"\n=[^\n]*=[ \t]*$", re.MULTILINE)


def _first_heading(s: str) -> int:
    """Where `_HEADING.search(s)` matches (the first heading line starts), or -1."""
    if s.startswith("=") and _HEADING.match(s):
        return 0
    m = _HEADING_AFTER_NEWLINE.search(s)
    return -1 if m is None else m.start() + 1


_REDIRECT = re.compile(r"[ \t\n\r]*#REDIRECT", re.IGNORECASE)


# HTML tags MediaWiki's Sanitizer accepts; anything else in angle brackets is text.
_HTML_TAGS = (
    "b|bdi|del|i|ins|u|font|big|small|sub|sup|h1|h2|h3|h4|h5|h6|cite|code|em|s|strike|strong|tt|"
    "var|div|center|blockquote|ol|ul|dl|table|caption|ruby|rb|rp|rt|rtc|p|span|abbr|dfn|kbd|"
    "samp|data|time|mark|br|wbr|hr|li|dt|dd|td|th|tr|q|bdo|meta|link|thead|tbody|tfoot"
)
# (The names as a trie of character classes: see `_name_trie`.)
_HTML_TAG = re.compile(
    r"<(/?)(" + _name_trie(set(_HTML_TAGS.split("|")), folds=True) + r")(?=[ \t\n\r\f\v/>])([^<>]*+)>"
)
# Elements dropped with everything inside: not lead prose (WME keeps only the <p>, <ul> and <ol>
# children of the first section, and removes tables, divs, hidden spans and headings).
_DROP_ELEMENTS = frozenset(
    {"div", "table", "blockquote", "center", "dl", "h1", "h2", "h3", "h4", "h5", "h6", "caption"}
)
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_BLOCK_BREAKS = frozenset({"p", "li", "ul", "ol", "hr", "tr", "td", "th"})
_LINK_TOKENS = re.compile(r"\[\[|\]\]")
_INTERLANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*|simple")
# MediaWiki's default $wgUrlProtocols (Wikimedia wikis add a few more; they render the same).
_URL_PROTOCOLS = frozenset(
    {
        "bitcoin:", "ftp://", "ftps://", "geo:", "git://", "gopher://", "http://", "https://",
        "irc://", "ircs://", "magnet:", "mailto:", "mms://", "news:", "nntp://", "redis://",
        "sftp://", "sip:", "sips:", "sms:", "ssh://", "svn://", "tel:", "telnet://", "urn:",
        "worldwind://", "xmpp:", "//",
    }
)  # fmt: skip
# `[url label]`; the scheme is checked in `_ext_link_repl`. Possessive quantifiers keep a long
# run without ']' linear. Unlike MediaWiki the label may not contain '[' — that bounds every
# attempt by the next '['.
_EXT_LINK = re.compile(r"\[((?:[A-Za-z][A-Za-z0-9+.-]*:)?(?://)?)[^\[\]<>\"\x00-\x20\x7f]*+[ \t]*+([^\[\]\n]*+)\]")


def _ext_link_repl(m: re.Match[str]) -> str:
    scheme = m.group(1).lower()
    if scheme in _URL_PROTOCOLS or scheme.endswith("//") and scheme[:-2] in _URL_PROTOCOLS:
        return m.group(2).strip()
    return m.group(0)


_SWITCH = re.compile(r"__([^\W_]++)__")
_QUOTES = re.compile(r"''+")
# WME's paren clean-up skips leads with chemistry or maths (`H<sub>2</sub>O`, `(''x''`). Two
# patterns, each starting with a literal (the formula's lookbehinds come after its '<'), so the
# search skips ahead fast.
_FORMULA = re.compile(r"<(?:(?<=[0-9A-Z)]<)|(?<=[A-Z][a-z]<))su[bp]>[0-9+-]{1,3}</su[bp]>")
_MATH_EXPR = re.compile(r"\((?: |&nbsp;)*(?:''|<i>)[A-Za-z0-9+-](?:''|</i>)")
_ASCII_SPACES = re.compile(r"[ \t\r\f\v]+")
# Empty parentheses and brackets, removed in one pass (`\([ \t\n\r\f\v]*\)|\[[ \t\n\r\f\v]*\]`):
# two patterns, each starting with a literal, run 10x faster than one starting with a class.
_EMPTY_ROUND = re.compile(r"\([ \t\n\r\f\v]*\)")
_EMPTY_SQUARE = re.compile(r"\[[ \t\n\r\f\v]*\]")
# Possessive runs anchored at their start: a long run of spaces is tried once, not per space.
_SPACE_BEFORE_PUNCT = re.compile(r"(?<![ \u00a0])[ \u00a0]++(?:([,.!?])(?=[ \u00a0]|$)|([，。]))")
# What `_SPACE_BEFORE_PUNCT` needs somewhere: a space right before a punctuation mark. The
# pattern starts with a lookbehind, so the regex engine tries it at every character; these
# substring tests skip it for most paragraphs.
_SPACE_PUNCT_PAIRS = tuple(space + mark for space in " \u00a0" for mark in ",.!?，。")
_SINGLE_SPACE_BLANKS = ("\t", "\r", "\f", "\v")
_SPACE_RUN = re.compile("   *")  # two spaces or more (starts with a literal: found at C speed)


def _collapse_blanks(s: str) -> str:
    """`_ASCII_SPACES.sub(" ", s)`, without a match per single space (most of them)."""
    for blank in _SINGLE_SPACE_BLANKS:
        if blank in s:
            return _ASCII_SPACES.sub(" ", s)
    return _SPACE_RUN.sub(" ", s) if "  " in s else s


def _remove_empty_brackets(s: str) -> tuple[str, int]:
    """(`s` without empty `( )` and `[ ]`, how many were removed), in one pass over `s`.

    The two kinds never overlap, so the matches of each pattern on `s` are those of their
    alternation; removing one kind first could pair the other kind up anew (`[( )]`).
    """
    if "[" not in s:
        return _EMPTY_ROUND.subn("", s)
    if "(" not in s:
        return _EMPTY_SQUARE.subn("", s)
    cuts = [m.span() for m in _EMPTY_ROUND.finditer(s)]
    cuts += [m.span() for m in _EMPTY_SQUARE.finditer(s)]
    if not cuts:
        return s, 0
    cuts.sort()
    out = []
    pos = 0
    for start, end in cuts:
        out.append(s[pos:start])
        pos = end
    out.append(s[pos:])
    return "".join(out), len(cuts)


def abstract(text: str, site: SiteInfo) -> str:
    """Plain text of the lead section (before the first heading), in the spirit of WME's abstract.

    For namespace-0 wikitext pages. Removes references, templates, tables, files, categories,
    interlanguage links, behaviour switches, definition lists, HTML tags (keeping the text of
    inline ones) and WME's parenthetical asides (a parenthesis with a space inside, after a space);
    links become their label. Paragraphs and list items are joined by "\\n". A page starting with
    `#REDIRECT` gives "" (localised redirect words are not in dumps: skip redirects by `<redirect>`).
    Text that templates would render (dates, conversions, transliterations) is missing: WME
    abstracts come from rendered HTML.
    """
    scope = _prepare(text)
    s, elements = scope.s, scope.elements
    if _REDIRECT.match(s):
        return ""
    heading = _first_heading(s)
    if heading >= 0:
        s = s[:heading]
    if "{{" in s:
        # Braces paired over the whole page, as MediaWiki does: a template opened in the lead
        # and closed after the first heading is cut at the heading.
        s = _remove_spans(s, scope.braces()[1])
    s = _remove_tables(s)
    # WME looks for formulas in what is left of the lead (no infobox, no tables).
    skip_parens = bool(_FORMULA.search(s) or _MATH_EXPR.search(s))
    s = _strip_html(s)
    if "[[" in s:
        s = _render_links(s, site)
    if "[" in s:
        s = _EXT_LINK.sub(_ext_link_repl, s)
    if "__" in s:
        s = _SWITCH.sub(_switch_repl, s)
    if "''" in s:
        s = _QUOTES.sub(_quotes_repl, s)
    paragraphs = _paragraphs(s)
    result = []
    for para in paragraphs:
        if _MARK in para:
            para = _PLACEHOLDER.sub(lambda m: _inline_element(elements[int(m.group(1))]), para)
            para = para.replace(_MARK, "")
        if "&" in para:
            para = html.unescape(para)
        para = _tidy(para, skip_parens)
        if para:
            result.append(para)
    return "\n".join(result)


def _inline_element(element: _Element) -> str:
    """What an extension tag contributes to plain text: only <nowiki> shows its content."""
    if element.name == "nowiki":
        return html.unescape(element.content)
    return ""


def _remove_spans(s: str, spans: list[tuple[int, int]]) -> str:
    """`s` without the given spans (they may nest or reach past the end of `s`)."""
    if not spans:
        return s
    spans = sorted(spans)
    out = []
    pos = 0
    for start, end in spans:
        if start >= len(s):
            break
        if start >= pos:
            out.append(s[pos:start])
            pos = end
        elif end > pos:
            pos = end
    out.append(s[pos:])
    return "".join(out)


# `{|` or `|}` starting a line, after spaces and colons: `^[ \t]*:*[ \t]*(\{\||\|\})` (multi-line),
# found as the two tokens, each by a pattern starting with a literal, the indentation checked
# afterwards. A `^` pattern is tried at every character, and one starting with a class (the two
# tokens' alternation) scans ten times slower.
_TABLE_INDENT = re.compile(r"[ \t]*:*[ \t]*")


_TABLE_OPEN = re.compile(r"\{\|")
_TABLE_CLOSE = re.compile(r"\|\}")


def _table_tokens(s: str) -> list[tuple[int, bool]]:
    """(position, is `{|`) of the tokens the alternation `{|` or `|}` matches in `s`, in order:
    every `{|`, and every `|}` but one sharing its `|` with a `{|` before it (`{|}` opens)."""
    tokens = [(m.start(), True) for m in _TABLE_OPEN.finditer(s)]
    tokens += [(at, False) for m in _TABLE_CLOSE.finditer(s) if not (at := m.start()) or s[at - 1] != "{"]
    tokens.sort()
    return tokens


def _remove_tables(s: str) -> str:
    """`s` without wikitext tables: lines from `{|` to the matching `|}` (nested; unclosed → end)."""
    if "{" not in s or "{|" not in s:  # (one character is found ten times faster than two)
        return s
    out = []
    pos = 0
    depth = 0
    for at, opening in _table_tokens(s):
        # The line start, if only spaces and colons come before the token on its line. Each
        # backward walk covers the run just before one token, so all of them are linear.
        line_start = at
        while line_start and s[line_start - 1] in " \t:":
            line_start -= 1
        if line_start and s[line_start - 1] != "\n":
            continue
        if line_start != at and not _TABLE_INDENT.fullmatch(s, line_start, at):
            continue
        if opening:
            if depth == 0:
                out.append(s[pos:line_start])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                line_end = s.find("\n", at + 2)
                pos = len(s) if line_end < 0 else line_end
    if depth == 0:
        out.append(s[pos:])
    return "".join(out)


def _strip_html(s: str) -> str:
    """Drop block elements with their content and hidden spans; keep the text of inline tags."""
    if "<" not in s:
        return s
    out = []
    pos = 0
    drop_name = ""  # element being dropped, with its nesting depth
    depth = 0
    for m in _HTML_TAG.finditer(s):
        closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
        if drop_name:
            if name == drop_name and not attrs.endswith("/"):
                depth += -1 if closing else 1
                if depth == 0:
                    drop_name = ""
                    pos = m.end()
            continue
        out.append(s[pos : m.start()])
        pos = m.end()
        if (
            not closing
            and not attrs.endswith("/")
            and (name in _DROP_ELEMENTS or (name == "span" and _HIDDEN.search(attrs)))
        ):
            drop_name = name
            depth = 1
        elif name == "br":
            out.append(" ")
        elif name in _BLOCK_BREAKS:
            # A blank line: `_paragraphs` starts a new paragraph.
            out.append("\n\n")
    if not drop_name:
        out.append(s[pos:])
    return "".join(out)


def _render_links(s: str, site: SiteInfo) -> str:
    """Replace `[[…]]` links by their label; drop files, categories and interlanguage links.

    Linear: brackets are paired first (positions only), then one walk emits text. A link's
    target is read up to its first '|' or nested `[[`; a target with a nested link is not a link
    in MediaWiki and is dropped with it. Unpaired brackets stay as text.
    """
    if "]]" not in s:
        return s
    pairs: list[tuple[int, int]] = []
    stack: list[int] = []
    for m in _LINK_TOKENS.finditer(s):
        if m.group() == "[[":
            stack.append(m.start())
        elif stack:
            pairs.append((stack.pop(), m.end()))
    if not pairs:
        return s
    pairs.sort()
    out: list[str] = []
    pos = 0
    closers: list[int] = []  # start of the `]]` of kept links whose label is being emitted
    skip_until = 0
    for i, (start, end) in enumerate(pairs):
        if start < skip_until:
            continue
        while closers and closers[-1] <= start:
            close = closers.pop()
            out.append(s[pos:close])
            pos = close + 2
        out.append(s[pos:start])
        boundary = end - 2
        if i + 1 < len(pairs) and pairs[i + 1][0] < boundary:
            boundary = pairs[i + 1][0]
        pipe = s.find("|", start + 2, boundary)
        target_end = boundary if pipe < 0 else pipe
        if target_end != end - 2 and pipe < 0:
            # A nested link inside the target: not a link.
            pos = skip_until = end
            continue
        keep, label = _link_label(s[start + 2 : target_end], pipe >= 0, site)
        if not keep:
            pos = skip_until = end
        elif pipe >= 0:
            # The label may hold nested links: keep walking inside it.
            pos = pipe + 1
            closers.append(end - 2)
        else:
            out.append(label)
            pos = skip_until = end
    while closers:
        close = closers.pop()
        out.append(s[pos:close])
        pos = close + 2
    out.append(s[pos:])
    return "".join(out)


def _link_label(target: str, piped: bool, site: SiteInfo) -> tuple[bool, str]:
    """(shown?, text) of a link to `target`; the text is the target itself when not piped."""
    target = target.strip()
    if target.startswith(":"):
        return True, target[1:].lstrip()
    if ":" in target:
        prefix = target.split(":", 1)[0].strip()
        ns = site.namespace_for_prefix(prefix)
        if ns == 6 or ns == 14:
            return False, ""
        if ns is None and not piped and _INTERLANGUAGE.fullmatch(prefix):
            return False, ""
    return True, target


def _switch_repl(m: re.Match[str]) -> str:
    word = m.group(0)
    if MAGIC_WORDS.is_switch(word) or m.group(1).isupper():
        return ""
    return word


def _quotes_repl(m: re.Match[str]) -> str:
    # doQuotes: '' and ''' and ''''' are markup; '''' is an apostrophe plus bold; longer runs
    # keep the extra apostrophes as text.
    n = len(m.group(0))
    if n == 4:
        return "'"
    if n > 5:
        return "'" * (n - 5)
    return ""


def _paragraphs(s: str) -> list[str]:
    """Paragraphs (runs of text lines) and list items; definition lists and rules dropped."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in s.split("\n"):
        stripped = line.strip()
        if not stripped:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        first = stripped[0]
        if first in ":;":
            # Indented text and definition lists render as <dl>, which WME leaves out.
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        if first in "*#":
            if current:
                paragraphs.append(" ".join(current))
                current = []
            item = stripped.lstrip("*#:; \t")
            if item:
                paragraphs.append(item)
            continue
        if stripped.startswith("----"):
            stripped = stripped.lstrip("-").strip()
            if not stripped:
                continue
        current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _tidy(para: str, skip_parens: bool) -> str:
    """WME's clean-up of one paragraph: asides in parentheses, empty brackets, spaces."""
    para = _collapse_blanks(para.replace("\n", " "))
    if not skip_parens and ("(" in para or "（" in para):
        para = _remove_asides(para)
    if "(" in para or "[" in para:
        para = _remove_empty_brackets(para)[0]
    for pair in _SPACE_PUNCT_PAIRS:
        if pair in para:
            para = _SPACE_BEFORE_PUNCT.sub(lambda m: m.group(1) or m.group(2), para)
            break
    return _collapse_blanks(para).strip()


_PARENS = re.compile(r"[()（）]")


def _remove_asides(para: str) -> str:
    """WME's parenthetical rules (`general/parser/parser.go`), as one linear pass.

    1. Parentheses nested inside another open parenthesis go (`nestedBraces`, applied until
       nothing changes, removes exactly these).
    2. `( |nbsp)\\([^)]+ [^)]*\\)`: a parenthesis after a space, with a space inside that is not
       its first character, goes together with the space before it.
    3. Full-width `（…）` containing a space, '：' or '，' between other characters goes.
    """
    # Step 1: a stack of open parentheses; a pair whose opening had another open one below it is
    # cut (the outermost such pair covers the deeper ones).
    cuts: list[tuple[int, int]] = []
    stack: list[int] = []
    for m in _PARENS.finditer(para):
        if m.group() in "(（":
            stack.append(m.start())
        elif stack:
            start = stack.pop()
            if stack and m.end() - start > 2:
                cuts.append((start, m.end()))
    if cuts:
        cuts.sort()
        out = []
        pos = 0
        for start, end in cuts:
            if start >= pos:
                out.append(para[pos:start])
                pos = end
        out.append(para[pos:])
        para = "".join(out)
    para = _remove_spaced_parens(para)
    if "（" in para:
        para = _remove_fullwidth_parens(para)
    return para


def _remove_spaced_parens(para: str) -> str:
    """Go's `( |&nbsp;)\\([^)]+ [^)]*\\)` → "": leftmost-first, non-overlapping, linear."""
    out = []
    pos = 0
    close = -2  # cached next ')' (-1: none left)
    for m in _SPACED_PAREN.finditer(para):
        i = m.end() - 1  # the '('
        if m.start() < pos:
            continue
        if close != -1 and close <= i:
            close = para.find(")", i + 1)
        if close == -1:
            break
        # `[^)]+ ` — a space inside, not as the first character.
        if para.find(" ", i + 2, close) < 0:
            continue
        out.append(para[pos : m.start()])
        pos = close + 1
    out.append(para[pos:])
    return "".join(out)


def _remove_fullwidth_parens(para: str) -> str:
    """Go's `（[^）]+[ ：，][^）]+）` → "": a separator with text on both sides inside （…）."""
    out = []
    pos = 0
    close = -2  # cached next '）' and next separator (-1: none left), so that a run of
    sep = -2  # openings before one far '）' costs linear time
    for m in _FULLWIDTH_OPEN.finditer(para):
        i = m.start()
        if i < pos:
            continue
        if close != -1 and close <= i:
            close = para.find("）", i + 1)
        if close == -1:
            break
        if sep != -1 and sep < i + 2:
            found = _FULLWIDTH_SEPARATOR.search(para, i + 2)
            sep = found.start() if found else -1
        if sep == -1 or sep > close - 2:
            continue
        out.append(para[pos:i])
        pos = close + 1
    out.append(para[pos:])
    return "".join(out)


_SPACED_PAREN = re.compile("[ \u00a0]\\(")
_FULLWIDTH_OPEN = re.compile("（")
_FULLWIDTH_SEPARATOR = re.compile("[ ：，]")
