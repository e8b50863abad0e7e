"""An Airflow DAG that builds a snapshot with wikisnap's Python API, publishes it and verifies the run.

Each task calls the API in-process and returns `Result.to_dict()`, so the next task gets the
outputs (paths, md5s, records), counts and dead letters through XCom instead of parsing text:

    build_snapshot ──► publish_snapshot ──► verify_run

Failures are `wikisnap.WikisnapError`s carrying the command line's exit code: 2 (bad input: a
retry will not help) fails the task at once, 75 (another run holds the folder) and 1 (the
machine: disk, network) are retried.

Settings (environment variables of the worker):
    WIKISNAP_INPUTS   dump files, separated by spaces (or WIKISNAP_DUMP_RUN: enwiki/20241101 on the mirror)
    WIKISNAP_OUT      the snapshot folder
    WIKISNAP_DEST     the mirror folder or URL the run is published to
    WIKISNAP_RUN_DATE YYYYMMDD of the published run (default: the snapshot's)

Try it without a scheduler: `airflow dags test wikisnap_snapshot` (tests/test_airflow.py does).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task

from airflow.exceptions import AirflowFailException


def _api_call(fn, *args, **kwargs) -> dict:
    """Run a wikisnap API function; a bad-input failure (exit 2) is not retried."""
    import wikisnap

    try:
        return fn(*args, **kwargs).to_dict()
    except wikisnap.WikisnapError as exc:
        if exc.exit_code == 2:
            raise AirflowFailException(f"wikisnap: {exc}") from exc
        raise  # 1 (environment) and 75 (locked): Airflow retries


@dag(
    dag_id="wikisnap_snapshot",
    schedule="@monthly",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["wikisnap"],
)
def wikisnap_snapshot():
    @task
    def build_snapshot() -> dict:
        import wikisnap

        inputs = os.environ.get("WIKISNAP_INPUTS", "").split()
        return _api_call(
            wikisnap.build,
            inputs,
            out=os.environ["WIKISNAP_OUT"],
            dump_run=os.environ.get("WIKISNAP_DUMP_RUN") or None,
            fail_on_dead_letters=False,
        )

    @task
    def publish_snapshot(built: dict) -> dict:
        import wikisnap

        print(f"built {len(built['outputs'])} files, {built['dead_letters']} dead letter(s): {built['manifest_path']}")
        return _api_call(
            wikisnap.publish,
            built["folder"],
            to=os.environ["WIKISNAP_DEST"],
            run_date=os.environ.get("WIKISNAP_RUN_DATE") or None,
            keep=3,
        )

    @task
    def verify_run(published: dict) -> dict:
        import wikisnap

        return _api_call(wikisnap.verify, f"{published['folder'].rstrip('/')}/{published['details']['run']}")

    verify_run(publish_snapshot(build_snapshot()))


wikisnap_snapshot()
