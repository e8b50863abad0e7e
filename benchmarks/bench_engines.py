"""What a distributed engine costs on one machine: the enwiki x20 multistream corpus on the local
runner vs Beam's portable Fn API path (and Flink, when its job server jar is at hand).

    python benchmarks/bench_engines.py [--flink-job-server-jar JAR] [--results benchmarks/RESULTS.md]

Rows:
- local FnApiRunner, `--workers 1` and `--workers 2` (multi_processing);
- `PortableRunner --job_endpoint embed` with an EXTERNAL worker pool in a separate process: the
  SDK harness, gRPC data plane and job service a Flink or Spark run drives, without the JVM;
- with `--flink-job-server-jar`: FlinkRunner (`--flink_master [local]`) with `--parallelism` 1
  and 2, SDK workers from the same pool.
CPU counts the wikisnap process tree plus the worker pool's (and the job server's, a child of
wikisnap). The same output bytes are checked for every row. Appends a section to RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.run import (  # noqa: E402
    CLOCK_TICKS,
    _proc_table,
    _tree,
    compile_like_pip,
    machine,
    make_corpus,
    measure,
    multistream_of,
)

WIKISNAP = str(Path(sys.executable).with_name("wikisnap"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WorkerPool:
    """`worker_pool_main` on a loopback port, with the CPU its process tree used."""

    def __init__(self, log: Path):
        self.port = _free_port()
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={self.port}"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the worker pool did not start; see {log}") from None
                time.sleep(0.2)

    def cpu(self) -> float:
        """CPU seconds of the pool and its live workers so far, plus the workers it has reaped."""
        table = _proc_table()
        live = sum(table[p][2] for p in _tree(table, self.proc.pid) if p in table)
        with open(f"/proc/{self.proc.pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return live + (int(fields[13]) + int(fields[14])) / CLOCK_TICKS

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def md5s(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--corpus-dir", type=Path, default=HERE / "corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikisnap-bench-engines"))
    parser.add_argument("--flink-job-server-jar", default=None, help="run FlinkRunner rows with this job server jar")
    parser.add_argument("--results", type=Path, default=None, help="append the section to this RESULTS.md")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over all rows; each row keeps its fastest run")
    args = parser.parse_args(argv)

    compile_like_pip()
    corpus = make_corpus(args.corpus_dir, args.copies, multistream=True)
    dump, index = multistream_of(corpus)
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)
    base = [WIKISNAP, "-q", "build", str(dump), "--index", str(index)]
    pool = WorkerPool(args.work / "pool.log")
    external = ["--environment_type", "EXTERNAL", "--environment_config", f"localhost:{pool.port}"]
    rows = [
        ("local FnApiRunner, --workers 1", ["--workers", "1"], False),
        ("local FnApiRunner, --workers 2", ["--workers", "2"], False),
        (
            "PortableRunner (embedded job service) + EXTERNAL worker pool",
            ["--runner", "PortableRunner", "--job_endpoint", "embed", *external],
            True,
        ),
    ]
    if args.flink_job_server_jar:
        for p in (1, 2):
            flink = [
                "--runner",
                "FlinkRunner",
                "--flink_master",
                "[local]",
                "--parallelism",
                str(p),
                "--shared-temp",
                "--flink_job_server_jar",
                args.flink_job_server_jar,
                *external,
            ]
            rows.append((f"FlinkRunner [local], --parallelism {p}, EXTERNAL worker pool", flink, True))
    best: dict[str, object] = {}
    reference = None
    try:
        # rounds over all rows, so a neighbour's burst of load does not fall on one row only
        for round_no in range(args.repeat):
            for n, (label, flags, uses_pool) in enumerate(rows):
                out = args.work / f"out-{n}"
                if out.exists():
                    shutil.rmtree(out)
                before = pool.cpu()
                run = measure(label, [*base, "--out", str(out), *flags], args.work / f"run-{n}-{round_no}.log")
                if uses_pool:
                    time.sleep(1)  # let the pool reap its workers
                    run.cpu_s += max(0.0, pool.cpu() - before)
                digest = md5s(out)
                if reference is None:
                    reference = digest
                elif digest != reference:
                    raise SystemExit(f"{label}: output differs from the local run's ({out})")
                print(f"{label}: {run.wall_s:.1f} s wall, {run.cpu_s:.1f} s CPU, others {run.others_busy_pct:.0f}%")
                if label not in best or run.wall_s < best[label].wall_s:
                    best[label] = run
    finally:
        pool.close()
    results = [best[label] for label, _flags, _pool in rows]

    first = results[0]
    lines = [
        "",
        f"## Engines on one machine ({datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"`python benchmarks/bench_engines.py` on the enwiki x{args.copies} multistream corpus "
        f"({dump.stat().st_size / 1e6:.1f} MB, 100-page streams); apache-beam {machine()['apache-beam']}, "
        f"{machine()['nproc']} cores shared with other engineers' work (others busy = their CPU share in the "
        f"second before the run). Fastest of {args.repeat} round(s) per row; every run gave the same output bytes.",
        "",
        "| run | wall s | CPU s | wall vs local 1 | CPU vs local 1 | peak RSS MB (wikisnap tree) | others busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.tool} | {r.wall_s:.1f} | {r.cpu_s:.1f} | {r.wall_s / first.wall_s:.2f}x | "
            f"{r.cpu_s / first.cpu_s:.2f}x | {r.peak_rss_mb:,.0f} | {r.others_busy_pct:.0f}% |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if args.results:
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
