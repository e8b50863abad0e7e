"""The `wikisnap` command line. `wikisnap build --help` explains every flag.

Beam's own pipeline options are passed to Apache Beam unchanged (`--runner DataflowRunner
--project … --region … --temp_location gs://…`, `--setup_file ./setup.py`), so one command line
serves the local engine and every distributed runner; any other flag is refused (`argv.py`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

import wikisnap
from wikisnap.pipelines.argv import split_args
from wikisnap.pipelines.options import LOCAL_RUNNER_NAMES, flag_value
from wikisnap.pipelines.worker import is_import_noise

EPILOG = """\
Apache Beam's pipeline options are passed through (any other flag is refused, exit 2), e.g.
  --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py
Without --runner, wikisnap runs on Beam's FnApiRunner on this machine (never a Prism download).
Exit codes: 0 published; 2 bad input or usage (nothing published, the message says why);
1 the environment stopped the run (disk full, permissions) or it crashed (-v shows the traceback);
75 another run holds the output folder's lock (try again later); 130/143 interrupted (SIGINT/SIGTERM).
"""


def make_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The program's parser. With `only` (the command about to run), the other pipeline commands
    are listed without their flags, so their modules are not imported: `build` then never loads
    update's, publish's and sync's (0.1-0.3 s of every build's start, for nothing)."""

    def wanted(command: str) -> bool:
        return only is None or only == command

    parser = argparse.ArgumentParser(
        prog="wikisnap",
        description="Build Wikimedia Enterprise-format snapshots (NDJSON tarballs + Parquet) from public "
        "Wikimedia dumps, on Apache Beam.",
    )
    parser.add_argument("--version", action="version", version=f"wikisnap {wikisnap.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and the traceback of a crash")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    build = commands.add_parser(
        "build",
        help="XML dumps → per-(wiki, namespace) snapshots",
        description="Read MediaWiki pages-articles XML dumps and write, per (wiki, namespace): "
        "{db}_namespace_{ns}.tar.gz (WME NDJSON members), {db}_namespace_{ns}.json (its metadata), "
        "parquet/{db}_namespace_{ns}/*.parquet, plus deadletter/ and manifest.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if wanted("build"):
        from wikisnap.pipelines.build import add_build_arguments

        add_build_arguments(build)

    update = commands.add_parser(
        "update",
        help="a previous snapshot + revision diffs → new snapshots + WME hourly batches",
        description="Apply adds-changes XML, WME hourly batch tarballs and EventStreams JSON lines to the "
        "snapshots in --base: writes the new snapshots (same layout as build) and "
        "batches/{YYYY-MM-DD}/{HH}/{db}_namespace_{ns}.tar.gz + .json to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if wanted("update"):
        from wikisnap.pipelines.update import add_update_arguments

        add_update_arguments(update)
    recover = commands.add_parser(
        "recover",
        help="finish or roll back what a killed run left in an output folder, then exit",
        description="Every build and update does this first on its --out; run it alone to restore a folder "
        "whose run was killed while publishing (its previous output comes back) and to clear staging and temp "
        "folders of dead runs. Exit 0 when the folder is a clean wikisnap output.",
    )
    recover.add_argument("out", metavar="DIR", help="the output folder")
    publish = commands.add_parser(
        "publish",
        help="a committed snapshot → a dumps-mirror run (runs/YYYYMMDD/) or a HuggingFace dataset",
        description="Publish a committed build/update output: --layout mirror writes DEST/runs/YYYYMMDD/ as "
        "Wikimedia's mirrors publish WME snapshots (checksums, dumpstatus.json last, then latest); --layout hf "
        "writes a dataset repository folder (Parquet shards + dataset card) or uploads it to hf://datasets/ORG/NAME.",
    )
    if wanted("publish"):
        from wikisnap.pipelines.publish import add_publish_arguments

        add_publish_arguments(publish)
    verify = commands.add_parser(
        "verify",
        help="re-check a published run (md5sums, sha1sums, dumpstatus.json) or a snapshot (manifest.json)",
        description="Recompute every checksum of a published mirror run or of a snapshot folder; exit 2 on any "
        "mismatch, missing file or incomplete run.",
    )
    verify.add_argument("folder", metavar="DIR", help="DEST/runs/YYYYMMDD, or a build/update --out (path or URL)")
    sync = commands.add_parser(
        "sync",
        help="one scheduled step: build the newest complete dump run or apply new incremental days, publish, exit",
        description="Keep snapshots current from a dumps mirror (config: configs/sync.example.toml). Exit codes: "
        "0 done, 99 nothing new upstream, 69 upstream not ready yet (retry later), 2 bad config or bad upstream "
        "files, 1 failure, 75 another sync holds the work folder.",
    )
    if wanted("sync"):
        from wikisnap.pipelines.sync import add_sync_arguments

        add_sync_arguments(sync)

    show = commands.add_parser(
        "show",
        help="a snapshot's counts and sizes, a record, or its Arrow schema (from the manifest and Parquet)",
        description="Look into a build/update output without unpacking its tarballs: per (wiki, namespace) "
        "records and sizes (default), a record by --id or --title, the Arrow schema (--schema).",
    )
    if wanted("show"):
        from wikisnap.pipelines.show import add_show_arguments

        add_show_arguments(show)
    from wikisnap.pipelines.options import add_shared_flags

    for command in (build, update, recover, publish, verify, sync, show):
        add_shared_flags(command, "--json")
    return parser


_WORKER_ECHOES = "Worker: "
_IN_MEMORY_WARNING = "If direct_num_workers is not equal to 1"


class _DropNoise(logging.Filter):
    """Beam's GCP client warns at import time when apitools is absent, its MongoDB connector when
    bson is (left out: `LEFT_OUT`); wikisnap uses neither.

    Without -v, Beam's own ERROR records of a failed bundle (a traceback each) are dropped too:
    wikisnap prints one line that says what failed.
    """

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if is_import_noise(record):
            return False
        if record.name.startswith("apache_beam") and str(record.msg).startswith(_WORKER_ECHOES):
            return False  # local workers print their own lines (pipelines/worker.py); these are copies
        if record.name.startswith("apache_beam") and str(record.msg).startswith(_IN_MEMORY_WARNING):
            return False  # the engine's deliberate choice (pipelines/engine.py worker_runner)
        if not self.verbose and record.name.startswith("apache_beam") and record.levelno >= logging.ERROR:
            return False
        return True


def configure_logging(quiet: bool, verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise(verbose))
    logging.getLogger("wikisnap").setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    # Beam's own INFO lines (bundle plans, worker start-up) drown the progress lines.
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


# Commands that never use pandas (the `hf` layout of publish and sync does, through `datasets`).
NO_PANDAS_COMMANDS = ("build", "update")


# Left out with pandas: MongoDB's driver and its bson, which `import apache_beam.io` loads for
# its MongoDB connector whenever they are installed (a Beam dependency): 0.05 s of every run.
# The connector catches the ImportError, and nothing wikisnap runs uses it.
LEFT_OUT = ("pandas", "pymongo", "bson")


# Left out of a run on the local engine too: Beam's BigQuery connector, which `import apache_beam.io`
# loads with `requests` (and, in the same try block, the Pub/Sub, GCS and cross-language I/O
# modules behind it): 0.045 s of every run here. Beam catches the ImportError; wikisnap reads and
# writes through fsspec, and a cluster run (another `--runner`) keeps them all.
LEFT_OUT_LOCALLY = ("apache_beam.io.gcp.bigquery",)


class _PandasLeftOut:
    """An import finder that answers `import pandas` (and `LEFT_OUT`'s others, and the modules
    `modules` names) with ModuleNotFoundError."""

    def __init__(self, modules: tuple[str, ...] = ()):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name.split(".", 1)[0] in LEFT_OUT or name in self.modules:
            raise ModuleNotFoundError(f"No module named {name!r} (left out: wikisnap's command does not use it)")
        return None


def run_without_pandas(raw: list[str]) -> bool:
    """Treat pandas as not installed for the rest of this process when it runs `build` or `update`.

    In: the program's arguments. Beam's type hints and pyarrow's conversions import pandas
    whenever it is installed (it is not a dependency of either; many environments have it, and
    the `hf` extra brings it), only to recognise DataFrames these commands never make: 0.26 s and
    43 MB of every run here. A finder ahead of the others makes `import pandas` fail as if it
    were absent, which both handle. Only for the program's own process (`main()` without
    arguments): a caller importing wikisnap keeps its pandas. True when pandas was left out
    (pymongo and bson with it: `LEFT_OUT`; Beam's BigQuery connector too when the run is on the
    local engine: `LEFT_OUT_LOCALLY`).
    """
    command = command_of(raw)
    if command not in NO_PANDAS_COMMANDS or "pandas" in sys.modules:
        return False
    runner = flag_value(raw, "--runner")
    local = runner is None or runner.lower() in LOCAL_RUNNER_NAMES
    sys.meta_path.insert(0, _PandasLeftOut(LEFT_OUT_LOCALLY if local else ()))
    return True


def command_of(raw: list[str]) -> str | None:
    """The command `raw` runs, as `split_args` finds it: its first argument that is not a flag."""
    return next((arg for arg in raw if not arg.startswith("-")), None)


def lean_startup() -> None:
    """Make this process's imports cheaper; for the program's own process only (`main()`).

    The collector is paused until `main` freezes what the imports made: some 100,000 objects
    that all live until exit, which every collection on the way walked for nothing (0.06 s of
    every run here; a cycle the imports leave is frozen with them, never freed). OpenBLAS (numpy's, which Beam's coders import)
    starts a thread per core at import and wikisnap never multiplies a matrix; one thread
    instead (0.04 s of every run, and of every worker's start), unless the environment sets it.
    """
    gc.disable()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if argv is None:
        lean_startup()  # before anything heavy is imported
    # Logging first: importing Beam (inside make_parser) already logs.
    configure_logging("-q" in raw or "--quiet" in raw, "-v" in raw or "--verbose" in raw)
    if argv is None:
        run_without_pandas(raw)  # before Beam is imported (inside make_parser)
    parser = make_parser(command_of(raw))
    if argv is None:
        # The program's own process (not a caller's): the objects of the imports above live until
        # exit, so they leave the collector's generations. Full collections during the run stop
        # walking them, and the exit skips them (0.22 s of every run's exit here, with Beam
        # imported). Forked workers share those pages unwritten.
        gc.freeze()
        gc.enable()  # paused by `lean_startup` while the imports ran
    args, beam_args = split_args(parser, raw)
    from wikisnap.pipelines.api import command_line

    return command_line(args, beam_args)


if __name__ == "__main__":
    sys.exit(main())
