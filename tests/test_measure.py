"""The harness's measuring primitive: a real subprocess, its tree's peak RSS, and a real SIGKILL at a limit."""

import sys

import psutil

from bench.measuring.container import WATCHDOG
from bench.measuring.measure import run_measured

MB = 10**6

ALLOCATE = """
import sys, time
import numpy as np
blocks = []
for _ in range(int(sys.argv[1])):
    blocks.append(np.ones(10**7 // 8))  # 10 MB, touched
    time.sleep(0.02)
print("done")
"""


def test_peak_rss_follows_what_the_process_holds():
    small = run_measured([sys.executable, "-c", ALLOCATE, "2"])
    large = run_measured([sys.executable, "-c", ALLOCATE, "30"])
    assert small.status == large.status == "ok" and large.stdout.strip() == "done"
    assert 250 * MB < large.peak_rss_bytes - small.peak_rss_bytes < 330 * MB
    # getrusage's figure for the same run agrees with the sampled one (it also counts the harness's RSS at spawn)
    assert large.maxrss_bytes >= large.peak_rss_bytes - 20 * MB
    assert large.cpu_seconds > 0 and large.wall_seconds > 0.5


def test_children_count_in_the_tree():
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {ALLOCATE!r}, '20'], check=True)"
    result = run_measured([sys.executable, "-c", parent])
    assert result.status == "ok"
    assert result.peak_rss_bytes > 200 * MB + 2 * 10 * MB  # the child's 200 MB plus two interpreters


def test_memory_limit_kills_with_signal_9_and_leaves_nothing_running():
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {ALLOCATE!r}, '100'], check=True)"
    result = run_measured([sys.executable, "-c", parent], memory_limit_bytes=150 * MB)
    assert result.killed and result.status == "killed: signal 9" and "done" not in result.stdout
    if result.limit_enforced_by == WATCHDOG:  # the watchdog kills the whole group past the limit
        assert result.returncode == -9 and result.rss_at_kill_bytes > 150 * MB
    else:  # the kernel kills the largest process, the child; its parent fails (check=True)
        assert result.oom_kills == 1 and result.returncode == 1 and "CalledProcessError" in result.stderr
        assert "died with <Signals.SIGKILL: 9>" in result.stderr
    assert psutil.Process().children(recursive=True) == []
