"""Facts from a page's wikitext: direct templates, categories, maintenance tags, noindex (the abstract: `abstract.py`).

Pure functions, no Beam. Everything is a linear scan with compiled regular expressions and
`str.find`, following the structure of MediaWiki's own preprocessor (`Preprocessor_Hash`) rather
than a full parse, so a typical article costs well under a millisecond and no input — unclosed
braces, megabytes of nesting — makes a scan quadratic:

1. `_strip` — comments, `<includeonly>` and extension tags (`<ref>`, `<nowiki>`, `<math>`…) are
   cut out the way the preprocessor does it, each extension tag replaced by a placeholder; the
   content of tags MediaWiki parses as wikitext (`<ref>`, `<poem>`, `<gallery>`…) is analysed as
   its own scope, exactly as the tag hook's `recursiveTagParse` does.
2. `_braces` — the preprocessor's brace stack (`{{`, `{{{`, `[[`) with its run-length rules,
   so `{{{{Foo}}}}`, `{{Foo|[[a|b]]}}` and unclosed braces pair up as in MediaWiki.
3. Titles are classified the way `Parser::braceSubstitution` does (subst, variables, msg/raw,
   parser functions, then `Title::newFromText`) using `magic_words`.

Templates are listed as WME lists them from Parsoid's `data-mw`: the transclusions written in
the page itself — at the top level, in link texts, headings and parsed extension tags (`<ref>`) —
but not those nested in another template's parameters (`{{Foo|x={{Bar}}}}` lists Foo only; Bar
still counts as a maintenance tag). Templates used only by other templates are not listed, both
branches of `{{#if:}}` count, and names built from other templates or parameters
(`{{ {{{1}}} }}`) are skipped.

mwparserfromhell is not used here: every construct above has an exact linear rule, so no
fallback is needed. It is the oracle in `tests/test_wikitext.py`, which lists where the two
differ (in each case MediaWiki agrees with this module). Known simplifications:
- `-{…}-` language-converter markup is not a brace piece (matters on zh/sr/kk wikis only), nor
  are the preprocessor's heading pieces (a `== … ==` line inside an open template);
- `<gallery>` content is one scope (MediaWiki parses each caption line on its own);
- interwiki prefixes and localised magic words are not in dumps: `{{w:Foo}}` is read as
  `Template:W:Foo`, `{{ΟΝΟΜΑΣΕΛΙΔΑΣ}}` as a template (see `MagicWords.extended`);
- `{{/Sub}}` is not resolved against the page title; percent-escapes in template names are
  decoded (MediaWiki rejects such titles).
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
from dataclasses import dataclass
from typing import NamedTuple

from wikisnap.schemas.siteinfo import CANONICAL_NAMESPACES, SiteInfo

from .magic_words import MAGIC_WORDS, MagicWords

__all__ = ["WikitextFacts", "analyze"]


@dataclass(frozen=True)
class WikitextFacts:
    """What `analyze` finds in one page's wikitext (WME `templates`, `categories`, `version.*`)."""

    templates: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    citation_needed_count: int = 0
    pov_count: int = 0
    clarification_needed_count: int = 0
    update_count: int = 0
    noindex: bool = False


# -- extension tags -------------------------------------------------------------------------------
# Tags whose content the tag hook parses as wikitext again: templates and categories in them
# count (a citation template inside <ref> is transcluded by the page).
PARSED_TAGS = frozenset({"ref", "references", "poem", "gallery", "indicator", "quiz"})
# Tags whose content is not wikitext (or not shown): nothing inside them counts.
OPAQUE_TAGS = frozenset(
    {
        "nowiki", "pre", "math", "chem", "ce", "syntaxhighlight", "source", "score", "timeline",
        "hiero", "graph", "templatedata", "templatestyles", "mapframe", "maplink", "inputbox",
        "categorytree", "imagemap", "section", "charinsert", "rss", "dynamicpagelist",
        "languages", "phonos", "langconvert", "pagelist", "pages", "pagequality",
    }
)  # fmt: skip
# Page-view rules (`Preprocessor_Hash`, not including): <includeonly> elements vanish with their
# content; <noinclude>/<onlyinclude> tags vanish but their content stays.
_IGNORED_TAGS = frozenset({"noinclude", "onlyinclude"})
_ALL_TAGS = sorted(PARSED_TAGS | OPAQUE_TAGS | _IGNORED_TAGS | {"includeonly"}, key=len, reverse=True)


