"""The service's broker settings, for Redis or RabbitMQ: the one place both the workers and a client take them from.

- ``redis://``: the Redis transport. A message delivered but never acknowledged (its worker's main process
  died) comes back only after ``AUDIONORM_VISIBILITY_TIMEOUT`` seconds; see :mod:`audionorm_lab.service`.
- ``amqp://``: RabbitMQ, Celery's recommended production broker. Jobs go to a durable quorum queue
  (:data:`QUEUE`), with publisher confirms; RabbitMQ holds a message until it is acknowledged and returns it
  as soon as the consumer's connection closes, so there is no visibility timeout. Prefetch stays 1 and the
  task ``acks_late``, as on Redis. RabbitMQ's own ``consumer_timeout`` (30 minutes by default) closes the
  channel of a consumer that holds a message longer, which would fail a long job: set it in the node's
  ``rabbitmq.conf`` above the longest job (the harness's node: a day). A host that vanishes without closing its
  connections is noticed by the AMQP heartbeat (``AUDIONORM_BROKER_HEARTBEAT``, :data:`DEFAULT_HEARTBEAT_SECONDS`).
  The delivery ledger and the run lock stay in Redis, the result backend, which ``AUDIONORM_RESULT_BACKEND``
  must then name.
"""

from __future__ import annotations

import os

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 900
DEFAULT_RESTORE_MUTEX_EXPIRE_SECONDS = 30
#: AMQP heartbeat, seconds: RabbitMQ closes a connection that sent nothing for about this long and returns its
#: unacknowledged jobs. It is what notices a host that vanished (powered off, cut off: no FIN, no RST); Celery's
#: default, 120 s (60 s after RabbitMQ's own offer), would hold such a host's jobs for two minutes or more.
DEFAULT_HEARTBEAT_SECONDS = 10
#: The jobs' queue on RabbitMQ: a quorum queue (replicated, durable, returns unacknowledged messages).
QUEUE = "audionorm"
#: Times a result backend operation is retried when Redis does not answer (a restart), with exponential backoff from
#: 10 ms to 10 s (Celery's defaults): about a minute. Without it, storing a job's outcome while Redis restarts
#: failed at once (Celery's store reads the stored state first, without its own retry), and the job's result
#: became that ConnectionError instead of its own (seen in CI: a bad input's NotAudioError replaced).
RESULT_BACKEND_RETRIES = 20
COMMON = {"task_serializer": "json", "result_serializer": "json", "accept_content": ["json"],
          "broker_connection_retry_on_startup": True,
          "result_backend_always_retry": True, "result_backend_max_retries": RESULT_BACKEND_RETRIES}


#: URL schemes of each kind of broker.
REDIS_SCHEMES = ("redis", "rediss")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def broker_kind(url: str) -> str:
    """``"redis"`` or ``"rabbitmq"``, from the URL's scheme."""
    if _scheme(url) in REDIS_SCHEMES:
        return "redis"
    if _scheme(url) in AMQP_SCHEMES:
        return "rabbitmq"
    raise ValueError(f"AUDIONORM_BROKER_URL must be redis:// or amqp://, not {url!r}")


def result_backend_url(broker_url: str, backend_url: str | None) -> str:
    """The result backend: Redis, where the delivery ledger lives (the broker itself when it is Redis)."""
    url = backend_url or (broker_url if broker_kind(broker_url) == "redis" else None)
    if url is None or _scheme(url) not in REDIS_SCHEMES:
        raise ValueError(f"with the broker at {broker_url}, AUDIONORM_RESULT_BACKEND must name a Redis "
                         f"(redis://...): the delivery ledger and the run lock live there")
    return url


def broker_settings(broker_url: str, backend_url: str | None = None, environ=os.environ) -> dict:
    """Celery settings for a worker or a client of the service at ``broker_url`` (Redis or RabbitMQ)."""
    settings = {**COMMON, "broker_url": broker_url, "result_backend": result_backend_url(broker_url, backend_url)}
    if broker_kind(broker_url) == "rabbitmq":
        return {**settings, "task_default_queue": QUEUE, "task_default_queue_type": "quorum",
                "broker_heartbeat": int(environ.get("AUDIONORM_BROKER_HEARTBEAT", DEFAULT_HEARTBEAT_SECONDS)),
                "broker_transport_options": {"confirm_publish": True}}
    return {**settings, "broker_transport_options": {
        "visibility_timeout": float(environ.get("AUDIONORM_VISIBILITY_TIMEOUT", DEFAULT_VISIBILITY_TIMEOUT_SECONDS)),
        "unacked_restore_interval": float(environ.get("AUDIONORM_RESTORE_INTERVAL", 10)),
        "unacked_restore_throttle": 1,  # look on every interval, not on every tenth
        "unacked_mutex_expire": float(environ.get("AUDIONORM_RESTORE_MUTEX_EXPIRE",
                                                  DEFAULT_RESTORE_MUTEX_EXPIRE_SECONDS)),
    }}
