"""to_wme_json reproduces WME's Go json.Marshal byte for byte (schemas/serialize.py)."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from wikisnap.schemas.serialize import (
    format_float,
    format_time,
    format_time_ns,
    parse_time_ns,
    to_wme_json,
    to_wme_json_bytes,
)

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "wme" / "sdk-articles-3lines-2023.ndjson"
WME_REPO_3 = DATA / "html" / "wme-repo__articles-3records.ndjson"
WME_REPO_ORIGINALS = [
    DATA / "html" / "wme-repo__enwikiversity-Albert_Einstein.json",
    DATA / "html" / "wme-repo__frwiki-Alexandros_Ioannis_Ginnis.json",
    DATA / "html" / "wme-repo__simplewiki-Albert_Einstein.json",
]

# Real Go output quoted verbatim (not in tests/data): two lines of WME's Realtime API, from
# wme-sdk-go example/streaming/README.md (shared/reference/wme/samples/realtime-stream-6lines-2023).
REALTIME_LINES = [
    '{"name":"Polygonum aschersonianum","is_part_of":{"identifier":"svwiki","url":"https://sv.wikipedia.org",'
    '"size":{}},"event":{"identifier":"8f0f388e-cda8-4032-b696-3b702673ab1e","type":"update",'
    '"date_created":"2023-08-01T19:30:29.529004Z","date_published":"2023-08-01T19:30:29.529Z",'
    '"partition":0,"offset":3614782}}',
    '{"name":"Писарівка_(Ямпільський_район)","is_part_of":{"identifier":"ukwiki","url":"https://uk.wikipedia.org",'
    '"size":{}},"event":{"identifier":"e7c1b0c2-94b8-430e-80d2-fde6d9c40aa9","type":"delete",'
    '"date_created":"2023-08-01T19:41:29.803635Z","date_published":"2023-08-01T19:41:29.98Z",'
    '"partition":7,"offset":3643817}}',
]
# The `version` and `event` objects of a real line of HuggingFace wikimedia/structured-wikipedia
# (20240916.en, "Not Again SU"), verbatim: `"maintenance_tags":{}`, scores, a 7-digit fraction.
HF_VERSION = (
    '{"identifier":1220413474,"comment":"Added # to title.","is_minor_edit":true,"scores":{"revertrisk":'
    '{"probability":{"false":0.5951822996139526,"true":0.40481770038604736}}},"editor":{"identifier":47559838,'
    '"name":"T.olivia.p","edit_count":4,"groups":["*","user"],"date_started":"2024-03-19T15:34:53Z"},'
    '"number_of_characters":72,"size":{"value":72,"unit_text":"B"},"maintenance_tags":{}}'
)
HF_EVENT = (
    '{"identifier":"fa3cae5b-8707-4f55-9fab-5baa4c286a32","type":"update",'
    '"date_created":"2024-04-23T16:53:56.207887Z","date_published":"2024-08-06T08:45:21.6690873Z"}'
)


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def shuffled(value, rng: random.Random):
    """A deep copy with the keys of every object in a random (seeded) order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def key_orders(value) -> list[list[str]]:
    if isinstance(value, dict):
        return [list(value)] + [o for v in value.values() for o in key_orders(v)]
    if isinstance(value, list):
        return [o for v in value for o in key_orders(v)]
    return []


