"""The build through Beam's portable Fn API path: PortableRunner, a job service, and an EXTERNAL
worker pool in separate processes on 127.0.0.1 — the way Dataflow, Flink and Spark run Python
pipelines. Same bytes as the local run proves the package imports on workers and nothing depends
on the launcher's memory."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ENWIKI, MULTISTREAM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def worker_pool(tmp_path):
    """`python -m apache_beam.runners.worker.worker_pool_main` on a loopback port; yields (port, log)."""
    port = _free_port()
    log = tmp_path / "pool.log"
    env = dict(os.environ)
    # the pool starts each SDK worker as plain `python`: make that this interpreter
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _md5s(folder):
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_portable_runner_with_external_workers_gives_the_same_bytes(build, tmp_path, worker_pool):
    port, log = worker_pool
    inputs = [ENWIKI, MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"]
    local, portable = tmp_path / "local", tmp_path / "portable"
    assert build(inputs, local)[0] == 0
    code, _, err = build(
        inputs,
        portable,
        "--runner",
        "PortableRunner",
        "--job_endpoint",
        "embed",
        "--environment_type",
        "EXTERNAL",
        "--environment_config",
        f"localhost:{port}",
    )
    assert code == 0, err
    assert _md5s(local) == _md5s(portable) and len(_md5s(local)) >= 6
    assert "Starting worker" in log.read_text()  # the work ran in the pool's worker processes
