"""The write phase's progress: what one bucket writer has written so far, for the launcher's ETA.

In: the records written and members finished of one (db, ns, bucket), called per record by
`write.write_bucket`. Out: `progress/write/{bucket}.json` under the run's temp folder
(`layout.write_progress_path`), rewritten whole at most every `every` seconds and once at the
end, which the launcher sums over all buckets (pipelines/progress.py) — the same way the
readers' progress files feed the read phase's ETA. Nothing here touches an output's bytes.
"""

from __future__ import annotations

from wikisnap.transforms.formats.fs import ProgressFile


class WriteProgress(ProgressFile):
    """Leaves one bucket writer's numbers in its progress file; best effort, never fails a bucket."""

    def __call__(self, records: int, members: int, *, final: bool = False) -> None:
        """`records` written and `members` finished so far; `final` when the bucket is done."""
        if self.due(final):
            self.write({"records": records, "members": members, "final": final})
