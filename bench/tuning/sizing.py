"""How many pool processes fit a container, by processing mode, and what the capacity run supports.

**streaming**'s figure is the kernel's: the largest concurrency at which one worker in a memory
cgroup of that limit finished every streaming job with no OOM kill (``python -m bench
pool-capacity``); its memory does not grow with the file, so it holds for any length. Beside it,
the RSS arithmetic the table gave before (the largest streaming pool process's RSS in the capacity
run). The other modes' figures are RSS arithmetic, their peak per pool process from where it is
honest:

- **auto**: measured, the largest pool process of its rows: what its in-memory jobs cost
  (the files it keeps in memory; every longer one is streamed);
- **full-load**: the service's in-memory model for the longest file
  (:func:`audionorm_lab.service.processor.in_memory_peak_bytes`): it grows with the file.

RSS arithmetic: pool processes = (container limit - the worker's main process) / one process's peak.
It counts every page a pool process shares with the main process once per process, and the page
cache that the kernel reclaims before it kills anyone: it undercounts what fits.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from audionorm_lab.service.processor import in_memory_peak_bytes

MB = 1e6


def pool_processes_that_fit(limit_bytes: int, main_process_bytes: int, pool_process_peak_bytes: int | None
                            ) -> int | None:
    """How many pool processes a container limit holds (None when the peak was not measured)."""
    if pool_process_peak_bytes is None:
        return None
    return int(max(0, (limit_bytes - main_process_bytes) // max(1, pool_process_peak_bytes)))


def peak_by_mode(capacity: dict) -> dict[str, int]:
    """The largest pool process of each mode's capacity rows, bytes."""
    peaks: dict[str, int] = {}
    for row in capacity["rows"]:
        peaks[row["mode"]] = max(peaks.get(row["mode"], 0), row["max_child_rss_bytes"])
    return peaks


def main_process_bytes(capacity: dict, *loads: dict) -> int:
    """The largest worker main process seen in the capacity run and in ``loads``, bytes."""
    return max([r["max_worker_main_rss_bytes"] for r in capacity["rows"]]
               + [load["max_worker_main_rss_bytes"] for load in loads])


def kernel_fits(pool_capacity: dict) -> dict[int, int]:
    """Container limit (bytes) -> the streaming pool processes the kernel let finish with no OOM kill, from
    ``pool-capacity.json``."""
    return {row["limit_bytes"]: row["fits"] for row in pool_capacity["rows"]}


def sizing_table(fits_by_limit: dict[int, int], longest_seconds: list[float], peaks: dict[str, int],
                 main_bytes: int, sample_rate: int = 44100, channels: int = 2) -> list[dict]:
    """Pool processes per container limit (those of ``fits_by_limit``, :func:`kernel_fits`) and longest file:
    streaming's as the kernel measured it, beside every mode's RSS arithmetic (see the module)."""
    rows = []
    for limit, fits in sorted(fits_by_limit.items()):
        for seconds in longest_seconds:
            full = int(in_memory_peak_bytes(seconds * sample_rate * channels * 4))
            rows.append({"container_limit_bytes": limit, "longest_file_seconds": seconds,
                         "full_load_process_peak_bytes": full,
                         "full_load_processes": pool_processes_that_fit(limit, main_bytes, full),
                         "auto_process_peak_bytes": peaks.get("auto"),
                         "auto_processes": pool_processes_that_fit(limit, main_bytes, peaks.get("auto")),
                         "streaming_process_peak_bytes": peaks.get("streaming"),
                         "streaming_processes": fits,
                         "streaming_processes_by_rss": pool_processes_that_fit(limit, main_bytes,
                                                                               peaks.get("streaming"))})
    return rows


def speed_ratio(capacity: dict, mode: str, against: str) -> float | None:
    """Median over concurrencies of ``mode``'s jobs per minute over ``against``'s (> 1: ``mode`` is faster)."""
    speed = {(r["mode"], r["concurrency"]): r["jobs_per_minute"] for r in capacity["rows"] if r["jobs_per_minute"]}
    ratios = [speed[(mode, c)] / speed[(against, c)] for (m, c) in speed if m == mode and (against, c) in speed]
    return statistics.median(ratios) if ratios else None


