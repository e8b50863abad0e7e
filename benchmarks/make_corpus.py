"""Make a larger dump from a real one: its pages replicated under fresh ids and titles.

    python benchmarks/make_corpus.py tests/data/xml/gensim__enwiki-…-shortened.bz2 --copies 10 \
        --out benchmarks/corpus/enwiki-x10.xml.bz2

Copy k of page "Anarchism" (id 12) becomes "Anarchism (k)" with id 12 + k·stride; redirects are
rewritten to point at the copy of their target in the same replica, so the join stays realistic.
The header (siteinfo) is kept as is. Only for measuring scale: tests use the real files.
"""

from __future__ import annotations

import argparse
import bz2
import html
import re
import sys
from pathlib import Path

_PAGE = re.compile(rb"  <page>.*?</page>\n", re.S)
_ID = re.compile(rb"(<page>\s*<title>)(.*?)(</title>\s*<ns>\d+</ns>\s*<id>)(\d+)(</id>)", re.S)
_REDIRECT = re.compile(rb'(<redirect title=")(.*?)(" />)')


def replicate(xml: bytes, copies: int) -> tuple[bytes, bytes, list[bytes]]:
    """(header, footer, [pages of copy 0], …) split from one dump's bytes."""
    first = xml.index(b"  <page>")
    last = xml.rindex(b"</page>\n") + len(b"</page>\n")
    return xml[:first], xml[last:], _PAGE.findall(xml[first:last])


def page_copy(page: bytes, k: int, stride: int) -> bytes:
    if k == 0:
        return page

    def retitle(m: re.Match) -> bytes:
        return m.group(1) + m.group(2) + b" (%d)" % k + m.group(3) + b"%d" % (int(m.group(4)) + k * stride) + m.group(5)

    page = _ID.sub(retitle, page, count=1)
    return _REDIRECT.sub(lambda m: m.group(1) + m.group(2) + b" (%d)" % k + m.group(3), page, count=1)


def repack_multistream(xml: bytes, pages_per_stream: int = 100) -> tuple[bytes, bytes]:
    """A single-stream dump's XML → (multistream .bz2 bytes, index .txt.bz2 bytes), as WMF's
    `recompressxml` lays them out: a header stream with <siteinfo>, streams of N whole pages, a
    trailer stream; index lines `offset:page_id:title` (title XML-unescaped)."""
    header, footer, pages = replicate(xml, 1)
    out = bytearray(bz2.compress(header))
    index: list[bytes] = []
    for i in range(0, len(pages), pages_per_stream):
        offset = len(out)
        chunk = pages[i : i + pages_per_stream]
        for page in chunk:
            m = _ID.search(page)
            title = html.unescape(m.group(2).decode("utf-8")).encode("utf-8")
            index.append(b"%d:%s:%s" % (offset, m.group(4), title))
        out += bz2.compress(b"".join(chunk))
    out += bz2.compress(footer)
    return bytes(out), bz2.compress(b"\n".join(index) + b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--multistream",
        type=int,
        default=0,
        metavar="N",
        help="also write OUT's multistream twin (streams of N pages) and its index beside it",
    )
    args = parser.parse_args(argv)
    raw = Path(args.source).read_bytes()
    xml = bz2.decompress(raw) if raw[:3] == b"BZh" else raw
    header, footer, pages = replicate(xml, args.copies)
    max_id = max(int(m.group(4)) for m in (_ID.search(p) for p in pages) if m)
    stride = 10 ** len(str(max_id))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with bz2.open(out, "wb", compresslevel=9) as f:
        f.write(header)
        for k in range(args.copies):
            for page in pages:
                f.write(page_copy(page, k, stride))
        f.write(footer)
    print(f"{out}: {len(pages) * args.copies:,} pages, {out.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    if args.multistream:
        data, index = repack_multistream(bz2.decompress(out.read_bytes()), args.multistream)
        stem = out.name.split(".xml")[0]
        ms = out.with_name(f"{stem}-multistream.xml.bz2")
        ms.write_bytes(data)
        out.with_name(f"{stem}-multistream-index.txt.bz2").write_bytes(index)
        print(f"{ms}: {len(data) / 1e6:.1f} MB in streams of {args.multistream} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
