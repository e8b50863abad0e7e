"""The wikitext scanners' shortcuts (issues 11 and 14) against the plain forms they replaced.

Each shortcut in transforms/parse/wikitext.py, parse/abstract.py and parse/plaintext.py claims to give exactly what a
simpler scan gave. The simpler scans are written out here as references (the code before the
speed-up, kept small), and both run on every page of the real dumps in tests/data/xml, on the
contents of their <ref>s, and on seeded random markup soups (unclosed, nested and stray tokens):
any difference fails. The speed itself is measured by benchmarks/bench_scans.py, not here.
"""

from __future__ import annotations

import functools
import random
import re
import time

import pytest

from conftest import BGWIKI_UTF16, ELWIKIVOYAGE, ENWIKI, ENWIKTIONARY, NO_SITEINFO, VIWIKI_TRUNCATED
from wikisnap.transforms.formats.dumpreader import RawPage, ReadStats, iter_pages, read_siteinfo
from wikisnap.transforms.parse import abstract as abstract_text
from wikisnap.transforms.parse import plaintext, wikitext
from wikisnap.transforms.parse.abstract import abstract
from wikisnap.transforms.parse.article import page_to_article
from wikisnap.transforms.parse.plaintext import text_from_wikitext
from wikisnap.transforms.parse.wikitext import analyze


@functools.cache
def real_texts() -> tuple[tuple[object, str], ...]:
    """(SiteInfo, wikitext) of every page of the bundled dumps (the table-markup sample, which has
    no <siteinfo>, read with enwiki's)."""
    en = read_siteinfo(str(ENWIKI))
    out = []
    for path in (ENWIKI, ELWIKIVOYAGE, ENWIKTIONARY, BGWIKI_UTF16, VIWIKI_TRUNCATED, NO_SITEINFO):
        site = en if path == NO_SITEINFO else read_siteinfo(str(path))
        for page in iter_pages(str(path), site, ReadStats(str(path))):
            if isinstance(page, RawPage) and page.revision is not None and page.revision.text:
                out.append((site, page.revision.text))
    assert len(out) > 100
    return tuple(out)


TOKENS = [
    "{{", "}}", "{{{", "}}}", "{", "}", "[[", "]]", "[", "]", "|", "<ref>", "</ref>", "<ref name=a/>",
    "<REF >", "</Ref >", "<ref", ">", "<!--", "-->", "{|", "|}", "\n", " ", ":", "a ", " (", "x)", "( )",
    "[ ]", "'''", "''", "[[File:a|", "[[Category:B|k]]", "<nowiki>", "</nowiki>", "<includeonly>",
    "</includeonly>", "<noinclude>", "<math>", "</math>", "<poem>", "</poem>", "<div>", "</div>",
    "<sub>2</sub>", "[http://x ", "cite web", "Citation needed", "__NOINDEX__", " ,", " .", "\t", "\u00a0",
    "\x7f", "&amp;", "#if:", "subst:", "==", "\n== H ==\n", "*", "{{cite web|url=http://a|title=b}}",
]  # fmt: skip


def soups(seed: int, count: int, small: bool = False) -> list[str]:
    rng = random.Random(seed)
    sizes = [2, 5, 12, 40] if small else [5, 30, 150, 800]
    return ["".join(rng.choice(TOKENS) for _ in range(rng.choice(sizes))) for _ in range(count)]


@functools.cache
def ref_contents() -> tuple[str, ...]:
    """The content of every <ref> of the real pages, and small soups, as refs hold them."""
    contents = [e.content for _, text in real_texts() for e in wikitext._strip(text)[1] if e.name == "ref"]
    assert len(contents) > 300
    return tuple(contents + soups(11, 3000, small=True))


# -- references: the scans as they were ---------------------------------------------------------
_OLD_TAG = re.compile(r"<(?:(!--)|(/?)(" + "|".join(wikitext._ALL_TAGS) + r")(?=[ \t\n\r\f\v]|/>|>))", re.IGNORECASE)


