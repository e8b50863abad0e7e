"""Every flag and value a user gives is checked (issue 22, items 6-11): a mistake is refused in one
line with exit 2 before anything is read or written, never passed on to be ignored.

Each case runs the program as a scheduler does (`python -m wikisnap.pipelines.cli …`, a real
process) on the real dumps in tests/data.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ENWIKI, wikisnap
from wikisnap.pipelines.argv import beam_flags, split_args
from wikisnap.pipelines.cli import make_parser

SMALL = Path(__file__).parent / "data" / "xml" / "operations-dumps" / "pages-articles-sample1.xml-p1p1500.bz2"


def refused(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2 with one error line that says each of `needles`, no traceback, nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# -- 6: unknown, mistyped and abbreviated flags --------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--qidmap", "qids.csv", "--fail-on-deadletters"], ["--qidmap", "did you mean --qid-map?"]),
        (["--fail-on-deadletters"], ["--fail-on-deadletters", "did you mean --fail-on-dead-letters?"]),
        (["--formts", "text"], ["--formts", "did you mean --formats?"]),
        (["--namespace=0"], ["--namespace", "did you mean --namespaces?"]),  # an abbreviation
        (["--setup-file", "setup.py"], ["--setup-file", "did you mean --setup_file?"]),  # Beam's, misspelt
        (["--runner=DirectRunner", "--num_wrokers", "3"], ["--num_wrokers", "did you mean --num_workers?"]),
    ],
)
def test_build_refuses_a_flag_neither_wikisnap_nor_beam_knows(tmp_path, flags, said):
    done = wikisnap("build", ENWIKI, "--out", tmp_path / "out", *flags)
    refused(done, "unknown flag", *said)
    assert not (tmp_path / "out").exists()  # refused before the output folder is touched


def test_update_and_publish_refuse_unknown_flags_too(tmp_path):
    refused(wikisnap("update", "--base", tmp_path, ENWIKI, "--out", tmp_path / "o", "--datte", "20240101"), "--date?")
    # publish runs no pipeline: a Beam option is not one of its flags
    refused(wikisnap("publish", tmp_path, "--to", tmp_path / "d", "--runner", "DirectRunner"), "--runner")


def test_a_stray_argument_between_flags_is_refused(tmp_path):
    refused(wikisnap("build", ENWIKI, "--workers", "1", SMALL, "--out", tmp_path / "out"), str(SMALL))


def test_beam_options_pass_through_in_order_and_quiet_counts_anywhere():
    argv = [
        "build",
        "a.xml",
        "--runner",
        "DataflowRunner",
        "--out",
        "o",
        "--experiments=x,y",
        "--no_use_public_ips",
        "--setup_file",
        "./setup.py",
        "--pipeline_type_check",
        "-q",
        "--temp_location",
        "gs://b/tmp",
        "-v",
    ]
    args, beam_args = split_args(make_parser(), argv)
    assert args.inputs == ["a.xml"] and args.out == "o" and args.quiet and args.verbose
    assert beam_args == [
        "--runner",
        "DataflowRunner",
        "--experiments=x,y",
        "--no_use_public_ips",
        "--setup_file",
        "./setup.py",
        "--pipeline_type_check",
        "--temp_location",
        "gs://b/tmp",
    ]


def test_the_known_beam_flags_are_beams_registered_options():
    from apache_beam.options.pipeline_options import PipelineOptions

    known = beam_flags()
    for flag in ("--runner", "--project", "--region", "--temp_location", "--setup_file", "--flink_master"):
        assert flag in known, flag
    assert "--qidmap" not in known and "--runer" not in known
    # the same flags Beam itself parses without an "Unparseable argument" warning
    options = PipelineOptions(["--runner", "DirectRunner", "--flink_master", "x:1"])
    assert options.get_all_options()["flink_master"] == "x:1"


def test_quiet_after_the_command_works_without_a_beam_warning(tmp_path):
    done = wikisnap("build", SMALL, "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Unparseable" not in done.stderr and "INFO" not in done.stderr
    assert (tmp_path / "out" / "manifest.json").exists()


# -- 7, 8: publish --keep and --run-date ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--keep", "-1"], "--keep"),
        (["--keep", "0"], "--keep"),
        (["--keep", "two"], "--keep"),
        (["--run-date", "../../x"], "--run-date takes YYYYMMDD"),
        (["--run-date", "2020-01-01"], "--run-date takes YYYYMMDD"),
        (["--run-date", "20200231"], "not a calendar date"),
        (["--run-date", "２０２００１０１"], "--run-date takes YYYYMMDD"),  # full-width digits are digits to Python
    ],
)
def test_publish_refuses_bad_keep_and_run_date(enwiki_build, tmp_path, flags, said):
    dest = tmp_path / "mirror"
    refused(wikisnap("publish", enwiki_build, "--to", dest, *flags), said)
    assert not dest.exists()
    assert not (tmp_path / "x").exists()


def test_publish_keep_one_keeps_the_newest_run(enwiki_build, tmp_path):
    dest = tmp_path / "mirror"
    for date in ("20240101", "20240201"):
        done = wikisnap("publish", enwiki_build, "--to", dest, "--run-date", date, "--keep", "1")
        assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(dest / "runs")) == ["20240201"]


# -- 9: --date before 1970 -------------------------------------------------------------------------------


def test_build_refuses_a_date_before_1970(tmp_path):
    done = wikisnap("build", SMALL, "--out", tmp_path / "out", "--date", "19000101")
    refused(done, "--date 19000101 is before 1970-01-01")
    assert not (tmp_path / "out").exists()


# -- 10: --workers beyond any use ------------------------------------------------------------------------


def test_workers_are_capped_to_the_cores_and_the_work_and_the_log_says_so(tmp_path):
    done = wikisnap("build", SMALL, "--out", tmp_path / "out", "--workers", "1000")
    assert done.returncode == 0, done.stderr[-2000:]
    cores = os.cpu_count() or 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    used = manifest["options"]["workers"]
    assert used == cores  # one input file, one work unit: no more processes than the cores
    assert f"--workers 1000 capped to {used}" in done.stderr


# -- 11: publish into itself, recover of nothing ----------------------------------------------------------


def test_publish_refuses_a_destination_inside_the_snapshot_or_holding_it(enwiki_build, tmp_path):
    before = sorted(p.name for p in enwiki_build.iterdir())
    refused(wikisnap("publish", enwiki_build, "--to", enwiki_build), "inside it")
    refused(wikisnap("publish", enwiki_build, "--to", enwiki_build / "mirror"), "inside it")
    refused(wikisnap("publish", enwiki_build, "--to", enwiki_build.parent), "is inside --to")
    assert sorted(p.name for p in enwiki_build.iterdir()) == before


def test_publish_to_a_file_says_what_is_wrong(enwiki_build, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("not a folder\n")
    for to in (target, target / "mirror"):
        refused(wikisnap("publish", enwiki_build, "--to", to), f"{target} is a file, not a folder")


def test_recover_of_a_missing_folder_or_a_file_is_refused(tmp_path):
    refused(wikisnap("recover", tmp_path / "nonexistent"), "does not exist")
    assert not (tmp_path / "nonexistent").exists()
    (tmp_path / "f").write_text("x")
    refused(wikisnap("recover", tmp_path / "f"), "is a file")


def test_sync_refuses_a_beam_argument_beam_does_not_know(tmp_path):
    config = tmp_path / "sync.toml"
    config.write_text(
        f'mirror = "{tmp_path / "mirror"}"\nwork = "{tmp_path / "work"}"\nwikis = ["elwikivoyage"]\n'
        'beam_args = ["--runner", "DirectRunner", "--direct_num_wrokers", "2"]\n'
    )
    done = wikisnap("sync", "--config", config)
    assert done.returncode == 2, done.stderr
    assert "`beam_args`: unknown flag --direct_num_wrokers" in done.stderr
    assert "did you mean --direct_num_workers?" in done.stderr
