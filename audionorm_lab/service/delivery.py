"""The service's delivery policy: every job finishes, and no job runs twice at once.

Celery's ``acks_late`` with ``reject_on_worker_lost`` puts a job back on the queue
when its pool process dies (the OOM killer's SIGKILL), and the Redis transport
restores an unacknowledged message after ``visibility_timeout`` (the worker's main
process died, or the broker lost the acknowledgement). Either way the job comes
back. The message's ``redelivered`` flag cannot tell a second redelivery from the
first, so the policy keeps its own ledger in Redis, per task id:

- ``audionorm:deliveries:<id>``: incremented each time a delivery starts to run;
- ``audionorm:lock:<id>``: ``host:pid:token`` of the run in progress, set with
  ``NX`` and a short expiry that a heartbeat thread keeps extending. A second
  delivery of the same job while the first still runs (the visibility timeout
  passed on a long job) finds it held and waits; a lock whose holder died on this
  host is taken over at once, one on another host after it expires;
- ``audionorm:runs:<id>``: JSON records, one per event (``start``, ``end``,
  ``busy``: a delivery found the lock held, ``refused``: one delivery too many),
  with time, host, pid, delivery, mode and outcome, for the load harness's checks.

Every key expires after ``ttl_seconds``. A delivery past the first means an earlier
run started and never finished: it is run with the streaming processor, whose
memory does not depend on the file's length, whatever mode was asked for, up to
``max_deliveries`` deliveries in all. Each re-run first removes the temporary
outputs a killed run left beside the output.

This module needs only a redis-py client; :mod:`audionorm_lab.service` wires it into the Celery task.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..media.sinks import partial_outputs

log = logging.getLogger(__name__)

ON_WORKER_LOST = ("stream", "fail")
DEFAULT_MAX_DELIVERIES = 3
DEFAULT_LOCK_SECONDS = 15.0
DEFAULT_TTL_SECONDS = 7 * 24 * 3600

# Extend or delete the lock only while it still holds our token.
_EXTEND = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TAKE_OVER = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
              "end return false")


class RunInProgress(Exception):
    """Another delivery of this job is running now; try again after ``retry_after_seconds``."""

    def __init__(self, task_id: str, holder: str, retry_after_seconds: float):
        super().__init__(f"job {task_id} is running in {holder}; retry in {retry_after_seconds:.1f} s")
        self.holder, self.retry_after_seconds = holder, retry_after_seconds


class RunFinished(Exception):
    """An earlier delivery of the job ran to the end and recorded ``result``: its worker was lost before Celery
    stored the result and acknowledged the message, which came round again. The job is not run again."""

    def __init__(self, task_id: str, result: dict):
        super().__init__(f"job {task_id} already ran to the end")
        self.task_id, self.result = task_id, result


class DeliveriesExhausted(Exception):
    """The job lost its worker on as many deliveries as may run (``max_deliveries``, or 1 with ``on_worker_lost="fail"``)."""

    def __init__(self, task_id: str, input_file: str, runs: list[dict], max_deliveries: int):
        starts = [r for r in runs if r.get("event") == "start"]
        attempts = "; ".join(f"delivery {r['delivery']} ({r['mode']}) on {r['host']} pid {r['pid']}" for r in starts)
        super().__init__(f"job {task_id} ({input_file}) lost its worker on {len(starts)} "
                         f"deliver{'y' if len(starts) == 1 else 'ies'} ({attempts or 'none recorded'}); "
                         f"not run again: at most {max_deliveries} may run")
        self.runs = runs


@dataclass
class Attempt:
    """One delivery that runs: which it is, and which mode runs it and why."""

    task_id: str
    delivery: int
    max_deliveries: int
    mode_requested: str
    mode: str
    mode_changed_because: str | None = None
    partial_outputs_removed: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["partial_outputs_removed"] = list(self.partial_outputs_removed)
        return out


def lock_holder(value: str | bytes) -> tuple[str, int | None]:
    """The host and pid in a run lock's value ``host:pid:token`` (pid None when unreadable)."""
    host, _, rest = (value.decode() if isinstance(value, bytes) else value).partition(":")
    pid = rest.partition(":")[0]
    return host, int(pid) if pid.isdigit() else None


