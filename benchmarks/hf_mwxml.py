"""Plain text from a dump the way HuggingFace's retired `wikipedia` Beam builder did, on mwxml.

    python benchmarks/hf_mwxml.py corpus.xml.bz2 out.jsonl

For each namespace-0 page that is not a redirect: parse the wikitext with mwparserfromhell,
drop File/Image/Category links, `strip_code()`, and write `{"id", "url", "title", "text"}` as a
JSON line — the builder's `_parse_and_clean_wikicode` without Beam around it. A baseline for
benchmarks/run.py, not part of wikisnap.
"""

from __future__ import annotations

import bz2
import json
import re
import sys
from urllib.parse import quote

import mwparserfromhell
import mwxml

# the builder's list for English: links into these namespaces are media or categories, not text
_DROP_PREFIXES = ("file:", "image:", "media:", "category:")
_BLANK_LINES = re.compile(r"\n\n+")


def clean(wikitext: str) -> str:
    """Wikitext → plain text, as the HuggingFace builder cleaned it."""
    code = mwparserfromhell.parse(wikitext)
    for link in code.filter_wikilinks():
        if str(link.title).strip().lower().startswith(_DROP_PREFIXES):
            try:
                code.remove(link)
            except ValueError:  # already gone with an enclosing node
                pass
    text = code.strip_code(normalize=True, collapse=True)
    return _BLANK_LINES.sub("\n\n", text).strip()


def main(source: str, target: str) -> int:
    """Write one JSON line per article of `source` to `target`; return the number written."""
    written = 0
    with bz2.open(source, "rb") as xml, open(target, "w", encoding="utf-8") as out:
        for page in mwxml.Dump.from_file(xml):
            for revision in page:  # pages-articles dumps hold one (the current) revision
                if page.namespace != 0 or page.redirect or not revision.text:
                    continue
                record = {
                    "id": str(page.id),
                    "url": "https://en.wikipedia.org/wiki/" + quote(page.title.replace(" ", "_")),
                    "title": page.title,
                    "text": clean(revision.text),
                }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                written += 1
    return written


if __name__ == "__main__":
    print(json.dumps({"articles": main(sys.argv[1], sys.argv[2])}))
