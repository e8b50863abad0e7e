"""What a command is asked to do, and the flags more than one command shares.

`BuildConfig` holds one build: what to build (inputs, namespaces, formats, enrichment) and how to
run it (workers, temp, lock, progress, Beam's own arguments). The value parsers and shared flag
definitions live here once, so every command that takes an option gives it one name, one meaning
and one help text.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from wikisnap.transforms.formats.dumprun import DEFAULT_MIRROR, SQL_JOBS

DEFAULT_NAMESPACES = (0, 6, 10, 14)
FORMATS = ("ndjson", "parquet")  # the default; "text" (plain-text Parquet) is asked for
# "structured": WME's Structured Contents from Parsoid HTML (schemas/structured.py)
KNOWN_FORMATS = (*FORMATS, "text", "structured")
DEFAULT_TEXT_NAMESPACES = (0,)
SQL_TABLES = tuple(SQL_JOBS.values())  # the SQL tables of a dump run that enrich the records


@dataclass(kw_only=True)
class RunOptions:
    """How to run a job, never what it writes: the same inputs give the same bytes whatever these are.

    Both commands that run a pipeline (`BuildConfig`, `UpdateConfig`) are RunOptions plus what they
    are asked to build; the engine, the temp folder and the lock read only these fields.
    """

    workers: int = 1  # local worker processes
    bz2_threads: int = 0  # 0: the cores left to each local worker (1 on other runners)
    temp_location: str | None = None  # spill runs and member parts; default OUT/.wikisnap/tmp/RUN
    keep_temp: bool = False
    break_lock: bool = False  # take over the lock of a run that is known dead
    shared_temp: bool = False  # the temp folder, though a local path, is seen by every worker
    progress_seconds: float = 10.0
    beam_args: list[str] = field(default_factory=list)  # Beam's own options, passed on


@dataclass
class BuildConfig(RunOptions):
    """What one build is asked to write (its how-to-run fields come from `RunOptions`)."""

    inputs: list[str]
    out: str
    namespaces: tuple[int, ...] = DEFAULT_NAMESPACES
    date: str | None = None
    formats: tuple[str, ...] = FORMATS
    member_size_mb: float = 100.0
    gzip_level: int = 3
    bucket_span: int = 1_000_000
    spill_mb: int = 16
    max_page_bytes: int = 32 << 20
    allow_truncated: bool = False
    fail_on_dead_letters: bool = False
    siteinfo_from: str | None = None
    index: str | None = None
    unit_mb: float = 64.0
    checksums: list[str] = field(default_factory=list)
    allow_unverified: bool = False  # inputs --checksums does not list are read unverified
    dump_run: str | None = None
    mirror: str = DEFAULT_MIRROR
    force: bool = False
    index_for: dict[str, str] = field(default_factory=dict)  # dump → its index (from a dump run)
    expected_checksums: dict[str, dict[str, str]] = field(default_factory=dict)  # file name → digests
    # SQL enrichment (EnrichFromSql): table dumps split off `inputs` by `run()`, how their
    # categories combine with the wikitext ones (None: both when categorylinks is given), QID map.
    sql_inputs: list[str] = field(default_factory=list)
    categories: str | None = None
    qid_map: str | None = None
    # WME records and Parsoid HTML (transforms/records.py), split off `inputs` by `run()`.
    record_inputs: list = field(default_factory=list)
    wme_records: str = "complete"  # or "as-is": no field derived from a record's own HTML
    text_namespaces: tuple[int, ...] = DEFAULT_TEXT_NAMESPACES  # `--formats text`: which get text
    enrichment: tuple[str, ...] = SQL_TABLES  # `--dump-run`: the SQL tables of the run to read


# -- command line --------------------------------------------------------------------------


def parse_namespaces(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--namespaces takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("--namespaces needs at least one namespace")
    return values


def parse_formats(text: str) -> tuple[str, ...]:
    values = tuple(sorted({part.strip() for part in text.split(",") if part.strip()}))
    unknown = [v for v in values if v not in KNOWN_FORMATS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"--formats takes a list of {', '.join(KNOWN_FORMATS)}, got {text!r}")
    return values


def parse_yyyymmdd(text: str, flag: str = "--run-date") -> str:
    """A calendar date written YYYYMMDD (it names folders, so nothing else gets through)."""
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{flag} takes YYYYMMDD, got {text!r}")
    try:
        time.strptime(text, "%Y%m%d")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} {text!r} is not a calendar date") from None
    return text


def parse_date(text: str) -> str:
    """`--date`: YYYYMMDD, 1970 or later.

    Refused before 1970 rather than supported: the date is also every tar member's mtime, which
    tar counts in seconds from 1970 and cannot hold earlier (clamping it would make the tarball
    say 1970 and its metadata say 1900), and no wiki has a snapshot from before 2001, so such a
    date is a typo (19000101 for 20000101) that must stop the run, not be written.
    """
    parse_yyyymmdd(text, "--date")
    if text < "19700101":
        raise argparse.ArgumentTypeError(
            f"--date {text} is before 1970-01-01: a tar member's mtime cannot hold it (and no wiki is that old)"
        )
    return text


def parse_enrichment(text: str) -> tuple[str, ...]:
    """`--enrichment page_props,categorylinks` → those tables (in SQL_TABLES order); `none` or
    nothing (`enrichment = []` in sync, `enrichment=[]` in Python) → ()."""
    values = {part.strip() for part in text.split(",") if part.strip()}
    if values <= {"none"}:
        return ()
    unknown = sorted(values - set(SQL_TABLES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"--enrichment takes a list of {', '.join(SQL_TABLES)} (or none), got {text!r}"
        )
    return tuple(t for t in SQL_TABLES if t in values)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 1, got {value}")
    return value


# -- flags shared by commands: one name, one meaning, one help text -------------------------

SHARED_FLAGS: dict[str, dict] = {
    "--out": dict(
        required=True,
        metavar="DIR",
        help="output folder (local path or fsspec URL); written in full and published only when sound "
        "(an update's must differ from its --base)",
    ),
    "--formats": dict(
        type=parse_formats,
        default=FORMATS,
        metavar="ndjson,parquet",
        help="outputs to write: ndjson (WME tarball + metadata), parquet (typed records), text (plain-text "
        "Parquet id,url,title,text,qid,date_modified,license under OUT/text/; alone it skips the "
        "WME records and reads only --text-namespaces), structured (WME's Structured Contents from Parsoid "
        "HTML: infoboxes, sections, description from page_props.sql; NDJSON tarball, metadata and Parquet "
        "under OUT/structured-snapshots/; pages without HTML are counted; update rewrites them for a base "
        "built with them, it cannot add them to one built without). "
        "Default: build ndjson,parquet; update the base's. "
        "Fields from Parsoid HTML, when an HTML input or a WME record's own article_body.html gives it: "
        "article_body.html (the HTML as given, also a Parquet column), categories (every "
        "mw:PageProp/Category link: hidden and template-added ones too), templates (data-mw transclusions "
        "of the page), abstract (WME's GetAbstract rules on the lead section); they replace the "
        "wikitext-derived ones",
    ),
    "--allow-truncated": dict(
        action="store_true",
        help="keep the complete part of a truncated or corrupt input (its whole pages, or a diff's whole "
        "lines) and publish, instead of failing the run; a damaged update --base always fails it",
    ),
    "--siteinfo-from": dict(
        action="append",
        default=[],
        metavar="DUMP",
        help="a dump whose <siteinfo> (namespaces, language, base URL) stands for inputs that have none: "
        "build takes one, for hand-made excerpts; update one per wiki of its base (default there: the XML "
        "diffs' own siteinfo, else a minimal one from the base records)",
    ),
    "--enrichment": dict(
        type=parse_enrichment,
        default=SQL_TABLES,
        metavar="TABLES",
        help=f"with a dump run: which of its SQL tables to read ({','.join(SQL_TABLES)}, or none); "
        "enwiki's categorylinks alone is tens of GB. Default: all of them (sync: the run is built once "
        "their jobs are done)",
    ),
    "--date": dict(
        type=parse_date,
        default=None,
        metavar="YYYYMMDD",
        help="snapshot date written to the metadata's date_modified and the tar members' mtime "
        "(default: the newest revision time in each snapshot, so reruns give the same bytes)",
    ),
    "--workers": dict(
        type=positive_int,
        default=1,
        metavar="N",
        help="local worker processes (Beam multi_processing; 1 = in-process). Ignored by remote runners.",
    ),
    "--text-namespaces": dict(
        type=parse_namespaces,
        default=DEFAULT_TEXT_NAMESPACES,
        metavar="0",
        help="with --formats text: the namespaces that get plain text (default 0, articles); with "
        "--formats text alone only these are read, otherwise they must be among --namespaces",
    ),
    "--max-page-bytes": dict(
        type=positive_int,
        default=32 << 20,
        metavar="N",
        help="pages with more characters of text are dead-lettered, not parsed (default 33554432)",
    ),
    "--temp-location": dict(
        metavar="DIR",
        default=None,
        help="where spill runs and member parts go (default: OUT/.wikisnap/tmp, or Beam's --temp_location); "
        "must be reachable by every worker (a bucket URL on a cluster)",
    ),
    "--json": dict(
        action="store_true",
        help="print the result (outputs with md5s, counts, dead letters, timings, manifest path) as one JSON "
        "document on stdout, the same as the Python API's Result.to_dict(); logs and errors stay on stderr",
    ),
    "--keep-temp": dict(action="store_true", help="keep the temp folder after the run"),
    "--fail-on-dead-letters": dict(
        action="store_true",
        help="fail the run (exit 2, nothing published) when any page or line became a dead letter; "
        "for scheduled runs that must not publish partial data",
    ),
    "--shared-temp": dict(
        action="store_true",
        help="the temp folder is a local path that every worker of a non-local runner sees (a network "
        "mount, or a cluster whose workers all run on this machine)",
    ),
    "--break-lock": dict(
        action="store_true",
        help="take over the output folder's lock even if its holder cannot be shown dead (object stores, "
        "another host); only when you know that run is gone",
    ),
}
# the flags of every command that runs a pipeline into an output folder (build, update)
RUN_FLAGS = ("--temp-location", "--keep-temp", "--fail-on-dead-letters", "--shared-temp", "--break-lock")


def add_shared_flags(parser: argparse.ArgumentParser, *names: str, **defaults) -> None:
    """Add the shared flags `names` to `parser`; `defaults` (by dest, e.g. text_namespaces=None)
    changes a default where a command's own default means the same (update: "the base's")."""
    for name in names:
        spec = dict(SHARED_FLAGS[name])
        dest = name[2:].replace("-", "_")
        if dest in defaults:
            spec["default"] = defaults[dest]
        parser.add_argument(name, **spec)


# `--runner` values (lowercased) that mean the local engine (engine.py); no `--runner` means it too
LOCAL_RUNNER_NAMES = ("", "direct", "directrunner", "fnapirunner")


def flag_value(args: list[str], name: str) -> str | None:
    """The value of flag `name` in `args` (`--name VALUE` or `--name=VALUE`), None if absent."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None
