"""Measure `wikisnap update` against a full rebuild on a generated corpus.

    python benchmarks/bench_update.py --copies 50 --changed-percent 1 --work /tmp/bench-update

Steps: replicate the real enwiki sample (`make_corpus.py`), build it (the base), edit a share of
its pages (a new revision: higher id, later time, a sentence appended), write those pages as an
adds-changes XML diff and the whole edited corpus as the "later" dump; then time `update` (base +
diff) and `build` (later dump), and check both give the same records (every field but `event`).
Only for measuring: tests use the real files.
"""

from __future__ import annotations

import argparse
import bz2
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "tests/data/xml/gensim__enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_PAGE = re.compile(rb"  <page>.*?</page>\n", re.S)
_REV_ID = re.compile(rb"(<revision>\s*<id>)(\d+)(</id>)")
_TIME = re.compile(rb"<timestamp>[^<]*</timestamp>")
_TEXT_END = re.compile(rb"</text>")


def edit(page: bytes, n: int) -> bytes:
    page = _REV_ID.sub(lambda m: m.group(1) + str(int(m.group(2)) + 10**9).encode() + m.group(3), page, count=1)
    page = _TIME.sub(b"<timestamp>2016-06-01T%02d:00:00Z</timestamp>" % (n % 24), page, count=1)
    return _TEXT_END.sub(b" Edited for the benchmark.</text>", page, count=1)


def wikisnap(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "wikisnap.pipelines.cli", "-q", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def records(tar_path: Path) -> dict[int, dict]:
    out = {}
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            for line in tar.extractfile(member):
                r = json.loads(line)
                r.pop("event", None)
                out[r["identifier"]] = r
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=50)
    parser.add_argument("--changed-percent", type=float, default=1.0)
    parser.add_argument("--work", default="/tmp/bench-update")
    parser.add_argument("--formats", default="ndjson,parquet")
    parser.add_argument("--member-size-mb", default="100")
    parser.add_argument("--workers", default="1")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"enwiki-x{args.copies}.xml.bz2"
    if not corpus.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "make_corpus.py"),
                str(SAMPLE),
                "--copies",
                str(args.copies),
                "--out",
                str(corpus),
            ],
            check=True,
        )
    xml = bz2.decompress(corpus.read_bytes())
    first, last = xml.index(b"  <page>"), xml.rindex(b"</page>\n") + len(b"</page>\n")
    header, footer, pages = xml[:first], xml[last:], _PAGE.findall(xml[first:last])
    every = max(1, round(100 / args.changed_percent))
    edited = [edit(p, i) if i % every == 0 else p for i, p in enumerate(pages)]
    diff = work / "adds-changes.xml"
    diff.write_bytes(header + b"".join(p for i, p in enumerate(edited) if i % every == 0) + footer)
    later = work / "later.xml"
    later.write_bytes(header + b"".join(edited) + footer)
    for name in ("base", "updated", "rebuilt"):
        subprocess.run(["rm", "-rf", str(work / name)], check=True)
    sizes = ("--formats", args.formats, "--member-size-mb", args.member_size_mb, "--workers", args.workers)
    t_base = wikisnap("build", str(corpus), "--out", str(work / "base"), *sizes)
    t_update = wikisnap(
        "update", "--base", str(work / "base"), str(diff), "--out", str(work / "updated"), "--workers", args.workers
    )
    t_rebuild = wikisnap("build", str(later), "--out", str(work / "rebuilt"), *sizes)
    tar = "enwiki_namespace_0.tar.gz"
    same = records(work / "updated" / tar) == records(work / "rebuilt" / tar)
    counts = json.loads((work / "updated" / "manifest.json").read_text())["counts"]["enwiki"]
    print(
        json.dumps(
            {
                "pages": len(pages),
                "changed_pages": len(pages[::every]),
                "records": counts.get("written/0"),
                "base_tarball_mb": round((work / "base" / tar).stat().st_size / 1e6, 2),
                "build_base_s": round(t_base, 2),
                "update_s": round(t_update, 2),
                "full_rebuild_s": round(t_rebuild, 2),
                "speedup": round(t_rebuild / t_update, 2),
                "update_pipeline_s": json.loads((work / "updated" / "manifest.json").read_text())["timing"]["seconds"],
                "rebuild_pipeline_s": json.loads((work / "rebuilt" / "manifest.json").read_text())["timing"]["seconds"],
                "same_records": same,
                "counts": counts,
            },
            indent=1,
        )
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