# Non-ASCII characters that `re.IGNORECASE` matches to an ASCII letter (found by trying every
# code point): İ ı for i, the Kelvin sign for k, the long s for s.
_UNICODE_FOLDS = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def _name_trie(names: set[str], folds: bool = False) -> str:
    """A regex matching exactly `names`, ASCII case-insensitively, as a trie of character classes.

    Faster than `re.IGNORECASE` over a flat alternation: every branch starts with a class, which
    the regex engine rejects in one test, so a `<` that opens no tag costs a few tests, not one
    case-folded comparison per name. ASCII only, as MediaWiki's tag names: `<ſource>` (long s)
    or `<nowiKi>` (Kelvin sign) are text, where Unicode case folding made them tags. With
    `folds`, exactly what `re.IGNORECASE` matched (the HTML tags of the abstract, unchanged).
    """
    groups: dict[str, set[str]] = {}
    for name in names:
        if name:
            groups.setdefault(name[0], set()).add(name[1:])
    alternatives = [
        (f"[{c.upper()}{c}{_UNICODE_FOLDS.get(c, '') if folds else ''}]" if c.isalpha() else re.escape(c))
        + _name_trie(rest, folds)
        for c, rest in sorted(groups.items())
    ]
    if not alternatives:
        return ""
    if len(alternatives) == 1:
        return f"(?:{alternatives[0]})?" if "" in names else alternatives[0]
    return "(?:" + "|".join(alternatives) + ")" + ("?" if "" in names else "")


@functools.lru_cache(maxsize=256)
def _tag_pattern(closed: frozenset[str]) -> re.Pattern[str]:
    """`<!--` or `<name` followed by whitespace, `/>` or `>` (PCRE `\\s` is ASCII whitespace),
    for every tag name except those known to have no closing tag left."""
    names = _name_trie({name for name in _ALL_TAGS if name not in closed})
    return re.compile(r"<(?:(!--)|(/?)(" + names + r")(?=[ \t\n\r\f\v]|/>|>))")


# `_tag_pattern(frozenset())` with a first alternative that reads a whole <ref> element, the tag on a typical page
# (one in three hundred characters of enwiki): groups 2 attributes (ending in '/' when the tag
# closes itself, `(?<=/>)`) and 3 content, up to the first `</ref\s*>` as `_CLOSE_RES["ref"]`
# finds it (its case-insensitive letters fold to ASCII only). A <ref> without a closing tag or
# without a '>' is matched again by the general alternatives and handled as before, which then
# stops looking for <ref> or for tags: so this costs at most one more scan of the text.
_REF_OR_TAG = re.compile(
    r"<(?:(!--)|[Rr][Ee][Ff](?=[ \t\n\r\f\v]|/>|>)([^>]*+)>(?:(?<=/>)|"
    r"((?:[^<]++|<(?!/[Rr][Ee][Ff][ \t\n\r\f\v]*>))*+)</[Rr][Ee][Ff][ \t\n\r\f\v]*>)"
    r"|(/?)(" + _name_trie(set(_ALL_TAGS)) + r")(?=[ \t\n\r\f\v]|/>|>))"
)
_COMMENT_ONLY = re.compile(r"<!--")
_CLOSE_RES: dict[str, re.Pattern[str]] = {
    name: re.compile(r"</" + name + r"[ \t\n\r\f\v]*>", re.IGNORECASE) for name in _ALL_TAGS
}
# Placeholders stand where an extension tag was, like MediaWiki's strip markers: \x7f is illegal
# in titles, so a placeholder inside a template name or link target makes it invalid, as in
# MediaWiki.
_MARK = "\x7f"
_PLACEHOLDER = re.compile("\x7f(\\d+)\x7f")


class _Element(NamedTuple):
    """One extension tag cut out by `_strip`: lower-case name, attribute text, raw content."""

    name: str
    attrs: str
    content: str


# Made without a Python-level `__new__` call (the one NamedTuple adds): one per <ref> counts.
_new_element = functools.partial(tuple.__new__, _Element)
_PLACEHOLDERS_MADE = 4096
_PLACEHOLDERS = [f"{_MARK}{n}{_MARK}" for n in range(_PLACEHOLDERS_MADE)]


