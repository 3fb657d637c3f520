"""Real service processes for the harness: prefork ``celery worker``s in memory containers, and a cluster of them
on Redis or RabbitMQ (its Redis: :mod:`bench.cluster.redis_server`).

Each process is started in its own session, so it and its children are stopped by
process group; everything is stopped by process id and reaped, also on errors.

A worker runs in a memory container (``memory_limit_bytes``, :class:`~bench.measuring.container.MemoryContainer`):
the whole worker, main process, pool processes and their ffmpeg children, in one memory cgroup, as a
container runtime puts it, and the kernel's OOM killer chooses whom to kill at the limit. Where no
cgroup can be made, the harness's watchdog holds that limit over the worker's tree: when the main
process and every pool process together pass it, the largest pool process is SIGKILLed, as the cgroup
OOM killer picks its victim. RSS sums count pages shared after the fork once per process, so the
watchdog is the cautious side of what a cgroup would charge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from ..measuring.container import WATCHDOG, Charge, MemoryContainer
from ..measuring.measure import tree_rss
from ..measuring.paths import ROOT
from ..measuring.processes import kill_process_group, stop_process, wait_until
from .rabbitmq_node import RabbitMQNode
from .redis_server import RedisServer

#: The brokers a cluster runs on.
BROKERS = ("redis", "rabbitmq")


def client_app(url: str, backend_url: str | None = None):
    """A Celery app that only sends jobs to, and reads results from, the service whose broker is at ``url``
    (Redis or RabbitMQ; the results in ``backend_url``, a Redis, by default the broker's)."""
    from celery import Celery

    import audionorm_lab.service.task  # noqa: F401  (results rebuild the task's own exception classes only when imported)
    from audionorm_lab.service.broker import broker_settings

    settings = broker_settings(url, backend_url)
    return Celery("audionorm-client", broker=url, backend=settings["result_backend"], set_as_current=False,
                  config_source=settings)


#: Publishing retries that ride out a broker restart (RabbitMQ's takes 6 to 9 s here): about a minute.
RIDE_OUT_BROKER_RESTART = {"retry": True, "retry_policy": {"max_retries": 40, "interval_start": 0.25,
                                                           "interval_step": 0.25, "interval_max": 2.0}}


def send_job(client, input_file, output_file, mode: str, **kwargs):
    """Send one ``audionorm.normalize_audio`` job through ``client`` (:func:`client_app`), recorded so that the
    service's lost-message sweep covers it (:func:`audionorm_lab.service.publish_job`), retried through a broker
    restart as a client should; its ``AsyncResult``."""
    from audionorm_lab.service import publish_job

    return publish_job(client, input_file, output_file, publish_options=RIDE_OUT_BROKER_RESTART, mode=mode, **kwargs)


class CeleryWorker:
    """One ``celery -A audionorm_lab.service worker --pool prefork`` in its memory container, with its watchdog.

    Parameters
    ----------
    broker_url : str
    folder : path
        Where its log goes (``<name>.log``).
    name : str
        The worker's node name (``name@localhost``); unique among live workers.
    concurrency : int
        Pool processes.
    memory_limit_bytes : int, optional
        The whole worker's memory container, bytes (None: a container that only counts); the watchdog holds
        it where no cgroup can be made (see the module docstring).
    env : dict, optional
        Extra environment (``AUDIONORM_VISIBILITY_TIMEOUT``...).
    result_backend_url : str, optional
        The Redis for results and the delivery ledger when the broker is not Redis.
    """

    def __init__(self, broker_url: str, folder: Path, name: str, concurrency: int = 1,
                 env: dict | None = None, interval_seconds: float = 0.02, result_backend_url: str | None = None,
                 memory_limit_bytes: int | None = None):
        self.broker_url, self.folder, self.name, self.concurrency = broker_url, Path(folder), name, concurrency
        self.result_backend_url = result_backend_url
        self.interval, self.memory_limit = interval_seconds, memory_limit_bytes
        self.tree_limit: int | None = None  # the watchdog's, where no cgroup holds memory_limit
        self.container: MemoryContainer | None = None
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.kills: list[dict] = []  # the watchdog's: {"pid", "rss_bytes", "limit_bytes", "time"}
        self.child_peaks: dict[int, int] = {}  # pool process pid -> peak RSS of its tree, bytes
        self.window_peaks: dict[int, int] = {}  # the same since the last start_window()
        self.tree_peak_bytes = 0
        self.main_peak_bytes = 0  # the worker's main process alone
        self._stop_watch = threading.Event()
        self._watch: threading.Thread | None = None
        self._log = None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, wait: bool = True) -> CeleryWorker:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AUDIONORM_BROKER_URL": self.broker_url, "PYTHONPATH": str(ROOT), **self.env}
        env.pop("AUDIONORM_RESULT_BACKEND", None)
        if self.result_backend_url:
            env["AUDIONORM_RESULT_BACKEND"] = self.result_backend_url
        self._log = open(self.log_path, "w")
        self.container = MemoryContainer(self.memory_limit)
        if not self.container.kernel and self.memory_limit is not None:
            self.tree_limit = self.memory_limit  # no cgroup here: the watchdog holds the worker's limit
        self.process = subprocess.Popen(self.container.wrap(
            [sys.executable, "-m", "celery", "-A", "audionorm_lab.service", "worker", "--pool", "prefork",
             "--concurrency", str(self.concurrency), "--loglevel", "INFO", "--hostname", f"{self.name}@localhost",
             "--without-mingle", "--without-gossip"]),
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT), start_new_session=True)
        self._watch = threading.Thread(target=self._watchdog, name=f"watchdog-{self.name}", daemon=True)
        self._watch.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        try:
            wait_until(lambda: " ready." in self.log_path.read_text(), self.process, timeout,
                       f"celery worker {self.name}", interval=0.1)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {self.log_path.read_text()[-500:]}") from None

    def set_memory_limit(self, limit_bytes: int | None) -> None:
        """The whole worker's memory limit from now on (None: none): its container's, or the watchdog's."""
        self.memory_limit = limit_bytes
        if self.container is not None and self.container.kernel:
            self.container.set_limit(limit_bytes)
        else:
            self.tree_limit = limit_bytes

    @property
    def limit_enforced_by(self) -> str | None:
        """Who holds the worker's memory limit (see :mod:`bench.measuring.container`); None without one."""
        if self.memory_limit is None:
            return None
        return self.container.enforced_by if self.container is not None else WATCHDOG

    def memory_now(self) -> int:
        """What the worker holds now, bytes: its container's charge, or its tree's RSS where no cgroup was made."""
        charged = self.container.sample() if self.container is not None else None
        if charged is not None:
            return charged
        try:
            return tree_rss(psutil.Process(self.process.pid))
        except psutil.Error:
            return 0

    def charge(self) -> Charge | None:
        """What the kernel charged the worker's container since :meth:`start_window` (None without a cgroup)."""
        return self.container.charge() if self.container is not None else None

    def oom_killed(self) -> list[dict]:
        """The processes the kernel's OOM killer ended in the worker's container (see
        :meth:`~bench.measuring.container.MemoryContainer.oom_killed`); none where the watchdog holds the limit."""
        return self.container.oom_killed() if self.container is not None else []

    def start_window(self) -> None:
        """Start measuring :attr:`window_peaks` afresh: each pool process's peak from now on (one job's, say), and
        the container's peak."""
        self.window_peaks = {}
        if self.container is not None:
            self.container.start_window()

    def pool_pids(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.process.pid).children()]
        except psutil.Error:
            return []

    def _kill_tree(self, child: psutil.Process, tree: list[psutil.Process], rss: int, limit: int) -> None:
        for p in tree:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
        self.kills.append({"pid": child.pid, "rss_bytes": rss, "limit_bytes": limit, "time": time.time()})

    def _watchdog(self) -> None:
        try:
            master = psutil.Process(self.process.pid)
        except psutil.Error:
            return
        while not self._stop_watch.wait(self.interval):
            try:
                master_rss = master.memory_info().rss
                children = master.children(recursive=False)
            except psutil.Error:
                return
            trees = []
            for child in children:
                try:
                    tree = [child, *child.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree)
                except psutil.Error:
                    continue
                self.child_peaks[child.pid] = max(self.child_peaks.get(child.pid, 0), rss)
                self.window_peaks[child.pid] = max(self.window_peaks.get(child.pid, 0), rss)
                trees.append((rss, child, tree))
            if self.container is not None:
                self.container.sample()
            self.main_peak_bytes = max(self.main_peak_bytes, master_rss)
            total = master_rss + sum(rss for rss, _, _ in trees)
            self.tree_peak_bytes = max(self.tree_peak_bytes, total)
            if self.tree_limit is not None and total > self.tree_limit and trees:
                rss, child, tree = max(trees, key=lambda t: t[0])
                self._kill_tree(child, tree, total, self.tree_limit)

    def warm_shutdown(self) -> None:
        """SIGTERM to the main process only, as a deploy's ``docker stop`` sends it: running jobs finish,
        then the worker exits. Returns at once; :meth:`stop` later reaps it."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGTERM)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Warm shutdown first (SIGTERM: running jobs finish), SIGKILL after ``grace_seconds``; then whatever is
        left of its process group (pool processes orphaned by a killed main process, a frozen host's)."""
        stop_process(self.process, grace_seconds)
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._close()

    def kill_main(self) -> None:
        """SIGKILL the main process alone (the OOM killer choosing it). Celery's prefork asks the kernel to kill its
        pool processes when it dies (PR_SET_PDEATHSIG); :meth:`stop` ends any that outlive it."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def vanish(self) -> None:
        """Freeze every process of the worker at once (SIGSTOP to its group), as a host that lost power or its
        network: its connections stay open and say nothing, so the broker notices only by its own means
        (heartbeats, the visibility timeout). :meth:`stop` ends it for good."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def cold_shutdown(self) -> None:
        """SIGKILL the main process and its pool processes at once."""
        if self.process is not None:
            kill_process_group(self.process)
        self._close()

    def _close(self) -> None:
        self._stop_watch.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(5)
        if self.container is not None:
            self.container.close()  # what is left in it is killed, and the cgroup removed
        if self._log:
            self._log.close()
            self._log = None


