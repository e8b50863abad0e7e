"""wikisnap's Python API: the engine of the command line, for Airflow, Dagster, notebooks and scripts.

    import wikisnap

    result = wikisnap.build(["enwiki-20241101-pages-articles.xml.bz2"], out="/data/enwiki", workers=4)
    result.outputs[0].md5, result.counts["enwiki"]["records/ns0/written"], result.manifest_path
    wikisnap.publish(result.folder, to="/srv/mirror/enterprise", keep=3)

Every function takes the flags of its command as keyword arguments (the same names, `_` for
`-`: `--max-page-bytes` is `max_page_bytes=`), checks them with the command line's own parsers
(so a value the CLI refuses is refused here, with the same message), runs the command's own code
and returns a frozen `Result`. `wikisnap COMMAND … --json` prints exactly `Result.to_dict()` as
one JSON document. Failures raise a `WikisnapError` subclass whose `exit_code` is the command
line's (2 bad input or usage, 1 environment or crash, 75 the output folder is locked); nothing
else escapes, a crash inside Beam included (`RunCrashed`, the original as `__cause__`).

Logging goes to the `wikisnap` logger (progress at INFO); the API configures no handler.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from wikisnap.pipelines.errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    RunCrashed,
    RunInterrupted,
    UsageError,
    WikisnapError,
)

log = logging.getLogger("wikisnap")

__all__ = [
    "Output",
    "Result",
    "WikisnapError",
    "VerifyFailed",
    "SyncFailed",
    "build",
    "update",
    "publish",
    "verify",
    "sync",
    "recover",
    "show",
]


# -- what a command returns ------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One file a command wrote, as its manifest lists it (`path` relative to `Result.folder`)."""

    path: str
    kind: str  # tarball, metadata, parquet, text, deadletter, batch, schema, hf …
    bytes: int
    md5: str
    records: int = 0
    dbname: str | None = None
    ns: int | None = None


