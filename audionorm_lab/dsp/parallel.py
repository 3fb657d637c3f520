"""Parallel scheduling: work on a stream of items on several threads, in order, with few items in flight.

numpy's FFTs, its large element-wise operations and the IIR sections' loop
(:mod:`audionorm_lab.dsp.sections`) release the GIL, so threads keep several cores busy without
copying chunks between processes. The
pipeline gates one chunk ahead of the one it filters and writes, and the noise gate
spreads that chunk's pieces over the workers the scan and the chain leave free: memory is two chunks plus a few pieces
per worker, whatever the number of workers. :class:`Aside` runs a consumer (a meter
of what is written) on a thread of its own.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from ..errors import OptionError

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """Cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where that is missing)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int | None) -> int:
    """``workers`` as a positive int; None means :func:`available_cores`."""
    if workers is None:
        return available_cores()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise OptionError(f"workers must be a whole number of at least 1, not {workers!r}")
    return workers


def ordered_map(function: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
                ) -> Iterator[R]:
    """Yield ``function(item)`` for each of ``items``, in order, computed on ``workers`` threads.

    ``items`` is consumed lazily: while a result is being used by the consumer, at most
    ``ahead`` (default ``workers``) further items are being computed, and an item is let go
    once its result is yielded (return from ``function`` what the consumer still needs).
    ``ahead == 0``, or ``workers == 1`` with no ``ahead``, runs everything in the calling thread. An exception in
    ``function`` is raised here, unchanged, after the threads have stopped; so is closing
    the generator early (``break``, an error in the consumer): no thread is left running.
    """
    if ahead == 0 or (workers == 1 and ahead is None):
        for item in items:
            yield function(item)
        return
    ahead = workers if ahead is None else ahead
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audionorm")
    try:
        iterator = iter(items)
        exhausted = False

        def refill(limit: int) -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < limit:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    return
                pending.append(pool.submit(function, item))

        refill(ahead)
        while pending:
            result = pending.popleft().result()
            refill(ahead)  # the next items start while this result is used
            yield result
            del result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


class Aside:
    """``consumer(item)`` for each item :meth:`put`, in order, on a thread of its own.

    For work the caller need not wait for, such as metering what it writes: while the
    caller goes on, the consumer runs on another core. At most ``depth`` items wait
    (items are shared, not copied: don't change one after putting it). With
    ``threaded=False`` the consumer runs in :meth:`put` itself (the sequential path).
    Leaving the ``with`` block waits for the consumer to finish; an exception in the
    consumer is raised, unchanged, by the next :meth:`put` or on leaving. If the block
    ends with an error, the items still waiting are dropped and the thread stops.
    """

    def __init__(self, consumer: Callable[[T], object], depth: int = 4, threaded: bool = True):
        self._consumer = consumer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._drop = False
        self._thread = threading.Thread(target=self._run, name="audionorm-aside", daemon=True) if threaded else None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None and not self._drop:
                try:
                    self._consumer(item)
                except BaseException as exc:  # noqa: BLE001  (raised again in the caller's thread)
                    self._error = exc
            del item

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._consumer(item)
        else:
            self._queue.put(item)

    def __enter__(self) -> "Aside":
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._thread is None:
            return
        self._drop = exc_type is not None
        self._queue.put(_END)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


_END = object()
