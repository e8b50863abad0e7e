"""The dataset card of `publish --layout hf` (issue 23 item 5): no placeholders, the dump checksums,
counts in words, a field table, one config per (wiki, namespace) with the articles the default, a
`.gitignore` that keeps the lock out of a `git push`, and a load line that works offline.

The snapshot is a real build of two bundled samples: the enwiki articles sample (namespace 0, with
`--formats text`) and the elwikivoyage sample (namespaces 0, 6, 10 and 14).
"""

from __future__ import annotations

import email.message
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ELWIKIVOYAGE, ENWIKI, cli

NS_COUNTS = {"elwikivoyage": {0: 1310, 6: 7, 10: 229, 14: 147}, "enwiki": {0: 106}}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("card") / "snapshot"
    code, _o, err = cli(
        "build", ENWIKI, ELWIKIVOYAGE, "--out", out, "--date", "20240101", "--formats", "ndjson,parquet,text"
    )
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def published(snapshot, tmp_path_factory) -> tuple[Path, str]:
    """The dataset folder and what `publish` printed."""
    folder = tmp_path_factory.mktemp("hf") / "dataset"
    code, stdout, err = cli("publish", snapshot, "--to", folder, "--layout", "hf")
    assert code == 0, err
    return folder, stdout


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row of `text` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_card_has_no_placeholder_and_names_real_sources_and_counts(snapshot, published):
    folder, _stdout = published
    card = (folder / "README.md").read_text(encoding="utf-8")
    for placeholder in ("PATH_OR_REPO", "https://github.com/)", 'https://github.com/"'):
        assert placeholder not in card
    assert not re.search(r"(?<!`)``(?!`)", card)  # no empty inline code
    rows = table_rows(card)
    assert len(rows) > 30  # the config, field and source tables
    assert all(all(cells) for cells in rows), [cells for cells in rows if not all(cells)]
    # setup.py names no project URL, so the card links none
    assert "built with wikisnap 0.1.0 (Apache Beam" in card and "[wikisnap](" not in card
    # every dump file with the checksums the build computed
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 2
    header = next(cells for cells in rows if cells[0] == "file")
    assert header == ["file", "wiki", "bytes", "pages", "md5", "sha1"]
    for entry in manifest["inputs"]:
        row = next(cells for cells in rows if cells[0] == f"`{os.path.basename(entry['path'])}`")
        assert row[1:] == [
            entry["dbname"],
            f"{entry['bytes']:,}",
            f"{entry['pages']:,}",
            f"`{entry['md5']}`",
            f"`{entry['sha1']}`",
        ]
        assert re.fullmatch(r"[0-9a-f]{32}", entry["md5"]) and re.fullmatch(r"[0-9a-f]{40}", entry["sha1"])
    # counts in words, per wiki
    assert "- elwikivoyage: 1,310 articles, 7 file pages, 229 templates, 147 category pages\n" in card
    assert "- enwiki: 106 articles\n" in card
    assert "written/" not in card and "records/ns" not in card
    # one line per field, with its type
    records, text = card.split("### Fields of the `{db}_ns{n}` configs")[1].split("### Fields of the `*_text` configs")
    fields = {cells[0]: cells[1:] for cells in table_rows(records.split("## Source")[0])}
    assert list(fields)[:3] == ["field", "`name`", "`identifier`"] and len(fields) == 25
    assert fields["`categories`"] == ["list of struct", "categories the page is in (name and URL)"]
    assert fields["`date_modified`"] == ["timestamp (UTC)", "time of the revision this row holds"]
    fields = {cells[0]: cells[1:] for cells in table_rows(text.split("## Source")[0])}
    assert fields["`text`"] == ["string", "the page's plain text"]
    assert fields["`date_modified`"] == ["timestamp (UTC)", "time of the revision this row holds"]
    assert fields["`id`"] == ["string", "page id in its wiki, as a string (as in wikimedia/wikipedia)"]


