"""python -m bench pool-capacity: how many streaming pool processes fit a container, as the kernel decides.

    python -m bench pool-capacity [--limits 512M,1G,2G] [--duration 3m] [--compat service|float]
        [--output wav|flac] [--overload 1G] [--resolution 1] [--out DIR] [--json]

For each limit, one real ``celery worker --pool prefork`` runs in a memory container of that limit
(:class:`~bench.measuring.container.MemoryContainer`: main process, pool processes and their ffmpeg children
in one memory cgroup, as a container runtime puts a worker), at a concurrency N, and is sent N
streaming jobs at once (one per pool process, mp3s of ``--duration``, each written as ``--output``: the
service's 16-bit WAV by default, which the pool process writes itself; a FLAC output in service mode is
encoded by one more ffmpeg per job, as pydub's export does, about 10 MB more each). A try **fits** when every
job succeeds, the cgroup counts no OOM kill and the main process lives. The search starts from
what the previous limit's tries say of the main process and of one busy pool process (64 MB each for
the first limit; :func:`shares`) and steps
towards the boundary: up while it fits, down while it does not, each try a fresh worker in a
fresh cgroup, until a fitting N and a failing one are ``--resolution`` apart. The figure is the largest N
that fit; the smallest that did not is beside it.

``--overload LIMIT`` then runs twice the concurrency that fit at LIMIT: every OOM kill the kernel
logs must name a pool process or one of its ffmpeg children, never the worker's main process
(pool processes raise their ``oom_score_adj``: :mod:`audionorm_lab.service.oom_score`), the worker lives,
and every job ends in a final state (a killed job is delivered again; after three lost workers the
delivery policy fails it).

Where no cgroup can be made (not root, no memory controller) the harness's watchdog holds the
limit over the worker's RSS, and every row says so (``limit_enforced_by``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data.fetch_samples import make_sample, parse_duration

from .celery_cluster import CeleryWorker, client_app, send_job
from .redis_server import RedisServer
from ..measuring.measure import parse_limit
from ..measuring.paths import RESULTS

MB = 1e6
#: The first limit's first guess of one busy pool process's charge, bytes.
FIRST_GUESS_PER_PROCESS_BYTES = 64 * 10**6
#: How long a try waits for its jobs, seconds.
TRY_DEADLINE_SECONDS = 600.0
DEFAULT_LIMITS = "512M,1G,2G"
#: How often the harness samples the worker's processes, seconds: the kernel holds the limit here, and sampling
#: dozens of processes every 20 ms would take a core from the jobs.
SAMPLE_SECONDS = 0.25


@dataclass
class Try:
    """One worker at ``concurrency`` in a container of ``limit_bytes``, sent ``concurrency`` jobs at once."""

    limit_bytes: int
    concurrency: int
    limit_enforced_by: str | None
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    oom_kills: int = 0
    watchdog_kills: int = 0
    main_alive: bool = True
    main_pid: int | None = None
    killed: list[dict] = field(default_factory=list)  # {"pid", "command", "time", "main": bool}: the kernel's log
    idle_charged_bytes: int | None = None
    charged_peak_bytes: int | None = None
    anon_at_peak_bytes: int | None = None
    wall_seconds: float = 0.0
    kernel_log: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return (self.succeeded == self.concurrency and self.oom_kills == 0 and self.watchdog_kills == 0
                and self.main_alive)

    def to_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits}


def try_concurrency(redis_url: str, folder: Path, sample: Path, limit_bytes: int, concurrency: int, compat: str,
                    deadline_seconds: float = TRY_DEADLINE_SECONDS, output_format: str = "wav") -> Try:
    """One try: a fresh worker in a fresh container, ``concurrency`` streaming jobs at once, each writing an
    ``output_format`` file."""
    folder.mkdir(parents=True, exist_ok=True)
    worker = CeleryWorker(redis_url, folder, f"capacity-{concurrency}", concurrency=concurrency,
                          memory_limit_bytes=limit_bytes, interval_seconds=SAMPLE_SECONDS)
    outcome = Try(limit_bytes, concurrency, None)
    try:
        worker.start()
        outcome.limit_enforced_by, outcome.main_pid = worker.limit_enforced_by, worker.pid
        charge = worker.charge()
        outcome.idle_charged_bytes = charge.peak_bytes if charge else worker.memory_now()
        worker.start_window()
        client = client_app(redis_url)
        started = time.monotonic()
        results = [send_job(client, sample, folder / f"out-{i}.{output_format}", "streaming", options={"compat": compat})
                   for i in range(concurrency)]
        _collect(outcome, results, started + deadline_seconds)
        outcome.wall_seconds = time.monotonic() - started
        outcome.main_alive = worker.alive()
        charge = worker.charge()
        if charge is not None:
            outcome.charged_peak_bytes, outcome.anon_at_peak_bytes = charge.peak_bytes, charge.anon_bytes
            outcome.oom_kills = charge.oom_kills
        outcome.watchdog_kills = len(worker.kills)
        outcome.kernel_log = worker.container.kernel_log()
        outcome.killed = [{**k, "main": k["pid"] == outcome.main_pid} for k in worker.oom_killed()]
    finally:
        worker.stop()
    return outcome


def _collect(outcome: Try, results: list, deadline: float) -> None:
    for result in results:
        try:
            result.get(timeout=max(1.0, deadline - time.monotonic()), propagate=True)
            outcome.succeeded += 1
        except TimeoutError:
            outcome.unfinished += 1
        except Exception:  # noqa: BLE001  (a job that failed: its final state)
            if result.state in ("PENDING", "STARTED", "RETRY", "PROGRESS"):
                outcome.unfinished += 1
            else:
                outcome.failed += 1


def search_limit(run_try, limit_bytes: int, guess: int, resolution: int = 1, log=print) -> list[Try]:
    """Tries at ``limit_bytes`` from ``guess`` until one fits and one at most ``resolution`` above it does not
    (or 1 does not). ``run_try(limit, concurrency)`` makes one :class:`Try`. The step is a sixteenth of the guess
    (at least ``resolution``: a guess from the limit before is close, and a try near 2 GB takes 20 s) until the
    boundary is crossed, then halves the gap."""
    tries: dict[int, Try] = {}
    n, step = max(1, guess), max(resolution, guess // 16)
    while True:
        tries[n] = run_try(limit_bytes, n)
        log(_try_line(tries[n]))
        fit = max((c for c, t in tries.items() if t.fits), default=0)
        miss = min((c for c, t in tries.items() if not t.fits), default=None)
        if miss == 1 or (miss is not None and fit and miss - fit <= resolution):
            return sorted(tries.values(), key=lambda t: t.concurrency)
        if miss is not None and fit:
            step = max(1, (miss - fit) // 2)
            n = fit + step
        else:
            n = n + step if tries[n].fits else max(1, n - step)


def capacity_by_limit(limits: list[int], duration_seconds: float, compat: str, folder: Path,
                      overload_limit: int | None = None, resolution: int = 1, log=print,
                      output_format: str = "wav") -> dict:
    """The search at each limit, and the overload run; the summary dict (also ``folder/pool-capacity.json``)."""
    sample = make_sample(duration_seconds, "mp3", log=lambda m: print(m, file=sys.stderr))
    redis = RedisServer(folder / "redis").start()
    rows, main, per_process = [], 0, FIRST_GUESS_PER_PROCESS_BYTES
    try:
        def run_try(limit: int, concurrency: int) -> Try:
            return try_concurrency(redis.url, folder / f"{limit // 10**6}MB-c{concurrency}", sample, limit,
                                   concurrency, compat, output_format=output_format)

        for limit in sorted(limits):
            tries = search_limit(run_try, limit, max(1, (limit - main) // per_process), resolution, log)
            main, per_process = shares(limit, tries) or (main, per_process)  # the next limit's guess
            rows.append({"limit_bytes": limit, "fits": max((t.concurrency for t in tries if t.fits), default=0),
                         "first_miss": min((t.concurrency for t in tries if not t.fits), default=None),
                         "tries": [t.to_dict() for t in tries]})
        overload = None
        if overload_limit is not None:
            fit = next((r["fits"] for r in rows if r["limit_bytes"] == overload_limit), None)
            fit = fit or max(1, overload_limit // per_process)
            outcome = run_try(overload_limit, 2 * fit)
            log("overload: " + _try_line(outcome))
            overload = {**outcome.to_dict(), "fits_at_limit": fit,
                        "every_kill_a_pool_process": not any(k["main"] for k in outcome.killed)
                        and outcome.main_alive,
                        "every_job_final": outcome.unfinished == 0}
    finally:
        redis.stop()
    summary = {"duration_seconds": duration_seconds, "compat": compat, "output_format": output_format,
               "mode": "streaming",
               "limit_enforced_by": _enforced_by(rows), "rows": rows, "overload": overload}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pool-capacity.json").write_text(json.dumps(summary, indent=2))
    return summary


def shares(limit_bytes: int, tries: list[Try]) -> tuple[int, int] | None:
    """What a limit's tries say of the worker's main process and of one busy pool process, bytes: the main
    process's share is the idle charge less the idle pool processes' (from the idle charges of the two tries
    farthest apart), and a busy pool process's is the rest of the limit over the midpoint between the largest N
    that fit and the smallest that did not. None without both."""
    fit = max((t.concurrency for t in tries if t.fits), default=0)
    miss = min((t.concurrency for t in tries if not t.fits), default=None)
    idle = sorted((t.concurrency, t.idle_charged_bytes) for t in tries if t.idle_charged_bytes)
    if not fit or miss is None:
        return None
    main = 0
    if len(idle) >= 2 and idle[-1][0] > idle[0][0]:
        (n1, c1), (n2, c2) = idle[0], idle[-1]
        main = max(0, int(c1 - n1 * (c2 - c1) / (n2 - n1)))
    return main, max(1, int((limit_bytes - main) / ((fit + miss) / 2)))


def _enforced_by(rows: list[dict]) -> str | None:
    kinds = {t["limit_enforced_by"] for r in rows for t in r["tries"] if t["limit_enforced_by"]}
    return ", ".join(sorted(kinds)) or None


def _try_line(t: Try) -> str:
    peak = f", charged peak {t.charged_peak_bytes / MB:.0f} MB" if t.charged_peak_bytes else ""
    return (f"{t.limit_bytes / MB:.0f} MB x{t.concurrency}: {t.succeeded}/{t.concurrency} succeeded, "
            f"{t.oom_kills} OOM kills{', main process killed' if not t.main_alive else ''}{peak}, "
            f"{t.wall_seconds:.0f} s ({t.limit_enforced_by}): {'fits' if t.fits else 'does not fit'}")


def print_summary(summary: dict) -> None:
    print(f"streaming pool processes per container ({summary['compat']} mode, "
          f"{summary['duration_seconds']:g}-second mp3s to {summary['output_format']}, limit held by {summary['limit_enforced_by']}):")
    for row in summary["rows"]:
        print(f"  {row['limit_bytes'] / MB:6.0f} MB: {row['fits']} fit"
              + (f", {row['first_miss']} do not" if row["first_miss"] else ""))
    overload = summary["overload"]
    if overload:
        victims = ", ".join(f"{k['command']} {k['pid']}" for k in overload["killed"]) or "none"
        print(f"  overload, {overload['concurrency']} at {overload['limit_bytes'] / MB:.0f} MB: "
              f"{overload['oom_kills']} OOM kills ({victims}); main process "
              f"{'alive' if overload['main_alive'] else 'KILLED'}; {overload['succeeded']} succeeded, "
              f"{overload['failed']} failed, {overload['unfinished']} without a final state")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pool-capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default=DEFAULT_LIMITS, help=f"container limits (default {DEFAULT_LIMITS})")
    parser.add_argument("--duration", default="3m", help="each job's mp3 length (default 3m)")
    parser.add_argument("--compat", choices=("service", "float"), default="service",
                        help="the jobs' mode: the service's 16-bit file (default) or float")
    parser.add_argument("--output", choices=("wav", "flac"), default="wav",
                        help="each job's output: WAV, the service's file (default), or FLAC (one more ffmpeg per job "
                             "in service mode)")
    parser.add_argument("--overload", help="also run twice the concurrency that fit at this limit (e.g. 1G)")
    parser.add_argument("--resolution", type=int, default=1,
                        help="stop when a fitting and a failing concurrency are this close (default 1)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/pool-capacity-<time>)")
    parser.add_argument("--json", action="store_true", help="print pool-capacity.json instead of the summary")
    args = parser.parse_args(argv)
    limits = [parse_limit(x) for x in args.limits.split(",") if x.strip()]
    overload = parse_limit(args.overload) if args.overload else None
    if overload is not None and overload not in limits:
        limits.append(overload)
    out = args.out or RESULTS / time.strftime("pool-capacity-%Y%m%d-%H%M%S")
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    summary = capacity_by_limit(limits, parse_duration(args.duration), args.compat, out, overload, args.resolution, log,
                                output_format=args.output)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
        print(f"results: {out / 'pool-capacity.json'}")
    return 0
