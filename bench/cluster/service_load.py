"""python -m bench service-load: many jobs on several real Celery workers, with faults injected; every job checked.

    python -m bench service-load [--workers 2] [--concurrency 2] [--jobs 40] [--durations 30s,2m,10m,20m]
        [--mode auto|streaming|full-load] [--memory-limit 1200M] [--faults kill-child,restart-broker,...]
        [--fault-every 20s] [--fault-rounds 2] [--deadline 15m] [--out DIR] [--quick] [--capacity]
        [--broker redis|rabbitmq] [--soak 20m] [--late-after SECONDS]

It starts a real ``redis-server`` (``appendonly yes``, as production runs it; with ``--broker rabbitmq``
also a private RabbitMQ node, the broker, while Redis keeps results and the delivery ledger) and
``--workers`` real ``celery worker --pool prefork --concurrency N`` processes, each in a memory
container of ``--memory-limit`` (:class:`~bench.measuring.container.MemoryContainer`: a memory cgroup, the
whole worker inside, the kernel's OOM killer at its limit; the harness's watchdog where no cgroup
can be made). ``auto`` jobs keep a file in memory only when its in-memory peak fits the per-process
share of that limit (``AUDIONORM_MEMORY_LIMIT``). ``--jobs`` jobs are submitted at once, cycling through mp3 samples of
``--durations`` (made by ``data/fetch_samples.py``), plus ``--bad-inputs`` deliberately
bad ones (a text file, a missing file) that must fail with their clear error while
their pool process lives. Faults (:mod:`bench.cluster.faults`) are injected in turn every
``--fault-every``, ``--fault-rounds`` times each (0: as long as jobs remain); while faults
remain to be injected, more good jobs are submitted as the first ones finish (:class:`JobFeed`),
so that every fault finds a job to hit, however fast the jobs run. A
worker that exits on its own (a crash) is restarted, as a supervisor would, and
counted in ``worker_crashes``. Everything started is stopped by process id,
also on errors and Ctrl-C.

At the end every output is checked (valid audio, the input's length, integrated
loudness at the target +-0.5 LU), the delivery ledger is read, and
``DIR/results.json`` is written with ``submitted``, ``succeeded``, ``failed`` (with
reasons), ``lost`` (no final state by ``--deadline``), ``ran_more_than_once`` (jobs
whose processing finished more than once), ``ran_concurrently`` (jobs with two runs
alive at once), ``partial_outputs`` (files at output paths that are not complete,
valid audio), ``leftover_temporaries``, ``faults_injected``, ``oom_kills`` (the kernel's) and
``watchdog_kills``, ``limit_enforced_by``, ``max_child_rss_bytes``,
``max_worker_tree_rss_bytes``, ``audio_seconds_per_wall_second``, ``wall_seconds``,
``finished_by_streaming_fallback`` and a per-job timeline.

``--soak DURATION`` feeds jobs continuously (mixed lengths and a few bad inputs, ``SOAK``'s preset) and
injects every fault kind in rounds until DURATION, then drains. Every job that was lost or finished late
(``--late-after``) gets a timeline in ``results.json`` (:mod:`bench.cluster.job_timeline`): when it was
published, each delivery from the ledger with the fault injected last before it, the workers' log lines
that name it, and where the broker holds its message at the end (queued, in kombu's ``unacked`` hash, or
nowhere). A loss must explain itself from its record.

``--capacity`` sweeps one worker at concurrency 1, 2 and 4 (``--capacity-concurrency``) for
``auto``, ``streaming`` and ``full-load``, in a container of ``--memory-limit``, no faults, and writes ``DIR/capacity.json``: for each mode, the largest
concurrency that finished every job, the largest without a kill, and jobs per minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from audionorm_lab.media.sinks import partial_outputs
from data.fetch_samples import parse_duration

from .celery_cluster import BROKERS, Cluster, client_app, send_job
from .faults import FAULT_KINDS, FaultInjector
from .job_timeline import broker_holdings, late, timeline
from .load_jobs import Job, JobFeed, check_output, late_after, plan_jobs, visibility_timeout_seconds
from .load_table import print_table, row_line
from ..measuring.measure import parse_limit
from ..measuring.paths import RESULTS
from .redelivery import redelivery_latencies, summarize_latencies

MODES = ("auto", "streaming", "full-load")
CAPACITY_CONCURRENCY = (1, 2, 4)
CAPACITY_MODES = ("auto", "streaming", "full-load")
#: The ``quick`` preset: a few short jobs, one fault of each kind; it runs in the test suite.
QUICK = {"workers": 2, "concurrency": 2, "jobs": 8, "durations": "1m,3m", "fault_every": "2s", "fault_rounds": 1,
         "deadline": "3m", "bad_inputs": 1, "memory_limit": "1200M"}
#: The ``--soak`` preset: jobs fed and faults injected in rounds until the soak's end, then drained within the
#: deadline. A fault every 6 s gives each of the six kinds 20 or more in 20 minutes (an injection itself takes
#: seconds: every 8 s gave 17 or 18).
SOAK = {"workers": 2, "concurrency": 2, "jobs": 12, "durations": "30s,1m,3m", "fault_every": "6s", "fault_rounds": 0,
        "deadline": "5m", "bad_inputs": 2, "memory_limit": "1200M"}
DEFAULTS = {"workers": 2, "concurrency": 2, "jobs": 40, "durations": "30s,2m,10m,20m", "fault_every": "20s",
            "fault_rounds": 2, "deadline": "15m", "bad_inputs": 2, "memory_limit": "1200M"}


def _poll(jobs: list[Job], client, deadline: float, feed: JobFeed | None = None) -> None:
    """Wait until every job has a final state (and ``feed`` adds no more) or the deadline passes (monotonic
    seconds)."""
    from celery import states
    from kombu.exceptions import OperationalError
    from redis.exceptions import RedisError

    while time.monotonic() < deadline:
        if feed is not None:
            feed()
        pending = [j for j in jobs if j.state is None]
        if not pending and not (feed is not None and feed.active()):
            return
        for job in pending:
            result = client.AsyncResult(job.task_id)
            try:
                state = result.state
                if state not in states.READY_STATES:
                    continue
                outcome = result.result
            except (RedisError, OperationalError, OSError):  # the broker restarting: ask again
                continue
            job.finished, job.state = time.time(), state
            if state == states.SUCCESS:
                job.report = outcome
            else:
                job.error_type, job.error = type(outcome).__name__, str(outcome)
        time.sleep(0.25)


def run_end_time(start: dict, runs: list[dict]) -> float | None:
    """The time of the ``end`` record of the run begun by ``start`` (same process, same delivery);
    None for a run that lost its worker."""
    return next((r["time"] for r in runs if r["event"] == "end" and r["pid"] == start["pid"]
                 and r["delivery"] == start["delivery"]), None)


def _closed_at(start: dict, runs: list[dict], kill_times: dict[int, float]) -> float:
    """When the run begun by ``start`` ended: its end record, or its process's kill (inf if neither is known)."""
    end = run_end_time(start, runs)
    return min(end if end is not None else float("inf"), kill_times.get(start["pid"], float("inf")))


