"""The sync config: a TOML file read into a checked `SyncConfig` (wikis, targets, schedule).

Every key is checked where it enters (name, type, allowed values): a bad file is a `ConfigError`
naming the key, before anything is read upstream.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from typing import Any

from wikisnap.pipelines.errors import WikisnapError
from wikisnap.transforms.formats.dumprun import SQL_JOBS
from wikisnap.transforms.formats.layout import is_dbname

SQL_TABLES = tuple(SQL_JOBS.values())  # the tables a dump run offers, by name


class ConfigError(WikisnapError):
    """The config file cannot be used; the message names the key (exit 2)."""


# -- config ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where every new snapshot is published (pipelines/publish.py)."""

    layout: str  # mirror | hf
    to: str  # may hold {db}
    keep: int | None = None
    shard_mb: float = 256.0

    def url(self, db: str) -> str:
        return self.to.replace("{db}", db)

    def key(self, db: str) -> str:
        return f"{self.layout}:{self.url(db)}"


@dataclass(frozen=True)
class SyncConfig:
    path: str
    mirror: str
    work: str
    wikis: tuple[str, ...]
    incr_mirror: str = ""
    namespaces: tuple[int, ...] = (0, 6, 10, 14)
    formats: tuple[str, ...] = ("ndjson", "parquet")
    enrichment: tuple[str, ...] = SQL_TABLES
    keep_snapshots: int = 3  # snapshot folders kept in `work` (publish's `keep` counts mirror runs)
    workers: int = 1
    member_size_mb: float = 100.0
    gzip_level: int = 3
    temp_location: str | None = None
    beam_args: tuple[str, ...] = ()
    publish: tuple[Target, ...] = ()
    # as build's flags of the same names (update takes the last three too)
    categories: str | None = None
    fail_on_dead_letters: bool = False
    max_page_bytes: int = 32 << 20
    allow_truncated: bool = False

    @property
    def incr(self) -> str:
        return (self.incr_mirror or f"{self.mirror.rstrip('/')}/other/incr").rstrip("/")


_TOP_KEYS = {
    "mirror": str,
    "incr_mirror": str,
    "work": str,
    "wikis": list,
    "namespaces": list,
    "formats": list,
    "enrichment": list,
    "keep_snapshots": int,
    "workers": int,
    "member_size_mb": (int, float),
    "gzip_level": int,
    "temp_location": str,
    "beam_args": list,
    "publish": list,
    "categories": str,
    "fail_on_dead_letters": bool,
    "max_page_bytes": int,
    "allow_truncated": bool,
}
# keys renamed to match the flags: their old name gets a message naming the new one
_RENAMED = {"keep": "keep_snapshots (a [[publish]] target's `keep` counts mirror runs)"}
_TARGET_KEYS = {"layout": str, "to": str, "keep": int, "shard_mb": (int, float)}


def _typed(where: str, key: str, value: Any, kind) -> Any:
    if kind is bool and isinstance(value, bool):
        return value
    if isinstance(value, bool) or not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where}: `{key}` must be a {names}, got {value!r}")
    return value


def _items(where: str, key: str, values: list, kind) -> list:
    for v in values:
        _typed(where, f"{key}` item `{v!r}", v, kind)
    return values


