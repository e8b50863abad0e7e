"""Dump-run discovery: one run folder of a Wikimedia dumps mirror → the files to read and their checksums.

A run folder (`…/enwiki/20241101/`, local or on an HTTP(S) mirror) holds `dumpstatus.json`, which
lists every job with its status and files (size, md5, sha1), and `{db}-{date}-md5sums.txt` /
`sha1sums.txt`. `plan_dump_run` picks the best pages-articles layout present — multistream parts
with their indexes, else the recombined multistream file with its index, else split parts, else
the single file — plus the SQL tables the enrichment reads, and refuses a run whose chosen jobs
are not `done` unless forced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field

import fsspec

DEFAULT_MIRROR = "https://dumps.wikimedia.org"

# Jobs of a WMF dump run, best first, and what their file names look like.
_XML_LAYOUTS = (
    ("articlesmultistreamdump", "multistream parts with indexes"),
    ("articlesmultistreamdumprecombine", "multistream file with its index"),
    ("articlesdump", "split parts"),
    ("articlesdumprecombine", "one file"),
)
SQL_JOBS = {
    "pagetable": "page",
    "pagepropstable": "page_props",
    "redirecttable": "redirect",
    "categorylinkstable": "categorylinks",
    "linktargettable": "linktarget",
    "pagerestrictionstable": "page_restrictions",
}
_INDEX = re.compile(r"-multistream-index\d*\.txt")


class DumpRunError(Exception):
    """A dump run that cannot be used as asked; the message says why and what to do."""


@dataclass
class DumpRunPlan:
    """What to read from one dump run."""

    run_url: str
    layout: str
    xml: list[str]
    indexes: dict[str, str] = field(default_factory=dict)  # xml url → its index url
    sql: list[str] = field(default_factory=list)
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)  # file name → {"md5"|"sha1": hex}
    not_done: list[str] = field(default_factory=list)


def resolve_run(run: str, mirror: str = DEFAULT_MIRROR) -> str:
    """`enwiki/20241101` → `{mirror}/enwiki/20241101`; URLs and existing local folders as they are."""
    if "://" in run or run.startswith("/") or run.startswith("."):
        return run.rstrip("/")
    fs, path = fsspec.core.url_to_fs(run)
    if fs.exists(path):
        return run.rstrip("/")
    return f"{mirror.rstrip('/')}/{run.strip('/')}"


def read_text(url: str) -> str | None:
    """A small text file of a dump run or mirror (status, checksums) as text; None when absent."""
    try:
        with fsspec.open(url, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None


def parse_sums(text: str) -> dict[str, str]:
    """`digest  name` lines → {name: digest}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def plan_dump_run(
    run: str,
    *,
    mirror: str = DEFAULT_MIRROR,
    force: bool = False,
    with_sql: bool = True,
    tables: Collection[str] | None = None,
) -> DumpRunPlan:
    """Read a run's `dumpstatus.json` (and checksum files) and choose what to read: the best XML
    layout, and with `with_sql` the SQL tables of SQL_JOBS (only `tables`, by table name, if given)."""
    run_url = resolve_run(run, mirror)
    try:
        text = read_text(f"{run_url}/dumpstatus.json")
    except Exception as exc:  # noqa: BLE001 - network and filesystem errors alike
        raise DumpRunError(f"{run_url}/dumpstatus.json: cannot be read: {exc}") from None
    if text is None:
        raise DumpRunError(f"{run_url}: no dumpstatus.json — is this a dump run folder (…/enwiki/20241101)?")
    try:
        jobs = json.loads(text)["jobs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DumpRunError(f"{run_url}/dumpstatus.json: not a dump status file ({exc})") from None

    chosen = None
    for job, layout in _XML_LAYOUTS:
        files = (jobs.get(job) or {}).get("files") or {}
        names = sorted(files)
        xml = [n for n in names if ".xml" in n and not _INDEX.search(n)]
        if not xml:
            continue
        indexes = {n: _index_for(n, names) for n in xml} if "multistream" in job else {}
        if "multistream" in job and not all(indexes.values()):
            continue  # multistream without every index is no better than plain parts
        if job == "articlesdump" and len(xml) == 1 and (jobs.get("articlesdumprecombine") or {}).get("files"):
            continue  # one "part" is the whole file; the recombined job says the same
        chosen = (job, layout, xml, indexes)
        break
    if chosen is None:
        raise DumpRunError(f"{run_url}: dumpstatus.json lists no pages-articles files")
    job, layout, xml, indexes = chosen
    plan = DumpRunPlan(run_url=run_url, layout=layout, xml=[f"{run_url}/{n}" for n in xml])
    plan.indexes = {f"{run_url}/{n}": f"{run_url}/{i}" for n, i in indexes.items()}
    used_jobs = [job]
    if with_sql:
        for sql_job, table in SQL_JOBS.items():
            if tables is not None and table not in tables:
                continue  # not asked for (--enrichment): neither read nor waited for
            files = (jobs.get(sql_job) or {}).get("files") or {}
            if files and (jobs[sql_job].get("status") == "done" or force):
                plan.sql += [f"{run_url}/{n}" for n in sorted(files)]
                used_jobs.append(sql_job)
    for name in used_jobs:
        status = (jobs.get(name) or {}).get("status")
        if status != "done":
            plan.not_done.append(f"{name}: {status}")
        for file_name, meta in ((jobs.get(name) or {}).get("files") or {}).items():
            digests = {k: str(meta[k]).lower() for k in ("md5", "sha1") if meta.get(k)}
            if digests:
                plan.checksums[file_name] = digests
    # Older runs list no digests in dumpstatus.json: the md5sums/sha1sums files have them.
    prefix = xml[0].split("-pages-articles")[0]
    for kind in ("md5", "sha1"):
        sums = read_text(f"{run_url}/{prefix}-{kind}sums.txt")
        for name, digest in parse_sums(sums or "").items():
            plan.checksums.setdefault(name, {}).setdefault(kind, digest)
    if plan.not_done and not force:
        raise DumpRunError(
            f"{run_url}: the run is not finished ({'; '.join(plan.not_done)}); its files may be partial. "
            "Wait for the run, pick an earlier one, or pass --force."
        )
    return plan


def _index_for(xml_name: str, names: list[str]) -> str | None:
    """The index file that belongs to a multistream file of the same run."""
    match = re.match(r"^(.*-multistream)(\d*)\.xml(-p\d+p\d+)?\.bz2$", xml_name)
    if not match:
        return None
    stem, number, pages = match.group(1), match.group(2), match.group(3) or ""
    wanted = f"{stem}-index{number}.txt{pages}.bz2"
    return wanted if wanted in names else None