def test_one_config_per_namespace_with_the_articles_the_default(published, tmp_path):
    from huggingface_hub import DatasetCard

    folder, stdout = published
    card = DatasetCard.load(folder / "README.md")
    configs = card.data.to_dict()["configs"]
    names = [c["config_name"] for c in configs]
    assert names == [
        "elwikivoyage_ns0",
        "elwikivoyage_ns6",
        "elwikivoyage_ns10",
        "elwikivoyage_ns14",
        "enwiki_ns0",
        "elwikivoyage_text",
        "enwiki_text",
    ]
    assert [c["config_name"] for c in configs if c.get("default")] == ["elwikivoyage_ns0"]
    for c in configs[:5]:
        ns = c["config_name"].rsplit("_ns", 1)[1]
        assert c["data_files"] == [
            {"split": "train", "path": f"data/{c['config_name'][: -len(ns) - 3]}/namespace_{ns}/train-*.parquet"}
        ]
    assert card.data.language == ["el", "en"]
    # the load line of the card and of publish name the folder itself
    line = f'load_dataset("{folder}", "elwikivoyage_ns0", split="train")'
    assert f"ds = {line}\n" in card.text
    assert stdout.strip().splitlines()[-1] == f"load it: {line}"
    # datasets reads every config offline, each namespace alone
    script = (
        "import datasets, json, sys\n"
        "out = {}\n"
        "for name in sys.argv[2:]:\n"
        "    ds = datasets.load_dataset(sys.argv[1], name, split='train')\n"
        "    ns = sorted({r['identifier'] for r in ds['namespace']}) if 'namespace' in ds.column_names else None\n"
        "    out[name] = [ds.num_rows, ns]\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), *names], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    expected = {f"{db}_ns{ns}": [n, [ns]] for db, counts in NS_COUNTS.items() for ns, n in counts.items()}
    expected |= {"elwikivoyage_text": [1310, None], "enwiki_text": [106, None]}
    assert loaded == expected


def test_the_folder_ignores_its_lock_for_git(published, tmp_path):
    folder, _stdout = published
    assert (folder / ".gitignore").read_text() == ".wikisnap/\n"
    assert (folder / ".wikisnap" / "lock").exists()
    assert shutil.which("git"), "git is needed to check what a push of the folder would carry"
    repo = tmp_path / "repo"
    shutil.copytree(folder, repo)
    git = ["git", "-C", str(repo), "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    staged = subprocess.run([*git, "ls-files"], check=True, capture_output=True, text=True).stdout.split()
    assert ".gitignore" in staged and "README.md" in staged and "manifest.json" in staged
    assert not [p for p in staged if p.startswith(".wikisnap")]
    # and the manifest lists it like any other file of the dataset
    manifest = json.loads((folder / "manifest.json").read_text())
    assert ".gitignore" in {o["path"] for o in manifest["outputs"]}


def test_an_upload_card_names_the_repo_id(snapshot, tmp_path):
    code, stdout, err = cli(
        "publish", snapshot, "--to", "hf://datasets/someone/wiki-snap", "--dry-run", "--work-dir", tmp_path
    )
    assert code == 0, err
    assert ".gitignore" in stdout
    card = (tmp_path / "someone__wiki-snap" / "README.md").read_text(encoding="utf-8")
    assert 'ds = load_dataset("someone/wiki-snap", "elwikivoyage_ns0", split="train")\n' in card
    assert str(tmp_path) not in card


def test_words_and_project_url(monkeypatch):
    from wikisnap.pipelines import hfcard

    assert [hfcard.count_words(ns, n) for ns, n in ((0, 1), (0, 2), (6, 1), (10, 3), (14, 1), (4, 1), (4, 1200))] == [
        "1 article",
        "2 articles",
        "1 file page",
        "3 templates",
        "1 category page",
        "1 page in namespace 4",
        "1,200 pages in namespace 4",
    ]
    # the installed metadata names no URL (setup.py has none): no link rather than a stand-in
    assert hfcard.project_url() is None

    def metadata(home: str, *urls: str):
        meta = email.message.Message()
        meta["Home-page"] = home
        for url in urls:
            meta["Project-URL"] = url
        return lambda _name: meta

    monkeypatch.setattr(hfcard.importlib.metadata, "metadata", metadata("UNKNOWN", "Source, https://example.org/ws"))
    assert hfcard.project_url() == "https://example.org/ws"
    monkeypatch.setattr(hfcard.importlib.metadata, "metadata", metadata("https://github.com/"))
    assert hfcard.project_url() is None
    monkeypatch.setattr(hfcard.importlib.metadata, "metadata", metadata("https://wikisnap.example/home"))
    assert hfcard.project_url() == "https://wikisnap.example/home"


def test_every_column_has_a_description():
    """A column added to a schema needs its line in the card's field table."""
    from wikisnap.pipelines.hfcard import FIELD_DESCRIPTIONS
    from wikisnap.schemas.arrow import ARTICLE_SCHEMA, TEXT_SCHEMA
    from wikisnap.schemas.structured import STRUCTURED_SCHEMA

    for schema in (ARTICLE_SCHEMA, TEXT_SCHEMA, STRUCTURED_SCHEMA):
        assert [name for name in schema.names if name not in FIELD_DESCRIPTIONS] == []


def test_the_source_of_an_update_and_of_a_synced_update():
    """An update's manifest names its base folder and diff paths; a sync publishes the base's
    snapshot id and the diffs' URLs with their md5 (pipelines/sync.py published_manifest)."""
    from wikisnap.pipelines.hfcard import counts_lines, source_section

    update = {
        "command": "update",
        "base": "/data/enwiki/20240101/",
        "diffs": [{"path": "/in/a-incr.xml.bz2", "kind": "xml"}],
    }
    text = source_section(update)
    assert "Updated from the snapshot `20240101`." in text and "- `a-incr.xml.bz2` (xml)" in text
    assert "Dump files read" not in text  # an update reads no dump files: no empty table
    synced = {
        "command": "update",
        "base": {"snapshot": "20080201", "date": "20080201", "tarball_md5": {}},
        "diffs": [
            {"url": "http://m/other/incr/x-incr.xml.bz2", "md5": "6c7ba9c5a141421e1c03cb9807c97c74", "kind": "xml"}
        ],
    }
    text = source_section(synced)
    assert "Updated from the snapshot `20080201`." in text
    assert "- `x-incr.xml.bz2` (xml, md5 `6c7ba9c5a141421e1c03cb9807c97c74`)" in text
    # a wiki without record shards in the folder is counted from the manifest's records/ns{ns}/written
    manifest = {"counts": {"enwiki": {"records/ns0/written": 16, "records/ns14/written": 1, "pages_read": 40}}}
    assert counts_lines(manifest, {}) == "- enwiki: 16 articles, 1 category page"
    # ... and from an earlier version's manifest, whose counters were named written/{ns}
    manifest = {"counts": {"enwiki": {"written/0": 16, "written/14": 1, "parsed/0": 16, "pages_read": 40}}}
    assert counts_lines(manifest, {}) == "- enwiki: 16 articles, 1 category page"
    # a checksum column no input has is left out; a split input without its checksum says so
    inputs = [
        {"path": "/d/enwiki-p1.xml.bz2", "dbname": "enwiki", "bytes": 10, "pages": 2, "md5": "a" * 32},
        {"path": "/d/enwiki-p2.xml.bz2", "dbname": "enwiki", "bytes": 20, "pages": 3},
    ]
    rows = table_rows(source_section({"command": "build", "inputs": inputs}))
    assert rows == [
        ["file", "wiki", "bytes", "pages", "md5"],
        ["`enwiki-p1.xml.bz2`", "enwiki", "10", "2", f"`{'a' * 32}`"],
        ["`enwiki-p2.xml.bz2`", "enwiki", "20", "3", "not recorded"],
    ]
    # a file name cannot break the table it sits in
    odd = source_section({"inputs": [{"path": "/d/a|b`\nc.xml.bz2", "dbname": "enwiki", "bytes": 1, "pages": 1}]})
    assert "| `a\\|b' c.xml.bz2` | enwiki | 1 | 1 |" in odd.splitlines()
