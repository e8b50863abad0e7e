"""Where `wikisnap update` spends its time: a py-spy profile summarised by stage.

    pip install py-spy==0.4.3
    python benchmarks/bench_update.py --copies 50 --changed-percent 0.1 --work /tmp/bench-update
    python benchmarks/profile_update.py /tmp/bench-update/base /tmp/bench-update/adds-changes.xml

Samples every thread of the update process at 100 Hz (`py-spy record --format raw`), drops threads
that only wait, and files each sample under the stage its innermost recognised frame belongs to
(the first stage of the list any of its frames belongs to). Threads that work side by side (the md5 of the base, a touched member's
Parquet shard) are sampled each: the total can exceed the wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from profile_build import IDLE, IMPORTS, compile_like_pip, print_stages, py_spy, summarise

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("base scan: md5 of the tarball", ("_md5_hex",)),
    (
        "base scan: members mapped, shards' index, hits inflated",
        ("scan_base", "_scan_", "_indexed_hits", "find_in_base"),
    ),
    ("base shard's md5 (a shard converted from older types)", ("check_base_md5",)),
    (
        "touched member: Parquet shard md5, spliced (touched groups encoded, others copied)",
        ("_merge_shard_file", "merge_shard", "splice_shard", "splice_plan"),
    ),
    # (the gzip and read-back md5 run on Offload threads, whose stacks do not show who started them)
    ("touched member: lines inflated and re-gzipped", ("_rewrite_lines", "_span_lines", "GzipMemberWriter")),
    ("untouched member: bytes and shard copied", ("rewrite_member",)),
    ("read-back verification", ("transforms/verify.py", "HashingReader")),
    ("tarball assembly + md5", ("assemble_tarball", "file_md5", "assemble_snapshot")),
    ("diffs read and folded, batches", ("update/diffs.py", "dumpreader", "resolve_wiki", "update/batches.py")),
    ("wikisnap other (plan, manifest, commit)", ("transforms/", "pipelines/", "schemas/")),
    ("Beam overhead (graph, runner, coders, bundles)", ("apache_beam", "grpc", "Thread.run (threading.py")),
]


def classify(frames: list[str]) -> str | None:
    """The stage of one sampled stack (outermost frame first); None for an idle wait."""
    if any(word in frames[-1] for word in IDLE):
        return None
    if any(word in frame for frame in frames for word in IMPORTS):
        return "Python imports (startup)"
    # by stage, not by the innermost frame: a touched member's gzip writer is in transforms/formats/tarball.py
    for stage, words in STAGES:
        if any(word in frame for frame in frames for word in words):
            return stage
    return "other (native, unattributed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("diffs", nargs="+")
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks here")
    args = parser.parse_args(argv)
    compile_like_pip()  # the profile of an installed copy, not of the compiler
    with tempfile.TemporaryDirectory(prefix="wikisnap-profile-") as tmp:
        raw = args.raw or Path(tmp) / "profile.raw"
        cmd = [py_spy(), "record", "-r", "100", "--format", "raw", "-o", str(raw), "--subprocesses", "--"]
        cmd += [sys.executable, "-m", "wikisnap.pipelines.cli", "-q", "update", "--base", args.base, *args.diffs]
        cmd += ["--out", str(Path(tmp) / "out")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        stages, idle = summarise(raw, classify)
    print_stages(stages, idle, "thread-s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
