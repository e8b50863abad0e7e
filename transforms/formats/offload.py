"""Helper threads for work that releases the GIL: compression, Parquet encoding, file writes.

`Offload` runs such calls beside the writer's own thread, in submission order, so the bytes are
those of the same calls made in line.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

# -- a second thread for the work that releases the GIL -----------------------------------


_HELPERS = threading.local()


def helper_thread(name: str) -> ThreadPoolExecutor:
    """The calling thread's own helper thread for `name` work, made once and kept.

    Kept because Arrow's allocator (mimalloc) gives each thread its own heap: a helper thread per
    Parquet file left a heap behind with every file (+30 MB over the 10x corpus's writes). Per
    calling thread, because an engine's bundle threads (a Dataflow worker runs a dozen) must not
    queue behind one another's compression.
    """
    helpers = getattr(_HELPERS, "threads", None)
    if helpers is None:
        helpers = _HELPERS.threads = {}
    pid, pool = helpers.get(name, (None, None))
    if pid != os.getpid():  # none yet, or inherited through a fork (the thread itself was not)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wikisnap-{name}")
        helpers[name] = (os.getpid(), pool)
    return pool


class Offload:
    """Runs calls that release the GIL (ISA-L and zlib compression, Arrow's Parquet encoder, file
    writes) on a helper thread, in the order they were submitted.

    A writer's own thread spends its time in Python (merging runs, WME JSON, Arrow rows), and the
    other core sat idle through the write phase while compression and Parquet encoding ran after
    each piece of it; on the helper they run beside it. One helper thread and submission order
    keep the bytes those of the same calls made in line. At most `depth` calls wait (memory stays
    that many chunks); a call's error re-raises in the caller at the next `submit`, `wait` or
    `close`. Offloads of one `name` made on one thread share its helper (`helper_thread`).
    """

    def __init__(self, name: str, depth: int = 2):
        self._pool = helper_thread(name)
        self._pending: deque[Future] = deque()
        self._depth = depth

    def submit(self, fn: Callable[..., object], *args) -> None:
        """Queue `fn(*args)`; blocks while `depth` calls already wait."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Block until every queued call has run; re-raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """`wait`; after a failed call, the calls queued behind it are dropped."""
        try:
            self.wait()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()
