"""Project family and licence of a db name (configs/licenses.toml via wikisnap.configs)."""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from wikisnap.configs import ConfigError, family_of, license_for, load_license_config, parse_license_config

DATA = Path(__file__).parent / "data"

CC_BY_SA_4 = {
    "name": "Creative Commons Attribution-ShareAlike License 4.0",
    "identifier": "CC-BY-SA-4.0",
    "url": "https://creativecommons.org/licenses/by-sa/4.0/",
}


@pytest.mark.parametrize(
    ("dbname", "family", "identifier"),
    [
        ("enwiki", "wikipedia", "CC-BY-SA-4.0"),
        ("elwikivoyage", "wikivoyage", "CC-BY-SA-4.0"),
        ("enwiktionary", "wiktionary", "CC-BY-SA-4.0"),
        ("wikidatawiki", "wikidata", "CC0-1.0"),
        ("enwikinews", "wikinews", "CC-BY-4.0"),  # CC BY 2.5 until 2024-12-16 (T381421)
        ("dewikinews", "wikinews", "CC-BY-2.5"),  # kept 2.5 (T384614)
        ("svwikinews", "wikinews", "CC-BY-SA-4.0"),
        ("commonswiki", "commons", "CC-BY-SA-4.0"),
        ("metawiki", "meta", "CC-BY-SA-4.0"),
        ("specieswiki", "species", "CC-BY-SA-4.0"),
        ("mediawikiwiki", "mediawiki", "CC-BY-SA-4.0"),
        ("incubatorwiki", "incubator", "CC-BY-SA-4.0"),
        ("simplewiki", "wikipedia", "CC-BY-SA-4.0"),
        ("zh_min_nanwiki", "wikipedia", "CC-BY-SA-4.0"),
        ("enwikiversity", "wikiversity", "CC-BY-SA-4.0"),
        ("frwikisource", "wikisource", "CC-BY-SA-4.0"),
        ("dewikimedia", "wikimedia", "CC-BY-SA-4.0"),
        ("notawiki_db", "unknown", "CC-BY-SA-4.0"),
        ("loginwiki", "unknown", "CC-BY-SA-4.0"),  # ends in "wiki" but "login" is no language
        ("", "unknown", "CC-BY-SA-4.0"),
    ],
)
def test_family_and_license(dbname, family, identifier):
    assert family_of(dbname) == family
    licenses = license_for(dbname)
    assert len(licenses) == 1
    assert licenses[0]["identifier"] == identifier
    assert list(licenses[0]) == ["name", "identifier", "url"]  # WME's License key order


def test_default_is_wmes_constant_from_a_real_2024_record():
    frwiki = json.loads((DATA / "html" / "wme-repo__articles-3records.ndjson").read_text("utf-8").splitlines()[1])
    assert frwiki["is_part_of"]["identifier"] == "frwiki"
    assert license_for("frwiki") == frwiki["license"] == [CC_BY_SA_4]
    assert license_for("some_unknown_db") == [CC_BY_SA_4]


def test_pre_2024_constant_matches_real_2023_lines():
    golden = (DATA / "wme" / "sdk-articles-3lines-2023.ndjson").read_text("utf-8").splitlines()
    entry = dict(load_license_config().licenses["CC-BY-SA-3.0"])
    for line in golden:
        assert json.loads(line)["license"] == [entry]


def test_wikidata_license_depends_on_namespace():
    assert license_for("wikidatawiki", 0)[0]["identifier"] == "CC0-1.0"  # items
    assert license_for("wikidatawiki", 120)[0]["identifier"] == "CC0-1.0"  # properties
    assert license_for("wikidatawiki", 146)[0]["identifier"] == "CC0-1.0"  # lexemes
    assert license_for("wikidatawiki", 4)[0]["identifier"] == "CC-BY-SA-4.0"  # project pages
    assert license_for("enwiki", 4) == [CC_BY_SA_4]
    assert license_for("wikidatawiki")[0] == {
        "name": "Creative Commons Zero v1.0 Universal",
        "identifier": "CC0-1.0",
        "url": "https://creativecommons.org/publicdomain/zero/1.0/",
    }


def test_results_are_fresh_objects():
    first = license_for("enwiki")
    first[0]["name"] = "changed"
    first.append({})
    assert license_for("enwiki") == [CC_BY_SA_4]


def test_config_is_parsed_once():
    assert load_license_config() is load_license_config()


def _packaged() -> dict:
    text = resources.files("wikisnap.configs").joinpath("licenses.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def test_every_source_comment_names_a_url():
    text = resources.files("wikisnap.configs").joinpath("licenses.toml").read_text(encoding="utf-8")
    sources = [line for line in text.splitlines() if "source:" in line]
    assert sources and all("https://" in line for line in sources)
    data = _packaged()
    # Each licence-changing entry and each licence definition has its own source comment.
    for section in ("licenses", "families", "wikis"):
        for key in data[section]:
            header = f'[{section}."{key}"]' if section == "licenses" else f"[{section}.{key}]"
            block = text.split(header, 1)[1].split("\n[", 1)[0]
            assert "# source: https://" in block, header


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["families"]["wikinews"].update(license="CC-BY-9.9"), r"families\.wikinews\.license"),
        (lambda d: d["licenses"]["CC0-1.0"].pop("url"), r"licenses\.CC0-1\.0\.url: missing"),
        (lambda d: d["licenses"]["CC0-1.0"].update(url="http://x"), r"licenses\.CC0-1\.0\.url"),
        (lambda d: d["families"]["wikidata"].pop("other_license"), r"families\.wikidata\.other_license"),
        (lambda d: d["families"]["wikidata"].update(namespaces=["0"]), r"families\.wikidata\.namespaces"),
        (lambda d: d["wikis"]["dewikinews"].update(licence="CC-BY-2.5"), r"wikis\.dewikinews\.licence: unknown key"),
        (lambda d: d.update(default_license="GFDL"), r"default_license"),
        (lambda d: d.update(extra=1), r"extra: unknown key"),
        (lambda d: d["special"].update(commonswiki=3), r"special\.commonswiki"),
    ],
)
def test_config_validation_names_the_key(mutate, message):
    data = copy.deepcopy(_packaged())
    parse_license_config(copy.deepcopy(data))  # the packaged file itself is valid
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        parse_license_config(data)
