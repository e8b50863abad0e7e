"""`wikisnap sync --config FILE`: keep snapshots current from a dumps mirror, one unattended step at a time.

One invocation does, per wiki, what is due and exits (cron, systemd timers and Airflow call it):

    1. finish what a killed invocation left: a snapshot committed but not in the ledger is
       adopted, a snapshot not yet published to every target is published
    2. the newest dump run `{mirror}/{db}/{YYYYMMDD}/` whose needed jobs are all `done` in its
       dumpstatus.json, if newer than the last full snapshot: `build` it (checksums verified while
       read) into `WORK/{db}/snapshots/{YYYYMMDD}/` and publish it
    3. each daily adds-changes dump `{mirror}/other/incr/{db}/{YYYYMMDD}/` newer than the current
       snapshot, in date order, stopping at the first day whose `status.txt` is not `done`:
       download it (md5 checked against its md5sums file), `update` the current snapshot into
       `WORK/{db}/snapshots/{FULL}-incr-{YYYYMMDD}/` (new snapshot + hourly batches), publish it
    4. prune snapshots beyond `keep`, write the run report (JSON + HTML)

Every step commits before the next begins: snapshots through the output folders' own protocol
(pipelines/commit.py: staged, verified, manifest last), the ledger `WORK/{db}/ledger.json` by an
atomic rename, mirror runs with dumpstatus.json last (pipelines/publish.py). So a kill at any
point is repaired by the next invocation: a committed step is never redone, none is skipped.
Orchestration only: build and update run in-process through their `run(config)` functions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field

import fsspec

from wikisnap import faults
from wikisnap.pipelines.commit import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_LOCKED,
    EnvironmentFailure,
    FileLock,
    LockHeld,
    OutputError,
    environment_message,
    holder_info,
    json_bytes,
    write_atomically,
)
from wikisnap.pipelines.errors import WikisnapError
from wikisnap.pipelines.inputs import InputUnreachable
from wikisnap.pipelines.syncconfig import SyncConfig, Target
from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.counters import modern_counts
from wikisnap.transforms.formats.dumpfiles import connection_failure
from wikisnap.transforms.formats.dumprun import SQL_JOBS, DumpRunError, parse_sums, plan_dump_run, read_text
from wikisnap.transforms.formats.fs import file_md5

log = logging.getLogger("wikisnap")

# Exit codes for schedulers (docs/scheduled.md).
EXIT_DONE = 0  # something new was built or applied, and published
EXIT_FAILURE = EXIT_ENVIRONMENT  # 1: the machine stopped the run, or it crashed
EXIT_BAD = EXIT_BAD_INPUT  # 2: bad config, or upstream files that fail their checksums
EXIT_NOT_READY = 69  # sysexits' EX_UNAVAILABLE: the next input exists upstream but is not complete yet
EXIT_LOCK = EXIT_LOCKED  # 75: another sync holds the work folder (EX_TEMPFAIL)
EXIT_NOTHING = 99  # nothing new upstream (Airflow's BashOperator marks 99 as "skipped")

LEDGER = "ledger.json"
LOCK = ".sync.lock"
_DATE = re.compile(r"(?:^|/)(\d{8})/?$")


class UpstreamError(WikisnapError):
    """An upstream file that must not be used: a wrong checksum, a missing file (exit 2)."""


# -- the lock ------------------------------------------------------------------------------------------------


class SyncLock:
    """`WORK/.sync.lock` for the whole invocation: commit.FileLock, as the output folders use."""

    def __init__(self, work: str):
        self.path = os.path.join(work, LOCK)
        self._lock = FileLock(self.path, holder_info("sync"))

    def __enter__(self) -> SyncLock:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._lock.acquire(
                held=f"another sync holds {os.path.dirname(self.path)}: {{holder}}; this one stops here",
                stale="taking over the sync lock of {holder}, which is gone",
            )
        except OSError as exc:
            raise EnvironmentFailure(environment_message(exc, self.path, "cannot write to the work folder")) from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


# -- the ledger ----------------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What was built from which inputs and published where, for one wiki: `WORK/{db}/ledger.json`.

    `snapshots` is in the order they were made; the last is the current snapshot, the base of the
    next update. `published[target key][snapshot id]` says where each went. Saved atomically
    (temp file, fsync, rename) after every committed step.
    """

    path: str
    db: str
    snapshots: list[dict] = field(default_factory=list)
    published: dict[str, dict[str, dict]] = field(default_factory=dict)

    @classmethod
    def load(cls, work: str, db: str) -> Ledger:
        path = os.path.join(work, db, LEDGER)
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read())
        except FileNotFoundError:
            return cls(path=path, db=db)
        except ValueError as exc:
            raise EnvironmentFailure(f"{path}: the ledger is not valid JSON ({exc}); restore it or remove it") from None
        return cls(path=path, db=db, snapshots=data.get("snapshots", []), published=data.get("published", {}))

    def save(self) -> None:
        data = {"wiki": self.db, "version": 1, "snapshots": self.snapshots, "published": self.published}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        write_atomically(fsspec.filesystem("file"), self.path, json_bytes(data, indent=1), self.path + ".partial")

    def head(self) -> dict | None:
        return self.snapshots[-1] if self.snapshots else None

    def last_full(self) -> dict | None:
        return next((s for s in reversed(self.snapshots) if s["kind"] == "full"), None)

    def find(self, sid: str) -> dict | None:
        return next((s for s in self.snapshots if s["id"] == sid), None)


