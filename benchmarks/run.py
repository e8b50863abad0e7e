"""Measure wikisnap against its peers and the hardware limit, in one command.

    pip install -e '.[bench]'
    python benchmarks/run.py --copies 20            # add --skip-large to leave out the 10x corpus

Steps: replicate the real enwiki sample in tests/data (`make_corpus.py`) `--copies` times, as a
single-stream bz2 and as a multistream twin + index (100-page streams), and 10x larger (single
stream, for the memory check) under benchmarks/corpus/; then time, each as a separate process on
the same corpus: the limit (bz2 + lxml scan, `limit_scan.py`), wikiextractor `--json`, a
mwxml + mwparserfromhell loop in the HuggingFace builder's style (`hf_mwxml.py`) and
`wikisnap build` (1 and 2 workers single-stream; 1 and 2 workers multistream). Wall time, CPU time
(user+sys of the whole process tree) and peak RSS (sum over the tree, polled from /proc) are
recorded; the table and the target ratios are printed and written to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "tests/data/xml/gensim__enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
POLL_SECONDS = 0.2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """One timed process (tree) and what it cost."""

    tool: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    others_busy_pct: float  # CPU use by other processes in the second before the run
    log: Path
    peak_pss_mb: float = 0.0  # proportional set size: pages shared by N processes count 1/N in each
    articles: int = 0  # of the corpus it read, set once known
    compressed_mb: float = 0.0


# -- process-tree measurement ---------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, int, float]]:
    """pid → (ppid, rss bytes, cpu seconds) for every live process, from /proc."""
    table: dict[int, tuple[int, int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited between listdir and open
            continue
        # the command name may hold spaces and parentheses: fields start after the last ')'
        fields = stat[stat.rindex(b")") + 2 :].split()
        ppid, utime, stime, rss_pages = int(fields[1]), int(fields[11]), int(fields[12]), int(fields[21])
        table[int(entry)] = (ppid, rss_pages * PAGE_SIZE, (utime + stime) / CLOCK_TICKS)
    return table


def _pss(pid: int) -> int:
    """Proportional set size of one process in bytes (0 if unreadable): what it costs the machine,
    where RSS counts pages shared with its parent or siblings (a forked worker's) in full."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _tree(table: dict[int, tuple[int, int, float]], root: int) -> list[int]:
    """`root` and all its descendants in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def others_busy(exclude: int, seconds: float = 1.0) -> float:
    """Per cent of the machine's CPU used by processes outside `exclude`'s tree over `seconds`.

    Taken right before each timed run, so a result skewed by a neighbour shows in RESULTS.md.
    """
    before = _proc_table()
    time.sleep(seconds)
    after = _proc_table()
    mine = set(_tree(after, exclude))
    used = sum(after[p][2] - before[p][2] for p in after if p in before and p not in mine)
    return 100.0 * used / (seconds * (os.cpu_count() or 1))


def measure(
    tool: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, on_poll=None, polls_pss: bool = True
) -> Run:
    """Run `cmd` to completion; wall, CPU of the tree and peak tree RSS.

    CPU comes from wait4's rusage (the process plus every descendant it waited for, which is how
    multiprocessing and Beam's worker pool end); if polling saw more CPU in the tree (a child
    reparented before it was reaped), the polled figure is used. Peak RSS is the largest *sum* of
    the tree's resident sets seen by polling, since one worker's maxrss understates N workers (and
    a child's maxrss starts at its parent's RSS when it was forked), or wait4's maxrss if larger.
    `on_poll(rss_bytes, seconds)`, if given, is called at every poll with the tree's RSS (scale.py
    samples disk there); `polls_pss=False` leaves PSS out (reading it walks every page table).
    """
    busy = others_busy(os.getpid())
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        peak_rss, peak_pss, cpu_seen = 0, 0, {}
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            table = _proc_table()
            tree = [p for p in _tree(table, proc.pid) if p in table]
            rss = sum(table[p][1] for p in tree)
            peak_rss = max(peak_rss, rss)
            if polls_pss:
                peak_pss = max(peak_pss, sum(_pss(p) for p in tree))
            for p in tree:
                cpu_seen[p] = table[p][2]
            if on_poll is not None:
                on_poll(rss, time.perf_counter() - started)
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{tool} failed ({proc.returncode}); see {log}:\n{log.read_text(errors='replace')[-2000:]}")
    cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_seen.values()))
    # Polling every 0.2 s can miss a short peak (one build's write phase peaks for about a second:
    # 246-281 MB polled over the day for one 276-279 MB true peak). wait4's maxrss is the exact peak
    # of the largest single process of the tree (for a forked child, at least its parent's RSS at
    # the fork, which the tree held then too), so the larger of the two is still a lower bound of
    # the tree's peak, and the exact peak of a one-process run.
    peak_rss = max(peak_rss, usage.ru_maxrss * 1024)
    return Run(tool, wall, cpu, peak_rss / 1e6, busy, log, peak_pss_mb=max(peak_pss, 0) / 1e6)


def compile_like_pip() -> None:
    """Byte-compile wikisnap's modules in place, as `pip install` does for an installed package.

    An editable install (this checkout) compiles them on first import and caches the result,
    unless PYTHONDONTWRITEBYTECODE is set, as on some CI images and sandboxes: every run then
    compiled ~17,000 lines again, 0.2 s of each run that no installed copy pays. The peers'
    modules were compiled by pip when they were installed. Sub-packages too (transforms/update,
    /parse, /formats: 0.08 s of every update's start here, compiled again at each run while
    only the top folders were).
    """
    import compileall

    import wikisnap
    import wikisnap.configs
    import wikisnap.pipelines
    import wikisnap.schemas
    import wikisnap.transforms

    for package in (wikisnap, wikisnap.configs, wikisnap.pipelines, wikisnap.schemas, wikisnap.transforms):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


# -- corpus ---------------------------------------------------------------------------------


def make_corpus(corpus_dir: Path, copies: int, multistream: bool) -> Path:
    """The replicated corpus (and its multistream twin + index); reused when already there."""
    path = corpus_dir / f"enwiki-x{copies}.xml.bz2"
    twin = corpus_dir / f"enwiki-x{copies}-multistream.xml.bz2"
    if path.exists() and (twin.exists() or not multistream):
        return path
    cmd = [sys.executable, str(HERE / "make_corpus.py"), str(SAMPLE), "--copies", str(copies), "--out", str(path)]
    if multistream:
        cmd += ["--multistream", "100"]
    print(f"generating {path.name} ({copies} copies of the sample)…", file=sys.stderr)
    subprocess.run(cmd, check=True)
    return path


def multistream_of(path: Path) -> tuple[Path, Path]:
    """(multistream twin, its index) that make_corpus wrote beside `path`."""
    stem = path.name.split(".xml")[0]
    return path.with_name(f"{stem}-multistream.xml.bz2"), path.with_name(f"{stem}-multistream-index.txt.bz2")


# -- report ---------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{mem_kb / 1024**2:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "apache-beam": version("apache-beam"),
        "lxml": version("lxml"),
        "wikiextractor": version("wikiextractor"),
        "mwxml": version("mwxml"),
        "mwparserfromhell": version("mwparserfromhell"),
    }


def table(runs: list[Run]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| tool | wall s | CPU s | articles/s | MB/s per core | peak RSS MB | peak PSS MB | others busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.tool} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.articles / r.wall_s:,.1f} | "
            f"{r.compressed_mb / r.cpu_s:.2f} | {r.peak_rss_mb:,.0f} | {r.peak_pss_mb:,.0f} | {r.others_busy_pct:.0f}% |"
        )
    return "\n".join(lines)


def other_sections(results: Path) -> str:
    """The sections of `results` after this script's own (which end with its "## Ratios")."""
    if not results.exists():
        return ""
    text = results.read_text(encoding="utf-8")
    ratios = text.find("\n## Ratios")
    following = text.find("\n## ", ratios + 1) if ratios >= 0 else -1
    return "\n" + text[following + 1 :] if following >= 0 else ""


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    """PASS, or MISS with how far off the target `value` is."""
    ok = value >= target if higher_is_better else value < target
    if ok:
        return "PASS"
    return f"MISS (at {value / target:.0%} of the target)" if higher_is_better else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="replicas of the 206-page sample in the base corpus")
    parser.add_argument("--skip-large", action="store_true", help="leave out the 10x corpus (memory flatness)")
    parser.add_argument("--large-factor", type=int, default=10)
    parser.add_argument("--corpus-dir", type=Path, default=HERE / "corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikisnap-bench"), help="outputs and logs")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)

    compile_like_pip()
    corpus = make_corpus(args.corpus_dir, args.copies, multistream=True)
    multistream, index = multistream_of(corpus)
    large = None if args.skip_large else make_corpus(args.corpus_dir, args.copies * args.large_factor, False)
    if args.work.exists():
        shutil.rmtree(args.work)
    logs = args.work / "logs"
    py = sys.executable
    # every tool reads from the page cache, not the first one alone from disk; in chunks, since a
    # child forked from a big parent inherits its RSS as the start of its own ru_maxrss
    for path in (corpus, multistream, large):
        if path:
            with open(path, "rb") as f:
                while f.read(1 << 23):
                    pass

    runs: list[Run] = []
    limit = measure("limit: bz2 + lxml scan", [py, str(HERE / "limit_scan.py"), str(corpus)], logs / "limit.log")
    runs.append(limit)
    # the "fast limit": the best decoder at hand (indexed_bzip2, wikisnap's default threads) + lxml
    threads = max(1, min(4, os.cpu_count() or 1))
    fast_limit = measure(
        f"fast limit: indexed_bzip2 ({threads} threads) + lxml scan",
        [py, str(HERE / "limit_scan.py"), str(corpus), "--fast", str(threads)],
        logs / "fast-limit.log",
    )
    runs.append(fast_limit)
    counts = json.loads(limit.log.read_text().strip().splitlines()[-1])
    articles, compressed_mb = counts["articles"], counts["compressed_bytes"] / 1e6

    def wikiextractor(label: str, processes: list[str]) -> Run:
        out = args.work / f"wikiextractor-{len(runs)}"
        cmd = [py, "-m", "wikiextractor.WikiExtractor", str(corpus), "--json", "-q", "-o", str(out), *processes]
        return measure(f"wikiextractor --json {label}", cmd, logs / f"wikiextractor-{len(runs)}.log")

    runs.append(wikiextractor("--processes 1", ["--processes", "1"]))
    wikiextractor_1 = runs[-1]
    # wikiextractor's default is nproc - 1 extract processes; on 2 cores that is the run above,
    # so its multi-process row uses every core instead
    default = (os.cpu_count() or 1) - 1
    if default > 1:
        runs.append(wikiextractor(f"default ({default} processes)", []))
    else:
        runs.append(wikiextractor(f"--processes {os.cpu_count()}", ["--processes", str(os.cpu_count())]))
    runs.append(
        measure(
            "mwxml + mwparserfromhell (HF builder style)",
            [py, str(HERE / "hf_mwxml.py"), str(corpus), str(args.work / "hf.jsonl")],
            logs / "hf.log",
        )
    )

    def wikisnap(label: str, inputs: list[str], workers: int, name: str) -> tuple[Run, dict]:
        out = args.work / name
        cmd = [py, "-m", "wikisnap.pipelines.cli", "build", *inputs, "--out", str(out), "--workers", str(workers)]
        run = measure(label, cmd, logs / f"{name}.log")
        manifest = json.loads((out / "manifest.json").read_text())
        written = manifest["counts"]["enwiki"].get("records/ns0/written", 0)
        if name != "wikisnap-large" and written != articles:
            raise SystemExit(f"{label} wrote {written} articles, the corpus holds {articles}")
        return run, manifest

    ws1, _ = wikisnap("wikisnap build --workers 1", [str(corpus)], 1, "wikisnap-single-w1")
    # the single-stream file split at bz2 block boundaries (no index needed)
    ws2, _ = wikisnap("wikisnap build --workers 2", [str(corpus)], 2, "wikisnap-single-w2")
    ms1, _ = wikisnap(
        "wikisnap build --workers 1 (multistream)", [str(multistream), "--index", str(index)], 1, "wikisnap-ms-w1"
    )
    ms2, _ = wikisnap(
        "wikisnap build --workers 2 (multistream)", [str(multistream), "--index", str(index)], 2, "wikisnap-ms-w2"
    )
    runs += [ws1, ws2, ms1, ms2]
    for r in runs:
        r.articles, r.compressed_mb = articles, compressed_mb
    # the multistream file is a little larger (one bz2 header per stream): rate it on its own bytes
    ms1.compressed_mb = ms2.compressed_mb = multistream.stat().st_size / 1e6
    large_run = None
    if large:
        large_run, large_manifest = wikisnap(
            f"wikisnap build --workers 1 ({args.large_factor}x corpus)", [str(large)], 1, "wikisnap-large"
        )
        large_articles = large_manifest["counts"]["enwiki"].get("records/ns0/written", 0)
        large_run.articles, large_run.compressed_mb = large_articles, large.stat().st_size / 1e6

    # -- ratios against the targets of issue 6
    rate = {r.tool: articles / r.wall_s for r in runs}
    per_core = {r.tool: articles / r.cpu_s for r in runs}
    vs_we = rate[ws1.tool] / rate[wikiextractor_1.tool]
    vs_limit = per_core[ws1.tool] / per_core[limit.tool]
    vs_fast_limit = rate[ws1.tool] / rate[fast_limit.tool]
    scaling = rate[ms2.tool] / rate[ms1.tool]
    ratios = [
        f"- wikisnap (1 worker) / wikiextractor (--processes 1), articles/s: **{vs_we:.2f}x** "
        f"(target >= 3x, issue 24) — {verdict(vs_we, 3.0)}",
        f"- wikisnap per-core / limit per-core, articles per CPU-second: **{vs_limit:.1%}** "
        f"(target >= 50%) — {verdict(vs_limit, 0.5)}",
        f"- wikisnap (1 worker) / fast limit, articles/s: **{vs_fast_limit:.1%}** (the gap to the fastest "
        "read of the corpus this machine can do; no target)",
        f"- wikisnap 2 workers / 1 worker on multistream, articles/s: **{scaling:.2f}x** "
        f"(target >= 1.7x) — {verdict(scaling, 1.7)}",
        f"- wikisnap 2 workers / 1 worker on single-stream, articles/s: **{rate[ws2.tool] / rate[ws1.tool]:.2f}x** "
        f"(target >= 1.7x) — {verdict(rate[ws2.tool] / rate[ws1.tool], 1.7)}",
    ]
    for two, one, stream in ((ws2, ws1, "single-stream"), (ms2, ms1, "multistream")):
        cpu_ratio = two.cpu_s / one.cpu_s
        ratios.append(
            f"- wikisnap 2 workers / 1 worker on {stream}, CPU seconds: **{cpu_ratio:.2f}x** "
            f"({two.cpu_s:.1f} / {one.cpu_s:.1f}; target <= 1.10x) — {verdict(cpu_ratio, 1.10, higher_is_better=False)}; "
            f"the added worker's memory: {two.peak_pss_mb - one.peak_pss_mb:+,.0f} MB PSS, "
            f"{two.peak_rss_mb - one.peak_rss_mb:+,.0f} MB RSS (target <= +120 MB)"
        )
    ratios.append(
        f"- peak RSS of wikisnap --workers 1: **{ws1.peak_rss_mb:,.0f} MB** (target <= 300 MB) — "
        f"{verdict(ws1.peak_rss_mb, 300, higher_is_better=False)}"
    )
    if large_run:
        growth = large_run.peak_rss_mb / ws1.peak_rss_mb - 1
        ratios.append(
            f"- memory flatness, peak RSS of wikisnap --workers 1 on the {args.large_factor}x corpus "
            f"({large_articles:,} articles, {large.stat().st_size / 1e6:,.0f} MB; {large_run.wall_s:.0f} s wall) vs the base: "
            f"{large_run.peak_rss_mb:,.0f} MB vs {ws1.peak_rss_mb:,.0f} MB = **{growth:+.1%}** (target < +20%) — "
            f"{verdict(growth, 0.2, higher_is_better=False)}"
        )
    else:
        ratios.append("- memory flatness: not measured (--skip-large)")

    info = machine()
    report = "\n".join(
        [
            "# wikisnap benchmark results",
            "",
            f"`python benchmarks/run.py --copies {args.copies}{' --skip-large' if args.skip_large else ''}`, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "## Machine",
            "",
            *(f"- {k}: {v}" for k, v in info.items()),
            "",
            "## Corpus",
            "",
            f"The real enwiki sample in `tests/data` replicated {args.copies}x under fresh ids and titles "
            f"(`make_corpus.py`): {counts['pages']:,} pages, {articles:,} articles (namespace 0, not redirects), "
            f"{compressed_mb:.1f} MB bz2 single-stream, {multistream.stat().st_size / 1e6:.1f} MB multistream "
            f"(100-page streams), {counts['uncompressed_bytes'] / 1e6:.1f} MB of XML.",
            "",
            "## Results",
            "",
            "Each row is one process tree run alone on the same corpus (single-stream unless marked). "
            "articles/s = corpus articles / wall time; MB/s per core = compressed MB / CPU seconds (user+sys "
            "of the tree); peak PSS = largest sum of the tree's proportional set sizes polled every 0.2 s (a page "
            "shared by n processes counts 1/n in each: what the tree costs the machine); "
            "peak RSS = largest sum of the tree's resident sets polled every 0.2 s, or the largest "
            "process's exact peak (wait4's maxrss) if larger; others busy = CPU used by "
            "other processes in the second before the run.",
            "",
            table(runs + ([large_run] if large_run else [])),
            "",
            "## Ratios",
            "",
            *ratios,
            "",
        ]
    )
    # the sections other benchmarks write (engines, text, HTML, histories …) stay as they are
    args.results.write_text(report + other_sections(args.results), encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
