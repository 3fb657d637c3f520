"""What a load run prints: the results table, and the timelines of lost and late jobs."""

from __future__ import annotations

import time


def row_line(row: dict) -> str:
    return (f"{row['mode']:>10} x{row['concurrency']}: {row['succeeded']}/{row['jobs']} finished, "
            f"{row['kills']} killed, {row['redelivered']} redelivered, {row['jobs_per_minute'] or 0:.1f} jobs/min, "
            f"worker tree peak {row['max_worker_tree_rss_bytes'] / 1e6:.0f} MB")


def print_table(results: dict) -> None:
    keys = ("submitted", "succeeded", "failed", "failed_as_expected", "lost", "ran_more_than_once",
            "ran_concurrently", "partial_outputs", "redelivered", "finished_by_streaming_fallback", "oom_kills",
            "watchdog_kills", "limit_enforced_by")
    for key in keys:
        print(f"{key:>32}: {results[key]}")
    print(f"{'leftover_temporaries':>32}: {len(results['leftover_temporaries'])}")
    print(f"{'faults_injected':>32}: {results['faults_injected']}")
    print(f"{'worker_crashes':>32}: {len(results['worker_crashes'])}")
    print(f"{'max_child_rss_bytes':>32}: {results['max_child_rss_bytes'] / 1e6:.0f} MB")
    print(f"{'max_worker_tree_rss_bytes':>32}: {results['max_worker_tree_rss_bytes'] / 1e6:.0f} MB")
    print(f"{'wall_seconds':>32}: {results['wall_seconds']:.1f}")
    print(f"{'audio_seconds_per_wall_second':>32}: {results['audio_seconds_per_wall_second'] or 0:.1f}")
    for label, latency in results["redelivery_latency"].items():
        print(f"{'redelivery after ' + label:>32}: {latency['median_seconds']:.1f} s median, "
              f"{latency['p95_seconds']:.1f} s p95, {latency['max_seconds']:.1f} s max, of {latency['count']}")
    print(f"{'late or lost (with timelines)':>32}: {results['late_or_lost']}")
    for line in timeline_lines(results["timelines"]):
        print(line)
    for failure in results["failures"]:
        print(f"  job {failure['job']} failed{' (as expected)' if failure['expected'] else ''}: "
              f"{failure['error_type']}: {failure['error']}")
    for crash in results["worker_crashes"]:
        print(f"  worker {crash['worker']} exited on its own (code {crash['exit_code']}), restarted: {crash['error']}")
    for partial in results["partial_output_paths"]:
        print(f"  partial output: {partial}")


def timeline_lines(timelines: list[dict]) -> list[str]:
    """Each late or lost job's timeline in a few lines: published, each delivery with the fault before it, the
    broker's holding of its message, its final state."""
    lines = []
    for t in timelines:
        lines.append(f"  job {t['job']} ({t['task_id']}): {t['state']}, published {_clock(t['published'])}, "
                     f"finished {_clock(t['finished']) if t['finished'] else 'never'}; "
                     f"broker holds it: {t['broker_holds'] or 'not readable (RabbitMQ)'}")
        for d in t["deliveries"]:
            fault = d["fault_before"]
            lines.append(f"    delivery {d['delivery']} at {_clock(d['started'])} (pid {d['pid']})"
                         + (f", {fault['seconds_before']:.1f} s after {fault['kind']}" if fault else ""))
        if not t["deliveries"]:
            lines.append("    never delivered to a run (no start in the ledger)")
        lines += [f"    {w['worker']}: {w['line'][:160]}" for w in t["worker_log"][-6:]]
    return lines


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 10) % 10}"
