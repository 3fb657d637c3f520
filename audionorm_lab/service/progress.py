"""A job's progress as Celery's custom ``PROGRESS`` state: the pass under way and the fraction done.

The streaming core calls its progress callback for every block; :class:`TaskProgress` turns
those calls into at most one state update a second (each names the latest pass to start), so
Flower and ``AsyncResult(id).info`` show how far a 3-hour file has got without a write to the
result backend per block. A backend that does not answer (a broker restarting) costs the update,
never the job.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

#: Celery's custom state for a job under way; ``info``: ``{"pass", "frames_done", "frames_expected", "fraction"}``.
PROGRESS = "PROGRESS"
#: Fewest seconds between two updates of one pass.
UPDATE_INTERVAL_SECONDS = 1.0


class TaskProgress:
    """A progress callback (``progress(pass_name, frames_done, frames_expected)``) for the task ``task``, safe
    to call from the scan's thread and the chain's at once.

    The state's ``info``: ``pass`` (the latest pass to start: ``profile``, ``measure`` or ``apply``), its
    ``frames_done`` and ``frames_expected`` (samples per channel; None when the input declares no length),
    its ``fraction`` done (0 to 1, or None), ``passes``, each started pass's fraction, and ``time``, when the
    update was made (epoch seconds).
    """

    def __init__(self, task, interval_seconds: float = UPDATE_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.task, self.interval_seconds, self.clock = task, interval_seconds, clock
        self.task_id = task.request.id  # the request is thread-local, and the scan's thread reports too
        self.updates = 0
        self._lock = threading.Lock()
        self._last_time: float | None = None
        self._passes: dict[str, tuple[int, int | None]] = {}
        self._current: str | None = None

    def __call__(self, pass_name: str, frames_done: int, frames_expected: int | None) -> None:
        with self._lock:
            if pass_name not in self._passes:
                self._current = pass_name
            self._passes[pass_name] = (int(frames_done), frames_expected)
            now = self.clock()
            if self._last_time is not None and now - self._last_time < self.interval_seconds:
                return
            self._last_time = now
            self._update(self._meta())

    def _meta(self) -> dict:
        done, expected = self._passes[self._current]
        return {"pass": self._current, "frames_done": done, "frames_expected": expected, "time": time.time(),
                "fraction": _fraction(done, expected),
                "passes": {name: _fraction(*counts) for name, counts in self._passes.items()}}

    def _update(self, meta: dict) -> None:
        try:
            self.task.update_state(task_id=self.task_id, state=PROGRESS, meta=meta)
        except Exception:  # noqa: BLE001  (any backend error: this update is lost, the job goes on)
            return
        self.updates += 1


def _fraction(done: int, expected: int | None) -> float | None:
    return min(1.0, done / expected) if expected else None
