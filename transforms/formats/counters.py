"""The names of the per-namespace counters a run reports (manifest `counts`, printed summaries).

One home for them: `{what}/ns{ns}/{event}`, read left to right as people say it —
`records/ns0/parsed`, `records/ns14/written`, `records/ns0/copied`, `pages/ns4/skipped`
(pages of a namespace not asked for), `html/ns0/skipped`, `members/ns0/rewritten`,
`structured/ns0/written`. Counters that are not per namespace keep their plain names
(`pages_read`, `dead_lettered`, `enrich/…`, `skipped/…`).

Manifests written before these names (`parsed/0`, `written/14`, `skipped_namespace/4`,
`members_copied/0`, `structured/0/written`, …) are input to show, publish, sync and the cards:
`counter_parts` and `modern_counts` read both spellings.
"""

from __future__ import annotations

import re

_NEW = re.compile(r"^([a-z_]+)/ns(-?\d+)/([a-z_]+)$")
# the earlier spellings: `{event}/{ns}` of records, and the few that said something else
_OLD_FLAT = {
    "parsed": ("records", "parsed"),
    "written": ("records", "written"),
    "copied": ("records", "copied"),
    "skipped_namespace": ("pages", "skipped"),
    "members_copied": ("members", "copied"),
    "members_rewritten": ("members", "rewritten"),
}
_OLD = re.compile(r"^(html/skipped_namespace|structured/(?=-?\d+/)|[a-z_]+)/?(-?\d+)(?:/([a-z_]+))?$")


def counter(what: str, ns: int, event: str) -> str:
    """`counter("records", 0, "written")` → `records/ns0/written`."""
    return f"{what}/ns{ns}/{event}"


def counter_parts(name: str) -> tuple[str, int, str] | None:
    """(what, ns, event) of a per-namespace counter in either spelling; None for any other name."""
    m = _NEW.match(name)
    if m:
        return m.group(1), int(m.group(2)), m.group(3)
    m = _OLD.match(name)
    if not m:
        return None
    head, ns, tail = m.group(1), int(m.group(2)), m.group(3)
    if head == "html/skipped_namespace" and tail is None:
        return "html", ns, "skipped"
    if head == "structured/" and tail is not None:
        return "structured", ns, tail
    if head in _OLD_FLAT and tail is None:
        what, event = _OLD_FLAT[head]
        return what, ns, event
    return None


def modern_counts(counts: dict[str, int]) -> dict[str, int]:
    """One wiki's counts with every per-namespace counter in today's spelling (an earlier run's
    manifest read as this run's); other names unchanged."""
    out: dict[str, int] = {}
    for name, n in counts.items():
        parts = counter_parts(name)
        key = counter(*parts) if parts else name
        out[key] = out.get(key, 0) + n
    return out


def per_namespace(counts: dict[str, int], what: str, event: str) -> dict[int, int]:
    """{ns: n} of one counter over namespaces, e.g. `per_namespace(c, "records", "written")`;
    either spelling is read."""
    out: dict[int, int] = {}
    for name, n in counts.items():
        parts = counter_parts(name)
        if parts and parts[0] == what and parts[2] == event:
            out[parts[1]] = out.get(parts[1], 0) + n
    return dict(sorted(out.items()))
