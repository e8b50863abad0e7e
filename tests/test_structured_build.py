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


def structured_outputs(out: Path, sid: str) -> tuple[list[bytes], list[bytes], dict]:
    """(NDJSON lines of the structured tarball, Parquet rows read back and serialised, metadata)
    of one snapshot (rows are compared as lines: Parquet, like JSON, does not keep a missing key
    apart from its omitempty zero value)."""
    import pyarrow.parquet as pq

    from wikisnap.schemas.structured import structured_from_table, structured_line

    lines = read_snapshot(out / "structured-snapshots" / f"{sid}.tar.gz")[2]
    rows = []
    for shard in sorted((out / "structured-snapshots" / "parquet" / sid).glob("*.parquet")):
        rows.extend(structured_line(r) for r in structured_from_table(pq.read_table(shard)))
    meta = json.loads((out / "structured-snapshots" / f"{sid}.json").read_text())
    return lines, rows, meta


def test_structured_build_from_wme_records(tmp_path, build) -> None:
    """WME records with Parsoid bodies → Structured Contents: WME's key order, the parts WME's
    parser gives for each document, tarball + metadata + Parquet verified and in the manifest,
    Parquet rows equal to the NDJSON lines."""
    from wikisnap.schemas.structured import STRUCTURED_KEYS
    from wikisnap.transforms.parse import structured
    from wikisnap.transforms.parse.structured_infobox import get_infoboxes

    records = [wme_record(t) for t in WRAPPED]
    src = ndjson(tmp_path / "records.ndjson", records)
    out = tmp_path / "out"
    code, _stdout, stderr = build(
        [src], out, "--date", "20240101", "--formats", "ndjson,structured", "--pipeline_type_check"
    )
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {o["path"]: o for o in manifest["outputs"]}
    for title, record in zip(WRAPPED, records, strict=True):
        db = record["is_part_of"]["identifier"]
        sid = f"{db}_namespace_0"
        lines, rows, meta = structured_outputs(out, sid)
        assert len(lines) == 1
        got = json.loads(lines[0])
        assert rows == lines
        assert list(got) == [k for k in STRUCTURED_KEYS if k in got]
        assert got["name"] == record["name"] and got["identifier"] == record["identifier"]
        assert got["version"] == record["version"] and got["url"] == record["url"]
        doc = structured.parse((DOCUMENTS / f"{title}.html").read_text(encoding="utf-8"))
        want_infoboxes = [structured.to_json(p) for p in get_infoboxes(doc)]
        want_sections = [structured.to_json(p) for p in structured.get_sections(doc)]
        assert got.get("infoboxes", []) == want_infoboxes
        assert got["sections"] == want_sections
        assert "description" not in got  # no page_props given
        assert meta["identifier"] == sid and meta["is_part_of"] == {"identifier": db}
        for rel in (
            f"structured-snapshots/{sid}.tar.gz",
            f"structured-snapshots/{sid}.json",
            f"structured-snapshots/parquet/{sid}/{sid}_0.parquet",
        ):
            assert rel in listed, rel
        assert listed[f"structured-snapshots/{sid}.tar.gz"]["records"] == 1
        assert manifest["counts"][db]["structured/ns0/written"] == 1
    # Malta (dewiki) has an infobox, Coset (enwiki) none: both shapes were compared above
    assert json.loads(structured_outputs(out, "dewiki_namespace_0")[0][0])["infoboxes"]