# -- upstream ------------------------------------------------------------------------------------------------


def _fs(url: str):
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def list_dates(url: str) -> list[str]:
    """The YYYYMMDD sub-folders of a mirror folder (a local folder or an HTTP directory listing), oldest first."""
    fs, path = _fs(url)
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    dates = set()
    for name in names:
        match = _DATE.search(str(name).rstrip("/") + "/")
        if match:
            dates.add(match.group(1))
    return sorted(dates)


@dataclass
class FullRun:
    date: str
    url: str
    xml: list[str]
    sql: list[str]
    indexes: dict[str, str]
    checksums: dict[str, dict[str, str]]
    layout: str


def full_run_state(config: SyncConfig, db: str, date: str) -> tuple[FullRun | None, str]:
    """A dump run ready to build (every job it needs `done`), or None and why not."""
    url = f"{config.mirror}/{db}/{date}"
    text = read_text(f"{url}/dumpstatus.json")
    if text is None:
        return None, f"{url}: no dumpstatus.json yet"
    try:
        jobs = json.loads(text)["jobs"]
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"{url}/dumpstatus.json: not a dump status file ({exc})"
    wanted_jobs = [job for job, table in SQL_JOBS.items() if table in config.enrichment and job in jobs]
    waiting = [f"{job}: {jobs[job].get('status')}" for job in wanted_jobs if jobs[job].get("status") != "done"]
    if waiting:
        return None, f"{url}: jobs not done ({'; '.join(waiting)})"
    try:
        plan = plan_dump_run(url, with_sql=bool(config.enrichment))
    except DumpRunError as exc:
        return None, str(exc)
    tables = {
        f"{url}/{name}"
        for job, table in SQL_JOBS.items()
        if table in config.enrichment
        for name in ((jobs.get(job) or {}).get("files") or {})
    }
    sql = [s for s in plan.sql if s in tables]
    return FullRun(date, url, plan.xml, sql, plan.indexes, plan.checksums, plan.layout), ""


@dataclass
class IncrDay:
    date: str
    url: str
    file: str  # name of the adds-changes dump
    md5: str
    maxrevid: str


