"""python -m bench service-repro: the OOM on a real Celery worker, and the same worker finishing with streaming.

    python -m bench service-repro [--file F | --duration 5m] [--memory-limit auto|2G] [--json]

Starts a real ``redis-server`` on a free loopback port and a real
``celery worker --pool prefork --concurrency 1``, both as subprocesses. The whole worker,
its main process, its pool process and their ffmpeg children, runs in one memory
container (a memory cgroup, :mod:`bench.measuring.container`), as a container runtime puts it, and
the kernel's OOM killer does the killing at its limit: it picks the pool process that
grew, mid-task. (Celery's ``--max-memory-per-child`` is not the honest equivalent: it
only replaces a child *after* a task that went over, it never stops one mid-task.)
Where no cgroup can be made, the harness's watchdog holds the limit over the worker's
process tree instead, and every outcome says which (``limit_enforced_by``).

With ``--memory-limit auto`` (the default) the limit comes from this machine
(:mod:`bench.measuring.kill_limit`): the job first runs once with streaming and no limit, which
measures what streaming needs of the worker's container on this file (the anonymous
memory the kernel charged at its peak); the limit is the geometric mean of that and
full-load's predicted need (the idle worker plus the in-memory model's pool process),
with a margin of at least 1.5x on both sides, so the old processor dies and the new one
survives wherever this runs. Then three cases are submitted under that limit, and their
outcomes printed with the worker's log lines and the kernel's:

- ``as it was``: the old processor (full-load) under the old delivery policy
  (``on_worker_lost="fail"``): the pool process is killed and the client gets the
  bare ``WorkerLostError`` story;
- ``streaming``: the new processor on the same worker;
- ``full-load, redelivered``: the old processor under the new policy: killed on
  its first delivery, finished by the streaming processor on the second.

Each outcome's ``pool_peak_rss_bytes`` is the largest pool process RSS seen while
that job ran; ``worker_charged_peak_bytes`` what the kernel charged the worker's
container meanwhile (``worker_anon_at_peak_bytes`` of it anonymous), and ``oom_kills``
the kernel's kills in it, with its log lines (``kernel_log``) where readable.
Everything started is stopped by process id, also on errors.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from audionorm_lab import probe
from data.fetch_samples import make_sample, parse_duration

from .celery_cluster import CeleryWorker, client_app, send_job
from .redis_server import RedisServer
from ..measuring.kill_limit import NoRoomForLimit, between, worker_full_load_predicted_bytes
from ..measuring.measure import parse_limit

KILL_LINES = re.compile(r"exited with 'signal 9 \(SIGKILL\)'|WorkerLostError")


class Service:
    """A Redis server and a prefork Celery worker in a memory container of ``memory_limit_bytes`` (None: one that
    only counts).

    Use as a context manager; ``submit(...)`` sends a job and waits for its outcome.
    ``concurrency`` pool processes; ``env`` goes to the worker (``AUDIONORM_VISIBILITY_TIMEOUT``...).
    """

    def __init__(self, memory_limit_bytes: int | None, folder: Path, interval_seconds: float = 0.02,
                 concurrency: int = 1, env: dict | None = None):
        self.limit, self.folder = memory_limit_bytes, Path(folder)
        self.redis = RedisServer(self.folder)
        self.url = self.redis.url
        self.worker = CeleryWorker(self.url, self.folder, f"repro-{self.redis.port}", concurrency=concurrency,
                                   memory_limit_bytes=memory_limit_bytes, env=env, interval_seconds=interval_seconds)

    @property
    def log_path(self) -> Path:
        return self.worker.log_path

    @property
    def kills(self) -> list[dict]:
        return self.worker.kills

    @property
    def peaks(self) -> dict[int, int]:
        return self.worker.child_peaks

    def hold_to(self, memory_limit_bytes: int | None) -> None:
        """Hold the worker to ``memory_limit_bytes`` from now on (None: no limit)."""
        self.limit = memory_limit_bytes
        self.worker.set_memory_limit(memory_limit_bytes)

    def oom_kills(self) -> int | None:
        """The kernel's OOM kills in the worker's container so far (None where no cgroup could be made)."""
        charge = self.worker.charge()
        return charge.oom_kills if charge else None

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

        from audionorm_lab.service.delivery import DeliveryLedger

        return DeliveryLedger(redis.Redis.from_url(self.url))

    def submit(self, input_file, output_file, mode: str, timeout: float = 600.0, case: str | None = None,
               **kwargs) -> dict:
        """Send one job and wait; the outcome with the worker log lines it produced.

        ``kwargs`` go to the task (``on_worker_lost``, ``max_deliveries``...); ``case`` names the outcome.
        """
        log_start = self.log_path.stat().st_size
        kills_before = self.oom_kills() or 0
        self.worker.start_window()
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
        outcome["pool_peak_rss_bytes"] = max(self.worker.window_peaks.values(), default=0)
        outcome["worker_main_rss_bytes"] = self.worker.main_peak_bytes
        outcome["memory_limit_bytes"] = self.limit
        outcome["worker_alive"] = self.worker.alive()
        outcome.update(self._charged(kills_before))
        return outcome

    def _charged(self, kills_before: int) -> dict:
        """What the kernel charged the worker's container while the job ran, and its kills then."""
        charge = self.worker.charge()
        kernel_kills = charge.oom_kills - kills_before if charge else None
        return {"limit_enforced_by": self.worker.limit_enforced_by, "oom_kills": kernel_kills,
                "worker_charged_peak_bytes": charge.peak_bytes if charge else None,
                "worker_anon_at_peak_bytes": charge.anon_bytes if charge else None,
                "kernel_log": self.worker.container.kernel_log()[-kernel_kills:] if kernel_kills else []}

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        self.redis.stop()