def test_description_from_page_props_and_pages_without_html_counted(tmp_path, build) -> None:
    """page_props' `wikibase-shortdesc` becomes `description` (absent where none is given); a
    record without Parsoid HTML gets no Structured record and is counted, never guessed."""
    coset, caryophyllales = wme_record("Coset"), wme_record("Caryophyllales")
    no_html = dict(wme_record("Distinctive_feature"))
    no_html["article_body"] = {"wikitext": "A '''distinctive feature''' is ..."}
    kyoto = wme_record("Kyoto")
    src = ndjson(tmp_path / "records.ndjson", [coset, caryophyllales, no_html, kyoto])
    sql = tmp_path / "enwiki-20240101-page_props.sql.gz"  # the wiki is read from the dump's name
    sql.write_bytes((DATA / "sql" / "constructed__enwiki-20240101-page_props.shortdesc.sql.gz").read_bytes())
    out = tmp_path / "out"
    code, _stdout, stderr = build([src, sql], out, "--date", "20240101", "--formats", "structured")
    assert code == 0, stderr
    lines, rows, _meta = structured_outputs(out, "enwiki_namespace_0")
    got = {r["identifier"]: r for r in map(json.loads, lines)}
    assert rows == lines
    assert sorted(got) == sorted([coset["identifier"], caryophyllales["identifier"], kyoto["identifier"]])
    assert got[coset["identifier"]]["description"] == "Subset of a mathematical group"
    assert got[caryophyllales["identifier"]]["description"] == "Order of flowering plants"
    assert "description" not in got[kyoto["identifier"]]
    keys = list(got[coset["identifier"]])
    assert keys.index("in_language") < keys.index("description") < keys.index("sections")
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert counts["structured/ns0/written"] == 3
    assert counts["structured/ns0/without_html"] == 1
    assert counts["structured/with_description"] == 2
    assert not list(out.glob("*.tar.gz"))  # only the structured outputs were asked for


def test_structured_from_xml_joined_with_parsoid_html(tmp_path, build) -> None:
    """XML pages + standalone Parsoid documents (tests/data/html): the Structured record is made
    where the HTML is joined to the page; a page whose HTML is missing is counted, not guessed."""
    from test_html import WILLIAM_CLARK, records, xml_dump

    from wikisnap.transforms.parse import structured
    from wikisnap.transforms.parse.structured_infobox import get_infoboxes

    recs = {r["identifier"]: r for r in records()}
    clark, potts = recs[13924699], recs[31967453]
    xml = tmp_path / "enwiki-20211110-pages-articles.xml"
    xml_dump("enwiki", [clark, potts], xml)
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "clark.html").write_bytes(WILLIAM_CLARK.read_bytes())  # Mike Potts's HTML not given
    out = tmp_path / "out"
    code, _stdout, stderr = build([xml, html_dir], out, "--formats", "parquet,structured")
    assert code == 0, stderr
    lines, rows, meta = structured_outputs(out, "enwiki_namespace_0")
    (got,) = map(json.loads, lines)
    assert rows == lines
    assert got["identifier"] == 13924699 and got["name"] == clark["name"]
    doc = structured.parse(WILLIAM_CLARK.read_text(encoding="utf-8"))
    assert got.get("infoboxes", []) == [structured.to_json(p) for p in get_infoboxes(doc)]
    assert got["sections"] == [structured.to_json(p) for p in structured.get_sections(doc)]
    assert got["abstract"] and got["date_modified"] == clark["date_modified"]
    assert meta["date_modified"] == clark["date_modified"]
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert (counts["structured/ns0/written"], counts["structured/ns0/without_html"]) == (1, 1)
    assert counts["records/ns0/written"] == 2


def test_parts_deeper_than_the_typed_levels_survive_parquet() -> None:
    """Generated (a depth no test page reaches): parts below PART_DEPTH are kept as JSON text, as
    WME's AvroHasParts keeps every level; the typed levels are nested lists of structs."""
    import pyarrow as pa

    from wikisnap.schemas.structured import PART_DEPTH, STRUCTURED_SCHEMA, structured_from_table, structured_to_table

    part = {"type": "list_item", "value": "deepest & last", "links": [{"url": "https://x.org/wiki/A", "text": "A"}]}
    for level in range(PART_DEPTH + 3):
        part = {"type": "section", "name": f"level {level}", "has_parts": [part]}
    record = {"name": "Deep", "identifier": 1, "description": "d", "sections": [part], "infoboxes": [part]}
    table = structured_to_table([record])
    assert table.schema == STRUCTURED_SCHEMA
    sections = STRUCTURED_SCHEMA.field("sections").type
    assert pa.types.is_list(sections) and pa.types.is_struct(sections.value_type)
    assert pa.types.is_list(sections.value_type.field("has_parts").type)
    assert structured_from_table(table) == [record]


