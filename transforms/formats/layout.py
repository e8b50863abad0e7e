"""Where every file of a run lies: the snapshot's own names and folders, the run's temp and control.

The one module that spells an output or temp path. Every other module asks it, so a name that
comes from data (a db name, a namespace) becomes a path in exactly one place, where it can be
checked (`tests/test_layout.py` fails on a path literal anywhere else).

An output folder (`--out`):

    {db}_namespace_{ns}.tar.gz                 NDJSON members (`tarball_name`)
    {db}_namespace_{ns}.json                   its metadata (`metadata_name`)
    parquet/{db}_namespace_{ns}/{sid}_{n}.parquet   typed records (`shard_path`)
    text/{db}_namespace_{ns}/{sid}_{n}.parquet      plain text (`--formats text`)
    deadletter/{db}_deadletters.ndjson         what could not become records (`deadletter_path`)
    structured-snapshots/{sid}.tar.gz, .json   Structured Contents NDJSON + metadata (`--formats structured`;
                                               WME's own store: structured-snapshots/{identifier}.tar.gz)
    structured-snapshots/parquet/{sid}/{sid}_{n}.parquet   typed Structured Contents (`shard_path`)
    batches/{YYYY-MM-DD}/{HH}/{sid}.tar.gz     an update's hourly batches (`batch_paths`)
    schemas/{name}.schema.json                 JSON Schema of each kind of file written (`schema_path`)
    manifest.json                              the commit record, written last (`MANIFEST`)
    .wikisnap/                                 control: lock, commit journal, staging/{run}, tmp/{run}

A run's temp folder (`--temp-location`, default `.wikisnap/tmp/{run}`):

    spill/{db}/{ns}/{bucket}/{prefix}-{seq}.run   sorted runs of parsed records
    html/...                                   the same for Parsoid HTML bodies
    joins/{step}/{partition}/{prefix}-{seq}.run   a spilled join's sorted keyed runs
    …/merged{level}-{attempt}-{first run}      runs merged in groups before a wide merge
    items/{kind}/{db}/{ns}/{bucket}/...        per-page join results sorted by page id
    parts/{sid}/{bucket}-{index}-{attempt}.*   member parts before assembly
    progress/{unit}.json                       readers' progress, for the overall ETA
    progress/write/{sid}-{bucket}.json         bucket writers' progress, for the write phase's ETA
    attempts/{step}/{name}/{attempt}           one marker per attempt of a unit of work
    report.pickle                              the run's counters and reports, for the manifest
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid

from wikisnap.transforms.formats.fs import fs_for, join, write_bytes

join_path = join  # `join` is also a common parameter name below

# -- the snapshot -------------------------------------------------------------------------

MANIFEST = "manifest.json"
PARQUET = "parquet"  # kind and folder of the typed record shards
TEXT = "text"  # kind and folder of the plain-text shards
DEADLETTER = "deadletter"
BATCHES = "batches"
# `--formats structured`: the folder WME's API serves structured snapshots from, and its shards' kind
STRUCTURED = "structured-snapshots"
STRUCTURED_PARQUET = STRUCTURED + "/" + PARQUET
HF_DATA = "data"  # `publish --layout hf`: data/{db}/namespace_{ns}/train-*.parquet
HF_STRUCTURED = "structured"  # `publish --layout hf`: structured/{db}/train-*.parquet
HF_GITIGNORE = ".gitignore"  # `publish --layout hf`: keeps the control folder out of a `git push`
# the JSON Schema of each kind of file written (schemas/files.py NAMES), in a snapshot and an HF folder
SCHEMAS = "schemas"
_SCHEMA_SUFFIX = ".schema.json"
# folders and files of OUT that wikisnap writes and may replace or remove (all but the control)
OWNED_FOLDERS = (PARQUET, DEADLETTER, BATCHES, TEXT, STRUCTURED, SCHEMAS)
OWNED_FILE = re.compile(r"^[a-z0-9_]+_namespace_-?\d+\.(tar\.gz|json)$")
# how people are told the names (help texts and messages)
SNAPSHOT_PATTERN = "{db}_namespace_{ns}"
_SID_INFIX = "_namespace_"
_TAR = ".tar.gz"
_JSON = ".json"


# -- names from the data, and the roots every path must stay under -------------------------
#
# A db name comes from the data (an XML <siteinfo>, a WME record's `is_part_of.identifier`, an SQL
# file name, an event's wiki) and becomes part of paths. MediaWiki's own form is the rule: every
# Wikimedia wiki (the 1,025 of metawiki's sites table, the 900 of WME's projects) matches it, and
# nothing that matches it can climb out of a folder, name another folder or hide a control byte.

DBNAME = re.compile(r"[a-z][a-z0-9_]*")
DBNAME_MAX = 64
DBNAME_RULE = "a wiki db name is a-z, then a-z, 0-9 or _, at most 64 characters (enwiki, zh_min_nanwiki)"
_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}/\d{2}")


class UnsafeName(ValueError):
    """A name from the data that cannot become part of a path; the message shows it and the rule."""


class PathEscape(ValueError):
    """A path that would lie outside the folder it must be written under (a bug or hostile data)."""


def is_dbname(name: object) -> bool:
    """Whether `name` is a wiki db name in MediaWiki's form (`DBNAME`, at most `DBNAME_MAX`)."""
    return isinstance(name, str) and len(name) <= DBNAME_MAX and DBNAME.fullmatch(name) is not None


