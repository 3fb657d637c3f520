"""The run lock's holder check on real processes: a lock held by a process that has ended is free."""

import os
import signal
import socket
import subprocess
import time

from audionorm_lab.delivery import holder_alive


def test_a_killed_process_not_yet_reaped_holds_no_lock():
    """A pool process killed with its worker waits, a zombie, until pid 1 reaps it; its lock is free at once."""
    child = subprocess.Popen(["sleep", "60"])
    holder = f"{socket.gethostname()}:{child.pid}:abcd"
    assert holder_alive(holder) is True
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert holder_alive(holder) is False  # not reaped yet: os.kill(pid, 0) would still succeed
    child.wait()
    assert holder_alive(holder) is False
    assert holder_alive(f"{socket.gethostname()}:{os.getpid()}:abcd") is True
    assert holder_alive(f"another-host-{socket.gethostname()}:{os.getpid()}:abcd") is None

