"""python -m bench service-load --quick: real Redis, real workers, one fault of each kind; no job lost."""

import json
import subprocess
import sys
from pathlib import Path

import psutil
import soundfile as sf

from bench.faults import FAULT_KINDS
from bench.service_load import ran_concurrently

ROOT = Path(__file__).resolve().parents[1]


def test_quick_load_with_every_fault_loses_no_job(tmp_path):
    out = tmp_path / "load"
    done = subprocess.run([sys.executable, "-m", "bench", "service-load", "--quick", "--out", str(out), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert results == json.loads((out / "results.json").read_text())
    assert results["lost"] == 0 and results["failed"] == 0 and results["partial_outputs"] == 0, results["failures"]
    assert results["ran_more_than_once"] == 0 and results["ran_concurrently"] == 0
    assert results["leftover_temporaries"] == [] and results["bad_inputs_that_succeeded"] == []
    assert results["succeeded"] == results["submitted"] - results["bad_inputs"] > 0
    assert results["failed_as_expected"] == results["bad_inputs"] == 1
    bad = [f for f in results["failures"] if f["expected"]]
    assert bad[0]["error_type"] == "NotAudioError" and "not an audio file" in bad[0]["error"]
    assert all(results["faults_injected"][kind] >= 1 for kind in FAULT_KINDS), results["faults_injected"]
    assert results["redelivered"] >= 1 and results["fault_errors"] == []
    limit = results["parameters"]["child_limit_bytes"]
    assert 0 < results["max_child_rss_bytes"] <= limit and results["watchdog_kills"] == 0
    assert results["max_worker_tree_rss_bytes"] >= results["max_child_rss_bytes"]
    assert results["audio_seconds_per_wall_second"] > 1
    for job in results["jobs"]:
        if job["state"] == "SUCCESS":
            assert job["output_problem"] is None
            assert sf.info(str(out / "outputs" / f"job-{job['job']:03d}.flac")).duration > 0
    # everything it started is stopped: no redis-server on its port, no worker with its broker
    url = results["parameters"]["broker_url"]
    port = url.rsplit(":", 1)[1].split("/")[0]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        assert not ("redis-server" in cmdline and f"--port {port}" in cmdline), cmdline
        try:
            broker = process.environ().get("AUDIONORM_BROKER_URL")
        except psutil.Error:
            continue
        assert broker != url, cmdline


def test_concurrent_runs_are_told_from_runs_after_a_kill():
    start = {"event": "start", "pid": 1, "delivery": 1, "time": 0.0}
    restart = {"event": "start", "pid": 2, "delivery": 2, "time": 5.0}
    end = {"event": "end", "pid": 2, "delivery": 2, "time": 9.0}
    assert ran_concurrently([start, restart, end], kill_times={1: 4.0}) is False
    assert ran_concurrently([start, restart, end], kill_times={1: 6.0}) is True
    first_end = {"event": "end", "pid": 1, "delivery": 1, "time": 4.5}
    assert ran_concurrently([start, first_end, restart, end], kill_times={}) is False
