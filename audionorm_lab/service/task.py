"""The service's Celery app and its ``normalize_audio`` task (``pip install audionorm-lab[service]``).

Settings come from the environment:

- ``AUDIONORM_BROKER_URL`` (default ``redis://localhost:6379/0``; ``amqp://`` for RabbitMQ, see
  :mod:`audionorm_lab.service.broker`) and ``AUDIONORM_RESULT_BACKEND`` (default: the broker when it is
  Redis). The result backend must be Redis: the delivery ledger lives there.
- ``AUDIONORM_MEMORY_LIMIT``: the memory limit of one pool process (e.g. ``600M``,
  ``2G``: the container's limit divided by the worker's concurrency). ``mode="auto"``
  then keeps a job in memory only when its in-memory peak fits
  (:meth:`AudioProcessor.for_memory_limit`); unset, the size threshold is the default.
  An input too wide (channels x sample rate) to stream within it is refused before
  it decodes (:mod:`audionorm_lab.service.admission`).
- ``AUDIONORM_MAX_SECONDS``: the longest input accepted, seconds; a longer one is
  refused by its header, and a decode that runs past it is stopped there.
- ``AUDIONORM_STORAGE_ROOT``: when set, input and output paths must resolve (links
  followed) inside this folder (:mod:`audionorm_lab.service.storage`).
- ``AUDIONORM_VISIBILITY_TIMEOUT``: seconds before the Redis transport restores a
  message that was delivered but never acknowledged (its worker's main process was
  killed, or a broker restart lost the acknowledgement). Default 900. Set it from
  the longest job the service expects: streaming runs at about 100x real time on
  two free cores, so a 3-hour recording takes about 2 minutes alone and about
  8 minutes with four jobs sharing two cores. A job that runs longer than the
  timeout is still safe: its restored copy finds the job's run lock held and waits
  (a retry with a countdown) until the first run ends, then sees its result and
  does nothing. A shorter timeout finishes jobs sooner after a cold shutdown.
  Unacknowledged messages are looked for every ``AUDIONORM_RESTORE_INTERVAL``
  seconds (default 10).
- ``AUDIONORM_RESTORE_MUTEX_EXPIRE``: seconds (default 30) after which the lock
  kombu's restore pass takes in Redis expires. A worker killed during a restore
  pass, or a broker restart during one, leaves the lock behind, and no worker
  restores anything until it expires: kombu's default of 300 s would hold a cold
  shutdown's jobs back five minutes beyond the visibility timeout.
- ``AUDIONORM_LOST_MESSAGE_SECONDS`` (default 30) and ``AUDIONORM_SWEEP_INTERVAL`` (default 10): on a
  Redis broker each worker sweeps for jobs published through :func:`publish_job` that were never picked
  up and that no queue and no ``unacked`` hash holds (the transport lost them between ``BRPOP`` and its
  bookkeeping, as when a worker's host froze), and publishes them again (:mod:`audionorm_lab.service.publications`).

Each pool process raises its own ``oom_score_adj`` when it starts (:mod:`audionorm_lab.service.oom_score`): at a
container's limit the kernel's OOM killer takes a pool process, whose job is delivered again, before the
worker's main process, whose loss would stop every job on the worker. Pool processes share what the main
process imported, run a job's chain on their share of the cores, and hand their heap back after each job
(:mod:`audionorm_lab.service.pool_memory`), so more of them fit a container.

Admission (:mod:`audionorm_lab.service.admission`): before anything decodes, in every mode
(``full-load`` included), the task checks the job's paths against the storage root, that
its input is a media container on the allowlist and not a playlist or another
indirection (:mod:`audionorm_lab.media.containers`), its width and its length. A refused job
fails with the error that says why; the worker process lives on.

Delivery (:mod:`audionorm_lab.service.delivery`): the task is ``acks_late`` with
``reject_on_worker_lost``. When the process running a job dies (the OOM killer's
SIGKILL), the master logs ``Process 'ForkPoolWorker-N' ... exited with 'signal 9
(SIGKILL)'`` and the message goes back on the queue. Every delivery that runs is
counted in Redis per task id; a delivery after the first means an earlier run
never finished (the OOM killer, a deploy, a lost node), so the job runs again with
the streaming processor, whose memory does not grow with the file, whatever mode
it asked for, up to ``max_deliveries`` deliveries (default 3). The next one fails
with :class:`JobKilledWorkerError` naming the job and its attempts. The result's
``delivery`` entry says which delivery finished the job and why its mode changed.
``on_worker_lost="fail"`` keeps the service as it was, for the evidence: the first
redelivery fails at once.

Progress (:mod:`audionorm_lab.service.progress`): a streamed job reports Celery's custom ``PROGRESS``
state, ``info={"pass", "frames_done", "frames_expected", "fraction"}``, at most once a second per
pass, so Flower and ``AsyncResult(id).info`` show how far a long file has got.

Idempotence: outputs are written under a temporary name and renamed into place
when complete, so a job that runs twice writes the same file, and a re-run first
removes the temporary file a killed run left beside the output. A delivery of a
job whose result is already stored does nothing.
"""

from __future__ import annotations

import functools
import os

from billiard.exceptions import WorkerLostError
from celery import Celery, states
from celery.exceptions import Ignore
from celery.signals import worker_process_init

from .admission import Limits, admit
from .broker import DEFAULT_BROKER_URL, broker_settings
from .delivery import (
    DEFAULT_MAX_DELIVERIES,
    DeliveriesExhausted,
    DeliveryLedger,
    RunFinished,
    RunInProgress,
)
from ..errors import AudionormError
from .oom_score import raise_own_oom_score
from .pool_memory import install as install_pool_memory
from .publications import Publications, publish
from .publications import install as install_lost_message_sweep
from .pool_memory import job_threads
from ..stream.options import NormalizeOptions
from .processor import AudioJob, AudioProcessor
from .progress import TaskProgress
from ..strategies import full_load, streaming

