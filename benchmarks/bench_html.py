"""Field derivation from Parsoid HTML: MB/s per core, memory over the run, and the parser choice.

Corpus: the real Parsoid documents in tests/data/html (the `article_body.html` of the five WME /
Enterprise records: simplewiki, enwikiversity, frwiki, and two enwiki pages) replayed in turn
until `--mb` megabytes (default 200) went through. Documents are handled one at a time, as the
record reader does, so memory must stay flat: RSS is sampled every 10% of the run.

Measured, each on the whole corpus, CPU seconds of this process (one core):
- `lexbor parse`: selectolax's LexborHTMLParser on the document (the parse alone);
- `lxml.html parse`: lxml.html.document_fromstring (the alternative considered);
- `lxml.html categories + templates`: the same two fields with lxml XPath, to compare like for like;
- `identify`: the head regexes (page id, revision, title, wiki);
- `categories + templates` and `categories + templates + abstract`: `transforms.html.derive`;
- `reader: …`: `records.html_item`, the record reader's work per document (decode included).

Caveat: five documents replayed stay warm in the CPU caches; a real corpus of distinct pages
will be somewhat slower.

    python benchmarks/bench_html.py [--mb 200] [--write]   # --write: replace the section in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lxml  # noqa: E402
import lxml.html  # noqa: E402
import selectolax  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402

from wikisnap.transforms.parse.html import derive, identify  # noqa: E402
from wikisnap.transforms.records import html_item  # noqa: E402

DATA = ROOT / "tests" / "data" / "html"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- bench_html:begin -->", "<!-- bench_html:end -->"


def documents() -> list[str]:
    docs = []
    for name in ("wme-repo__articles-3records.ndjson", "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            docs.append(json.loads(line)["article_body"]["html"])
    return docs


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def lxml_fields(html: str) -> int:
    root = lxml.html.document_fromstring(html.encode("utf-8"))
    cats = root.xpath('//link[@rel="mw:PageProp/Category"]/@href')
    found = 0
    for raw in root.xpath("//*[@data-mw]/@data-mw"):
        if "parts" in raw:
            for part in json.loads(raw).get("parts", []):
                if isinstance(part, dict) and "template" in part:
                    found += 1
    return len(cats) + found


TASKS = {
    "lexbor parse": lambda h: LexborHTMLParser(h),
    "lxml.html parse": lambda h: lxml.html.document_fromstring(h.encode("utf-8")),
    "lxml.html categories + templates": lxml_fields,
    "identify (head regexes)": identify,
    "categories + templates": lambda h: derive(h, with_abstract=False),
    "categories + templates + abstract": derive,
    # what the record reader does per document: UTF-8 bytes → str, identify, all fields
    "reader: decode + identify + all fields": lambda h: html_item(ENCODED[id(h)].decode("utf-8"), NAMESPACES),
}
ENCODED: dict[int, bytes] = {}
NAMESPACES = frozenset({0, 6, 10, 14})


def run(task, docs: list[str], total_bytes: int) -> dict:
    done = 0
    n = 0
    samples = []
    next_sample = 0
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    while done < total_bytes:
        html = docs[n % len(docs)]
        task(html)
        done += sizes[n % len(docs)]
        n += 1
        if done >= next_sample:
            samples.append(rss_mb())
            next_sample += total_bytes // 10
    cpu = time.process_time() - start_cpu
    wall = time.perf_counter() - start_wall
    samples.append(rss_mb())
    return {
        "docs": n,
        "mb": done / 1e6,
        "cpu": cpu,
        "wall": wall,
        "mb_per_core": done / 1e6 / cpu,
        "rss_first": samples[1] if len(samples) > 1 else samples[0],
        "rss_last": samples[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--write", action="store_true", help="replace the bench_html section of RESULTS.md")
    parser.add_argument("--only", default=None, help="regex of task names to run")
    args = parser.parse_args()
    docs = documents()
    ENCODED.update({id(d): d.encode("utf-8") for d in docs})
    global sizes
    sizes = [len(d.encode("utf-8")) for d in docs]
    total = int(args.mb * 1e6)
    rows = []
    for name, task in TASKS.items():
        if args.only and not re.search(args.only, name):
            continue
        result = run(task, docs, total)
        rows.append((name, result))
        print(
            f"{name:40s} {result['mb']:8.1f} MB {result['cpu']:7.1f} CPU s {result['mb_per_core']:7.1f} MB/s/core "
            f"RSS {result['rss_first']:.0f} -> {result['rss_last']:.0f} MB",
            flush=True,
        )
    text = section(rows, docs, sizes, args.mb)
    print(text)
    if args.write:
        current = RESULTS.read_text(encoding="utf-8")
        if BEGIN in current:
            head, rest = current.split(BEGIN, 1)
            current = head + text + rest.split(END, 1)[1]
        else:
            current = current.rstrip("\n") + "\n\n" + text + "\n"
        RESULTS.write_text(current, encoding="utf-8")


def section(rows, docs, sizes, mb) -> str:
    lines = [
        BEGIN,
        "## Parsoid HTML: field derivation (`benchmarks/bench_html.py`)",
        "",
        f"`python benchmarks/bench_html.py --mb {mb:g}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.python_version()}, selectolax {selectolax.__version__}, lxml {lxml.__version__}. "
        f"Corpus: the {len(docs)} real Parsoid documents of tests/data/html "
        f"({sum(sizes) / 1e3:.0f} kB, {min(sizes) / 1e3:.0f}–{max(sizes) / 1e3:.0f} kB each) replayed in turn to "
        f"{mb:g} MB per task, one document at a time in one process. MB/s per core = HTML MB / CPU seconds; "
        "RSS after the first 10% of the run and at its end.",
        "",
        "| task | MB | CPU s | MB/s per core | RSS at 10% → end, MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['mb']:.0f} | {r['cpu']:.1f} | {r['mb_per_core']:.1f} | {r['rss_first']:.0f} → {r['rss_last']:.0f} |"
        )
    lines.append(END)
    return "\n".join(lines)


sizes: list[int] = []

if __name__ == "__main__":
    main()
