"""Where `wikisnap build --workers 1` spends its time: a py-spy profile summarised by stage.

    pip install py-spy==0.4.3
    python benchmarks/profile_build.py benchmarks/corpus/enwiki-x20.xml.bz2 [--speedscope profile.json]

Samples every thread of the one build process at 100 Hz (`py-spy record --format raw`), drops
threads that only wait (progress reporter, Beam's periodic flusher), and files each sample
under the stage its innermost recognised frame belongs to. With `--speedscope` a second,
identical run writes a profile to open at https://www.speedscope.app.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import compile_like_pip  # noqa: E402

# (stage, substrings of a frame "function (file:line)"): checked from the innermost frame out,
# so bz2 read *inside* lxml's iterparse counts as bz2, not as lxml
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("bz2 decompression", ("_compression.py", "bz2.py", "_ReadAhead.", "_Concat.", "_RangeReader.", "codecs.py")),
    ("input md5/sha1", ("_HashingReader.",)),
    ("lxml parse + page fields", ("dumpreader.py", "dumpfiles.py")),
    (
        "wikitext analysis (templates, categories, abstract)",
        ("parse/wikitext.py", "parse/abstract.py", "magic_words.py"),
    ),
    ("WME JSON serialisation", ("serialize.py", "json/")),
    ("gzip of members", ("GzipMemberWriter", "gzip_member", "zlib", "isal")),
    ("read-back verification", ("transforms/verify.py",)),
    ("Parquet (rows, arrow table, write)", ("schemas/arrow.py", "pyarrow/parquet", "MemberSink._flush_rows")),
    ("spill runs (pickle + compress + file I/O)", ("_write_frame", "iter_run", "write_run", "merge_runs", "Spill")),
    ("tarball assembly + md5", ("assemble_tarball", "file_md5", "assemble_snapshot")),
    ("article build (other fields)", ("parse/article.py",)),
    ("plain-text stripper (--formats text)", ("parse/plaintext.py",)),
    ("wikisnap other (read/write glue, redirects, manifest)", ("transforms/", "pipelines/", "schemas/")),
    ("Beam overhead (graph, runner, coders, bundles)", ("apache_beam", "grpc", "Thread.run (threading.py")),
]
IMPORTS = ("_find_and_load",)
IDLE = ("Condition.wait", "Event.wait", "Lock.acquire", "queue.py")


def classify(frames: list[str]) -> str | None:
    """The stage of one sampled stack (outermost frame first); None for an idle wait."""
    if any(word in frames[-1] for word in IDLE):
        return None
    if any(word in frame for frame in frames for word in IMPORTS):
        return "Python imports (startup)"
    for frame in reversed(frames):
        for stage, words in STAGES:
            if any(word in frame for word in words):
                return stage
    return "other (native, unattributed)"


def summarise(raw: Path, classify_stack=None) -> tuple[Counter[str], int]:
    """Samples per stage of a py-spy raw (collapsed stacks) file, and the idle samples left out.

    `classify_stack(frames) -> stage | None` files one stack (default: this module's `classify`).
    """
    classify_stack = classify_stack or classify
    stages: Counter[str] = Counter()
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stage = classify_stack(stack.split(";"))
        if stage is None:
            idle += int(count)
        else:
            stages[stage] += int(count)
    return stages, idle


def print_stages(stages: Counter[str], idle: int, unit: str) -> None:
    """The stages as a Markdown table of samples and shares, after a line of totals."""
    total = sum(stages.values())
    print(f"{total:,} busy samples at 100 Hz ({total / 100:.1f} {unit}), {idle:,} idle-thread samples left out\n")
    print("| stage | samples | share |\n|---|---:|---:|")
    for stage, n in stages.most_common():
        print(f"| {stage} | {n:,} | {n / total:.1%} |")


def py_spy() -> str:
    """py-spy from PATH, or beside this Python (a venv that is not activated)."""
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit("py-spy is not installed: pip install py-spy==0.4.3")
    return found


def record(dump: str, fmt: str, output: Path, workers: int, extra: list[str] = ()) -> None:
    """One profiled build of `dump` into a throw-away folder."""
    with tempfile.TemporaryDirectory(prefix="wikisnap-profile-") as out:
        cmd = [py_spy(), "record", "-r", "100", "--format", fmt, "-o", str(output), "--subprocesses", "--"]
        cmd += [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", "build", dump, "--out", out]
        cmd += ["--workers", str(workers), *extra]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--formats", help="passed to wikisnap build (e.g. text)")
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks here")
    parser.add_argument("--speedscope", type=Path, help="also write a speedscope profile (a second run)")
    args = parser.parse_args(argv)
    compile_like_pip()  # the profile of an installed copy, not of the compiler
    py_spy()  # fail before anything runs
    extra = ["--formats", args.formats] if args.formats else []
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw or Path(tmp) / "profile.raw"
        record(args.dump, "raw", raw, args.workers, extra)
        stages, idle = summarise(raw)
    print_stages(stages, idle, "CPU-s")
    if args.speedscope:
        record(args.dump, "speedscope", args.speedscope, args.workers, extra)
        print(f"\nspeedscope profile: {args.speedscope}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