def _strip(text: str) -> tuple[str, list[_Element]]:
    """Cut comments, <includeonly> and extension tags out of `text`, as MediaWiki's preprocessor.

    Returns the text with `\\x7f<n>\\x7f` placeholders for the extension tags, and the tags.
    Follows `Preprocessor_Hash::buildDomTreeArrayFromText`: an unclosed comment or
    <includeonly> runs to the end; an extension tag without its closing tag is literal text, and
    after one such miss that tag name is never searched again (MediaWiki's own guard against
    quadratic time). The next `>` is cached for the same reason.
    """
    if _MARK in text:
        text = text.replace(_MARK, "")
    if "<" not in text:
        return text, []
    out: list[str] = []
    append = out.append
    new_element = _new_element
    elements: list[_Element] = []
    find = text.find
    pos = 0
    gt = -2  # position of the next '>' at or after the last tag name; -1: there is none
    no_close: frozenset[str] = frozenset()
    search = _REF_OR_TAG.search
    groups = 5, 4  # the tag name's and closing slash's (in `_REF_OR_TAG`; 3, 2 in `_tag_pattern`)
    comments_only = False
    while True:
        m = search(text, pos)
        if m is None:
            break
        start, end = m.span()
        last = m.lastindex
        if comments_only or last == 1:
            append(text[pos:start])
            close = find("-->", start + 4)
            if close < 0:
                pos = len(text)
                break
            pos = close + 3
            continue
        if last != groups[0]:
            # A whole <ref> element (content, or none when the tag closes itself).
            n = len(elements)
            append(text[pos:start])
            append(_PLACEHOLDERS[n] if n < _PLACEHOLDERS_MADE else f"{_MARK}{n}{_MARK}")
            if last == 3:
                elements.append(new_element(("ref", *m.group(2, 3))))
            else:
                elements.append(new_element(("ref", m.group(2)[:-1], "")))
            pos = end
            continue
        slash, name = m.group(groups[1], groups[0])
        name = name.lower()
        name_end = end
        if slash and name not in _IGNORED_TAGS:
            # A stray closing tag is text.
            append(text[pos:name_end])
            pos = name_end
            continue
        if gt < name_end and gt != -1:
            gt = find(">", name_end)
        if gt == -1:
            # No '>' left: no tag can open any more, only comments.
            search = _COMMENT_ONLY.search
            comments_only = True
            append(text[pos:name_end])
            pos = name_end
            continue
        append(text[pos:start])
        if name in _IGNORED_TAGS:
            pos = gt + 1
            continue
        if text[gt - 1] == "/":
            attrs = text[name_end : gt - 1]
            content = ""
            pos = gt + 1
        else:
            attrs = text[name_end:gt]
            close_m = _CLOSE_RES[name].search(text, gt + 1)
            if close_m is None:
                if name == "includeonly":
                    pos = len(text)
                    break
                # Stop looking for this tag: its later openings are text too.
                no_close = no_close | {name}
                search = _tag_pattern(no_close).search
                groups = 3, 2
                append(text[start : gt + 1])
                pos = gt + 1
                continue
            content = text[gt + 1 : close_m.start()]
            pos = close_m.end()
        if name == "includeonly":
            continue
        append(f"{_MARK}{len(elements)}{_MARK}")
        elements.append(_Element(name, attrs, content))
    append(text[pos:])
    return "".join(out), elements


class _Scope:
    """One piece of wikitext after `_strip`, with its brace pairing computed on first use."""

    __slots__ = ("s", "elements", "_found", "_spans")

    def __init__(self, text: str) -> None:
        self.s, self.elements = _strip(text)
        self._found: list[tuple[int, str, bool, bool]] | None = None
        self._spans: list[tuple[int, int]] = []

    def braces(self) -> tuple[list[tuple[int, str, bool, bool]], list[tuple[int, int]]]:
        """(templates, spans of templates and arguments) — see `_braces`."""
        if self._found is None:
            self._found = _braces(self.s, self._spans) if "{{" in self.s else []
        return self._found, self._spans


# One-entry cache per thread: pipelines call `analyze` and then `abstract` on the same string,
# which share the strip pass and the brace pairing. Keyed by identity and holding the string,
# so the key cannot be recycled.
_last = threading.local()


