"""The run report of `wikisnap sync`: a JSON file and a self-contained HTML page with plots.

    json_path, html_path = write_report(report, WORK/reports)

The HTML page needs nothing at view time (no network, no scripts): the plots are PNGs drawn with
matplotlib and embedded as base64. Plots: the invocation's steps on a time axis with their
throughput, records and bytes of each wiki's current snapshot per namespace, and the changes the
incremental dumps applied per day (from the ledger, so the page shows the recent history too).
matplotlib is the optional extra `report` (`pip install 'wikisnap[report]'`); without it the
page is written with its tables only and says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os

KIND_COLOURS = {
    "build": "#3366cc",
    "update": "#109618",
    "publish": "#ff9900",
    "adopt": "#990099",
    "prune": "#999999",
    "failed": "#dc3912",
}
CHANGE_COLOURS = {"created": "#109618", "updated": "#3366cc", "moved": "#ff9900", "deleted": "#dc3912"}
OUTCOME_COLOURS = {
    "done": "#109618",
    "nothing to do": "#3366cc",
    "upstream not ready": "#ff9900",
    "bad config or input": "#dc3912",
    "failure": "#dc3912",
}


def write_report(report: dict, folder: str) -> tuple[str, str]:
    """`sync-{UTC time}.json` and `.html` in `folder` (each written whole, by rename); their paths."""
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"sync-{report['id']}")
    n = 1
    while os.path.exists(base + ".json"):  # two invocations in the same millisecond
        n += 1
        base = os.path.join(folder, f"sync-{report['id']}-{n}")
    json_path, html_path = base + ".json", base + ".html"
    for path, data in (
        (json_path, json.dumps(report, indent=1, ensure_ascii=False) + "\n"),
        (html_path, render_html(report)),
    ):
        with open(path + ".partial", "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(path + ".partial", path)
    return json_path, html_path


# -- plots ------------------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.titlesize": 10,
            "figure.dpi": 110,
        }
    )
    return plt


def _png(fig, plt) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_steps(report: dict, plt) -> str | None:
    """Each step as a bar on the invocation's time axis, labelled with its throughput."""
    steps = [s for s in report["steps"] if s["kind"] != "prune"]
    if not steps:
        return None
    t0 = min(s["started_epoch"] for s in steps)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(steps) + 1.2))
    for i, s in enumerate(steps):
        start = s["started_epoch"] - t0
        width = max(s["seconds"], 0.05)
        ax.barh(i, width, left=start, color=KIND_COLOURS.get(s["kind"], "#666"), height=0.6)
        rate = []
        if s.get("bytes_per_second") and s["kind"] != "publish":
            rate.append(f"{human_bytes(s['bytes_per_second'])}/s in")
        elif s.get("bytes_per_second"):
            rate.append(f"{human_bytes(s['bytes_per_second'])}/s out")
        if s.get("records_per_second") and s["kind"] in ("build", "update"):
            rate.append(f"{s['records_per_second']:,.1f} records/s")
        label = f"{s['seconds']:.1f} s" + (" · " + ", ".join(rate) if rate else "")
        ax.text(start + width, i, "  " + label, va="center", fontsize=8)
    ax.set_yticks(range(len(steps)))
    ax.set_yticklabels([_step_label(s) for s in steps])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first step")
    ax.set_title("Steps of this run and their throughput")
    right = max(s["started_epoch"] - t0 + s["seconds"] for s in steps)
    ax.set_xlim(0, right * 1.45 + 0.5)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c) for k, c in KIND_COLOURS.items() if any(s["kind"] == k for s in steps)
    ]
    labels = [k for k in KIND_COLOURS if any(s["kind"] == k for s in steps)]
    ax.legend(handles, labels, loc="lower right", frameon=False, fontsize=8)
    return _png(fig, plt)


def plot_namespaces(report: dict, plt) -> str | None:
    """Records and MB of each wiki's current snapshot, per namespace."""
    bars = []
    for db, w in sorted(report["wikis"].items()):
        head = next((s for s in reversed(w.get("snapshots", [])) if s["id"] == w.get("current")), None)
        for ns, n in sorted((head or {}).get("namespaces", {}).items(), key=lambda kv: int(kv[0])):
            bars.append((f"{db}\nns {ns}", n["records"], n["bytes"] / 1e6))
    if not bars:
        return None
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8))
    names = [b[0] for b in bars]
    scale, unit = (1e6, "MB") if max(b[2] for b in bars) >= 1 else (1e3, "kB")
    for ax, values, title, colour, fmt in (
        (left, [b[1] for b in bars], "Records in the current snapshot", "#3366cc", "{:,.0f}"),
        (right, [b[2] * 1e6 / scale for b in bars], f"Tarball {unit} in the current snapshot", "#109618", "{:,.1f}"),
    ):
        ax.bar(names, values, color=colour, width=0.55)
        for x, v in enumerate(values):
            ax.text(x, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
        ax.set_title(title)
        ax.set_xlim(-0.75, max(len(bars), 3) - 0.25)
        ax.margins(y=0.2)
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig, plt)