def incr_state(config: SyncConfig, db: str, date: str) -> tuple[IncrDay | None, str]:
    """An incremental day whose folder says it is complete, or None and why not."""
    url = f"{config.incr}/{db}/{date}"
    status = (read_text(f"{url}/status.txt") or "").strip()
    if status.split(":", 1)[0] != "done":
        return None, f"{url}: status.txt says {status or 'nothing'!r}, not done"
    name = f"{db}-{date}-pages-meta-hist-incr.xml.bz2"
    sums_text = read_text(f"{url}/md5sums.txt") or read_text(f"{url}/{db}-{date}-md5sums.txt")
    if sums_text is None:
        return None, f"{url}: no md5sums.txt yet"
    md5 = parse_sums(sums_text).get(name)
    if not md5:
        raise UpstreamError(f"{url}: md5sums.txt lists no {name}, although status.txt says done")
    maxrevid = (read_text(f"{url}/maxrevid.txt") or "").strip()
    if not maxrevid:
        return None, f"{url}: no maxrevid.txt yet"
    return IncrDay(date, url, name, md5, maxrevid), ""


def download_verified(url: str, dest: str, md5: str) -> int:
    """Copy `url` to `dest` (appearing whole, by rename) if its md5 is `md5`; the byte count.

    UpstreamError when the bytes do not match: nothing is kept. A copy already at `dest` with the
    right md5 is kept (a sync killed after the download).
    """
    if os.path.exists(dest) and file_md5(dest)[0] == md5:
        return os.path.getsize(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    temp = dest + ".partial"
    digest, size = hashlib.md5(), 0
    with fsspec.open(url, "rb") as src, open(temp, "wb") as out:
        while chunk := src.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != md5:
        os.unlink(temp)
        raise UpstreamError(
            f"{url}: checksum mismatch: md5sums says {md5}, read {digest.hexdigest()} ({size:,} bytes); "
            "the mirror's copy is damaged or still being written, so nothing was applied"
        )
    os.replace(temp, dest)
    return size


# -- steps ---------------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One thing an invocation did, for the report."""

    wiki: str
    kind: str  # build | update | publish | adopt | prune
    target: str
    started: float
    seconds: float = 0.0
    status: str = "ok"
    detail: str = ""
    input_bytes: int = 0
    output_bytes: int = 0
    records: int = 0
    counts: dict = field(default_factory=dict)
    namespaces: dict = field(default_factory=dict)  # ns → {records, bytes}

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        d["started_epoch"] = round(self.started, 3)
        d["bytes_per_second"] = round(self.input_bytes / self.seconds) if self.seconds else None
        d["mb_per_second"] = round(self.input_bytes / 1e6 / self.seconds, 3) if self.seconds else None
        d["records_per_second"] = round(self.records / self.seconds, 1) if self.seconds else None
        return d


def snapshot_folder(config: SyncConfig, db: str, sid: str) -> str:
    return os.path.join(config.work, db, "snapshots", sid)


def committed_manifest(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, layout.MANIFEST), "rb") as f:
            manifest = json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    if manifest.get("tool", {}).get("name") != "wikisnap" or os.path.exists(
        layout.control_path(folder, layout.JOURNAL)
    ):
        return None
    return manifest