def reproduce(src: Path, folder: Path, memory_limit_bytes: int | None = None) -> dict:
    """The three cases on one worker (see the module docstring); ``memory_limit_bytes`` None derives the limit.

    Returns ``{"limit": {...}, "calibration": outcome or None, "outcomes": [as it was, streaming, redelivered]}``;
    ``limit`` is :meth:`~bench.measuring.kill_limit.KillLimit.to_dict` with ``"chosen": "derived"``, or ``{"limit_bytes": N,
    "chosen": "given"}``.
    """
    calibration = None
    with Service(memory_limit_bytes, folder) as service:
        if memory_limit_bytes is None:
            idle = service.worker.memory_now()
            calibration = service.submit(src, folder / "calibration.wav", "streaming",
                                         case="streaming, no limit (measures streaming's peak on this file)")
            if calibration["status"] != "SUCCESS":
                raise RuntimeError(f"streaming failed on {src} without a limit: {calibration.get('error')}")
            info = probe(src)
            chosen = between(streaming_need_bytes(calibration),
                             worker_full_load_predicted_bytes(idle, info.duration_seconds, info.sample_rate,
                                                              info.channels))
            limit = {**chosen.to_dict(), "chosen": "derived", "why": chosen.explain(
                "what streaming needed of the worker's container (the anonymous memory the kernel charged at its peak)"
                if calibration["worker_anon_at_peak_bytes"] else "the RSS of the worker's main and pool processes",
                f"full-load's predicted need ({{}} MB: the idle worker, {idle / 1e6:.0f} MB, and a pool process by the "
                "service's in-memory model)")}
            service.hold_to(chosen.limit_bytes)
        else:
            limit = {"limit_bytes": memory_limit_bytes, "chosen": "given"}
        cases = [("old.wav", "full-load", "as it was", {"on_worker_lost": "fail"}),
                 ("new.wav", "streaming", "streaming", {}),
                 ("redelivered.wav", "full-load", "full-load, redelivered", {})]
        outcomes = []
        for name, mode, case, kwargs in cases:
            outcome = service.submit(src, folder / name, mode, case=case, **kwargs)
            outcome["output_exists"] = (folder / name).exists()
            outcomes.append(outcome)
    return {"limit": limit, "calibration": calibration, "outcomes": outcomes}


def streaming_need_bytes(outcome: dict) -> int:
    """What a streaming job needed of its worker's container, bytes: the anonymous memory charged at its peak
    (the page cache of its output is reclaimed before anyone is killed); without a cgroup, the RSS of the main
    process and the job's pool process."""
    if outcome.get("worker_anon_at_peak_bytes"):
        return outcome["worker_anon_at_peak_bytes"]
    return outcome["worker_main_rss_bytes"] + outcome["pool_peak_rss_bytes"]


def print_outcomes(result: dict, src: Path) -> None:
    limit = result["limit"]
    print(f"memory limit of the worker's container: {limit['limit_bytes'] / 1e6:.0f} MB ({limit['chosen']}, held by "
          f"{result['outcomes'][0]['limit_enforced_by']}); input {src}")
    if limit.get("why"):
        print(limit["why"].replace("**", ""))
    for outcome in result["outcomes"]:
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
        for line in outcome["kernel_log"]:
            print(f"kernel: {line}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench service-repro", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="input file (default: a generated mp3 of --duration)")
    parser.add_argument("--duration", default="5m", help="length of the generated mp3 (default 5m)")
    parser.add_argument("--memory-limit", default="auto",
                        help="e.g. 2G, 300M, or auto: between streaming's measured and full-load's predicted peak "
                             "(default auto)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)
    limit = None if args.memory_limit == "auto" else parse_limit(args.memory_limit)
    src = args.file or make_sample(parse_duration(args.duration), "mp3",
                                   log=lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="audionorm-service-") as scratch:
        try:
            result = reproduce(src, Path(scratch), limit)
        except NoRoomForLimit as exc:
            print(f"service-repro: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_outcomes(result, src)
    return 0
