"""The memory container: a real memory cgroup, the kernel's OOM killer as judge, what the kernel charges against
what RSS says, and no cgroup left behind, even by a harness killed midway."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.measuring.container import KERNEL_V1, KERNEL_V2, PREFIX, WATCHDOG, MemoryContainer, owner_pid, own_memory_cgroup
from bench.measuring.measure import run_measured

MB = 10**6
CGROUP = own_memory_cgroup()
kernel = pytest.mark.skipif(CGROUP is None, reason="no memory cgroup can be made here (not root, or no controller)")

GROW = """
import time
blocks = []
for _ in range(int(__import__("sys").argv[1])):
    blocks.append(bytearray(10**7))  # 10 MB, touched
    time.sleep(0.01)
print("done")
"""


def ours() -> list:
    """The groups left by this process or by a harness that has ended (not those of the suite's other worker)."""
    groups = sorted(CGROUP[0].glob(f"{PREFIX}*")) if CGROUP else []
    return [g for g in groups if owner_pid(g) == os.getpid() or not os.path.exists(f"/proc/{owner_pid(g)}")]


@kernel
def test_the_kernel_kills_at_the_limit_and_says_so():
    result = run_measured([sys.executable, "-c", GROW, "40"], memory_limit_bytes=150 * MB)
    assert result.status == "killed: signal 9" and result.returncode == -9 and "done" not in result.stdout
    assert result.limit_enforced_by in (KERNEL_V1, KERNEL_V2) and result.oom_kills == 1
    assert 140 * MB <= result.cgroup_peak_bytes <= 150 * MB  # the kernel's high-water mark: the limit, no more
    assert any("Killed process" in line for line in result.kernel_log), result.kernel_log
    assert ours() == []


@kernel
def test_page_cache_is_charged_and_shared_pages_once(tmp_path):
    """A parent touches 200 MB, forks, and the child reads them: RSS counts them twice, the kernel once. Then
    the child writes 60 MB to a file: charged as page cache, in no process's RSS."""
    script = (
        "import os, sys, time\n"
        "held = bytearray(200 * 10**6)\n"
        "if os.fork() == 0:\n"
        "    sum(held[::4096])\n"  # every page read: in the child's RSS too
        "    time.sleep(0.3)\n"
        "    open(sys.argv[1], 'wb').write(bytes(60 * 10**6))\n"
        "    time.sleep(0.3)\n"
        "    os._exit(0)\n"
        "os.wait()\n")
    result = run_measured([sys.executable, "-c", script, str(tmp_path / "written")])
    assert result.status == "ok" and result.limit_enforced_by is None and result.oom_kills == 0
    assert result.peak_rss_bytes > 380 * MB, "the child's RSS counts the parent's pages again"
    assert result.cgroup_peak_bytes < 330 * MB, "the kernel charges them once"
    assert result.cgroup_file_bytes >= 55 * MB and result.cgroup_anon_bytes >= 190 * MB


def test_the_watchdog_holds_the_limit_where_forced(monkeypatch):
    monkeypatch.setenv("AUDIONORM_BENCH_LIMIT_BY", "watchdog")
    result = run_measured([sys.executable, "-c", GROW, "40"], memory_limit_bytes=150 * MB)
    assert result.status == "killed: signal 9" and result.limit_enforced_by == WATCHDOG
    assert result.oom_kills is None and result.rss_at_kill_bytes > 150 * MB
    assert ours() == []


@kernel
def test_a_harness_killed_midway_leaves_no_cgroup_and_no_process():
    harness = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from bench.measuring.container import MemoryContainer\n"
        "box = MemoryContainer(100 * 10**6)\n"
        "child = subprocess.Popen(box.wrap(['sleep', '600']))\n"
        "while child.pid not in box.pids():\n"
        "    time.sleep(0.01)\n"
        "print(box.path, child.pid, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    path, pid = harness.stdout.readline().split()
    assert os.path.isdir(path)
    harness.send_signal(signal.SIGKILL)
    harness.wait()
    deadline = time.monotonic() + 60
    while os.path.exists(path):
        assert time.monotonic() < deadline, "the cgroup is still there"
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@kernel
def test_a_group_left_by_a_harness_that_died_with_its_keeper_is_removed_by_the_next():
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid no harness has now
    stale = CGROUP[0] / f"{PREFIX}{dead.pid}-1"
    stale.mkdir()
    with MemoryContainer(50 * MB) as box:
        assert box.kernel and not stale.exists()
    assert ours() == []


@kernel
def test_smallest_container_finds_the_limit_the_kernel_lets_a_job_finish_in(tmp_path):
    """``bench smallest-container``: each try a fresh run in a fresh cgroup; the smallest limit that finished,
    with every try below it ended by the kernel (or too slow) and every try at or above it finished."""
    from data.fetch_samples import make_sample

    src = make_sample(20.0, "wav", out=tmp_path, speech="builtin")
    done = subprocess.run([sys.executable, "-m", "bench", "smallest-container", str(src), "--resolution", "4M",
                           "--json"], capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    tries, smallest = result["tries"], result["smallest_limit_bytes"]
    assert result["limit_enforced_by"] in (KERNEL_V1, KERNEL_V2) and len(tries) >= 4
    assert smallest < tries[0]["cgroup_peak_bytes"] and result["wall_seconds_at_smallest"] > 0
    below = [t for t in tries if t["limit_bytes"] < smallest]
    assert below and not any(t["finished"] for t in below)
    assert all(t["oom_kills"] >= 1 or t["status"].startswith("timeout") for t in below), below
    assert all(t["finished"] for t in tries if t["limit_bytes"] >= smallest)
    assert max(t["limit_bytes"] for t in below) >= smallest - 4 * MB  # found to the resolution asked
    assert ours() == []