def check_dbname(name: object) -> str:
    """`name` itself when it is a wiki db name; UnsafeName showing the value and the rule otherwise."""
    if not is_dbname(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80]) + "…"
        raise UnsafeName(f"{shown} is not a wiki db name ({DBNAME_RULE})")
    return name  # type: ignore[return-value]


def _normal(path: str) -> str:
    """`path` with `.` and `..` resolved by its text (local paths made absolute; URLs keep their scheme)."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.abspath(path)


def within(root: str, path: str) -> str:
    """`path` itself after checking it lies under `root` (`..` resolved); PathEscape otherwise.

    Every path a run writes is built by this module under a root (`--out`, its staging, the temp
    folder), so a name from the data that slipped past `check_dbname` still cannot climb out.
    Lexical on purpose: a folder the user symlinked inside the root is theirs to point elsewhere.
    """
    if "\x00" in path:
        raise PathEscape(f"{path!r}: a path with a NUL byte")
    top, inner = _normal(root).rstrip("/"), _normal(path)
    if inner != top and not inner.startswith(top + "/"):
        raise PathEscape(f"{path!r} is not inside {root!r}")
    return path


def snapshot_id(dbname: str, ns: int) -> str:
    """`{db}_namespace_{ns}`: the stem of every file of one (wiki, namespace) snapshot.

    UnsafeName when `dbname` is not a wiki db name or `ns` not an integer (names become paths)."""
    if isinstance(ns, bool) or not isinstance(ns, int):
        raise UnsafeName(f"namespace {ns!r} is not an integer")
    return f"{check_dbname(dbname)}{_SID_INFIX}{ns}"


def parse_snapshot_id(name: str) -> tuple[str, int] | None:
    """(db, ns) of a `{db}_namespace_{ns}` stem or tarball/metadata name; None for any other name."""
    for suffix in (_TAR, _JSON):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    db, sep, ns_text = name.rpartition(_SID_INFIX)
    if not sep or not db or not ns_text.lstrip("-").isdigit():
        return None
    return db, int(ns_text)


def tarball_name(dbname: str, ns: int) -> str:
    return snapshot_id(dbname, ns) + _TAR


def metadata_name(dbname: str, ns: int) -> str:
    return snapshot_id(dbname, ns) + _JSON


def tarball_glob(root: str) -> str:
    """The glob of every snapshot tarball directly in `root`."""
    return f"{root}/*{_SID_INFIX}*{_TAR}"


def member_name(sid: str, n: int) -> str:
    """The name of the n-th NDJSON member inside a snapshot tarball."""
    return f"{sid}_{n}.ndjson"


def _check_sid(sid: str) -> str:
    parsed = parse_snapshot_id(sid)
    if parsed is None or snapshot_id(*parsed) != sid:
        raise UnsafeName(f"{sid!r} is not a snapshot name ({SNAPSHOT_PATTERN})")
    return sid


def shard_dir(root: str, kind: str, sid: str) -> str:
    """`{root}/parquet/{sid}` or `{root}/text/{sid}`: the folder of one snapshot's shards."""
    return within(root, join(root, kind, _check_sid(sid)))


