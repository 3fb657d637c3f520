"""python -m bench service-repro: the OOM on a real Celery worker, and the same worker finishing with streaming.

    python -m bench service-repro [--file F | --duration 5m] [--memory-limit 2G]

Starts a real ``redis-server`` on a free loopback port and a real
``celery worker --pool prefork --concurrency 1``, both as subprocesses. The pool's
child processes are held to ``--memory-limit`` by the harness's watchdog, the way a
container's OOM killer holds them: a child whose RSS passes the limit gets SIGKILL
mid-task. (Celery's ``--max-memory-per-child`` is not the honest equivalent: it
only replaces a child *after* a task that went over, it never stops one mid-task.)
Three cases are submitted, and their outcomes printed with the worker's log lines:

- ``as it was``: the old processor (full-load) under the old delivery policy
  (``on_worker_lost="fail"``): the pool process is killed and the client gets the
  bare ``WorkerLostError`` story;
- ``streaming``: the new processor on the same worker;
- ``full-load, redelivered``: the old processor under the new policy: killed on
  its first delivery, finished by the streaming processor on the second. Everything
started is stopped by process id, also on errors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from data.fetch_samples import make_sample, parse_duration

from .celery_cluster import CeleryWorker, RedisServer, client_app, send_job
from .harness import parse_limit
from .measure import default_memory_limit

KILL_LINES = re.compile(r"exited with 'signal 9 \(SIGKILL\)'|WorkerLostError")


class Service:
    """A Redis server, a prefork Celery worker and a memory watchdog over the worker's children.

    Use as a context manager; ``submit(...)`` sends a job and waits for its outcome.
    ``concurrency`` pool processes; ``env`` goes to the worker (``AUDIONORM_VISIBILITY_TIMEOUT``...).
    """

    def __init__(self, memory_limit_bytes: int, folder: Path, interval_seconds: float = 0.02, concurrency: int = 1,
                 env: dict | None = None):
        self.limit, self.folder = memory_limit_bytes, Path(folder)
        self.redis = RedisServer(self.folder)
        self.url = self.redis.url
        self.worker = CeleryWorker(self.url, self.folder, f"repro-{self.redis.port}", concurrency=concurrency,
                                   child_limit_bytes=memory_limit_bytes, env=env, interval_seconds=interval_seconds)

    @property
    def log_path(self) -> Path:
        return self.worker.log_path

    @property
    def kills(self) -> list[dict]:
        return self.worker.kills

    @property
    def peaks(self) -> dict[int, int]:
        return self.worker.child_peaks

    def __enter__(self) -> Service:
        self.client = client_app(self.url)
        try:
            self.redis.start()
            self.worker.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def pool_pids(self) -> list[int]:
        return self.worker.pool_pids()

    def send(self, input_file, output_file, mode: str, **kwargs):
        """Send one job; its ``AsyncResult``. ``kwargs`` go to the task."""
        return send_job(self.client, input_file, output_file, mode, **kwargs)

    def ledger(self):
        """The delivery ledger in this service's Redis."""
        import redis

        from audionorm_lab.delivery import DeliveryLedger

        return DeliveryLedger(redis.Redis.from_url(self.url))

    def submit(self, input_file, output_file, mode: str, timeout: float = 600.0, case: str | None = None,
               **kwargs) -> dict:
        """Send one job and wait; the outcome with the worker log lines it produced.

        ``kwargs`` go to the task (``on_worker_lost``, ``max_deliveries``...); ``case`` names the outcome.
        """
        log_start = self.log_path.stat().st_size
        pids_before = self.pool_pids()
        started = time.perf_counter()
        result = self.send(input_file, output_file, mode, **kwargs)
        outcome = {"case": case or mode, "mode": mode, "task_id": result.id}
        try:
            report = result.get(timeout=timeout, propagate=True)
            outcome.update(status="SUCCESS", report=report)
        except Exception as exc:  # the client's view: WorkerLostError, or the task's own error
            from billiard.exceptions import WorkerLostError

            outcome.update(status="FAILURE", error_type=type(exc).__name__, error=str(exc),
                           worker_lost=isinstance(exc, WorkerLostError))
        outcome["wall_seconds"] = time.perf_counter() - started
        time.sleep(0.5)  # let the master write its lines
        with open(self.log_path) as log:
            log.seek(log_start)
            lines = log.read().splitlines()
        outcome["log_lines"] = [line for line in lines if KILL_LINES.search(line)]
        outcome["pool_peak_rss_bytes"] = max((self.peaks.get(pid, 0) for pid in pids_before), default=0)
        outcome["worker_alive"] = self.worker.alive()
        return outcome

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        self.redis.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench service-repro", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="input file (default: a generated mp3 of --duration)")
    parser.add_argument("--duration", default="5m", help="length of the generated mp3 (default 5m)")
    parser.add_argument("--memory-limit", help="e.g. 2G, 300M; default min(4 GB, half the free memory)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)
    limit = parse_limit(args.memory_limit) or default_memory_limit()
    src = args.file or make_sample(parse_duration(args.duration), "mp3",
                                   log=lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="audionorm-service-") as scratch:
        folder = Path(scratch)
        with Service(limit, folder) as service:
            outcomes = [service.submit(src, folder / "old.wav", "full-load", case="as it was", on_worker_lost="fail"),
                        service.submit(src, folder / "new.wav", "streaming"),
                        service.submit(src, folder / "redelivered.wav", "full-load", case="full-load, redelivered")]
            for outcome, name in zip(outcomes, ("old.wav", "new.wav", "redelivered.wav")):
                outcome["output_exists"] = (folder / name).exists()
    if args.json:
        print(json.dumps(outcomes, indent=2, default=str))
        return 0
    print(f"memory limit on each pool process: {limit / 1e6:.0f} MB; input {src}")
    for outcome in outcomes:
        print(f"\n== {outcome['case']}: {outcome['status']} in {outcome['wall_seconds']:.1f} s, pool process peak "
              f"RSS {outcome['pool_peak_rss_bytes'] / 1e6:.0f} MB")
        if outcome["status"] == "FAILURE":
            print(f"client: {outcome['error_type']}: {outcome['error']}")
        else:
            report = outcome["report"]
            print(f"client: {report['strategy']}, {report['input_seconds']:.0f} s, "
                  f"{report['loudness_out_lufs']:.2f} LUFS out, {report['chunks']} chunks, "
                  f"delivery {report['delivery']['delivery']}")
            if report["delivery"]["mode_changed_because"]:
                print(f"client: mode {report['delivery']['mode_requested']} -> {report['delivery']['mode']}: "
                      f"{report['delivery']['mode_changed_because']}")
        for line in outcome["log_lines"]:
            print(f"worker log: {line}")
    return 0
