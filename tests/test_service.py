"""The Celery task on a real Redis and a real prefork worker; the OOM kill reproduced and survived."""

import os
import signal
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest
import soundfile as sf
from billiard.exceptions import WorkerLostError

from audionorm_lab import integrated_loudness
from audionorm_lab.media.sinks import partial_outputs
from bench.measuring.container import WATCHDOG
from bench.cluster.service_repro import Service
from conftest import leftovers
from data.fetch_samples import make_sample

LIMIT = 400 * 10**6  # full-load on 5 minutes passes it; a short file in memory and streaming do not


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("service")
    with Service(LIMIT, folder) as running:
        pids = (running.redis.pid, running.worker.pid)
        yield running
    for pid in pids:  # stopped by process id, and reaped
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(scope="module")
def five_minutes(tmp_path_factory):
    return make_sample(300.0, "mp3", out=tmp_path_factory.mktemp("samples"), speech="builtin")


def test_a_short_file_end_to_end(service, tmp_path):
    src = make_sample(8.0, "mp3", out=tmp_path, speech="builtin")
    out = tmp_path / "out.flac"
    outcome = service.submit(src, out, "auto")
    assert outcome["status"] == "SUCCESS", outcome
    assert outcome["report"]["output_path"] == str(out)
    assert abs(integrated_loudness(out) - outcome["report"]["target_lufs"]) <= 0.5
    assert sf.info(out).frames == outcome["report"]["output_frames"]


def test_full_load_kills_the_worker_and_streaming_survives_on_the_same_worker(service, five_minutes, tmp_path):
    master = service.worker.pid
    old = service.submit(five_minutes, tmp_path / "old.wav", "full-load", on_worker_lost="fail")
    assert old["status"] == "FAILURE" and old["worker_lost"], old
    assert any("exited with 'signal 9 (SIGKILL)'" in line for line in old["log_lines"])
    assert any("WorkerLostError" in line for line in old["log_lines"])
    if old["limit_enforced_by"] == WATCHDOG:  # no cgroup here: the watchdog killed the pool process
        assert service.kills and service.kills[-1]["rss_bytes"] > LIMIT
    else:  # the kernel's OOM killer, in the worker's memory cgroup, chose the pool process
        assert old["oom_kills"] == 1 and any("Killed process" in line for line in old["kernel_log"]), old
    assert not (tmp_path / "old.wav").exists() and leftovers(tmp_path) == []
    new = service.submit(five_minutes, tmp_path / "new.wav", "streaming")
    assert new["status"] == "SUCCESS", new
    assert new["pool_peak_rss_bytes"] < LIMIT and new["worker_alive"] and service.worker.pid == master
    assert not new["oom_kills"] and (new["worker_charged_peak_bytes"] or 0) <= LIMIT
    assert abs(new["report"]["loudness_out_lufs"] - new["report"]["target_lufs"]) <= 0.5


def test_the_oom_killer_takes_a_pool_process_before_the_main_process(service):
    """Each pool process raised its own oom_score_adj when it started; the main process kept the one it was given."""
    def score(pid):
        return int(open(f"/proc/{pid}/oom_score_adj").read())

    main, pools = score(service.worker.pid), [score(pid) for pid in service.pool_pids()]
    assert pools and all(adj == min(1000, main + 500) for adj in pools), (main, pools)


def test_the_error_class_is_a_worker_lost_error():
    from audionorm_lab.service import JobKilledWorkerError

    assert issubclass(JobKilledWorkerError, WorkerLostError)


@pytest.mark.parametrize("kind", ["missing", "not-audio"])
def test_bad_input_fails_the_task_not_the_worker(service, tmp_path, kind):
    src = tmp_path / "input.wav"
    if kind == "not-audio":
        src.write_text("minutes of the meeting, not audio\n" * 10)
    pool = service.pool_pids()
    outcome = service.submit(src, tmp_path / "out.wav", "auto")
    assert outcome["status"] == "FAILURE" and not outcome.get("worker_lost")
    assert outcome["error_type"] in ("InputNotFoundError", "NotAudioError")
    assert ("no such file" if kind == "missing" else "not an audio file") in outcome["error"]
    assert outcome["log_lines"] == [] and service.pool_pids() == pool, "the pool process survived"
    assert not (tmp_path / "out.wav").exists()


def _wait_for_run(ledger, task_id, count: int, timeout: float = 60.0) -> dict:
    """The ``count``-th run start of ``task_id`` in the ledger, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = [r for r in ledger.runs(task_id) if r["event"] == "start"]
        if len(starts) >= count:
            return starts[count - 1]
        time.sleep(0.02)
    raise AssertionError(f"run {count} of {task_id} did not start: {ledger.runs(task_id)}")


def _kill_when_writing(output: Path, pid: int, timeout: float = 60.0) -> str:
    """SIGKILL ``pid`` once its temporary output exists, as the OOM killer would mid-job; the temporary's name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = partial_outputs(output)
        if parts:
            os.kill(pid, signal.SIGKILL)
            return str(parts[0])
        time.sleep(0.01)
    raise AssertionError(f"no temporary output for {output}")


