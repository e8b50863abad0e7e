"""Structured Contents extraction against WME's own expected output, and its speed.

Input: a folder laid out like WME's parser test corpus (`documents/{title}.html` and, for each,
`expected/{title}.{sections,infoboxes,images}.spew`: what WME's Go parser returns, as Go `spew`
dumps; see the corpus README). For every document and function (sections, infoboxes, images) the
result of `wikisnap.transforms.parse.structured` is compared with WME's, value for value, order
kept; each disagreeing document is listed with a one-line class of its first difference.

Speed: MB of HTML per second of CPU (one process, one core) for sections + infoboxes + references +
images together (`structured_record.extract`, the parse included), over `--runs` passes of the corpus;
peak RSS is read after each pass and must stay flat.

    python benchmarks/bench_structured.py --parser-dir /work/shared/reference/wme/parser [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wikisnap.transforms.parse import structured, structured_record  # noqa: E402
from wikisnap.transforms.parse.structured import Image, Link, Part  # noqa: E402
from wikisnap.transforms.parse.structured_infobox import get_infoboxes  # noqa: E402

FUNCTIONS = ("sections", "infoboxes", "images")

# -- Go spew dumps -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<len>\(len=\d+\))
    | (?P<type>\([\w.*\[\]]+\))
    | (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<nil><nil>)
    | (?P<open>[({])
    | (?P<close>[)}])
    | (?P<key>\w+:)
    | (?P<comma>,)
    | (?P<int>-?\d+)
    )""",
    re.VERBOSE | re.DOTALL,
)
_GO_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([abfnrtv\\\"']))")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def _go_unquote(quoted: str) -> str:
    """strconv.Unquote of a double-quoted Go string (spew prints strings with strconv.Quote)."""
    body = quoted[1:-1]

    def sub(m: re.Match) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))  # \xNN: only for invalid UTF-8, which Parsoid never emits
        if m.group(2) or m.group(3):
            return chr(int(m.group(2) or m.group(3), 16))
        return _SIMPLE[m.group(4)]

    return _GO_ESCAPE.sub(sub, body)


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"spew: cannot read at {pos}: {text[pos : pos + 40]!r}")
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


def parse_spew(text: str):
    """A spew dump as Python values: slices → lists (nil → []), structs → dicts, strings, ints."""
    toks = _tokens(text)
    pos = 0

    def value():
        nonlocal pos
        kind, tok = toks[pos]
        if kind != "type":
            raise ValueError(f"spew: expected a type, got {tok!r}")
        pos += 1
        length = None
        if toks[pos][0] == "len":
            length = int(toks[pos][1][5:-1])  # spew's (len=N): checked below, so a misread shows
            pos += 1
        kind, tok2 = toks[pos]
        if kind == "nil":
            pos += 1
            return [] if tok.startswith("([]") else None
        if kind == "str":
            pos += 1
            text = _go_unquote(tok2)
            if len(text.encode("utf-8")) != (length or 0):
                raise ValueError(f"spew: string of {length} bytes read as {len(text.encode('utf-8'))}")
            return text
        if kind == "int":
            pos += 1
            return int(tok2)
        if tok.startswith("([]"):  # a slice: { item, item }
            assert tok2 == "{"
            pos += 1
            items = []
            while toks[pos][1] != "}":
                items.append(value())
                if toks[pos][0] == "comma":
                    pos += 1
            pos += 1
            if len(items) != (length or 0):
                raise ValueError(f"spew: slice of {length} items read as {len(items)}")
            return items
        # a pointer to a struct: ({ Key: value, ... })
        assert tok2 == "(" and toks[pos + 1][1] == "{", toks[pos : pos + 3]
        pos += 2
        fields = {}
        while toks[pos][1] != "}":
            key = toks[pos][1][:-1]
            pos += 1
            fields[key] = value()
            if toks[pos][0] == "comma":
                pos += 1
        pos += 2  # "}" ")"
        return fields

    return value()


def to_image(d: dict) -> Image:
    return Image(d["ContentUrl"], d["AlternativeText"], d["Caption"], d["Height"], d["Width"])