def test_hf_folder_has_a_structured_config_that_datasets_loads_offline(tmp_path, build) -> None:
    """`publish --layout hf` of a structured build: a `{db}_structured` config per wiki, typed
    like WME's wikimedia/structured-wikipedia, that `datasets` loads with the hub switched off."""
    import os
    import subprocess
    import sys

    from huggingface_hub import DatasetCard
    from test_outputs import run_cli

    records = [wme_record(t) for t in ("Coset", "Kyoto", "Malta")]
    src = ndjson(tmp_path / "records.ndjson", records)
    out = tmp_path / "out"
    code, _stdout, stderr = build([src], out, "--date", "20240101", "--formats", "parquet,structured")
    assert code == 0, stderr
    folder = tmp_path / "hf"
    code, _o, err = run_cli(["publish", out, "--to", folder, "--layout", "hf"])
    assert code == 0, err
    card = DatasetCard.load(folder / "README.md")
    names = [c["config_name"] for c in card.data.to_dict()["configs"]]
    assert names == ["dewiki_ns0", "enwiki_ns0", "dewiki_structured", "enwiki_structured"]
    assert "Structured Contents" in card.text and "How it differs from WME's" in card.text
    script = (
        "import datasets, json\n"
        f"ds = datasets.load_dataset({str(folder)!r}, 'enwiki_structured', split='train')\n"
        "row = ds[0]\n"
        "print(json.dumps({'columns': ds.column_names, 'ids': list(ds['identifier']), "
        "'first_section': row['sections'][0]['name'], 'part_type': str(ds.features['sections'])[:60]}))\n"
    )
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["ids"] == sorted(r["identifier"] for r in records if r["is_part_of"]["identifier"] == "enwiki")
    assert loaded["columns"][:2] == ["name", "identifier"] and loaded["columns"][-2:] == ["infoboxes", "sections"]
    assert loaded["first_section"] == "Abstract"
    assert "struct" in loaded["part_type"].lower() or "{" in loaded["part_type"]  # typed parts, not JSON text


def test_update_counts_the_pages_whose_html_fields_it_drops() -> None:
    """A base record with Parsoid HTML (a real Enterprise HTML record) given a newer revision
    without HTML: the fold keeps the new revision and counts `html/fields_dropped` — never silent."""
    from test_html import records

    from wikisnap.schemas.siteinfo import SiteInfo
    from wikisnap.transforms.update.diffs import Change
    from wikisnap.transforms.update.find import BaseHit
    from wikisnap.transforms.update.fold import fold_page

    clark = {r["identifier"]: r for r in records()}[13924699]
    site = SiteInfo(dbname="enwiki", base="https://en.wikipedia.org/wiki/Main_Page", lang="en")
    newer = {k: v for k, v in clark.items() if k not in ("categories", "templates", "abstract")}
    newer["version"] = {**clark["version"], "identifier": clark["version"]["identifier"] + 1}
    newer["article_body"] = {"wikitext": clark["article_body"]["wikitext"] + "\n\nMore."}
    change = Change(
        "enwiki", 13924699, "revision", "2021-11-11T00:00:00Z", newer["version"]["identifier"], 0, clark["name"], "t",
        record=newer,
    )  # fmt: skip
    base = BaseHit("enwiki", 0, 13924699, clark)
    outcome = fold_page(base, [change], site, frozenset({0}))
    assert outcome.record["version"]["identifier"] == newer["version"]["identifier"]
    assert "html" not in outcome.record["article_body"]
    assert outcome.counts == {"html/fields_dropped": 1}
    # the same revision again (nothing new) drops nothing
    assert fold_page(base, [], site, frozenset({0})).counts == {}