def _prepare(text: str) -> _Scope:
    cached = getattr(_last, "value", None)
    if cached is not None and cached[0] is text:
        return cached[1]
    scope = _Scope(text)
    _last.value = (text, scope)
    return scope


# -- the brace stack ----------------------------------------------------------------------------
# With pieces open: the next run of two or more braces or brackets (group 1), after text that
# holds none — single ones and `[[…]]` links without braces or brackets inside, whose push and pop
# would leave the stack as it was, so the regex engine steps over them.
_NEXT_TOKEN = re.compile(
    r"(?:[^{}\[\]]++|\{(?!\{)|\}(?!\})|\[(?!\[)|\](?!\])|\[\[(?!\[)[^{}\[\]]*+\]\](?!\]))*+"
    r"(\{\{+|\}\}+|\[\[+|\]\]+)"
)
# With no piece open: the next run of three or more braces, or of two, with the `_SIMPLE_BODY` of
# a template after it when there is one (groups 1 and 2).
_OPEN_OR_TEMPLATE = re.compile(r"\{\{\{+|\{\{(?:([^{}\[\]|]*+)(\|[^{}\[\]]*+)?\}\}(?!\}))?")
# Fast path: after an opening run of exactly two braces, a body without braces or brackets and
# an exact `}}` is a template whatever surrounds it (push and pop leave the stack unchanged).
_SIMPLE_BODY = re.compile(r"([^{}\[\]|]*+)(\|[^{}\[\]]*+)?\}\}(?!\})")
# The name part of a template ends at the first '|' or at its closing braces; any brace or
# bracket before that means the name is built from other elements (or is invalid).
_NAME_STOP = re.compile(r"[|{}\[\]]")


def _braces(
    s: str, spans: list[tuple[int, int]] | None = None, names: bool = True
) -> list[tuple[int, str, bool, bool]]:
    """Pair braces like MediaWiki's preprocessor; return the templates
    `(open pos, raw name, has args, maybe nested)`.

    Rules from `Preprocessor_Hash`: a run of n `{` opens one piece of count n; a closing run
    matches the top piece only, with `}}}` (template argument) preferred over `}}` (template);
    leftover opening braces stay on the stack or become literal; `[[` pieces take part so a
    `}}` inside an open `[[` is literal. When `spans` is given, the (start, end) of every
    template and template argument is appended (for the abstract); with `names` False only the
    spans are made (for the plain text, which drops every template).

    A `[[` piece with no `{` piece below it can never change how braces pair (a closing run it
    blocks would be literal on an empty stack too), so while the stack is empty only `{{` is
    searched for: the links of running text are skipped at C speed. The same search reads a
    whole simple template (`_SIMPLE_BODY`) in one match. With pieces open, a `[[…]]` link without
    braces or brackets inside is pushed and popped at once, so `_NEXT_TOKEN` steps over it.

    "maybe nested" is False when no other piece was open when the template closed and its own
    piece opened with two or three braces (so it closes once): then no span can enclose it
    (every earlier piece has closed before it), and `_analyze_scope` skips the nesting test.
    """
    found: list[tuple[int, str, bool, bool]] = []
    # stack entries: [opening char, remaining count, content start, (name end, name) or None,
    # opening count]
    stack: list[list] = []
    name_stop = _NAME_STOP.search
    next_token = _NEXT_TOKEN.match
    open_or_template = _OPEN_OR_TEMPLATE.search
    simple = _SIMPLE_BODY.match
    pos = 0
    while True:
        if stack:
            m = next_token(s, pos)
            if m is None:
                break
            tok = m.group(1)
            at = m.start(1)
        else:
            m = open_or_template(s, pos)
            if m is None:
                break
            if m.lastindex:
                # A whole template: no piece is open, so nothing encloses it.
                at, pos = m.span()
                if names:
                    found.append((at, m.group(1), m.group(2) is not None, False))
                if spans is not None:
                    spans.append((at, pos))
                continue
            tok = m.group()
            at = m.start()
        ch = tok[0]
        pos = m.end()
        if ch == "{":
            if len(tok) == 2:
                body = simple(s, pos)
                if body is not None:
                    if names:
                        found.append((pos - 2, body.group(1), body.group(2) is not None, bool(stack)))
                    if spans is not None:
                        spans.append((pos - 2, body.end()))
                    pos = body.end()
                    continue
            stack.append([ch, len(tok), pos, None, len(tok)])
            continue
        if ch == "[":
            stack.append([ch, len(tok), pos, None])
            continue
        opener = "{" if ch == "}" else "["
        remaining = len(tok)
        while remaining and stack and stack[-1][0] == opener:
            piece = stack[-1]
            count = remaining if remaining < piece[1] else piece[1]
            if opener == "{":
                matched = 3 if count >= 3 else (2 if count == 2 else 0)
            else:
                matched = 2 if count >= 2 else 0
            if not matched:
                # A lone closing brace is text; MediaWiki skips it and goes on.
                at += count
                remaining -= count
                continue
            content_start = piece[2]
            if opener == "{":
                if matched == 2 and names:
                    # The name runs to the first structural character after the opening
                    # braces; computed once per piece (a piece of count 2n can close n times,
                    # and rescanning or re-slicing a long name each time would be quadratic).
                    name = piece[3]
                    if name is None:
                        # Always found: the closing brace at `at` is one.
                        stop = name_stop(s, content_start).start()  # type: ignore[union-attr]
                        name = piece[3] = (stop, s[content_start:stop])
                    stop = name[0]
                    if stop == at or s[stop] == "|":
                        # Maybe nested if a piece below may still close around it, or if its
                        # own piece opened with 4+ braces: it may close with `}}}` too, before
                        # or after, a span starting one brace before this template's.
                        found.append((content_start - 2, name[1], stop != at, len(stack) > 1 or piece[4] >= 4))
                if spans is not None:
                    spans.append((content_start - matched, at + matched))
            at += matched
            remaining -= matched
            stack.pop()
            piece[1] -= matched
            if piece[1] >= 2:
                stack.append(piece)
    return found