def ledger_entry(
    kind: str, sid: str, date: str, folder: str, manifest: dict, base: str | None, inputs: list[dict]
) -> dict:
    """What the ledger keeps of a committed snapshot: its inputs with checksums, its outputs in short."""
    with open(os.path.join(folder, layout.MANIFEST), "rb") as f:
        manifest_md5 = hashlib.md5(f.read()).hexdigest()
    namespaces: dict[str, dict] = {}
    for o in manifest.get("outputs", []):
        if o["kind"] == "tarball":
            namespaces[str(o["ns"])] = {"records": o.get("records", 0), "bytes": o["bytes"], "md5": o["md5"]}
    counts = next(iter(manifest.get("counts", {}).values()), {})
    return {
        "id": sid,
        "kind": kind,
        "date": date,
        "folder": folder,
        "base": base,
        "inputs": inputs,
        "manifest_md5": manifest_md5,
        "namespaces": namespaces,
        # the plain counters, records written per namespace and the skipped changes (an earlier
        # version's manifest read in today's names)
        "counts": {
            k: v
            for k, v in modern_counts(counts).items()
            if "/" not in k or k.startswith("skipped/") or (k.startswith("records/") and k.endswith("/written"))
        },
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def published_manifest(manifest: dict, entry: dict, ledger: Ledger) -> dict:
    """The snapshot's manifest as published: provenance that depends only on the inputs.

    The run id, timings and work-folder paths are local facts (the ledger and the run report keep
    them); upstream URLs and checksums replace them, so a sync killed and resumed publishes the
    same bytes as one that ran straight through.
    """
    out = {k: v for k, v in manifest.items() if k not in ("run", "timing")}
    if entry["kind"] == "incr":
        base = ledger.find(entry["base"]) or {}
        out["base"] = {
            "snapshot": entry["base"],
            "date": base.get("date"),
            "tarball_md5": {ns: n["md5"] for ns, n in base.get("namespaces", {}).items()},
        }
        out["diffs"] = [{"url": i["url"], "md5": i["md5"], "bytes": i["bytes"], "kind": "xml"} for i in entry["inputs"]]
    return out


class WikiSync:
    """The steps of one wiki in one invocation; `run()` returns the wiki's outcome code."""

    def __init__(self, config: SyncConfig, db: str, steps: list[Step]):
        self.config, self.db, self.steps = config, db, steps
        self.ledger = Ledger.load(config.work, db)
        self.did_work = False
        self.not_ready: list[str] = []

    # - the loop -

    def run(self) -> int:
        self.publish_pending()
        self.sync_full()
        if self.ledger.head() is not None:
            self.sync_incrementals()
        self.prune()
        if self.did_work:
            return EXIT_DONE
        if self.not_ready:
            return EXIT_NOT_READY
        return EXIT_NOTHING

    def sync_full(self) -> None:
        dates = list_dates(f"{self.config.mirror}/{self.db}")
        last = self.ledger.last_full()
        if not dates and last is None:
            raise UpstreamError(f"{self.config.mirror}/{self.db}/: no dump runs of {self.db} on the mirror")
        for date in reversed(dates):
            if last is not None and date <= last["date"]:
                return
            run, why = full_run_state(self.config, self.db, date)
            if run is None:
                log.info("%s: dump run %s is not ready: %s", self.db, date, why)
                if last is None:
                    # Nothing to build on yet; with a snapshot, a full run in progress (for days)
                    # is not worth a retry: the incremental days keep the snapshot current meanwhile.
                    self.not_ready.append(why)
                continue
            self.build_full(run)
            return

    def sync_incrementals(self) -> None:
        for date in list_dates(f"{self.config.incr}/{self.db}"):
            head = self.ledger.head()
            if date <= head["date"]:
                continue
            day, why = incr_state(self.config, self.db, date)
            if day is None:
                log.info("%s: incremental %s is not complete; left for a later sync: %s", self.db, date, why)
                self.not_ready.append(why)
                return  # in date order: nothing after an incomplete day
            self.apply_incr(day, head)

    # - building -

    def build_full(self, run: FullRun) -> None:
        from wikisnap.pipelines.build import run as build_run
        from wikisnap.pipelines.options import BuildConfig

        sid = run.date
        folder = snapshot_folder(self.config, self.db, sid)
        step = Step(self.db, "build", sid, time.time())
        inputs = [
            {
                "url": u,
                "md5": run.checksums.get(u.rsplit("/", 1)[-1], {}).get("md5", ""),
                "sha1": run.checksums.get(u.rsplit("/", 1)[-1], {}).get("sha1", ""),
            }
            for u in [*run.xml, *run.sql]
        ]
        manifest = committed_manifest(folder)
        if manifest is not None and manifest.get("command") == "build" and manifest["options"].get("date") == sid:
            step.kind, step.detail = "adopt", "committed by a sync that was stopped before its ledger entry"
            log.warning("%s: snapshot %s was committed by an interrupted sync; recording it", self.db, sid)
        else:
            log.info("%s: building dump run %s (%s, %d file(s))", self.db, run.url, run.layout, len(inputs))
            manifest = build_run(
                BuildConfig(
                    inputs=[*run.xml, *run.sql],
                    out=folder,
                    namespaces=self.config.namespaces,
                    date=run.date,
                    workers=self.config.workers,
                    formats=self.config.formats,
                    member_size_mb=self.config.member_size_mb,
                    gzip_level=self.config.gzip_level,
                    index_for=dict(run.indexes),
                    expected_checksums=dict(run.checksums),
                    temp_location=self.config.temp_location,
                    progress_seconds=60.0,
                    beam_args=list(self.config.beam_args),
                    categories=self.config.categories,
                    fail_on_dead_letters=self.config.fail_on_dead_letters,
                    max_page_bytes=self.config.max_page_bytes,
                    allow_truncated=self.config.allow_truncated,
                )
            )
        for i in manifest.get("inputs", []):
            for entry in inputs:
                if entry["url"] == i["path"]:
                    entry["bytes"] = i.get("bytes", 0)
                    entry["verified"] = i.get("verified", False)
        step.input_bytes = sum(i.get("bytes", 0) for i in manifest.get("inputs", []))
        faults.point(f"sync:committed:{self.db}:{sid}")
        self.record(ledger_entry("full", sid, run.date, folder, manifest, None, inputs), manifest, step)

    def apply_incr(self, day: IncrDay, head: dict) -> None:
        from wikisnap.pipelines.update import UpdateConfig
        from wikisnap.pipelines.update import run as update_run

        full = head["id"].split("-incr-")[0]
        sid = f"{full}-incr-{day.date}"
        folder = snapshot_folder(self.config, self.db, sid)
        step = Step(self.db, "update", sid, time.time())
        local = os.path.join(self.config.work, self.db, "incr", day.date, day.file)
        size = download_verified(f"{day.url}/{day.file}", local, day.md5)
        inputs = [
            {"url": f"{day.url}/{day.file}", "md5": day.md5, "bytes": size, "maxrevid": day.maxrevid, "path": local}
        ]
        manifest = committed_manifest(folder)
        if manifest is not None and manifest.get("command") == "update" and manifest.get("base") == head["folder"]:
            step.kind, step.detail = "adopt", "committed by a sync that was stopped before its ledger entry"
            log.warning("%s: snapshot %s was committed by an interrupted sync; recording it", self.db, sid)
        else:
            log.info("%s: applying incremental %s to %s", self.db, day.date, head["id"])
            manifest = update_run(
                UpdateConfig(
                    base=head["folder"],
                    diffs=[local],
                    out=folder,
                    date=day.date,
                    workers=self.config.workers,
                    temp_location=self.config.temp_location,
                    beam_args=list(self.config.beam_args),
                    fail_on_dead_letters=self.config.fail_on_dead_letters,
                    max_page_bytes=self.config.max_page_bytes,
                    allow_truncated=self.config.allow_truncated,
                )
            )
        step.input_bytes = size
        faults.point(f"sync:committed:{self.db}:{sid}")
        self.record(ledger_entry("incr", sid, day.date, folder, manifest, head["id"], inputs), manifest, step)

    def record(self, entry: dict, manifest: dict, step: Step) -> None:
        """Ledger first (the step is done), then publish the new snapshot everywhere."""
        self.ledger.snapshots.append(entry)
        self.ledger.save()
        step.seconds = time.time() - step.started
        step.namespaces = entry["namespaces"]
        step.records = sum(n["records"] for n in entry["namespaces"].values())
        step.output_bytes = sum(o["bytes"] for o in manifest.get("outputs", []))
        step.counts = entry["counts"]
        self.steps.append(step)
        self.did_work = True
        print(
            f"{self.db}: {'built' if entry['kind'] == 'full' else 'applied'} {entry['id']}: "
            f"{step.records:,} records, {step.output_bytes / 1e6:.2f} MB in {step.seconds:.1f} s"
        )
        self.publish_snapshot(entry)

    # - publishing -

    def publish_pending(self) -> None:
        """Snapshots of the ledger that a killed sync did not publish everywhere (oldest first)."""
        for entry in self.ledger.snapshots:
            if entry.get("removed"):
                continue
            if any(entry["id"] not in self.ledger.published.get(t.key(self.db), {}) for t in self.config.publish):
                log.warning("%s: finishing the publication of %s, interrupted earlier", self.db, entry["id"])
                self.publish_snapshot(entry)

    def publish_snapshot(self, entry: dict) -> None:
        from wikisnap.pipelines.publish import PublishConfig, publish_mirror
        from wikisnap.pipelines.snapshot import load_snapshot

        snapshot = None
        for target in self.config.publish:
            key = target.key(self.db)
            done = self.ledger.published.setdefault(key, {})
            if entry["id"] in done:
                continue
            if snapshot is None:
                snapshot = load_snapshot(entry["folder"])  # every file checked against its manifest
                snapshot.manifest = published_manifest(snapshot.manifest, entry, self.ledger)
            step = Step(self.db, "publish", f"{entry['id']} → {target.layout}:{target.url(self.db)}", time.time())
            config = PublishConfig(
                snapshot=entry["folder"],
                to=target.url(self.db),
                layout=target.layout,
                run_date=entry["date"],
                keep=target.keep,
                shard_mb=target.shard_mb,
            )
            if target.layout == "mirror":
                taken = [sid for sid, p in done.items() if p.get("run") == f"runs/{entry['date']}"]
                if taken:
                    # A full run replaced a chain that had already published this date; runs are immutable.
                    done[entry["id"]] = {"skipped": f"runs/{entry['date']} was published from {taken[0]}"}
                    self.ledger.save()
                    log.info("%s: runs/%s already published from %s; not republished", self.db, entry["date"], taken[0])
                    continue
                batches = self.publish_batches(entry, target)
                result = publish_mirror(snapshot, config)
                done[entry["id"]] = {
                    "run": result.run,
                    "copied": len(result.copied),
                    "batches": batches,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                step.detail = f"{result.run}: {len(result.copied)} copied, {len(result.skipped)} already there"
                if result.pruned:
                    step.detail += f"; removed {', '.join(result.pruned)}"
            else:
                from wikisnap.pipelines.hfdataset import publish_hf

                step.detail = publish_hf(snapshot, config).replace("\n", "; ")  # one line in the log and report
                done[entry["id"]] = {
                    "dataset": target.url(self.db),
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            self.ledger.save()
            step.seconds = time.time() - step.started
            step.output_bytes = sum(f.bytes for f in snapshot.files if f.kind in ("tarball", "batch"))
            step.input_bytes = step.output_bytes
            self.steps.append(step)
            self.did_work = True
            print(f"{self.db}: published {entry['id']} to {target.url(self.db)} ({step.detail})")

    def publish_batches(self, entry: dict, target: Target) -> int:
        """An update's hourly batches → `DEST/runs/{date}/batches/…` before the run's dumpstatus.json."""
        from wikisnap.pipelines.destinations import destination_for

        with open(os.path.join(entry["folder"], layout.MANIFEST), "rb") as f:
            outputs = [o for o in json.loads(f.read()).get("outputs", []) if o["kind"] == "batch"]
        if not outputs:
            return 0
        dest = destination_for(target.url(self.db))
        run = f"runs/{entry['date']}"
        for o in sorted(outputs, key=lambda o: o["path"]):
            local = os.path.join(entry["folder"], o["path"])
            if not dest.same(local, f"{run}/{o['path']}", o["md5"]):
                dest.put(local, f"{run}/{o['path']}")
        sums = "".join(
            f"{o['md5']}  {o['path'][len('batches/') :]}\n" for o in sorted(outputs, key=lambda o: o["path"])
        )
        dest.write_bytes(f"{run}/{layout.BATCHES}/md5sums.txt", sums.encode("utf-8"))
        return len(outputs)

    # - pruning -

    def prune(self) -> None:
        """Snapshot folders beyond `keep` (oldest first; never the current one or one not yet published)."""
        live = [s for s in self.ledger.snapshots if not s.get("removed")]
        for entry in live[: max(len(live) - self.config.keep_snapshots, 0)]:
            if any(entry["id"] not in self.ledger.published.get(t.key(self.db), {}) for t in self.config.publish):
                continue
            shutil.rmtree(entry["folder"], ignore_errors=True)
            incr = os.path.join(self.config.work, self.db, "incr", entry["date"])
            if entry["kind"] == "incr":
                shutil.rmtree(incr, ignore_errors=True)
            entry["removed"] = True
            self.ledger.save()
            self.steps.append(Step(self.db, "prune", entry["id"], time.time(), detail=f"removed {entry['folder']}"))
            log.info("%s: removed snapshot %s (keep_snapshots = %d)", self.db, entry["id"], self.config.keep_snapshots)


# -- the invocation ------------------------------------------------------------------------------------------


def combine(codes: list[int]) -> int:
    """One exit code for all wikis: a failure wins, then bad input, then done, not ready, nothing."""
    for code in (EXIT_FAILURE, EXIT_BAD, EXIT_DONE, EXIT_NOT_READY):
        if code in codes:
            return code
    return EXIT_NOTHING


def run(config: SyncConfig) -> tuple[int, dict]:
    """Sync every wiki of `config` under the work folder's lock; (exit code, report). LockHeld propagates."""
    from wikisnap.pipelines.errors import RunFailed, UsageError
    from wikisnap.pipelines.launch import describe_failure
    from wikisnap.pipelines.snapshot import PublishError

    started = time.time()
    steps: list[Step] = []
    wikis: dict[str, dict] = {}
    with SyncLock(config.work):
        for db in config.wikis:
            t0 = time.time()
            message, unreached = "", False
            try:
                sync = WikiSync(config, db, steps)
                code = sync.run()
                message = "; ".join(sync.not_ready)
            except (UpstreamError, UsageError, RunFailed, OutputError, DumpRunError, PublishError) as exc:
                code, message = EXIT_BAD, str(exc)
            except LockHeld as exc:  # a snapshot folder held by a build run by hand
                code, message = EXIT_FAILURE, str(exc)
            except InputUnreachable as exc:  # a dump file's server: not ready for us, retry
                code, message, unreached = EXIT_NOT_READY, str(exc), True
            except EnvironmentFailure as exc:
                code, message = EXIT_FAILURE, str(exc)
            except Exception as exc:  # noqa: BLE001 - one line per wiki, the traceback with -v
                if log.isEnabledFor(logging.DEBUG):
                    log.exception("%s: sync failed", db)
                code, message = EXIT_FAILURE, describe_failure(exc)
                unreachable = connection_failure(exc)
                if unreachable:  # the mirror did not answer: upstream not ready, retry later
                    code, unreached = EXIT_NOT_READY, True
                    message = f"could not connect to the mirror {config.mirror} ({unreachable}); try again later"
            ledger = Ledger.load(config.work, db)
            wikis[db] = {
                "outcome": OUTCOMES[code],
                "code": code,
                "message": message,
                "seconds": round(time.time() - t0, 3),
                "current": (ledger.head() or {}).get("id"),
                "snapshots": ledger.snapshots,
            }
            if code in (EXIT_BAD, EXIT_FAILURE) or unreached:
                print(f"wikisnap sync: {db}: error: {message}", file=sys.stderr)
                steps.append(Step(db, "failed", OUTCOMES[code], t0, time.time() - t0, "failed", message))
    code = combine([w["code"] for w in wikis.values()])
    report = {
        "tool": "wikisnap sync",
        "config": config.path,
        "work": config.work,
        "mirror": config.mirror,
        "id": time.strftime("%Y%m%dT%H%M%S", time.gmtime(started)) + f"{started % 1:.3f}"[1:] + "Z",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "outcome": OUTCOMES[code],
        "exit_code": code,
        "wikis": wikis,
        "steps": [s.as_dict() for s in steps],
    }
    return code, report


OUTCOMES = {
    EXIT_DONE: "done",
    EXIT_NOTHING: "nothing to do",
    EXIT_NOT_READY: "upstream not ready",
    EXIT_BAD: "bad config or input",
    EXIT_FAILURE: "failure",
    EXIT_LOCK: "lock held",
}


def add_sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="the sync config (TOML; see configs/sync.example.toml)"
    )
    parser.add_argument(
        "--no-report", action="store_true", help="write no run report (JSON + HTML) for this invocation"
    )