def shard_path(root: str, kind: str, sid: str, n: int) -> str:
    """The n-th shard of one snapshot, `kind` PARQUET, TEXT or STRUCTURED_PARQUET."""
    return within(root, join(root, kind, _check_sid(sid), f"{sid}_{int(n)}.parquet"))


def structured_paths(root: str, dbname: str, ns: int) -> tuple[str, str]:
    """(tarball, metadata) of one Structured Contents snapshot, named as WME names them."""
    return (
        within(root, join(root, STRUCTURED, tarball_name(dbname, ns))),
        within(root, join(root, STRUCTURED, metadata_name(dbname, ns))),
    )


def schema_path(root: str, name: str) -> str:
    """`{root}/schemas/{name}.schema.json`: the JSON Schema of one kind of file (`name`: a-z only)."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z]+", name):
        raise UnsafeName(f"{name!r} is not a schema name (a-z)")
    return within(root, join(root, SCHEMAS, name + _SCHEMA_SUFFIX))


def deadletter_path(root: str, dbname: str) -> str:
    return within(root, join(root, DEADLETTER, f"{check_dbname(dbname)}_deadletters.ndjson"))


def batch_paths(root: str, hour: str, sid: str) -> tuple[str, str]:
    """(tarball, metadata) of one hourly batch; `hour` is `YYYY-MM-DD/HH` (UnsafeName otherwise)."""
    if not isinstance(hour, str) or not _HOUR.fullmatch(hour):
        raise UnsafeName(f"{hour!r} is not an hour folder (YYYY-MM-DD/HH)")
    _check_sid(sid)
    return within(root, join(root, BATCHES, hour, sid + _TAR)), within(root, join(root, BATCHES, hour, sid + _JSON))


# -- the control folder of an output (.wikisnap) ------------------------------------------

CONTROL = ".wikisnap"
JOURNAL = "commit.json"
LOCK = "lock"
STAGING = "staging"
TMP = "tmp"
PREVIOUS = "previous"
RUN_AREAS = (STAGING, TMP)  # per-run folders under the control folder
LEFTOVER_AREAS = (STAGING, TMP, PREVIOUS)  # what a dead run may leave behind


def control_path(root: str, *parts: str) -> str:
    """`{root}/.wikisnap/{parts…}` (root as the filesystem sees it)."""
    return "/".join([root, CONTROL, *parts])


# -- scratch folders in the system temp (publish) -------------------------------------------

_SCRATCH = re.compile(r"wikisnap-([a-z]+)-p(\d+)-")


def scratch_prefix(kind: str) -> str:
    """`wikisnap-{kind}-p{pid}-`: a scratch folder's name says which process may still use it."""
    return f"wikisnap-{kind}-p{os.getpid()}-"


def scratch_owner(name: str) -> int | None:
    """The pid in a scratch folder's name (`scratch_prefix`); None for any other name."""
    match = _SCRATCH.match(name)
    return int(match.group(2)) if match else None


# -- a run's temp folder -----------------------------------------------------------------

REPORT = "report.pickle"


