"""The hardware limit for reading a dump: bz2 decompression + lxml iterparse of every `<page>`.

    python benchmarks/limit_scan.py corpus.xml.bz2             # stdlib bz2
    python benchmarks/limit_scan.py corpus.xml.bz2 --fast 2    # indexed_bzip2, 2 threads

Nothing is built: each page's `<ns>` and `<redirect>` are looked at (to count articles) and the
element is freed. Any tool that turns pages into records does at least this much work, so its
CPU time per article bounds what a single core can reach. Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import bz2
import json
import os

from lxml import etree


def scan(path: str, fast_threads: int = 0) -> dict[str, int]:
    """Count pages, articles (ns 0, not a redirect) and uncompressed bytes of one bz2 dump.

    `fast_threads` > 0: decode with indexed_bzip2 on that many threads (the "fast limit": what
    the best bz2 decoder at hand and lxml reach), else with the stdlib's bz2.
    """
    pages = articles = 0
    if fast_threads:
        import indexed_bzip2

        opener = lambda raw: indexed_bzip2.open(raw, parallelization=fast_threads)  # noqa: E731
    else:
        opener = bz2.BZ2File
    with open(path, "rb") as raw, opener(raw) as xml:
        # tag="{*}page": the export schema's namespace changes with the dump version (0.10, 0.11 …)
        for _, page in etree.iterparse(xml, tag="{*}page", huge_tree=True):
            pages += 1
            ns = page.findtext("{*}ns")
            if ns == "0" and page.find("{*}redirect") is None:
                articles += 1
            # free the page and the already-seen siblings the root still holds: constant memory
            page.clear()
            parent = page.getparent()
            while page.getprevious() is not None:
                del parent[0]
        uncompressed = xml.tell()
        compressed = os.path.getsize(path)  # read to the end (indexed_bzip2 leaves raw.tell() at 0)
    return {"pages": pages, "articles": articles, "uncompressed_bytes": uncompressed, "compressed_bytes": compressed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("dump")
    parser.add_argument("--fast", type=int, default=0, metavar="THREADS", help="indexed_bzip2 on THREADS threads")
    args = parser.parse_args()
    print(json.dumps(scan(args.dump, args.fast)))
