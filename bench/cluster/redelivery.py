"""How long a job whose run a fault cut short waited for its next run: the redelivery latency, by fault kind.

A job's runs are the delivery ledger's records (``{"event": "start"|"end", "time", "pid"...}``); a fault is
an injector event (``{"time", "kind", "pids_killed", "pids_frozen", "pids_orphaned"...}``). A start after a run
that never ended is a redelivery. Its cause is the fault that hit the run's process (killed, frozen or
orphaned it), else the last fault between the two runs (a broker restart hits every run), else the
watchdog's kill; its latency is the time from that fault to the new run's start. A redelivery whose job had
already been requeued before the fault (a copy found the run going and was retried: after a broker restart on
RabbitMQ, after the visibility timeout on Redis) is labelled apart (:data:`ALREADY_REQUEUED`): its copy waited
in the queue, behind the jobs queued meanwhile, whatever the fault.
"""

from __future__ import annotations

import statistics

#: Added to a fault kind's label for the redeliveries of jobs already requeued before the fault.
ALREADY_REQUEUED = " (job already requeued)"


def _cut_short_then_restarted(runs: list[dict]) -> list[tuple[dict, float]]:
    """(the start record of a run that never ended, the next run's start time) for each redelivery in ``runs``."""
    starts = [r for r in runs if r.get("event") == "start"]
    pairs = []
    for earlier, later in zip(starts, starts[1:]):
        ended = any(r.get("event") == "end" and earlier["time"] <= r["time"] <= later["time"]
                    and r.get("pid") == earlier.get("pid") for r in runs)
        if not ended:
            pairs.append((earlier, later["time"]))
    return pairs


def _pids_hit(fault: dict) -> tuple:
    return (*fault.get("pids_killed", []), *fault.get("pids_frozen", []), *fault.get("pids_orphaned", []))


def redelivery_latencies(runs_by_job: dict, faults: list[dict]) -> dict[str, list[float]]:
    """Fault kind -> the latencies (seconds) of the redeliveries that followed it."""
    latencies: dict[str, list[float]] = {}
    for runs in runs_by_job.values():
        for run, restarted in _cut_short_then_restarted(runs):
            between = [f for f in faults if run["time"] <= f["time"] <= restarted]
            # a fault that hit the run's process counts even when logged just before the run's start record
            # (the fault's time is taken before it acts, and the run may start meanwhile)
            hit = [f for f in faults if f["time"] <= restarted and run.get("pid") in _pids_hit(f)]
            cause = (hit or between or [None])[-1]
            kind = cause["kind"] if cause else "watchdog kill"
            if _requeued_before(run, cause["time"] if cause else restarted, runs):
                kind += ALREADY_REQUEUED
            latencies.setdefault(kind, []).append(restarted - (cause["time"] if cause else run["time"]))
    return latencies


def _requeued_before(run: dict, when: float, runs: list[dict]) -> bool:
    """Whether, before ``when``, another delivery of the job found ``run`` going and was retried (a ``busy``
    record): the job's message was back on the queue already, so the fault cut short a run that no message
    stood for any more."""
    return any(r.get("event") == "busy" and run["time"] <= r["time"] <= when for r in runs)


def fault_kind(label: str) -> str:
    """The fault kind of a latency label (without :data:`ALREADY_REQUEUED`)."""
    return label.removesuffix(ALREADY_REQUEUED)


def summarize_latencies(latencies: dict[str, list[float]]) -> dict[str, dict]:
    """Fault kind -> ``{"count", "median_seconds", "p95_seconds", "max_seconds"}`` (p95: the nearest rank)."""
    return {kind: {"count": len(values), "median_seconds": statistics.median(values),
                   "p95_seconds": percentile(values, 95), "max_seconds": max(values)}
            for kind, values in sorted(latencies.items())}


def percentile(values: list[float], percent: float) -> float:
    """The nearest-rank ``percent`` percentile of ``values`` (one of them, never interpolated)."""
    ranked = sorted(values)
    return ranked[max(0, min(len(ranked) - 1, -(-len(ranked) * percent // 100) - 1))]
