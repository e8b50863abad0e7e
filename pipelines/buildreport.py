"""A build's report: its counts reconciled with the outputs, the manifest's summary of its inputs,
and the lines the command prints when it is done.

In: the counters, unit reports and verified outputs `CollectReport` gathered. Out: problems that
fail the run (RunFailed, exit 2) or the summary text.
"""

from __future__ import annotations

from wikisnap.pipelines.errors import RunFailed
from wikisnap.pipelines.launch import (
    check_dead_letters,
    outputs_summary,
)
from wikisnap.pipelines.options import (
    BuildConfig,
)
from wikisnap.transforms.formats.counters import counter, per_namespace
from wikisnap.transforms.records import (
    reconcile_html,
)

# -- report and manifest -------------------------------------------------------------------


def reconcile(counts: dict[str, dict[str, int]]) -> list[str]:
    """Problems with the per-wiki counts; [] when every page read is accounted for once."""
    problems = []
    for db, c in sorted(counts.items()):
        written = sum(per_namespace(c, "records", "written").values())
        parsed = sum(per_namespace(c, "records", "parsed").values())
        skipped = sum(per_namespace(c, "pages", "skipped").values())
        accounted = (
            written
            + c.get("duplicates_superseded", 0)
            + c.get("conflicts", 0)
            + c.get("redirects_attached", 0)
            + c.get("redirects_dangling", 0)
            + c.get("redirects_without_target", 0)
            + skipped
            + c.get("dead_lettered", 0)
        )
        if accounted != c.get("pages_read", 0):
            problems.append(f"{db}: {c.get('pages_read', 0):,} pages read but {accounted:,} accounted for ({c})")
        if parsed != written + c.get("duplicates_superseded", 0) + c.get("conflicts", 0):
            problems.append(f"{db}: {parsed:,} articles parsed but {written:,} written + duplicates + conflicts")
        if c.get("redirect_pages", 0) != c.get("redirects_attached", 0) + c.get("redirects_dangling", 0):
            problems.append(f"{db}: redirect pages and attached + dangling redirects differ")
        html_problem = reconcile_html(c)
        if html_problem:
            problems.append(f"{db}: {html_problem}")
        # --formats structured: every record written is a Structured record, a page without HTML or a failure
        for ns, n in per_namespace(c, "records", "written").items():
            parts = [c.get(counter("structured", ns, end)) for end in ("written", "without_html", "failed")]
            if any(p is not None for p in parts) and sum(p or 0 for p in parts) != n:
                problems.append(f"{db}: {n:,} records written in namespace {ns} but {parts} structured")
    return problems


