"""Parsoid HTML of the diffs' new revisions, joined to their Changes before the fold (update).

Without it an update loses every HTML-derived field of a page it touches: the diffs bring wikitext
only. Inputs of `update` that are Parsoid HTML (documents, folders, tars, or NDJSON lines with an
`html` field: `records.sniff_record_input` says `html`) are read as a build reads them
(`records.html_item`: the page and revision from the document's `<head>`, categories, templates
and abstract derived) and keyed by (db, page id, revision). One CoGroupByKey meets them with the
revision Changes of the same key; a Change whose revision has HTML gets `article_body.html` and
the HTML's fields (`records.attach_html`) — so the folded record, its batch entries and its
Parquet row keep them, as a build's would.

Counts (per wiki): `html/read`, `html/used`, `html/duplicate` (the same revision's HTML twice:
the smallest document is kept, so reruns agree), `html/unmatched` (HTML of a revision no diff
brings: a dead letter with the HTML kept), `html/dead_lettered` (not Parsoid HTML, not UTF-8, a
wiki the base does not hold), `html/ns{ns}/skipped`. Memory: the HTML of the diffs'
revisions goes through one shuffle, diff-sized like the Changes themselves.
"""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam

from wikisnap.schemas.siteinfo import dbname_from_base
from wikisnap.transforms.formats.counters import counter
from wikisnap.transforms.parse.html import HtmlError, looks_like_html
from wikisnap.transforms.read import DeadLetter
from wikisnap.transforms.records import RecordInput, attach_html, html_item, iter_pieces

TAG_STATS = "stats"
TAG_DEADLETTERS = "deadletters"


class _ReadHtmlFn(beam.DoFn):
    """RecordInput (kind html) → `((db, page_id, rev), item)`, stats and dead letters."""

    def __init__(self, namespaces: frozenset[int], wikis: frozenset[str]):
        self.namespaces = namespaces
        self.wikis = wikis

    def process(self, inp: RecordInput):
        counts: dict[tuple[str, str], int] = {}
        fallback = inp.dbname or "unknown"

        def count(db: str, name: str) -> None:
            counts[(db, name)] = counts.get((db, name), 0) + 1

        def dead(db: str, source: str, reason: str, raw: bytes, page_id=None, title=None):
            count(db, "html/dead_lettered")
            text = raw.decode("utf-8", "replace")
            return beam.pvalue.TaggedOutput(TAG_DEADLETTERS, DeadLetter(db, source, reason, page_id, title, text))

        for source, raw in iter_pieces(inp.path, inp.files):
            if raw[:64].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
                try:
                    obj = json.loads(raw)
                except ValueError as exc:
                    yield dead(fallback, source, f"not JSON: {exc}", raw)
                    continue
                if not isinstance(obj, dict) or not isinstance(obj.get("html"), str):
                    yield dead(fallback, source, "a JSON line without an `html` document", raw)
                    continue
                raw = obj["html"].encode("utf-8")
            elif not looks_like_html(raw[:64].decode("utf-8", "replace")):
                yield dead(fallback, source, "not an HTML document", raw)
                continue
            try:
                (db, ns, page_id, rev), item = html_item(raw.decode("utf-8"), self.namespaces)
            except UnicodeDecodeError as exc:
                yield dead(fallback, source, f"HTML is not UTF-8: {exc}", raw)
                continue
            except HtmlError as exc:
                db = (dbname_from_base(exc.base_url) if exc.base_url else None) or fallback
                yield dead(db, source, str(exc), raw)
                continue
            if db not in self.wikis:
                yield dead(db, source, f"Parsoid HTML of wiki {db!r}, which the base does not hold", raw, page_id)
                continue
            count(db, "html/read")
            if ns not in self.namespaces:
                count(db, counter("html", ns, "skipped"))
                continue
            yield ((db, page_id, rev), (source, item))
        for key, n in sorted(counts.items()):
            yield beam.pvalue.TaggedOutput(TAG_STATS, (key, n))


def attach_to_changes(key: tuple, changes: list, htmls: list) -> tuple[list, dict[str, int], list[DeadLetter]]:
    """One (db, page, revision): its Changes with the HTML attached to those carrying a record.

    Out: (changes, counts, dead letters). Pure; Changes are replaced, never changed in place.
    """
    db, page_id, rev = key
    counts: dict[str, int] = {}
    letters: list[DeadLetter] = []
    if not htmls:
        return changes, counts, letters
    # the same revision's HTML twice (overlapping inputs): the smallest document wins, whatever the order
    htmls = sorted(htmls, key=lambda si: (si[1]["article_body"]["html"], si[0]))
    if len(htmls) > 1:
        counts["html/duplicate"] = len(htmls) - 1
    source, item = htmls[0]
    out, used = [], False
    for ch in changes:
        if ch.record is not None:
            record = dict(ch.record)
            attach_html(record, item)
            ch = dataclasses.replace(ch, record=record)
            used = True
        out.append(ch)
    if used:
        counts["html/used"] = 1
    else:
        counts["html/unmatched"] = 1
        reason = f"Parsoid HTML of page {page_id} revision {rev}, but no diff brings that revision"
        letters.append(DeadLetter(db, source, reason, page_id, item.get("title"), item["article_body"]["html"]))
    return out, counts, letters


class _AttachFn(beam.DoFn):
    def process(self, element):
        key, groups = element
        changes, counts, letters = attach_to_changes(key, list(groups["changes"]), list(groups["html"]))
        for ch in changes:
            yield ((ch.dbname, ch.page_id), ch)
        for letter in letters:
            yield beam.pvalue.TaggedOutput(TAG_DEADLETTERS, letter)
        for name, n in counts.items():
            yield beam.pvalue.TaggedOutput(TAG_STATS, ((key[0], name), n))


class JoinHtml(beam.PTransform):
    """(changes `((db, page_id), Change)`, RecordInputs of Parsoid HTML) → DoOutputsTuple(main
    changes in the same shape, HTML attached; stats; deadletters)."""

    def __init__(self, namespaces: frozenset[int], wikis: frozenset[str]):
        super().__init__()
        self.namespaces = namespaces
        self.wikis = wikis

    def expand(self, pcolls):
        changes, inputs = pcolls
        read = (
            inputs
            | "ReshuffleHtmlInputs" >> beam.Reshuffle()
            | "ReadHtml"
            >> beam.ParDo(_ReadHtmlFn(self.namespaces, self.wikis)).with_outputs(
                TAG_STATS, TAG_DEADLETTERS, main="html"
            )
        )
        keyed = changes | "KeyChangesByRevision" >> beam.MapTuple(
            lambda _key, ch: ((ch.dbname, ch.page_id, ch.rev_id), ch)
        )
        joined = (
            {"changes": keyed, "html": read.html}
            | "JoinHtmlToChanges" >> beam.CoGroupByKey()
            | "AttachHtml" >> beam.ParDo(_AttachFn()).with_outputs(TAG_STATS, TAG_DEADLETTERS, main="changes")
        )
        stats = (read[TAG_STATS], joined[TAG_STATS]) | "FlattenHtmlStats" >> beam.Flatten()
        letters = (read[TAG_DEADLETTERS], joined[TAG_DEADLETTERS]) | "FlattenHtmlDeadLetters" >> beam.Flatten()
        return joined.changes, stats, letters
