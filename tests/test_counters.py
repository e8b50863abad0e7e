"""Counter names for people (`records/ns0/written`), one home for them, and manifests of earlier
versions (`written/0`) still read."""

from __future__ import annotations

import pytest

from wikisnap.transforms.formats.counters import counter, counter_parts, modern_counts, per_namespace


def test_a_counter_reads_left_to_right():
    assert counter("records", 0, "written") == "records/ns0/written"
    assert counter("pages", -1, "skipped") == "pages/ns-1/skipped"
    assert counter_parts("records/ns14/parsed") == ("records", 14, "parsed")


@pytest.mark.parametrize(
    "old, new",
    [
        ("parsed/0", "records/ns0/parsed"),
        ("written/14", "records/ns14/written"),
        ("copied/0", "records/ns0/copied"),
        ("skipped_namespace/4", "pages/ns4/skipped"),
        ("html/skipped_namespace/2", "html/ns2/skipped"),
        ("members_copied/0", "members/ns0/copied"),
        ("members_rewritten/0", "members/ns0/rewritten"),
        ("structured/0/without_html", "structured/ns0/without_html"),
    ],
)
def test_an_earlier_versions_names_are_read_as_todays(old, new):
    assert counter(*counter_parts(old)) == new
    assert modern_counts({old: 3, "pages_read": 9}) == {new: 3, "pages_read": 9}


def test_counters_not_per_namespace_are_left_alone():
    for name in ("pages_read", "skipped/duplicate_change", "enrich/image/records_with", "html/read",
                 "structured/with_description", "retries/read_unit_attempts", "history/skipped_namespace"):  # fmt: skip
        assert counter_parts(name) is None
        assert modern_counts({name: 1}) == {name: 1}


def test_per_namespace_reads_both_spellings():
    counts = {"records/ns0/written": 5, "written/14": 2, "records/ns0/parsed": 6, "pages_read": 20}
    assert per_namespace(counts, "records", "written") == {0: 5, 14: 2}
    assert per_namespace(counts, "records", "parsed") == {0: 6}
    assert per_namespace(counts, "pages", "skipped") == {}


def test_a_builds_manifest_names_its_counters_for_people(enwiki_build):
    import json

    counts = json.loads((enwiki_build / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["records/ns0/parsed"] == counts["records/ns0/written"] == 106
    for name in counts:  # no per-namespace counter in an earlier spelling
        parts = counter_parts(name)
        assert parts is None or name == counter(*parts), name


def test_an_earlier_versions_manifest_is_read_by_sync_and_the_card(enwiki_build, tmp_path):
    """An earlier run's manifest is input: its `written/0` counts as today's `records/ns0/written`."""
    import json
    import shutil

    from wikisnap.pipelines.hfcard import counts_lines
    from wikisnap.pipelines.show import show
    from wikisnap.pipelines.sync import ledger_entry

    old = tmp_path / "old"
    shutil.copytree(enwiki_build, old)
    manifest = json.loads((old / "manifest.json").read_text())
    renamed = {"records/ns0/parsed": "parsed/0", "records/ns0/written": "written/0"}
    manifest["counts"]["enwiki"] = {renamed.get(k, k): v for k, v in manifest["counts"]["enwiki"].items()}
    assert "written/0" in manifest["counts"]["enwiki"]
    (old / "manifest.json").write_text(json.dumps(manifest))

    entry = ledger_entry("full", "1", "20240101", str(old), manifest, None, [])
    assert entry["counts"]["records/ns0/written"] == 106 and "written/0" not in entry["counts"]
    assert counts_lines(manifest, {}) == "- enwiki: 106 articles"
    details, text = show(str(old), with_counts=True)
    assert [(c["dbname"], c["ns"], c["records"]) for c in details["counts"]][:1] == [("enwiki", 0, 106)]