def test_a_job_whose_worker_was_killed_is_finished_by_streaming(service, five_minutes, tmp_path):
    out = tmp_path / "out.wav"
    result = service.send(five_minutes, out, "auto", chunk_threshold_bytes=0, options={"workers": 1})
    ledger = service.ledger()
    first = _wait_for_run(ledger, result.id, 1)
    part = _kill_when_writing(out, first["pid"])
    report = result.get(timeout=300)
    delivery = report["delivery"]
    assert delivery["delivery"] == 2 and delivery["mode_requested"] == "auto" and delivery["mode"] == "streaming"
    assert "1 earlier delivery lost its worker" in delivery["mode_changed_because"]
    assert delivery["partial_outputs_removed"] == [part]
    assert leftovers(tmp_path) == [] and sf.info(out).frames == report["input_frames"]
    assert abs(integrated_loudness(out) - report["target_lufs"]) <= 0.5
    assert ledger.deliveries(result.id) == 2


def test_a_job_killed_on_every_delivery_fails_naming_its_attempts(service, five_minutes, tmp_path):
    out = tmp_path / "out.wav"
    result = service.send(five_minutes, out, "streaming", max_deliveries=2, options={"workers": 1})
    ledger = service.ledger()
    pids = [_wait_for_run(ledger, result.id, n)["pid"] for n in (1,)]
    _kill_when_writing(out, pids[0])
    pids.append(_wait_for_run(ledger, result.id, 2)["pid"])
    _kill_when_writing(out, pids[1])
    with pytest.raises(WorkerLostError) as failure:
        result.get(timeout=120)
    message = str(failure.value)
    assert type(failure.value).__name__ == "JobKilledWorkerError" and result.id in message
    assert "lost its worker on 2 deliveries" in message and all(f"pid {pid}" in message for pid in pids)
    assert not out.exists() and leftovers(tmp_path) == []
    assert [r["event"] for r in ledger.runs(result.id)] == ["start", "start", "refused"]


@contextmanager
def _stopped(ledger, task_id: str, pid: int):
    """The pool process ``pid`` running ``task_id`` held still (SIGSTOP) until the block ends (SIGCONT): a job that
    runs as long as the test needs, however fast the machine. It still holds its message and its run lock."""
    os.kill(pid, signal.SIGSTOP)
    try:
        assert [r["event"] for r in ledger.runs(task_id)] == ["start"], "the job ended before it could be held"
        yield
    finally:
        with suppress(ProcessLookupError):  # killed meanwhile
            os.kill(pid, signal.SIGCONT)


