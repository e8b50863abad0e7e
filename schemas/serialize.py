"""Article dict → the exact bytes Go's `json.Marshal` writes for the WME struct.

`to_wme_json(record)` reorders every object into WME struct order (whatever the dict's order),
applies Go's omitempty, then makes one C encoder call (orjson, or the stdlib's `json` where orjson
has no wheel: the same bytes) and five `replace` passes for Go's HTML-safe escapes. Records are
plain dicts, never modified here.

Go rules reproduced (see `article.py` for the struct table):
- keys in struct order; unknown keys raise `ValueError` naming the key and where it is;
- omitempty drops `""`, `0`, `0.0`, `false`, `None`, empty lists; a pointer-to-struct field
  (a dict value) is written even when empty: `"maintenance_tags":{}`;
- non-omitempty fields (`namespace.identifier`, the three `visibility` booleans, `Delta`, the
  reference scores) are always written, with the zero value when missing or None;
- pointer scalars (`event.partition`, `event.offset`) drop only None: `"partition":0` stays;
- `<` `>` `&` U+2028 U+2029 → `\\u003c` `\\u003e` `\\u0026` `\\u2028` `\\u2029`; other non-ASCII raw;
  control characters as Python's `json` writes them, which equals Go ≥ 1.22 (`\\b` `\\f` short
  forms; WME builds with Go 1.22);
- floats as Go's `strconv.FormatFloat(f, 'f' or 'e', -1, 64)`: integral floats without `.0`,
  no exponent for 1e-6 ≤ |x| < 1e21, `1e-7` / `1e+21` style outside; NaN/Inf raise;
- a None inside a list raises (Go would write `null`; in wikisnap that is always a bug).

Times are RFC 3339 strings in records; `format_time` makes them from datetimes like Go does.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from wikisnap.schemas.article import ROOT, STRUCTS, is_list, struct_of

__all__ = [
    "format_float",
    "format_time",
    "format_time_ns",
    "parse_time_ns",
    "to_wme_json",
    "to_wme_json_bytes",
    "to_wme_json_bytes_in",
]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode

try:  # orjson (Apache-2.0/MIT): the same bytes as the encoder above for what `_order` gives, ~3x faster
    import orjson as _orjson
except ImportError:  # no wheel for the platform: the stdlib's encoder alone
    _orjson = None

# Field kinds of the compiled plans.
_STR, _INT, _FLOAT, _BOOL, _PTR, _PTRFLOAT, _STRUCT, _LIST, _STRLIST = range(9)
_KINDS = {
    "string": _STR,
    "time[ms]": _STR,
    "time[ns]": _STR,
    "int": _INT,
    "float64": _FLOAT,
    "bool": _BOOL,
    "*int": _PTR,
    "*int64": _PTR,
    "*float64": _PTRFLOAT,
    "[]string": _STRLIST,
}
_ZERO = {_STR: "", _INT: 0, _FLOAT: 0, _BOOL: False}


class _Plan:
    """One struct, compiled: `fields` = (key, kind, sub-plan, omitempty), `keys` = set of keys."""

    __slots__ = ("name", "fields", "keys")

    def __init__(self, name: str):
        self.name = name
        self.fields: tuple = ()
        self.keys: frozenset[str] = frozenset()


def _compile() -> dict[str, _Plan]:
    plans = {name: _Plan(name) for name in STRUCTS}
    for name, fields in STRUCTS.items():
        out = []
        for f in fields:
            sub = struct_of(f.type)
            if sub:
                out.append((f.key, _LIST if is_list(f.type) else _STRUCT, plans[sub], f.omitempty))
            else:
                out.append((f.key, _KINDS[f.type], None, f.omitempty))
        plans[name].fields = tuple(out)
        plans[name].keys = frozenset(f.key for f in fields)
    return plans


_PLANS = _compile()
_ROOT_PLAN = _PLANS[ROOT]


class _BadRecord(ValueError):
    """Raised deep inside; parents prefix their key so the message names the full path."""

    def __init__(self, problem: str, path: str = ""):
        self.problem = problem
        self.path = path
        super().__init__(f"{problem} (at {ROOT}.{path})" if path else f"{problem} (in {ROOT})")

    def under(self, key: str) -> _BadRecord:
        return _BadRecord(self.problem, f"{key}.{self.path}" if self.path else key)


def format_float(x: float) -> str:
    """Go's `encoding/json` text for a float64 (`strconv.AppendFloat` with 'f' or 'e', -1)."""
    if not math.isfinite(x):
        raise ValueError(f"unsupported float value {x!r}: Go's json.Marshal refuses NaN and Inf")
    r = repr(x)
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        # Python's repr is already exponent form here; Go trims one leading 0 of e-0X.
        mantissa, _, exp = r.partition("e")
        if exp[0] == "-" and exp[1] == "0":
            exp = "-" + exp[2:]
        return f"{mantissa}e{exp}"
    if "e" in r:  # 1e-6 ≤ |x| < 1e-4 or 1e16 ≤ |x| < 1e21: Go writes the same digits unscaled
        return format(Decimal(r), "f")
    return r[:-2] if r.endswith(".0") else r