def go_html_escape(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ---------------------------------------------------------------------------------------------
# Golden: real WME snapshot lines


@pytest.mark.parametrize("index", range(3))
def test_golden_line_from_shuffled_keys(index):
    line = read_lines(GOLDEN)[index]
    original = json.loads(line)
    record = shuffled(original, random.Random(index))
    assert key_orders(record) != key_orders(original)  # the shuffle really reordered
    assert to_wme_json(record) == line
    assert to_wme_json_bytes(record) == (line + "\n").encode("utf-8")


def test_golden_file_byte_for_byte():
    raw = GOLDEN.read_bytes()
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert b"".join(to_wme_json_bytes(r) for r in records) == raw


def test_serialising_does_not_modify_the_record():
    record = shuffled(json.loads(read_lines(GOLDEN)[1]), random.Random(7))
    before = copy.deepcopy(record)
    to_wme_json(record)
    to_wme_json_bytes(record)
    assert record == before and key_orders(record) == key_orders(before)


# ---------------------------------------------------------------------------------------------
# The three WME-repo records: mock data of WME's API, hand-formatted, not Go output


def test_wme_repo_records_are_the_json_files_reserialised():
    for line, original in zip(read_lines(WME_REPO_3), WME_REPO_ORIGINALS, strict=True):
        assert json.loads(line) == json.loads(original.read_text(encoding="utf-8"))
    # The pretty-printed originals are not Go output either: two escape `<` like Go, frwiki not.
    escaped = ["\\u003c" in p.read_text(encoding="utf-8") for p in WME_REPO_ORIGINALS]
    assert escaped == [True, False, True]


# The mock records put `in_language.name` before `identifier`; Go's Language struct (and every
# real WME line) has identifier first. The NDJSON conversion also dropped Go's \u003c escapes.
MOCK_LANGUAGE = {
    0: ('"in_language":{"name":"English","identifier":"en"}', '"in_language":{"identifier":"en","name":"English"}'),
    1: None,  # frwiki: in_language has no name, nothing reordered
    2: (
        '"in_language":{"name":"Simple English","identifier":"simple"}',
        '"in_language":{"identifier":"simple","name":"Simple English"}',
    ),
}


@pytest.mark.parametrize("index", range(3))
def test_wme_repo_records_differ_only_by_escapes_and_language_order(index):
    line = read_lines(WME_REPO_3)[index]
    assert "\\u003c" not in line and "<" in line
    expected = go_html_escape(line)
    swap = MOCK_LANGUAGE[index]
    if swap is not None:
        mock, go = swap
        assert expected.count(mock) == 1
        expected = expected.replace(mock, go)
    out = to_wme_json(shuffled(json.loads(line), random.Random(index)))
    assert out == expected
    assert json.loads(out) == json.loads(line)


def test_mwparserfromhtml_records_serialise():
    path = DATA / "html" / "mwparserfromhtml__enwiki-enterprise-html-2records.ndjson"
    for line in read_lines(path):
        record = json.loads(line)
        assert json.loads(to_wme_json(record)) == record


# ---------------------------------------------------------------------------------------------
# Real Go lines outside the snapshot format


@pytest.mark.parametrize("line", REALTIME_LINES)
def test_realtime_lines(line):
    # `"size":{}` (present, empty struct) and `"partition":0` (*int, only nil is dropped).
    assert to_wme_json(shuffled(json.loads(line), random.Random(1))) == line


def test_version_and_event_of_structured_contents_line():
    record = {"version": json.loads(HF_VERSION), "event": json.loads(HF_EVENT)}
    assert to_wme_json(shuffled(record, random.Random(3))) == f'{{"version":{HF_VERSION},"event":{HF_EVENT}}}'


# ---------------------------------------------------------------------------------------------
# Rules, one case each


def test_omitempty_drops_zero_values():
    record = {
        "name": "",
        "identifier": 0,
        "abstract": None,
        "watchers_count": 0,
        "categories": [],
        "redirects": None,
        "version": {"comment": "", "tags": [], "is_minor_edit": False, "editor": None, "number_of_characters": 0},
        "previous_version": None,
        "namespace": {"identifier": 0},
    }
    assert to_wme_json(record) == '{"version":{},"namespace":{"identifier":0}}'


def test_present_struct_prints_empty_object():
    record = {"version": {"identifier": 5, "maintenance_tags": {"pov_count": 0}}, "image": {}}
    assert to_wme_json(record) == '{"version":{"identifier":5,"maintenance_tags":{}},"image":{}}'


def test_fields_without_omitempty_are_always_written():
    assert to_wme_json({"namespace": {}}) == '{"namespace":{"identifier":0}}'
    assert to_wme_json({"namespace": {"identifier": None, "name": "Article"}}) == (
        '{"namespace":{"name":"Article","identifier":0}}'
    )
    assert to_wme_json({"visibility": {"comment": True}}) == (
        '{"visibility":{"text":false,"editor":false,"comment":true}}'
    )
    delta = {"sum": 3}
    assert to_wme_json({"version": {"diff": {"informal_words": delta}}}) == (
        '{"version":{"diff":{"informal_words":{"increase":0,"decrease":0,"sum":3,'
        '"proportional_increase":0,"proportional_decrease":0}}}}'
    )


def test_pointer_scalars_keep_zero():
    assert to_wme_json({"event": {"partition": 0, "offset": 0, "fail_count": 0}}) == (
        '{"event":{"partition":0,"offset":0}}'
    )


def test_escapes():
    name = 'a<b>&c\u2028d\u2029é中\U0001f600\x01\x1f\n\r\t\b\f"\\\x7f'
    expected = '{"name":"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029é中\U0001f600\\u0001\\u001f\\n\\r\\t\\b\\f\\"\\\\\x7f"}'
    assert to_wme_json({"name": name}) == expected
    assert to_wme_json_bytes({"name": name}) == (expected + "\n").encode("utf-8")


def test_lone_surrogate_becomes_replacement_escape_in_bytes():
    assert to_wme_json_bytes({"name": "a\udc80b"}) == b'{"name":"a\\ufffdb"}\n'


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (34723.0, "34723"),  # integral float: no ".0" (version.size.value in WME)
        (0.9932501771640722, "0.9932501771640722"),  # real score: shortest round-trip digits
        (0.5, "0.5"),
        (5e-05, "0.00005"),  # Python repr 5e-05; Go uses no exponent from 1e-6
        (1e-06, "0.000001"),
        (1e-07, "1e-7"),  # below 1e-6: exponent, Go trims e-07 to e-7
        (1.5e-10, "1.5e-10"),
        (1e16, "10000000000000000"),
        (1.2345678901234567e19, "12345678901234567000"),  # shortest digits, zero-padded
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-0.0, "-0"),
        (5e-324, "5e-324"),
    ],
)
def test_float_format(value, go):
    assert format_float(value) == go
    # Delta fields have no omitempty: every value is written, zero included.
    delta = {"increase": 1, "decrease": 0, "sum": 1, "proportional_increase": value, "proportional_decrease": 0.25}
    assert to_wme_json({"version": {"diff": {"informal_words": delta}}}) == (
        '{"version":{"diff":{"informal_words":{"increase":1,"decrease":0,"sum":1,'
        f'"proportional_increase":{go},"proportional_decrease":0.25}}}}}}}}'
    )
    # Size.value has omitempty: a zero (also -0) is dropped, leaving the present struct `{}`.
    size = "{}" if value == 0 else f'{{"value":{go}}}'
    assert to_wme_json({"version": {"size": {"value": value}}}) == f'{{"version":{{"size":{size}}}}}'