def ran_concurrently(runs: list[dict], kill_times: dict[int, float]) -> bool:
    """Whether a run of the job started while an earlier run was still alive."""
    starts = sorted((r for r in runs if r["event"] == "start"), key=lambda r: r["time"])
    return any(later["time"] < _closed_at(earlier, runs, kill_times)
               for i, earlier in enumerate(starts) for later in starts[i + 1:])


def run_load(out: Path, *, workers: int, concurrency: int, jobs: list[Job], mode: str, faults: list[str],
             fault_every_seconds: float, deadline_seconds: float, fault_rounds: int | None = None,
             memory_limit_bytes: int | None = None, broker: str = "redis", soak_seconds: float | None = None,
             late_after_seconds: float | None = None, log=print) -> dict:
    """One load run on a fresh cluster (``broker``: ``"redis"`` or ``"rabbitmq"``), each worker in a container of
    ``memory_limit_bytes``; the results dict (also written to ``out/results.json``).

    ``soak_seconds``: feed jobs and inject faults (``fault_rounds`` None: in rounds) for that long, then drain
    (``deadline_seconds`` from then). Every job lost, or finished more than ``late_after_seconds`` after it was
    published (default :func:`late_after`), gets its timeline (:mod:`bench.cluster.job_timeline`)."""
    import redis

    from audionorm_lab.service.delivery import DeliveryLedger

    out.mkdir(parents=True, exist_ok=True)
    longest = max((j.input_seconds for j in jobs), default=0.0)
    per_process = memory_limit_bytes // concurrency if memory_limit_bytes else None
    env = {"AUDIONORM_VISIBILITY_TIMEOUT": str(visibility_timeout_seconds(longest)),
           "AUDIONORM_RESTORE_INTERVAL": "2",
           **({"AUDIONORM_MEMORY_LIMIT": str(per_process)} if per_process else {})}
    injector = None
    with Cluster(out / "cluster", workers, concurrency, memory_limit_bytes=memory_limit_bytes, env=env,
                 broker=broker) as cluster:
        client = client_app(cluster.broker_url, cluster.url)

        def submit(job: Job) -> None:
            job.submitted = time.time()
            job.task_id = send_job(client, job.input_file, job.output_file, mode).id

        started = time.time()
        for job in jobs:
            submit(job)
        log(f"submitted {len(jobs)} jobs ({mode}) to {workers} workers x {concurrency} on {broker}")
        if faults:
            injector = FaultInjector(cluster, faults, fault_every_seconds, cluster.url,
                                     first_after_seconds=min(1.0, fault_every_seconds), rounds=fault_rounds)
            injector.start()
        first = len(jobs)
        soak_end = time.monotonic() + soak_seconds if soak_seconds else None
        try:
            _poll(jobs, client, (soak_end or time.monotonic()) + deadline_seconds,
                  JobFeed(jobs, submit, injector, workers * concurrency, until=soak_end,
                          with_bad_inputs=soak_end is not None))
        finally:
            if injector is not None:
                injector.stop()
        if len(jobs) > first:
            log(f"submitted {len(jobs) - first} more while faults remained to be injected")
        wall = max((j.finished for j in jobs if j.finished), default=time.time()) - started
        backend = redis.Redis.from_url(cluster.url)
        ledger = DeliveryLedger(backend)
        runs = {job.index: ledger.runs(job.task_id) for job in jobs}
        # what the broker still holds, to tell why a job was lost: queued, or delivered and never restored
        broker_state = ({**cluster.rabbitmq.queue_depths(), "queues": cluster.rabbitmq.queues()}
                        if cluster.rabbitmq is not None else
                        {"queued": backend.llen("celery"), "unacknowledged": backend.hlen("unacked"),
                         "restore_mutex_ttl_seconds": backend.ttl("unacked_mutex")})
        holdings = (broker_holdings(backend, {j.task_id for j in jobs}) if cluster.rabbitmq is None
                    else {j.task_id: None for j in jobs})
        log_paths = {w.name: w.log_path for w in cluster.all_workers}
        kills = ([{**k, "by": "watchdog"} for w in cluster.all_workers for k in w.kills]
                 + [{**k, "by": "kernel"} for w in cluster.all_workers for k in w.oom_killed()])
        enforced_by = sorted({w.limit_enforced_by for w in cluster.all_workers if w.limit_enforced_by})
        child_peak = max((p for w in cluster.all_workers for p in w.child_peaks.values()), default=0)
        tree_peak = max((w.tree_peak_bytes for w in cluster.all_workers), default=0)
        main_peak = max((w.main_peak_bytes for w in cluster.all_workers), default=0)
        crashes = list(cluster.crashes)
    late_after_seconds = late_after(longest) if late_after_seconds is None else late_after_seconds
    return summarize(out, jobs, runs, kills, injector, child_peak, tree_peak, main_peak, wall, crashes,
                     (holdings, log_paths, late_after_seconds),
                     {"workers": workers, "concurrency": concurrency, "mode": mode, "faults": faults,
                      "fault_every_seconds": fault_every_seconds, "fault_rounds": fault_rounds,
                      "deadline_seconds": deadline_seconds, "soak_seconds": soak_seconds,
                      "late_after_seconds": late_after_seconds,
                      "memory_limit_bytes": memory_limit_bytes, "limit_enforced_by": ", ".join(enforced_by) or None,
                      "visibility_timeout_seconds": visibility_timeout_seconds(longest) if broker == "redis" else None,
                      "broker": broker, "broker_url": cluster.broker_url,
                      "broker_state_at_end": broker_state})