def _float(x, floats: list):
    """A float made ready for the C encoder: int when integral, placeholder when repr ≠ Go."""
    if type(x) is not float:
        if type(x) is int:
            return x
        if type(x) is bool or not isinstance(x, (int, float)):
            raise TypeError(f"must be a number, not {type(x).__name__}")
        x = float(x)
    if x.is_integer() and -9007199254740992.0 <= x <= 9007199254740992.0 and (x or math.copysign(1.0, x) > 0):
        return int(x)  # exact, and the C encoder prints ints as Go prints integral floats (not -0)
    text = format_float(x)
    if text == repr(x):
        return x
    # Rare (|x| < 1e-4 or ≥ 1e16): a NUL-delimited placeholder replaced after encoding. NUL
    # cannot occur in dump text (XML forbids it), so the placeholder cannot collide.
    floats.append(text)
    return f"\x00{len(floats) - 1}\x00"


def _scalar(v, kind: int, floats: list):
    if kind == _STR:
        if isinstance(v, str):
            return v
        raise TypeError(f"must be a string, not {type(v).__name__}")
    if kind == _INT or kind == _PTR:
        if isinstance(v, int) and type(v) is not bool:
            return v
        raise TypeError(f"must be an integer, not {type(v).__name__}")
    if kind == _BOOL:
        if v is True or v is False:
            return v
        raise TypeError(f"must be a boolean, not {type(v).__name__}")
    return _float(v, floats)


def _order(d: dict, plan: _Plan, floats: list) -> dict:
    out = {}
    seen = 0
    for key, kind, sub, omit in plan.fields:
        if key not in d:
            if not omit:
                out[key] = _ZERO[kind]
            continue
        seen += 1
        v = d[key]
        if kind <= _BOOL:  # value scalars
            if omit:
                if not v:  # "", 0, 0.0, False, None
                    continue
            elif v is None:
                v = _ZERO[kind]
            if type(v) is str and kind == _STR:  # the common case, checked first
                out[key] = v
                continue
            try:
                out[key] = _scalar(v, kind, floats)
            except (TypeError, ValueError) as e:
                raise _BadRecord(f"{plan.name}.{key} {e}") from None
        elif kind == _STRUCT:
            if v is None:
                continue
            if type(v) is not dict:
                raise _BadRecord(f"{plan.name}.{key} must be an object, not {type(v).__name__}", key)
            try:
                out[key] = _order(v, sub, floats)
            except _BadRecord as e:
                raise e.under(key) from None
        elif kind == _LIST:
            if not v:
                continue
            items = []
            for i, item in enumerate(v):
                if type(item) is not dict:
                    raise _BadRecord(f"{plan.name}.{key}[{i}] must be an object, not {type(item).__name__}", key)
                try:
                    items.append(_order(item, sub, floats))
                except _BadRecord as e:
                    raise e.under(f"{key}[{i}]") from None
            out[key] = items
        elif kind == _STRLIST:
            if not v:
                continue
            if None in v:
                raise _BadRecord(f"{plan.name}.{key} holds None", key)
            out[key] = v
        elif v is not None:  # _PTR, _PTRFLOAT: only nil is dropped
            try:
                out[key] = _scalar(v, kind, floats)
            except (TypeError, ValueError) as e:
                raise _BadRecord(f"{plan.name}.{key} {e}") from None
    if seen != len(d):
        unknown = sorted(k for k in d if k not in plan.keys)
        raise _BadRecord(f"unknown key {unknown[0]!r} in {plan.name} (known: {', '.join(sorted(plan.keys))})")
    return out


def _ordered(record: dict) -> tuple[dict, list[str]]:
    """The record in struct order with Go's omitempty, and the float texts its placeholders stand for."""
    if type(record) is not dict:
        raise TypeError(f"record must be a dict, not {type(record).__name__}")
    floats: list[str] = []
    return _order(record, _ROOT_PLAN, floats), floats


def _encode_record(record: dict) -> tuple[str, list[str]]:
    ordered, floats = _ordered(record)
    return _encode(ordered), floats