# -- titles -------------------------------------------------------------------------------------
# Characters MediaWiki never allows in a title (`Title::legalChars()` is everything else; '#'
# starts a fragment and is handled by `SiteInfo.normalize`).
_ILLEGAL = re.compile(r"[<>\[\]{}|\x00-\x1f\x7f\ufffd]")
# Directional marks MediaWikiTitleCodec deletes from titles.
_BIDI_MARKS = re.compile(r"[\u200e\u200f\u202a-\u202e]")
_PHP_TRIM = " \t\n\r\x00\x0b"


def _valid_text(site: SiteInfo, ns: int, full: str) -> bool:
    """MediaWikiTitleCodec's remaining checks on a normalised title: no illegal characters,
    no relative path segments, no leading ':' after the prefix, no '~~~', at most 255 bytes."""
    if _ILLEGAL.search(full):
        return False
    text = full[len(site.namespace_name(ns)) + 1 :] if ns else full
    if not text or text[0] == ":" or "~~~" in text:
        return False
    if text in (".", "..") or text.startswith(("./", "../")) or "/./" in text or "/../" in text:
        return False
    if text.endswith(("/.", "/..")):
        return False
    return len(text.encode("utf-8")) <= 255


def _title(site: SiteInfo, target: str, default_ns: int) -> tuple[int, str] | None:
    """`Title::newFromText(target, default_ns)`: `(ns, full title)` or None when invalid."""
    # Characters after '#' belong to the fragment, which MediaWiki does not check.
    head = target.split("#", 1)[0] if "#" in target else target
    if _ILLEGAL.search(head):
        return None
    if _BIDI_MARKS.search(target):
        target = _BIDI_MARKS.sub("", target)
    result = site.normalize(target, default_ns)
    if result is None or not _valid_text(site, *result):
        return None
    return result


def _template_target(raw: str, has_args: bool, magic: MagicWords) -> str | None:
    """The page a `{{raw|…}}` transcludes, as text for `Title::newFromText`, or None.

    `Parser::braceSubstitution` order: `subst:` (shown literally on a normal view, so not a
    transclusion) and `safesubst:`; variables (only without arguments); `msgnw:`/`msg:`/`raw:`;
    parser functions (name before the first ':'); otherwise a title.
    """
    name = raw.strip(_PHP_TRIM)
    if not name:
        return None
    if name[0] in "sS":
        low = name[:10].lower()
        if low.startswith("subst:"):
            return None
        if low.startswith("safesubst:"):
            name = name[10:]
    if not has_args and magic.is_variable(name):
        return None
    if name[:6].lower() == "msgnw:":
        name = name[6:]
    elif name[:4].lower() == "msg:":
        name = name[4:]
    if name[:4].lower() == "raw:":
        name = name[4:]
    if name.startswith("#"):
        return None
    colon = name.find(":")
    if colon > 0 and magic.is_function(name[:colon]):
        return None
    return name