def _wait_for_event(ledger, task_id, event: str, timeout: float = 60.0) -> dict:
    """The first ``event`` record of ``task_id`` in the ledger, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in ledger.runs(task_id) if r["event"] == event]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no {event} record of {task_id}: {ledger.runs(task_id)}")


def test_a_long_job_past_the_visibility_timeout_is_not_run_twice_at_once(tmp_path, five_minutes):
    """The Redis transport restores the unacknowledged message after 1 s while the job still runs (held still
    until then, so on any machine); the restored copy finds the run lock held and waits; the job runs once."""
    env = {"AUDIONORM_VISIBILITY_TIMEOUT": "1", "AUDIONORM_RESTORE_INTERVAL": "0.5"}
    with Service(LIMIT, tmp_path / "service", concurrency=2, env=env) as short_timeout:
        out = tmp_path / "out.wav"
        result = short_timeout.send(five_minutes, out, "streaming", options={"workers": 1})
        ledger = short_timeout.ledger()
        with _stopped(ledger, result.id, _wait_for_run(ledger, result.id, 1)["pid"]):
            _wait_for_event(ledger, result.id, "busy")
        report = result.get(timeout=300)
        runs = ledger.runs(result.id)
    starts = [r for r in runs if r["event"] == "start"]
    ends = [r for r in runs if r["event"] == "end"]
    busy = [r for r in runs if r["event"] == "busy"]
    assert len(starts) == 1 and len(ends) == 1 and ends[0]["outcome"] == "success", runs
    assert busy and all(starts[0]["time"] < b["time"] < ends[0]["time"] for b in busy), runs
    assert all(b["pid"] != starts[0]["pid"] for b in busy), "the copy was delivered to the other pool process"
    assert report["delivery"]["delivery"] == 1 and sf.info(out).frames == report["input_frames"]


def test_a_restore_pass_cut_short_holds_a_cold_shutdowns_job_back_only_until_its_lock_expires(tmp_path, five_minutes):
    """kombu's restore pass takes a lock in Redis (``unacked_mutex``, SET NX PX). A worker killed in the middle of
    a pass, or a broker restart during one, leaves it behind, and nothing is restored until it expires (kombu's
    default: 300 s). Here a cold shutdown kills the worker running a job and such a lock is left; the job's message
    comes back once the lock expires (AUDIONORM_RESTORE_MUTEX_EXPIRE, 8 s here), not before, and is finished."""
    import redis

    from bench.cluster.celery_cluster import CeleryWorker

    expire = 8.0
    env = {"AUDIONORM_VISIBILITY_TIMEOUT": "2", "AUDIONORM_RESTORE_INTERVAL": "0.5",
           "AUDIONORM_RESTORE_MUTEX_EXPIRE": str(expire)}
    with Service(LIMIT, tmp_path / "service", env=env) as service:
        out = tmp_path / "out.wav"
        result = service.send(five_minutes, out, "streaming", options={"workers": 1})
        ledger = service.ledger()
        with _stopped(ledger, result.id, _wait_for_run(ledger, result.id, 1)["pid"]):  # still running when killed
            service.worker.cold_shutdown()  # its main process too: the message stays unacknowledged
        left_at = time.time()
        assert redis.Redis.from_url(service.url).set("unacked_mutex", "a-killed-restore-pass", nx=True,
                                                     px=int(expire * 1000))
        replacement = CeleryWorker(service.url, tmp_path / "service", "replacement", env=env).start()
        try:
            report = result.get(timeout=120)
            restored = _wait_for_run(ledger, result.id, 2)
        finally:
            replacement.stop()
    waited = restored["time"] - left_at
    print(f"restored {waited:.1f} s after the cold shutdown left the lock ({expire:g} s)")
    # not before the lock expires; and long before kombu's default would let it (300 s: result.get's 120 s ends first)
    assert waited >= expire - 0.5, f"restored {waited:.1f} s after the lock was left"
    assert report["delivery"]["delivery"] == 2 and sf.info(out).frames == report["input_frames"]
    assert leftovers(tmp_path) == []


def test_a_streamed_job_reports_its_progress_at_most_once_a_second(service, five_minutes, tmp_path):
    """Celery's custom PROGRESS state, as Flower or a client reads it: the pass and the fraction done, at most once
    a second. Celery's Redis backend publishes every state it stores on the task's key, so a subscriber made before
    the job is sent sees every update in order, however fast the job runs: the test counts no updates, it checks
    each one against the one before."""
    import uuid

    import redis

    task_id = str(uuid.uuid4())
    backend = service.client.backend
    subscriber = redis.Redis.from_url(service.url).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(backend.get_key_for_task(task_id))
    try:
        result = service.client.send_task("audionorm.normalize_audio", args=[str(five_minutes), str(tmp_path / "o.wav")],
                                          kwargs={"mode": "streaming"}, task_id=task_id)
        assert result.get(timeout=300)["output_frames"] > 0
        states = _states_until_ready(subscriber, backend)
    finally:
        subscriber.close()
    assert states[-1]["status"] == "SUCCESS" and {s["status"] for s in states[:-1]} == {"PROGRESS"}, states
    updates = [s["result"] for s in states[:-1]]  # the final state comes after every update
    order = ("profile", "measure", "apply")
    assert [order.index(u["pass"]) for u in updates] == sorted(order.index(u["pass"]) for u in updates), updates
    for update in updates:
        assert update["frames_expected"] > 0 and 0.0 <= update["fraction"] <= 1.0, update
        assert set(update["passes"]) <= set(order) and update["pass"] in update["passes"], update
    for earlier, later in zip(updates, updates[1:]):
        assert later["time"] - earlier["time"] >= 0.99, (earlier, later)  # at most one update a second
        assert all(later["passes"][name] >= fraction for name, fraction in earlier["passes"].items()), (earlier, later)
        if later["pass"] == earlier["pass"]:
            assert later["frames_done"] >= earlier["frames_done"], (earlier, later)


def _states_until_ready(subscriber, backend, timeout: float = 60.0) -> list[dict]:
    """The task states published on ``subscriber``'s channel, up to and including the final one."""
    from celery import states

    seen, deadline = [], time.monotonic() + timeout
    while not seen or seen[-1]["status"] not in states.READY_STATES:
        assert time.monotonic() < deadline, f"no final state published: {seen}"
        message = subscriber.get_message(timeout=1.0)
        if message is not None:
            seen.append(backend.decode_result(message["data"]))
    return seen


def test_a_copy_of_a_job_that_ran_to_the_end_returns_its_result_and_does_not_run_again(service, tmp_path):
    """Celery stores a task's result and acknowledges its message only after the task returns: a worker lost in
    between (a cold shutdown just as the job ends, met in a load run) sends the message round again. Here the stored
    result is deleted, as if it had never been stored, and the same task is sent again: the copy returns the result
    the run recorded with its end, the output is not written again, and the ledger shows one run."""
    import redis

    src = make_sample(8.0, "mp3", out=tmp_path, speech="builtin")
    out = tmp_path / "out.flac"
    first = service.send(src, out, "auto")
    report = first.get(timeout=120)
    written = out.stat().st_mtime_ns
    redis.Redis.from_url(service.url).delete(f"celery-task-meta-{first.id}")
    again = service.client.send_task("audionorm.normalize_audio", args=[str(src), str(out)], kwargs={"mode": "auto"},
                                     task_id=first.id)
    assert again.get(timeout=120) == report
    assert [r["event"] for r in service.ledger().runs(first.id)] == ["start", "end"]
    assert out.stat().st_mtime_ns == written and leftovers(tmp_path) == []
