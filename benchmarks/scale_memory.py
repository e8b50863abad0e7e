"""What holds per-page state in a build: tracemalloc and Beam's shuffle buffers at the memory peak.

    python benchmarks/scale_memory.py --pages 100000 --mix all --json /tmp/mem-100k-all.json
    python benchmarks/scale_memory.py --compare /tmp/mem-10k-all.json /tmp/mem-100k-all.json

Runs `wikisnap build --workers 1` in this process (the CLI's own `main`, on a corpus of
`benchmarks/scale.py`) with tracemalloc on, and a sampler thread that every `--every` seconds
records the traced memory, the RSS and the size of every buffer the local FnApiRunner holds
(`ListBuffer`: encoded elements between stages; `GroupingBuffer`: a GroupByKey's table of decoded
values, named by the GroupByKey's transform), and takes a tracemalloc snapshot whenever the traced
memory passes its previous snapshot's by `--step` (so the last one is at, or just before, the peak).
The snapshot's blocks are filed by their innermost wikisnap frame and innermost Beam frame.
`--compare A B` prints, per site and per buffer, the growth between two runs in bytes per page:
what grows with the input, and where.

tracemalloc sees Python's allocations only (not Arrow's, lxml's or zstd's own heaps), and slows the
run 2-3x; peak RSS here is not comparable with scale.py's, the per-site growth is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import tracemalloc
import weakref
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.scale import DATE, generate, inputs_of  # noqa: E402

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_BUFFERS: list[weakref.ref] = []


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def deep_size(obj, seen: set | None = None, depth: int = 0) -> int:
    """Bytes of `obj` and what it holds (tuples, lists, dicts, dataclasses), each object once."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 20:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen, depth + 1) + deep_size(v, seen, depth + 1) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep_size(x, seen, depth + 1) for x in obj)
    elif hasattr(obj, "__dict__"):
        size += deep_size(vars(obj), seen, depth + 1)
    elif hasattr(obj, "__slots__"):
        size += sum(deep_size(getattr(obj, s, None), seen, depth + 1) for s in obj.__slots__)
    return size


def patch_beam() -> None:
    """Register every FnApiRunner buffer (weakly) and name those made for a PCollection."""
    from apache_beam.runners.portability.fn_api_runner import execution as ex

    for cls in (ex.ListBuffer, ex.GroupingBuffer):
        init = cls.__init__

        def __init__(self, *args, _init=init, **kwargs):
            _init(self, *args, **kwargs)
            _BUFFERS.append(weakref.ref(self))

        cls.__init__ = __init__
    copy = ex.ListBuffer.copy

    def list_copy(self):
        new = copy(self)
        new._scale_name = getattr(self, "_scale_name", "?") + " (copy)"
        return new

    ex.ListBuffer.copy = list_copy
    get_buffer = ex.BundleContextManager.get_buffer

    def named(self, buffer_id, transform_id):
        buffer = get_buffer(self, buffer_id, transform_id)
        if not hasattr(buffer, "_scale_name"):
            name = buffer_id.decode("utf-8", "replace") if isinstance(buffer_id, bytes) else str(buffer_id)
            buffer._scale_name = name
        return buffer

    ex.BundleContextManager.get_buffer = named


_BUCKETS: list[dict] = []


def patch_writer() -> None:
    """Measure what each bucket writer is handed by GroupByBucket: redirect lists and enrichments."""
    from wikisnap.transforms import write

    original = write.write_bucket

    def write_bucket(key, run_paths, redirect_lists, opts, enrichments=(), *args, **kwargs):
        import random

        redirect_lists, enrichments = list(redirect_lists), list(enrichments)
        entry = {"bucket": list(key), "runs": len(run_paths), "rss_before_mb": round(_rss() / 1e6, 1)}
        for name, items in (("redirect_lists", redirect_lists), ("enrichments", enrichments)):
            picked = random.Random(0).sample(items, min(500, len(items)))
            each = sum(deep_size(x) for x in picked) / len(picked) if picked else 0
            entry[name] = {"elements": len(items), "bytes": int(each * len(items) + 8 * len(items))}
        result = original(key, run_paths, redirect_lists, opts, enrichments, *args, **kwargs)
        entry["rss_after_mb"] = round(_rss() / 1e6, 1)
        _BUCKETS.append(entry)
        return result

    write.write_bucket = write_bucket