class _SiteData:
    """Per-site lookups computed once: the category-link regex and name caches."""

    def __init__(self, site: SiteInfo, magic: MagicWords) -> None:
        self.site = site
        self.magic = magic
        names = {CANONICAL_NAMESPACES[14], site.namespace_name(14)}
        alternatives = "|".join(
            sorted(
                (r"[ _]+".join(re.escape(w) for w in n.split()) for n in names if n),
                key=len,
                reverse=True,
            )
        )
        # `[[Category:X]]` / `[[Category:X|key]]`: `Parser::handleInternalLinks` splits the text
        # at every `[[` (so a run of '[' pairs up from the left) and takes the longest run of
        # legal title characters as the target.
        # The pattern starts with a literal so the regex engine can skip to each `[[` quickly;
        # group 1 holds further bracket pairs, for the odd-run check in `_analyze_scope`; it is
        # bounded so that a long run of '[' costs O(1) per position, the check counts the run.
        self.category_link = re.compile(
            r"\[\[((?:\[\[){0,8}+)[ _]*((?i:" + alternatives + r")[ _]*:[^<>\[\]{}|\x00-\x1f\x7f]*+)(\||\]\])"
        )
        self.templates: dict[tuple[str, bool], tuple[str, int] | None] = {}
        self.categories: dict[str, str | None] = {}

    def template(self, raw: str, has_args: bool) -> tuple[str, int] | None:
        """(full title, maintenance kind) of a transclusion, or None; memoised per site."""
        key = (raw, has_args)
        try:
            return self.templates[key]
        except KeyError:
            pass
        result: tuple[str, int] | None = None
        target = _template_target(raw, has_args, self.magic)
        if target is not None:
            title = _title(self.site, target, 10)
            if title is not None and title[0] >= 0:
                ns, full = title
                result = (full, _maintenance_kind(self.site, ns, full))
        if len(raw) < 512:
            if len(self.templates) > 200_000:
                self.templates.clear()
            self.templates[key] = result
        return result

    def category(self, target: str) -> str | None:
        """Full category title for a `[[target]]` known to start with a category prefix."""
        try:
            return self.categories[target]
        except KeyError:
            pass
        title = _title(self.site, target, 0)
        result = title[1] if title is not None and title[0] == 14 else None
        if len(self.categories) > 200_000:
            self.categories.clear()
        self.categories[target] = result
        return result


_SITE_CACHE: dict[int, _SiteData] = {}
_SITE_LOCK = threading.Lock()


def _site_data(site: SiteInfo, magic: MagicWords) -> _SiteData:
    # Keyed by id() but holding the SiteInfo itself, so an id cannot be reused while cached.
    data = _SITE_CACHE.get(id(site))
    if data is not None and data.site is site and data.magic is magic:
        return data
    with _SITE_LOCK:
        if len(_SITE_CACHE) > 64:
            _SITE_CACHE.clear()
        data = _SiteData(site, magic)
        _SITE_CACHE[id(site)] = data
    return data


# -- maintenance tags ---------------------------------------------------------------------------
# WME counts `{{Citation needed…}}`, `{{POV…}}`, `{{Clarify…}}`, `{{Update…}}` with the Go regexes
# `(?i){{Citation needed(\|*).*?}}` etc. in `general/builder/maintenance_tags.go` — a prefix match
# on the raw wikitext. We count transclusions whose template name (without namespace prefix)
# starts with the same words, case-insensitively: the same templates, but not inside comments,
# <nowiki> or <includeonly>, and also when written `{{ citation needed }}` or over two lines.
_MAINTENANCE_PREFIXES = (("citation needed", 1), ("pov", 2), ("clarify", 3), ("update", 4))


