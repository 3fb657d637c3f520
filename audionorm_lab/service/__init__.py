"""The deployment: the Celery app and its ``audionorm.normalize_audio`` task (:mod:`.task`), the
``AudioProcessor``, the delivery ledger, brokers, the lost-message sweep, admission, the storage root, progress,
and what a pool process costs its container.

``celery -A audionorm_lab.service worker`` finds the app here. Uses the strategies, :mod:`audionorm_lab.stream`,
:mod:`audionorm_lab.media` and :mod:`audionorm_lab.dsp`. The app and the task need the ``service`` extra (Celery,
redis-py); the admission, delivery and processor modules do not.
"""

#: The Celery module's names, loaded on first use: the package itself (admission, delivery, the processor) works
#: without the ``service`` extra, and ``import audionorm_lab`` does not import Celery.
TASK_NAMES = ("MODES", "JobKilledWorkerError", "app", "default_processor", "ledger_client", "normalize_audio",
              "publish_job")
__all__ = list(TASK_NAMES)


def __getattr__(name: str):
    if name in TASK_NAMES:
        from . import task

        return getattr(task, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