def to_part(d: dict) -> Part:
    return Part(
        name=d["Name"],
        type=d["Type"],
        value=d["Value"],
        values=tuple(d["Values"]),
        has_parts=tuple(to_part(p) for p in d["HasParts"]),
        images=tuple(to_image(i) for i in d["Images"]),
        links=tuple(Link(k["URL"], k["Text"], tuple(to_image(i) for i in k["Images"])) for k in d["Links"]),
    )


def load_expected(path: Path) -> list:
    """WME's expected parts (or images) of one `.spew` file, as this module's dataclasses."""
    data = parse_spew(path.read_text(encoding="utf-8"))
    if path.name.endswith(".images.spew"):
        return [to_image(d) for d in data]
    return [to_part(d) for d in data]


# -- comparison ----------------------------------------------------------------------------------


def first_difference(got, want, where: str = "") -> str | None:
    """A one-line description of the first place where `got` and `want` differ (None if equal)."""
    if isinstance(want, (list, tuple)):
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            diff = first_difference(g, w, f"{where}[{i}]")
            if diff:
                return diff
        if len(got) != len(want):
            extra = want[len(got)] if len(want) > len(got) else got[len(want)]
            label = getattr(extra, "name", "") or getattr(extra, "type", "") or getattr(extra, "url", "")
            return f"{where}: {len(got)} items, WME {len(want)} (first unmatched: {label!r:.60})"
        return None
    if isinstance(want, (Part, Image, Link)):
        for name in want.__slots__:
            diff = first_difference(getattr(got, name), getattr(want, name), f"{where}.{name}")
            if diff:
                return diff
        return None
    if got != want:
        return f"{where}: {got!r:.70} != WME {want!r:.70}"
    return None


def run(name: str, doc_html: str):
    if name == "sections":
        return structured.get_sections(structured.parse(doc_html))
    if name == "infoboxes":
        return get_infoboxes(structured.parse(doc_html))
    return structured.get_images(structured.parse(doc_html))


def agreement(parser_dir: Path) -> dict[str, list[tuple[str, str | None]]]:
    """{function: [(title, first difference or None)]} over every document of the corpus."""
    out: dict[str, list] = {f: [] for f in FUNCTIONS}
    for path in sorted((parser_dir / "documents").glob("*.html")):
        title = path.stem
        html = path.read_text(encoding="utf-8")
        for name in FUNCTIONS:
            expected = parser_dir / "expected" / f"{title}.{name}.spew"
            if not expected.exists():
                continue
            want = load_expected(expected)
            got = run(name, html)
            out[name].append((title, first_difference(got, want)))
    return out


def speed(parser_dir: Path, runs: int) -> tuple[float, float, list[int]]:
    """(MB/s per core, MB of HTML per pass, peak RSS in MB after each pass)."""
    docs = [p.read_text(encoding="utf-8") for p in sorted((parser_dir / "documents").glob("*.html"))]
    size = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    rss = []
    cpu = 0.0
    for _ in range(runs):
        start = time.process_time()
        for html in docs:
            structured_record.extract(html)
        cpu += time.process_time() - start
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return size * runs / cpu, size, rss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parser_dir", nargs="?", type=Path, help="folder with documents/ and expected/")
    ap.add_argument("--parser-dir", dest="parser_dir_opt", type=Path)
    ap.add_argument("--runs", type=int, default=3, help="passes over the corpus for the speed (default 3)")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)
    parser_dir = args.parser_dir_opt or args.parser_dir
    if parser_dir is None:
        ap.error("give the corpus folder (--parser-dir DIR)")
    results = agreement(parser_dir)
    for name, rows in results.items():
        ok = sum(1 for _, diff in rows if diff is None)
        print(f"{name}: {ok}/{len(rows)} documents equal to WME's")
        for title, diff in rows:
            if diff:
                print(f"  {title}: {diff}")
    if not args.no_speed:
        mbps, size, rss = speed(parser_dir, args.runs)
        print(
            f"speed: {mbps:.1f} MB/s of HTML per core (sections+infoboxes+references+images, parse included; "
            f"{size:.1f} MB x {args.runs} passes)"
        )
        print(f"peak RSS after each pass (MB): {rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