def _per_wiki(raw_counts: list[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for (db, name), n in raw_counts:
        counts.setdefault(db, {})[name] = n
    return {db: dict(sorted(c.items())) for db, c in sorted(counts.items())}


def check_build_report(config: BuildConfig, report: list, counts: dict, unit_reports: list, outputs: list) -> None:
    """RunFailed when the run must not be published: bad inputs, counts that don't add up, bad files."""
    sql_errors = sorted(item for kind, item in report if kind == "sql_error")
    if sql_errors:
        raise RunFailed(
            f"{len(sql_errors)} SQL dump(s) could not be read, so nothing was published:\n  - "
            + "\n  - ".join(sql_errors)
        )
    errors = [u for u in unit_reports if u.error]
    if errors and not config.allow_truncated:
        lines = "\n".join(f"  - {u.error}" for u in errors)
        raise RunFailed(
            f"{len(errors)} input(s) could not be read to the end, so nothing was published:\n{lines}\n"
            "Fix or re-download the file(s); --allow-truncated keeps their complete pages instead."
        )
    check_dead_letters(report, config.fail_on_dead_letters)
    problems = reconcile(counts)
    if problems:
        raise RunFailed(
            "the run's counts do not reconcile, so its output must not be trusted:\n  - " + "\n  - ".join(problems)
        )
    verify_problems = sorted(item for kind, item in report if kind == "verify_problem")
    verify_problems += output_count_problems(counts, outputs)
    if verify_problems:
        raise RunFailed(
            "written files do not hold what the run wrote, so nothing was published:\n  - "
            + "\n  - ".join(verify_problems)
        )


def output_count_problems(counts: dict[str, dict[str, int]], outputs: list) -> list[str]:
    """Records per (db, ns) in tarballs and Parquet shards against the run's `records/ns{ns}/written`."""
    found: dict[tuple[str, str, int], int] = {}
    for o in outputs:
        if o.kind in ("tarball", "parquet", "text", "structured-tarball", "structured-parquet"):
            key = (o.kind, o.dbname, o.ns)
            found[key] = found.get(key, 0) + o.records
    problems = []
    for (kind, db, ns), records in sorted(found.items()):
        # Structured Contents: only the pages with Parsoid HTML (structured/ns{ns}/written)
        written = counter("structured" if kind.startswith("structured") else "records", ns, "written")
        expected = counts.get(db, {}).get(written, 0)
        if records != expected:
            problems.append(f"{db} namespace {ns}: {records:,} records in the {kind} output, {expected:,} written")
    return problems


def summarize_inputs(reports: list) -> list[dict]:
    """One manifest entry per input file, whatever number of units read it.

    md5/sha1 are the whole file's: from the unit that read it whole, or from the verify unit of a
    range-split file (absent when a split file had no checksum to verify against).
    """
    by_path: dict[str, list] = {}
    for report in reports:
        by_path.setdefault(report.path, []).append(report)
    entries = []
    for path, group in sorted(by_path.items()):
        readers = [r for r in group if r.kind != "verify"]
        whole = next((r for r in group if r.kind in ("file", "verify")), None)
        entry = {
            "path": path,
            "dbname": group[0].dbname,
            "compression": next((r.compression for r in readers if r.compression), ""),
            "bytes": sum(r.bytes_read for r in readers),
            "pages": sum(r.pages for r in readers),
            "units": len(readers),
        }
        if whole is not None:
            entry |= {"md5": whole.md5, "sha1": whole.sha1, "verified": any(r.verified for r in group)}
        errors = [r.error for r in group if r.error]
        if errors:
            entry["error"] = errors[0] if len(errors) == 1 else errors
        entries.append(entry)
    return entries


def enrichment_summary(c: dict[str, int]) -> str:
    """One line of SQL enrichment coverage from a wiki's counts."""
    parts = []
    if "enrich/records_with_qid" in c or "enrich/records_without_qid" in c:
        with_qid = c.get("enrich/records_with_qid", 0)
        parts.append(f"QID on {with_qid:,} of {with_qid + c.get('enrich/records_without_qid', 0):,} records")
    if "enrich/records_with_categories" in c or "enrich/records_without_categories" in c:
        parts.append(f"{c.get('enrich/categories_from_sql_only', 0):,} categories only in SQL")
    if "enrich/records_with_protection" in c:
        parts.append(f"protection on {c['enrich/records_with_protection']:,} records")
    if "enrich/redirect/attached" in c:
        parts.append(f"{c['enrich/redirect/attached']:,} SQL redirects attached")
    for name, label in (("image", "image"), ("entities", "entity usage")):
        if f"enrich/{name}/records_with" in c or f"enrich/{name}/records_without" in c:
            parts.append(f"{label} on {c.get(f'enrich/{name}/records_with', 0):,} records")
    if "enrich/editor_groups/records_with_explicit" in c:
        parts.append(f"{c['enrich/editor_groups/records_with_explicit']:,} editors with groups")
    if "enrich/flagged/records_stable" in c:
        parts.append(f"{c['enrich/flagged/records_stable']:,} flagged stable")
    if "enrich/date_created" in c or "enrich/date_created_unknown" in c:
        dated = c.get("enrich/date_created", 0)
        with_parent = sum(c.get(f"enrich/date_previously_modified{s}", 0) for s in ("", "_unknown"))
        parts.append(
            f"date_created on {dated:,} of {dated + c.get('enrich/date_created_unknown', 0):,} records, "
            f"date_previously_modified on {c.get('enrich/date_previously_modified', 0):,} of {with_parent:,}"
        )
    if any(k.startswith("enrich/") and not k.startswith(("enrich/date_", "enrich/first_revision")) for k in c):
        unmatched = sum(v for k, v in c.items() if k.startswith("enrich/") and "unmatched" in k)
        parts.append(f"{unmatched:,} SQL rows matched no page of the run")
    return "enrichment: " + "; ".join(parts)


def dead_letters(manifest: dict, db: str) -> int:
    """The dead letters of wiki `db`: the lines of its dead-letter file, the same number that
    --fail-on-dead-letters counts (pages, WME lines and HTML that could not become records, and
    the losing copy of each same-revision conflict)."""
    return sum(o["records"] for o in manifest["outputs"] if o["kind"] == "deadletter" and o.get("dbname") == db)


def summary(manifest: dict) -> str:
    """The lines printed at the end of a run."""
    lines = []
    timing = manifest["timing"]
    pages = sum(i["pages"] for i in manifest["inputs"])
    lines.append(
        f"read {pages:,} pages from {len(manifest['inputs'])} input file(s); the run took {timing['seconds']:.1f} s "
        f"({timing['pages_per_second']:,} pages/s, {timing['input_mb_per_second']} MB/s of input)"
    )
    lines += [
        f"WARNING: --allow-truncated: only the complete part of {i['error']}"
        for i in manifest["inputs"]
        if "error" in i
    ]
    for db, c in manifest["counts"].items():
        written = ", ".join(f"ns {ns}: {n:,}" for ns, n in per_namespace(c, "records", "written").items())
        conflicts = c.get("conflicts", 0)
        lines.append(
            f"{db}: written {written or 'nothing'}; redirects attached {c.get('redirects_attached', 0):,}, "
            f"dangling {c.get('redirects_dangling', 0):,}; skipped by namespace "
            f"{sum(per_namespace(c, 'pages', 'skipped').values()):,}; "
            f"dead-lettered {dead_letters(manifest, db):,}"
            + (f" (of which {conflicts:,} same-revision conflict(s))" if conflicts else "")
        )
        if any(k.startswith("enrich/") for k in c):
            lines.append(f"{db}: {enrichment_summary(c)}")
    lines.append("outputs:")
    lines += outputs_summary(manifest["outputs"])
    for o in manifest["outputs"]:
        if o["kind"] in ("tarball", "deadletter"):
            lines.append(f"  {o['path']}  {o['bytes'] / 1e6:.3f} MB  {o['records']:,} records  md5 {o['md5']}")
    return "\n".join(lines)
