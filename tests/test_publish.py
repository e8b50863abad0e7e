"""`wikisnap publish` and `wikisnap verify`: mirror runs to a folder, an fsspec URL and a real rsync daemon,
resumed after a kill; HuggingFace dataset folders that the real `datasets` library loads offline.

The snapshots published are real builds of the bundled enwiki sample.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_outputs import start

from conftest import ENWIKI, cli, published
from wikisnap.schemas.files import schema_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """Two committed builds of the enwiki sample, dated a month apart (two mirror runs)."""
    base = tmp_path_factory.mktemp("snapshots")
    out = {}
    for date in ("20240101", "20240201"):
        code, _o, err = cli("build", ENWIKI, "--out", base / date, "--date", date, "--member-size-mb", "1")
        assert code == 0, err
        out[date] = base / date
    return out


@pytest.fixture
def rsync_daemon(tmp_path):
    """A real rsync daemon on 127.0.0.1 serving a writable module `mirror`; yields (url, module folder)."""
    assert shutil.which("rsync"), "rsync is needed (.ci/run installs Debian's rsync)"
    module = tmp_path / "module"
    module.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "rsyncd.conf"
    conf.write_text(
        f"pid file = {tmp_path}/rsyncd.pid\nuse chroot = false\nmunge symlinks = false\n"
        f"uid = {os.getuid()}\ngid = {os.getgid()}\n[mirror]\npath = {module}\nread only = false\n"
    )
    daemon = subprocess.Popen(
        ["rsync", "--daemon", "--no-detach", "--address", "127.0.0.1", "--port", str(port), "--config", str(conf)]
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "rsync daemon did not start"
            time.sleep(0.1)
    try:
        yield f"rsync://127.0.0.1:{port}/mirror", module
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_folder_rsync_and_fsspec_give_the_same_run(snapshots, tmp_path, rsync_daemon):
    folder = tmp_path / "mirror"
    code, stdout, err = cli("publish", snapshots["20240101"], "--to", folder)
    assert code == 0, err
    url, module = rsync_daemon
    code, _o, err = cli("publish", snapshots["20240101"], "--to", f"{url}/enterprise")
    assert code == 0, err
    code, _o, err = cli("publish", snapshots["20240101"], "--to", f"file://{tmp_path / 'via-fsspec'}")
    assert code == 0, err
    tree = published(folder)
    assert published(module / "enterprise") == tree
    assert published(tmp_path / "via-fsspec") == tree
    run = "runs/20240101"
    assert tree["latest"] == f"-> {run}" and tree["latest.txt"] == f"{run}\n".encode()
    names = {k.removeprefix(f"{run}/") for k in tree if k.startswith(f"{run}/")}
    assert "enwiki-NS0-20240101-WIKISNAP-WIKITEXT.json.tar.gz" in names
    assert "enwiki-NS0-20240101-WIKISNAP-STATS.json" in names
    # The tarball is the snapshot's, unchanged; the stats and checksum files say so.
    tarball = tree[f"{run}/enwiki-NS0-20240101-WIKISNAP-WIKITEXT.json.tar.gz"]
    assert tarball == (snapshots["20240101"] / "enwiki_namespace_0.tar.gz").read_bytes()
    stats = json.loads(tree[f"{run}/enwiki-NS0-20240101-WIKISNAP-STATS.json"])
    manifest = json.loads((snapshots["20240101"] / "manifest.json").read_text())
    md5 = next(o["md5"] for o in manifest["outputs"] if o["kind"] == "tarball")
    assert stats == {"wiki": "enwiki", "md5sum": md5, "date_modified": "2024-01-01T00:00:00Z"}
    assert f"{md5}  enwiki-NS0-20240101-WIKISNAP-WIKITEXT.json.tar.gz\n" in tree[f"{run}/md5sums.txt"].decode()
    # The JSON Schema of the tarball's lines: the snapshot's own file (listed in its manifest), at
    # its snapshot path, checksummed like every file; not the schemas of files a run does not hold.
    schema = "schemas/article.schema.json"
    assert {n for n in names if n.endswith(".schema.json")} == {schema}
    shipped = {o["path"] for o in manifest["outputs"] if o["kind"] == "schema"}
    assert schema in shipped and len(shipped) > 1  # its metadata schema stays: STATS files are not metadata
    assert tree[f"{run}/{schema}"] == (snapshots["20240101"] / schema).read_bytes() == schema_bytes("article")
    schema_md5 = next(o["md5"] for o in manifest["outputs"] if o["path"] == schema)
    assert f"{schema_md5}  {schema}\n" in tree[f"{run}/md5sums.txt"].decode()
    assert f'href="{schema}"' in tree[f"{run}/index.html"].decode()
    status = json.loads(tree[f"{run}/dumpstatus.json"])
    assert status["jobs"]["wikisnap"]["status"] == "done"
    assert set(status["jobs"]["wikisnap"]["files"]) == names - {"dumpstatus.json"}
    assert status["jobs"]["wikisnap"]["files"][schema]["md5"] == schema_md5
    code, _o, err = cli("verify", folder / run)
    assert code == 0, err
    # Publishing again copies nothing.
    code, stdout, err = cli("publish", snapshots["20240101"], "--to", f"{url}/enterprise")
    assert code == 0, err
    assert published(module / "enterprise") == tree


def test_verify_passes_and_fails_on_one_flipped_byte(snapshots, tmp_path):
    dest = tmp_path / "mirror"
    code, _o, err = cli("publish", snapshots["20240101"], "--to", dest)
    assert code == 0, err
    run = dest / "runs" / "20240101"
    code, stdout, err = cli("verify", run)
    assert code == 0, err
    tarball = run / "enwiki-NS0-20240101-WIKISNAP-WIKITEXT.json.tar.gz"
    data = bytearray(tarball.read_bytes())
    data[len(data) // 2] ^= 0x01
    tarball.write_bytes(bytes(data))
    code, _o, err = cli("verify", run)
    assert code == 2
    assert "WIKISNAP-WIKITEXT.json.tar.gz: md5" in err and "sha1" in err
    # verify checks a snapshot folder against its manifest the same way.
    code, _o, err = cli("verify", snapshots["20240101"])
    assert code == 0, err


def test_killed_publish_resumes_and_latest_never_points_at_a_partial_run(snapshots, tmp_path):
    dest = tmp_path / "mirror"
    code, _o, err = cli("publish", snapshots["20240101"], "--to", dest)
    assert code == 0, err
    faults = tmp_path / "faults"
    proc = start(
        ["publish", snapshots["20240201"], "--to", dest],
        fault="pause:publish-mirror:copied:*WIKITEXT.json.tar.gz",
        faults_dir=faults,
    )
    deadline = time.monotonic() + 120
    while not list(faults.glob("*.reached")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = dest / "runs" / "20240201"
    assert json.loads((partial / "dumpstatus.json").read_text())["jobs"]["wikisnap"]["status"] == "in-progress"
    assert os.readlink(dest / "latest") == "runs/20240101"
    assert (dest / "latest.txt").read_text() == "runs/20240101\n"
    code, _o, err = cli("verify", partial)
    assert code == 2 and "not 'done'" in err
    # The re-run copies only what is missing and then moves latest.
    code, stdout, err = cli("publish", snapshots["20240201"], "--to", dest, "--keep", "1")
    assert code == 0, err
    assert "6 file(s) copied, 1 already there" in stdout
    assert os.readlink(dest / "latest") == "runs/20240201"
    assert sorted(p.name for p in (dest / "runs").iterdir()) == ["20240201"]  # --keep 1
    code, _o, err = cli("verify", partial)
    assert code == 0, err


def test_publish_refuses_a_changed_snapshot_and_a_rewritten_run(snapshots, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(snapshots["20240101"], changed, symlinks=True)
    shard = next((changed / "parquet").rglob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"X")
    code, _o, err = cli("publish", changed, "--to", tmp_path / "mirror")
    assert code == 2 and "changed after it was committed" in err
    assert not (tmp_path / "mirror").exists()
    code, _o, err = cli("publish", snapshots["20240101"], "--to", tmp_path / "m2")
    assert code == 0, err
    code, _o, err = cli("publish", snapshots["20240201"], "--to", tmp_path / "m2", "--run-date", "20240101")
    assert code == 2 and "immutable" in err


# -- HuggingFace layout --------------------------------------------------------------------------------------


def load_offline(folder: Path, config: str, tmp_path: Path):
    """`datasets.load_dataset(folder, config)` in a fresh process with the hub switched off."""
    script = (
        "import datasets, json, sys\n"
        f"ds = datasets.load_dataset({str(folder)!r}, {config!r}, split='train')\n"
        "print(json.dumps({'rows': ds.num_rows, 'columns': ds.column_names, "
        "'ids': list(ds['identifier'] if 'identifier' in ds.column_names else ds['id']), "
        "'editor': str(ds.features['version']['editor']) if 'version' in ds.column_names else ''}))\n"
    )
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hf_folder_loads_with_datasets_and_its_card_parses(snapshots, tmp_path):
    from huggingface_hub import DatasetCard

    folder = tmp_path / "hf"
    code, _o, err = cli("publish", snapshots["20240101"], "--to", folder, "--layout", "hf", "--shard-mb", "0.5")
    assert code == 0, err
    shards = sorted((folder / "data" / "enwiki" / "namespace_0").glob("train-*.parquet"))
    assert len(shards) > 1 and shards[-1].name.endswith(f"-of-{len(shards):05d}.parquet")
    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == "cc-by-sa-4.0" and card.data.language == ["en"]
    configs = card.data.to_dict()["configs"]
    assert configs == [
        {
            "config_name": "enwiki_ns0",
            "data_files": [{"split": "train", "path": "data/enwiki/namespace_0/train-*.parquet"}],
            "default": True,
        }
    ]
    assert "Licence and attribution" in card.text and "enwiki-latest-pages-articles1" in card.text
    loaded = load_offline(folder, "enwiki_ns0", tmp_path)
    assert loaded["rows"] == 106
    snapshot_ids = []
    import pyarrow.parquet as pq

    for shard in sorted(
        (snapshots["20240101"] / "parquet").rglob("*.parquet"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
    ):
        snapshot_ids += pq.read_table(shard, columns=["identifier"]).column(0).to_pylist()
    assert loaded["ids"] == snapshot_ids
    assert "List(Value('string'))" in loaded["editor"] or "Sequence" in loaded["editor"]  # typed, not JSON text
    # The folder is committed like any wikisnap output.
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {o["path"] for o in manifest["outputs"]} == {
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".wikisnap" not in p.parts
    } - {"manifest.json"}


def test_hf_upload_dry_run_and_call(snapshots, tmp_path, monkeypatch):
    code, stdout, err = cli(
        "publish",
        snapshots["20240101"],
        "--to",
        "hf://datasets/someone/enwiki-snap",
        "--dry-run",
        "--work-dir",
        tmp_path,
    )
    assert code == 0, err
    assert "upload to someone/enwiki-snap (dataset)" in stdout
    assert "README.md" in stdout and "data/enwiki/namespace_0/train-00000-of-00001.parquet" in stdout
    from wikisnap.pipelines.hfdataset import upload

    calls = []

    class FakeApi:  # records what would go over the network; no hub is reachable here
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw["repo_id"], kw))

    folder = tmp_path / "someone__enwiki-snap"
    upload("someone/enwiki-snap", str(folder), api=FakeApi())
    assert calls[0] == ("create_repo", "someone/enwiki-snap", {"repo_type": "dataset", "exist_ok": True})
    name, repo, kw = calls[1]
    assert name == "upload_folder" and kw["folder_path"] == str(folder) and kw["repo_type"] == "dataset"
    assert ".wikisnap/**" in kw["ignore_patterns"]