def _maintenance_kind(site: SiteInfo, ns: int, full: str) -> int:
    if ns != 10:
        return 0
    name = full[len(site.namespace_name(10)) + 1 :].lower()
    for prefix, kind in _MAINTENANCE_PREFIXES:
        if name.startswith(prefix):
            return kind
    return 0


# -- analyze ------------------------------------------------------------------------------------
_NOINDEX = "__NOINDEX__"


def analyze(text: str, site: SiteInfo, magic: MagicWords = MAGIC_WORDS) -> WikitextFacts:
    """Templates, categories, maintenance-tag counts and `__NOINDEX__` of one page's wikitext.

    `text` is the revision's wikitext, `site` the wiki it comes from (namespace names and case
    rules). Titles are full and localised (`Template:Infobox person`, `Κατηγορία:Πόλεις`), in
    order of first appearance, without duplicates.
    """
    data = _site_data(site, magic)
    templates: list[tuple[tuple[int, ...], str]] = []
    categories: list[tuple[tuple[int, ...], str]] = []
    counts = [0, 0, 0, 0, 0]
    noindex = _analyze_scope(_prepare(text), (), data, templates, categories, counts)
    return WikitextFacts(
        templates=_ordered_unique(templates),
        categories=_ordered_unique(categories),
        citation_needed_count=counts[1],
        pov_count=counts[2],
        clarification_needed_count=counts[3],
        update_count=counts[4],
        noindex=noindex,
    )


def _analyze_scope(
    scope: _Scope,
    key: tuple[int, ...],
    data: _SiteData,
    templates: list[tuple[tuple[int, ...], str]],
    categories: list[tuple[tuple[int, ...], str]],
    counts: list[int],
    top: bool = True,
) -> bool:
    """Collect from one scope (the page, or the content of one parsed tag); True if noindex.

    `top` is False for a tag inside a template's parameters: its categories and maintenance
    tags count, its templates are not the page's own (Parsoid keeps them in the parent's data-mw).
    """
    s, elements = scope.s, scope.elements
    nested = None  # the nesting test, built on first use (most templates never need it)
    spans: list[tuple[int, int]] = []
    cached = data.templates.get  # `data.template`'s memo, read without a method call
    lookup = data.template
    if "{{" in s:
        found, spans = scope.braces()
        for pos, raw, has_args, maybe_nested in found:
            hit = cached((raw, has_args), _UNSEEN)
            if hit is _UNSEEN:
                hit = lookup(raw, has_args)
            if hit is not None:
                # Maintenance tags count every transclusion (WME counts them in the wikitext);
                # `templates` lists only those written in the page itself, as Parsoid's data-mw.
                counts[hit[1]] += 1
                if top:
                    if maybe_nested:
                        if nested is None:
                            nested = _nested_test(spans)
                        if nested(pos):
                            continue
                    templates.append(((*key, pos), hit[0]))
    if "[[" in s:
        _categories(s, key, data, categories)
    noindex = _NOINDEX in s
    if not elements:
        return noindex
    # Element n is the n-th placeholder of `s` (they are made in order, one each, and `s` holds no
    # other `\x7f`): its two marks are found with `str.find` (memchr), its number is not read.
    find = s.find
    after = 0  # just past the last placeholder
    # Whether a tag's content may sit inside a template's braces (then its templates are not
    # the page's own): tested only for contents that hold a template, not for the many refs of
    # plain text.
    check = top and bool(spans)
    for element in elements:
        at = find(_MARK, after)
        after = find(_MARK, at + 1) + 1
        content = element.content
        if not content or element.name not in PARSED_TAGS:
            continue
        # Shortcuts for the common contents. Content never holds `\x7f` (the page's were
        # removed before its tags were cut out), so without `<` `_strip` would return it as it
        # is; then without `{{` `_braces` finds nothing, and a lone template is all it finds.
        if "<" not in content:
            if "{{" in content:
                lone = _lone_template(content)
                if lone is None:
                    if check and nested is None:
                        nested = _nested_test(spans)
                    inner_top = top and not (check and nested(at))
                    sub = _analyze_scope(_Scope(content), (*key, at), data, templates, categories, counts, inner_top)
                    noindex = noindex or sub
                    continue
                hit = cached((lone[1], lone[2]), _UNSEEN)
                if hit is _UNSEEN:
                    hit = lookup(lone[1], lone[2])
                if hit is not None:
                    counts[hit[1]] += 1
                    if top:
                        if check and nested is None:
                            nested = _nested_test(spans)
                        if not (check and nested(at)):
                            templates.append(((*key, at, lone[0]), hit[0]))
            if "[" in content and "[[" in content:  # (one character is found faster than two)
                _categories(content, (*key, at), data, categories)
            noindex = noindex or _NOINDEX in content
            continue
        if check and nested is None:
            nested = _nested_test(spans)
        inner_top = top and not (check and nested(at))
        sub = _analyze_scope(_Scope(content), (*key, at), data, templates, categories, counts, inner_top)
        noindex = noindex or sub
    return noindex


