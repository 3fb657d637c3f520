"""Helpers the notebooks call, so that no analysis lives only in a notebook cell.

Each notebook records the figures it shows with :func:`record`, into a JSON file
next to the executed notebook; the tests and the regression report read them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from audionorm_lab import normalize_array, probe

from ..measuring import kill_limit
from ..measuring.container import WATCHDOG
from ..measuring.measure import IMPORT_FLOOR_COMMAND, parse_limit, run_measured
from ..measuring.paths import ROOT

MB = 1e6


def record(path: str | Path | None, **values) -> None:
    """Merge ``values`` into the JSON file at ``path`` (nothing when ``path`` is None).

    Returns nothing: a cell that ends with it shows no dump of what it recorded.
    """
    if path:
        path = Path(path)
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(values)
        path.write_text(json.dumps(current, indent=2, default=float))


def _bench(command: str, argv: list[str], **options) -> subprocess.CompletedProcess:
    """``python -m bench COMMAND ARGV --option value...`` (True: a flag; None or False: left out); raises if it fails."""
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key.replace('_', '-')}")
        elif value not in (None, False):
            argv += [f"--{key.replace('_', '-')}", str(value)]
    result = subprocess.run([sys.executable, "-m", "bench", command, *argv], capture_output=True, text=True,
                            cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"bench {command} failed: {result.stderr.strip()[-500:]}")
    return result


def run_matrix(out: str | Path, **options) -> dict:
    """``python -m bench run`` with ``options`` (sizes="1m,5m", strategies="streaming"...); its results.json.

    Runs in fresh subprocesses like every harness run; raises if the harness fails.
    """
    _bench("run", ["--out", str(out), "--no-plots"], **options)
    return json.loads((Path(out) / "results.json").read_text())


def matrix_under_derived_limit(out: str | Path, sizes: str, memory_limit: str = "auto", anchors: str = "sox",
                               **options) -> dict:
    """Streaming (and the outside ``anchors``), then full-load, on ``sizes`` (``python -m bench run``), full-load
    under a limit derived from the streaming runs (:func:`bench.measuring.kill_limit.between`: streaming's largest measured
    peak and full-load's predicted peak on the longest size), or under ``memory_limit`` when it is not ``"auto"``.

    Returns ``{"rows": both runs' rows, "limit": {"limit_bytes", "chosen": "derived"|"given", ...}}``. With
    ``auto`` the streaming runs ran under the harness's default limit (they come first: the limit is made from
    them), and each of their peaks is below the derived limit by the margin, by construction.
    """
    out = Path(out)
    given = None if memory_limit == "auto" else memory_limit
    first = ",".join(["streaming", *(a for a in anchors.split(",") if a)])
    streaming = run_matrix(out / "streaming", sizes=sizes, strategies=first, memory_limit=given, **options)
    if given is None:
        longest = max(streaming["parameters"]["sizes"], key=lambda s: s["seconds"])
        info = probe(longest["path"])
        ok = [r["peak_rss_bytes"] for r in streaming["rows"] if r["strategy"] == "streaming" and r["status"] == "ok"]
        if not ok:
            raise RuntimeError("no streaming run finished: no peak to derive the limit from")
        chosen = kill_limit.between(max(ok), kill_limit.full_load_predicted_bytes(longest["seconds"], info.sample_rate,
                                                                                   info.channels))
        limit = {**chosen.to_dict(), "chosen": "derived", "why": chosen.explain(), "longest_size": longest["label"]}
    else:
        limit = {"limit_bytes": parse_limit(given), "chosen": "given"}
    full = run_matrix(out / "full-load", sizes=sizes, strategies="full-load", memory_limit=limit["limit_bytes"],
                      **options)
    return {"rows": streaming["rows"] + full["rows"], "limit": limit}


def speed_over(rows: list[dict], anchor: str, strategy: str = "streaming") -> dict[str, dict]:
    """``strategy``'s wall and CPU seconds over ``anchor``'s on each size both finished (first repeat):
    ``{size: {"wall": ratio, "cpu": ratio}}``."""
    done = {(r["strategy"], r["size"]): r for r in rows if r["status"] == "ok" and r["repeat"] == 0}
    return {size: {"wall": r["wall_seconds"] / done[(anchor, size)]["wall_seconds"],
                   "cpu": r["cpu_seconds"] / done[(anchor, size)]["cpu_seconds"]}
            for (name, size), r in done.items() if name == strategy and (anchor, size) in done}


def killer(run: dict) -> str:
    """Who held a run's memory limit, in words (``run``: a bench row or a service outcome)."""
    if run.get("limit_enforced_by") in (None, WATCHDOG):
        return "the harness's RSS watchdog (no memory cgroup could be made here)"
    return f"the kernel's OOM killer ({run['limit_enforced_by']})"


def kill_counted(run: dict) -> bool:
    """Whether whoever held a run's memory limit counted a kill (``run``: a bench row or a service outcome): the
    watchdog did the killing itself; where a memory cgroup held the limit, the kernel counted an OOM kill there."""
    return run.get("limit_enforced_by") == WATCHDOG or (run.get("oom_kills") or 0) >= 1


def killed_at_limit(run: dict) -> bool:
    """Whether a bench row's run was killed at its memory limit by whoever held it: signal 9, and the kill
    counted (:func:`kill_counted`)."""
    return run["status"] == "killed: signal 9" and kill_counted(run)


def service_repro(duration: str = "5m", memory_limit: str = "auto") -> dict:
    """``python -m bench service-repro --json``: the job on a real Celery worker, old processor then new, under
    ``memory_limit`` (``"auto"``: derived from streaming's peak measured on the worker; see
    :func:`bench.cluster.service_repro.reproduce`)."""
    return json.loads(_bench("service-repro", ["--json"], duration=duration, memory_limit=memory_limit).stdout)


def widget_frontend() -> bool:
    """Whether this kernel was started by a Jupyter server for a notebook open in a frontend (JupyterLab,
    Notebook 7), where ipywidgets render: the server sets ``JPY_SESSION_NAME``. papermill and nbclient
    start kernels without it, and a widget under them can hang the run (jupyter/nbclient#312,
    nteract/papermill#723), so notebooks draw sliders only when this is true."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def service_load(out: str | Path, **options) -> dict:
    """``python -m bench service-load --json`` with ``options`` (jobs=8, durations="1m,3m", capacity=True...);
    its results (``capacity.json``'s content with ``capacity=True``). Raises if the command fails."""
    return json.loads(_bench("service-load", ["--out", str(out), "--json"], **options).stdout)


def service_loads(out: str | Path, brokers: list[str], **options) -> dict[str, dict]:
    """:func:`service_load` on each of ``brokers`` at the same time (:func:`at_once`), into ``out/load-BROKER``; their
    results by broker, in the order given.

    Each run has its own broker, workers and memory containers on free ports, so the runs share only the CPU: much
    of a load run is waiting (a visibility timeout, a broker's restart, the faults' spacing), and running the brokers
    side by side takes about the longer run's time rather than the sum.
    """
    return at_once(**{broker: partial(service_load, Path(out) / f"load-{broker}", broker=broker, **options)
                      for broker in brokers})


def at_once(**runs: Callable[[], object]) -> dict[str, object]:
    """Each of ``runs`` (functions of no arguments) at the same time, each in a thread of its own; their results by
    name, in the order given. Waits until every run has ended, then raises the first failure in that order."""
    with ThreadPoolExecutor(max_workers=max(1, len(runs))) as pool:
        futures = {name: pool.submit(run) for name, run in runs.items()}
    return {name: future.result() for name, future in futures.items()}


def pool_capacity(out: str | Path, **options) -> dict:
    """``python -m bench pool-capacity --json`` with ``options`` (limits="512M,1G", duration="1m", overload="1G"...);
    its ``pool-capacity.json``. Raises if the command fails."""
    return json.loads(_bench("pool-capacity", ["--out", str(out), "--json"], **options).stdout)


def smallest_container(path: str | Path, **options) -> dict:
    """``python -m bench smallest-container PATH --json`` with ``options`` (strategy="streaming", compat="service",
    resolution="4M"...); its result. Raises if the command fails."""
    return json.loads(_bench("smallest-container", [str(path), "--json"], **options).stdout)


def import_floor_bytes(repeat: int = 3) -> float:
    """Peak RSS of a fresh Python that imports what a streaming run imports (median of ``repeat``):
    :data:`bench.measuring.measure.IMPORT_FLOOR_COMMAND`."""
    return float(np.median([run_measured(IMPORT_FLOOR_COMMAND).peak_rss_bytes for _ in range(repeat)]))


def table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``columns`` (bytes shown in MB, floats to 2 decimals)."""
    def cell(row, column):
        value = row.get(column)
        if value is None:
            return "-"
        if column.endswith("_bytes"):
            return f"{value / MB:.1f}"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    head = [c.replace("_bytes", " (MB)") for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def boundary_view(samples: np.ndarray, sample_rate: int, chunk_seconds: float, overlap_seconds: float,
                  profile: str = "file", half_seconds: float = 0.05, near_seconds: float | None = None) -> dict:
    """Whole-file and chunked output around a chunk boundary (for waveform/spectrogram plots and players):
    the first boundary, or the one nearest ``near_seconds``. ``*_full`` are the whole first channels."""
    gate_only = dict(highpass_hz=None, voice_band_hz=None, normalize_loudness=False)
    whole, _ = normalize_array(samples, sample_rate, chunk_seconds=math.inf, **gate_only)
    chunked, report = normalize_array(samples, sample_rate, chunk_seconds=chunk_seconds,
                                      overlap_seconds=overlap_seconds, noise_profile=profile, **gate_only)
    boundaries = report.chunk_starts_frames[1:] or [len(samples) // 2]
    target = boundaries[0] if near_seconds is None else near_seconds * sample_rate
    boundary = min(boundaries, key=lambda b: abs(b - target))
    half = int(half_seconds * sample_rate)
    window = slice(max(0, boundary - half), boundary + half)
    return {"time_seconds": np.arange(window.start, min(len(samples), window.stop)) / sample_rate,
            "whole": whole[window, 0], "chunked": chunked[window, 0], "boundary_seconds": boundary / sample_rate,
            "chunked_full": chunked[:, 0], "whole_full": whole[:, 0]}


def memory_over_time(capture: str | Path) -> dict:
    """memray's temporal data: RSS and heap (MB) against seconds since the start of the capture."""
    import memray

    snapshots = list(memray.FileReader(str(capture)).get_memory_snapshots())
    if not snapshots:
        return {"seconds": [], "rss_mb": [], "heap_mb": []}
    start = snapshots[0].time
    return {"seconds": [(s.time - start) / 1000 for s in snapshots], "rss_mb": [s.rss / MB for s in snapshots],
            "heap_mb": [s.heap / MB for s in snapshots]}


def top_allocators(capture: str | Path, n: int = 8) -> list[dict]:
    """The allocations alive at the heap's peak, largest first: where the memory went."""
    import memray

    records = memray.FileReader(str(capture)).get_high_watermark_allocation_records(merge_threads=True)
    rows = []
    for record in sorted(records, key=lambda r: -r.size)[:n]:
        frames = record.stack_trace()
        where = next(((f, fn, line) for fn, f, line in frames if "/audionorm_lab/" in f or "/bench/" in f),
                     (frames[0][1], frames[0][0], frames[0][2]) if frames else ("?", "?", 0))
        top = frames[0] if frames else ("?", "?", 0)
        rows.append({"size_bytes": record.size, "allocations": record.n_allocations,
                     "allocated_in": f"{top[0]} ({Path(top[1]).name}:{top[2]})",
                     "called_from": f"{where[1]} ({Path(where[0]).name}:{where[2]})"})
    return rows


def flamegraph(capture: str | Path, html: str | Path) -> Path:
    """memray's flame graph of a capture, written as a standalone HTML file."""
    result = subprocess.run([sys.executable, "-m", "memray", "flamegraph", "--force", "-o", str(html), str(capture)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"memray flamegraph failed: {result.stderr.strip()[-300:]}")
    return Path(html)