def load_config(path: str) -> SyncConfig:
    """Read and check a sync config (TOML); ConfigError names the file and the key at fault."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for key in raw:
        if key in _RENAMED:
            raise ConfigError(f"{path}: `{key}` is now `{_RENAMED[key]}`")
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: unknown key `{key}` (known: {', '.join(sorted(_TOP_KEYS))})")
        _typed(path, key, raw[key], _TOP_KEYS[key])
    for key in ("mirror", "work", "wikis"):
        if key not in raw:
            raise ConfigError(f"{path}: `{key}` is required")
    work = raw["work"]
    if "://" in work and not work.startswith("file://"):
        raise ConfigError(f"{path}: `work` must be a local folder (it holds the lock and the ledger), got {work!r}")
    work = work[len("file://") :] if work.startswith("file://") else work
    work = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(work)))
    mirror = raw["mirror"]
    if "://" not in mirror:
        mirror = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(mirror)))
    wikis = _items(path, "wikis", raw["wikis"], str)
    if not wikis:
        raise ConfigError(f"{path}: `wikis` lists no wiki")
    for db in wikis:
        if not is_dbname(db):  # MediaWiki's form (layout.DBNAME): it names folders of the work dir
            raise ConfigError(f"{path}: `wikis` item {db!r} is not a database name like enwiki or elwikivoyage")
    if len(set(wikis)) != len(wikis):
        raise ConfigError(f"{path}: `wikis` names a wiki twice")
    namespaces = tuple(sorted(set(_items(path, "namespaces", raw.get("namespaces", [0, 6, 10, 14]), int))))
    if not namespaces:
        raise ConfigError(f"{path}: `namespaces` lists no namespace")
    formats = tuple(sorted(set(_items(path, "formats", raw.get("formats", ["ndjson", "parquet"]), str))))
    bad = [f for f in formats if f not in ("ndjson", "parquet")]
    if bad or not formats:
        raise ConfigError(f"{path}: `formats` takes ndjson and/or parquet, got {raw.get('formats')!r}")
    enrichment = tuple(_items(path, "enrichment", raw.get("enrichment", list(SQL_TABLES)), str))
    bad = [t for t in enrichment if t not in SQL_TABLES]
    if bad:
        raise ConfigError(f"{path}: `enrichment` item {bad[0]!r} is not one of {', '.join(SQL_TABLES)}")
    if raw.get("categories", "wikitext") not in ("wikitext", "sql", "both"):
        raise ConfigError(f"{path}: `categories` must be wikitext, sql or both, got {raw['categories']!r}")
    for key, low, high in (
        ("keep_snapshots", 1, None),
        ("workers", 1, None),
        ("gzip_level", 1, 9),
        ("max_page_bytes", 1, None),
    ):
        if key in raw and (raw[key] < low or (high is not None and raw[key] > high)):
            raise ConfigError(
                f"{path}: `{key}` must be ≥ {low}" + (f" and ≤ {high}" if high else "") + f", got {raw[key]}"
            )
    if raw.get("member_size_mb", 1) <= 0:
        raise ConfigError(f"{path}: `member_size_mb` must be > 0")
    beam_args = tuple(_items(path, "beam_args", raw.get("beam_args", []), str))
    if any(a.startswith("--direct_running_mode") and "multi_threading" in a for a in beam_args):
        raise ConfigError(f"{path}: `beam_args`: multi_threading is refused; use `workers` (processes)")
    from wikisnap.pipelines.argv import beam_args_problem  # imports Beam: only for a config that has some

    problem = beam_args_problem(beam_args) if beam_args else None
    if problem:
        raise ConfigError(f"{path}: `beam_args`: {problem}")
    targets = []
    for i, entry in enumerate(raw.get("publish", [])):
        where = f"{path}: [[publish]] #{i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a table with `to` and `layout`")
        for key in entry:
            if key not in _TARGET_KEYS:
                raise ConfigError(f"{where}: unknown key `{key}` (known: {', '.join(sorted(_TARGET_KEYS))})")
            _typed(where, key, entry[key], _TARGET_KEYS[key])
        if "to" not in entry:
            raise ConfigError(f"{where}: `to` is required")
        layout = entry.get("layout", "hf" if entry["to"].startswith("hf://") else "mirror")
        if layout not in ("mirror", "hf"):
            raise ConfigError(f"{where}: `layout` must be mirror or hf, got {layout!r}")
        if layout == "mirror" and entry["to"].startswith("hf://"):
            raise ConfigError(f'{where}: hf:// destinations take layout = "hf"')
        if "shard_mb" in entry and layout != "hf":
            raise ConfigError(f"{where}: `shard_mb` is the largest Parquet shard of the hf layout (hf layout only)")
        if "keep" in entry and (layout != "mirror" or entry["keep"] < 1):
            raise ConfigError(f"{where}: `keep` is a number ≥ 1 of mirror runs to keep (mirror layout only)")
        if len(wikis) > 1 and "{db}" not in entry["to"] and layout == "hf":
            raise ConfigError(f"{where}: `to` must contain {{db}} when several wikis are synced (one dataset each)")
        to = entry["to"]
        if "://" not in to:
            to = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(to)))
        targets.append(Target(layout, to, entry.get("keep"), float(entry.get("shard_mb", 256.0))))
    return SyncConfig(
        path=path,
        mirror=mirror.rstrip("/"),
        incr_mirror=raw.get("incr_mirror", ""),
        work=work,
        wikis=tuple(wikis),
        namespaces=namespaces,
        formats=formats,
        enrichment=enrichment,
        keep_snapshots=raw.get("keep_snapshots", 3),
        categories=raw.get("categories"),
        fail_on_dead_letters=raw.get("fail_on_dead_letters", False),
        max_page_bytes=raw.get("max_page_bytes", 32 << 20),
        allow_truncated=raw.get("allow_truncated", False),
        workers=raw.get("workers", 1),
        member_size_mb=float(raw.get("member_size_mb", 100.0)),
        gzip_level=raw.get("gzip_level", 3),
        temp_location=raw.get("temp_location"),
        beam_args=beam_args,
        publish=tuple(targets),
    )
