"""The `wikisnap` command line. `wikisnap build --help` explains every flag.

Flags wikisnap does not know are passed to Apache Beam unchanged (`--runner DataflowRunner
--project … --region … --temp_location gs://…`, `--setup_file ./setup.py`), so one command line
serves the local engine and every distributed runner.
"""

from __future__ import annotations

import argparse
import logging
import sys

import wikisnap

EPILOG = """\
Any other --flag is an Apache Beam pipeline option and is passed through, e.g.
  --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py
Without --runner, wikisnap runs on Beam's FnApiRunner on this machine (never a Prism download).
Exit codes: 0 success, 2 bad input or a run that must not be trusted (the message says why).
"""


def make_parser() -> argparse.ArgumentParser:
    from wikisnap.pipelines.build import add_build_arguments

    parser = argparse.ArgumentParser(
        prog="wikisnap",
        description="Build Wikimedia Enterprise-format snapshots (NDJSON tarballs + Parquet) from public "
        "Wikimedia dumps, on Apache Beam.",
    )
    parser.add_argument("--version", action="version", version=f"wikisnap {wikisnap.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
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
    add_build_arguments(build)
    from wikisnap.pipelines.update import add_update_arguments

    update = commands.add_parser(
        "update",
        help="a previous snapshot + revision diffs → new snapshots + WME hourly batches",
        description="Apply adds-changes XML, WME hourly batch tarballs and EventStreams JSON lines to the "
        "snapshots in --base: writes the new snapshots (same layout as build) and "
        "batches/{YYYY-MM-DD}/{HH}/{db}_namespace_{ns}.tar.gz + .json to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_update_arguments(update)
    return parser


class _DropNoise(logging.Filter):
    """Beam's GCP client warns at import time when apitools is absent; wikisnap does not use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


def configure_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise())
    logging.getLogger("wikisnap").setLevel(logging.WARNING if quiet else logging.INFO)
    # Beam's own INFO lines (bundle plans, worker start-up) drown the progress lines.
    logging.getLogger("apache_beam").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    # Logging first: importing Beam (inside make_parser) already logs.
    configure_logging("-q" in raw or "--quiet" in raw)
    parser = make_parser()
    args, beam_args = parser.parse_known_args(argv)
    stray = [a for a in beam_args if not a.startswith("-")]
    if stray and args.command == "build" and not any(a.startswith("--") for a in beam_args):
        parser.error(f"unrecognised arguments: {' '.join(stray)}")
    if args.command == "build":
        from wikisnap.pipelines.build import main_build

        return main_build(args, beam_args)
    if args.command == "update":
        from wikisnap.pipelines.update import main_update

        return main_update(args, beam_args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
