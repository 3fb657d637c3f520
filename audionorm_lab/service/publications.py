"""Jobs published and not yet picked up, and the sweep that publishes again a job the Redis transport lost.

kombu's Redis transport takes a message off the queue's list with ``BRPOP`` and only then, once the
reply is read, records it as unacknowledged (the ``unacked`` hash that the visibility timeout
restores from). A worker that stops between the two loses the message: a host that froze or lost
its network with a ``BRPOP`` outstanding (the reply sits in a socket nobody reads), or a main
process killed just then. The message is then in no list and no hash, and no timeout brings it
back (reproduced: ``tests/test_publications.py``). RabbitMQ has no such window: a message is
unacknowledged from the moment it is sent to a consumer.

The service closes it from outside the transport:

- :func:`publish` records each job (its task id, arguments and publication time, in the result
  backend's Redis) before it sends it;
- the task marks its job picked up as soon as a delivery reaches a pool process
  (:meth:`Publications.picked_up`);
- every worker on a Redis broker sweeps (:class:`LostMessageSweep`, a timer in its main process):
  a job published more than ``AUDIONORM_LOST_MESSAGE_SECONDS`` ago (default 30), never picked up,
  and neither in the queue's list nor in the ``unacked`` hash is published again, with the same
  task id. One sweeper per job at a time (a lock in Redis). Should the lost copy surface after all
  (the frozen host comes back), the delivery ledger's run lock and its record of the run's end keep
  the job from running twice at once or twice to the end.

Only jobs published through :func:`publish` are covered.
"""

from __future__ import annotations

import json
import logging
import os
import time

log = logging.getLogger(__name__)

#: Sorted set: task id -> publication time (epoch seconds), for jobs not yet picked up.
PUBLISHED_KEY = "audionorm:published"
#: Seconds a job may go unpicked, in no list and no hash, before the sweep publishes it again.
DEFAULT_LOST_AFTER_SECONDS = 30.0
#: Seconds between two sweeps of a worker.
DEFAULT_SWEEP_INTERVAL_SECONDS = 10.0
#: The Redis transport's keys: the default queue's list and the unacknowledged messages' hash.
QUEUE_KEY, UNACKED_KEY = "celery", "unacked"


class Publications:
    """The record of published jobs, in Redis (``client``: a redis-py client); every key expires after
    ``ttl_seconds``."""

    def __init__(self, client, ttl_seconds: float = 7 * 24 * 3600):
        self.client, self.ttl = client, int(ttl_seconds)

    @staticmethod
    def _message_key(task_id: str) -> str:
        return f"audionorm:message:{task_id}"

    def record(self, task_id: str, name: str, args: list, kwargs: dict, when: float | None = None) -> None:
        """``task_id`` was published now (or at ``when``, epoch seconds) as ``name(*args, **kwargs)``."""
        message = json.dumps({"name": name, "args": args, "kwargs": kwargs})
        self.client.pipeline().set(self._message_key(task_id), message, ex=self.ttl) \
            .zadd(PUBLISHED_KEY, {task_id: time.time() if when is None else when}).execute()

    def picked_up(self, task_id: str) -> None:
        """A delivery of ``task_id`` reached a pool process: from now on the visibility timeout and the delivery
        ledger answer for it."""
        self.client.zrem(PUBLISHED_KEY, task_id)

    def unpicked_since(self, older_than: float) -> list[str]:
        """Task ids published before ``older_than`` (epoch seconds) and not picked up."""
        return [t.decode() if isinstance(t, bytes) else t
                for t in self.client.zrangebyscore(PUBLISHED_KEY, "-inf", older_than)]

    def message(self, task_id: str) -> dict | None:
        raw = self.client.get(self._message_key(task_id))
        return json.loads(raw) if raw else None

    def take_sweep(self, task_id: str, hold_seconds: float) -> bool:
        """Whether this sweeper may publish ``task_id`` again (no other did within ``hold_seconds``)."""
        return bool(self.client.set(f"audionorm:sweep:{task_id}", "1", nx=True, ex=max(1, int(hold_seconds))))


def message_task_id(raw: bytes | str) -> str | None:
    """The task id of a kombu message as the Redis transport stores it (JSON; in the ``unacked`` hash the value is
    ``[message, exchange, routing_key]``); None when it is not a task message."""
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if isinstance(message, list) and message:
        message = message[0]
    if not isinstance(message, dict):
        return None
    return (message.get("headers") or {}).get("id")


