"""How a build's memory, time and temp disk grow with the number of pages (issue 24).

    python benchmarks/scale.py --sizes 10000,100000 --mixes xml,page_props,redirect,all
    python benchmarks/scale.py --sizes 1000000 --mixes xml,all --workers 1

Inputs are enwiki-shaped and made from real pages: the siteinfo and the 12 shortest articles
(970-5,738 bytes of XML: links, templates, categories) and the 100 redirect pages of the enwiki
sample in tests/data, replicated under fresh titles, page ids (gaps of 1-5, as enwiki's ids are
spread over ~3x its page count), revision ids and editor ids; 40% articles, 60% redirects (each
to an article of the corpus). SQL table dumps with rows per page at enwiki-like ratios, in each
table's primary-key order and mysqldump's ~1 MB extended INSERT lines, with the real preamble and
the CREATE TABLE blocks the tests use (tests/sqlfiles.py, benchmarks/bench_sqltables.py):

    page_props        per article: wikibase_item; 50% page_image_free; 70% wikibase-shortdesc
    redirect          per redirect page: its target (ns 0)
    categorylinks     per article: 3 rows (MW 1.45: cl_target_id) over a pool of pages/20 categories
    linktarget        the categories (ns 14) and one ns-0 link target per article (read, filtered)
    wbc_entity_usage  per article: its own item (1-5 aspects) + ~5 other entities (popular ones often)
    user_groups       2% of the editors (pages/5 registered users), 1-3 groups each

Generation is streamed (flat memory) and cached under benchmarks/corpus/scale-{pages}/.
Each (size, mix) is one `wikisnap build` process tree, run alone; measured like benchmarks/run.py
(wall, CPU of the tree, peak RSS = polled tree sum or wait4's maxrss), plus peak temp disk (the
--temp-location folder and the output folder, with its staging, polled) and the output's size.
Results: benchmarks/scale.json (appended per run, keyed by size+mix+workers), SCALE.md, scale.png.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import html
import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `benchmarks` as a package, whatever the working directory
sys.path.insert(0, str(HERE.parent / "tests"))  # tests/sqlfiles.py: the SQL dump shapes the tests use

from sqlfiles import (  # noqa: E402
    CATEGORYLINKS_TARGET_ID,
    CR_REDIRECT,
    LINKTARGET,
    RM_PAGE_PROPS,
    USER_GROUPS,
    WBC_ENTITY_USAGE,
    literal,
)

from benchmarks.bench_sqltables import ASPECTS, GROUPS, PAGE_PROPS_HEAD, _entity  # noqa: E402
from benchmarks.run import POLL_SECONDS, SAMPLE, compile_like_pip, machine, measure  # noqa: E402

DB, DATE = "enwiki", "20250101"
TABLES = ("page_props", "redirect", "categorylinks", "wbc_entity_usage", "user_groups")
# a mix: `xml`, `all`, or `+`-joined tables (categorylinks brings linktarget)
MIXES = ("xml", *TABLES, "all")
ARTICLE_SHARE = 0.4
CATEGORIES_PER_ARTICLE = 3
SHORT_ARTICLES = 12

_PAGE = re.compile(rb"  <page>.*?</page>\n", re.S)
_TITLE = re.compile(rb"<title>(.*?)</title>")
_PAGE_ID = re.compile(rb"(</ns>\s*<id>)\d+(</id>)")
_REV_ID = re.compile(rb"(<revision>\s*<id>)\d+(</id>)")
_PARENT = re.compile(rb"\s*<parentid>\d+</parentid>")
_EDITOR = re.compile(rb"(<username>)(.*?)(</username>\s*<id>)\d+(</id>)", re.S)
_REDIRECT_TAG = re.compile(rb'<redirect title="[^"]*" />')
_REDIRECT_TEXT = re.compile(rb"(#REDIRECT\s*\[\[)[^\]|#]*", re.I)


# -- corpus ---------------------------------------------------------------------------------


def _shapes() -> tuple[bytes, bytes, list[bytes], list[bytes]]:
    """(header with siteinfo, footer, short real articles, real redirect pages) of the enwiki sample."""
    xml = bz2.decompress(SAMPLE.read_bytes())
    first, last = xml.index(b"  <page>"), xml.rindex(b"</page>\n") + len(b"</page>\n")
    pages = _PAGE.findall(xml[first:last])
    articles = sorted((p for p in pages if b"<redirect" not in p and b"<ns>0</ns>" in p), key=len)[:SHORT_ARTICLES]
    redirects = [p for p in pages if b"<redirect" in p and b"<ns>0</ns>" in p]
    return xml[:first], xml[last:], articles, redirects


def _page(shape: bytes, title: bytes, page_id: int, editor: int, target: bytes | None) -> bytes:
    """A real page under a new title, page id, revision id (and editor id; redirect target)."""
    page = _TITLE.sub(lambda _m: b"<title>" + title + b"</title>", shape, count=1)
    page = _PAGE_ID.sub(lambda m: m.group(1) + b"%d" % page_id + m.group(2), page, count=1)
    page = _REV_ID.sub(lambda m: m.group(1) + b"%d" % (900_000_000 + page_id) + m.group(2), page, count=1)
    page = _PARENT.sub(b"", page, count=1)
    page = _EDITOR.sub(lambda m: m.group(1) + b"User %d" % editor + m.group(3) + b"%d" % editor + m.group(4), page)
    if target is not None:
        page = _REDIRECT_TAG.sub(lambda _m: b'<redirect title="' + target + b'" />', page, count=1)
        page = _REDIRECT_TEXT.sub(lambda m: m.group(1) + target, page, count=1)
    return page


def _db_title(escaped: bytes) -> str:
    """An XML-escaped page title → its database key (underscores)."""
    return html.unescape(escaped.decode("utf-8")).replace(" ", "_")


class SqlWriter:
    """A streamed table dump `{DB}-{DATE}-{table}.sql.gz`: real preamble/trailer, ~1 MB INSERT lines."""

    def __init__(self, folder: Path, table: str, create: str, source: Path = RM_PAGE_PROPS):
        text = gzip.decompress(source.read_bytes()).decode("utf-8")
        head, rest = text.split("\nINSERT INTO", 1)
        tail = rest.split(";\n", 1)[1]
        old = re.search(r"CREATE TABLE `(\w+)`", head).group(1)
        head = re.sub(r"CREATE TABLE `\w+` \(.*?\) ENGINE=[^;]*;", lambda _m: create, head, flags=re.S)
        self.table = table
        self.tail = tail.replace(f"`{old}`", f"`{table}`")
        self.path = folder / f"{DB}-{DATE}-{table}.sql.gz"
        self.partial = self.path.with_suffix(".partial")
        self.gz = gzip.GzipFile(self.partial, "wb", compresslevel=6, mtime=0)
        self.gz.write(head.replace(f"`{old}`", f"`{table}`").encode())
        self.values: list[str] = []
        self.size = 0
        self.rows = 0

    def add(self, *row) -> None:
        value = "(" + ",".join(literal(v) for v in row) + ")"
        self.values.append(value)
        self.size += len(value) + 1
        self.rows += 1
        if self.size >= 1 << 20:
            self._line()

    def _line(self) -> None:
        if self.values:
            self.gz.write(f"\nINSERT INTO `{self.table}` VALUES {','.join(self.values)};".encode())
        self.values, self.size = [], 0

    def close(self) -> None:
        self._line()
        self.gz.write(b"\n" + self.tail.encode())
        self.gz.close()
        self.partial.rename(self.path)


def generate(pages: int, folder: Path, seed: int = 24) -> dict:
    """Write the corpus of `pages` pages into `folder` (cached: done.json marks a complete one)."""
    done = folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    header, footer, articles, redirects = _shapes()
    rng = random.Random(seed)
    users = max(1000, pages // 5)
    xml_path = folder / f"{DB}-{DATE}-pages-articles.xml.bz2"
    xml_tmp = xml_path.with_suffix(".partial")
    # Tables whose primary key is not the page id are buffered by key: small per page, streamed
    # per table otherwise (linktarget ids and user ids are made in order below).
    props = SqlWriter(folder, "page_props", PAGE_PROPS_HEAD)
    redirect = SqlWriter(folder, "redirect", CR_REDIRECT_CREATE, CR_REDIRECT)
    catlinks = SqlWriter(folder, "categorylinks", CATEGORYLINKS_TARGET_ID)
    usage = SqlWriter(folder, "wbc_entity_usage", WBC_ENTITY_USAGE)
    n_categories = max(10, pages // 20)
    # linktarget: lt_id 1..n_categories are the categories (ns 14); articles' ns-0 targets follow
    linktarget = SqlWriter(folder, "linktarget", LINKTARGET)
    for lt in range(1, n_categories + 1):
        linktarget.add(lt, 14, f"Scale_category_{lt}")
    article_titles: list[bytes] = []  # escaped titles of the articles so far (redirect targets)
    page_id, usage_row, n_articles, n_redirects, xml_bytes = 0, 0, 0, 0, 0
    editors: set[int] = set()
    with bz2.BZ2File(xml_tmp, "wb", compresslevel=9) as xml:
        xml.write(header)
        for i in range(pages):
            page_id += rng.randint(1, 5)
            editor = rng.randrange(1, users + 1)
            if not article_titles or rng.random() < ARTICLE_SHARE:
                shape = articles[n_articles % len(articles)]
                title = _TITLE.search(shape).group(1) + b" %d" % i
                article_titles.append(title)
                data = _page(shape, title, page_id, editor, None)
                n_articles += 1
                # page_props in (pp_page, pp_propname) order
                if rng.random() < 0.5:
                    props.add(page_id, "page_image_free", f"Scale_{page_id}.jpg", None)
                if rng.random() < 0.7:
                    props.add(page_id, "wikibase-shortdesc", f"Short description of page {page_id}", None)
                props.add(page_id, "wikibase_item", f"Q{1_000_000 + page_id}", None)
                for cat in sorted(rng.sample(range(1, n_categories + 1), CATEGORIES_PER_ARTICLE)):
                    catlinks.add(page_id, f"SORTKEY {i}", "", "2024-01-01 00:00:00", "page", 1, cat)
                linktarget.add(n_categories + n_articles, 0, _db_title(title))
                own = f"Q{1_000_000 + page_id}"
                rows = {(own, a) for a in rng.sample(["S", "T", "O", "C", "D.en", "L.en"], rng.randrange(1, 6))}
                rows |= {(_entity(rng), rng.choice(ASPECTS)) for _ in range(int(rng.expovariate(1 / 5)))}
                for entity, aspect in sorted(rows):  # unique (entity, aspect, page): one page's rows together
                    usage_row += 1
                    usage.add(usage_row, entity, aspect, page_id)
            else:
                shape = redirects[n_redirects % len(redirects)]
                target = article_titles[rng.randrange(len(article_titles))]
                title = _TITLE.search(shape).group(1) + b" %d" % i
                data = _page(shape, title, page_id, editor, target)
                n_redirects += 1
                redirect.add(page_id, 0, _db_title(target), "", "")
            if b"<username>" in data:
                editors.add(editor)
            xml.write(data)
            xml_bytes += len(data)
        xml.write(footer)
    xml_tmp.rename(xml_path)
    for w in (props, redirect, catlinks, usage, linktarget):
        w.close()
    groups = SqlWriter(folder, "user_groups", USER_GROUPS)
    members = sorted(rng.sample(sorted(editors), max(1, len(editors) // 50)))
    for user in members:
        for g in sorted(rng.sample(GROUPS, rng.randint(1, 3))):
            groups.add(user, g, None)
    groups.close()
    info = {
        "pages": pages,
        "articles": n_articles,
        "redirects": n_redirects,
        "max_page_id": page_id,
        "xml_mb": round(xml_bytes / 1e6, 1),
        "bz2_mb": round(xml_path.stat().st_size / 1e6, 1),
        "editors": len(editors),
        "rows": {w.table: w.rows for w in (props, redirect, catlinks, linktarget, usage, groups)},
        "sql_gz_mb": {
            w.table: round(w.path.stat().st_size / 1e6, 2)
            for w in (props, redirect, catlinks, linktarget, usage, groups)
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    done.write_text(json.dumps(info, indent=1))
    return info


CR_REDIRECT_CREATE = """CREATE TABLE `redirect` (
  `rd_from` int(8) unsigned NOT NULL DEFAULT '0',
  `rd_namespace` int(11) NOT NULL DEFAULT '0',
  `rd_title` varbinary(255) NOT NULL DEFAULT '',
  `rd_interwiki` varbinary(32) DEFAULT NULL,
  `rd_fragment` varbinary(255) DEFAULT NULL,
  PRIMARY KEY (`rd_from`),
  KEY `rd_ns_title` (`rd_namespace`,`rd_title`,`rd_from`)
) ENGINE=InnoDB DEFAULT CHARSET=binary;"""  # crwiki-20160111-redirect.sql.gz's own block


def inputs_of(folder: Path, mix: str) -> list[str]:
    """The build's inputs for a mix: `xml`, `all`, or tables joined by `+`."""
    paths = [str(folder / f"{DB}-{DATE}-pages-articles.xml.bz2")]
    tables = [] if mix == "xml" else list(TABLES) if mix == "all" else mix.split("+")
    for table in tables:
        paths.append(str(folder / f"{DB}-{DATE}-{table}.sql.gz"))
        if table == "categorylinks":
            paths.append(str(folder / f"{DB}-{DATE}-linktarget.sql.gz"))
    return paths


