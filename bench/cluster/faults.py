"""Faults injected into a running :class:`~bench.cluster.celery_cluster.Cluster`, as production meets them.

- ``kill-child``: SIGKILL a pool process that is running a job (the OOM killer);
- ``restart-broker``: stop Redis (SIGTERM: it flushes its append-only file) and start it again, or
  restart RabbitMQ's application in its node (every connection closed);
- ``warm-shutdown``: SIGTERM a worker's main process (a deploy): its running jobs
  finish, then it exits; a replacement starts at once;
- ``cold-shutdown``: SIGKILL a worker's main process and its pool processes (a
  lost node); a replacement starts at once. Its unacknowledged jobs come back
  after the visibility timeout on Redis, at once on RabbitMQ (the connection closed);
- ``kill-main``: SIGKILL a worker's main process alone (the OOM killer choosing it). Celery's prefork pool
  asks the kernel to SIGKILL each pool process when its parent dies (``PR_SET_PDEATHSIG``), so its running
  jobs end with it; the event says when each pool process was seen ended (``pids_died_with_main``) and which
  outlived it (``pids_orphaned``); a replacement starts at once;
- ``vanish-host``: every process of a worker frozen at once (a host that lost power or its network): its
  connections stay open and silent; a replacement starts at once.

A :class:`FaultInjector` thread injects one fault every ``every_seconds``, the
kinds in turn, and logs each with its time, so runs can be laid on a timeline. A fault that
hits processes spares the jobs on their last delivery (:func:`spare_last_deliveries`): it waits for
another target instead.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from audionorm_lab.service.delivery import DEFAULT_MAX_DELIVERIES, lock_holder

from .celery_cluster import Cluster
from ..measuring.processes import wait_ended

log = logging.getLogger(__name__)

FAULT_KINDS = ("kill-child", "restart-broker", "warm-shutdown", "cold-shutdown", "kill-main", "vanish-host")


def running_jobs(cluster: Cluster, ledger_client) -> dict[int, int]:
    """Pool processes of live workers that hold a job's run lock (are running a job) now -> that job's deliveries
    so far."""
    from audionorm_lab.service.delivery import DeliveryLedger

    ledger, pools, running = DeliveryLedger(ledger_client), cluster.pool_pids(), {}
    for key in ledger_client.scan_iter("audionorm:lock:*"):
        holder = ledger_client.get(key)
        if holder is None:
            continue
        _, pid = lock_holder(holder)
        if pid in pools:
            running[pid] = ledger.deliveries(key.decode().rsplit(":", 1)[1])
    return running


def spare_last_deliveries(running: dict[int, int], max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> dict[int, int]:
    """The running jobs (pool pid -> deliveries so far) a fault may hit: those not on their last delivery. The
    delivery policy fails a job whose worker was lost ``max_deliveries`` times (a poison job's guard); dense
    faults would otherwise hit a job on three hosts in a row, which is not what a load run measures."""
    return {pid: n for pid, n in running.items() if n < max_deliveries}


class FaultInjector(threading.Thread):
    """Inject ``kinds`` in turn, one every ``every_seconds``, ``rounds`` times each (None: until :meth:`stop`).

    ``events`` lists what was done: ``{"time" (epoch seconds), "kind", "target", "pids_killed"}``.
    A fault other than restart-broker hits a worker running a job it may hit; with none, it tries again every
    0.2 s.
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

    def remaining(self) -> float:
        """Faults still to be injected (infinite without ``rounds``)."""
        return float("inf") if self.rounds is None else self.rounds * len(self.kinds) - len(self.events)

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
                wait = 0.2  # nothing to hit yet (no running job it may hit): try again soon

    def _worker_to_hit(self, running: dict[int, int], targets: dict[int, int]):
        """The oldest live worker running a job the fault may hit and none it must spare (see
        :func:`spare_last_deliveries`); None when there is none yet."""
        spared = set(running) - set(targets)
        for worker in self.cluster.live:
            pools = set(worker.pool_pids())
            if worker.alive() and pools & set(targets) and not pools & spared:
                return worker
        return None

    def inject(self, kind: str, client) -> dict | None:
        now = time.time()
        if kind == "restart-broker":
            target = self.cluster.restart_broker()
            return {"time": now, "kind": kind, "target": target, "pids_killed": [], "seconds": time.time() - now}
        running = running_jobs(self.cluster, client)
        targets = spare_last_deliveries(running)
        if kind == "kill-child":
            if not targets:
                return None
            victim = min(targets, key=targets.get)
            os.kill(victim, signal.SIGKILL)
            return {"time": now, "kind": kind, "target": f"pool pid {victim}", "pids_killed": [victim]}
        worker = self._worker_to_hit(running, targets)
        if worker is None:
            return None
        self.cluster.replace(worker, wait=False)  # out of the live set first: the supervisor leaves it alone
        if kind == "warm-shutdown":
            worker.warm_shutdown()
            return {"time": now, "kind": kind, "target": worker.name, "pids_killed": []}
        if kind == "kill-main":
            main, pools = worker.pid, worker.pool_pids()
            worker.kill_main()
            died = wait_ended(pools, timeout=2.0)
            return {"time": now, "kind": kind, "target": worker.name, "pids_killed": [main, *died],
                    "pids_died_with_main": died, "pids_orphaned": [p for p in pools if p not in died]}
        if kind == "vanish-host":
            pools = worker.pool_pids()
            worker.vanish()
            return {"time": now, "kind": kind, "target": worker.name, "pids_killed": [], "pids_frozen": [worker.pid,
                                                                                                          *pools]}
        pools = worker.pool_pids()
        worker.cold_shutdown()
        return {"time": now, "kind": kind, "target": worker.name, "pids_killed": [worker.pid, *pools]}
