"""Compare the records of two `wikisnap build` outputs: NDJSON lines and Parquet rows, byte for byte.

    python benchmarks/diff_outputs.py /tmp/before /tmp/after

For a change that must not change what a build writes (a faster scanner, say): every NDJSON line
of every `*.tar.gz` snapshot (members in order), and every row of every Parquet file (`parquet/`
and the plain-text `text/` shards, all columns, as Python values), must be equal in both folders,
as must the set of files. Prints one line per kind with the counts compared and exits 1 on the
first difference, naming the file and line or row. Timestamps of manifests and metadata files
(when each build ran) are not records and are not compared.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path


def ndjson_lines(path: Path):
    """(member name, line) of every line of every member of a snapshot tarball, in order."""
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            stream = tar.extractfile(member)
            if stream is None:
                continue
            for line in stream:
                yield member.name, line


def parquet_rows(path: Path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    yield from table.to_pylist()


def compare(before: Path, after: Path) -> list[str]:
    problems: list[str] = []
    names = {p.relative_to(before) for p in before.rglob("*") if p.is_file() and ".wikisnap" not in p.parts}
    other = {p.relative_to(after) for p in after.rglob("*") if p.is_file() and ".wikisnap" not in p.parts}
    if names != other:
        problems.append(
            f"files differ: only before {sorted(map(str, names - other))}, only after {sorted(map(str, other - names))}"
        )
    lines = rows = 0
    for rel in sorted(names & other):
        if rel.name.endswith(".tar.gz"):
            left, right = ndjson_lines(before / rel), ndjson_lines(after / rel)
            kind = "line"
        elif rel.suffix == ".parquet":
            left, right = parquet_rows(before / rel), parquet_rows(after / rel)
            kind = "row"
        else:
            continue
        sentinel = object()
        for n, (a, b) in enumerate(_zip_all(left, right, sentinel), 1):
            if a != b:
                problems.append(f"{rel}: {kind} {n} differs" + (" (one file is shorter)" if sentinel in (a, b) else ""))
                break
            if kind == "line":
                lines += 1
            else:
                rows += 1
    print(f"compared {lines:,} NDJSON lines and {rows:,} Parquet rows in {len(names & other)} files")
    return problems


def _zip_all(left, right, fill):
    left, right = iter(left), iter(right)
    while True:
        a, b = next(left, fill), next(right, fill)
        if a is fill and b is fill:
            return
        yield a, b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    problems = compare(args.before, args.after)
    for problem in problems:
        print(problem)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