# -- measurement ------------------------------------------------------------------------------


def tree_bytes(path: Path) -> int:
    """Bytes of the files under `path` now (files vanishing while walked are skipped)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
        except OSError:
            pass
    return total


def measure_build(cmd: list[str], log: Path, watch: dict[str, Path]) -> dict:
    """Run `cmd`; wall, CPU and peak RSS by benchmarks/run.py `measure`, plus peak bytes under `watch`."""
    peaks = {name: 0 for name in watch} | {"disk": 0}
    rss_trace = []

    def poll(rss: int, seconds: float) -> None:
        if len(rss_trace) % 3 == 0:  # a folder walk costs more than /proc: every third poll
            sizes = {name: tree_bytes(path) for name, path in watch.items()}
            for name, size in sizes.items():
                peaks[name] = max(peaks[name], size)
            peaks["disk"] = max(peaks["disk"], sum(sizes.values()))
        rss_trace.append((round(seconds, 1), round(rss / 1e6)))

    run = measure("build", cmd, log, on_poll=poll, polls_pss=False)
    return {
        "wall_s": round(run.wall_s, 1),
        "cpu_s": round(run.cpu_s, 1),
        "peak_rss_mb": round(run.peak_rss_mb),
        "peak_temp_mb": round(peaks.get("temp", 0) / 1e6, 1),
        "peak_out_mb": round(peaks.get("out", 0) / 1e6, 1),
        "peak_disk_mb": round(peaks["disk"] / 1e6, 1),
        "others_busy_pct": round(run.others_busy_pct),
        # RSS over time, one point a second (where in the run the peak is)
        "rss_trace": rss_trace[:: max(1, int(1 / POLL_SECONDS))],
    }


def run_one(pages: int, mix: str, workers: int, corpus: Path, work: Path, extra: list[str]) -> dict:
    info = generate(pages, corpus / f"scale-{pages}")
    name = f"{pages}-{mix.replace('+', '_')}-w{workers}"
    out, temp = work / name / "out", work / name / "tmp"
    shutil.rmtree(work / name, ignore_errors=True)
    temp.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "wikisnap.pipelines.cli", "build",
        *inputs_of(corpus / f"scale-{pages}", mix),
        "--out", str(out), "--workers", str(workers), "--temp-location", str(temp), "--date", DATE,
        "--progress-seconds", "30", *extra,
    ]  # fmt: skip
    print(f"[{time.strftime('%H:%M:%S')}] {name} …", file=sys.stderr, flush=True)
    result = measure_build(cmd, work / name / "build.log", {"temp": temp, "out": out})
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"][DB]
    if counts.get("records/ns0/written") != info["articles"]:
        raise SystemExit(
            f"{name}: wrote {counts.get('records/ns0/written')} articles, the corpus has {info['articles']}"
        )
    outputs = manifest["outputs"]
    result |= {
        "pages": pages,
        "mix": mix,
        "workers": workers,
        "articles": info["articles"],
        "input_mb": round(sum(Path(p).stat().st_size for p in inputs_of(corpus / f"scale-{pages}", mix)) / 1e6, 1),
        "output_mb": round(sum(o["bytes"] for o in outputs) / 1e6, 1),
        "redirects_attached": counts.get("redirects_attached", 0),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "extra": extra,
    }
    print(
        f"  wall {result['wall_s']} s, CPU {result['cpu_s']} s, RSS {result['peak_rss_mb']} MB, "
        f"temp {result['peak_temp_mb']} MB, out {result['output_mb']} MB",
        file=sys.stderr,
        flush=True,
    )
    shutil.rmtree(work / name, ignore_errors=True)
    return result


# -- report -----------------------------------------------------------------------------------


def load(results: Path) -> dict[str, dict]:
    return json.loads(results.read_text()) if results.exists() else {}


def key_of(r: dict) -> str:
    extra = " ".join(r.get("extra") or [])
    code = f"|{r['code']}" if r.get("code") else ""
    return f"{r['pages']}|{r['mix']}|w{r['workers']}" + (f"|{extra}" if extra else "") + code


def markdown(rows: dict[str, dict], corpora: dict[int, dict]) -> str:
    lines = [
        "# Scale: peak memory, temp disk and time against pages (`benchmarks/scale.py`)",
        "",
        "Generated by `python benchmarks/scale.py` (see its docstring for the corpus). One `wikisnap build` "
        "process tree per row, run alone on a shared 2-core machine (others busy = other processes' CPU in "
        "the second before the run; wall times are noisy, RSS is not). Peak RSS = largest polled sum over "
        "the tree (0.2 s) or wait4's maxrss; temp = peak bytes under --temp-location; disk = peak of temp + "
        "output folder (staging included); output = published files. KB/page = growth of peak RSS per page "
        "against the row of the same mix with the next smaller size.",
        "",
        "## Corpora",
        "",
        "| pages | articles | redirects | max page id | XML MB | bz2 MB | SQL rows (gz MB) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for pages, c in sorted(corpora.items()):
        sql = ", ".join(f"{t} {n:,} ({c['sql_gz_mb'][t]})" for t, n in c["rows"].items())
        lines.append(
            f"| {pages:,} | {c['articles']:,} | {c['redirects']:,} | {c['max_page_id']:,} | {c['xml_mb']:,} | "
            f"{c['bz2_mb']:,} | {sql} |"
        )
    lines += [
        "",
        "## Results",
        "",
        "| code | pages | mix | workers | wall s | CPU s | peak RSS MB | KB/page | peak temp MB | temp / output | peak disk MB | output MB | others busy |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r.get("code", ""),
            MIXES.index(r["mix"]) if r["mix"] in MIXES else 99,
            r["mix"],
            r["workers"],
            r["pages"],
        ),
    )
    previous: dict[tuple, dict] = {}
    for r in ordered:
        group = (r.get("code", ""), r["mix"], r["workers"], tuple(r.get("extra") or []))
        before = previous.get(group)
        slope = ""
        if before:
            slope = f"{(r['peak_rss_mb'] - before['peak_rss_mb']) * 1e3 / (r['pages'] - before['pages']):.2f}"
        previous[group] = r
        extra = f" {' '.join(r['extra'])}" if r.get("extra") else ""
        lines.append(
            f"| {r.get('code', '')} | {r['pages']:,} | {r['mix']}{extra} | {r['workers']} | {r['wall_s']} | {r['cpu_s']} | "
            f"{r['peak_rss_mb']:,} | {slope} | {r['peak_temp_mb']:,} | {r['peak_temp_mb'] / max(r['output_mb'], 0.1):.2f} | "
            f"{r['peak_disk_mb']:,} | {r['output_mb']:,} | {r['others_busy_pct']}% |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups: dict[str, list[dict]] = {}
    for r in rows.values():
        if not r.get("extra"):
            code = f"{r['code']}: " if r.get("code") else ""
            groups.setdefault(f"{code}{r['mix']} (w{r['workers']})", []).append(r)
    for label, rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["pages"])
        xs = [r["pages"] for r in rs]
        ax1.plot(xs, [r["peak_rss_mb"] for r in rs], marker="o", label=label)
        style = "--" if label.startswith("before") else "-"
        ax1.lines[-1].set_linestyle(style)
        ax2.plot(
            xs, [r["peak_temp_mb"] / max(r["output_mb"], 0.1) for r in rs], marker="o", linestyle=style, label=label
        )
    ax2.axhline(1.5, color="grey", linewidth=0.8)  # the goal: temp disk at most 1.5x the output
    for ax, title in ((ax1, "peak RSS of the process tree, MB"), (ax2, "peak temp disk / output size")):
        ax.set_xscale("log")
        ax.set_xlabel("pages (40% articles, 60% redirects)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="pages per corpus, comma-separated")
    parser.add_argument(
        "--mixes", default="xml,all", help=f"comma-separated; each one of {', '.join(MIXES)} or tables joined by +"
    )
    parser.add_argument("--workers", default="1", help="comma-separated worker counts")
    parser.add_argument("--corpus-dir", type=Path, default=HERE / "corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikisnap-scale"))
    parser.add_argument("--results", type=Path, default=HERE / "scale.json")
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--code", default="", help="a label for this code's rows (e.g. before/after a change)")
    parser.add_argument("--report-only", action="store_true", help="rewrite SCALE.md and scale.png from scale.json")
    args, extra = parser.parse_known_args(argv)  # anything else goes to `wikisnap build`
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.report_only:
        compile_like_pip()
        for pages in sizes:
            info = generate(pages, args.corpus_dir / f"scale-{pages}")
            print(f"corpus {pages:,}: {info}", file=sys.stderr)
        if not args.generate_only:
            for pages in sizes:
                for mix in args.mixes.split(","):
                    for workers in (int(w) for w in args.workers.split(",")):
                        result = run_one(pages, mix, workers, args.corpus_dir, args.work, extra)
                        if args.code:
                            result["code"] = args.code
                        rows = load(args.results)  # re-read: several invocations may share it
                        rows[key_of(result)] = result
                        args.results.write_text(json.dumps(rows, indent=1))
    rows = load(args.results)
    if rows:
        corpora = {}
        for pages in sorted({r["pages"] for r in rows.values()}):
            done = args.corpus_dir / f"scale-{pages}" / "done.json"
            if done.exists():
                corpora[pages] = json.loads(done.read_text())
        md = markdown(rows, corpora)
        notes = HERE / "SCALE.md"
        old = notes.read_text() if notes.exists() else ""
        # hand-written sections (any `## ` heading after the generated Corpora and Results) stay
        heads = [m.start() for m in re.finditer(r"\n## (?!Corpora\n|Results\n)", old)]
        kept = old[heads[0] :] if heads else ""
        notes.write_text(md + kept)
        plot(rows, HERE / "scale.png")
        shutil.copyfile(HERE / "scale.png", HERE.parent / "docs" / "scale.png")  # the performance page shows it
        print(md)
    info = machine()
    print(
        ", ".join(f"{k}: {v}" for k, v in info.items() if k in ("nproc", "cpu", "memory", "apache-beam")),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
