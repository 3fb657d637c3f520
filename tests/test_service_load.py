"""python -m bench service-load: real Redis, real workers, every fault kind; no job lost, every late job's timeline.
(``--quick`` on RabbitMQ: test_service_load_rabbitmq.py, a file of its own so the two run on both pytest workers.)"""

import json
import subprocess
import sys
from pathlib import Path

import psutil
import soundfile as sf

from bench.cluster.faults import FAULT_KINDS, spare_last_deliveries
from bench.cluster.load_jobs import visibility_timeout_seconds
from bench.cluster.redelivery import ALREADY_REQUEUED, fault_kind, redelivery_latencies
from bench.cluster.service_load import ran_concurrently

ROOT = Path(__file__).resolve().parents[1]


def test_a_soak_with_every_fault_loses_no_job_and_records_every_late_jobs_timeline(tmp_path):
    """``--soak``: jobs fed and faults injected in rounds until the soak's end, then drained. Every fault kind hits
    and no job is lost (:func:`check_no_job_lost`); with ``--late-after 0`` every job counts as late, so every job's
    timeline is checked (:func:`check_timelines`)."""
    out = tmp_path / "soak"
    results = service_load(out, "--soak", "25s", "--late-after", "0", "--durations", "30s", "--jobs", "4",
                           "--fault-every", "2s", "--deadline", "3m")
    check_no_job_lost(results, out, "redis")
    assert results["failed_as_expected"] == results["bad_inputs"] >= 2  # the bad inputs fed among the good ones
    assert sum(results["faults_injected"].values()) >= 6 and results["parameters"]["soak_seconds"] == 25.0
    check_timelines(results)


