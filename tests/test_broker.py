"""The service's broker settings: one place for workers and clients, Redis or RabbitMQ."""

import pytest

from audionorm_lab.broker import DEFAULT_HEARTBEAT_SECONDS, QUEUE, broker_settings


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