class Cluster:
    """A broker (Redis, or a RabbitMQ node beside the Redis that keeps results and the delivery ledger) and
    ``workers`` Celery workers, each in its own memory container of ``memory_limit_bytes`` (None: containers
    that only count); workers may be shut down and replaced.

    Every worker ever started is kept in :attr:`all_workers` (for its kills and peaks) and stopped on exit.
    Use as a context manager.
    """

    def __init__(self, folder: Path, workers: int = 2, concurrency: int = 2, memory_limit_bytes: int | None = None,
                 env: dict | None = None, appendonly: bool = True, broker: str = "redis"):
        if broker not in BROKERS:
            raise ValueError(f"broker must be one of {', '.join(BROKERS)}, not {broker!r}")
        self.folder, self.size, self.concurrency = Path(folder), workers, concurrency
        self.memory_limit, self.env = memory_limit_bytes, env or {}
        self.broker = broker
        self.redis = RedisServer(self.folder / "redis", appendonly=appendonly)
        self.url = self.redis.url  # results, the delivery ledger, and the broker when it is Redis
        self.rabbitmq = RabbitMQNode(self.folder / "rabbitmq") if broker == "rabbitmq" else None
        self.broker_url = self.rabbitmq.url if self.rabbitmq else self.url
        self.all_workers: list[CeleryWorker] = []
        self.live: list[CeleryWorker] = []
        self.crashes: list[dict] = []  # workers that exited on their own: {"time", "worker", "exit_code", "error"}
        self._lock = threading.Lock()
        self._stop_supervisor = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _new_worker(self) -> CeleryWorker:
        """A new worker, started; not yet ready (its :meth:`CeleryWorker.wait_ready` says when)."""
        worker = CeleryWorker(self.broker_url, self.folder / "workers", f"w{len(self.all_workers) + 1}",
                              concurrency=self.concurrency, memory_limit_bytes=self.memory_limit, env=self.env,
                              result_backend_url=self.url)
        self.all_workers.append(worker)
        worker.start(wait=False)
        return worker

    def __enter__(self) -> Cluster:
        try:
            self.redis.start()
            if self.rabbitmq is not None:
                self.rabbitmq.start()
            self.live = [self._new_worker() for _ in range(self.size)]
            for worker in self.live:
                worker.wait_ready()
            self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
            self._supervisor.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def replace(self, worker: CeleryWorker, wait: bool = True) -> CeleryWorker:
        """Take ``worker`` out of the live set and start a replacement (ready when this returns, with ``wait``)."""
        with self._lock:
            self.live.remove(worker)
            replacement = self._new_worker()
            self.live.append(replacement)
        if wait:
            replacement.wait_ready()
        return replacement

    def _supervise(self, interval_seconds: float = 0.5) -> None:
        """Restart a live worker whose main process exited on its own, as systemd or Kubernetes would."""
        while not self._stop_supervisor.wait(interval_seconds):
            for worker in list(self.live):
                if worker.process is not None and worker.process.poll() is not None:
                    lines = [line for line in worker.log_path.read_text(errors="replace").splitlines()
                             if "Unrecoverable error" in line or "CRITICAL" in line]
                    self.crashes.append({"time": time.time(), "worker": worker.name,
                                         "exit_code": worker.process.returncode,
                                         "error": lines[-1] if lines else None})
                    worker.stop()
                    try:
                        self.replace(worker, wait=False)
                    except ValueError:  # replaced by a fault meanwhile
                        pass

    def pool_pids(self) -> dict[int, CeleryWorker]:
        """Pool process pid -> its live worker."""
        with self._lock:
            return {pid: worker for worker in self.live for pid in worker.pool_pids()}

    def __exit__(self, *exc) -> None:
        self._stop_supervisor.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for worker in reversed(self.all_workers):
            worker.stop()
        if self.rabbitmq is not None:
            self.rabbitmq.stop()
        self.redis.stop()

    def restart_broker(self) -> str:
        """Restart the broker (Redis: SIGTERM, it flushes its append-only file; RabbitMQ: its application);
        what was restarted."""
        if self.rabbitmq is not None:
            self.rabbitmq.restart()
            return f"rabbitmq :{self.rabbitmq.port}"
        self.redis.restart()
        return f"redis :{self.redis.port}"