def report_path(temp_dir: str) -> str:
    """Where the run's counters and reports are collected for the manifest."""
    return join(temp_dir, REPORT)


def progress_dir(temp_dir: str) -> str:
    """Where readers leave their progress files (`progress_path`) for the overall ETA."""
    return join(temp_dir, "progress")


def progress_path(temp_dir: str, unit: str) -> str:
    return join(progress_dir(temp_dir), f"{unit}.json")


def write_progress_dir(temp_dir: str) -> str:
    """Where bucket writers leave their progress files (`write_progress_path`) for the write ETA.

    A folder below the readers' files: `progress/*.json` stays the readers' alone."""
    return join(progress_dir(temp_dir), "write")


def write_progress_path(temp_dir: str, bucket: str) -> str:
    return join(write_progress_dir(temp_dir), f"{bucket}.json")


def html_spill_dir(temp_dir: str) -> str:
    """The spill folder of Parsoid HTML bodies (laid out as `spill_run_path` below it)."""
    return join(temp_dir, "html")


def spill_run_path(temp_dir: str, dbname: str, ns: int, bucket: int, prefix: str, sequence: int) -> str:
    """One sorted spill run of one (db, ns, bucket), the `sequence`-th of a unit (`prefix`)."""
    path = join(temp_dir, "spill", check_dbname(dbname), str(int(ns)), f"{bucket:06d}", f"{prefix}-{sequence:05d}.run")
    return within(temp_dir, path)


def join_run_path(temp_dir: str, join: str, partition: int, prefix: str, sequence: int) -> str:
    """One sorted run of a spilled join (`join`: its step name) for one key partition."""
    return join_path(temp_dir, "joins", join, f"{partition:04d}", f"{prefix}-{sequence:05d}.run")


def merged_run_path(first_run: str, level: int, attempt: str) -> str:
    """A run made by merging a group of runs whose first is `first_run`, beside it (`merge_runs`
    with more than its fan-in); `level`: how many merges its items went through."""
    folder, name = posixpath.split(first_run)
    return f"{folder}/merged{int(level)}-{attempt}-{name}"


def bucket_items_dir(temp_dir: str, kind: str) -> str:
    """The spill folder of per-page items (`kind`: redirects, enrichments) sorted by page id per bucket."""
    return join_path(temp_dir, "items", kind)


def part_base(temp_dir: str, sid: str, name: str) -> str:
    """The stem of one member part (`.ndjson.gz`, `.parquet`, `.text.parquet` are added to it)."""
    return within(temp_dir, join(temp_dir, "parts", _check_sid(sid), name))


# -- attempts ------------------------------------------------------------------------------
#
# Engines (Flink, Spark, Dataflow) retry a failed bundle and may run one twice at the same time.
# Every file a step writes outside Beam's data flow is therefore named per *attempt* (a random
# id drawn when the attempt starts), and downstream steps take exactly the files named in the
# elements they receive — those of the one attempt whose output the engine committed. Files of
# superseded attempts are left in the temp folder and go with it. Each attempt also leaves a
# marker, so the attempt that succeeds can count the attempts before it: Beam drops the metrics
# of failed bundles, but these markers survive them.


def new_attempt() -> str:
    """A fresh attempt id (8 hex digits) for one execution of one unit of work."""
    return uuid.uuid4().hex[:8]


def mark_attempt(temp_dir: str, step: str, name: str, attempt: str) -> None:
    """Leave `attempts/{step}/{name}/{attempt}` under the temp folder."""
    write_bytes(join(temp_dir, "attempts", step, name, attempt), b"")


def count_attempts(temp_dir: str, step: str, name: str) -> int:
    """How many attempts of (step, name) have started so far (markers left by `mark_attempt`)."""
    fs, p = fs_for(join(temp_dir, "attempts", step, name))
    return len(fs.ls(p, detail=False)) if fs.exists(p) else 0