MODES = ("auto", "full-load", "streaming")

app = Celery("audionorm_lab")
app.conf.update(
    **broker_settings(os.environ.get("AUDIONORM_BROKER_URL", DEFAULT_BROKER_URL),
                      os.environ.get("AUDIONORM_RESULT_BACKEND")),
    task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1, result_extended=True,
)


install_pool_memory()


@worker_process_init.connect
def _pool_process_before_main_for_the_oom_killer(**_) -> None:
    raise_own_oom_score()  # see audionorm_lab.service.oom_score


@functools.cache
def ledger_client(url: str):
    """A Redis client for the delivery ledger at ``url`` that rides out a broker restart: connection
    errors are retried with exponential backoff (50 ms doubling to 1 s, 40 times: about half a minute)."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 40),
                                retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])


install_lost_message_sweep(app, ledger_client)  # see audionorm_lab.service.publications


def publish_job(app_or_client, input_file: str, output_file: str, publish_options: dict | None = None, **kwargs):
    """Send one ``audionorm.normalize_audio`` job through ``app_or_client`` (a Celery app of the service or a
    client of it), recorded first so that the lost-message sweep covers it; its ``AsyncResult``. ``kwargs`` are
    the task's; ``publish_options`` go to ``send_task`` (``retry_policy``...)."""
    return publish(app_or_client, Publications(ledger_client(app_or_client.conf.result_backend)),
                   "audionorm.normalize_audio", [str(input_file), str(output_file)], kwargs,
                   **(publish_options or {}))


def default_processor(limits: Limits) -> AudioProcessor:
    """``mode="auto"``'s processor: sized by the memory limit (``AUDIONORM_MEMORY_LIMIT``) when it is set."""
    if limits.memory_limit_bytes is None:
        return AudioProcessor()
    return AudioProcessor.for_memory_limit(limits.memory_limit_bytes)


def _already_ended(task) -> bool:
    """Whether the job's result is already stored (a late copy of a job that ended). A result backend that does not
    answer (a broker restarting) is no reason to fail the job: it runs, and the delivery ledger's lock, whose client
    rides out a restart, keeps two copies from running at once."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    try:
        return task.AsyncResult(task.request.id).state in states.READY_STATES
    except (RedisError, OperationalError, OSError):
        return False


class JobKilledWorkerError(WorkerLostError):
    """The job lost its worker on every delivery that may run; its message names the job and its attempts."""


@app.task(name="audionorm.normalize_audio", bind=True, max_retries=None)
def normalize_audio(self, input_file: str, output_file: str, options: dict | None = None, mode: str = "auto",
                    chunk_threshold_bytes: int | None = None, on_worker_lost: str = "stream",
                    max_deliveries: int = DEFAULT_MAX_DELIVERIES) -> dict:
    """Normalize one file; return the report as a dict, with its ``delivery`` entry.

    ``mode``: ``"auto"`` is ``AudioProcessor.process_audio_job`` (streamed above the size
    threshold), ``"full-load"`` the old processor, ``"streaming"`` the core regardless of size.
    ``on_worker_lost``: ``"stream"`` runs a job whose worker was lost again with streaming,
    up to ``max_deliveries`` deliveries; ``"fail"`` fails its first redelivery (the service as it was).
    ``options``: fields of :class:`~audionorm_lab.stream.options.NormalizeOptions`; ``compat`` defaults to
    ``"service"`` here, so every mode writes the service's file (pydub's decode and 16-bit export), and
    ``workers`` to the pool process's share of the cores (:func:`~audionorm_lab.service.pool_memory.job_threads`).
    Bad input raises the :class:`~audionorm_lab.errors.AudionormError` that says why; the
    worker process survives it.
    """
    if mode not in MODES:
        raise AudionormError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    Publications(ledger_client(self.app.conf.result_backend)).picked_up(self.request.id)
    if _already_ended(self):
        raise Ignore()  # a late copy of a job that already ended (its acknowledgement was lost)
    limits = Limits.from_environment()
    admitted = admit(input_file, output_file, NormalizeOptions(**{"compat": "service", "workers": job_threads(), **(options or {})}), limits)
    input_file, output_file = str(admitted.input_file), str(admitted.output_file)
    ledger = DeliveryLedger(ledger_client(self.app.conf.result_backend), max_deliveries=max_deliveries,
                            on_worker_lost=on_worker_lost)
    try:
        run = ledger.begin(self.request.id, mode, input_file, output_file)
    except RunFinished as done:
        return done.result  # its run ended, but the worker was lost before Celery acknowledged it: not run again
    except RunInProgress as busy:
        raise self.retry(countdown=busy.retry_after_seconds) from None
    except DeliveriesExhausted as exc:
        hint = " (on_worker_lost='fail'): resubmit it with mode='streaming'" if on_worker_lost == "fail" else ""
        raise JobKilledWorkerError(f"{exc}{hint}") from None
    with run as attempt:
        job = AudioJob(input_file, output_file, admitted.options, job_id=self.request.id)
        progress = TaskProgress(self)
        if attempt.mode == "full-load":
            report = full_load(job.input_file, job.output_file, job.options)
        elif attempt.mode == "streaming":
            report = streaming(job.input_file, job.output_file, job.options, progress=progress)
        else:
            processor = (default_processor(limits) if chunk_threshold_bytes is None
                         else AudioProcessor(chunk_threshold_bytes))
            report = processor.process_audio_job(job, progress=progress)
        result = {**report.to_dict(), "delivery": attempt.to_dict()}
        run.finish(result)
    return result