def holder_alive(holder: str) -> bool | None:
    """Whether the process named by a lock value ``host:pid:token`` lives; None when it is on another host."""
    host, pid = lock_holder(holder)
    if host != socket.gethostname():
        return None
    if pid is None:
        return True
    return not process_ended(pid)


def process_ended(pid: int) -> bool:
    """Whether the process ``pid`` of this host has ended: gone, or a zombie waiting to be reaped (a pool
    process killed with its worker, whose new parent, pid 1, reaps it when it gets round to it: a second or two
    here). An ended process holds no lock. One we may not signal counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class DeliveryLedger:
    """The per-job ledger in Redis, and the decision it drives.

    Parameters
    ----------
    client : redis.Redis
        The result backend's client (any redis-py client with ``decode_responses=False`` or True).
    max_deliveries : int
        Deliveries that may run, in all; the next one fails with :class:`DeliveriesExhausted`.
    on_worker_lost : ``"stream"`` | ``"fail"``
        ``"stream"`` re-runs a job whose worker was lost with the streaming processor;
        ``"fail"`` is the service as it was: the redelivery fails at once.
    lock_seconds : float
        Expiry of the run lock, seconds; the heartbeat extends it every third of that.
    ttl_seconds : float
        Expiry of every ledger key, seconds.
    """

    def __init__(self, client, max_deliveries: int = DEFAULT_MAX_DELIVERIES, on_worker_lost: str = "stream",
                 lock_seconds: float = DEFAULT_LOCK_SECONDS, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 prefix: str = "audionorm"):
        if on_worker_lost not in ON_WORKER_LOST:
            raise ValueError(f"on_worker_lost must be one of {', '.join(ON_WORKER_LOST)}, not {on_worker_lost!r}")
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, not {max_deliveries}")
        self.client, self.max_deliveries, self.on_worker_lost = client, max_deliveries, on_worker_lost
        self.lock_ms, self.ttl = int(lock_seconds * 1000), int(ttl_seconds)
        self.prefix = prefix

    def _key(self, kind: str, task_id: str) -> str:
        return f"{self.prefix}:{kind}:{task_id}"

    def deliveries(self, task_id: str) -> int:
        """Deliveries of ``task_id`` that started to run (or were refused for having too many)."""
        return int(self.client.get(self._key("deliveries", task_id)) or 0)

    def runs(self, task_id: str) -> list[dict]:
        """The run records of ``task_id``, oldest first: ``{"event": "start"|"end", "time" (epoch seconds), ...}``."""
        return [json.loads(r) for r in self.client.lrange(self._key("runs", task_id), 0, -1)]

    def finished_result(self, task_id: str) -> dict | None:
        """The result a run of ``task_id`` ended with in success (:meth:`ActiveRun.finish`), or None.

        Celery stores a task's result and acknowledges its message only after the task returns: a worker lost in
        between (a cold shutdown just as the job ends) leaves a job that ran to the end and a message that comes
        back. That copy returns this result instead of running the job again (:class:`RunFinished`)."""
        for record in reversed(self.runs(task_id)):
            if record.get("event") == "end" and record.get("outcome") == "success" and "result" in record:
                return record["result"]
        return None

    @staticmethod
    def _record_json(**fields) -> str:
        """One run record: now, this host and process, and ``fields``."""
        return json.dumps({"time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), **fields})

    def _record(self, task_id: str, **fields) -> None:
        key = self._key("runs", task_id)
        self.client.rpush(key, self._record_json(**fields))
        self.client.expire(key, self.ttl)

    def _acquire(self, task_id: str) -> str:
        key = self._key("lock", task_id)
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        if self.client.set(key, token, nx=True, px=self.lock_ms):
            return token
        holder = self.client.get(key)
        holder = holder.decode() if isinstance(holder, bytes) else holder
        if (holder is not None and holder_alive(holder) is False
                and self.client.eval(_TAKE_OVER, 1, key, holder, token, self.lock_ms)):
            log.info("job %s: took over the lock of %s, which is dead", task_id, holder)
            return token
        remaining_ms = self.client.pttl(key)
        self._record(task_id, event="busy", holder=holder)
        raise RunInProgress(task_id, holder or "?", max(remaining_ms, 1000) / 1000 if remaining_ms > 0 else 1.0)

    def begin(self, task_id: str, mode_requested: str, input_file: str, output_file: str) -> ActiveRun:
        """Take the job's lock and count the delivery; return the run to enter (a context manager).

        Raises :class:`RunInProgress` when another delivery holds the lock, :class:`RunFinished` when an earlier
        one ran to the end and its output is in place (checked under the lock, so a run ending meanwhile is seen),
        and :class:`DeliveriesExhausted` (after removing partial outputs) when this delivery is one too many.
        """
        token = self._acquire(task_id)
        try:
            finished = self.finished_result(task_id)
            if finished is not None and Path(output_file).exists():
                raise RunFinished(task_id, finished)
            count_key, runs_key = self._key("deliveries", task_id), self._key("runs", task_id)
            delivery = int(self.client.get(count_key) or 0) + 1
            attempt = Attempt(task_id, delivery, self.max_deliveries, mode_requested, mode_requested)
            refused = delivery > 1 and (self.on_worker_lost == "fail" or delivery > self.max_deliveries)
            if delivery > 1 and not refused and mode_requested != "streaming":
                lost = delivery - 1
                attempt.mode = "streaming"
                attempt.mode_changed_because = (
                    f"{lost} earlier deliver{'y' if lost == 1 else 'ies'} lost its worker (killed, out of "
                    f"memory, or shut down): delivery {delivery} of at most {self.max_deliveries} runs with the "
                    f"streaming processor, whose memory does not grow with the file")
            # the count and its record together, so a kill between them cannot leave one without the other
            record = self._record_json(event="refused" if refused else "start", delivery=delivery,
                                       mode=None if refused else attempt.mode)
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(count_key).expire(count_key, self.ttl).rpush(runs_key, record).expire(runs_key, self.ttl)
                delivery = int(pipe.execute()[0])
            if delivery > 1:
                attempt.partial_outputs_removed = tuple(str(p) for p in partial_outputs(output_file) if _unlink(p))
            if refused:
                limit = 1 if self.on_worker_lost == "fail" else self.max_deliveries
                raise DeliveriesExhausted(task_id, input_file, self.runs(task_id), limit)
        except BaseException:
            self.client.eval(_RELEASE, 1, self._key("lock", task_id), token)
            raise
        return ActiveRun(self, attempt, token)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class ActiveRun:
    """A delivery that holds the job's lock: a heartbeat keeps the lock while the ``with`` body runs;
    the run's end is recorded and the lock released on the way out."""

    def __init__(self, ledger: DeliveryLedger, attempt: Attempt, token: str):
        self.ledger, self.attempt, self.token = ledger, attempt, token
        self.result: dict | None = None
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="audionorm-lock-heartbeat", daemon=True)

    def _heartbeat(self) -> None:
        key = self.ledger._key("lock", self.attempt.task_id)
        while not self._stop.wait(self.ledger.lock_ms / 3000):
            try:
                if not self.ledger.client.eval(_EXTEND, 1, key, self.token, self.ledger.lock_ms):
                    log.warning("job %s: lost its run lock", self.attempt.task_id)
            except Exception as exc:  # the broker restarting: keep beating, the run goes on
                log.warning("job %s: could not extend its run lock (%s)", self.attempt.task_id, exc)

    def __enter__(self) -> Attempt:
        self._beat.start()
        return self.attempt

    def finish(self, result: dict) -> None:
        """The job's result (JSON), recorded with the run's end, in the same record, if the run ends in success:
        what a copy delivered after a lost acknowledgement returns (:meth:`DeliveryLedger.finished_result`)."""
        self.result = result

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._beat.join()
        task_id = self.attempt.task_id
        try:
            kept = {"result": self.result} if exc_type is None and self.result is not None else {}
            self.ledger._record(task_id, event="end", delivery=self.attempt.delivery, mode=self.attempt.mode,
                                outcome="success" if exc_type is None else exc_type.__name__, **kept)
            self.ledger.client.eval(_RELEASE, 1, self.ledger._key("lock", task_id), self.token)
        except Exception as record_exc:
            log.warning("job %s: could not record its end (%s); the lock expires by itself", task_id, record_exc)
