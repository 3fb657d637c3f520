"""One measured run, inside the fresh subprocess: a strategy under memray, its report as JSON on stdout.

    python -m bench.measuring.child --capture RUN.bin STRATEGY IN OUT [--chunk-seconds S] [--overlap-seconds S] [--concat M]
        [--workers N]

The parent (bench.measuring.harness) samples this process tree's RSS and enforces the memory limit.
"""

from __future__ import annotations

import argparse
import json
import sys

from audionorm_lab import NormalizeOptions
from audionorm_lab.strategies import STRATEGIES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measuring.child")
    parser.add_argument("strategy", choices=list(STRATEGIES), help="the strategy run in this process")
    parser.add_argument("input", help="input file")
    parser.add_argument("output", help="output file")
    parser.add_argument("--capture", help="memray capture file; none: no tracking")
    parser.add_argument("--chunk-seconds", type=float, default=NormalizeOptions.chunk_seconds, help="seconds")
    parser.add_argument("--overlap-seconds", type=float, default=NormalizeOptions.overlap_seconds, help="seconds")
    parser.add_argument("--concat", default="stream", help="ffmpeg-segments join: stream or memory")
    parser.add_argument("--workers", type=int, default=None, help="streaming's gating threads (default: the cores)")
    args = parser.parse_args(argv)
    # the CLI's default output (a 32-bit float WAV, as SoX's chain writes; full-load's is the service's 16 bits)
    options = NormalizeOptions(chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds,
                               workers=args.workers)
    extra = {"concat": args.concat} if args.strategy == "ffmpeg-segments" else {}
    run = STRATEGIES[args.strategy]
    if args.capture:
        import memray  # only when tracking: its import is no part of an untracked run's time

        with memray.Tracker(args.capture):
            report = run(args.input, args.output, options, **extra)
    else:
        report = run(args.input, args.output, options, **extra)
    json.dump(report.to_dict(), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
