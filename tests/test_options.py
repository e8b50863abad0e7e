"""One set of options: every flag has help; a flag more than one command takes has one name, one
meaning and one help text; sync's TOML keys are the flag names; options a layout does not take are
refused, not ignored."""

from __future__ import annotations

import argparse

import pytest

from conftest import cli
from wikisnap.pipelines import syncconfig
from wikisnap.pipelines.cli import make_parser
from wikisnap.pipelines.options import SHARED_FLAGS, SQL_TABLES, parse_enrichment

# sync's keys that are no flag of any command: what only a scheduled sync has
SYNC_ONLY_KEYS = {"incr_mirror", "work", "wikis", "keep_snapshots", "beam_args", "publish"}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = make_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_flag_of_every_command_has_help():
    found = commands()
    assert {"build", "update", "publish", "verify", "sync", "recover", "show"} <= set(found)
    for name, parser in found.items():
        parser.format_help()  # every help text formats (a stray % would raise here)
        for action in options(parser):
            flag = "/".join(action.option_strings) or action.dest
            assert action.help and action.help != argparse.SUPPRESS, f"wikisnap {name} {flag} has no help"


def test_a_flag_two_commands_take_has_one_name_and_one_meaning():
    by_flag: dict[str, dict[str, argparse.Action]] = {}
    by_dest: dict[str, set[str]] = {}
    for name, parser in commands().items():
        for action in options(parser):
            for flag in action.option_strings:
                by_flag.setdefault(flag, {})[name] = action
            if action.option_strings:
                by_dest.setdefault(action.dest, set()).update(action.option_strings)
    shared = {flag: taken for flag, taken in by_flag.items() if len(taken) > 1}
    assert {"--out", "--formats", "--date", "--workers", "--json", "--allow-truncated"} <= set(shared)
    for flag, taken in shared.items():
        helps = {action.help for action in taken.values()}
        assert len(helps) == 1, f"{flag} means different things in {', '.join(sorted(taken))}: {helps}"
        kinds = {(type(action).__name__, action.dest, action.type, action.metavar) for action in taken.values()}
        assert len(kinds) == 1, f"{flag} is parsed differently by {', '.join(sorted(taken))}: {kinds}"
        assert flag in SHARED_FLAGS, f"{flag} is taken by {', '.join(sorted(taken))}: define it in SHARED_FLAGS"
    for dest, flags in by_dest.items():
        assert len(flags) == 1, f"one option ({dest}), several names: {sorted(flags)}"


def test_the_check_sees_two_meanings_of_one_flag():
    a, b = argparse.ArgumentParser(), argparse.ArgumentParser()
    a.add_argument("--keep", help="runs kept")
    b.add_argument("--keep", help="snapshots kept")
    assert {x.help for p in (a, b) for x in options(p) if "--keep" in x.option_strings} == {
        "runs kept",
        "snapshots kept",
    }


def test_sync_keys_are_the_flag_names():
    dests = {a.dest for parser in commands().values() for a in options(parser) if a.option_strings}
    assert set(syncconfig._TOP_KEYS) - dests == SYNC_ONLY_KEYS
    publish = {a.dest for a in options(commands()["publish"])}
    assert set(syncconfig._TARGET_KEYS) <= publish


def test_sync_refuses_the_old_key_and_options_of_another_layout(tmp_path):
    config = tmp_path / "sync.toml"
    base = 'mirror = "m"\nwork = "w"\nwikis = ["enwiki"]\n'
    config.write_text(base + "keep = 2\n")
    with pytest.raises(syncconfig.ConfigError, match="`keep` is now `keep_snapshots"):
        syncconfig.load_config(str(config))
    config.write_text(base + '[[publish]]\nto = "d"\nshard_mb = 10\n')
    with pytest.raises(syncconfig.ConfigError, match="`shard_mb` is the largest Parquet shard of the hf layout"):
        syncconfig.load_config(str(config))
    config.write_text(base + 'keep_snapshots = 2\nfail_on_dead_letters = true\ncategories = "sql"\n')
    loaded = syncconfig.load_config(str(config))
    assert (loaded.keep_snapshots, loaded.fail_on_dead_letters, loaded.categories) == (2, True, "sql")
    config.write_text(base + "fail_on_dead_letters = 1\n")
    with pytest.raises(syncconfig.ConfigError, match="`fail_on_dead_letters` must be a bool"):
        syncconfig.load_config(str(config))


def test_publish_refuses_options_its_layout_does_not_take(enwiki_build, tmp_path):
    for args, message in (
        (["--to", str(tmp_path / "hf"), "--layout", "hf", "--keep", "3"], "--keep does not apply to the hf layout"),
        (["--to", str(tmp_path / "m"), "--shard-mb", "10"], "--shard-mb does not apply to the mirror layout"),
        (["--to", str(tmp_path / "m"), "--work-dir", str(tmp_path)], "--work-dir does not apply to the mirror"),
        (["--to", str(tmp_path / "hf"), "--layout", "hf", "--work-dir", str(tmp_path)], "only to uploads to hf://"),
    ):
        code, out, err = cli("publish", str(enwiki_build), *args)
        assert code == 2 and message in err, (args, err)
        assert not (tmp_path / "hf").exists() and not (tmp_path / "m").exists()


def test_enrichment_names_sql_tables_of_a_dump_run():
    assert parse_enrichment("categorylinks,page_props") == ("page_props", "categorylinks")  # SQL_TABLES order
    assert parse_enrichment("none") == () and set(SQL_TABLES) >= {"page", "categorylinks"}
    with pytest.raises(argparse.ArgumentTypeError, match="--enrichment takes a list of"):
        parse_enrichment("categories")


def test_a_dump_run_reads_only_the_enrichment_tables_and_waits_for_no_other(tmp_path):
    import json

    from wikisnap.transforms.formats.dumprun import plan_dump_run

    def job(status, *names):
        return {"status": status, "files": {n: {"size": 1, "md5": "0" * 32} for n in names}}

    jobs = {
        "articlesdumprecombine": job("done", "enwiki-20240101-pages-articles.xml.bz2"),
        "pagepropstable": job("done", "enwiki-20240101-page_props.sql.gz"),
        "categorylinkstable": job("in-progress", "enwiki-20240101-categorylinks.sql.gz"),
    }
    (tmp_path / "dumpstatus.json").write_text(json.dumps({"jobs": jobs, "version": "0.8"}))

    def tables(**kwargs) -> list[str]:
        return [p.rsplit("-", 1)[1] for p in plan_dump_run(str(tmp_path), **kwargs).sql]

    assert tables(force=True) == ["page_props.sql.gz", "categorylinks.sql.gz"]  # default: every table
    assert tables(force=True, tables=("categorylinks",)) == ["categorylinks.sql.gz"]
    assert tables(force=True, tables=("page_props",)) == ["page_props.sql.gz"]
    assert not plan_dump_run(str(tmp_path), tables=("page_props",)).not_done  # the unfinished one is not used
