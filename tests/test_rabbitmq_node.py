"""The harness's private RabbitMQ node: its own ports and folder, a consumer timeout long jobs outlive, and
nothing left behind; and what that timeout does to a job held longer (RabbitMQ's default is 30 minutes)."""

import socket
import time

import psutil
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue

from bench.cluster.rabbitmq_node import CONSUMER_TIMEOUT_MS, RabbitMQNode

QUEUE = Queue("held", Exchange("held", type="direct"), routing_key="held", durable=True,
              queue_arguments={"x-queue-type": "quorum"})


def hold_a_delivery(url: str, seconds: float | None) -> tuple[str | None, bool]:
    """Publish a job, take it unacknowledged as a worker on a long job does, hold it ``seconds`` (None: until the
    broker takes it back, however long its check takes on this machine), then ack it: (the broker's word when it
    closed the channel, else None; whether the job was on the queue again for another consumer afterwards)."""
    with Connection(url) as connection:
        connection.Producer().publish("job", exchange=QUEUE.exchange, routing_key="held", declare=[QUEUE])
        queue = QUEUE(connection.default_channel)
        message = None
        for _ in range(100):
            message = queue.get(no_ack=False)
            if message is not None:
                break
            time.sleep(0.05)
        assert message is not None and message.payload == "job"
        closed, taken = None, time.monotonic()
        while closed is None and (seconds is None or time.monotonic() - taken < seconds):
            assert time.monotonic() - taken < 120, "held two minutes"
            try:
                connection.drain_events(timeout=0.1)  # the broker's frames, as they come
            except socket.timeout:
                continue
            except PreconditionFailed as broker_said:  # it closed the channel: the job is no longer ours
                closed = str(broker_said)
        if closed is None:
            message.ack()
            connection.default_channel.basic_qos(0, 1, False)  # a round trip: a closed channel raises here
    with Connection(url) as connection:
        again = QUEUE(connection.default_channel).get(no_ack=False)
        if again is not None:
            again.ack()
    return closed, again is not None


def test_a_private_node_keeps_a_long_job_that_a_short_consumer_timeout_would_take_back(tmp_path):
    node = RabbitMQNode(tmp_path / "rabbitmq", channel_tick_ms=200)
    data = node.folder
    node.start()
    try:
        assert node.setting("consumer_timeout") == f"{{ok,{CONSUMER_TIMEOUT_MS}}}"
        assert CONSUMER_TIMEOUT_MS >= 3 * 3600 * 1000  # RabbitMQ's default, 30 minutes, would end a 3-hour job
        listening = {c.laddr.port: c.laddr.ip for c in psutil.Process(node.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening.get(node.port) == "127.0.0.1" and listening.get(node.dist_port) == "127.0.0.1"
        # a job held 2 s, the channels checking its age every 200 ms: acknowledged, gone from the queue
        assert hold_a_delivery(node.url, 2.0) == (None, False)
        assert node.queue_depths() == {"queued": 0, "unacknowledged": 0}
        # what RabbitMQ's default does to a long job, in small (new channels take the new value): the broker closes
        # the channel and the job goes back on the queue (a Celery worker's job would run again)
        assert node.set_setting("consumer_timeout", 500)
        closed, again = hold_a_delivery(node.url, None)
        assert "delivery acknowledgement on channel 1 timed out" in closed and again
        pid = node.pid
    finally:
        node.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not data.exists() and (tmp_path / "rabbitmq" / "server.out").exists()
