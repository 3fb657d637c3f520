"""The harness's private RabbitMQ node: its own ports and folder, a consumer timeout long jobs outlive, and
nothing left behind."""

import psutil

from bench.rabbitmq_node import CONSUMER_TIMEOUT_MS, RabbitMQNode


def test_a_private_node_with_a_day_long_consumer_timeout_leaves_nothing_behind(tmp_path):
    node = RabbitMQNode(tmp_path / "rabbitmq")
    data = node.folder
    node.start()
    try:
        assert node.setting("consumer_timeout") == f"{{ok,{CONSUMER_TIMEOUT_MS}}}"
        assert CONSUMER_TIMEOUT_MS >= 3 * 3600 * 1000  # RabbitMQ's default, 30 minutes, would end a 3-hour job
        listening = {c.laddr.port: c.laddr.ip for c in psutil.Process(node.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening.get(node.port) == "127.0.0.1" and listening.get(node.dist_port) == "127.0.0.1"
        assert node.queue_depths() == {"queued": 0, "unacknowledged": 0}
        pid = node.pid
    finally:
        node.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not data.exists() and (tmp_path / "rabbitmq" / "server.out").exists()