def old_strip(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """`_strip` before the <ref> shortcut and the trie of tag names (one loop for every tag)."""
    text = text.replace("\x7f", "")
    out, elements, pos, gt, closed = [], [], 0, -2, set()
    pattern = _OLD_TAG
    while (m := pattern.search(text, pos)) is not None:
        start = m.start()
        if pattern.pattern == "<!--" or m.group(1):
            out.append(text[pos:start])
            close = text.find("-->", start + 4)
            pos = len(text) if close < 0 else close + 3
            if close < 0:
                break
            continue
        name, slash, name_end = m.group(3).lower(), m.group(2), m.end()
        if slash and name not in ("noinclude", "onlyinclude"):
            out.append(text[pos:name_end])
            pos = name_end
            continue
        if gt != -1 and gt < name_end:
            gt = text.find(">", name_end)
        if gt == -1:
            pattern = re.compile("<!--")
            out.append(text[pos:name_end])
            pos = name_end
            continue
        out.append(text[pos:start])
        if name in ("noinclude", "onlyinclude"):
            pos = gt + 1
            continue
        if text[gt - 1] == "/":
            attrs, content, pos = text[name_end : gt - 1], "", gt + 1
        else:
            attrs = text[name_end:gt]
            close_m = re.compile(r"</" + name + r"[ \t\n\r\f\v]*>", re.IGNORECASE).search(text, gt + 1)
            if close_m is None:
                if name == "includeonly":
                    pos = len(text)
                    break
                closed.add(name)
                names = "|".join(n for n in wikitext._ALL_TAGS if n not in closed)
                pattern = re.compile(r"<(?:(!--)|(/?)(" + names + r")(?=[ \t\n\r\f\v]|/>|>))", re.IGNORECASE)
                out.append(text[start : gt + 1])
                pos = gt + 1
                continue
            content, pos = text[gt + 1 : close_m.start()], close_m.end()
        if name != "includeonly":
            out.append(f"\x7f{len(elements)}\x7f")
            elements.append((name, attrs, content))
    out.append(text[pos:])
    return "".join(out), elements


def old_braces(s: str) -> tuple[list[tuple[int, str, bool]], list[tuple[int, int]]]:
    """`_braces` before its one-search template and link skipping: every token in Python."""
    found, spans, stack, pos = [], [], [], 0
    tokens = re.compile(r"\{\{+|\}\}+|\[\[+|\]\]+")
    while (m := (tokens if stack else re.compile(r"\{\{+")).search(s, pos)) is not None:
        tok, pos = m.group(), m.end()
        if tok[0] in "{[":
            stack.append([tok[0], len(tok), pos, None])
            continue
        opener, remaining, at = ("{" if tok[0] == "}" else "["), len(tok), m.start()
        while remaining and stack and stack[-1][0] == opener:
            piece = stack[-1]
            count = min(remaining, piece[1])
            matched = (3 if count >= 3 else 2 if count == 2 else 0) if opener == "{" else (2 if count >= 2 else 0)
            if not matched:
                at += count
                remaining -= count
                continue
            if opener == "{":
                if matched == 2:
                    if piece[3] is None:
                        stop = re.compile(r"[|{}\[\]]").search(s, piece[2]).start()
                        piece[3] = (stop, s[piece[2] : stop])
                    stop = piece[3][0]
                    if stop == at or s[stop] == "|":
                        found.append((piece[2] - 2, piece[3][1], stop != at))
                spans.append((piece[2] - matched, at + matched))
            at += matched
            remaining -= matched
            stack.pop()
            piece[1] -= matched
            if piece[1] >= 2:
                stack.append(piece)
    return found, spans


def old_remove_tables(s: str) -> str:
    out, pos, depth = [], 0, 0
    for m in re.finditer(r"^[ \t]*:*[ \t]*(\{\||\|\})", s, re.MULTILINE):
        if m.group(1) == "{|":
            if depth == 0:
                out.append(s[pos : m.start()])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                line_end = s.find("\n", m.end())
                pos = len(s) if line_end < 0 else line_end
    if depth == 0:
        out.append(s[pos:])
    return "".join(out)


OLD_EMPTY_PARENS = re.compile(r"\([ \t\n\r\f\v]*\)|\[[ \t\n\r\f\v]*\]")
OLD_FORMULA = re.compile(r"(?:(?<=[0-9A-Z)])|(?<=[A-Z][a-z]))<su[bp]>[0-9+-]{1,3}</su[bp]>")


def old_plain_tidy(s: str) -> str:
    """plaintext._tidy before its pre-checks and literal-start patterns."""
    import html

    if "&" in s:
        s = html.unescape(s)
    s = plaintext._RESIDUE.sub("", s)
    for blank in ("\t", "\r", "\f", "\v", "\u00a0"):
        s = s.replace(blank, " ")
    while "  " in s:
        s = s.replace("   ", " ").replace("  ", " ")
    if "(" in s:
        s = OLD_EMPTY_PARENS.sub("", s)
        while "  " in s:
            s = s.replace("  ", " ")
    s = s.replace(" ,", ",").replace(" .", ".")
    return "\n".join(line for line in (line.strip() for line in s.split("\n")) if line)


def old_abstract_tidy(para: str, skip_parens: bool) -> str:
    """abstract_text._tidy (one abstract paragraph) before its pre-checks."""
    para = abstract_text._ASCII_SPACES.sub(" ", para.replace("\n", " "))
    if not skip_parens and ("(" in para or "（" in para):
        para = abstract_text._remove_asides(para)
    if "(" in para or "[" in para:
        para = OLD_EMPTY_PARENS.sub("", para)
    para = abstract_text._SPACE_BEFORE_PUNCT.sub(lambda m: m.group(1) or m.group(2), para)
    return abstract_text._ASCII_SPACES.sub(" ", para).strip()


def nested_by_spans(spans: list[tuple[int, int]], pos: int) -> bool:
    return any(a < pos < b for a, b in spans)


# -- the comparisons ----------------------------------------------------------------------------
def test_strip_matches_the_plain_loop() -> None:
    inputs = [text for _, text in real_texts()] + soups(1, 4000)
    for text in inputs:
        s, elements = wikitext._strip(text)
        assert (s, [(e.name, e.attrs, e.content) for e in elements]) == old_strip(text), text[:300]


def test_braces_match_the_plain_stack() -> None:
    """Same templates and spans; and a template said not to be nested ("maybe nested" False) is
    inside no span (the flag once missed a piece of five braces closing first with three)."""
    inputs = [wikitext._strip(text)[0] for _, text in real_texts()] + list(ref_contents()) + soups(2, 4000)
    inputs += ["{{{{{a|x=\n{{{}}b}[[}[[Category:Y|k]]]]}}}}__NOINDEX__]]|{{{ {[[[Y|k]]}}}}}", "{{{{{b|c}}|d}}}"]
    flagged = 0
    for s in inputs:
        spans: list[tuple[int, int]] = []
        found = wikitext._braces(s, spans)
        old_found, old_spans = old_braces(s)
        assert [f[:3] for f in found] == old_found, s[:300]
        assert sorted(spans) == sorted(old_spans), s[:300]
        spans_only: list[tuple[int, int]] = []
        assert wikitext._braces(s, spans_only, names=False) == []
        assert spans_only == spans
        for pos, _, _, maybe_nested in found:
            if not maybe_nested:
                flagged += 1
                assert not nested_by_spans(spans, pos), (s[:300], pos)
    assert flagged > 1000


def test_lone_template_shortcut_matches_the_general_analysis() -> None:
    """A <ref> read by the shortcuts and the same <ref> forced through `_strip` and `_braces` (a
    comment at its end: no text changes) give the same facts, for every real and generated
    content; and the shortcut's template is the one `_braces` finds."""
    site = read_siteinfo(str(ENWIKI))
    lone = 0
    for content in ref_contents():
        if "<" in content or "\x7f" in content:
            continue
        for wrap in ("a<ref>{}</ref>b", "{{{{x|<ref>{}</ref>}}}} <ref>{}</ref>"):
            fast = analyze(wrap.replace("{}", content), site)
            general = analyze(wrap.replace("{}", content + "<!-- -->"), site)
            assert fast == general, content[:300]
        hit = wikitext._lone_template(content)
        if hit is not None:
            lone += 1
            assert [f[:3] for f in wikitext._braces(content)] == [hit], content[:300]
    assert lone > 100


def test_tables_brackets_and_formulas_match_the_plain_patterns() -> None:
    pieces = [text for _, text in real_texts()] + soups(3, 4000)
    pieces += [" : {|\n|}", ":{|}\n|}", "|{|\n{|}|}", "{{|\n|}}", " \t:\t{|\nx\n |}\ny", "::{|\n|}", ": :{|\n|}"]
    for s in pieces:
        assert abstract_text._remove_tables(s) == old_remove_tables(s), s[:300]
        assert abstract_text._remove_empty_brackets(s) == OLD_EMPTY_PARENS.subn("", s), s[:300]
        assert bool(abstract_text._FORMULA.search(s)) == bool(OLD_FORMULA.search(s)), s[:300]
        assert abstract_text._collapse_blanks(s) == abstract_text._ASCII_SPACES.sub(" ", s), s[:300]
        collapsed = s
        while "  " in collapsed:
            collapsed = collapsed.replace("   ", " ").replace("  ", " ")
        assert abstract_text._SPACE_RUN.sub(" ", s) == collapsed


def test_tidy_matches_the_plain_passes() -> None:
    rng = random.Random(6)
    texts = [text for _, text in real_texts()] + soups(5, 3000)
    texts += ["a ,b . c\u00a0, d\u00a0。 e ， f", "x  (  ) [ ] ( [ ] ) [( )] y", "{}}{ [[ ]}", "a\t\t b \u3000\n\n c "]
    for text in texts:
        assert plaintext._tidy(text) == old_plain_tidy(text), text[:300]
        para = text[: rng.choice([80, 800, 8000])]
        for skip in (False, True):
            assert abstract_text._tidy(para, skip) == old_abstract_tidy(para, skip), para[:300]


def test_first_heading_matches_the_multiline_search() -> None:
    texts = [text for _, text in real_texts()] + soups(12, 3000, small=True)
    texts += ["", "=", "==", "=a=", "=a=\n", "x\n=a=  \ny", "=x\n==b==\t", "\n=", "a\n=\n=b=", "=a= x\n=b="]
    for text in texts:
        m = abstract_text._HEADING.search(text)
        assert abstract_text._first_heading(text) == (-1 if m is None else m.start()), text[:300]


def test_pair_search_matches_in() -> None:
    texts = [text for _, text in real_texts()] + soups(7, 2000, small=True)
    texts += ["", "[", "[[", "a[b[", "[a[[", "]][", "[" * 7, "_a_b__", "__", "_"]
    for text in texts:
        for char in "[_":
            assert plaintext._has_double(text, char) == (char * 2 in text), text[:300]


def test_placeholders_split_matches_the_regex() -> None:
    """Whole placeholders take the split; a mark cut from its number (never made by the passes
    before, but possible in principle) falls back to the regex, with the same result."""
    site = read_siteinfo(str(ENWIKI))
    _, elements = wikitext._strip("<ref>a</ref><nowiki>b &amp; c</nowiki><poem>x\ny</poem><math>m</math>")
    cases = ["", "plain", "\x7f0\x7f\x7f1\x7f", "a\x7f2\x7f b \x7f3\x7f", "\x7f1\x7f tail \x7f", "\x7f\x7f1\x7f"]
    cases += ["a\x7fb\x7f1\x7f", "\x7f01\x7f", "\x7f+1\x7f", "\x7f\u0661\x7f", "\x7f1\x7f2\x7f", "x\x7f"]
    for s in cases:
        expected = wikitext._PLACEHOLDER.sub(
            lambda m: plaintext._element_text(elements[int(m.group(1))], site, 0), s
        ).replace("\x7f", "")
        assert plaintext._fill_placeholders(s, elements, site, 0) == expected, repr(s)


def test_whole_outputs_on_soups_and_page_pieces() -> None:
    """analyze, abstract and the text never fail on soups and cut pages, and no placeholder
    leaks into the text. (Their parts are compared with the references above.)"""
    site = read_siteinfo(str(ENWIKI))
    rng = random.Random(5)
    texts = [text for _, text in real_texts()]
    pieces = soups(4, 1500)
    for _ in range(1500):
        text = rng.choice(texts)
        start = rng.randrange(len(text))
        pieces.append(text[start : start + rng.choice([40, 400, 4000])])
    for piece in pieces:
        analyze(piece, site)
        assert "\x7f" not in abstract(piece, site)
        out = text_from_wikitext(piece, site)
        assert "\x7f" not in out


def test_tag_names_are_ascii() -> None:
    """`<ſource>` (long s) and `<nowiKi>` (Kelvin sign) are text, not tags: Unicode case folding
    made them tags before, and the lookup of their closing tag then failed with a KeyError."""
    site = read_siteinfo(str(ENWIKI))
    for tag in ("ſource", "nowi\u212ai", "İncludeonly"):
        text = f"a <{tag}>{{{{Citation needed}}}}</{tag}> b"
        assert wikitext._strip(text) == (text, [])
        assert analyze(text, site).templates == ("Template:Citation needed",)
    assert wikitext._strip("<SOURCE>x</Source>")[1] == [("source", "", "x")]


def test_html_tag_trie_matches_the_case_folded_alternation() -> None:
    """The abstract's HTML tags: the trie matches what `re.IGNORECASE` matched, non-ASCII folds
    (İ ı K ſ) included, on real pages and on tag names in random case and spelling."""
    old = re.compile(r"<(/?)(" + abstract_text._HTML_TAGS + r")(?=[ \t\n\r\f\v/>])([^<>]*+)>", re.IGNORECASE)
    rng = random.Random(8)
    names = abstract_text._HTML_TAGS.split("|")
    folds = {"i": "i\u0130\u0131", "k": "k\u212a", "s": "s\u017f"}
    texts = [text for _, text in real_texts()]
    for _ in range(30_000):
        name = "".join(
            rng.choice(folds.get(c, c)).upper() if rng.random() < 0.3 else rng.choice(folds.get(c, c))
            for c in rng.choice(names)
        )
        texts.append(rng.choice(["<", "</"]) + name + rng.choice([">", " a>", "/>", "x>", "", "<>", "\n>"]))
    for text in texts:
        assert [(m.span(), m.groups()) for m in abstract_text._HTML_TAG.finditer(text)] == [
            (m.span(), m.groups()) for m in old.finditer(text)
        ], text[:300]


@pytest.mark.parametrize(
    "text",
    [
        "<ref>{{a}}</ref>" * 50_000 + "<ref>" + "x" * 500_000,  # one <ref> never closed, after many
        "<ref>{{a}}</ref>" * 50_000 + "<ref " * 100_000,  # <ref without any '>' after them
        ("<ref>" + "{{cite|a=[[b]]" * 20 + "}}" * 20 + "</ref>") * 5_000,  # refs not lone, nested
        (" " * 400 + ":|}") * 5_000,  # indentation runs before table tokens
        "{|" + "\n:" * 300_000,
        "{{a|" + "[[b]]" * 300_000,  # links inside an open template
        "<!--" + "-" * 1_000_000,
    ],
)
def test_new_paths_stay_linear(text: str) -> None:
    """Guards for the shortcuts' own worst cases (each 1-2 MB; a quadratic scan needs hours)."""
    site = read_siteinfo(str(ENWIKI))
    started = time.process_time()
    analyze(text, site)
    abstract(text, site)
    text_from_wikitext(text, site)
    assert time.process_time() - started < 20


def test_nested_test_agrees_with_spans() -> None:
    """`_nested_test` (bisect over sorted spans) is the definition the flag is checked against."""
    rng = random.Random(9)
    for _ in range(300):
        spans = sorted({tuple(sorted(rng.sample(range(60), 2))) for _ in range(rng.randrange(1, 8))})
        nested = wikitext._nested_test(list(spans))
        for pos in range(60):
            assert nested(pos) == nested_by_spans(spans, pos)


def test_article_urls_and_size_match_the_plain_forms() -> None:
    """page_to_article's memoised template/category URLs and its ASCII size shortcut give what
    `site.url` and the UTF-8 encoding give, on every page of the bundled dumps (twice: the second
    time every URL comes from the memo)."""
    en = read_siteinfo(str(ENWIKI))
    checked = ascii_pages = 0
    for path in (ENWIKI, ELWIKIVOYAGE, ENWIKTIONARY, BGWIKI_UTF16, VIWIKI_TRUNCATED, NO_SITEINFO):
        site = en if path == NO_SITEINFO else read_siteinfo(str(path))
        for page in iter_pages(str(path), site, ReadStats(str(path))):
            if not isinstance(page, RawPage) or page.revision is None or page.revision.text is None or page.redirect:
                continue
            text = page.revision.text
            for _ in range(2):
                record = page_to_article(page, site, [])
                assert record["version"]["size"]["value"] == len(text.encode("utf-8"))
                for link in record.get("templates", []) + record.get("categories", []):
                    assert link["url"] == site.url(link["name"])
                    checked += 1
            ascii_pages += text.isascii()
    assert checked > 5000 and ascii_pages > 10