def service_load(out: Path, *args: str) -> dict:
    """``python -m bench service-load ARGS --out OUT --json``: its results, the same as its ``results.json``."""
    done = subprocess.run([sys.executable, "-m", "bench", "service-load", *args, "--out", str(out), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert results == json.loads((out / "results.json").read_text())
    return results


def cut_short_by(results: dict, kind: str) -> list[tuple[float, float, float]]:
    """(earliest the run's message can have been delivered, fault, the job's next start) for each run a fault of
    ``kind`` killed (its process among the fault's pids), from the jobs' run records and the fault log, times in
    seconds since the epoch. A message is delivered after it was published and after its job's previous run
    started (a redelivery follows that run), but may wait in the worker's prefetch before its own run starts."""
    found = []
    for fault in (f for f in results["faults"] if f["kind"] == kind):
        for job in results["jobs"]:
            starts = [run for run in job["runs"] if run["event"] == "start"]
            for before, run, after in zip([None] + starts, starts, starts[1:]):
                if run["pid"] in fault["pids_killed"] and run["time"] <= fault["time"] <= after["time"]:
                    delivered_after = job["submitted"] if before is None else max(job["submitted"], before["time"])
                    found.append((delivered_after, fault["time"], after["time"]))
    return found


def held_through_the_fault(results: dict, cut: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """The runs of ``cut`` (:func:`cut_short_by`) whose message no broker restart put back on the queue between its
    earliest delivery and the fault. At a restart each worker's connection drops and kombu restores the messages it
    held ("Restoring 2 unacknowledged message(s)"), so the fault did not lose those: in one soak, a cold shutdown's
    job ran again 3.3 s after it, on a message restored by the restart 4 s before and delivered again then."""
    restarts = [fault["time"] for fault in results["faults"] if fault["kind"] == "restart-broker"]
    return [run for run in cut if not any(run[0] <= restart <= run[1] for restart in restarts)]


def check_no_job_lost(results: dict, out: Path, broker: str) -> None:
    """A load run with every fault kind: every job finished, checked; each fault injected; nothing left."""
    assert results["lost"] == 0 and results["failed"] == 0 and results["partial_outputs"] == 0, results["failures"]
    assert results["ran_more_than_once"] == 0 and results["ran_concurrently"] == 0
    assert results["leftover_temporaries"] == [] and results["bad_inputs_that_succeeded"] == []
    assert results["succeeded"] == results["submitted"] - results["bad_inputs"] > 0
    assert results["failed_as_expected"] == results["bad_inputs"] >= 1
    bad = [f for f in results["failures"] if f["expected"]]
    assert bad[0]["error_type"] == "NotAudioError" and "not an audio file" in bad[0]["error"]
    assert all(results["faults_injected"][kind] >= 1 for kind in FAULT_KINDS), results["faults_injected"]
    assert results["redelivered"] >= 1 and results["fault_errors"] == []
    assert results["parameters"]["broker"] == broker and results["redelivery_latency"]
    if broker == "rabbitmq":  # the jobs went through a durable quorum queue
        assert results["parameters"]["broker_state_at_end"]["queues"]["audionorm"] == {"type": "quorum",
                                                                                         "durable": True}
    for label, latency in results["redelivery_latency"].items():
        # redeliveries after their faults, within the run: figures in order, none longer than the run itself
        assert fault_kind(label) in FAULT_KINDS and latency["count"] >= 1, (label, latency)
        assert (0 < latency["median_seconds"] <= latency["p95_seconds"] <= latency["max_seconds"]
                < results["wall_seconds"]), (label, latency)
    # what each broker does with the job of a worker lost with its pool: Redis gives it back only once its
    # visibility timeout has passed; RabbitMQ as soon as the worker's connection closes
    # (from the raw timeline: each run the cold shutdown killed, and that job's next start)
    cut = cut_short_by(results, "cold-shutdown")
    assert cut, results["faults"]
    if broker == "redis":  # its timeout runs from the message's delivery, which came after the bound cut_short_by gives
        timeout = results["parameters"]["visibility_timeout_seconds"]
        held = held_through_the_fault(results, cut)
        assert all(restarted - delivered_after >= timeout - 1.0
                   for delivered_after, _, restarted in held), (timeout, held, cut)
    else:  # back at once: the first of them runs again well before Redis's timeout would have let it
        assert results["parameters"]["visibility_timeout_seconds"] is None
        longest = max(job["input_seconds"] or 0.0 for job in results["jobs"])
        assert min(restarted - fault for _, fault, restarted in cut) < visibility_timeout_seconds(longest) / 2, cut
    # each worker ran in its container of --memory-limit, and nothing was killed for memory
    assert results["parameters"]["memory_limit_bytes"] == 1200 * 10**6
    assert results["limit_enforced_by"] in ("kernel memcg v1", "kernel memcg v2", "watchdog")
    assert results["oom_kills"] == 0 and results["watchdog_kills"] == 0, results["kills"]
    for job in results["jobs"]:
        if job["state"] == "SUCCESS":
            assert job["output_problem"] is None
            assert sf.info(str(out / "outputs" / f"job-{job['job']:03d}.flac")).duration > 0
    # everything it started is stopped: no broker on its port, no worker with its broker
    url = results["parameters"]["broker_url"]
    port = url.rsplit(":", 1)[1].split("/")[0]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        assert not ("redis-server" in cmdline and f"--port {port}" in cmdline), cmdline
        assert not ("beam.smp" in cmdline and f"audionorm-{port}@" in cmdline), cmdline
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


def test_a_redelivery_is_timed_from_the_fault_that_hit_its_run():
    """The fault's time is taken before it acts, so a run may start just after it and still be the one it hit."""
    frozen = {"time": 9.99, "kind": "vanish-host", "pids_killed": [], "pids_frozen": [7]}
    broker = {"time": 20.0, "kind": "restart-broker", "pids_killed": []}
    runs = {0: [{"event": "start", "pid": 7, "time": 10.0}, {"event": "start", "pid": 8, "time": 40.0},
                {"event": "end", "pid": 8, "time": 45.0}],
            1: [{"event": "start", "pid": 5, "time": 1.0}, {"event": "start", "pid": 6, "time": 22.0}],
            2: [{"event": "start", "pid": 3, "time": 1.0}, {"event": "start", "pid": 4, "time": 5.0}]}
    latencies = redelivery_latencies(runs, [frozen, broker])
    assert latencies["vanish-host"] == [40.0 - 9.99]
    assert latencies["restart-broker"] == [2.0]  # no fault hit its process: the last fault in between
    assert latencies["watchdog kill"] == [4.0]  # no fault at all: the harness's watchdog killed it
    # a copy found the run going (the broker had given the message back) and was retried; then a fault hit the run
    requeued = {0: [{"event": "start", "pid": 7, "time": 1.0}, {"event": "busy", "pid": 9, "time": 3.0},
                    {"event": "start", "pid": 8, "time": 60.0}]}
    cold = {"time": 10.0, "kind": "cold-shutdown", "pids_killed": [7]}
    assert redelivery_latencies(requeued, [cold]) == {"cold-shutdown" + ALREADY_REQUEUED: [50.0]}
    assert fault_kind("cold-shutdown" + ALREADY_REQUEUED) == "cold-shutdown"


def test_faults_spare_jobs_on_their_last_delivery():
    """A job whose worker was lost on its third delivery would fail (the policy's guard against poison jobs)."""
    assert spare_last_deliveries({101: 1, 102: 2, 103: 3}) == {101: 1, 102: 2}
    assert spare_last_deliveries({101: 1, 102: 2}, max_deliveries=2) == {101: 1}


def check_timelines(results: dict) -> None:
    """Every job's timeline (a run with ``--late-after 0``): published, its deliveries from the ledger with the fault
    before each, the workers' lines naming it, where the broker holds its message (nowhere, once it ended)."""
    timelines = {t["job"]: t for t in results["timelines"]}
    assert len(timelines) == results["late_or_lost"] == results["submitted"] > 4
    first_end = min(timelines[job["job"]]["finished"] for job in results["jobs"])
    assert any(job["submitted"] > first_end for job in results["jobs"])  # fed as earlier ones finished, at any speed
    faults = results["faults"]
    for job in results["jobs"]:
        t = timelines[job["job"]]
        assert t["task_id"] == job["task_id"] and t["published"] == job["submitted"] < t["finished"]
        # it ended: its message was acknowledged, or its worker was killed between storing the result and the
        # acknowledgement, and kombu holds it unacked until the visibility timeout (a late copy then ends unrun)
        assert t["broker_holds"] in ("nowhere", "unacked") and t["state"] in ("SUCCESS", "FAILURE"), t
        assert any(job["task_id"] in w["line"] and "received" in w["line"] for w in t["worker_log"]), t["worker_log"]
        starts = [r for r in t["ledger"] if r["event"] == "start"]
        assert [d["started"] for d in t["deliveries"]] == [r["time"] for r in starts]
        for d in t["deliveries"]:
            earlier = [f for f in faults if f["time"] <= d["started"]]
            assert (d["fault_before"] or {}).get("time") == (earlier[-1]["time"] if earlier else None)
        if job["state"] == "SUCCESS":
            assert starts, t  # a good job ran at least once (a bad input is refused before its run starts)


def test_redelivery_latencies_are_summarized_by_median_p95_and_max():
    from bench.cluster.redelivery import summarize_latencies

    summary = summarize_latencies({"kill-child": [float(s) for s in range(20, 0, -1)], "kill-main": [7.0]})
    assert summary["kill-child"] == {"count": 20, "median_seconds": 10.5, "p95_seconds": 19.0, "max_seconds": 20.0}
    assert summary["kill-main"] == {"count": 1, "median_seconds": 7.0, "p95_seconds": 7.0, "max_seconds": 7.0}