def test_float_nan_is_refused():
    with pytest.raises(ValueError, match="Size.value"):
        to_wme_json({"version": {"size": {"value": float("nan")}}})


def test_format_time():
    utc = UTC
    assert format_time(datetime(2001, 11, 5, 18, 26, 16, tzinfo=utc)) == "2001-11-05T18:26:16Z"
    assert format_time(datetime(2023, 7, 28, 15, 58, 38, 923659, tzinfo=utc)) == "2023-07-28T15:58:38.923659Z"
    assert format_time(datetime(2023, 8, 1, 19, 41, 29, 980000, tzinfo=utc)) == "2023-08-01T19:41:29.98Z"
    assert format_time(datetime(2001, 11, 5, 18, 26, 16)) == "2001-11-05T18:26:16Z"  # naive = UTC
    cest = timezone(timedelta(hours=2))
    assert format_time(datetime(2001, 11, 5, 20, 26, 16, 500000, tzinfo=cest)) == "2001-11-05T18:26:16.5Z"


@pytest.mark.parametrize(
    "text",
    [
        "2001-10-09T17:55:09Z",  # golden date_created
        "2023-08-29T14:19:05.532613Z",  # golden event.date_created
        "2024-08-06T08:45:21.6690873Z",  # HF structured-wikipedia date_published
        "2023-09-04T03:22:17.581702997Z",  # tests/data/wme/snapshot.json date_modified
        "2023-08-01T19:41:29.98Z",  # realtime date_published
    ],
)
def test_time_ns_round_trip(text):
    assert format_time_ns(parse_time_ns(text)) == text


@pytest.mark.parametrize(
    "text", ["2001-10-09T17:55:09.0Z", "2001-10-09 17:55:09Z", "2001-10-09T17:55:09+00:00", "2001-02-30T00:00:00Z"]
)
def test_parse_time_rejects_non_go_text(text):
    with pytest.raises(ValueError, match="time"):
        parse_time_ns(text)


def test_snapshot_metadata_time_matches_parser():
    meta = json.loads((DATA / "wme" / "snapshot.json").read_text(encoding="utf-8"))
    ns = parse_time_ns(meta["date_modified"])
    assert ns % 1000 != 0  # WME's Go clock writes nanoseconds
    assert format_time_ns(ns) == meta["date_modified"]