_UNSEEN = object()


# Arguments of a lone template (`_lone_template`) that hold brackets: links are `[[…]]` runs of
# exactly two brackets without braces or brackets inside, other brackets are single.
_LINKS_ONLY = re.compile(r"(?:[^{}\[\]]++|\[\[(?!\[)[^{}\[\]]*+\]\](?!\])|\[(?!\[)|\](?!\]))*+")


def _lone_template(content: str) -> tuple[int, str, bool] | None:
    """(position, raw name, has arguments) of the only template in `content`, or None.

    For text holding no tag, two braces of each kind, `{{` before `}}`, no bracket in the name,
    and in the arguments only `_LINKS_ONLY` brackets, `_braces` finds that template and nothing
    else: an empty brace stack never pairs brackets, and the links inside push and pop a bracket
    piece on the template's. String methods, not one regex: most contents are a citation template
    (`<ref>{{cite web|…}}</ref>`, two <ref>s in three), and this is their whole analysis.
    """
    if content.count("{") != 2 or content.count("}") != 2:
        return None
    start = content.find("{{")
    if start < 0:
        return None
    end = content.find("}}", start + 2)
    if end < 0:
        return None
    bar = content.find("|", start + 2, end)
    name = content[start + 2 : end if bar < 0 else bar]
    if "[" in name or "]" in name:
        return None
    if bar < 0:
        return start, name, False
    if (content.find("[", bar, end) >= 0 or content.find("]", bar, end) >= 0) and not _LINKS_ONLY.fullmatch(
        content, bar + 1, end
    ):
        return None
    return start, name, True


def _categories(s: str, key: tuple[int, ...], data: _SiteData, categories: list[tuple[tuple[int, ...], str]]) -> None:
    """Append the category links of one scope's text `s` to `categories`."""
    s_find = s.find
    close = -2  # cached position of the next ']]' (-1: none left)
    for m in data.category_link.finditer(s):
        # `[[[Category:X]]`: split at `[[` from the left, the target starts with '[' — not
        # a link. Only an even run of '[' leaves the target intact.
        start = m.start()
        before = 0
        while start - before > 0 and s[start - before - 1] == "[":
            before += 1
        if (before + len(m.group(1))) % 2:
            continue
        if m.group(3) == "|":
            after = m.end()
            if close != -1 and close < after:
                close = s_find("]]", after)
            # The sort key runs to the next ']]', which must come before the next '[['.
            if close == -1:
                continue
            opening = s_find("[[", after, close)
            if opening != -1:
                continue
        name = data.category(m.group(2))
        if name is not None:
            categories.append(((*key, start), name))


def _never_nested(pos: int) -> bool:
    return False


def _nested_test(spans: list[tuple[int, int]]):
    """A predicate: is the piece opening at `pos` inside another template's or argument's braces?

    Brace pieces nest or are disjoint, so a piece is nested exactly when some span starting
    before it ends after it: a bisect over the starts and a running maximum of the ends.
    """
    if not spans:
        return _never_nested
    ordered = sorted(spans)
    starts = [a for a, _ in ordered]
    reach = []
    furthest = -1
    for _, end in ordered:
        furthest = max(furthest, end)
        reach.append(furthest)

    def nested(pos: int) -> bool:
        i = bisect.bisect_left(starts, pos)  # spans starting strictly before pos
        return i > 0 and reach[i - 1] > pos

    return nested


def _ordered_unique(hits: list[tuple[tuple[int, ...], str]]) -> tuple[str, ...]:
    # Keys are unique but for a piece closed twice, whose two hits are equal: a plain sort.
    hits.sort()
    return tuple(dict.fromkeys(name for _, name in hits))
