"""MediaWiki magic words: which `{{…}}` are variables or parser functions rather than templates.

The table mirrors MediaWiki core's English magic words (`languages/messages/MessagesEn.php`,
`$magicWords`: first element 1 = case-sensitive, 0 = case-insensitive), the ids MediaWiki treats
as variables (`MagicWordFactory` / `CoreMagicVariables`), the function hooks registered by
`CoreParserFunctions::register`, and the hooks of the extensions every Wikimedia wiki runs
(ParserFunctions, Scribunto, Wikibase client, FlaggedRevs…). Localised synonyms (`{{ΟΝΟΜΑΣΕΛΙΔΑΣ}}`)
are not in XML dumps; `MagicWords.extended()` adds them when a config knows them.

How `Parser::braceSubstitution` uses them, in order, on the trimmed text before the first `|`:
1. `subst:` / `safesubst:` prefixes (case-insensitive) are removed;
2. without arguments, a whole-string match of a *variable* synonym is a variable;
3. `msgnw:` / `msg:` then `raw:` prefixes are removed (they force the rest to be a title);
4. text before the first `:` matching a *function* synonym is a parser function;
5. anything else is a page title in the Template namespace.
A name starting with `#` is never a template: the title would be a bare fragment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# id → (case-sensitive, synonyms), from MessagesEn.php (MediaWiki 1.39–1.43) plus the WMF
# extensions named in each comment. Trailing ':' of a synonym is not part of the name: the
# parser cuts the name at the first ':' (and `setFunctionHook` strips it from synonyms).
MAGIC_WORD_SYNONYMS: dict[str, tuple[bool, tuple[str, ...]]] = {
    # -- variables (also function hooks when they take an argument) ------------------------
    "!": (False, ("!",)),
    "=": (False, ("=",)),
    "currentmonth": (True, ("CURRENTMONTH", "CURRENTMONTH2")),
    "currentmonth1": (True, ("CURRENTMONTH1",)),
    "currentmonthname": (True, ("CURRENTMONTHNAME",)),
    "currentmonthnamegen": (True, ("CURRENTMONTHNAMEGEN",)),
    "currentmonthabbrev": (True, ("CURRENTMONTHABBREV",)),
    "currentday": (True, ("CURRENTDAY",)),
    "currentday2": (True, ("CURRENTDAY2",)),
    "currentdayname": (True, ("CURRENTDAYNAME",)),
    "currentyear": (True, ("CURRENTYEAR",)),
    "currenttime": (True, ("CURRENTTIME",)),
    "currenthour": (True, ("CURRENTHOUR",)),
    "currentweek": (True, ("CURRENTWEEK",)),
    "currentdow": (True, ("CURRENTDOW",)),
    "currenttimestamp": (True, ("CURRENTTIMESTAMP",)),
    "currentversion": (True, ("CURRENTVERSION",)),
    "localmonth": (True, ("LOCALMONTH", "LOCALMONTH2")),
    "localmonth1": (True, ("LOCALMONTH1",)),
    "localmonthname": (True, ("LOCALMONTHNAME",)),
    "localmonthnamegen": (True, ("LOCALMONTHNAMEGEN",)),
    "localmonthabbrev": (True, ("LOCALMONTHABBREV",)),
    "localday": (True, ("LOCALDAY",)),
    "localday2": (True, ("LOCALDAY2",)),
    "localdayname": (True, ("LOCALDAYNAME",)),
    "localyear": (True, ("LOCALYEAR",)),
    "localtime": (True, ("LOCALTIME",)),
    "localhour": (True, ("LOCALHOUR",)),
    "localweek": (True, ("LOCALWEEK",)),
    "localdow": (True, ("LOCALDOW",)),
    "localtimestamp": (True, ("LOCALTIMESTAMP",)),
    "numberofpages": (True, ("NUMBEROFPAGES",)),
    "numberofarticles": (True, ("NUMBEROFARTICLES",)),
    "numberoffiles": (True, ("NUMBEROFFILES",)),
    "numberofusers": (True, ("NUMBEROFUSERS",)),
    "numberofactiveusers": (True, ("NUMBEROFACTIVEUSERS",)),
    "numberofedits": (True, ("NUMBEROFEDITS",)),
    "numberofadmins": (True, ("NUMBEROFADMINS",)),
    "pagename": (True, ("PAGENAME",)),
    "pagenamee": (True, ("PAGENAMEE",)),
    "fullpagename": (True, ("FULLPAGENAME",)),
    "fullpagenamee": (True, ("FULLPAGENAMEE",)),
    "subpagename": (True, ("SUBPAGENAME",)),
    "subpagenamee": (True, ("SUBPAGENAMEE",)),
    "rootpagename": (True, ("ROOTPAGENAME",)),
    "rootpagenamee": (True, ("ROOTPAGENAMEE",)),
    "basepagename": (True, ("BASEPAGENAME",)),
    "basepagenamee": (True, ("BASEPAGENAMEE",)),
    "talkpagename": (True, ("TALKPAGENAME",)),
    "talkpagenamee": (True, ("TALKPAGENAMEE",)),
    "subjectpagename": (True, ("SUBJECTPAGENAME", "ARTICLEPAGENAME")),
    "subjectpagenamee": (True, ("SUBJECTPAGENAMEE", "ARTICLEPAGENAMEE")),
    "namespace": (True, ("NAMESPACE",)),
    "namespacee": (True, ("NAMESPACEE",)),
    "namespacenumber": (True, ("NAMESPACENUMBER",)),
    "talkspace": (True, ("TALKSPACE",)),
    "talkspacee": (True, ("TALKSPACEE",)),
    "subjectspace": (True, ("SUBJECTSPACE", "ARTICLESPACE")),
    "subjectspacee": (True, ("SUBJECTSPACEE", "ARTICLESPACEE")),
    "pageid": (False, ("PAGEID",)),
    "revisionid": (True, ("REVISIONID",)),
    "revisionday": (True, ("REVISIONDAY",)),
    "revisionday2": (True, ("REVISIONDAY2",)),
    "revisionmonth": (True, ("REVISIONMONTH",)),
    "revisionmonth1": (True, ("REVISIONMONTH1",)),
    "revisionyear": (True, ("REVISIONYEAR",)),
    "revisiontimestamp": (True, ("REVISIONTIMESTAMP",)),
    "revisionuser": (True, ("REVISIONUSER",)),
    "revisionsize": (True, ("REVISIONSIZE",)),
    "sitename": (True, ("SITENAME",)),
    "server": (False, ("SERVER",)),
    "servername": (False, ("SERVERNAME",)),
    "scriptpath": (False, ("SCRIPTPATH",)),
    "stylepath": (False, ("STYLEPATH",)),
    "articlepath": (False, ("ARTICLEPATH",)),
    "directionmark": (True, ("DIRECTIONMARK", "DIRMARK")),
    "contentlanguage": (True, ("CONTENTLANGUAGE", "CONTENTLANG")),
    "pagelanguage": (True, ("PAGELANGUAGE",)),
    "userlanguage": (True, ("USERLANGUAGE",)),
    "cascadingsources": (True, ("CASCADINGSOURCES",)),
    "bcp47": (False, ("#BCP47",)),
    "dir": (False, ("#DIR",)),
    # FlaggedRevs (Wikimedia wikis with pending changes)
    "pendingchangelevel": (False, ("PENDINGCHANGELEVEL",)),
    # Wikibase client
    "wbreponame": (False, ("WBREPONAME",)),
    # -- function hooks only --------------------------------------------------------------
    "ns": (False, ("NS",)),
    "nse": (False, ("NSE",)),
    "urlencode": (False, ("URLENCODE",)),
    "lcfirst": (False, ("LCFIRST",)),
    "ucfirst": (False, ("UCFIRST",)),
    "lc": (False, ("LC",)),
    "uc": (False, ("UC",)),
    "localurl": (False, ("LOCALURL",)),
    "localurle": (False, ("LOCALURLE",)),
    "fullurl": (False, ("FULLURL",)),
    "fullurle": (False, ("FULLURLE",)),
    "canonicalurl": (False, ("CANONICALURL",)),
    "canonicalurle": (False, ("CANONICALURLE",)),
    "formatnum": (False, ("FORMATNUM",)),
    "grammar": (False, ("GRAMMAR",)),
    "gender": (False, ("GENDER",)),
    "plural": (False, ("PLURAL",)),
    "bidi": (False, ("BIDI",)),
    "numberingroup": (True, ("NUMBERINGROUP", "NUMINGROUP")),
    "language": (False, ("#LANGUAGE",)),
    "padleft": (False, ("PADLEFT",)),
    "padright": (False, ("PADRIGHT",)),
    "anchorencode": (False, ("ANCHORENCODE",)),
    "defaultsort": (True, ("DEFAULTSORT", "DEFAULTSORTKEY", "DEFAULTCATEGORYSORT")),
    "filepath": (False, ("FILEPATH",)),
    "pagesincategory": (True, ("PAGESINCATEGORY", "PAGESINCAT")),
    "pagesize": (True, ("PAGESIZE",)),
    "protectionlevel": (True, ("PROTECTIONLEVEL",)),
    "protectionexpiry": (True, ("PROTECTIONEXPIRY",)),
    "pagesinnamespace": (True, ("PAGESINNAMESPACE", "PAGESINNS")),
    "displaytitle": (True, ("DISPLAYTITLE",)),
    "int": (False, ("INT",)),
    "special": (False, ("#SPECIAL",)),
    "speciale": (False, ("#SPECIALE",)),
    "tag": (False, ("#TAG",)),
    "formatdate": (False, ("#FORMATDATE", "#DATEFORMAT")),
    "interwikilink": (False, ("#INTERWIKILINK",)),
    "interlanguagelink": (False, ("#INTERLANGUAGELINK",)),
    # Wikibase client
    "noexternallanglinks": (False, ("NOEXTERNALLANGLINKS",)),
    "shortdesc": (False, ("SHORTDESC",)),
    "property": (False, ("#PROPERTY",)),
    "statements": (False, ("#STATEMENTS",)),
    # FlaggedRevs
    "pagesusingpendingchanges": (False, ("PAGESUSINGPENDINGCHANGES", "PAGESUSINGPC")),
    # ParserFunctions extension
    "if": (False, ("#IF",)),
    "ifeq": (False, ("#IFEQ",)),
    "iferror": (False, ("#IFERROR",)),
    "ifexpr": (False, ("#IFEXPR",)),
    "ifexist": (False, ("#IFEXIST",)),
    "switch": (False, ("#SWITCH",)),
    "expr": (False, ("#EXPR",)),
    "rel2abs": (False, ("#REL2ABS",)),
    "titleparts": (False, ("#TITLEPARTS",)),
    "time": (False, ("#TIME",)),
    "timel": (False, ("#TIMEL",)),
    "timef": (False, ("#TIMEF",)),
    "timefl": (False, ("#TIMEFL",)),
    "len": (False, ("#LEN",)),
    "pos": (False, ("#POS",)),
    "rpos": (False, ("#RPOS",)),
    "sub": (False, ("#SUB",)),
    "count": (False, ("#COUNT",)),
    "replace": (False, ("#REPLACE",)),
    "explode": (False, ("#EXPLODE",)),
    "urldecode": (False, ("#URLDECODE",)),
    # Scribunto, LabeledSectionTransclusion, GeoData, Babel, CategoryTree, MassMessage
    "invoke": (False, ("#INVOKE",)),
    "lst": (False, ("#LST", "#SECTION")),
    "lstx": (False, ("#LSTX", "#SECTION-X")),
    "lsth": (False, ("#LSTH", "#SECTION-H")),
    "coordinates": (False, ("#COORDINATES",)),
    "babel": (False, ("#BABEL",)),
    "categorytree": (False, ("#CATEGORYTREE",)),
    "target": (False, ("#TARGET",)),
    # -- template modifiers ---------------------------------------------------------------
    "subst": (False, ("SUBST",)),
    "safesubst": (False, ("SAFESUBST",)),
    "msg": (False, ("MSG",)),
    "msgnw": (False, ("MSGNW",)),
    "raw": (False, ("RAW",)),
    # -- behaviour switches (`__…__` in running text) ----------------------------------------
    "notoc": (False, ("__NOTOC__",)),
    "nogallery": (False, ("__NOGALLERY__",)),
    "forcetoc": (False, ("__FORCETOC__",)),
    "toc": (False, ("__TOC__",)),
    "noeditsection": (False, ("__NOEDITSECTION__",)),
    "newsectionlink": (True, ("__NEWSECTIONLINK__",)),
    "nonewsectionlink": (True, ("__NONEWSECTIONLINK__",)),
    "hiddencat": (True, ("__HIDDENCAT__",)),
    "expectunusedcategory": (True, ("__EXPECTUNUSEDCATEGORY__",)),
    "expectunusedtemplate": (True, ("__EXPECTUNUSEDTEMPLATE__",)),
    "index": (True, ("__INDEX__",)),
    "noindex": (True, ("__NOINDEX__",)),
    "staticredirect": (True, ("__STATICREDIRECT__",)),
    "notitleconvert": (False, ("__NOTITLECONVERT__", "__NOTC__")),
    "nocontentconvert": (False, ("__NOCONTENTCONVERT__", "__NOCC__")),
    # Disambiguator, Wikibase, DiscussionTools, GlobalUserPage
    "disambiguation": (False, ("__DISAMBIG__",)),
    "expectedunconnectedpage": (True, ("__EXPECTED_UNCONNECTED_PAGE__",)),
    "archivedtalk": (True, ("__ARCHIVEDTALK__",)),
    "notalk": (True, ("__NOTALK__",)),
    "noglobal": (False, ("__NOGLOBAL__",)),
}

# Ids MediaWiki expands as variables when written without arguments (`{{PAGENAME}}`).
VARIABLE_IDS: frozenset[str] = frozenset(
    {
        "!", "=", "currentmonth", "currentmonth1", "currentmonthname", "currentmonthnamegen",
        "currentmonthabbrev", "currentday", "currentday2", "currentdayname", "currentyear",
        "currenttime", "currenthour", "currentweek", "currentdow", "currenttimestamp",
        "currentversion", "localmonth", "localmonth1", "localmonthname", "localmonthnamegen",
        "localmonthabbrev", "localday", "localday2", "localdayname", "localyear", "localtime",
        "localhour", "localweek", "localdow", "localtimestamp", "numberofpages",
        "numberofarticles", "numberoffiles", "numberofusers", "numberofactiveusers",
        "numberofedits", "numberofadmins", "pagename", "pagenamee", "fullpagename",
        "fullpagenamee", "subpagename", "subpagenamee", "rootpagename", "rootpagenamee",
        "basepagename", "basepagenamee", "talkpagename", "talkpagenamee", "subjectpagename",
        "subjectpagenamee", "namespace", "namespacee", "namespacenumber", "talkspace",
        "talkspacee", "subjectspace", "subjectspacee", "pageid", "revisionid", "revisionday",
        "revisionday2", "revisionmonth", "revisionmonth1", "revisionyear", "revisiontimestamp",
        "revisionuser", "revisionsize", "sitename", "server", "servername", "scriptpath",
        "stylepath", "articlepath", "directionmark", "contentlanguage", "pagelanguage",
        "userlanguage", "cascadingsources", "bcp47", "dir", "pendingchangelevel", "wbreponame",
    }
)  # fmt: skip

# Ids registered as parser functions (`{{lc:…}}`, `{{#if:…}}`, `{{PAGENAME:Foo}}`).
FUNCTION_IDS: frozenset[str] = frozenset(
    {
        # CoreParserFunctions::register — no-hash functions, then the hash ones
        "ns", "nse", "urlencode", "lcfirst", "ucfirst", "lc", "uc", "localurl", "localurle",
        "fullurl", "fullurle", "canonicalurl", "canonicalurle", "formatnum", "grammar",
        "gender", "plural", "bidi", "numberingroup", "language", "padleft", "padright",
        "anchorencode", "defaultsort", "filepath", "pagesincategory", "pagesize",
        "protectionlevel", "protectionexpiry", "pagename", "pagenamee", "fullpagename",
        "fullpagenamee", "subpagename", "subpagenamee", "rootpagename", "rootpagenamee",
        "basepagename", "basepagenamee", "talkpagename", "talkpagenamee", "subjectpagename",
        "subjectpagenamee", "pageid", "revisionid", "revisionday", "revisionday2",
        "revisionmonth", "revisionmonth1", "revisionyear", "revisiontimestamp", "revisionuser",
        "cascadingsources", "namespace", "namespacee", "namespacenumber", "talkspace",
        "talkspacee", "subjectspace", "subjectspacee", "numberofarticles", "numberoffiles",
        "numberofusers", "numberofactiveusers", "numberofpages", "numberofadmins",
        "numberofedits", "bcp47", "dir", "int", "displaytitle", "pagesinnamespace", "special",
        "speciale", "tag", "formatdate", "interwikilink", "interlanguagelink",
        # extensions
        "noexternallanglinks", "shortdesc", "property", "statements", "pendingchangelevel",
        "pagesusingpendingchanges", "if", "ifeq", "iferror", "ifexpr", "ifexist", "switch",
        "expr", "rel2abs", "titleparts", "time", "timel", "timef", "timefl", "len", "pos",
        "rpos", "sub", "count", "replace", "explode", "urldecode", "invoke", "lst", "lstx",
        "lsth", "coordinates", "babel", "categorytree", "target",
    }
)  # fmt: skip

DOUBLE_UNDERSCORE_IDS: frozenset[str] = frozenset(
    i for i, (_, syns) in MAGIC_WORD_SYNONYMS.items() if syns[0].startswith("__")
)


def _split(ids: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """Synonyms of `ids` as (case-sensitive set, lower-cased case-insensitive set)."""
    sensitive: set[str] = set()
    insensitive: set[str] = set()
    for magic_id in ids:
        case_sensitive, synonyms = MAGIC_WORD_SYNONYMS[magic_id]
        for syn in synonyms:
            if case_sensitive:
                sensitive.add(syn)
            else:
                insensitive.add(syn.lower())
    return frozenset(sensitive), frozenset(insensitive)


@dataclass(frozen=True)
class MagicWords:
    """Synonym sets used to tell variables and parser functions from template transclusions.

    Case-insensitive sets hold lower-cased synonyms. Function synonyms carry their `#` when
    the hook needs one (`#if`), so `{{if:…}}` stays a template as in MediaWiki.
    """

    variables_cs: frozenset[str]
    variables_ci: frozenset[str]
    functions_cs: frozenset[str]
    functions_ci: frozenset[str]
    switches_cs: frozenset[str]
    switches_ci: frozenset[str]

    def is_variable(self, name: str) -> bool:
        """True when `name` (the whole trimmed text of a `{{…}}` without arguments) is a variable."""
        return name in self.variables_cs or name.lower() in self.variables_ci

    def is_function(self, name: str) -> bool:
        """True when `name` (text before the first ':') names a parser function."""
        return name in self.functions_cs or name.lower() in self.functions_ci

    def is_switch(self, word: str) -> bool:
        """True when `word` (`__NOTOC__`) is a behaviour switch."""
        return word in self.switches_cs or word.lower() in self.switches_ci

    def extended(
        self,
        variables: Iterable[str] = (),
        functions: Iterable[str] = (),
        switches: Iterable[str] = (),
        case_sensitive: bool = True,
    ) -> MagicWords:
        """A copy with a wiki's localised synonyms added (from a config or the siteinfo API)."""
        variables, functions, switches = list(variables), list(functions), list(switches)
        if case_sensitive:
            return MagicWords(
                self.variables_cs | frozenset(variables),
                self.variables_ci,
                self.functions_cs | frozenset(f.rstrip(":") for f in functions),
                self.functions_ci,
                self.switches_cs | frozenset(switches),
                self.switches_ci,
            )
        return MagicWords(
            self.variables_cs,
            self.variables_ci | frozenset(v.lower() for v in variables),
            self.functions_cs,
            self.functions_ci | frozenset(f.rstrip(":").lower() for f in functions),
            self.switches_cs,
            self.switches_ci | frozenset(s.lower() for s in switches),
        )


def _default() -> MagicWords:
    variables_cs, variables_ci = _split(VARIABLE_IDS)
    functions_cs, functions_ci = _split(FUNCTION_IDS)
    switches_cs, switches_ci = _split(DOUBLE_UNDERSCORE_IDS)
    return MagicWords(variables_cs, variables_ci, functions_cs, functions_ci, switches_cs, switches_ci)


MAGIC_WORDS: MagicWords = _default()
