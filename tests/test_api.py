"""The Python API (`wikisnap.build(...)` …) is the command line's own engine: the same bytes, the
same checks and messages, exit codes carried by typed exceptions; `--json` prints its result."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wikisnap
from conftest import DATA, ENWIKI, published
from wikisnap.pipelines import api
from wikisnap.pipelines.cli import main

RECENTCHANGE = DATA / "events" / "polars-guide__enwiki-recentchange-100.ndjson"


def cli(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(["-q", *argv])
        except SystemExit as exc:  # argparse's own refusal
            code = exc.code
    return code, stdout.getvalue(), stderr.getvalue()


def manifest_files(out: Path) -> dict[str, str]:
    """path → md5 of every output the manifest of `out` lists (timings aside, what a run wrote)."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {o["path"]: o["md5"] for o in manifest["outputs"]}


def without_timing(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in ("timing", "run")}  # the run id is unique by design


def test_build_writes_the_bytes_of_the_cli_and_returns_its_manifest(enwiki_build, tmp_path):
    result = wikisnap.build([ENWIKI], out=tmp_path / "api")
    assert manifest_files(tmp_path / "api") == manifest_files(enwiki_build)
    for name in manifest_files(enwiki_build):
        assert (tmp_path / "api" / name).read_bytes() == (enwiki_build / name).read_bytes(), name
    manifest = json.loads((tmp_path / "api" / "manifest.json").read_text())
    assert without_timing(manifest) == without_timing(json.loads((enwiki_build / "manifest.json").read_text()))
    assert isinstance(result, wikisnap.Result) and result.exit_code == 0 and result.command == "build"
    assert result.manifest_path == str(tmp_path / "api" / "manifest.json")
    assert {o.path: o.md5 for o in result.outputs} == manifest_files(enwiki_build)
    assert result.counts == manifest["counts"] and result.counts["enwiki"]["records/ns0/written"] == 106
    assert result.timing == manifest["timing"] and result.seconds >= result.timing["seconds"]
    assert result.dead_letters == 0
    # a result travels as JSON (XCom, --json) and comes back equal
    assert api.Result.from_dict(json.loads(result.to_json())) == result


def test_build_options_as_python_values_equal_the_same_flags(tmp_path):
    flags = ["--namespaces", "0", "--formats", "ndjson,text", "--date", "20240101", "--gzip-level", "6"]
    code, _, err = cli("build", str(ENWIKI), "--out", str(tmp_path / "cli"), *flags)
    assert code == 0, err
    result = wikisnap.build(
        [str(ENWIKI)],
        out=str(tmp_path / "api"),
        namespaces=[0],
        formats=("ndjson", "text"),
        date="20240101",
        gzip_level=6,
    )
    assert manifest_files(tmp_path / "api") == manifest_files(tmp_path / "cli")
    assert {o.kind for o in result.outputs} == {"tarball", "metadata", "text", "schema"}


def test_update_writes_the_bytes_of_the_cli(enwiki_build, tmp_path):
    code, _, err = cli("update", "--base", str(enwiki_build), str(RECENTCHANGE), "--out", str(tmp_path / "cli"))
    assert code == 0, err
    result = wikisnap.update([RECENTCHANGE], base=enwiki_build, out=tmp_path / "api")
    assert manifest_files(tmp_path / "api") == manifest_files(tmp_path / "cli")
    assert (
        result.command == "update"
        and result.counts == json.loads((tmp_path / "cli" / "manifest.json").read_text())["counts"]
    )


def test_publish_and_verify_write_and_check_the_tree_of_the_cli(enwiki_build, tmp_path):
    code, out, err = cli("publish", str(enwiki_build), "--to", str(tmp_path / "cli"), "--run-date", "20240101")
    assert code == 0, err
    result = wikisnap.publish(enwiki_build, to=str(tmp_path / "api"), run_date="20240101")
    assert published(tmp_path / "api") == published(tmp_path / "cli")
    assert result.details["run"] == "runs/20240101" and result.details["layout"] == "mirror"
    run = tmp_path / "api" / "runs" / "20240101"
    assert sorted(result.details["copied"]) == sorted(
        p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and p.name != "dumpstatus.json"
    )
    assert wikisnap.verify(run).outcome == "verified"
    # a damaged file: VerifyFailed names it, with the exit code the command line returns
    tarball = next(run.glob("*.tar.gz"))
    data = tarball.read_bytes()
    tarball.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(wikisnap.VerifyFailed) as caught:
        wikisnap.verify(run)
    assert caught.value.exit_code == 2 and any(tarball.name in p for p in caught.value.problems)
    code, out, err = cli("verify", str(run))
    assert code == 2 and tarball.name in err


def test_sync_publishes_the_tree_of_the_cli(tmp_path):
    from test_sync import stage, write_config

    stage(tmp_path / "mirror", 1)
    trees = {}
    for how in ("cli", "api"):
        config = write_config(
            tmp_path / f"{how}.toml", str(tmp_path / "mirror"), tmp_path / how / "work", tmp_path / how / "dest"
        )
        if how == "cli":
            code, out, err = cli("sync", "--config", str(config), "--no-report")
            assert code == 0, err
        else:
            result = wikisnap.sync(config, no_report=True)
            assert result.exit_code == 0 and result.outcome == "done" and result.details["wikis"]["enwiki"]["current"]
            again = wikisnap.sync(config, no_report=True)
            assert again.exit_code == 99 and "nothing new upstream" in again.message
        trees[how] = published(tmp_path / how / "dest")
    assert trees["api"] == trees["cli"] and any(name.endswith("dumpstatus.json") for name in trees["api"])


