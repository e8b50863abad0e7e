"""Stub history reader: MB/s of compressed stub-meta-history per core, on a replicated real stub.

    python benchmarks/bench_history.py --copies 3000          # ≈ 29 MB gzip, 354 k revisions

The corpus is the real elwikivoyage stub-meta-history of tests/data (20 pages, 118 revisions)
replicated `--copies` times under fresh page ids and titles (make_corpus.page_copy), gzip level 6
as WMF writes its stubs. Measured in this one process (one core): `iter_history` over the file
(gzip + lxml + the per-page summary), and gzip decompression alone for comparison. Rates are
compressed bytes per CPU second (process time), so other load on the machine does not count.
`--build` also times `wikisnap build` of the elwikivoyage articles without and with the replicated
stub: its cost only (copies' page ids can meet real articles' ids, so their dates mean nothing).
The section "Stub histories" of benchmarks/RESULTS.md is replaced by the new numbers.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.make_corpus import page_copy, replicate  # noqa: E402
from wikisnap.transforms.formats.dumpreader import PageHistory, ReadStats, iter_history, read_siteinfo  # noqa: E402

STUBS = HERE.parent / "tests" / "data" / "history" / "mwbzutils__elwikivoyage-sample-stubs-meta-history.xml.gz"
SECTION = "## Stub histories"


def make_stub_corpus(path: Path, copies: int) -> None:
    header, footer, pages = replicate(gzip.decompress(STUBS.read_bytes()), copies)
    stride = 10 ** len(str(max(int(p.split(b"<id>")[1].split(b"</id>")[0]) for p in pages)))
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(header)
        for k in range(copies):
            out.write(b"".join(page_copy(p, k, stride) for p in pages))
        out.write(footer)


def cpu_time(fn) -> tuple[float, object]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def read_all(path: Path) -> tuple[int, int]:
    stats = ReadStats(str(path))
    pages = revisions = 0
    for item in iter_history(str(path), read_siteinfo(str(path)), stats):
        if isinstance(item, PageHistory):
            pages += 1
            revisions += item.revisions
    if stats.error:
        raise SystemExit(str(stats.error))
    return pages, revisions


def gunzip_all(path: Path) -> int:
    total = 0
    with gzip.open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            total += len(chunk)
    return total


def build_cost(inputs: list[Path], out: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS MB) of one `wikisnap build` process (its children included)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    cmd = [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", "build", *map(str, inputs), "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, after.ru_maxrss // 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3, help="keep the best of this many runs")
    parser.add_argument("--no-results", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    parser.add_argument(
        "--build",
        action="store_true",
        help="also time `wikisnap build` of the elwikivoyage articles without/with the stub",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wikisnap-bench-history-") as tmp:
        path = Path(tmp) / "elwikivoyage-stub-meta-history-replicated.xml.gz"
        make_stub_corpus(path, args.copies)
        size = path.stat().st_size
        raw = gunzip_all(path)
        read_s = min(cpu_time(lambda: read_all(path))[0] for _ in range(args.runs))
        _s, (pages, revisions) = cpu_time(lambda: read_all(path))
        gunzip_s = min(cpu_time(lambda: gunzip_all(path))[0] for _ in range(args.runs))
        builds = []
        if args.build:
            articles = HERE.parent / "tests" / "data" / "xml" / "mwbzutils__elwikivoyage-sample-pages-articles.xml.bz2"
            builds = [
                ("articles only", build_cost([articles], Path(tmp) / "plain")),
                ("articles + replicated stub", build_cost([articles, path], Path(tmp) / "dated")),
            ]
    lines = [
        SECTION,
        "",
        f"`benchmarks/bench_history.py --copies {args.copies}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
        f"the real elwikivoyage stub-meta-history replicated to {size / 1e6:.1f} MB gzip "
        f"({raw / 1e6:.1f} MB XML, {pages:,} pages, {revisions:,} revisions), one process, CPU seconds "
        f"(best of {args.runs}).",
        "",
        "| step | CPU s | MB/s compressed per core | MB/s XML | revisions/s |",
        "|---|---|---|---|---|",
        f"| `iter_history` (gzip + lxml + per-page summary) | {read_s:.2f} | {size / 1e6 / read_s:.1f} | "
        f"{raw / 1e6 / read_s:.1f} | {revisions / read_s:,.0f} |",
        f"| gzip decompression alone | {gunzip_s:.2f} | {size / 1e6 / gunzip_s:.1f} | {raw / 1e6 / gunzip_s:.1f} | |",
        "",
    ]
    if builds:
        lines += [
            "`wikisnap build` of the elwikivoyage pages-articles sample (one worker), without and with the stub "
            "(peak RSS is the largest child process so far):",
            "",
            "| build | wall s | CPU s | peak RSS MB |",
            "|---|---|---|---|",
            *[f"| {name} | {wall:.1f} | {cpu:.1f} | {rss} |" for name, (wall, cpu, rss) in builds],
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_results:
        results = HERE / "RESULTS.md"
        old = results.read_text()
        start = old.find(SECTION)
        if start < 0:
            new = old.rstrip("\n") + "\n\n" + text
        else:
            end = old.find("\n## ", start + len(SECTION))
            new = old[:start] + text + (old[end:] if end >= 0 else "")
        results.write_text(new.rstrip("\n") + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