def buffer_stats(sample: int = 300) -> dict[str, dict]:
    """Every live runner buffer: elements, encoded bytes, and (grouping) decoded bytes, estimated."""
    import random

    out: dict[str, dict] = {}
    for ref in list(_BUFFERS):
        buf = ref()
        if buf is None:
            continue
        name = getattr(buf, "_scale_name", f"unnamed {type(buf).__name__}")
        if type(buf).__name__ == "ListBuffer":
            inputs = list(buf._inputs)
            if not inputs:
                continue
            encoded = sum(len(x) for x in inputs)
            entry = {"kind": "list", "chunks": len(inputs), "encoded": encoded, "bytes": encoded + 33 * len(inputs)}
        elif type(buf).__name__ == "GroupingBuffer":
            table = dict(buf._table)
            grouped = buf._grouped_output or []
            grouped_bytes = sum(len(b) for chunk in grouped for b in chunk)
            if not table and not grouped_bytes:
                continue
            keys = list(table)
            values = sum(len(v) for v in table.values())
            picked = random.Random(0).sample(keys, min(sample, len(keys)))
            # per key: the key bytes, its list, its values (decoded objects), the dict slot
            per_key = [deep_size(k) + deep_size(table[k]) + 100 for k in picked]
            decoded = int(sum(per_key) / len(per_key) * len(keys)) if per_key else 0
            entry = {
                "kind": "group",
                "keys": len(keys),
                "values": values,
                "bytes": decoded + grouped_bytes,
                "grouped_output": grouped_bytes,
            }
        else:
            continue
        key = name
        n = 2
        while key in out:
            key, n = f"{name} #{n}", n + 1
        out[key] = entry
    return out


def site_of(trace: tracemalloc.Trace) -> tuple[str, str]:
    """(innermost wikisnap frame, innermost Beam frame) of one traced block."""
    ours = beam = "-"
    for frame in trace.traceback:  # innermost first (tracemalloc's default order)
        f = frame.filename
        if ours == "-" and "/wt-scale/" in f and "/.venv/" not in f and "benchmarks/" not in f:
            ours = f"{f.split('/wt-scale/')[-1]}:{frame.lineno}"
        if beam == "-" and "apache_beam/" in f:
            beam = f"{f.split('apache_beam/')[-1]}:{frame.lineno}"
        if ours != "-" and beam != "-":
            break
    return ours, beam


def summarise(snapshot: tracemalloc.Snapshot, top: int) -> list[dict]:
    sites: dict[tuple[str, str], list[int]] = {}
    for trace in snapshot.traces:
        entry = sites.setdefault(site_of(trace), [0, 0])
        entry[0] += trace.size
        entry[1] += 1
    ranked = sorted(sites.items(), key=lambda kv: -kv[1][0])
    return [{"wikisnap": o, "beam": b, "bytes": n, "blocks": c} for (o, b), (n, c) in ranked[:top]]


class Sampler(threading.Thread):
    def __init__(self, every: float, step: float, top: int):
        super().__init__(daemon=True, name="scale-memory")
        self.every, self.step, self.top = every, step, top
        self.stop = threading.Event()
        self.timeline: list[dict] = []
        self.best: dict | None = None
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        current, _peak = tracemalloc.get_traced_memory()
        buffers = buffer_stats()
        point = {
            "t": round(time.monotonic() - self.started, 1),
            "traced_mb": round(current / 1e6, 1),
            "rss_mb": round(_rss() / 1e6, 1),
            "buffers_mb": round(sum(b["bytes"] for b in buffers.values()) / 1e6, 1),
        }
        self.timeline.append(point)
        if not tracemalloc.is_tracing():  # buffers only: keep those of the largest RSS
            if self.best is None or point["rss_mb"] > self.best["point"]["rss_mb"]:
                self.best = {"traced": 0, "point": point, "buffers": buffers, "sites": []}
            return
        if self.best is None or current > self.best["traced"] * (1 + self.step):
            # summarised once, at the end: filing millions of blocks takes seconds each time
            self.best = None
            self.best = {"traced": current, "point": point, "snapshot": tracemalloc.take_snapshot(), "buffers": buffers}


def profile(pages: int, mix: str, args) -> dict:
    from wikisnap.pipelines import cli

    folder = args.corpus_dir / f"scale-{pages}"
    generate(pages, folder)
    work = args.work / f"mem-{pages}-{mix}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    patch_beam()
    patch_writer()
    import apache_beam  # noqa: F401  (imports before the baseline)

    argv = ["-q", "build", *inputs_of(folder, mix), "--out", str(work / "out"), "--workers", "1"]
    argv += ["--temp-location", str(work / "tmp"), "--date", DATE, *args.extra]
    if args.frames:
        tracemalloc.start(args.frames)
    baseline = tracemalloc.get_traced_memory()[0]
    sampler = Sampler(args.every, args.step, args.top)
    sampler.start()
    started = time.perf_counter()
    code = cli.main(argv)
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()  # before filing the snapshot's blocks: tracing that too made it 10x slower
    best = sampler.best
    if "snapshot" in best:
        best["sites"] = summarise(best.pop("snapshot"), args.top)
    if code:
        raise SystemExit(f"build failed with exit code {code}")
    shutil.rmtree(work, ignore_errors=True)
    return {
        "pages": pages,
        "mix": mix,
        "wall_s": round(wall, 1),
        "baseline_mb": round(baseline / 1e6, 1),
        "traced_peak_mb": round(peak / 1e6, 1),
        "snapshot": sampler.best,
        "timeline": sampler.timeline,
        "buckets": _BUCKETS,
    }