def test_update_with_parsoid_html_of_the_new_revision_keeps_the_html_fields(tmp_path, build, update) -> None:
    """A base built from XML + Parsoid HTML (tests/data/html, William Clark), updated with a newer
    revision of the page: with that revision's HTML the record keeps `article_body.html` and the
    HTML's categories/templates/abstract (in the snapshot, its Parquet and the hourly batch);
    without it the page's HTML fields are dropped and counted."""
    from test_html import WILLIAM_CLARK, parquet_records, records, xml_dump

    from wikisnap.transforms.parse.html import derive

    clark = {r["identifier"]: r for r in records()}[13924699]
    xml = tmp_path / "enwiki-20211110-pages-articles.xml"
    xml_dump("enwiki", [clark], xml)
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "clark.html").write_bytes(WILLIAM_CLARK.read_bytes())
    base = tmp_path / "base"
    code, _o, stderr = build([xml, html_dir], base)
    assert code == 0, stderr
    (before,) = read_snapshot(base / "enwiki_namespace_0.tar.gz")[1]
    assert before["article_body"]["html"] and len(before["categories"]) == 11

    new_rev = clark["version"]["identifier"] + 1
    newer = json.loads(json.dumps(clark))
    newer["version"]["identifier"] = new_rev
    newer["date_modified"] = "2021-11-12T00:00:00Z"
    newer["article_body"]["wikitext"] += "\n\nA sentence more."
    diff_dir = tmp_path / "diff"
    diff_dir.mkdir()
    diff = diff_dir / "enwiki-20211112-pages-articles.xml"
    xml_dump("enwiki", [newer], diff)
    new_html = WILLIAM_CLARK.read_text(encoding="utf-8").replace(
        f"revision/{clark['version']['identifier']}", f"revision/{new_rev}"
    )
    new_html_dir = tmp_path / "new-html"
    new_html_dir.mkdir()
    (new_html_dir / "clark.html").write_text(new_html, encoding="utf-8")

    out = tmp_path / "out"
    # html_dir holds the base revision's HTML, which no diff brings: unmatched, a dead letter
    # with Beam's construction-time type check on: the HTML join must pass it too
    code, _o, stderr = update(base, [diff, new_html_dir, html_dir], out, "--pipeline_type_check")
    assert code == 0, stderr
    (after,) = read_snapshot(out / "enwiki_namespace_0.tar.gz")[1]
    assert after["version"]["identifier"] == new_rev
    assert after["article_body"]["html"] == new_html
    assert after["article_body"]["wikitext"].endswith("A sentence more.")
    derived = derive(new_html)
    assert after["categories"] == derived["categories"] and after["templates"] == derived["templates"]
    assert after["abstract"] == derived["abstract"]
    (row,) = parquet_records(out, "enwiki_namespace_0")
    assert row["article_body"]["html"] == new_html
    batch = [json.loads(line) for tar in sorted((out / "batches").rglob("*.tar.gz")) for line in read_snapshot(tar)[2]]
    assert [b["article_body"]["html"] == new_html for b in batch] == [True]
    counts = json.loads((out / "manifest.json").read_text())["counts"]["enwiki"]
    assert (counts["html/read"], counts["html/used"], counts["html/unmatched"]) == (2, 1, 1)
    assert "html/fields_dropped" not in counts
    (letter,) = [json.loads(x) for x in (out / "deadletter" / "enwiki_deadletters.ndjson").read_text().splitlines()]
    assert "no diff brings that revision" in letter["reason"] and letter["raw"] == WILLIAM_CLARK.read_text()

    # the same diff without its HTML: the page's HTML fields are dropped, and that is counted
    out2 = tmp_path / "out2"
    code, stdout, stderr = update(base, [diff], out2)
    assert code == 0, stderr
    (plain,) = read_snapshot(out2 / "enwiki_namespace_0.tar.gz")[1]
    assert "html" not in plain["article_body"]
    assert json.loads((out2 / "manifest.json").read_text())["counts"]["enwiki"]["html/fields_dropped"] == 1
    assert "lost their Parsoid HTML fields" in stdout + stderr


def test_xml_alone_gives_counted_pages_and_an_empty_verified_structured_snapshot(tmp_path, build) -> None:
    """The enwiki sample (XML, no HTML): no Structured record is guessed from wikitext; every
    article is counted `without_html`, the (empty) structured snapshot of namespace 0 is still
    written, verified and listed, and no other namespace gets one (WME's are for articles)."""
    from conftest import ENWIKI

    out = tmp_path / "out"
    code, _o, stderr = build([ENWIKI], out, "--formats", "ndjson,structured")
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]["enwiki"]
    assert counts["structured/ns0/without_html"] == counts["records/ns0/written"] > 0
    assert "structured/ns0/written" not in counts
    lines, rows, meta = structured_outputs(out, "enwiki_namespace_0")
    assert lines == rows == [] and meta["identifier"] == "enwiki_namespace_0"
    structured = sorted(o["path"] for o in manifest["outputs"] if o["kind"].startswith("structured"))
    assert structured and all("enwiki_namespace_0" in p for p in structured)