@dataclass(frozen=True)
class Result:
    """What one command did.

    `folder`: the output folder (build, update, recover), the destination (publish), the folder
    checked (verify) or the work folder (sync). `manifest_path`: the manifest.json published
    with the outputs (build, update; None for the others). `counts`: per wiki, the run's counters.
    `dead_letters`: records or lines set aside (their files are among `outputs`, kind
    "deadletter"). `seconds`: wall time of the call; `timing`: the command's own measures.
    `message`: the lines the command line prints; `details`: what else the command reports
    (publish: run, copied, skipped, pruned; verify: files checked; sync: its run report).
    """

    command: str
    folder: str
    exit_code: int = 0
    outcome: str = "done"
    manifest_path: str | None = None
    outputs: tuple[Output, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    dead_letters: int = 0
    seconds: float = 0.0
    timing: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (what `--json` prints and Airflow's XCom can carry)."""
        return asdict(self)

    def to_json(self) -> str:
        """One JSON document, keys in a stable order."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        """The inverse of `to_dict` (a result passed between tasks as JSON)."""
        data = dict(data)
        data["outputs"] = tuple(Output(**o) for o in data.get("outputs", ()))
        return cls(**data)


class VerifyFailed(WikisnapError):
    """`verify` found files that do not match their checksums; `problems` lists them (exit 2)."""

    def __init__(self, folder: str, problems: list[str]):
        super().__init__(f"{folder}: {len(problems)} problem(s): " + "; ".join(problems))
        self.problems = problems


class SyncFailed(WikisnapError):
    """A sync step failed for at least one wiki (exit 1 or 2, as `exit_code`); `result` holds the
    run report, every wiki's outcome included."""

    def __init__(self, result: Result):
        failed = [f"{db}: {w['message']}" for db, w in result.details.get("wikis", {}).items() if w.get("message")]
        super().__init__("; ".join(failed) or result.outcome)
        self.exit_code = result.exit_code
        self.result = result


# -- checking keyword arguments with the command line's parsers --------------------------------


def _parser(command: str) -> argparse.ArgumentParser:
    """The command's argparse definition, the very one `wikisnap COMMAND --help` shows."""
    parser = argparse.ArgumentParser(prog=f"wikisnap {command}", add_help=False)
    if command == "build":
        from wikisnap.pipelines.build import add_build_arguments

        add_build_arguments(parser)
    elif command == "update":
        from wikisnap.pipelines.update import add_update_arguments

        add_update_arguments(parser)
    elif command == "publish":
        from wikisnap.pipelines.publish import add_publish_arguments

        add_publish_arguments(parser)
    return parser


def _flag(action: argparse.Action) -> str:
    return action.option_strings[0] if action.option_strings else action.metavar or action.dest


def _coerce(action: argparse.Action, value: Any) -> Any:
    """`value` as the command line would have parsed it: its type function, choices and form."""
    if value is None:
        if action.required:
            raise UsageError(f"{_flag(action)} is required")
        return None
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UsageError(f"{_flag(action)} takes True or False, got {value!r}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    if many:
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        return [_coerce_one(action, v) for v in values]
    if isinstance(value, (list, tuple, set, frozenset)) and action.type is not None:
        value = ",".join(str(v) for v in value)  # --namespaces 0,6 and namespaces=(0, 6) alike
    return _coerce_one(action, value)


def _coerce_one(action: argparse.Action, value: Any) -> Any:
    if isinstance(value, bool):
        raise UsageError(f"{_flag(action)} takes a value, not {value!r}")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if action.type is not None:
        try:
            value = action.type(str(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            text = str(exc)
            raise UsageError(text if text.startswith(_flag(action)) else f"{_flag(action)}: {text}") from None
    elif not isinstance(value, str):
        raise UsageError(f"{_flag(action)} takes a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise UsageError(f"{_flag(action)}: {value!r} is not one of {choices}")
    return value


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return type(value) is type(default) and value == default


def arguments(command: str, given: dict[str, Any]) -> argparse.Namespace:
    """The namespace the command line would parse for `given` (keyword arguments by dest):
    defaults for the rest, each value through the flag's own type and choices."""
    actions = {a.dest: a for a in _parser(command)._actions}
    args = argparse.Namespace(**{dest: a.default for dest, a in actions.items()})
    for dest, value in given.items():
        if dest not in actions:
            raise TypeError(f"wikisnap.{command}() got an unexpected keyword argument {dest!r}")
        if value is actions[dest].default or _same(value, actions[dest].default):
            continue  # the default as the parser holds it (some, like --bz2-threads 0, no flag could give)
        setattr(args, dest, _coerce(actions[dest], value))
    return args


# -- running a command -----------------------------------------------------------------------


def _guarded(command: str, folder: str | None, fn: Callable[[], Result]) -> Result:
    """Run `fn`; every failure leaves as a WikisnapError (a crash as RunCrashed, one line)."""
    try:
        return fn()
    except WikisnapError:
        raise
    except Exception as exc:  # a crash inside Beam or an OSError: one line, the original chained
        from wikisnap.pipelines.launch import describe_failure
        from wikisnap.transforms.formats import layout

        if isinstance(exc, layout.UnsafeName | layout.PathEscape):  # a name from the data refused as a path
            raise UsageError(str(exc)) from exc

        log.debug("wikisnap %s failed", command, exc_info=True)
        where = f"; {folder} is unchanged" if folder and command in ("build", "update") else ""
        raise RunCrashed(f"{describe_failure(exc)}{where}") from exc


def _outputs(manifest: dict) -> tuple[Output, ...]:
    fields = Output.__dataclass_fields__
    return tuple(Output(**{k: v for k, v in o.items() if k in fields}) for o in manifest.get("outputs", []))


def _interruptible(command: str, out: str, fn: Callable[[], dict]) -> tuple[dict, int | None]:
    """`_guarded(fn)` with SIGINT/SIGTERM turned into `RunInterrupted` (exit 130/143; the run's temp and
    staging removed on the way out). Returns the manifest and the signal that arrived while the
    run was publishing (it waited for the publish to finish), if one did."""
    import signal

    from wikisnap.pipelines.interrupts import Interrupted, interrupted, interruptible

    with interruptible() as received:
        try:
            manifest = _guarded(command, out, fn)
        except Interrupted as exc:
            raise interrupted(out, exc.signum) from None
        except KeyboardInterrupt:  # SIGINT while a caller's own handler ran (not the program's)
            raise interrupted(out, signal.SIGINT) from None
        except RunCrashed:
            if received:  # the signal's exception was raised inside a Beam bundle and wrapped by Beam
                raise interrupted(out, received[0]) from None
            raise
    return manifest, (received[0] if received else None)


def _run_result(
    command: str, out: str, manifest: dict, message: str, started: float, signum: int | None = None
) -> Result:
    from wikisnap.transforms.formats import layout

    details = {}
    if signum is not None:  # arrived while publishing: the publish was finished first
        import signal

        details["interrupted"] = (
            f"interrupted ({signal.Signals(signum).name}) while publishing; the publish was "
            f"finished first, so {out} holds this run's complete output"
        )

    outputs = _outputs(manifest)
    return Result(
        command=command,
        folder=out,
        manifest_path=os.path.join(out, layout.MANIFEST) if "://" not in out else f"{out}/{layout.MANIFEST}",
        outputs=outputs,
        counts=manifest.get("counts", {}),
        dead_letters=sum(o.records for o in outputs if o.kind == "deadletter"),
        seconds=round(time.time() - started, 3),
        timing=manifest.get("timing", {}),
        message=message,
        exit_code=0 if signum is None else 128 + signum,
        details=details,
    )


def build_from_args(args: argparse.Namespace, beam_args: Sequence[str] = ()) -> Result:
    """`wikisnap build` from its parsed arguments (the command line's entry; see `build`)."""
    from wikisnap.pipelines import build as job

    config = job.config_from_args(args, list(beam_args))
    if not config.inputs and not config.dump_run:
        raise UsageError("give INPUT dump files or --dump-run RUN")
    started = time.time()
    manifest, signum = _interruptible("build", config.out, lambda: job.run(config))
    return _run_result("build", config.out, manifest, job.summary(manifest), started, signum)


def update_from_args(args: argparse.Namespace, beam_args: Sequence[str] = ()) -> Result:
    """`wikisnap update` from its parsed arguments (see `update`)."""
    from wikisnap.pipelines import update as job

    config = job.config_from_args(args, list(beam_args))
    started = time.time()
    manifest, signum = _interruptible("update", config.out, lambda: job.run(config))
    return _run_result("update", config.out, manifest, job.summary(manifest), started, signum)


def publish_from_args(args: argparse.Namespace) -> Result:
    """`wikisnap publish` from its parsed arguments (see `publish`)."""
    from wikisnap.pipelines import publish as job
    from wikisnap.pipelines.destinations import DestinationError

    config = job.config_from_args(args)
    started = time.time()

    def run() -> dict:
        try:
            return job.run(config)
        except OSError as exc:  # the destination failed: what is wrong, and whether running again resumes
            raise DestinationError(job.destination_problem(exc, config.to), explained=True) from exc

    done = _guarded("publish", config.to, run)
    details = {k: v for k, v in done.items() if k not in ("message", "seconds")}
    return Result(
        command="publish",
        folder=config.to,
        outcome="dry run" if config.dry_run else "done",
        seconds=round(time.time() - started, 3),
        timing={"seconds": done["seconds"]},
        message=done["message"],
        details=details,
    )


# -- the API ---------------------------------------------------------------------------------


def build(
    inputs: Sequence[str | os.PathLike] = (),
    *,
    out: str | os.PathLike,
    namespaces: Sequence[int] | str = (0, 6, 10, 14),
    formats: Sequence[str] | str = ("ndjson", "parquet"),
    text_namespaces: Sequence[int] | str = (0,),
    member_size_mb: float = 100.0,
    gzip_level: int = 3,
    bz2_threads: int = 0,
    bucket_span: int = 1_000_000,
    spill_mb: int = 16,
    allow_truncated: bool = False,
    siteinfo_from: str | None = None,
    index: str | None = None,
    unit_mb: float = 64.0,
    checksums: Sequence[str] | None = None,
    allow_unverified: bool = False,
    dump_run: str | None = None,
    enrichment: Sequence[str] | str | None = None,
    mirror: str | None = None,
    force: bool = False,
    date: str | None = None,
    workers: int = 1,
    max_page_bytes: int = 32 << 20,
    temp_location: str | None = None,
    keep_temp: bool = False,
    fail_on_dead_letters: bool = False,
    shared_temp: bool = False,
    break_lock: bool = False,
    categories: str | None = None,
    qid_map: str | None = None,
    wme_records: str = "complete",
    progress_seconds: float = 10.0,
    beam_args: Sequence[str] = (),
) -> Result:
    """Build WME snapshots from dumps into `out`: `wikisnap build INPUT… --out OUT [flags]`.

    In: XML dumps, SQL table dumps, WME records or Parsoid HTML (paths or fsspec URLs), or a whole
    `dump_run`; every other argument is the flag of the same name (`wikisnap build --help`).
    `beam_args`: Apache Beam's own options (`["--runner", "DataflowRunner", …]`).
    Out: a `Result` with the published outputs (path, kind, bytes, md5, records), the counts per
    wiki, the dead letters and the manifest path. Raises a `WikisnapError` (`UsageError`,
    `RunFailed`, `OutputError`: exit 2; `EnvironmentFailure`, `RunCrashed`: 1; `LockHeld`: 75);
    `out` is then unchanged.

    >>> result = wikisnap.build(["enwiki-20241101-pages-articles.xml.bz2"], out="/data/enwiki")
    >>> [o.path for o in result.outputs if o.kind == "tarball"]
    ['enwiki_namespace_0.tar.gz', 'enwiki_namespace_14.tar.gz', …]
    >>> wikisnap.build(dump_run="enwiki/20241101", out="/data/enwiki", enrichment=["page_props"], workers=8)
    """
    given = {k: v for k, v in locals().items() if k != "beam_args" and v is not None}
    given["out"] = os.fspath(out)
    return build_from_args(arguments("build", given), beam_args)


def update(
    diffs: Sequence[str | os.PathLike],
    *,
    base: str | os.PathLike,
    out: str | os.PathLike,
    formats: Sequence[str] | str | None = None,
    text_namespaces: Sequence[int] | str | None = None,
    siteinfo_from: Sequence[str] | None = None,
    date: str | None = None,
    workers: int = 1,
    max_page_bytes: int = 32 << 20,
    temp_location: str | None = None,
    keep_temp: bool = False,
    fail_on_dead_letters: bool = False,
    shared_temp: bool = False,
    break_lock: bool = False,
    allow_truncated: bool = False,
    beam_args: Sequence[str] = (),
) -> Result:
    """Apply diffs to the snapshots in `base`, writing `out`: `wikisnap update DIFF… --base B --out O`.

    In: adds-changes XML, WME hourly batch tarballs or EventStreams JSON lines; every other
    argument is the flag of the same name. Out: a `Result` like `build`'s (the hourly batches are
    outputs of kind "batch"). Raises as `build`.

    >>> wikisnap.update(["enwiki-20241102-pages-meta-hist-incr.xml.bz2"], base="/data/enwiki", out="/data/enwiki-1102")
    """
    given = {k: v for k, v in locals().items() if k != "beam_args" and v is not None}
    given |= {"base": os.fspath(base), "out": os.fspath(out)}
    return update_from_args(arguments("update", given), beam_args)


def publish(
    snapshot: str | os.PathLike,
    *,
    to: str,
    layout: str | None = None,
    run_date: str | None = None,
    keep: int | None = None,
    shard_mb: float | None = None,
    dry_run: bool = False,
    work_dir: str | None = None,
) -> Result:
    """Publish a committed snapshot: `wikisnap publish SNAPSHOT --to DEST [flags]`.

    In: a build/update output folder and a destination (folder, fsspec URL, rsync://…,
    hf://datasets/ORG/NAME). Out: a `Result` whose `details` say the layout and, for a mirror,
    the run folder and the files copied, skipped and pruned. Raises `PublishError` (exit 2: the
    snapshot changed since its commit, a published run with other bytes…) or `DestinationError`
    (exit 1: run it again to resume).

    >>> wikisnap.publish("/data/enwiki", to="/srv/mirror/enterprise", keep=3).details["run"]
    'runs/20241101'
    >>> wikisnap.publish("/data/enwiki", to="hf://datasets/me/enwiki", dry_run=True)
    """
    given = {k: v for k, v in locals().items() if v is not None}
    given["snapshot"] = os.fspath(snapshot)
    return publish_from_args(arguments("publish", given))


def verify(folder: str | os.PathLike) -> Result:
    """Recompute every checksum of a published mirror run or a snapshot: `wikisnap verify FOLDER`.

    Out: a `Result` (outcome "verified"). Raises `VerifyFailed` (exit 2) listing every file that
    is missing or differs.

    >>> wikisnap.verify("/srv/mirror/enterprise/runs/20241101").outcome
    'verified'
    """
    from wikisnap.pipelines.publish import verify_folder

    folder = os.fspath(folder)
    started = time.time()
    problems = _guarded("verify", folder, lambda: verify_folder(folder))
    if problems:
        raise VerifyFailed(folder, problems)
    return Result(
        command="verify",
        folder=folder,
        outcome="verified",
        seconds=round(time.time() - started, 3),
        message=f"{folder}: every file matches its checksums",
    )


def recover(out: str | os.PathLike) -> Result:
    """Finish or roll back what a killed run left in an output folder: `wikisnap recover OUT`.

    Out: a `Result` whose outcome says whether a complete output is there. Raises `LockHeld`
    (exit 75) while a live run holds the folder.
    """
    from wikisnap.pipelines.launch import RecoverConfig
    from wikisnap.pipelines.launch import recover as run

    out = os.fspath(out)
    started = time.time()
    state = _guarded("recover", out, lambda: run(RecoverConfig(out)))
    found = "a complete wikisnap output" if state["published"] else "no published output"
    return Result(
        command="recover",
        folder=out,
        outcome="published" if state["published"] else "empty",
        seconds=round(time.time() - started, 3),
        message=f"{out}: {found}; nothing left to repair",
    )


def sync(config: str | os.PathLike, *, no_report: bool = False) -> Result:
    """One scheduled step from a sync config (TOML): `wikisnap sync --config FILE`.

    Out: a `Result` whose `exit_code` is the command line's: 0 something new was published
    (outcome "done"), 99 nothing new upstream, 69 upstream not ready yet (retry later);
    `details` is the run report (per wiki: outcome, message, current snapshot). Raises
    `ConfigError` (exit 2), `LockHeld` (75), `EnvironmentFailure` (1), or `SyncFailed` (1 or 2,
    the report as its `result`) when a wiki failed.

    >>> result = wikisnap.sync("/etc/wikisnap/sync.toml")
    >>> if result.exit_code == 99:  # nothing new upstream
    ...     raise AirflowSkipException(result.message)
    """
    from wikisnap.pipelines import sync as job
    from wikisnap.pipelines.syncconfig import load_config

    started = time.time()
    loaded = load_config(os.fspath(config))
    code, report = _guarded("sync", loaded.work, lambda: job.run(loaded))
    link = ""
    if not no_report:
        from wikisnap.pipelines.report import write_report

        try:
            _, html_path = write_report(report, os.path.join(loaded.work, "reports"))
            link = f"; report file://{html_path}"
        except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn must not fail a sync that worked
            log.warning("could not write the run report: %s", exc)
    if code == job.EXIT_NOTHING:
        message = f"wikisnap sync: nothing new upstream for {', '.join(loaded.wikis)}{link}"
    elif code == job.EXIT_NOT_READY:
        waiting = "; ".join(w["message"] for w in report["wikis"].values() if w["message"])
        message = f"wikisnap sync: upstream not ready yet (retry later): {waiting}{link}"
    else:
        message = f"wikisnap sync: {report['outcome']} in {report['seconds']:.1f} s (exit {code}){link}"
    result = Result(
        command="sync",
        folder=loaded.work,
        exit_code=code,
        outcome=report["outcome"],
        seconds=round(time.time() - started, 3),
        timing={"seconds": report["seconds"]},
        message=message,
        details=report,
    )
    if code in (EXIT_BAD_INPUT, EXIT_ENVIRONMENT):
        raise SyncFailed(result)
    return result


def show(
    snapshot: str | os.PathLike,
    *,
    id: int | None = None,  # noqa: A002 - the flag's name
    title: str | None = None,
    wiki: str | None = None,
    schema: bool = False,
    counts: bool = False,
) -> Result:
    """Look into a snapshot without unpacking a tarball: `wikisnap show SNAPSHOT [--id N | --title T]`.

    Out: a `Result` whose `details` hold "records" (WME records, with `id` or `title`), "schemas"
    (output kind → Arrow schema text, with `schema`) and "counts" (per wiki and namespace: records,
    and files, bytes, records per output kind; with `counts`, or when nothing else is asked).
    Raises `UsageError` (exit 2) for a folder without manifest or a record that is not there.

    >>> wikisnap.show("/data/enwiki", id=12).details["records"][0]["name"]
    'Anarchism'
    >>> [(c["dbname"], c["ns"], c["records"]) for c in wikisnap.show("/data/enwiki").details["counts"]]
    [('enwiki', 0, 106)]
    """
    from wikisnap.pipelines import show as job

    snapshot = os.fspath(snapshot)
    if id is not None and title is not None:
        raise UsageError("give --id or --title, not both")
    started = time.time()
    details, text = _guarded("show", snapshot, lambda: job.show(snapshot, id, title, wiki, schema, counts))
    return Result(
        command="show",
        folder=snapshot,
        outcome="shown",
        seconds=round(time.time() - started, 3),
        message=text,
        details=details,
    )


# -- the command line's side -------------------------------------------------------------------

_LOCK_HINT = "; try again when it has finished"


def command_line(args: argparse.Namespace, beam_args: Sequence[str] = ()) -> int:
    """Run the parsed command `args.command` for `wikisnap` and return its exit code.

    Prints the human summary on stdout, or with `--json` only `Result.to_dict()` as one JSON
    document (anything else a command prints goes to stderr then); a failure is one line on
    stderr (with `--json` also {"command", "exit_code", "error"} on stdout).
    """
    import contextlib
    import sys

    from wikisnap.pipelines.commit import LockHeld
    from wikisnap.pipelines.destinations import DestinationError

    command = args.command
    as_json = bool(getattr(args, "json", False))
    runners: dict[str, Callable[[], Result]] = {
        "build": lambda: build_from_args(args, beam_args),
        "update": lambda: update_from_args(args, beam_args),
        "publish": lambda: publish_from_args(args),
        "verify": lambda: verify(args.folder),
        "recover": lambda: recover(args.out),
        "sync": lambda: sync(args.config, no_report=args.no_report),
        "show": lambda: show(
            args.snapshot, id=args.id, title=args.title, wiki=args.wiki, schema=args.schema, counts=args.counts
        ),
    }
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            result = runners[command]()
    except WikisnapError as exc:
        if isinstance(exc, VerifyFailed):
            for problem in exc.problems:
                print(f"wikisnap verify: {problem}", file=sys.stderr)
        elif isinstance(exc, SyncFailed):
            print(exc.result.message, file=stdout if not as_json else sys.stderr)
        else:
            hint = _LOCK_HINT if isinstance(exc, LockHeld) else ""
            if isinstance(exc, DestinationError) and not exc.explained:
                hint += "; run the same command again to resume"
            if isinstance(exc, RunCrashed) and not log.isEnabledFor(logging.DEBUG):
                hint += ". Run with -v for the traceback."
            said = "" if isinstance(exc, RunInterrupted) else "error: "  # an interrupt is no error of the run
            print(f"wikisnap {command}: {said}{exc}{hint}", file=sys.stderr)
        if as_json:
            document = exc.result.to_dict() if isinstance(exc, SyncFailed) else {}
            document |= {"command": command, "exit_code": exc.exit_code, "error": str(exc)}
            print(json.dumps(document, ensure_ascii=False), file=stdout)
        return exc.exit_code
    try:
        if as_json:
            print(result.to_json(), file=stdout, flush=True)
            return result.exit_code
        if result.message:
            print(result.message)
        if "interrupted" in result.details:
            print(f"wikisnap {command}: {result.details['interrupted']}", file=sys.stderr)
        if result.manifest_path:
            print(f"manifest: {result.manifest_path}")
        sys.stdout.flush()
    except BrokenPipeError:  # `wikisnap show … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141  # 128 + SIGPIPE, as a shell reports a program killed by it
    return result.exit_code
