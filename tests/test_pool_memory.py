"""What a pool process costs its container: frozen objects before the fork, its share of the cores, its heap
handed back after each job (audionorm_lab.service.pool_memory), on a real prefork worker."""

import subprocess
import sys
from pathlib import Path

from audionorm_lab.service import pool_memory
from audionorm_lab.dsp.parallel import available_cores
from bench.cluster.service_repro import Service
from data.fetch_samples import make_sample

ROOT = Path(__file__).resolve().parents[1]


def private_dirty_bytes(pid: int) -> int:
    """Pages only this process holds and has written: what forking it cost beyond what it shares, bytes."""
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no Private_Dirty in /proc/{pid}/smaps_rollup")


def test_a_child_forked_after_freezing_finds_the_objects_frozen():
    """The collector of a forked child never visits the parent's objects, so it does not copy their pages."""
    code = ("import gc, os\n"
            "from audionorm_lab.service.pool_memory import freeze_objects_before_each_fork\n"
            "freeze_objects_before_each_fork()\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os._exit(0 if gc.get_freeze_count() > 1000 else 1)\n"
            "print(os.waitpid(pid, 0)[1])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "0", done.stderr


def test_a_job_runs_on_its_pool_process_share_of_the_cores():
    pool_memory.set_pool_size(None)
    assert pool_memory.job_threads() is None  # outside a worker: every core
    pool_memory.set_pool_size(2 * available_cores())
    assert pool_memory.job_threads() == 1
    pool_memory.set_pool_size(1)
    assert pool_memory.job_threads() == available_cores()
    pool_memory.set_pool_size(None)


def test_a_pool_process_holds_few_private_pages_and_gets_its_share_of_the_cores(tmp_path):
    """An idle pool process's private pages are what forking cost: 10 MB here with the objects frozen, 29 MB without
    (the first collection in the child wrote to every object's header). The bound is generous; the figure is
    deterministic (no job has run)."""
    src = make_sample(4.0, "mp3", out=tmp_path, speech="builtin")
    with Service(None, tmp_path / "service", concurrency=2) as service:
        pools = service.pool_pids()
        assert len(pools) == 2
        for pid in pools:
            assert private_dirty_bytes(pid) < 20 * 2**20, pid
        outcome = service.submit(src, tmp_path / "out.flac", "streaming")
    assert outcome["status"] == "SUCCESS", outcome
    assert outcome["report"]["workers"] == max(1, available_cores() // 2)
