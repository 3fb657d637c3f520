"""The service's broker settings: one place for workers and clients, Redis or RabbitMQ."""

import threading

import pytest
from celery import Celery, states

from audionorm_lab.service.broker import DEFAULT_HEARTBEAT_SECONDS, QUEUE, broker_settings
from audionorm_lab.errors import NotAudioError
from bench.cluster.redis_server import RedisServer


def test_rabbitmq_takes_a_durable_quorum_queue_with_confirms_and_its_results_in_redis():
    settings = broker_settings("amqp://guest:guest@127.0.0.1:5672//", "redis://127.0.0.1:6379/0", environ={})
    assert settings["task_default_queue"] == QUEUE and settings["task_default_queue_type"] == "quorum"
    assert settings["broker_transport_options"] == {"confirm_publish": True}
    assert settings["broker_heartbeat"] == DEFAULT_HEARTBEAT_SECONDS <= 30  # a vanished host noticed in seconds
    assert settings["result_backend"] == "redis://127.0.0.1:6379/0"
    heartbeat = broker_settings("amqp://h//", "redis://h/0", environ={"AUDIONORM_BROKER_HEARTBEAT": "5"})
    assert heartbeat["broker_heartbeat"] == 5


def test_redis_is_broker_and_backend_with_its_visibility_timeout():
    settings = broker_settings("redis://127.0.0.1:6379/0", environ={"AUDIONORM_VISIBILITY_TIMEOUT": "60"})
    assert settings["result_backend"] == "redis://127.0.0.1:6379/0"
    assert settings["broker_transport_options"]["visibility_timeout"] == 60.0
    assert "task_default_queue_type" not in settings


@pytest.mark.parametrize("broker, backend, says", [
    ("amqp://h//", None, "AUDIONORM_RESULT_BACKEND must name a Redis"),  # the ledger and the lock live there
    ("amqp://h//", "rpc://", "AUDIONORM_RESULT_BACKEND must name a Redis"),
    ("sqs://h", None, "must be redis:// or amqp://"),
])
def test_a_broker_without_a_redis_for_the_ledger_is_refused_in_words(broker, backend, says):
    with pytest.raises(ValueError, match=says):
        broker_settings(broker, backend, environ={})


def test_an_outcome_stored_while_redis_restarts_is_the_jobs_own(tmp_path):
    """A job's outcome stored while the result backend's Redis restarts waits for it (result_backend_always_retry)
    instead of failing: the stored failure is the job's own error, not a ConnectionError."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        app = Celery("outcome", set_as_current=False)
        app.conf.update(broker_settings(server.url, environ={}))
        assert app.backend.get_state("warm-up") == states.PENDING  # connected before the restart
        server.stop()
        back = threading.Timer(1.0, server.start)
        back.start()
        app.backend.mark_as_failure("job-1", NotAudioError("minutes.mp3: not audio"))
        back.join()
        stored = app.AsyncResult("job-1")
        assert stored.state == states.FAILURE
        assert type(stored.result).__name__ == "NotAudioError" and "not audio" in str(stored.result)
    finally:
        server.stop()
