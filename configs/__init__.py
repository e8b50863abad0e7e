"""wikisnap.configs: project family and content licence of a wiki, from `licenses.toml`.

`family_of("enwiki") == "wikipedia"`, `license_for("wikidatawiki")` → `[{"name": …,
"identifier": "CC0-1.0", "url": …}]` (WME's `license` list, one entry, keys in WME order).
The TOML is parsed and validated once per process (`load_license_config`, cached); a broken file
raises `ConfigError` naming the key.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = ["ConfigError", "LicenseConfig", "family_of", "license_for", "load_license_config"]

UNKNOWN_FAMILY = "unknown"
# Language-code prefixes of WMF db names: en, simple, zh_min_nan, be_x_old, roa_tara, nds_nl…
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:_[a-z0-9]+)*|simple")
_PREFIX = re.compile(r"[a-z][a-z0-9_]*")
_FAMILY_NAME = re.compile(r"[a-z][a-z0-9_]*")
_LICENSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")


class ConfigError(ValueError):
    """`licenses.toml` is malformed; the message names the offending key."""


@dataclass(frozen=True)
class _Rule:
    license: str
    namespaces: frozenset[int] | None  # None: every namespace
    other_license: str | None

    def pick(self, namespace: int | None) -> str:
        if self.namespaces is None or namespace is None or namespace in self.namespaces:
            return self.license
        return self.other_license  # type: ignore[return-value]  # validated: set with namespaces


@dataclass(frozen=True)
class LicenseConfig:
    default_license: str
    licenses: Mapping[str, Mapping[str, str]]  # identifier → {name, identifier, url}
    suffixes: tuple[tuple[str, str], ...]  # (suffix, family), longest suffix first
    special: Mapping[str, str]  # db name → family
    families: Mapping[str, _Rule]
    wikis: Mapping[str, _Rule]


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _only(table: dict, where: str, allowed: set[str], required: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required - table.keys()):
        raise ConfigError(f"{where}.{key}: missing")


def _license_ref(value, where: str, licenses: dict) -> str:
    if not isinstance(value, str) or value not in licenses:
        raise ConfigError(f"{where}: {value!r} is not a licence defined under [licenses]")
    return value


def _rule(table, where: str, licenses: dict) -> _Rule:
    table = _table(table, where)
    _only(table, where, {"license", "namespaces", "other_license"}, {"license"})
    license = _license_ref(table["license"], f"{where}.license", licenses)
    if "namespaces" not in table:
        if "other_license" in table:
            raise ConfigError(f"{where}.other_license: only meaningful together with namespaces")
        return _Rule(license, None, None)
    spaces = table["namespaces"]
    if not isinstance(spaces, list) or not spaces or not all(type(n) is int for n in spaces):
        raise ConfigError(f"{where}.namespaces: expected a non-empty list of integers")
    if "other_license" not in table:
        raise ConfigError(f"{where}.other_license: missing (required with namespaces)")
    other = _license_ref(table["other_license"], f"{where}.other_license", licenses)
    return _Rule(license, frozenset(spaces), other)


def parse_license_config(data: dict, source: str = "licenses.toml") -> LicenseConfig:
    """Validate parsed TOML and build the lookup tables; ConfigError on any problem."""
    _only(
        data,
        source,
        {"default_license", "licenses", "suffixes", "special", "families", "wikis"},
        {"default_license", "licenses", "suffixes"},
    )

    licenses: dict[str, Mapping[str, str]] = {}
    for ident, entry in _table(data["licenses"], f"{source}: licenses").items():
        where = f"{source}: licenses.{ident}"
        if not _LICENSE_ID.fullmatch(ident):
            raise ConfigError(f"{where}: not an SPDX-style identifier")
        entry = _table(entry, where)
        _only(entry, where, {"name", "url"}, {"name", "url"})
        for key in ("name", "url"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ConfigError(f"{where}.{key}: expected a non-empty string")
        if not entry["url"].startswith("https://"):
            raise ConfigError(f"{where}.url: expected an https:// URL")
        licenses[ident] = MappingProxyType({"name": entry["name"], "identifier": ident, "url": entry["url"]})
    if not licenses:
        raise ConfigError(f"{source}: licenses: no licence defined")
    default = _license_ref(data["default_license"], f"{source}: default_license", licenses)

    suffixes = []
    for suffix, family in _table(data["suffixes"], f"{source}: suffixes").items():
        if not isinstance(family, str) or not _FAMILY_NAME.fullmatch(family):
            raise ConfigError(f"{source}: suffixes.{suffix}: expected a family name, got {family!r}")
        suffixes.append((suffix, family))
    suffixes.sort(key=lambda item: -len(item[0]))

    special = {}
    for db, family in _table(data.get("special", {}), f"{source}: special").items():
        if not isinstance(family, str) or not _FAMILY_NAME.fullmatch(family):
            raise ConfigError(f"{source}: special.{db}: expected a family name, got {family!r}")
        special[db] = family

    families = {
        name: _rule(rule, f"{source}: families.{name}", licenses)
        for name, rule in _table(data.get("families", {}), f"{source}: families").items()
    }
    wikis = {
        db: _rule(rule, f"{source}: wikis.{db}", licenses)
        for db, rule in _table(data.get("wikis", {}), f"{source}: wikis").items()
    }
    return LicenseConfig(
        default_license=default,
        licenses=MappingProxyType(licenses),
        suffixes=tuple(suffixes),
        special=MappingProxyType(special),
        families=MappingProxyType(families),
        wikis=MappingProxyType(wikis),
    )


@functools.cache
def load_license_config() -> LicenseConfig:
    """The packaged `licenses.toml`, parsed and validated once per process."""
    text = resources.files(__name__).joinpath("licenses.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"licenses.toml: {e}") from None
    return parse_license_config(data)


def _family(dbname: str, config: LicenseConfig) -> str:
    family = config.special.get(dbname)
    if family is not None:
        return family
    for suffix, family in config.suffixes:
        if dbname.endswith(suffix):
            prefix = dbname[: -len(suffix)]
            ok = _LANGUAGE_PREFIX.fullmatch(prefix) if suffix == "wiki" else _PREFIX.fullmatch(prefix)
            return family if ok else UNKNOWN_FAMILY
    return UNKNOWN_FAMILY


def family_of(dbname: str) -> str:
    """The project family of a db name: `enwiki` → `wikipedia`, `elwikivoyage` → `wikivoyage`,
    `commonswiki` → `commons`, `wikidatawiki` → `wikidata`; `unknown` when it cannot tell."""
    return _family(dbname, load_license_config())


def license_for(dbname: str, namespace: int | None = None) -> list[dict]:
    """WME's `license` list for records of `dbname`: one `{name, identifier, url}` entry.

    `namespace` matters only for families whose licence depends on it (Wikidata: CC0 for
    items/properties/lexemes/entity schemas, CC BY-SA elsewhere); None means the main content.
    Unknown db names get the default licence. Returns fresh objects: callers may modify them.
    """
    config = load_license_config()
    rule = config.wikis.get(dbname) or config.families.get(_family(dbname, config))
    ident = rule.pick(namespace) if rule is not None else config.default_license
    return [dict(config.licenses[ident])]
