"""A job the Redis transport lost between BRPOP and its bookkeeping, reproduced on real Redis and real workers, and
published again by the sweep (audionorm_lab.service.publications)."""

import os
import signal
import time

import pytest
import redis

from audionorm_lab.service.publications import Publications, held_by_broker, message_task_id
from bench.cluster.celery_cluster import CeleryWorker, client_app, send_job
from bench.cluster.redis_server import RedisServer
from data.fetch_samples import make_sample

SWEEP = {"AUDIONORM_LOST_MESSAGE_SECONDS": "3", "AUDIONORM_SWEEP_INTERVAL": "1"}


def blocked_in_brpop(client) -> bool:
    return any(c.get("cmd") == "brpop" and "b" in c.get("flags", "") for c in client.client_list())


def freeze_with_brpop_outstanding(worker: CeleryWorker, client, tries: int = 50) -> None:
    """SIGSTOP the worker's every process at a moment when Redis holds its BRPOP blocked (the reply it would read is
    the next message: a host that froze, or lost its network, while waiting for a job)."""
    for _ in range(tries):
        if blocked_in_brpop(client):
            os.killpg(worker.pid, signal.SIGSTOP)
            if blocked_in_brpop(client):
                return
            os.killpg(worker.pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail("the worker never waited in BRPOP")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def test_a_message_taken_by_a_frozen_worker_is_lost_to_the_broker_and_published_again(redis_server, tmp_path):
    src = make_sample(4.0, "mp3", out=tmp_path, speech="builtin")
    broker = redis.Redis.from_url(redis_server.url)
    frozen = CeleryWorker(redis_server.url, tmp_path, "frozen", env=SWEEP).start()
    client = client_app(redis_server.url)
    client.connection_for_write().ensure_connection()
    try:
        freeze_with_brpop_outstanding(frozen, broker)
        result = send_job(client, src, tmp_path / "out.flac", "streaming")
        deadline = time.monotonic() + 5
        while broker.llen("celery") and time.monotonic() < deadline:
            time.sleep(0.05)
        # the window: Redis gave the message to the frozen worker's BRPOP; it is in no list and no hash now
        assert broker.llen("celery") == 0 and broker.hlen("unacked") == 0
        assert result.id not in held_by_broker(broker)
        assert Publications(broker).unpicked_since(time.time()) == [result.id]
        rescuer = CeleryWorker(redis_server.url, tmp_path, "rescuer", env=SWEEP).start()
        try:
            report = result.get(timeout=90)
        finally:
            rescuer.stop()
        assert report["output_frames"] > 0 and (tmp_path / "out.flac").exists()
        assert f"job {result.id} was published and never picked up" in rescuer.log_path.read_text()
        assert Publications(broker).unpicked_since(time.time()) == []
    finally:
        frozen.stop()  # SIGKILLs what is left of its group, frozen or not


def test_the_sweep_leaves_alone_a_job_that_a_queue_or_the_unacked_hash_holds():
    queued = '{"body": "", "headers": {"id": "a"}, "properties": {}}'
    unacked = '[{"body": "", "headers": {"id": "b"}, "properties": {}}, "", "celery"]'
    assert message_task_id(queued) == "a" and message_task_id(unacked) == "b"
    assert message_task_id("not json") is None and message_task_id('{"no": "headers"}') is None
