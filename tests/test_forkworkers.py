"""`--workers N` forks its worker processes from the launcher (pipelines/forkworkers.py): same
bytes as workers started afresh, nothing left behind when the launcher ends or is killed, and no
fork once gRPC has started in the process."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ENWIKI, MULTISTREAM, wikisnap
from wikisnap.pipelines import forkworkers

ELWIKIVOYAGE = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-p2566p2583.xml.bz2"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")


def md5s(out):
    return {
        p.relative_to(out).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".wikisnap" not in p.parts and p.name != "manifest.json"
    }


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] != "Z"  # a zombie has exited (its reaper is init)


def test_forked_workers_write_the_bytes_of_workers_started_afresh(tmp_path, build):
    done = wikisnap("-v", "build", ELWIKIVOYAGE, "--out", tmp_path / "forked", "--workers", "2", "--unit-mb", "0.1")
    assert done.returncode == 0, done.stderr
    assert "worker process(es) forked from the launcher" in done.stderr
    # in this (test) process gRPC has started or may start: the run starts new worker processes
    forkworkers.note_grpc()
    assert not forkworkers.available()
    code, _, err = build([ELWIKIVOYAGE], tmp_path / "spawned", "--workers", "2", "--unit-mb", "0.1")
    assert code == 0, err
    assert md5s(tmp_path / "forked") == md5s(tmp_path / "spawned")
    assert len(md5s(tmp_path / "forked")) >= 3


def test_a_released_pool_leaves_no_process():
    code = (
        "import os, sys; from wikisnap.pipelines import forkworkers as f\n"
        "pool = f.ForkPool.start(3, 'WARNING', False)\n"
        "pids = [c.pid for c in pool._waiting]\n"
        "pool.close()\n"
        "print(*pids)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 3
    assert not any(alive(p) for p in pids)  # each read end-of-file, exited, and was reaped


def test_killing_the_launcher_leaves_no_worker_behind(tmp_path):
    cmd = [sys.executable, "-m", "wikisnap.pipelines.cli", "build", str(ENWIKI), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen([*cmd, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers = children_of(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the launcher forked no workers"
    time.sleep(1.0)  # the workers run their first bundles
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10  # the kernel kills them with it (parent-death signal)
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in workers), "a worker outlived its killed launcher"
