"""Dead letters: what could not become a record, written beside the snapshots.

DeadLetterGate     DeadLetter → at most one blocking error for --fail-on-dead-letters.
WriteDeadLetters   DeadLetter → `deadletter/{db}_deadletters.ndjson` per wiki, sorted, raw input
                   kept → OutputFile (kind `deadletter`, records = its lines).
"""

from __future__ import annotations

import hashlib
import json

import apache_beam as beam

from wikisnap.transforms.formats import layout
from wikisnap.transforms.formats.fs import write_bytes_atomic
from wikisnap.transforms.write import OutputFile


class DeadLetterGate(beam.PTransform):
    """DeadLetter → at most one blocking error (a str) when there is any: with
    --fail-on-dead-letters, AssembleSnapshots (and update's batch writer) then publish nothing.
    Counted first, so the side input stays one element whatever the number of dead letters."""

    def expand(self, letters):
        return (
            letters
            | "CountDeadLetters" >> beam.combiners.Count.Globally()
            | "BlockIfAny" >> beam.FlatMap(lambda n: [f"{n:,} dead letter(s) and --fail-on-dead-letters"] if n else [])
        )


def deadletter_line(letter) -> bytes:
    obj = {
        "dbname": letter.dbname,
        "source": letter.source,
        "page_id": letter.page_id,
        "title": letter.title,
        "reason": letter.reason,
        "raw": letter.raw,
    }
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class _WriteDeadLettersFn(beam.DoFn):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir

    def process(self, element):
        dbname, letters = element
        ordered = sorted(letters, key=lambda d: (d.source, d.page_id or -1, d.title or "", d.reason))
        data = b"".join(deadletter_line(d) for d in ordered)
        path = layout.deadletter_path(self.out_dir, dbname)
        write_bytes_atomic(path, data)
        yield OutputFile("deadletter", dbname, None, path, len(data), hashlib.md5(data).hexdigest(), len(ordered))


class WriteDeadLetters(beam.PTransform):
    """DeadLetter → one sorted NDJSON file per wiki (raw input kept) → OutputFile."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.out_dir = out_dir

    def expand(self, letters):
        return (
            letters
            | "KeyByWiki" >> beam.Map(lambda d: (d.dbname, d))
            | "GroupByWiki" >> beam.GroupByKey()
            | "WriteDeadLetterFiles" >> beam.ParDo(_WriteDeadLettersFn(self.out_dir))
        )
