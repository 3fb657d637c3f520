"""python -m bench service-repro: the OOM on a real Celery worker, and the same worker finishing with streaming.

    python -m bench service-repro [--file F | --duration 5m] [--memory-limit 2G]

Starts a real ``redis-server`` on a free loopback port and a real
``celery worker --pool prefork --concurrency 1``, both as subprocesses. The pool's
child processes are held to ``--memory-limit`` by the harness's watchdog, the way a
container's OOM killer holds them: a child whose RSS passes the limit gets SIGKILL
mid-task. (Celery's ``--max-memory-per-child`` is not the honest equivalent: it
only replaces a child *after* a task that went over, it never stops one mid-task.)
The job is submitted with the old processor (full-load), then with the new one
(streaming); both outcomes are printed with the worker's log lines. Everything
started is stopped by process id, also on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from data.fetch_samples import make_sample, parse_duration

from .harness import ROOT, _parse_limit
from .measure import default_memory_limit

KILL_LINES = re.compile(r"exited with 'signal 9 \(SIGKILL\)'|WorkerLostError")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen | None, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL the process group; always reaped."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_seconds)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class Service:
    """A Redis server, a prefork Celery worker and a memory watchdog over the worker's children.

    Use as a context manager; ``submit(...)`` sends a job and waits for its outcome.
    """

    def __init__(self, memory_limit_bytes: int, folder: Path, interval_seconds: float = 0.02):
        self.limit, self.folder, self.interval = memory_limit_bytes, Path(folder), interval_seconds
        self.redis = self.worker = None
        self.kills: list[dict] = []
        self.peaks: dict[int, int] = {}  # pool child pid -> peak RSS seen, bytes
        self._stop_watch = threading.Event()

    @property
    def log_path(self) -> Path:
        return self.folder / "worker.log"

    def __enter__(self) -> "Service":
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; ./lab setup does it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        self.url = f"redis://127.0.0.1:{port}/0"
        try:
            self.redis = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--dir", str(self.folder)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self._wait_for_redis(port)
            env = {**os.environ, "AUDIONORM_BROKER_URL": self.url, "PYTHONPATH": str(ROOT)}
            self._log = open(self.log_path, "w")
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "audionorm_lab.service", "worker", "--pool", "prefork",
                 "--concurrency", "1", "--loglevel", "INFO", "--hostname", f"repro-{port}@localhost",
                 "--without-mingle", "--without-gossip"],
                stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True)
            self._wait_for_worker()
            self._watch = threading.Thread(target=self._watchdog, daemon=True)
            self._watch.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for_redis(self, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def _wait_for_worker(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log_path.read_text()[-500:]}")
            if " ready." in self.log_path.read_text():
                return
            time.sleep(0.1)
        raise RuntimeError("celery worker did not become ready")

    def _watchdog(self) -> None:
        master = psutil.Process(self.worker.pid)
        while not self._stop_watch.wait(self.interval):
            try:
                children = master.children(recursive=False)
            except psutil.Error:
                return
            for child in children:
                try:
                    tree = [child, *child.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree)
                except psutil.Error:
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)
                if rss > self.limit:
                    for p in tree:
                        try:
                            p.send_signal(signal.SIGKILL)
                        except psutil.Error:
                            pass
                    self.kills.append({"pid": child.pid, "rss_bytes": rss, "limit_bytes": self.limit})

    def pool_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.worker.pid).children()]

    def submit(self, input_file, output_file, mode: str, timeout: float = 600.0, **kwargs) -> dict:
        """Send one job and wait; the outcome with the worker log lines it produced."""
        from audionorm_lab.service import app, normalize_audio

        app.conf.broker_url = app.conf.result_backend = self.url
        log_start = self.log_path.stat().st_size
        pids_before = self.pool_pids()
        started = time.perf_counter()
        result = normalize_audio.apply_async(args=[str(input_file), str(output_file)],
                                             kwargs={"mode": mode, **kwargs})
        outcome = {"mode": mode, "task_id": result.id}
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
        outcome["worker_alive"] = self.worker.poll() is None
        return outcome

    def __exit__(self, *exc) -> None:
        self._stop_watch.set()
        _stop(self.worker)
        _stop(self.redis)
        if getattr(self, "_log", None):
            self._log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench service-repro", description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="input file (default: a generated mp3 of --duration)")
    parser.add_argument("--duration", default="5m")
    parser.add_argument("--memory-limit", help="e.g. 2G, 300M; default min(4 GB, half the free memory)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)
    limit = _parse_limit(args.memory_limit) or default_memory_limit()
    src = args.file or make_sample(parse_duration(args.duration), "mp3",
                                   log=lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="audionorm-service-") as scratch:
        folder = Path(scratch)
        with Service(limit, folder) as service:
            outcomes = [service.submit(src, folder / "old.wav", "full-load"),
                        service.submit(src, folder / "new.wav", "streaming")]
            outcomes[-1]["output_exists"] = (folder / "new.wav").exists()
    if args.json:
        print(json.dumps(outcomes, indent=2, default=str))
        return 0
    print(f"memory limit on each pool process: {limit / 1e6:.0f} MB; input {src}")
    for outcome in outcomes:
        print(f"\n== {outcome['mode']}: {outcome['status']} in {outcome['wall_seconds']:.1f} s, pool process peak "
              f"RSS {outcome['pool_peak_rss_bytes'] / 1e6:.0f} MB")
        if outcome["status"] == "FAILURE":
            print(f"client: {outcome['error_type']}: {outcome['error']}")
        else:
            report = outcome["report"]
            print(f"client: {report['strategy']}, {report['input_seconds']:.0f} s, "
                  f"{report['loudness_out_lufs']:.2f} LUFS out, {report['chunks']} chunks")
        for line in outcome["log_lines"]:
            print(f"worker log: {line}")
    return 0
