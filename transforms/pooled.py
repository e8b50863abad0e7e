"""A DoFn whose elements are worked on a small thread pool, their outputs emitted in order.

For steps whose work releases the GIL (inflating, hashing, compressing, Arrow): one worker then
keeps both cores busy on a bundle of a few large elements (an update's touched members, a run's
output files), where one element after another left a core idle.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
from apache_beam.utils.windowed_value import WindowedValue


class PooledDoFn(beam.DoFn):
    """Each element's `work(element)` runs on a pool of `threads` threads as the element comes,
    or, when `pooled(element)` is False, in `finish_bundle` while the pool works on the others;
    `outputs(element, result)` (on the bundle's own thread: counters, tagged outputs) come out in
    `finish_bundle`, with the element's timestamp and window, in the order the elements came.

    A failed bundle cancels the work not started and waits for the work running, so a retry never
    meets files half-written by an earlier attempt. Subclasses set `threads`, `thread_name`, and
    call `super().setup()` from their own `setup`.
    """

    threads = 2
    thread_name = "wikisnap-pool"

    def setup(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def start_bundle(self) -> None:
        self._pending: list[tuple[object, Future | None, object, object]] = []

    def pooled(self, element) -> bool:
        """Whether `element`'s work goes to the pool (else it runs in `finish_bundle`)."""
        return True

    def work(self, element):
        """`element`'s result (on a pool thread, or in `finish_bundle`)."""
        raise NotImplementedError

    def outputs(self, element, result):
        """What `element` and its result emit (main outputs and `TaggedOutput`s)."""
        raise NotImplementedError

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        future = None
        if self.pooled(element):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=self.thread_name)
            future = self._pool.submit(self.work, element)
        self._pending.append((element, future, timestamp, window))

    def finish_bundle(self):
        pending, self._pending = self._pending, []
        try:
            # the elements kept out of the pool are worked on now, while the pool works on the rest
            inline = {id(element): self.work(element) for element, future, _t, _w in pending if future is None}
            for element, future, timestamp, window in pending:
                result = inline[id(element)] if future is None else future.result()
                for out in self.outputs(element, result):
                    if isinstance(out, beam.pvalue.TaggedOutput):
                        yield beam.pvalue.TaggedOutput(out.tag, WindowedValue(out.value, timestamp, (window,)))
                    else:
                        yield WindowedValue(out, timestamp, (window,))
        finally:
            futures = [future for _element, future, _t, _w in pending if future is not None]
            for future in futures:
                future.cancel()  # a failed bundle leaves no work running behind it
            for future in futures:
                if not future.cancelled():
                    future.exception()  # (waited for: a retry must not meet its files half-written)

    def teardown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
