"""Speed of the SQL table readers of issue 15 (page images, image, wbc_entity_usage, user_groups, flaggedpages).

    python benchmarks/bench_sqltables.py --mb 40 --work /tmp/bench-sqltables

For each table, writes a gzip dump of about `--mb` compressed MB: the real dump preamble and the
CREATE TABLE blocks the tests use (tests/sqlfiles.py), rows made by replicating the tests' real
values under fresh ids (seeded pseudo-random ids, names and aspects, so gzip compresses them about
as much as real dumps, not as a repeated row) in each table's primary-key order (a page's entity usages
together, popular entities such as P31 and Q5 often), in mysqldump's ~1 MB extended INSERT lines. Then
times `sqlrows.keyed_rows` over each file — what the ReadSqlTables DoFn does: decompress, parse
every row, convert the used columns, key them — in this one process, by CPU seconds.
MB/s per core = compressed MB / CPU seconds. Only for measuring: tests use the real files.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from sqlfiles import FLAGGEDPAGES, IMAGE, RM_PAGE_PROPS, USER_GROUPS, WBC_ENTITY_USAGE, literal  # noqa: E402

from wikisnap.schemas.siteinfo import SiteInfo  # noqa: E402
from wikisnap.transforms.formats.sqldump import iter_raw_batches, read_sql_header  # noqa: E402
from wikisnap.transforms.parse.sqlrows import EnrichOptions, SqlInput, keyed_rows  # noqa: E402

PAGE_PROPS_HEAD = """CREATE TABLE `page_props` (
  `pp_page` int(10) unsigned NOT NULL,
  `pp_propname` varbinary(60) NOT NULL DEFAULT '',
  `pp_value` blob NOT NULL,
  `pp_sortkey` float DEFAULT NULL,
  PRIMARY KEY (`pp_page`,`pp_propname`),
  UNIQUE KEY `pp_propname_page` (`pp_propname`,`pp_page`),
  UNIQUE KEY `pp_propname_sortkey_page` (`pp_propname`,`pp_sortkey`,`pp_page`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""

# Real values of the tests (file names the enwiki sample shows, aspects of real WME records, groups).
FILES = ["Aristotle_Altemps_Inv8575.jpg", "Actrius_film_poster.jpg", "Anarchy-symbol.svg", "Sciuridae.jpg"]
ASPECTS = ["S", "T", "O", "C", "L.en", "D.en", "C.P31", "C.P1630", "C.P279", "C.P460", "L.fr"]
GROUPS = ["extendedconfirmed", "rollbacker", "reviewer", "autoreviewer", "sysop", "bot", "extendedmover"]
PROPS = ["wikibase_item", "page_image_free", "page_image", "wikibase-shortdesc", "defaultsort"]
META = '{"data":{"Make":"Canon","Model":"Canon EOS 5D","ExposureTime":"1/200","FNumber":"8/1"},"blobs":[]}'


def _name(rng: random.Random, i: int) -> str:
    stem, ext = FILES[i % len(FILES)].rsplit(".", 1)
    return f"{stem}_{i:09d}_{rng.randrange(1000)}.{ext}"


# A Zipf-like pick: popular entities (Q5, P31 …) are used by many pages, as on Wikipedia.
POPULAR = [f"P{n}" for n in (31, 279, 17, 625, 373, 18, 1630, 214, 227, 244)] + ["Q5", "Q30", "Q6581097", "Q145"]


def _entity(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return POPULAR[min(int(rng.paretovariate(1.2)) - 1, len(POPULAR) - 1)]
    return f"Q{rng.randrange(10**8)}"


def rows_of(table: str, rng: random.Random, i: int) -> list[tuple]:
    """The rows of the i-th page (user, file) in primary-key order, as the dump holds them."""
    page = i * 3 + rng.randrange(3)
    if table == "page_props":
        props = sorted(rng.sample(PROPS, rng.randrange(1, 4)))
        value = {
            "wikibase_item": lambda: f"Q{rng.randrange(10**8)}",
            "page_image_free": lambda: _name(rng, i),
            "page_image": lambda: _name(rng, i + 1),
            "wikibase-shortdesc": lambda: f"Article number {rng.randrange(10**6)} of the benchmark",
            "defaultsort": lambda: f"Sort, Key {rng.randrange(10**6)}",
        }
        return [(page, prop, value[prop](), None) for prop in props]
    if table == "image":
        sha1 = "".join(rng.choice("0123456789abcdefghijklmnopqrstuv") for _ in range(31))
        w, h = rng.randrange(100, 6000), rng.randrange(100, 6000)
        ts = f"20{rng.randrange(4, 25):02d}0{rng.randrange(1, 10)}1{rng.randrange(10)}120000"
        return [(_name(rng, i), rng.randrange(10**7), w, h, META, 8, "BITMAP", "image", "jpeg", i, i // 3, ts, sha1)]
    if table == "wbc_entity_usage":
        # Wikibase writes a page's usages together: its own item's aspects, then other entities.
        own = f"Q{rng.randrange(10**8)}"
        rows = [(own, a) for a in sorted(rng.sample(["S", "T", "O", "C", "D.en", "L.en"], rng.randrange(1, 6)))]
        rows += [(_entity(rng), rng.choice(ASPECTS)) for _ in range(int(rng.expovariate(1 / 8)))]
        return [(i * 16 + k, entity, aspect, page) for k, (entity, aspect) in enumerate(rows)]
    if table == "user_groups":
        # Members are few among accounts (enwiki: ~10^5 of ~5·10^7): their user ids lie far apart.
        page = i * 300 + rng.randrange(300)
        groups = sorted(rng.sample(GROUPS, min(len(GROUPS), 1 + int(rng.expovariate(1)))))
        return [(page, g, None if rng.random() < 0.9 else f"2026{rng.randrange(10, 13)}01000000") for g in groups]
    if table == "flaggedpages":
        pending = None if rng.random() < 0.7 else f"2024{rng.randrange(10, 13)}01000000"
        return [(page, int(pending is None), pending, rng.randrange(10**9), 0)]
    raise ValueError(table)


CREATE = {
    "page_props": PAGE_PROPS_HEAD,
    "image": IMAGE,
    "wbc_entity_usage": WBC_ENTITY_USAGE,
    "user_groups": USER_GROUPS,
    "flaggedpages": FLAGGEDPAGES,
}


def write_dump(path: Path, table: str, target_bytes: int) -> tuple[int, int]:
    """Write a dump of about `target_bytes` compressed; (rows, raw bytes)."""
    text = gzip.decompress(RM_PAGE_PROPS.read_bytes()).decode("utf-8")
    head, rest = text.split("\nINSERT INTO", 1)
    tail = rest.split(";\n", 1)[1]
    start, end = head.index("CREATE TABLE"), head.index("ENGINE=")
    head = head[:start] + CREATE[table] + head[head.index(";", end) + 1 :]
    head = head.replace("`page_props`", f"`{table}`")
    tail = tail.replace("`page_props`", f"`{table}`")
    rng = random.Random(15)
    rows = raw = keys = 0
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(head.encode())
        raw += len(head)
        while f.tell() < target_bytes:
            values = []
            size = 0
            while size < 1 << 20:  # mysqldump's extended INSERT: ~1 MB lines
                for values_of_row in rows_of(table, rng, keys):
                    row = "(" + ",".join(literal(v) for v in values_of_row) + ")"
                    values.append(row)
                    size += len(row) + 1
                    rows += 1
                keys += 1
            line = f"\nINSERT INTO `{table}` VALUES {','.join(values)};".encode()
            gz.write(line)
            raw += len(line)
        gz.write(b"\n" + tail.encode())
    return rows, raw + len(tail)


USED = {
    "page_props": ("pp_page", "pp_propname", "pp_value"),
    "image": ("img_name", "img_width", "img_height"),
    "wbc_entity_usage": ("eu_page_id", "eu_entity_id", "eu_aspect"),
    "user_groups": ("ug_user", "ug_group", "ug_expiry"),
    "flaggedpages": ("fp_page_id", "fp_stable"),
}


def measure_parse(path: Path, table: str) -> float:
    """CPU seconds of the parse alone (decompress + `iter_raw_batches`), best of 3."""
    header = read_sql_header(str(path))
    best = None
    for _ in range(3):
        cpu = time.process_time()
        for _batch in iter_raw_batches(str(path), header, USED[table]):
            pass
        took = time.process_time() - cpu
        best = took if best is None else min(best, took)
    return best


def measure(path: Path, table: str) -> tuple[int, float, float]:
    """(elements keyed, CPU seconds, wall seconds) of keyed_rows over the whole file (best of 3 runs)."""
    site = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")
    options = EnrichOptions(1_000_000, (("enwiki", site),), snapshot_date="20250101")
    inp = SqlInput(str(path), table, "enwiki", read_sql_header(str(path)))
    best = None
    for _ in range(3):  # the machine is shared: the least disturbed run is the reader's own cost
        counts: dict = {}
        cpu, wall = time.process_time(), time.perf_counter()
        n = sum(1 for _ in keyed_rows(inp, options, counts))
        took = (n, time.process_time() - cpu, time.perf_counter() - wall)
        best = took if best is None or took[1] < best[1] else best
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=40, help="compressed MB per table")
    parser.add_argument("--work", default="/tmp/bench-sqltables")
    parser.add_argument("--tables", default=",".join(CREATE))
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(
        "| table | rows | elements | compressed MB | raw MB | parse CPU s | parse+key CPU s "
        "| MB/s per core, parse (compressed) | MB/s per core, parse+key (compressed) | parse+key (raw) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for table in args.tables.split(","):
        path = work / f"enwiki-20250101-{table}.sql.gz"
        rows, raw = write_dump(path, table, int(args.mb * 1e6))
        size = path.stat().st_size
        parse = measure_parse(path, table)
        keyed, cpu, _wall = measure(path, table)
        assert keyed <= rows, (keyed, rows)
        print(
            f"| {table} | {rows:,} | {keyed:,} | {size / 1e6:.1f} | {raw / 1e6:.1f} | {parse:.2f} | {cpu:.2f} "
            f"| {size / 1e6 / parse:.1f} | {size / 1e6 / cpu:.1f} | {raw / 1e6 / cpu:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