def plot_changes(report: dict, plt) -> str | None:
    """Created/updated/moved/deleted pages per incremental day, from the ledgers (stacked bars)."""
    days = []
    for db, w in sorted(report["wikis"].items()):
        for s in w.get("snapshots", []):
            if s["kind"] == "incr":
                days.append((f"{db}\n{s['date'][:4]}-{s['date'][4:6]}-{s['date'][6:]}", s.get("counts", {})))
    if not days:
        return None
    days = days[-30:]
    fig, ax = plt.subplots(figsize=(8, 2.8))
    bottom = [0] * len(days)
    for kind, colour in CHANGE_COLOURS.items():
        values = [c.get(kind, 0) for _, c in days]
        ax.bar([d for d, _ in days], values, bottom=bottom, color=colour, label=kind, width=0.6)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in enumerate(bottom):
        ax.text(x, total, f"{total:,}", ha="center", va="bottom", fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.set_title("Changes applied per incremental day", pad=14)
    ax.set_ylabel("pages")
    ax.set_xlim(-0.75, max(len(days), 6) - 0.25)
    ax.margins(y=0.25)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig, plt)


def _rate(value: float | None) -> str:
    return "" if not value else f"{human_bytes(value)}/s"


def _step_label(step: dict) -> str:
    """`enwiki update 20080201-incr-20080207`, `enwiki publish 20080201 → mirror`."""
    what, _, where = step["target"].partition(" → ")
    return f"{step['wiki']} {step['kind']} {what}" + (f" → {where.split(':', 1)[0]}" if where else "")


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


# -- page -------------------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #666; font-size: 13px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600;
         font-size: 13px; vertical-align: middle; margin-left: 8px; }
.card { background: #fff; border: 1px solid #e3e5e8; border-radius: 8px; padding: 12px 16px; margin: 10px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #eceef1; vertical-align: top; }
th { color: #555; font-weight: 600; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 6px auto; }
code { font-size: 12px; background: #f0f1f3; padding: 1px 4px; border-radius: 3px; }
"""


def render_html(report: dict) -> str:
    plt = _pyplot()
    plots = []
    if plt is not None:
        for title, fn in (
            ("Throughput over the run", plot_steps),
            ("Records and bytes per wiki and namespace", plot_namespaces),
            ("Changes applied per day", plot_changes),
        ):
            png = fn(report, plt)
            if png:
                plots.append(
                    f'<h2>{title}</h2><div class="card"><img alt="{html.escape(title)}" src="data:image/png;base64,{png}"></div>'
                )
    else:
        plots.append('<p class="meta">Plots need matplotlib: <code>pip install "wikisnap[report]"</code>.</p>')
    e = html.escape
    outcome = report["outcome"]
    wiki_rows = "".join(
        f"<tr><td><b>{e(db)}</b></td><td>{e(w['outcome'])}</td><td>{e(str(w.get('current') or '—'))}</td>"
        f"<td class=n>{w['seconds']:.1f}</td><td>{e(w['message'])}</td></tr>"
        for db, w in sorted(report["wikis"].items())
    )
    step_rows = "".join(
        f"<tr><td>{e(s['started'][11:19])}</td><td>{e(s['wiki'])}</td><td>{e(s['kind'])}</td><td>{e(s['target'])}</td>"
        f"<td class=n>{s['seconds']:.1f}</td><td class=n>{human_bytes(s['input_bytes'])}</td>"
        f"<td class=n>{s['records']:,}</td><td class=n>{human_bytes(s['output_bytes'])}</td>"
        f"<td class=n>{_rate(s.get('bytes_per_second'))}</td>"
        f"<td>{e(s['detail'])}</td></tr>"
        for s in report["steps"]
    )
    steps_table = (
        "<table><tr><th>UTC</th><th>wiki</th><th>step</th><th>what</th><th>s</th><th>in</th><th>records</th>"
        f"<th>out</th><th>throughput</th><th>detail</th></tr>{step_rows}</table>"
        if report["steps"]
        else '<p class="meta">No step was due: nothing new upstream.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wikisnap sync {e(report["started"])}: {e(outcome)}</title><style>{CSS}</style></head>
<body><main>
<h1>wikisnap sync<span class="badge" style="background:{OUTCOME_COLOURS.get(outcome, "#666")}">{e(outcome)}</span></h1>
<div class="meta">started {e(report["started"])} · {report["seconds"]:.1f} s · exit code {report["exit_code"]} ·
mirror <code>{e(report["mirror"])}</code> · config <code>{e(report["config"])}</code></div>
<h2>Wikis</h2><div class="card"><table><tr><th>wiki</th><th>outcome</th><th>current snapshot</th><th>s</th>
<th>note</th></tr>{wiki_rows}</table></div>
{"".join(plots)}
<h2>Steps</h2><div class="card">{steps_table}</div>
<p class="meta">The JSON beside this page holds the same numbers; each wiki's ledger is <code>WORK/{{db}}/ledger.json</code>.</p>
</main></body></html>
"""
