"""The Celery task on a real Redis and a real prefork worker; the OOM kill reproduced and survived."""

import psutil
import pytest
import soundfile as sf
from billiard.exceptions import WorkerLostError

from audionorm_lab import integrated_loudness
from bench.service_repro import Service
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
    old = service.submit(five_minutes, tmp_path / "old.wav", "full-load")
    assert old["status"] == "FAILURE" and old["worker_lost"], old
    assert any("exited with 'signal 9 (SIGKILL)'" in line for line in old["log_lines"])
    assert any("WorkerLostError" in line for line in old["log_lines"])
    assert service.kills and service.kills[-1]["rss_bytes"] > LIMIT
    assert not (tmp_path / "old.wav").exists() and leftovers(tmp_path) == []
    new = service.submit(five_minutes, tmp_path / "new.wav", "streaming")
    assert new["status"] == "SUCCESS", new
    assert new["pool_peak_rss_bytes"] < LIMIT and new["worker_alive"] and service.worker.pid == master
    assert abs(new["report"]["loudness_out_lufs"] - new["report"]["target_lufs"]) <= 0.5


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