def report(result: dict) -> str:
    best = result["snapshot"]
    pages = result["pages"]
    lines = [
        f"## {pages:,} pages, mix {result['mix']}: traced peak {result['traced_peak_mb']} MB "
        f"(baseline {result['baseline_mb']} MB), wall {result['wall_s']} s under tracemalloc",
        "",
        f"Snapshot at t={best['point']['t']} s: traced {best['point']['traced_mb']} MB, RSS {best['point']['rss_mb']} MB, "
        f"runner buffers {best['point']['buffers_mb']} MB.",
        "",
        "| wikisnap frame | Beam frame | MB | blocks | bytes/page |",
        "|---|---|---:|---:|---:|",
    ]
    for s in best["sites"]:
        lines.append(
            f"| {s['wikisnap']} | {s['beam']} | {s['bytes'] / 1e6:.1f} | {s['blocks']:,} | {s['bytes'] / pages:.0f} |"
        )
    lines += [
        "",
        "| runner buffer (PCollection / GroupByKey) | kind | elements | MB | bytes/page |",
        "|---|---|---:|---:|---:|",
    ]
    for name, b in sorted(best["buffers"].items(), key=lambda kv: -kv[1]["bytes"]):
        n = b.get("values", b.get("chunks"))
        lines.append(f"| {name} | {b['kind']} | {n:,} | {b['bytes'] / 1e6:.1f} | {b['bytes'] / pages:.0f} |")
    lines += ["", "| bucket | runs | redirect lists | MB | enrichments | MB | RSS before → after write MB |"]
    lines += ["|---|---:|---:|---:|---:|---:|---|"]
    for b in result.get("buckets", []):
        r, e = b["redirect_lists"], b["enrichments"]
        lines.append(
            f"| {b['bucket']} | {b['runs']} | {r['elements']:,} | {r['bytes'] / 1e6:.1f} | {e['elements']:,} | "
            f"{e['bytes'] / 1e6:.1f} | {b['rss_before_mb']} → {b['rss_after_mb']} |"
        )
    peak = max(result["timeline"], key=lambda p: p["rss_mb"]) if result["timeline"] else {}
    lines += ["", f"Largest sampled RSS: {peak}", "", "Timeline (t s, traced MB, RSS MB, runner buffers MB):"]
    lines.append(", ".join(f"{p['t']}/{p['traced_mb']}/{p['rss_mb']}/{p['buffers_mb']}" for p in result["timeline"]))
    return "\n".join(lines)


def compare(a: dict, b: dict) -> str:
    """Per site and per buffer: growth from run a to run b, in bytes per page."""
    dp = b["pages"] - a["pages"]
    lines = [
        f"## Growth {a['pages']:,} → {b['pages']:,} pages (mix {a['mix']} → {b['mix']}): traced peak "
        f"{a['traced_peak_mb']} → {b['traced_peak_mb']} MB = "
        f"{(b['traced_peak_mb'] - a['traced_peak_mb']) * 1e6 / dp:.0f} bytes/page",
        "",
        "| wikisnap frame | Beam frame | MB at a | MB at b | bytes/page |",
        "|---|---|---:|---:|---:|",
    ]
    sa = {(s["wikisnap"], s["beam"]): s["bytes"] for s in a["snapshot"]["sites"]}
    sb = {(s["wikisnap"], s["beam"]): s["bytes"] for s in b["snapshot"]["sites"]}
    for key in sorted(set(sa) | set(sb), key=lambda k: -(sb.get(k, 0) - sa.get(k, 0))):
        growth = (sb.get(key, 0) - sa.get(key, 0)) / dp
        if abs(growth) >= 5:
            lines.append(
                f"| {key[0]} | {key[1]} | {sa.get(key, 0) / 1e6:.1f} | {sb.get(key, 0) / 1e6:.1f} | {growth:.0f} |"
            )
    lines += ["", "| runner buffer | MB at a | MB at b | bytes/page |", "|---|---:|---:|---:|"]
    ba, bb = a["snapshot"]["buffers"], b["snapshot"]["buffers"]
    for name in sorted(set(ba) | set(bb), key=lambda n: -(bb.get(n, {}).get("bytes", 0))):
        x, y = ba.get(name, {}).get("bytes", 0), bb.get(name, {}).get("bytes", 0)
        lines.append(f"| {name} | {x / 1e6:.1f} | {y / 1e6:.1f} | {(y - x) / dp:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10000)
    parser.add_argument("--mix", default="all")
    parser.add_argument(
        "--frames",
        type=int,
        default=25,
        help="tracemalloc frames per block (0: no tracemalloc, buffers and buckets only)",
    )
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--step", type=float, default=0.10, help="new snapshot when traced memory grew by this share")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--corpus-dir", type=Path, default=HERE / "corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wikisnap-scale"))
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    args, extra = parser.parse_known_args(argv)
    args.extra = extra
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        print(compare(a, b))
        return 0
    result = profile(args.pages, args.mix, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
