"""python -m bench smallest-container FILE: the smallest memory container a job finishes in, the kernel as judge.

    python -m bench smallest-container FILE [--strategy streaming|full-load|ffmpeg-segments]
                                            [--compat float|service] [--resolution 2M] [--json]

Each try is a fresh ``audionorm-lab normalize`` in a fresh memory cgroup (bench.measuring.container): the
kernel charges what the job's processes touch, page cache included, reclaims what it can as
the limit tightens, and its OOM killer ends the job when nothing is left to reclaim. A first
run without pressure (under the harness's default limit) measures what the kernel charges
when it has room, and how much of it is anonymous memory; limits from 1.5 times that up
(doubling) find one the job finishes in, and a bisection then narrows down to the smallest
that still finishes, to ``--resolution``. Near that limit the job slows (reclaim, then refaults: thrashing): every
try's wall time is kept, and a try that takes more than ``--slowdown`` times the run without
pressure counts as not finishing. Prints the smallest limit in MB with the wall time and
the output's size at each try; ``--json`` prints the whole result. The output's page cache
is charged to the same container, and cgroup v1 is known to OOM-kill writers whose dirty
pages fill their group: on a long file the output's size shows that writing gigabytes
survives the smallest limit. Exit 2 when the job does not finish even
without pressure.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from audionorm_lab import probe

from .flat_memory import normalize_command
from .measure import default_memory_limit, parse_limit, run_measured

MB = 10**6


@dataclass(frozen=True)
class Try:
    """One run at one limit. Bytes, seconds."""

    limit_bytes: int
    finished: bool
    status: str
    wall_seconds: float
    cgroup_peak_bytes: int | None
    anon_bytes: int | None  # anonymous memory charged at the most-charged sample
    peak_rss_bytes: int
    oom_kills: int | None
    limit_enforced_by: str | None
    output_bytes: int | None  # the output written (its page cache charged to the same container); None: none


def attempt(command: list[str], limit_bytes: int, timeout_seconds: float | None, output: Path | None = None) -> Try:
    """One fresh run of ``command`` (which writes ``output``) in a fresh container of ``limit_bytes``."""
    if output is not None:
        output.unlink(missing_ok=True)
    run = run_measured(command, memory_limit_bytes=limit_bytes, timeout_seconds=timeout_seconds)
    written = output.stat().st_size if output is not None and output.exists() else None
    return Try(limit_bytes, run.status == "ok", run.status, run.wall_seconds, run.cgroup_peak_bytes,
               run.cgroup_anon_bytes, run.peak_rss_bytes, run.oom_kills, run.limit_enforced_by, written)


def search(command: list[str], resolution_bytes: int, slowdown: float, ceiling_bytes: int,
           output: Path | None = None) -> list[Try]:
    """The tries: one under ``ceiling_bytes``, then limits from 1.5x its anonymous memory up (doubling) until one
    finishes, then a bisection between the largest that failed and the smallest that finished. (What the kernel
    charged with room is mostly page cache on a long file, gigabytes of it: it says little of what is needed.)"""
    roomy = attempt(command, ceiling_bytes, None, output)
    tries = [roomy]
    if not roomy.finished:
        return tries
    timeout = slowdown * roomy.wall_seconds + 30.0
    charged = roomy.cgroup_peak_bytes or roomy.peak_rss_bytes
    fits, fails = charged, 0
    guess = int(1.5 * (roomy.anon_bytes or charged))
    while guess < fits:
        tries.append(attempt(command, guess, timeout, output))
        if tries[-1].finished:
            fits = guess
        else:
            fails, guess = guess, 2 * guess
    while fits - fails > resolution_bytes:
        middle = (fits + fails) // 2
        tries.append(attempt(command, middle, timeout, output))
        if tries[-1].finished:
            fits = middle
        else:
            fails = middle
    if all(t.limit_bytes != fits for t in tries):  # the charge with room was never tried as a limit itself
        tries.append(attempt(command, fits, timeout, output))
    return tries


def smallest(tries: list[Try]) -> Try | None:
    finished = [t for t in tries if t.finished]
    return min(finished, key=lambda t: t.limit_bytes) if finished else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench smallest-container", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--strategy", default="streaming", choices=["streaming", "full-load", "ffmpeg-segments"])
    parser.add_argument("--compat", default="float", choices=["float", "service"])
    parser.add_argument("--resolution", default="2M", help="stop when the bounds are this close (default 2M)")
    parser.add_argument("--slowdown", type=float, default=10.0,
                        help="a try slower than this many times the run with room counts as not finishing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"smallest-container: no such file: {args.file}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="smallest-container-") as scratch:
        output = Path(scratch) / "out.wav"
        command = [*normalize_command(args.file, output, args.strategy), "--compat", args.compat]
        tries = search(command, parse_limit(args.resolution), args.slowdown, default_memory_limit(), output)
    best = smallest(tries)
    result = {"file": str(args.file), "strategy": args.strategy, "compat": args.compat,
              "audio_seconds": probe(args.file).duration_seconds,
              "smallest_limit_bytes": best.limit_bytes if best else None,
              "wall_seconds_at_smallest": best.wall_seconds if best else None,
              "output_bytes_at_smallest": best.output_bytes if best else None,
              "limit_enforced_by": tries[-1].limit_enforced_by, "tries": [asdict(t) for t in tries]}
    print(json.dumps(result, indent=2) if args.json else describe(result))
    if best is None:
        print(f"smallest-container: {args.strategy} did not finish even with room: {tries[0].status}", file=sys.stderr)
        return 2
    return 0


def describe(result: dict) -> str:
    """The result in lines: each try, then the smallest limit."""
    lines = [f"{'limit MB':>9} {'finished':>9} {'wall s':>8} {'charged MB':>11} {'output MB':>10}  status"]
    for t in sorted(result["tries"], key=lambda t: t["limit_bytes"]):
        charged = f"{t['cgroup_peak_bytes'] / MB:.1f}" if t["cgroup_peak_bytes"] is not None else "-"
        written = f"{t['output_bytes'] / MB:.0f}" if t["output_bytes"] is not None else "-"
        lines.append(f"{t['limit_bytes'] / MB:>9.1f} {'yes' if t['finished'] else 'no':>9} {t['wall_seconds']:>8.2f} "
                     f"{charged:>11} {written:>10}  {t['status']}")
    if result["smallest_limit_bytes"]:
        lines.append(f"smallest container: {result['smallest_limit_bytes'] / MB:.1f} MB "
                     f"({result['limit_enforced_by']}), {result['wall_seconds_at_smallest']:.2f} s "
                     f"({result['audio_seconds'] / result['wall_seconds_at_smallest']:.0f}x real time)")
    return "\n".join(lines)
