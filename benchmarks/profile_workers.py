"""What each process of a `wikisnap build` costs: CPU seconds and peak memory per process.

    python benchmarks/profile_workers.py benchmarks/corpus/enwiki-x20.xml.bz2 --workers 2

Runs one build (outputs in a throw-away folder) and polls its process tree every 50 ms: for
each process its CPU seconds (user + system, the last value seen), peak RSS and peak PSS
(proportional set size: pages shared with the launcher or a sibling count 1/n in each), and
its command line. With `--workers N` the launcher runs Beam's runner and the N worker processes
do the work; the table shows what the launcher, each worker and their start-up cost, which is
how the +27% CPU of a second worker was traced to each worker's own interpreter start-up
(docs/performance.md, "Workers that pay for themselves").
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import _proc_table, _pss, _tree, compile_like_pip  # noqa: E402

POLL_SECONDS = 0.05


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def profile(cmd: list[str]) -> tuple[float, dict[int, list]]:
    """Wall seconds of `cmd`, and pid → [cpu s, peak RSS bytes, peak PSS bytes, command line]."""
    seen: dict[int, list] = {}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        table = _proc_table()
        for pid in _tree(table, proc.pid):
            if pid not in table:
                continue
            row = seen.setdefault(pid, [0.0, 0, 0, cmdline(pid)])
            row[0] = table[pid][2]
            row[1] = max(row[1], table[pid][1])
            row[2] = max(row[2], _pss(pid))
        time.sleep(POLL_SECONDS)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"the build failed ({proc.returncode}): {' '.join(cmd)}")
    return wall, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="more `wikisnap build` flags")
    args = parser.parse_args(argv)
    compile_like_pip()
    with tempfile.TemporaryDirectory(prefix="wikisnap-profile-") as out:
        cmd = [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", "build", args.dump, "--out", out]
        wall, seen = profile([*cmd, "--workers", str(args.workers), *args.extra])
    print(f"wall {wall:.1f} s, CPU {sum(r[0] for r in seen.values()):.1f} s over {len(seen)} process(es)\n")
    print("| pid | CPU s | peak RSS MB | peak PSS MB | process |\n|---:|---:|---:|---:|---|")
    for pid, (cpu, rss, pss, cmd) in sorted(seen.items()):
        print(f"| {pid} | {cpu:.2f} | {rss / 1e6:,.0f} | {pss / 1e6:,.0f} | `{cmd[:80]}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
