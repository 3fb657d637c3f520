"""A job's timeline, for every job a load run lost or finished late: enough for a loss to explain itself.

From the run's own records:

- when the client published it;
- each delivery that ran, from the delivery ledger (``start``, ``busy``, ``end`` records with their
  process ids);
- what the workers logged about it (every line of every worker's log that names its task id:
  received, retried, succeeded, raised, lost its worker), with the worker's name;
- the fault injected last before each delivery, and every fault that hit one of its runs' processes;
- where the broker holds its message at the end (:func:`broker_holdings`): ``queued`` (in the queue's
  list), ``unacked`` (in kombu's Redis ``unacked`` hash, delivered and not acknowledged) or
  ``nowhere``. RabbitMQ does not show a message without taking it, so there only its queue's counts.
"""

from __future__ import annotations

from pathlib import Path

from audionorm_lab.service.publications import queued_task_ids, unacked_task_ids


def broker_holdings(client, task_ids: set[str]) -> dict[str, str]:
    """Where a Redis broker holds each of ``task_ids``' messages now: ``queued``, ``unacked`` or ``nowhere``."""
    queued, unacked = queued_task_ids(client), unacked_task_ids(client)
    return {task_id: "queued" if task_id in queued else "unacked" if task_id in unacked else "nowhere"
            for task_id in task_ids}


def worker_lines(log_paths: dict[str, Path], task_id: str) -> list[dict]:
    """Every worker log line that names ``task_id``: ``{"worker", "line"}``, in each log's order."""
    found = []
    for worker, path in log_paths.items():
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found += [{"worker": worker, "line": line.strip()} for line in text.splitlines() if task_id in line]
    return found


def _pids(fault: dict) -> set:
    return {*fault.get("pids_killed", []), *fault.get("pids_frozen", []), *fault.get("pids_orphaned", [])}


def timeline(job: dict, runs: list[dict], faults: list[dict], log_paths: dict[str, Path],
             holding: str | None) -> dict:
    """One job's timeline (see the module): ``job`` is its per-job record of ``results.json`` (``submitted``,
    ``finished``, ``state``...) with its ``task_id``."""
    starts = [r for r in runs if r.get("event") == "start"]
    before = []
    for start in starts:
        earlier = [f for f in faults if f["time"] <= start["time"]]
        before.append({"delivery": start.get("delivery"), "started": start["time"], "pid": start.get("pid"),
                       "fault_before": ({"kind": earlier[-1]["kind"], "time": earlier[-1]["time"],
                                         "seconds_before": start["time"] - earlier[-1]["time"]}
                                        if earlier else None)})
    pids = {r.get("pid") for r in runs}
    return {"job": job["job"], "task_id": job["task_id"], "state": job["state"], "published": job["submitted"],
            "finished": job["finished"], "deliveries": before, "ledger": runs,
            "faults_that_hit_its_runs": [f for f in faults if _pids(f) & pids],
            "worker_log": worker_lines(log_paths, job["task_id"]), "broker_holds": holding}


def late(job: dict, late_after_seconds: float) -> bool:
    """Whether ``job`` was lost, or took more than ``late_after_seconds`` from publication to its final state."""
    if job["finished"] is None:
        return True
    return job["finished"] - job["submitted"] > late_after_seconds
