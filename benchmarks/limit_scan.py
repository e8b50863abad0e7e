"""The hardware limit for reading a dump: bz2 decompression + lxml iterparse of every `<page>`.

    python benchmarks/limit_scan.py corpus.xml.bz2

Nothing is built: each page's `<ns>` and `<redirect>` are looked at (to count articles) and the
element is freed. Any tool that turns pages into records does at least this much work, so its
CPU time per article bounds what a single core can reach. Prints one JSON line of counts.
"""

from __future__ import annotations

import bz2
import json
import sys

from lxml import etree


def scan(path: str) -> dict[str, int]:
    """Count pages, articles (ns 0, not a redirect) and uncompressed bytes of one bz2 dump."""
    pages = articles = 0
    with open(path, "rb") as raw, bz2.BZ2File(raw) as xml:
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
        compressed = raw.tell()
    return {"pages": pages, "articles": articles, "uncompressed_bytes": uncompressed, "compressed_bytes": compressed}


if __name__ == "__main__":
    print(json.dumps(scan(sys.argv[1])))