def test_structured_outputs_are_the_same_bytes_whatever_the_workers(tmp_path, build) -> None:
    """Deterministic bytes: 1 worker and 2 worker processes, small members (several shards)."""
    import hashlib

    src = ndjson(tmp_path / "records.ndjson", [wme_record(t) for t in ("Coset", "Kyoto", "London", "Zillow")])
    found = []
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}"
        flags = ("--date", "20240101", "--formats", "structured", "--workers", workers, "--member-size-mb", "0.5")
        code, _o, stderr = build([src], out, *flags)
        assert code == 0, stderr
        root = out / "structured-snapshots"
        found.append({str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*.*")})
    assert found[0] == found[1]
    assert len([p for p in found[0] if p.endswith(".parquet")]) > 1


def test_mirror_run_publishes_the_structured_tarballs(tmp_path, build) -> None:
    """The mirror layout lists the structured tarball beside the records' (wikisnap's own name,
    its own STATS file), checksummed like every file of the run — never left out silently."""
    import hashlib

    from test_outputs import run_cli

    from conftest import ENWIKI

    out = tmp_path / "out"  # XML alone: a WIKISNAP-WIKITEXT tarball and an (empty) structured one
    code, _o, stderr = build([ENWIKI], out, "--date", "20240101", "--formats", "ndjson,structured")
    assert code == 0, stderr
    code, _o, err = run_cli(["publish", out, "--to", tmp_path / "mirror"])
    assert code == 0, err
    run = tmp_path / "mirror" / "runs" / "20240101"
    tar = run / "enwiki-NS0-20240101-WIKISNAP-STRUCTURED.json.tar.gz"
    assert tar.read_bytes() == (out / "structured-snapshots" / "enwiki_namespace_0.tar.gz").read_bytes()
    stats = json.loads((run / "enwiki-NS0-20240101-WIKISNAP-STRUCTURED-STATS.json").read_text())
    assert stats["md5sum"] == hashlib.md5(tar.read_bytes()).hexdigest()
    assert (run / "enwiki-NS0-20240101-WIKISNAP-STATS.json").is_file()  # the records' own, not replaced
    assert f"{stats['md5sum']}  {tar.name}" in (run / "md5sums.txt").read_text()
    # the JSON Schemas of both tarballs' lines, the snapshot's own files
    shipped = sorted(p.relative_to(run).as_posix() for p in run.rglob("*.schema.json"))
    assert shipped == ["schemas/article.schema.json", "schemas/structured.schema.json"]
    for rel in shipped:
        assert (run / rel).read_bytes() == (out / rel).read_bytes()
        assert f"{hashlib.md5((out / rel).read_bytes()).hexdigest()}  {rel}" in (run / "md5sums.txt").read_text()


def test_real_enterprise_records_kept_as_is_get_their_html_abstract(tmp_path, build) -> None:
    """The real WME/Enterprise records of tests/data/html, kept byte for byte (`--wme-records
    as-is`): the records' snapshot is unchanged, and each Structured record still has the abstract
    of its HTML (WME's GetAbstract), in WME's key order, with the record's own metadata."""
    from test_html import ENTERPRISE_2, WME_3, records

    from wikisnap.schemas.structured import STRUCTURED_KEYS
    from wikisnap.transforms.parse.html import derive

    out = tmp_path / "out"
    code, _o, stderr = build([ENTERPRISE_2, WME_3], out, "--formats", "structured", "--wme-records", "as-is")
    assert code == 0, stderr
    got = {}
    for tar in (out / "structured-snapshots").glob("*.tar.gz"):
        got.update({r["identifier"]: r for r in read_snapshot(tar)[1]})
    originals = {r["identifier"]: r for r in records()}
    assert sorted(got) == sorted(originals)
    for page_id, record in originals.items():
        structured = got[page_id]
        assert list(structured) == [k for k in STRUCTURED_KEYS if k in structured]
        assert structured["abstract"] == (record.get("abstract") or derive(record["article_body"]["html"])["abstract"])
        for key in ("name", "url", "version", "is_part_of", "in_language", "license"):
            assert structured.get(key) == record.get(key), key