def same_job_outputs(capacity: dict, in_memory_mode: str = "auto") -> tuple[Path, Path] | None:
    """A job that ``in_memory_mode`` ran in memory (its report's strategy is full-load) and streaming's output of
    the same job index, from the capacity rows at the lowest concurrency: (in-memory output, streaming output)."""
    def jobs(mode: str) -> dict[int, dict]:
        rows = sorted((r for r in capacity["rows"] if r["mode"] == mode), key=lambda r: r["concurrency"])
        if not rows:
            return {}
        return {job["job"]: job for job in json.loads(Path(rows[0]["results"]).read_text())["jobs"]}

    in_memory, streamed = jobs(in_memory_mode), jobs("streaming")
    for index, job in sorted(in_memory.items()):
        other = streamed.get(index)
        if job["state"] == "SUCCESS" and job["strategy"] == "full-load" and other and other["state"] == "SUCCESS":
            return Path(job["output"]), Path(other["output"])
    return None


def recommendation(capacity: dict, sizing: list[dict], same_samples_db: float | None,
                   same_samples_threshold_db: float = -90.0) -> str:
    """What the capacity run supports, in a few sentences (markdown): streaming's figures against auto's, and
    what keeping auto's in-memory path costs in processes per container. ``same_samples_db`` is streaming's
    output against auto's in-memory output of the same job (dB; -inf: identical)."""
    peaks = peak_by_mode(capacity)
    streaming, auto = peaks.get("streaming"), peaks.get("auto")
    if streaming is None or auto is None:
        return "The capacity run has no streaming or no auto rows: nothing to compare."
    faster = speed_ratio(capacity, "streaming", "auto")
    finished = all(r["finished_all"] and r["kills"] == 0 for r in capacity["rows"] if r["mode"] == "streaming")
    same = same_samples_db is not None and same_samples_db <= same_samples_threshold_db
    facts = [f"a streaming pool process peaked at **{streaming / MB:.0f} MB**, auto's at **{auto / MB:.0f} MB** "
             f"({auto / streaming:.1f}x: its in-memory jobs)",
             f"streaming did **{faster:.2f}x** auto's jobs per minute (median over concurrencies)"
             if faster is not None else "their speeds were not both measured",
             "streaming finished every job at every concurrency without a kill" if finished
             else "streaming did **not** finish every job without a kill",
             (f"streaming's output is the in-memory path's ({_db(same_samples_db)})" if same else
              f"streaming's output differs from the in-memory path's by {_db(same_samples_db)}")]
    largest = max(sizing, key=lambda r: (r["container_limit_bytes"], r["longest_file_seconds"]))
    cost = (f"Keeping auto's in-memory path costs processes: in {largest['container_limit_bytes'] / 1e9:g} GB, "
            f"{largest['auto_processes']} pool processes instead of {largest['streaming_processes']}.")
    smaller, quicker = streaming < auto, faster is not None and faster >= 1.0
    if finished and same and quicker and smaller:
        verdict = ("**Recommendation: run every job with streaming** (`mode=\"streaming\"`): it is smaller, at "
                   "least as fast, and gives the same samples. ")
    elif finished and smaller:
        missing = [what for what, shown in (("that it is at least as fast", quicker),
                                            ("that it gives the same samples", same)) if not shown]
        verdict = (f"**Recommendation: streaming for its memory.** These figures do not show {' or '.join(missing)}: "
                   f"weigh that before dropping the in-memory path. ")
    else:
        verdict = "**No recommendation**: the figures do not show streaming smaller and finishing every job. "
    return "Measured here: " + "; ".join(facts) + ".\n\n" + verdict + cost


def _db(value: float | None) -> str:
    if value is None:
        return "an unmeasured amount"
    return "identical samples" if value == float("-inf") else f"{value:.1f} dB"
