"""The wiki a dump comes from: its `<siteinfo>` header as a frozen, picklable value.

Every work unit carries the `SiteInfo` of its file (a few KB), so workers never re-read headers
and nothing depends on the launcher's memory.
"""

from __future__ import annotations

import functools
import html
import re
import urllib.parse
from dataclasses import dataclass, field

# Canonical (English) namespace names work on every wiki whatever its language, and MediaWiki
# core defines a few aliases on every wiki too (Image → File). Localised aliases (de "Bild")
# are not in <siteinfo>; configs can add them later.
CANONICAL_NAMESPACES: dict[int, str] = {
    -2: "Media",
    -1: "Special",
    1: "Talk",
    2: "User",
    3: "User talk",
    4: "Project",
    5: "Project talk",
    6: "File",
    7: "File talk",
    8: "MediaWiki",
    9: "MediaWiki talk",
    10: "Template",
    11: "Template talk",
    12: "Help",
    13: "Help talk",
    14: "Category",
    15: "Category talk",
    828: "Module",
    829: "Module talk",
}
CORE_ALIASES: dict[str, int] = {"image": 6, "image talk": 7}

_SPACES = re.compile(r"[ _\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
# MediaWiki's Title deletes directional marks (LRM, RLM, embeddings) before anything else.
_DIRECTION_MARKS = re.compile("[\u200e\u200f\u202a-\u202e]")
# MediaWiki's wfUrlencode leaves these readable in URLs.
_URL_SAFE = ";:@$!*(),/~"
# What `quote(…, safe=_URL_SAFE)` leaves as it is (its always-safe ASCII letters, digits and
# `_.-~`, and `_URL_SAFE`): most titles, returned without the encode-and-scan of `quote`.
_URL_KEPT = re.compile(r"[A-Za-z0-9_.\-~;:@$!*(),/]*+")


@dataclass(frozen=True)
class Namespace:
    """One `<namespace key=… case=…>name</namespace>` entry."""

    key: int
    name: str
    case: str = "first-letter"


@dataclass(frozen=True)
class SiteInfo:
    """What a dump says about its wiki.

    `base` is the `<base>` URL (the main page's URL), from which the article path and the
    project URL are derived, so a local test wiki keeps its own URLs.
    """

    dbname: str
    sitename: str = ""
    base: str = ""
    lang: str = ""
    case: str = "first-letter"
    generator: str = ""
    schema_version: str = ""
    namespaces: tuple[Namespace, ...] = ()
    _prefixes: dict = field(default=None, compare=False, repr=False, hash=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        prefixes: dict[str, int] = {}
        for alias, key in CORE_ALIASES.items():
            prefixes[alias] = key
        for key, name in CANONICAL_NAMESPACES.items():
            prefixes[name.lower()] = key
        for ns in self.namespaces:
            if ns.name:
                prefixes[_SPACES.sub(" ", ns.name).strip().lower()] = ns.key
        object.__setattr__(self, "_prefixes", prefixes)

    # -- namespaces -------------------------------------------------------------------------
    def namespace_name(self, key: int) -> str:
        """Localised name of namespace `key` ('' for the main namespace)."""
        for ns in self.namespaces:
            if ns.key == key:
                return ns.name
        return CANONICAL_NAMESPACES.get(key, "")

    def namespace_case(self, key: int) -> str:
        for ns in self.namespaces:
            if ns.key == key:
                return ns.case
        return self.case

    def namespace_for_prefix(self, prefix: str) -> int | None:
        """Namespace number for a title prefix (localised, canonical or alias; any case), or None."""
        return self._prefixes.get(_SPACES.sub(" ", prefix).strip().lower())

    def split_title(self, full_title: str) -> tuple[int, str]:
        """`'Category:Foo'` → `(14, 'Foo')`; titles without a known prefix are in namespace 0."""
        if ":" in full_title:
            prefix, rest = full_title.split(":", 1)
            key = self.namespace_for_prefix(prefix)
            if key is not None and key != 0:
                return key, rest.strip()
        return 0, full_title

    # -- titles ---------------------------------------------------------------------------
    def normalize(self, target: str, default_ns: int = 0) -> tuple[int, str] | None:
        """Normalise a link or transclusion target the way MediaWiki does.

        Returns `(namespace, full title with localised prefix)` or None when the target is empty
        or only a fragment. Handles entities, percent-escapes, underscores, a leading colon,
        namespace prefixes in any case, fragments and the namespace's first-letter case rule.
        """
        text = target
        if "&" in text:
            text = html.unescape(text)
        if "%" in text and _PERCENT.search(text):
            text = urllib.parse.unquote(text)
        text = text.split("#", 1)[0]
        text = _DIRECTION_MARKS.sub("", text)
        text = _SPACES.sub(" ", text).strip()
        forced_main = False
        if text.startswith(":"):
            forced_main = True
            text = text[1:].strip()
        if not text:
            return None
        ns = default_ns if not forced_main else 0
        if ":" in text:
            prefix, rest = text.split(":", 1)
            key = self.namespace_for_prefix(prefix)
            if key is not None:
                ns = key
                text = rest.strip()
                if not text:
                    return None
        if self.namespace_case(ns) == "first-letter":
            text = ucfirst(text)
        name = self.namespace_name(ns)
        return ns, (f"{name}:{text}" if name else text)

    # -- URLs -----------------------------------------------------------------------------
    @property
    def article_path(self) -> str:
        """`https://en.wikipedia.org/wiki/` — the `<base>` URL without its main-page title."""
        return _article_path(self.base)

    @property
    def project_url(self) -> str:
        """`https://en.wikipedia.org` — scheme and host of `<base>`."""
        if not self.base:
            return ""
        parts = urllib.parse.urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    def url(self, full_title: str) -> str:
        """Article URL with MediaWiki's `wfUrlencode` percent-encoding."""
        return self.article_path + wf_urlencode(full_title)


@functools.lru_cache(maxsize=64)
def _article_path(base: str) -> str:
    # cached: `url` needs it for every template and category link of every page
    return base.rsplit("/", 1)[0] + "/" if base else ""


def ucfirst(text: str) -> str:
    """Upper-case the first character the way MediaWiki's first-letter case rule does.

    Python's `upper()` may turn one character into several ('ß' → 'SS'); MediaWiki keeps such
    characters as they are, so only one-to-one mappings are applied.
    """
    if not text:
        return text
    first = text[0]
    upper = first.upper()
    if len(upper) != 1:
        return text
    return upper + text[1:]


@functools.lru_cache(maxsize=8192)
def wf_urlencode(title: str) -> str:
    """MediaWiki's `wfUrlencode` of a title: spaces as `_`, UTF-8 percent-escapes, `;:@$!*(),/~` kept.

    Cached (8,192 titles, ~2 MB): every page links the same few thousand templates and
    categories (`Template:Cite web`), and each link's URL is made from its title.
    """
    title = title.replace(" ", "_")
    if _URL_KEPT.fullmatch(title):
        return title
    return urllib.parse.quote(title, safe=_URL_SAFE)


# Hosts whose db name does not follow `{lang}.{family}.org` → `{lang}{suffix}`.
_SPECIAL_HOSTS = {
    "www.wikidata.org": "wikidatawiki",
    "commons.wikimedia.org": "commonswiki",
    "meta.wikimedia.org": "metawiki",
    "species.wikimedia.org": "specieswiki",
    "www.mediawiki.org": "mediawikiwiki",
    "incubator.wikimedia.org": "incubatorwiki",
    "www.wikifunctions.org": "wikifunctionswiki",
    "wikisource.org": "sourceswiki",
}
_FAMILY_SUFFIX = {
    "wikipedia": "wiki",
    "wiktionary": "wiktionary",
    "wikibooks": "wikibooks",
    "wikinews": "wikinews",
    "wikiquote": "wikiquote",
    "wikisource": "wikisource",
    "wikiversity": "wikiversity",
    "wikivoyage": "wikivoyage",
}


def dbname_from_base(base: str) -> str | None:
    """`https://en.wikipedia.org/wiki/Main_Page` → `'enwiki'`, for exports older than 0.4 (no <dbname>).

    None when the host is not a Wikimedia project URL.
    """
    host = urllib.parse.urlsplit(base).netloc.lower()
    if host in _SPECIAL_HOSTS:
        return _SPECIAL_HOSTS[host]
    parts = host.split(".")
    if len(parts) == 3 and parts[2] == "org" and parts[1] in _FAMILY_SUFFIX and parts[0] != "www":
        return parts[0].replace("-", "_") + _FAMILY_SUFFIX[parts[1]]
    return None
