"""Runs as distributed engines run them: failed bundles retried, temp folders that must be shared.

Engines (Flink, Spark, Dataflow) retry a bundle that failed and may run one twice; whatever a step
wrote outside Beam's data flow must then neither be read twice nor break the retry. Beam's
BundleBasedDirectRunner retries a failed bundle (up to 4 attempts) the way they do, in-process, so
a fault injected into the first attempt of a read unit, a bucket writer, a snapshot assembly or an
update's member rewrite (`wikisnap/faults.py`) must give exactly the bytes of an undisturbed
local run, with the retries counted in the manifest. Beam's Flink and Spark job servers are not
served by the Maven registry these machines reach (see docs/cluster.md), so these
tests stand in for the engine runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_update import PAIR, PEAR, PYRUS, md5s, older_state

from conftest import ENWIKI, MULTISTREAM, read_snapshot
from wikisnap.pipelines.build import UsageError
from wikisnap.pipelines.engine import check_job_server, check_shared_temp
from wikisnap.pipelines.options import BuildConfig
from wikisnap.transforms.formats.fs import move_once, write_bytes

pytestmark = pytest.mark.engines

RETRYING = ["--runner", "BundleBasedDirectRunner", "--keep-temp"]
MULTISTREAM_DUMP = MULTISTREAM / "mwbzutils__elwikivoyage-pages-articles-multistream-p2566p2583.xml.bz2"


@pytest.fixture()
def faults(monkeypatch, tmp_path):
    """`faults(rules)`: switch fault injection on for this test (markers shared by all attempts)."""

    def _set(rules: str) -> Path:
        folder = tmp_path / "faults"
        monkeypatch.setenv("WIKISNAP_FAULTS", rules)
        monkeypatch.setenv("WIKISNAP_FAULTS_DIR", str(folder))
        return folder

    return _set


def _counts(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["counts"]


@pytest.mark.parametrize(
    ("inputs", "flags", "retried_unit"),
    [
        ([ENWIKI], ["--member-size-mb", "0.05"], "u00000-*"),
        # three ranges of the multistream triple: one of them fails its first attempt
        ([MULTISTREAM_DUMP], ["--unit-mb", "0.005"], "u00000-*-r00001"),
    ],
    ids=["enwiki-sample", "elwikivoyage-multistream-ranges"],
)
def test_retried_bundles_give_the_local_bytes_and_are_counted(build, faults, tmp_path, inputs, flags, retried_unit):
    local, retried = tmp_path / "local", tmp_path / "retried"
    assert build(inputs, local, *flags)[0] == 0
    markers = faults(f"fail-once:read-unit:{retried_unit};fail-once:write-bucket:*;fail-once:assemble:*")
    code, _, err = build(inputs, retried, *flags, *RETRYING)
    assert code == 0, err
    # each fault fired once (its marker) and the run still gave exactly the local bytes
    assert sorted(p.name for p in markers.iterdir()) == [
        "assemble_*.failed",
        f"read-unit_{retried_unit}.failed",
        "write-bucket_*.failed",
    ]
    got = {k: v for k, v in md5s(retried).items() if not k.startswith(".wikisnap/")}
    assert got == md5s(local) and len(got) >= 4
    counts = next(iter(_counts(retried).values()))
    assert counts["retries/read_unit_attempts"] >= 1
    assert counts["retries/write_bucket_attempts"] >= 1
    assert not any(k.startswith("retries/") for c in _counts(local).values() for k in c)
    # the failed attempts left their own spill runs and member parts, which nobody read
    temp = next((retried / ".wikisnap" / "tmp").iterdir())
    failed_unit = (markers / f"read-unit_{retried_unit}.failed").read_text().split(":", 1)[1]
    runs = sorted(temp.glob(f"spill/*/*/*/{failed_unit}-*.run"))
    attempts = {p.name[len(failed_unit) + 1 :].split("-")[0] for p in runs}
    assert len(attempts) == 2, runs
    # the bucket writer failed after writing all its members: two full sets of parts, one in the tarball
    failed_bucket = (markers / "write-bucket_*.failed").read_text().split(":", 1)[1]
    sid, bucket = failed_bucket.rsplit("-", 1)
    members = len(read_snapshot(retried / f"{sid}.tar.gz")[0])
    assert len(list(temp.glob(f"parts/{sid}/{bucket}-*.ndjson.gz"))) == 2 * members


def test_retried_update_gives_the_local_bytes(build, update, faults, tmp_path):
    sources = [PEAR, PYRUS, PAIR]
    older = [older_state(src, tmp_path / f"old-{src.name}", {"Pear": 1, "Pyrus": 2}) for src in sources]
    base, local, retried = tmp_path / "base", tmp_path / "local", tmp_path / "retried"
    assert build(older, base)[0] == 0
    code, _, err = update(base, sources, local)
    assert code == 0, err
    markers = faults("fail-once:rewrite-member:*;fail-once:assemble:*")
    code, _, err = update(base, sources, retried, *RETRYING)
    assert code == 0, err
    assert sorted(p.name for p in markers.iterdir()) == ["assemble_*.failed", "rewrite-member_*.failed"]
    got = {k: v for k, v in md5s(retried).items() if not k.startswith(".wikisnap/")}
    assert got == md5s(local) and any(k.endswith(".tar.gz") for k in got)


def test_a_cluster_runner_refuses_a_temp_folder_only_this_machine_sees(build, update, tmp_path):
    code, _, err = build([ENWIKI], tmp_path / "out", "--runner", "FlinkRunner")
    assert code == 2
    assert "--runner FlinkRunner" in err and str(tmp_path / "out" / ".wikisnap" / "tmp") in err
    assert "--temp-location" in err and "--shared-temp" in err
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert build([PEAR], tmp_path / "base")[0] == 0
    code, _, err = update(tmp_path / "base", [PEAR], tmp_path / "up", "--runner", "SparkRunner")
    assert code == 2
    assert "--runner SparkRunner" in err and "--shared-temp" in err
    assert not (tmp_path / "up" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("beam_args", "temp", "shared", "refused"),
    [
        (["--runner", "FlinkRunner"], "/tmp/x", False, True),
        (["--runner=SparkRunner"], "file:///tmp/x", False, True),
        (["--runner", "DataflowRunner"], "memory://x", False, True),
        (["--runner", "FlinkRunner"], "/mnt/nfs/x", True, False),
        (["--runner", "DataflowRunner"], "gs://bucket/tmp", False, False),
        (["--runner", "SparkRunner"], "s3://bucket/tmp", False, False),
        (["--runner", "PortableRunner", "--job_endpoint", "embed"], "/tmp/x", False, False),
        (["--runner", "PortableRunner", "--job_endpoint", "localhost:8099"], "/tmp/x", False, True),
        ([], "/tmp/x", False, False),
        (["--runner", "DirectRunner"], "/tmp/x", False, False),
        (["--runner", "BundleBasedDirectRunner"], "/tmp/x", False, False),
    ],
)
def test_shared_temp_check(beam_args, temp, shared, refused):
    config = BuildConfig(inputs=[], out="/tmp/out", beam_args=beam_args, shared_temp=shared)
    if refused:
        with pytest.raises(UsageError, match="--shared-temp"):
            check_shared_temp(config, temp)
    else:
        check_shared_temp(config, temp)


def test_move_once_takes_a_done_move_and_refuses_a_lost_file(tmp_path):
    src, dst = str(tmp_path / "a"), str(tmp_path / "d" / "b")
    write_bytes(src, b"shard")
    move_once(src, dst)
    move_once(src, dst)  # the retry: moved already
    assert Path(dst).read_bytes() == b"shard" and not Path(src).exists()
    with pytest.raises(FileNotFoundError, match="was not moved there"):
        move_once(str(tmp_path / "lost"), str(tmp_path / "nowhere"))


def test_flink_and_spark_runs_need_a_local_job_server_jar(tmp_path):
    jar = tmp_path / "beam-runners-flink-1.20-job-server.jar"
    jar.write_bytes(b"PK")

    def check(*beam_args):
        check_job_server(BuildConfig(inputs=[], out="/tmp/out", beam_args=list(beam_args)))

    with pytest.raises(UsageError, match=r"needs --flink_job_server_jar FILE.*fetch-job-servers\.sh"):
        check("--runner", "FlinkRunner")
    with pytest.raises(UsageError, match="needs --spark_job_server_jar FILE"):
        check("--runner=SparkRunner", "--flink_job_server_jar", str(jar))
    with pytest.raises(UsageError, match="not a local file"):
        check("--runner", "FlinkRunner", "--flink_job_server_jar", str(tmp_path / "missing.jar"))
    with pytest.raises(UsageError, match="not a local file"):
        check("--runner", "FlinkRunner", "--flink_job_server_jar", "https://example.org/x.jar")
    check("--runner", "FlinkRunner", "--flink_job_server_jar", str(jar))
    check("--runner", "SparkRunner", "--job_endpoint", "localhost:8099")
    check("--runner", "DataflowRunner")
    check()


def test_overall_progress_reads_whole_progress_files_only(tmp_path):
    from wikisnap.pipelines.progress import OverallProgress
    from wikisnap.transforms.formats.fs import write_bytes_atomic

    folder = tmp_path / "progress"
    write_bytes_atomic(str(folder / "u1.json"), b'{"pages": 5, "bytes": 100, "final": true}')
    # a retried unit replacing its file: the sibling being written is not counted twice
    write_bytes(str(folder / "u2.json.1a2b3c4d.partial"), b'{"pages": 7, "bytes": 50, "final": false}')
    write_bytes(str(folder / "u2.json"), b'{"pages": 3, "bytes": 20, "final": false}')
    assert sorted(p.name for p in folder.iterdir()) == ["u1.json", "u2.json", "u2.json.1a2b3c4d.partial"]
    assert OverallProgress(str(folder), 1000, 1.0, 2).snapshot() == (8, 120, 1)
