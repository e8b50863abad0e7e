"""`--formats structured` end to end, and the record inputs it is built from.

Data: WME's own parser-test documents (tests/data/wme-parser, PROVENANCE section 8), each wrapped
as a WME record the way WME's snapshots carry one — identifier, revision, wiki, title and date from
the document's own `<head>`, the document as `article_body.html` (`wme_record`); the real
Enterprise HTML records of tests/data/html; a page_props.sql with the real table's header and
`wikibase-shortdesc` rows (tests/data/sql, PROVENANCE).
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA, read_snapshot
from wikisnap.transforms.parse.html import identify

DOCUMENTS = DATA / "wme-parser" / "documents"
# documents whose <head> names page and revision (Parsoid's), one per wiki where possible
WRAPPED = ("Coset", "Knetka", "Malta", "Gad_Elmaleh")
LANGS = {"en": "en", "bg": "bg", "de": "de", "fr": "fr", "cs": "cs", "it": "it"}


def wme_record(title: str) -> dict:
    """One wme-parser document as a WME record: what its <head> says, the document as its body."""
    html = (DOCUMENTS / f"{title}.html").read_text(encoding="utf-8")
    ident = identify(html)
    base = ident.base_url.removesuffix("/wiki/")
    lang = base.removeprefix("https://").split(".", 1)[0]
    db = f"{lang}wiki"
    record = {
        "name": ident.title,
        "identifier": ident.page_id,
        "date_modified": ident.modified or "2023-01-01T00:00:00Z",
        "version": {"identifier": ident.rev_id},
        "url": f"{base}/wiki/{ident.title.replace(' ', '_')}",
        "namespace": {"identifier": 0},
        "in_language": {"identifier": LANGS[lang]},
        "is_part_of": {"identifier": db, "url": base},
        "article_body": {"html": html},
    }
    return record


def ndjson(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_two_wme_records_of_one_revision_are_deduplicated(tmp_path, build) -> None:
    """Overlapping record inputs (a re-downloaded part, two runs of one day): the same page and
    revision twice is one record and a counted duplicate, as two XML copies are — never a crash."""
    records = [wme_record(t) for t in WRAPPED]
    first = ndjson(tmp_path / "part-0.ndjson", records)
    again = ndjson(tmp_path / "part-0-redownloaded.ndjson", records[:2])
    out = tmp_path / "out"
    code, _stdout, stderr = build([first, again], out, "--date", "20240101")
    assert code == 0, stderr
    ids = {}
    for tar in sorted(out.glob("*.tar.gz")):
        for rec in read_snapshot(tar)[1]:
            ids.setdefault(rec["identifier"], 0)
            ids[rec["identifier"]] += 1
    assert ids == {r["identifier"]: 1 for r in records}
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert counts["enwiki"]["duplicates_superseded"] == 1
    assert counts["bgwiki"]["duplicates_superseded"] == 1
    assert counts["dewiki"]["duplicates_superseded"] == 0