def to_wme_json(record: dict) -> str:
    """One Article as WME's Go encoder writes it (no trailing newline). ValueError on bad input."""
    s, floats = _encode_record(record)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if "\u2028" in s:
        s = s.replace("\u2028", "\\u2028")
    if "\u2029" in s:
        s = s.replace("\u2029", "\\u2029")
    for i, text in enumerate(floats):
        s = s.replace(f'"\\u0000{i}\\u0000"', text, 1)
    return s


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_SEPARATOR = re.compile(b"\xe2\x80[\xa8\xa9]")  # U+2028, U+2029 in UTF-8


def to_wme_json_bytes(record: dict) -> bytes:
    """`to_wme_json(record) + "\\n"` as UTF-8: one NDJSON line, the same bytes, made faster.

    The escapes run on the UTF-8 bytes (half the memory of the UCS-2 text of a page with
    non-Latin-1 characters). Lone surrogates, which only a lossy decode upstream can produce,
    become `\\ufffd` as Go writes invalid UTF-8.
    """
    ordered, floats = _ordered(record)
    return _line(ordered, floats)


def to_wme_json_bytes_in(record: dict, order: tuple[str, ...], plain: dict) -> bytes:
    """One NDJSON line of another WME struct whose fields are Article fields or plain JSON.

    `record` holds Article-typed fields (ordered and omitted by the Article's rules, as in
    `to_wme_json_bytes`), `plain` JSON-ready values written as given (already omitempty); the
    line's keys follow `order`. Same escapes and float texts as an Article line.
    """
    ordered, floats = _ordered(record)
    merged = {k: ordered[k] if k in ordered else plain[k] for k in order if k in ordered or k in plain}
    return _line(merged, floats)


def _line(ordered: dict, floats: list[str]) -> bytes:
    b = None
    if _orjson is not None:
        try:
            b = _orjson.dumps(ordered)
        except TypeError:  # JSONEncodeError: a lone surrogate, an int past 64 bits
            pass
    if b is None:
        s = _encode(ordered)
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError:
            b = _LONE_SURROGATE.sub(r"\\ufffd", s).encode("utf-8")
    b = b.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    # U+2028, U+2029: their last byte is looked for first (memchr: a microsecond per line), the
    # whole sequence only then (a three-byte search runs a byte at a time, ~40 µs for a 60 kB
    # line, and `\xe2\x80` alone starts – — ’ “ …: nearly every line of enwiki holds it).
    if (b.find(b"\xa8") >= 0 or b.find(b"\xa9") >= 0) and _LINE_SEPARATOR.search(b):
        b = b.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    for i, text in enumerate(floats):
        b = b.replace(f'"\\u0000{i}\\u0000"'.encode(), text.encode(), 1)
    return b + b"\n"


def format_time(dt: datetime) -> str:
    """A datetime as Go's `time.Time` JSON text for WME: UTC, `Z`, fraction only when non-zero
    and without trailing zeros (`2001-11-05T18:26:16Z`, `2023-07-28T15:58:38.923659Z`).

    Naive datetimes are taken as UTC (MediaWiki and WME times are UTC); aware ones are converted.
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    s = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        s += f".{dt.microsecond:06d}".rstrip("0")
    return s + "Z"


_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{0,8}[1-9]))?Z")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def parse_time_ns(text: str) -> int:
    """Go's RFC 3339 UTC text (as `format_time` writes it) → nanoseconds since the epoch.

    Only Go's canonical form is accepted (`Z`, fraction without trailing zeros), so that
    `format_time_ns(parse_time_ns(s)) == s` always; anything else is a ValueError.
    """
    m = _TIME.fullmatch(text) if type(text) is str else None
    if m is None:
        raise ValueError(f"not a Go RFC 3339 UTC time: {text!r}")
    y, mo, d, h, mi, s, frac = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s) > 59:
        raise ValueError(f"not a valid time: {text!r}")
    try:
        days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError(f"not a valid time: {text!r}") from None
    ns = ((days * 24 + int(h)) * 60 + int(mi)) * 60 + int(s)
    ns *= 1_000_000_000
    if frac:
        ns += int(frac.ljust(9, "0"))
    return ns


def format_time_ns(ns: int) -> str:
    """Nanoseconds since the epoch → Go's RFC 3339 UTC text (fraction trimmed, `Z`)."""
    secs, frac = divmod(ns, 1_000_000_000)
    days, rem = divmod(secs, 86400)
    d = date.fromordinal(days + _EPOCH_ORDINAL)
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    text = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{h:02d}:{mi:02d}:{s:02d}"
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return text + "Z"
