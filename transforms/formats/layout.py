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
    manifest.json                              the commit record, written last (`MANIFEST`)
    .wikisnap/                                 control: lock, commit journal, staging/{run}, tmp/{run}

A run's temp folder (`--temp-location`, default `.wikisnap/tmp/{run}`):

    spill/{db}/{ns}/{bucket}/{prefix}-{seq}.run   sorted runs of parsed records
    html/...                                   the same for Parsoid HTML bodies
    joins/{step}/{partition}/{prefix}-{seq}.run   a spilled join's sorted keyed runs
    items/{kind}/{db}/{ns}/{bucket}/...        per-page join results sorted by page id
    parts/{sid}/{bucket}-{index}-{attempt}.*   member parts before assembly
    progress/{unit}.json                       readers' progress, for the overall ETA
    attempts/{step}/{name}/{attempt}           one marker per attempt of a unit of work
    report.pickle                              the run's counters and reports, for the manifest
"""

from __future__ import annotations

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
HF_STRUCTURED = "structured"  # `publish --layout hf`: structured/{db}/train-*.parquet
# folders and files of OUT that wikisnap writes and may replace or remove (all but the control)
OWNED_FOLDERS = (PARQUET, DEADLETTER, BATCHES, TEXT, STRUCTURED)
OWNED_FILE = re.compile(r"^[a-z0-9_]+_namespace_-?\d+\.(tar\.gz|json)$")
# how people are told the names (help texts and messages)
SNAPSHOT_PATTERN = "{db}_namespace_{ns}"
_SID_INFIX = "_namespace_"
_TAR = ".tar.gz"
_JSON = ".json"


def snapshot_id(dbname: str, ns: int) -> str:
    """`{db}_namespace_{ns}`: the stem of every file of one (wiki, namespace) snapshot."""
    return f"{dbname}{_SID_INFIX}{ns}"


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


def shard_dir(root: str, kind: str, sid: str) -> str:
    """`{root}/parquet/{sid}` or `{root}/text/{sid}`: the folder of one snapshot's shards."""
    return join(root, kind, sid)


def shard_path(root: str, kind: str, sid: str, n: int) -> str:
    """The n-th shard of one snapshot, `kind` PARQUET, TEXT or STRUCTURED_PARQUET."""
    return join(root, kind, sid, f"{sid}_{n}.parquet")


def structured_paths(root: str, dbname: str, ns: int) -> tuple[str, str]:
    """(tarball, metadata) of one Structured Contents snapshot, named as WME names them."""
    return join(root, STRUCTURED, tarball_name(dbname, ns)), join(root, STRUCTURED, metadata_name(dbname, ns))


def deadletter_path(root: str, dbname: str) -> str:
    return join(root, DEADLETTER, f"{dbname}_deadletters.ndjson")


def batch_paths(root: str, hour: str, sid: str) -> tuple[str, str]:
    """(tarball, metadata) of one hourly batch; `hour` is `YYYY-MM-DD/HH`."""
    return join(root, BATCHES, hour, sid + _TAR), join(root, BATCHES, hour, sid + _JSON)


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


def html_spill_dir(temp_dir: str) -> str:
    """The spill folder of Parsoid HTML bodies (laid out as `spill_run_path` below it)."""
    return join(temp_dir, "html")


def spill_run_path(temp_dir: str, dbname: str, ns: int, bucket: int, prefix: str, sequence: int) -> str:
    """One sorted spill run of one (db, ns, bucket), the `sequence`-th of a unit (`prefix`)."""
    return join(temp_dir, "spill", dbname, str(ns), f"{bucket:06d}", f"{prefix}-{sequence:05d}.run")


def join_run_path(temp_dir: str, join: str, partition: int, prefix: str, sequence: int) -> str:
    """One sorted run of a spilled join (`join`: its step name) for one key partition."""
    return join_path(temp_dir, "joins", join, f"{partition:04d}", f"{prefix}-{sequence:05d}.run")


def bucket_items_dir(temp_dir: str, kind: str) -> str:
    """The spill folder of per-page items (`kind`: redirects, enrichments) sorted by page id per bucket."""
    return join_path(temp_dir, "items", kind)


def part_base(temp_dir: str, sid: str, name: str) -> str:
    """The stem of one member part (`.ndjson.gz`, `.parquet`, `.text.parquet` are added to it)."""
    return join(temp_dir, "parts", sid, name)


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
