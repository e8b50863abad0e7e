"""The local worker processes of `--workers N`: Beam's SDK harness, logging as wikisnap logs.

Beam starts each worker as `python -m apache_beam.runners.worker.sdk_worker_main`; its first
module-level logging call (apitools' import warning) installs Python's default handler, so the
terminal got a second log format (`INFO:wikisnap:…`), Beam's start-up chatter (`Logging handler
created`, `No semi_persistent_directory found`) and, through the runner's logging service, each
line again as `Worker: severity: …`. `WorkerFnApiRunner` starts this module instead: one handler
in wikisnap's format before Beam is imported, wikisnap's records at the level the command runs
at (`--log-level`), Beam's own only from ERROR up, or all with `--verbose`.
"""

from __future__ import annotations

import argparse
import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


# Import-time warnings of Beam's connectors wikisnap never uses: GCP's client without apitools,
# MongoDB's without bson (left out of build and update, pipelines/cli.py `LEFT_OUT`)
IMPORT_NOISE = ("apitools not found", "Could not find a compatible bson package")


def is_import_noise(record: logging.LogRecord) -> bool:
    """Whether `record` is one of those warnings (dropped by the launcher's and the workers' logs)."""
    return str(record.msg).startswith(IMPORT_NOISE)


class BeamQuiet(logging.Filter):
    """Passes wikisnap's records; others (Beam, grpc, the root logger) only from ERROR up, unless
    `verbose`. The import-time warnings of connectors wikisnap does not use never."""

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if is_import_noise(record):
            return False
        if record.name == "wikisnap" or record.name.startswith("wikisnap."):
            return True
        return self.verbose or record.levelno >= logging.ERROR


def install_logging(level: str, verbose: bool, replace: bool = False) -> None:
    """One stderr handler in wikisnap's format: wikisnap's records at `level`, Beam's from ERROR up
    (all with `verbose`). `replace`: drop the handlers and levels a forked worker inherited."""
    root = logging.getLogger()
    if replace:
        for old in list(root.handlers):
            root.removeHandler(old)
        logging.getLogger("apache_beam").setLevel(logging.NOTSET)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    handler.addFilter(BeamQuiet(verbose))
    root.addHandler(handler)
    logging.getLogger("wikisnap").setLevel(level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wikisnap-worker")
    parser.add_argument("--log-level", default="INFO", help="wikisnap's log level in this worker")
    parser.add_argument("--verbose", action="store_true", help="Beam's own records too")
    args = parser.parse_args(argv)
    install_logging(args.log_level, args.verbose)  # before Beam's imports: no default handler gets installed
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main(sys.argv[:1])


if __name__ == "__main__":
    main()
