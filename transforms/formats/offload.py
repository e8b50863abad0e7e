"""Helper threads for work that releases the GIL: compression, Parquet encoding, file writes.

`Offload` runs such calls beside the writer's own thread, in submission order, so the bytes are
those of the same calls made in line. `run_ahead` runs a whole generator (the dump reader) on a
thread of its own, its items handed over in order.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

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


# -- a generator run ahead on a thread of its own -------------------------------------------

_ITEM, _ERROR, _END = range(3)


def run_ahead(
    items: Iterator[T], name: str, depth: int = 8, weight: Callable[[T], int] | None = None, budget: int = 0
) -> Iterator[T]:
    """The items of the generator `items`, produced on a thread of its own up to `depth` ahead.

    For a producer that spends its time in calls that release the GIL: the dump reader's bz2
    decoding and libxml2's parsing (`XMLPullParser.feed`) then run beside the caller's Python work
    (the wikitext analysis) instead of before it. The producer's Python code still takes turns
    with the caller's. Items come in the generator's order; an exception it raises is raised
    here, at its place in the sequence. `items` runs, and is closed (its `finally` blocks), on the
    helper thread only: objects it keeps between items (an lxml tree) never cross threads. A
    caller that stops early (an error, `close`) stops the producer at its next item and waits
    for it. With `weight`, the items waiting also weigh at most `budget` in all (one heavier item
    waits alone): memory stays bounded by size, not only by count.
    """
    handed: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    room = threading.Condition()
    waiting = [0]  # weight handed over and not yet taken

    def produce() -> None:
        try:
            for item in items:
                w = weight(item) if weight is not None else 0
                if w:
                    with room:
                        while waiting[0] and waiting[0] + w > budget and not stop.is_set():
                            room.wait()
                        waiting[0] += w
                handed.put((_ITEM, item, w))
                if stop.is_set():
                    return
            handed.put((_END, None, 0))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            handed.put((_ERROR, exc, 0))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=f"wikisnap-{name}", daemon=True)
    thread.start()
    try:
        while True:
            kind, value, w = handed.get()
            if w:
                with room:
                    waiting[0] -= w
                    room.notify()
            if kind == _ITEM:
                yield value
            elif kind == _ERROR:
                raise value
            else:
                return
    finally:
        stop.set()
        with room:
            room.notify()
        while thread.is_alive():  # a producer blocked on a full queue takes its next turn
            try:
                while True:
                    handed.get_nowait()
            except queue.Empty:
                pass
            thread.join(0.01)
