"""A private redis-server for one run: the Celery broker and result backend, restartable (a broker fault)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from ..measuring.processes import free_port, stop_process, wait_until


class RedisServer:
    """A ``redis-server`` on a free loopback port, its files in ``folder``.

    ``appendonly=True`` runs it as production would: a restart replays the
    append-only file, so queued and unacknowledged messages survive it.
    """

    def __init__(self, folder: Path, appendonly: bool = False):
        self.folder, self.appendonly = Path(folder), appendonly
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> RedisServer:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; ./lab setup does it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen([server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         *persistence, "--dir", str(self.folder)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_for_ping()
        return self

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _wait_for_ping(self, timeout: float = 20.0) -> None:
        wait_until(self._answers_ping, self.process, timeout, f"redis-server on port {self.port} answering PING")

    def stop(self) -> None:
        """SIGTERM: redis flushes its append-only file and exits."""
        stop_process(self.process, grace_seconds=30.0)

    def restart(self) -> None:
        self.stop()
        self.start()
