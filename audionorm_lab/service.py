"""The service's Celery app and its ``normalize_audio`` task (``pip install audionorm-lab[service]``).

Settings come from the environment: ``AUDIONORM_BROKER_URL`` (default
``redis://localhost:6379/0``) and ``AUDIONORM_RESULT_BACKEND`` (default: the broker).

Delivery: the task is ``acks_late`` with ``reject_on_worker_lost``. When the
process running a job dies (the OOM killer's SIGKILL), the master logs
``Process 'ForkPoolWorker-N' ... exited with 'signal 9 (SIGKILL)'`` and
``Task handler raised error: WorkerLostError(...)``, and the message is not
acknowledged but put back on the queue: the job is not silently lost. On that
redelivery the task does not run the job again (it would kill the next worker
too, forever): it fails at once with :class:`JobKilledWorkerError`, a
``WorkerLostError`` naming the job, which is what the client's ``result.get()``
raises, and the message is then acknowledged. Resubmit the job with the
streaming processor (``mode="auto"`` or ``"streaming"``).

Idempotence: outputs are written under a temporary name and renamed into place
when complete, so a retried or re-delivered job never leaves a half-written file.
"""

from __future__ import annotations

import os

from billiard.exceptions import WorkerLostError
from celery import Celery

from .errors import AudionormError
from .options import NormalizeOptions
from .processor import AudioJob, AudioProcessor
from .strategies import full_load, streaming

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
MODES = ("auto", "full-load", "streaming")

app = Celery("audionorm_lab")
app.conf.update(
    broker_url=os.environ.get("AUDIONORM_BROKER_URL", DEFAULT_BROKER_URL),
    result_backend=os.environ.get("AUDIONORM_RESULT_BACKEND") or os.environ.get("AUDIONORM_BROKER_URL",
                                                                                   DEFAULT_BROKER_URL),
    task_serializer="json", result_serializer="json", accept_content=["json"],
    task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True, result_extended=True,
)


class JobKilledWorkerError(WorkerLostError):
    """A redelivered job had already lost its worker (killed, typically out of memory); not run again."""


@app.task(name="audionorm.normalize_audio", bind=True)
def normalize_audio(self, input_file: str, output_file: str, options: dict | None = None, mode: str = "auto",
                    chunk_threshold_bytes: int | None = None) -> dict:
    """Normalize one file; return the report as a dict.

    ``mode``: ``"auto"`` is ``AudioProcessor.process_audio_job`` (streamed above the size
    threshold), ``"full-load"`` the old processor, ``"streaming"`` the core regardless of size.
    Bad input raises the :class:`~audionorm_lab.errors.AudionormError` that says why; the
    worker process survives it.
    """
    if (self.request.delivery_info or {}).get("redelivered"):
        raise JobKilledWorkerError(f"job {self.request.id} ({input_file}) lost its worker on an earlier delivery "
                                   f"(killed, e.g. out of memory); not run again: resubmit it with mode='streaming'")
    if mode not in MODES:
        raise AudionormError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    job = AudioJob(input_file, output_file, NormalizeOptions(**(options or {})), job_id=self.request.id)
    if mode == "full-load":
        report = full_load(job.input_file, job.output_file, job.options)
    elif mode == "streaming":
        report = streaming(job.input_file, job.output_file, job.options)
    else:
        processor = AudioProcessor() if chunk_threshold_bytes is None else AudioProcessor(chunk_threshold_bytes)
        report = processor.process_audio_job(job)
    return report.to_dict()
