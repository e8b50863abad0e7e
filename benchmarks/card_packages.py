"""Why wikisnap does not use two packages of the design card (mwxml, smart-open): numbers, one run.

    pip install -e '.[bench]' && python benchmarks/card_packages.py [corpus.xml.bz2]

Without an argument it makes (or reuses) the benchmark corpus: the real enwiki sample replicated
20 times under fresh ids (benchmarks/make_corpus.py). Each row is timed in this process, one
after the other, on the same file, and prints CPU seconds and MB/s of uncompressed XML:

- decompress: smart_open.open (stdlib bz2 behind a transparent codec) against wikisnap's
  open_dump (the same stdlib bz2, read ahead in 8 MB stretches, raw bytes hashed on the way), and
  open_dump as builds use it (indexed_bzip2; one thread here, so CPU seconds compare);
- pages: mwxml's Dump iterator (every page and revision, text touched) against wikisnap's
  iter_pages (lxml iterparse, every page as a RawPage with its text).
"""

from __future__ import annotations

import bz2
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def timed(fn) -> tuple[float, object]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def read_all(stream) -> int:
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
    return total


def smart_open_bytes(path: str) -> int:
    import smart_open

    with smart_open.open(path, "rb") as f:
        return read_all(f)


def wikisnap_bytes(path: str, bz2_threads: int = 0) -> int:
    from wikisnap.transforms.formats.dumpfiles import open_dump

    stream, _hasher, _compression = open_dump(path, bz2_threads=bz2_threads)
    with stream:
        return read_all(stream)


def mwxml_pages(path: str) -> tuple[int, int]:
    import mwxml

    pages = chars = 0
    with bz2.open(path, "rb") as f:
        for page in mwxml.Dump.from_file(f):
            for revision in page:
                pages += 1
                chars += len(revision.text or "")
    return pages, chars


def wikisnap_pages(path: str) -> tuple[int, int]:
    from wikisnap.transforms.formats.dumpreader import ReadStats, iter_pages, read_siteinfo

    site = read_siteinfo(path)
    pages = chars = 0
    for page in iter_pages(path, site, ReadStats(path)):
        pages += 1
        revision = getattr(page, "revision", None)
        chars += len(revision.text or "") if revision is not None else 0
    return pages, chars


def main(argv: list[str]) -> None:
    if argv:
        corpus = argv[0]
    else:
        from benchmarks import make_corpus

        corpus = str(HERE / "corpus" / "enwiki-x20.xml.bz2")
        if not Path(corpus).exists():
            sample = (
                HERE.parent
                / "tests/data/xml/gensim__enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
            )
            make_corpus.main([str(sample), "--copies", "20", "--out", corpus])
    xml_mb = wikisnap_bytes(corpus) / 1e6
    rows = []
    for name, fn in (
        ("decompress: smart_open.open", lambda: smart_open_bytes(corpus)),
        ("decompress: wikisnap open_dump", lambda: wikisnap_bytes(corpus)),
        ("decompress: wikisnap open_dump, indexed_bzip2 1 thread", lambda: wikisnap_bytes(corpus, 1)),
        ("pages: mwxml Dump", lambda: mwxml_pages(corpus)),
        ("pages: wikisnap iter_pages", lambda: wikisnap_pages(corpus)),
    ):
        cpu, result = timed(fn)
        rows.append({"row": name, "cpu_s": round(cpu, 2), "xml_mb_per_cpu_s": round(xml_mb / cpu, 1), "result": result})
    for row in rows:
        print(json.dumps(row))
    print(
        f"wikisnap/smart_open decompression: {rows[0]['cpu_s'] / rows[1]['cpu_s']:.2f}x; "
        f"with indexed_bzip2: {rows[0]['cpu_s'] / rows[2]['cpu_s']:.2f}x; "
        f"wikisnap/mwxml page reading: {rows[3]['cpu_s'] / rows[4]['cpu_s']:.2f}x (corpus {xml_mb:.0f} MB of XML)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
