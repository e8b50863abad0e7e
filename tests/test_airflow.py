"""examples/airflow_dag.py under `airflow dags test`: the API's results pass from task to task and
the run it publishes verifies. Needs Airflow (`pytest --airflow PATH/bin/airflow -m airflow`);
deselected otherwise, and so in CI, which installs no Airflow (about a minute here: a database
migration, then three tasks)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ENWIKI

pytestmark = pytest.mark.airflow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_example_dag_builds_publishes_and_verifies(request, enwiki_build, tmp_path):
    airflow = request.config.getoption("--airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "WIKISNAP_INPUTS": str(ENWIKI),
        "WIKISNAP_OUT": str(tmp_path / "out"),
        "WIKISNAP_DEST": str(tmp_path / "mirror"),
        "WIKISNAP_RUN_DATE": "20240101",
    }
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [airflow, "dags", "test", "wikisnap_snapshot"], env=env, capture_output=True, text=True, timeout=600
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "state=success" in log, log[-4000:]
    # the build task wrote the bytes the command line writes; publish got its folder through XCom
    built = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reference = json.loads((enwiki_build / "manifest.json").read_text())
    assert {o["path"]: o["md5"] for o in built["outputs"]} == {o["path"]: o["md5"] for o in reference["outputs"]}
    status = json.loads((tmp_path / "mirror" / "runs" / "20240101" / "dumpstatus.json").read_text())
    assert status["jobs"]["wikisnap"]["status"] == "done"
    assert "'outcome': 'verified'" in log  # the verify task's returned result
