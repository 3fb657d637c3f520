"""Whom the kernel's OOM killer takes first in a worker's container: a pool process, not the main process.

At a memory cgroup's limit the kernel kills the process with the highest badness: its memory plus
``oom_score_adj`` thousandths of the limit. A pool process is the one that grows with a job, so it
is usually chosen anyway; but many small pool processes beside a main process that has grown (its
broker connection's buffers, a burst of results) can tip the choice, and a killed main process ends
every job on the worker at once and leaves its messages to the visibility timeout. A killed pool
process costs one job a redelivery. So each pool process raises its own score when it starts
(Celery's ``worker_process_init``); the main process keeps its own. Raising one's own score needs
no privilege; lowering it does.
"""

from __future__ import annotations

from pathlib import Path

#: What a pool process adds to the score it inherited from the main process (-1000 to 1000; the kernel caps it).
POOL_OOM_SCORE_STEP = 500
OOM_SCORE_ADJ = Path("/proc/self/oom_score_adj")


def raise_own_oom_score(step: int = POOL_OOM_SCORE_STEP, path: Path = OOM_SCORE_ADJ) -> int | None:
    """Raise this process's ``oom_score_adj`` by ``step`` (at most to 1000); the new value, or None where the
    system has no such file (not Linux)."""
    try:
        current = int(path.read_text())
        path.write_text(str(min(1000, current + step)))
        return int(path.read_text())
    except OSError:
        return None