def test_failures_raise_typed_errors_with_the_cli_exit_code_and_message(enwiki_build, tmp_path):
    with pytest.raises(wikisnap.UsageError, match="--namespaces takes comma-separated numbers") as caught:
        wikisnap.build([ENWIKI], out=tmp_path / "x", namespaces="zero")
    assert caught.value.exit_code == 2
    code, _, err = cli("build", str(ENWIKI), "--out", str(tmp_path / "x"), "--namespaces", "zero")
    assert code == 2 and "--namespaces takes comma-separated numbers" in err
    with pytest.raises(wikisnap.UsageError, match="--gzip-level: 12 is not one of"):
        wikisnap.build([ENWIKI], out=tmp_path / "x", gzip_level=12)
    with pytest.raises(TypeError, match="unexpected keyword argument 'namespace'"):
        wikisnap.build([ENWIKI], out=tmp_path / "x", namespace=[0])
    with pytest.raises(wikisnap.UsageError, match="give INPUT dump files or --dump-run"):
        wikisnap.build(out=tmp_path / "x")
    # a missing input: the command line's one line, exit 2, as a typed error
    with pytest.raises(wikisnap.WikisnapError) as caught:
        wikisnap.build([tmp_path / "missing.xml.bz2"], out=tmp_path / "x")
    code, _, err = cli("build", str(tmp_path / "missing.xml.bz2"), "--out", str(tmp_path / "y"))
    assert caught.value.exit_code == code == 2 and str(caught.value) in err
    # publishing over a published run with other bytes: PublishError, exit 2
    wikisnap.publish(enwiki_build, to=str(tmp_path / "mirror"), run_date="20240101")
    other = tmp_path / "other"
    shutil.copytree(enwiki_build, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["options"]["date"] = "20240101"
    (other / "enwiki_namespace_0.json").write_bytes(b"{}\n")
    entry = next(o for o in manifest["outputs"] if o["path"] == "enwiki_namespace_0.json")
    import hashlib

    entry["md5"], entry["bytes"] = hashlib.md5(b"{}\n").hexdigest(), 3
    (other / "manifest.json").write_text(json.dumps(manifest))
    from wikisnap.pipelines.snapshot import PublishError

    with pytest.raises(PublishError, match="immutable") as caught:
        wikisnap.publish(other, to=str(tmp_path / "mirror"), run_date="20240101")
    assert caught.value.exit_code == 2
    from wikisnap.pipelines.commit import LockHeld, OutputError

    assert issubclass(LockHeld, wikisnap.WikisnapError) and LockHeld.exit_code == 75
    assert issubclass(OutputError, wikisnap.WikisnapError) and OutputError.exit_code == 2


def test_json_prints_the_result_alone_on_stdout_and_an_error_as_json_too(enwiki_build, tmp_path):
    code, out, err = cli("verify", str(enwiki_build), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["command"] == "verify" and document["outcome"] == "verified" and document["exit_code"] == 0
    code, out, err = cli("publish", str(enwiki_build), "--to", str(tmp_path / "m"), "--dry-run", "--json")
    assert code == 0, err
    document = json.loads(out)  # the dry run's listing went to stderr, stdout is one document
    assert document["outcome"] == "dry run" and "dumpstatus.json" in err
    (tmp_path / "nothing").mkdir()
    code, out, err = cli("recover", str(tmp_path / "nothing"), "--json")
    assert code == 0 and json.loads(out)["outcome"] == "empty"
    code, out, err = cli("recover", str(tmp_path / "missing"), "--json")  # issue 22: nothing to recover is exit 2
    assert code == 2 and json.loads(out)["exit_code"] == 2 and "nothing to recover" in err
    code, out, err = cli("verify", str(tmp_path), "--json")
    assert code == 2 and json.loads(out) == {"command": "verify", "exit_code": 2, "error": json.loads(out)["error"]}
    assert "nothing to verify" in err


def test_every_api_function_takes_its_commands_flags_with_the_same_defaults():
    for command, fn in (("build", wikisnap.build), ("update", wikisnap.update), ("publish", wikisnap.publish)):
        actions = {a.dest: a for a in api._parser(command)._actions}
        params = inspect.signature(fn).parameters
        assert set(params) - {"beam_args"} == set(actions), command
        for name, param in params.items():
            if name in ("beam_args", "inputs") or param.default in (inspect.Parameter.empty, None):
                continue
            default = actions[name].default
            assert (list(param.default) if isinstance(param.default, tuple) else param.default) == (
                list(default) if isinstance(default, tuple) else default
            ), (command, name)
        assert fn.__doc__ and ">>>" in fn.__doc__


def test_importing_wikisnap_stays_cheap():
    probe = (
        "import sys, wikisnap; print('apache_beam' in sys.modules, 'pyarrow' in sys.modules, callable(wikisnap.build))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False", "True"]