def stop_times(kills: list[dict], faults: list[dict]) -> dict[int, float]:
    """Pid -> when it stopped running for good: the memory kills (the kernel's or the watchdog's), and the faults'
    killed and frozen processes
    (a frozen host never runs again here: the harness SIGKILLs it at the end)."""
    times = {k["pid"]: k["time"] for k in kills}
    for event in faults:
        for pid in (*event["pids_killed"], *event.get("pids_frozen", [])):
            times.setdefault(pid, event["time"])
    return times


def summarize(out: Path, jobs: list[Job], runs: dict, kills: list[dict], injector, child_peak: int,
              tree_peak: int, main_peak: int, wall: float, crashes: list[dict], timeline_sources: tuple,
              parameters: dict) -> dict:
    """Check every job and its output; write and return ``results.json``'s content. ``timeline_sources``:
    (where the broker holds each task's message, the workers' log paths by name, the lateness bound in seconds)."""
    kill_times = stop_times(kills, injector.events if injector else [])
    failed, unexpected_successes, partial, per_job, problems = [], [], [], [], {}
    for job in jobs:
        problem = None
        if job.state == "SUCCESS":
            problem = problems[job.index] = check_output(job)
            if job.expected_error:
                unexpected_successes.append(job.index)
        elif job.state is not None:
            failed.append({"job": job.index, "input": str(job.input_file), "error_type": job.error_type,
                           "error": job.error, "expected": job.error_type == job.expected_error})
        if job.output_file.exists() and (problem or job.state != "SUCCESS"):
            partial.append({"job": job.index, "path": str(job.output_file), "why": problem or "job did not succeed"})
        per_job.append({"job": job.index, "task_id": job.task_id, "input_seconds": job.input_seconds,
                        "state": job.state or "lost",
                        "submitted": job.submitted, "finished": job.finished,
                        "delivery": job.delivery.get("delivery"), "mode": job.delivery.get("mode"),
                        "strategy": (job.report or {}).get("strategy"), "output": str(job.output_file),
                        "mode_changed_because": job.delivery.get("mode_changed_because"),
                        "output_problem": problem, "runs": runs[job.index]})
    temporaries = sorted({str(p) for job in jobs for p in partial_outputs(job.output_file)})
    succeeded = [j for j in jobs if j.state == "SUCCESS" and problems[j.index] is None and not j.expected_error]
    audio = sum(j.input_seconds for j in succeeded)
    holdings, log_paths, late_after_seconds = timeline_sources
    faults = injector.events if injector else []
    timelines = [timeline(record, runs[record["job"]], faults, log_paths, holdings.get(record["task_id"]))
                 for record in per_job if late(record, late_after_seconds)]
    results = {
        "parameters": parameters,
        "submitted": len(jobs),
        "bad_inputs": sum(j.expected_error is not None for j in jobs),
        "succeeded": len(succeeded),
        "failed": len([f for f in failed if not f["expected"]]),
        "failed_as_expected": len([f for f in failed if f["expected"]]),
        "failures": failed,
        "bad_inputs_that_succeeded": unexpected_successes,
        "lost": sum(j.state is None for j in jobs),
        "ran_more_than_once": sum(sum(r["event"] == "end" and r.get("outcome") == "success" for r in job_runs) > 1
                                  for job_runs in runs.values()),
        "ran_concurrently": sum(ran_concurrently(job_runs, kill_times) for job_runs in runs.values()),
        "partial_outputs": len(partial),
        "partial_output_paths": partial,
        "leftover_temporaries": temporaries,
        "redelivery_latency": summarize_latencies(redelivery_latencies(runs, injector.events if injector else [])),
        "finished_by_streaming_fallback": sum(1 for j in jobs if j.delivery.get("mode_changed_because")),
        "redelivered": sum(1 for j in jobs if j.delivery.get("delivery", 1) > 1),
        "faults_injected": injector.counts() if injector else {},
        "fault_errors": injector.errors if injector else [],
        "faults": injector.events if injector else [],
        "worker_crashes": crashes,
        "oom_kills": sum(k["by"] == "kernel" for k in kills),
        "watchdog_kills": sum(k["by"] == "watchdog" for k in kills),
        "limit_enforced_by": parameters.get("limit_enforced_by"),
        "kills": kills,
        "max_child_rss_bytes": child_peak,
        "max_worker_tree_rss_bytes": tree_peak,
        "max_worker_main_rss_bytes": main_peak,
        "wall_seconds": wall,
        "audio_seconds": audio,
        "audio_seconds_per_wall_second": audio / wall if wall > 0 else None,
        "jobs_per_minute": len(succeeded) / wall * 60 if wall > 0 else None,
        "late_or_lost": len(timelines),
        "timelines": timelines,
        "jobs": per_job,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def capacity(out: Path, *, jobs_factory, memory_limit_bytes: int, deadline_seconds: float,
             concurrencies=CAPACITY_CONCURRENCY, modes=CAPACITY_MODES, log=print) -> dict:
    """One worker at each concurrency, for each mode, in a container of ``memory_limit_bytes``; ``capacity.json``."""
    rows = []
    for mode in modes:
        for concurrency in concurrencies:
            folder = out / "capacity" / f"{mode}-c{concurrency}"
            result = run_load(folder, workers=1, concurrency=concurrency, jobs=jobs_factory(folder), mode=mode,
                              faults=[], fault_every_seconds=0, deadline_seconds=deadline_seconds,
                              memory_limit_bytes=memory_limit_bytes, log=log)
            good = result["submitted"] - result["bad_inputs"]
            rows.append({"mode": mode, "concurrency": concurrency, "results": str(folder / "results.json"),
                         "finished_all": result["succeeded"] == good and result["lost"] == 0,
                         "succeeded": result["succeeded"], "jobs": good,
                         "kills": result["oom_kills"] + result["watchdog_kills"],
                         "limit_enforced_by": result["limit_enforced_by"],
                         "redelivered": result["redelivered"], "jobs_per_minute": result["jobs_per_minute"],
                         "max_worker_tree_rss_bytes": result["max_worker_tree_rss_bytes"],
                         "max_child_rss_bytes": result["max_child_rss_bytes"],
                         "max_worker_main_rss_bytes": result["max_worker_main_rss_bytes"],
                         "wall_seconds": result["wall_seconds"]})
            log(row_line(rows[-1]))
    summary = {"memory_limit_bytes": memory_limit_bytes, "rows": rows, "by_mode": {},
               "limit_enforced_by": ", ".join(sorted({r["limit_enforced_by"] for r in rows
                                                      if r["limit_enforced_by"]})) or None}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        summary["by_mode"][mode] = {
            "largest_concurrency_finishing_all": max((r["concurrency"] for r in mine if r["finished_all"]), default=0),
            "largest_concurrency_without_kills": max((r["concurrency"] for r in mine
                                                      if r["finished_all"] and r["kills"] == 0), default=0),
        }
    (out / "capacity.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench service-load", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, help=f"Celery workers (default {DEFAULTS['workers']})")
    parser.add_argument("--concurrency", type=int, help=f"pool processes per worker (default {DEFAULTS['concurrency']})")
    parser.add_argument("--jobs", type=int, help=f"good jobs to submit (default {DEFAULTS['jobs']})")
    parser.add_argument("--durations", help=f"input lengths the jobs cycle through (default {DEFAULTS['durations']})")
    parser.add_argument("--bad-inputs", type=int, help=f"deliberately bad inputs added (default {DEFAULTS['bad_inputs']})")
    parser.add_argument("--mode", choices=MODES, default="auto", help="the mode every job asks for (default auto)")
    parser.add_argument("--memory-limit", help="each worker's container (main process and pool), e.g. 1200M "
                                                f"(default {DEFAULTS['memory_limit']})")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help=f"fault kinds injected in turn, comma-separated, or 'none' (default {','.join(FAULT_KINDS)})")
    parser.add_argument("--fault-every", help=f"seconds between faults, e.g. 20s (default {DEFAULTS['fault_every']})")
    parser.add_argument("--fault-rounds", type=int,
                        help=f"times each fault kind is injected, 0 for as long as jobs remain (default "
                             f"{DEFAULTS['fault_rounds']}; --quick {QUICK['fault_rounds']})")
    parser.add_argument("--deadline", help=f"jobs without a final state by then are lost (default {DEFAULTS['deadline']})")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/service-load-<time>)")
    parser.add_argument("--quick", action="store_true", help="a few short jobs, one fault of each kind (under 2 minutes)")
    parser.add_argument("--soak", help="feed jobs and inject every fault kind in rounds for this long (e.g. 20m), "
                                       "then drain within --deadline (preset: " + ", ".join(
                                           f"{k} {v}" for k, v in SOAK.items()) + ")")
    parser.add_argument("--late-after", type=float,
                        help="seconds from publication after which a finished job counts as late and gets its "
                             "timeline, like a lost one (default: three visibility timeouts and a minute)")
    parser.add_argument("--capacity", action="store_true",
                        help="sweep concurrency on one worker for auto, streaming and full-load, the limit on its tree")
    parser.add_argument("--capacity-concurrency", default=",".join(map(str, CAPACITY_CONCURRENCY)),
                        help="the concurrencies --capacity sweeps (default 1,2,4)")
    parser.add_argument("--broker", choices=BROKERS, default="redis",
                        help="redis, or rabbitmq (a private node; results and the delivery ledger stay in Redis)")
    parser.add_argument("--json", action="store_true", help="print results.json instead of the table")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else SOAK if args.soak else DEFAULTS
    value = lambda name: getattr(args, name) if getattr(args, name) is not None else preset[name]  # noqa: E731
    faults = [] if args.faults in ("", "none") else [k.strip() for k in args.faults.split(",")]
    unknown = sorted(set(faults) - set(FAULT_KINDS))
    if unknown:
        print(f"error: unknown fault kinds {unknown}; use {', '.join(FAULT_KINDS)}", file=sys.stderr)
        return 2
    limit = parse_limit(value("memory_limit"))
    durations = [parse_duration(d) for d in value("durations").split(",")]
    out = args.out or RESULTS / time.strftime("service-load-%Y%m%d-%H%M%S")
    quiet = args.json
    log = (lambda m: print(m, file=sys.stderr)) if quiet else print
    bad_inputs = 0 if args.capacity else value("bad_inputs")  # capacity measures good jobs only
    jobs_factory = lambda folder: plan_jobs(value("jobs"), durations, folder, bad_inputs,  # noqa: E731
                                            log=lambda m: print(m, file=sys.stderr))
    deadline = parse_duration(value("deadline"))
    if args.capacity:
        summary = capacity(out, jobs_factory=jobs_factory, memory_limit_bytes=limit, deadline_seconds=deadline,
                           concurrencies=[int(c) for c in args.capacity_concurrency.split(",")], log=log)
        print(json.dumps(summary, indent=2) if quiet else f"capacity written to {out / 'capacity.json'}")
        return 0
    results = run_load(out, workers=value("workers"), concurrency=value("concurrency"), jobs=jobs_factory(out),
                       mode=args.mode, faults=faults, fault_every_seconds=parse_duration(value("fault_every")),
                       fault_rounds=value("fault_rounds") or None, deadline_seconds=deadline, memory_limit_bytes=limit,
                       broker=args.broker, soak_seconds=parse_duration(args.soak) if args.soak else None,
                       late_after_seconds=args.late_after, log=log)
    if quiet:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_table(results)
        print(f"results: {out / 'results.json'}")
    return 0