def queued_task_ids(broker, queue_key: str = QUEUE_KEY) -> set[str]:
    """The task ids whose messages wait in a Redis broker's ``queue_key`` list."""
    return {message_task_id(raw) for raw in broker.lrange(queue_key, 0, -1)}


def unacked_task_ids(broker) -> set[str]:
    """The task ids whose messages a Redis broker's workers took and have not acknowledged (kombu's hash)."""
    return {message_task_id(raw) for raw in broker.hvals(UNACKED_KEY)}


def held_by_broker(broker, queue_key: str = QUEUE_KEY) -> set[str]:
    """The task ids a Redis broker holds now: queued in ``queue_key``'s list, or delivered and unacknowledged."""
    return queued_task_ids(broker, queue_key) | unacked_task_ids(broker)


def publish(app, publications: Publications, name: str, args: list, kwargs: dict, **options):
    """Record the job, then send it through ``app`` (``app.send_task``); its ``AsyncResult``."""
    from celery.utils import uuid

    task_id = options.pop("task_id", None) or uuid()
    publications.record(task_id, name, args, kwargs)
    return app.send_task(name, args=args, kwargs=kwargs, task_id=task_id, **options)


def sweep(app, publications: Publications, broker, lost_after_seconds: float, log_event=None) -> list[str]:
    """Publish again every job lost between the queue and the ``unacked`` hash (see the module); the task ids."""
    overdue = publications.unpicked_since(time.time() - lost_after_seconds)
    if not overdue:
        return []
    held = held_by_broker(broker)
    again = []
    for task_id in overdue:
        if task_id in held or not publications.take_sweep(task_id, lost_after_seconds):
            continue
        message = publications.message(task_id)
        if message is None:  # expired with its record
            publications.picked_up(task_id)
            continue
        publications.record(task_id, message["name"], message["args"], message["kwargs"])
        app.send_task(message["name"], args=message["args"], kwargs=message["kwargs"], task_id=task_id)
        log.warning("job %s was published and never picked up, and no queue holds it: published again", task_id)
        if log_event is not None:
            log_event(task_id)
        again.append(task_id)
    return again


class SweepThread:
    """:func:`sweep` every ``interval_seconds`` on a thread of its own (a broker that does not answer stalls only
    it, not the worker's event loop), until :meth:`stop`. Errors are logged and the next sweep tries again."""

    def __init__(self, app, publications: Publications, broker, lost_after: float, interval_seconds: float):
        import threading

        self.app, self.publications, self.broker = app, publications, broker
        self.lost_after, self.interval = lost_after, interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audionorm-lost-message-sweep", daemon=True)

    def start(self) -> "SweepThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.app, self.publications, self.broker, self.lost_after)
            except Exception as exc:  # noqa: BLE001  (a broker restarting: the next sweep tries again)
                log.warning("lost-message sweep failed: %s", exc)


def install(app, ledger_client) -> None:
    """Sweep on every worker of ``app`` whose broker is Redis (a bootstep of the worker's main process);
    ``ledger_client(url)`` makes the Redis clients."""
    from celery import bootsteps

    from .broker import broker_kind

    class LostMessageSweep(bootsteps.StartStopStep):
        def __init__(self, worker, **kwargs):
            super().__init__(worker, **kwargs)
            self.thread: SweepThread | None = None

        def start(self, worker):
            if broker_kind(app.conf.broker_url) != "redis":
                return  # RabbitMQ holds a message unacknowledged from the moment it is delivered
            self.thread = SweepThread(app, Publications(ledger_client(app.conf.result_backend)),
                                      ledger_client(app.conf.broker_url), lost_after_seconds(),
                                      sweep_interval_seconds()).start()

        def stop(self, worker):
            if self.thread is not None:
                self.thread.stop()

    app.steps["worker"].add(LostMessageSweep)


def lost_after_seconds(environ=os.environ) -> float:
    return float(environ.get("AUDIONORM_LOST_MESSAGE_SECONDS", DEFAULT_LOST_AFTER_SECONDS))


def sweep_interval_seconds(environ=os.environ) -> float:
    return float(environ.get("AUDIONORM_SWEEP_INTERVAL", DEFAULT_SWEEP_INTERVAL_SECONDS))
