"""Faults injected into a running :class:`~bench.celery_cluster.Cluster`, as production meets them.

- ``kill-child``: SIGKILL a pool process that is running a job (the OOM killer);
- ``restart-broker``: stop Redis (SIGTERM: it flushes its append-only file) and start it again;
- ``warm-shutdown``: SIGTERM a worker's main process (a deploy): its running jobs
  finish, then it exits; a replacement starts at once;
- ``cold-shutdown``: SIGKILL a worker's main process and its pool processes (a
  lost node); a replacement starts at once. Its unacknowledged jobs come back
  after the visibility timeout.

A :class:`FaultInjector` thread injects one fault every ``every_seconds``, the
kinds in turn, and logs each with its time, so runs can be laid on a timeline.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from audionorm_lab.delivery import lock_holder

from .celery_cluster import Cluster

log = logging.getLogger(__name__)

FAULT_KINDS = ("kill-child", "restart-broker", "warm-shutdown", "cold-shutdown")


def busy_pool_pids(cluster: Cluster, ledger_client) -> list[int]:
    """Pool processes of live workers that hold a job's run lock (are running a job) now."""
    pools = cluster.pool_pids()
    busy = []
    for key in ledger_client.scan_iter("audionorm:lock:*"):
        holder = ledger_client.get(key)
        if holder is None:
            continue
        _, pid = lock_holder(holder)
        if pid in pools:
            busy.append(pid)
    return busy


class FaultInjector(threading.Thread):
    """Inject ``kinds`` in turn, one every ``every_seconds``, ``rounds`` times each (None: until :meth:`stop`).

    ``events`` lists what was done: ``{"time" (epoch seconds), "kind", "target", "pids_killed"}``.
    A kill-child with no busy pool process waits for one, up to ``every_seconds``.
    """

    def __init__(self, cluster: Cluster, kinds: list[str], every_seconds: float, redis_url: str,
                 first_after_seconds: float | None = None, rounds: int | None = None):
        super().__init__(name="fault-injector", daemon=True)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: use {', '.join(FAULT_KINDS)}")
        self.cluster, self.kinds, self.every = cluster, list(kinds), every_seconds
        self.first_after = every_seconds if first_after_seconds is None else first_after_seconds
        self.redis_url, self.rounds = redis_url, rounds
        self.events: list[dict] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def counts(self) -> dict[str, int]:
        return {kind: sum(e["kind"] == kind for e in self.events) for kind in self.kinds}

    def run(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        turn = 0
        wait = self.first_after
        while self.kinds and not self._halt.wait(wait):
            if self.rounds is not None and turn >= self.rounds * len(self.kinds):
                return
            kind = self.kinds[turn % len(self.kinds)]
            try:
                event = self.inject(kind, client)
            except Exception as exc:  # noqa: BLE001  (a fault that could not be injected is reported, not fatal)
                self.errors.append(f"{kind}: {exc}")
                log.warning("fault %s failed: %s", kind, exc)
                event = None
            if event is not None:
                self.events.append(event)
                turn += 1
                wait = self.every
            else:
                wait = 0.2  # nothing to hit yet (no busy pool process): try again soon

    def inject(self, kind: str, client) -> dict | None:
        now = time.time()
        if kind == "kill-child":
            busy = busy_pool_pids(self.cluster, client)
            if not busy:
                return None
            os.kill(busy[0], signal.SIGKILL)
            return {"time": now, "kind": kind, "target": f"pool pid {busy[0]}", "pids_killed": [busy[0]]}
        if kind == "restart-broker":
            self.cluster.redis.restart()
            return {"time": now, "kind": kind, "target": f"redis :{self.cluster.redis.port}", "pids_killed": [],
                    "seconds": time.time() - now}
        worker = next((w for w in self.cluster.live if w.alive()), None)
        if worker is None:
            return None
        self.cluster.replace(worker, wait=False)  # out of the live set first: the supervisor leaves it alone
        if kind == "warm-shutdown":
            worker.warm_shutdown()
            return {"time": now, "kind": kind, "target": worker.name, "pids_killed": []}
        pools = worker.pool_pids()
        worker.cold_shutdown()
        return {"time": now, "kind": kind, "target": worker.name, "pids_killed": [worker.pid, *pools]}
