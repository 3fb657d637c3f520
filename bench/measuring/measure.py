"""Run one command in a fresh process group and measure it, in a memory container the kernel enforces.

The command runs in a :class:`~bench.measuring.container.MemoryContainer`: a child memory cgroup, where
one can be made, whose limit the kernel's OOM killer enforces, as in a container runtime; the
result records who held the limit (``limit_enforced_by``), the kernel's kills (``oom_kills``),
and what it charged (``cgroup_peak_bytes``, with its anon and file split). Where no cgroup can
be made, the RSS watchdog holds the limit: past it, the process group is SIGKILLed.

Peak RSS is the largest sum of RSS over the process *tree* (Python plus its ffmpeg
children), sampled with psutil every ``interval_seconds``. ``ru_maxrss`` of the
reaped child (``wait4``) is kept beside it as a cross-check, with a caveat: on Linux
a child started by vfork/posix_spawn inherits, at exec, the high-water mark of the
process that spawned it, so ``maxrss_bytes`` is never below the harness's own RSS
(about 110 MB once numpy is imported). It is meaningful when the child outgrows the
harness, as full-load does; the sampled tree figure is the one to quote.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

import psutil

from .container import MemoryContainer

#: The import floor: a fresh Python that imports what a streaming run imports before its first
#: sample (audionorm_lab, with numpy and soundfile). Peak RSS "above the floor" is the working
#: set. (It was numpy, scipy.signal, soundfile and noisereduce, about 115 MB, while the
#: streaming path imported scipy.signal; it no longer does, and noisereduce is the full-load's.)
IMPORT_FLOOR_COMMAND = [sys.executable, "-c", "import audionorm_lab.strategies"]


@dataclass
class RunResult:
    """What one measured run did. Bytes, seconds."""

    command: list[str]
    returncode: int | None
    killed: bool
    status: str  # "ok", "failed: exit N", "killed: signal 9", "timeout: signal 9"
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int  # process tree, sampled
    maxrss_bytes: int  # the child's ru_maxrss from wait4 (see the module's caveat)
    rss_at_kill_bytes: int | None  # the watchdog's sample past the limit; the tree's sampled peak for a kernel kill
    memory_limit_bytes: int | None
    samples: int
    limit_enforced_by: str | None = None  # "kernel memcg v1" | "kernel memcg v2" | "watchdog"; None: no limit
    oom_kills: int | None = None  # processes the kernel's OOM killer ended in the run's cgroup; None: no cgroup
    cgroup_peak_bytes: int | None = None  # the most the kernel charged the cgroup (anon, page cache, kernel)
    cgroup_anon_bytes: int | None = None  # anonymous memory charged, at the most-charged sample
    cgroup_file_bytes: int | None = None  # page cache charged then (reclaimed before anyone is killed)
    kernel_log: list[str] = field(default_factory=list)  # the kernel's lines on its kills, where readable
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    def to_dict(self) -> dict:
        return asdict(self)


def tree_rss(root: psutil.Process) -> int:
    """The RSS of ``root`` and all its descendants now, bytes (0 once it has gone)."""
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(command: list[str], *, memory_limit_bytes: int | None = None, interval_seconds: float = 0.02,
                 timeout_seconds: float | None = None, env: dict | None = None, cwd: str | None = None) -> RunResult:
    """Run ``command`` in its own session and memory container (no limit: the kernel only counts); sample the
    tree's RSS; past the limit the kernel kills, or the watchdog SIGKILLs the group where no cgroup was made.

    The whole process group is killed (and reaped) on timeout, after a kernel kill, and if this
    function is interrupted, so no child outlives the measurement; the cgroup is removed.
    """
    with MemoryContainer(memory_limit_bytes) as container:
        result = _run_in(container, command, memory_limit_bytes, interval_seconds, timeout_seconds, env, cwd)
    return result


def _run_in(container: MemoryContainer, command: list[str], memory_limit_bytes: int | None, interval_seconds: float,
            timeout_seconds: float | None, env: dict | None, cwd: str | None) -> RunResult:
    watchdog = memory_limit_bytes is not None and not container.kernel
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(container.wrap(command), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                               cwd=cwd, start_new_session=True)
    root = psutil.Process(process.pid)
    peak, samples, rss_at_kill, reason = 0, 0, None, None
    finished = threading.Event()
    rusage_box: dict = {}

    def reap():
        _, status, usage = os.wait4(process.pid, 0)
        rusage_box["status"], rusage_box["usage"] = status, usage
        finished.set()

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        while not finished.wait(interval_seconds):
            rss = tree_rss(root)
            container.sample()
            samples += 1
            peak = max(peak, rss)
            if watchdog and rss > memory_limit_bytes and reason is None:
                reason, rss_at_kill = "killed", rss
                _kill_group(process.pid)
            elif timeout_seconds is not None and time.perf_counter() - started > timeout_seconds and reason is None:
                reason = "timeout"
                _kill_group(process.pid)
    except BaseException:
        _kill_group(process.pid)
        finished.wait()
        raise
    finally:
        reaper.join()
    wall = time.perf_counter() - started
    _kill_group(process.pid)  # stragglers a finished parent left behind
    status_word, usage = rusage_box["status"], rusage_box["usage"]
    process.returncode = os.waitstatus_to_exitcode(status_word)
    code = process.returncode
    charge = container.charge()
    if charge is not None and charge.oom_kills and reason is None:
        reason, rss_at_kill = "killed", peak  # the kernel ended a process of the run (not always the first one)
    if reason == "killed":
        status = f"killed: signal {-code if code < 0 else signal.SIGKILL.value}"
    elif reason == "timeout":
        status = "timeout: signal 9"
    elif code < 0:
        status = f"killed: signal {-code}"
    else:
        status = "ok" if code == 0 else f"failed: exit {code}"
    out.seek(0)
    err.seek(0)
    return RunResult(
        command=[str(c) for c in command], returncode=code, killed=reason is not None or code < 0, status=status,
        wall_seconds=wall, cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_bytes=peak, maxrss_bytes=usage.ru_maxrss * 1024,
        rss_at_kill_bytes=rss_at_kill, memory_limit_bytes=memory_limit_bytes, samples=samples,
        stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"),
        limit_enforced_by=container.enforced_by if memory_limit_bytes is not None else None,
        oom_kills=charge.oom_kills if charge else None, cgroup_peak_bytes=charge.peak_bytes if charge else None,
        cgroup_anon_bytes=charge.anon_bytes if charge else None, cgroup_file_bytes=charge.file_bytes if charge else None,
        kernel_log=container.kernel_log() if charge and charge.oom_kills else [],
    )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def parse_limit(text: str | None) -> int | None:
    """A memory limit as the command lines take it ('600M', '2G', '1.5GB', '150MiB', bytes) -> bytes; None: None."""
    if text is None:
        return None
    from data.fetch_samples import parse_size

    return parse_size(re.sub(r"(?i)^(\d+(?:\.\d+)?)([kmg])$", r"\1\2b", text.strip()))


def default_memory_limit() -> int:
    """The smaller of 4 GB and half the memory available now, bytes."""
    return min(4 * 10**9, psutil.virtual_memory().available // 2)
