"""CPU of the wikitext scanners over a dump's pages: `analyze`, `abstract` and the text stripper.

    python benchmarks/bench_scans.py benchmarks/corpus/enwiki-x20.xml.bz2 --runs 3

The pages are read once (not timed); then each stage runs over all of them, `--runs` times, and
the best run's CPU seconds (`time.process_time`, so other processes on a shared machine count
less than with wall time) are printed with MB of wikitext (UTF-8) per CPU second:

- analyze   `analyze(text, site)` on every wikitext page, as `page_to_article` calls it;
- abstract  `abstract(text, site)` on the namespace-0 pages right after their `analyze` (the build's
            order, so whatever the two share is counted once, in analyze);
- text      `text_from_wikitext(text, site)` on the namespace-0 pages (`--formats text`'s default
            `--text-namespaces 0`), on its own as that path runs it.

Only public functions are called, so the same script measures an older checkout: run it with that
checkout's interpreter (`/path/to/main/.venv/bin/python benchmarks/bench_scans.py …`).
"""

from __future__ import annotations

import argparse
import gc
import time

from wikisnap.transforms.formats.dumpreader import RawPage, ReadStats, iter_pages, read_siteinfo
from wikisnap.transforms.parse.abstract import abstract
from wikisnap.transforms.parse.article import WIKITEXT_MODELS
from wikisnap.transforms.parse.plaintext import text_from_wikitext
from wikisnap.transforms.parse.wikitext import analyze


def load_pages(path: str) -> tuple[object, list[tuple[int, str]]]:
    """(SiteInfo, [(namespace, wikitext)]) of the wikitext pages of the dump at `path`."""
    site = read_siteinfo(path)
    stats = ReadStats(path)
    pages = []
    for page in iter_pages(path, site, stats):
        if not isinstance(page, RawPage) or page.revision is None:
            continue
        rev = page.revision
        if rev.text is not None and rev.model in WIKITEXT_MODELS:
            pages.append((page.ns, rev.text))
    if stats.error is not None:
        raise SystemExit(f"{path}: {stats.error}")
    return site, pages


def run_build_scans(site, pages) -> tuple[float, float]:
    """CPU seconds of analyze and of abstract, called per page as the build calls them."""
    clock = time.process_time
    t_analyze = t_abstract = 0.0
    for ns, text in pages:
        t0 = clock()
        analyze(text, site)
        t1 = clock()
        t_analyze += t1 - t0
        if ns == 0:
            abstract(text, site)
            t_abstract += clock() - t1
    return t_analyze, t_abstract


def run_text(site, texts) -> float:
    clock = time.process_time
    t0 = clock()
    for text in texts:
        text_from_wikitext(text, site)
    return clock() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", help="a pages-articles dump (.xml, .xml.bz2 …)")
    parser.add_argument("--runs", type=int, default=3, help="repeat each stage and keep the best (default 3)")
    args = parser.parse_args(argv)

    site, pages = load_pages(args.dump)
    ns0 = [text for ns, text in pages if ns == 0]
    mb_all = sum(len(text.encode("utf-8")) for _, text in pages) / 1e6
    mb_ns0 = sum(len(text.encode("utf-8")) for text in ns0) / 1e6
    print(
        f"{args.dump}: {len(pages):,} wikitext pages ({mb_all:.1f} MB), {len(ns0):,} in namespace 0 ({mb_ns0:.1f} MB)"
    )

    best = {"analyze": float("inf"), "abstract": float("inf"), "text": float("inf")}
    gc.collect()
    for _ in range(args.runs):
        t_analyze, t_abstract = run_build_scans(site, pages)
        best["analyze"] = min(best["analyze"], t_analyze)
        best["abstract"] = min(best["abstract"], t_abstract)
        best["text"] = min(best["text"], run_text(site, ns0))
    sizes = {"analyze": mb_all, "abstract": mb_ns0, "text": mb_ns0}
    print(f"best of {args.runs}, CPU seconds:")
    for stage, seconds in best.items():
        print(f"  {stage:<9} {seconds:7.3f} s  {sizes[stage] / seconds:7.1f} MB/CPU-s")
    both = best["analyze"] + best["abstract"]
    print(f"  {'build':<9} {both:7.3f} s  (analyze + abstract)")


if __name__ == "__main__":
    main()
