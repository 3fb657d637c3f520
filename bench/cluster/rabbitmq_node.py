"""A private RabbitMQ node for the harness: its own node name, ports, data folder and epmd, on loopback.

As root on Debian the ``rabbitmq-server`` wrapper runs the node as the ``rabbitmq`` user (``su``, which keeps
the environment but ``HOME``), so the node's data folder belongs to that user and lies where it can reach
(a fresh folder in the system's temporary directory: a pytest folder under a root-only parent is out of its
reach), removed when the node stops. Everything the node writes is in that folder, but its console output
(``server.out`` in the folder given); its Erlang port mapper (epmd) listens on a port of its own, so nothing is shared with a system node.
The node's ``consumer_timeout`` (how long a delivered message may stay unacknowledged before RabbitMQ closes
the consumer's channel; 30 minutes by default) is set in its ``rabbitmq.conf``; ``channel_tick_ms`` (in its
``advanced.config``) makes its channels check that age more often than once a minute, for tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from ..measuring.processes import free_port, wait_ended, wait_until

#: A delivered job may run this long before RabbitMQ takes it back, ms: a day. RabbitMQ's default is 30 minutes,
#: and a 3-hour recording on a busy worker can take longer than that.
CONSUMER_TIMEOUT_MS = 24 * 3600 * 1000
#: How long stop() waits for the SIGKILLed node and its epmd to end, seconds.
STOP_WAIT_SECONDS = 30


def _owned_by_rabbitmq(folder: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(folder, "rabbitmq", "rabbitmq")
        for path in folder.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")


class RabbitMQNode:
    """``rabbitmq-server`` on free loopback ports, its files in ``folder``; ``url`` is its AMQP address."""

    def __init__(self, folder: Path, consumer_timeout_ms: int = CONSUMER_TIMEOUT_MS,
                 channel_tick_ms: int | None = None):
        self.log_folder, self.consumer_timeout_ms = Path(folder), consumer_timeout_ms
        self.channel_tick_ms = channel_tick_ms  # how often a channel checks its deliveries' age (RabbitMQ: 60 s)
        self.folder = Path(tempfile.mkdtemp(prefix="audionorm-rabbitmq-"))
        self.folder.chmod(0o755)
        self.port, self.dist_port, self.epmd_port = free_port(), free_port(), free_port()
        self.node = f"audionorm-{self.port}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict:
        """The environment the node and ``rabbitmqctl`` share."""
        base = self.folder
        return {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_FEATURE_FLAGS_FILE": str(base / "feature_flags"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(base / "pid"), "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
                "HOME": str(base / "home"), "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_EPMD_PORT": str(self.epmd_port)}

    @property
    def pid(self) -> int | None:
        """The node's own process (beam), from its pid file."""
        try:
            return int((self.folder / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self) -> RabbitMQNode:
        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server; ./lab setup does it)")
        for sub in ("mnesia", "log", "home"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        ticks = f"{{channel_tick_interval, {self.channel_tick_ms}}}" if self.channel_tick_ms else ""
        (self.folder / "advanced.config").write_text(f"[{{rabbit, [{ticks}]}}].\n")
        (self.folder / "rabbitmq.conf").write_text(f"consumer_timeout = {self.consumer_timeout_ms}\n"
                                                   "loopback_users.guest = true\n")
        _owned_by_rabbitmq(self.folder)
        self.log_folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_folder / "server.out", "a")
        self.process = subprocess.Popen(["rabbitmq-server"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._started, self.process, 90.0, f"RabbitMQ node {self.node} starting")
        return self

    def _started(self) -> bool:
        try:
            return self._ctl("await_startup", "--timeout", "5", timeout=20).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def setting(self, name: str) -> str | None:
        """One of the running node's settings, as ``rabbitmqctl environment`` prints it (e.g. consumer_timeout)."""
        result = self._ctl("eval", f"application:get_env(rabbit, {name}).")
        return result.stdout.strip() if result.returncode == 0 else None

    def set_setting(self, name: str, value: int) -> bool:
        """Change one of the running node's settings (channels opened from now on see it); whether it took."""
        result = self._ctl("eval", f"application:set_env(rabbit, {name}, {int(value)}).")
        return result.returncode == 0 and self.setting(name) == f"{{ok,{int(value)}}}"

    def queue_depths(self) -> dict:
        """Messages ready and unacknowledged in each queue: ``{"queued", "unacknowledged"}`` over all queues."""
        result = self._ctl("list_queues", "-q", "--no-table-headers", "name", "messages_ready",
                           "messages_unacknowledged")
        rows = [line.split() for line in result.stdout.splitlines() if len(line.split()) == 3]
        return {"queued": sum(int(r[1]) for r in rows), "unacknowledged": sum(int(r[2]) for r in rows)}

    def queues(self) -> dict[str, dict]:
        """Each queue's ``{"type" (classic, quorum...), "durable"}``, by name."""
        result = self._ctl("list_queues", "-q", "--no-table-headers", "name", "type", "durable")
        rows = [line.split() for line in result.stdout.splitlines() if len(line.split()) == 3]
        return {name: {"type": kind, "durable": durable == "true"} for name, kind, durable in rows}

    def stop(self) -> None:
        """``rabbitmqctl stop`` (the node ends cleanly), then its epmd, and SIGKILL for anything left; returns when
        they have ended (a SIGKILLed Erlang VM takes a moment to tear down its threads and memory)."""
        if self.process is None:
            return
        pid = self.pid
        try:
            self._ctl("stop", timeout=60)
        except subprocess.TimeoutExpired:
            pass
        victims = [victim for victim in (pid, *self._epmd_pids()) if victim]
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        wait_ended(victims, timeout=STOP_WAIT_SECONDS)
        self._log.close()
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _epmd_pids(self) -> list[int]:
        import psutil

        pids = []
        for process in psutil.process_iter(["name", "environ"]):
            try:
                if process.info["name"] == "epmd" and (process.info["environ"] or {}).get("ERL_EPMD_PORT") == str(
                        self.epmd_port):
                    pids.append(process.pid)
            except psutil.Error:
                pass
        return pids

    def restart(self) -> float:
        """Stop and start RabbitMQ in the node (``stop_app``, ``start_app``: every connection closed, durable queues
        and their messages kept); seconds it took."""
        started = time.time()
        self._ctl("stop_app", timeout=60)
        self._ctl("start_app", timeout=90)
        wait_until(self._started, self.process, 90.0, f"RabbitMQ node {self.node} restarting")
        return time.time() - started
