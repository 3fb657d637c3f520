"""Small helpers for the service's real processes: a free loopback port, waiting for one to be ready, waiting
for some to end, and stopping one with its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from audionorm_lab.service.delivery import process_ended


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready, process: subprocess.Popen, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``ready()`` until it is true; raise if ``process`` exits first or ``timeout`` seconds pass.
    The error names ``what`` (and the exit code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {process.returncode}")
        if ready():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what}: not ready after {timeout:g} s")


def wait_ended(pids: list[int], timeout: float, interval: float = 0.01) -> dict[int, float]:
    """Wait up to ``timeout`` seconds for ``pids`` (not necessarily our children) to end; pid -> when it was seen
    ended (epoch seconds), for those that did."""
    deadline, seen = time.monotonic() + timeout, {}
    while len(seen) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in seen and process_ended(pid):
                seen[pid] = time.time()
        time.sleep(interval)
    return seen


def stop_process(process: subprocess.Popen | None, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL the process group; always reaped."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_seconds)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        kill_process_group(process)


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL the process and everything in its group (a cold shutdown); reaped."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