# ---------------------------------------------------------------------------------------------
# Bad records


def test_unknown_top_level_key():
    with pytest.raises(ValueError, match=r"unknown key 'nmae' in Article"):
        to_wme_json({"nmae": "Squirrel"})


def test_unknown_nested_key_names_the_path():
    record = json.loads(read_lines(GOLDEN)[1])
    record["version"]["editor"]["is_bott"] = True
    with pytest.raises(ValueError, match=r"unknown key 'is_bott' in Editor .*Article\.version\.editor"):
        to_wme_json(record)
    record = {"categories": [{"name": "Category:X"}, {"name": "Category:Y", "ulr": "u"}]}
    with pytest.raises(ValueError, match=r"'ulr' in Category .*Article\.categories\[1\]"):
        to_wme_json(record)


@pytest.mark.parametrize(
    "record",
    [
        {"identifier": "28492"},
        {"identifier": True},
        {"name": 5},
        {"version": {"is_minor_edit": 1}},
        {"version": "1171934824"},
        {"categories": [None]},
        {"categories": {"name": "x"}},
        {"version": {"tags": ["a", None]}},
    ],
)
def test_wrong_types_raise(record):
    with pytest.raises(ValueError):
        to_wme_json(record)


# ---------------------------------------------------------------------------------------------
# The two encoders: orjson (bytes, the build's path) and the stdlib's (to_wme_json) agree


def test_orjson_is_the_encoder_of_the_bytes_path():
    from wikisnap.schemas import serialize

    assert serialize._orjson is not None  # a runtime dependency: the tests run with it


def test_both_encoders_give_the_same_bytes_on_real_records(enwiki_build):
    import tarfile

    lines = [line.decode("utf-8") for line in GOLDEN.read_bytes().splitlines()]
    with tarfile.open(enwiki_build / "enwiki_namespace_0.tar.gz") as tar:
        lines += [line.decode("utf-8") for m in tar for line in tar.extractfile(m).read().splitlines()]
    assert len(lines) > 100
    for line in lines:
        record = json.loads(line)
        assert to_wme_json_bytes(record) == (to_wme_json(record) + "\n").encode("utf-8") == (line + "\n").encode()


def test_both_encoders_agree_on_every_character_and_float():
    text = "".join(chr(i) for i in range(0x800)) + "\u2028\u2029\ufeff\uffff\U0001f600 <a href='x'>&amp;</a>"
    record = {"name": text, "abstract": text[::-1]}
    assert to_wme_json_bytes(record) == (to_wme_json(record) + "\n").encode("utf-8")
    rng = random.Random(14)
    for _ in range(20_000):
        value = rng.uniform(-1, 1) * 10 ** rng.uniform(-9, 22)
        delta = {"increase": 1, "proportional_increase": value, "proportional_decrease": rng.random()}
        record = {"version": {"diff": {"informal_words": delta}}}
        assert to_wme_json_bytes(record) == (to_wme_json(record) + "\n").encode("utf-8"), value


def test_line_separators_escaped_whatever_bytes_surround_them():
    # the byte line looks for U+2028/U+2029's last byte (a8, a9) before the whole sequence: that
    # byte also ends è é ¨ © and other characters, beside or without a separator
    pieces = ["è", "é", "¨", "©", "\u2028", "\u2029", "–", "’", "\u2027", "\u202a", "a", "<"]
    rng = random.Random(2028)
    for n in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(n % 12))
        record = {"name": text, "abstract": text[::-1]}
        assert to_wme_json_bytes(record) == (to_wme_json(record) + "\n").encode("utf-8"), text
    assert to_wme_json_bytes({"name": "é\u2029"}) == '{"name":"é\\u2029"}\n'.encode()
    assert to_wme_json_bytes({"name": "è\u2028"}) == '{"name":"è\\u2028"}\n'.encode()
    assert to_wme_json_bytes({"name": "©"}) == '{"name":"©"}\n'.encode()


def test_values_orjson_refuses_take_the_stdlib_path():
    # a lone surrogate (a lossy decode upstream) and an int past 64 bits
    assert to_wme_json_bytes({"name": "a\udc80b"}) == b'{"name":"a\\ufffdb"}\n'
    assert to_wme_json_bytes({"identifier": 2**70}) == f'{{"identifier":{2**70}}}\n'.encode()
