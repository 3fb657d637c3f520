"""Does streaming memory stay flat with file length, and how fast is it against the full-load chain?

    python -m bench flat-memory [--short 1m] [--long 60m] [--baseline 10m] [--repeat 3]

Makes stereo 44.1 kHz 128 kbps mp3 samples with data/fetch_samples.py, then runs
``audionorm-lab normalize`` (all stages on, default chunking) on each in a fresh,
measured process. The full-load chain (pydub load + the same stages on the whole
array) runs on the baseline file in the same session, under a memory limit.
Medians over ``--repeat`` runs; results go to ``bench/results/flat-memory/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from data.fetch_samples import make_sample, parse_duration

from .measure import IMPORT_FLOOR_COMMAND, default_memory_limit, run_measured
from .paths import RESULTS

MB = 1e6


def normalize_command(src: Path, dst: Path, strategy: str) -> list[str]:
    return [sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--strategy", strategy,
            "--json", "--quiet"]


def measure(label: str, command: list[str], repeat: int, limit: int, audio_seconds: float) -> dict:
    runs = [run_measured(command, memory_limit_bytes=limit) for _ in range(repeat)]
    for run in runs:
        if run.status != "ok":
            raise SystemExit(f"{label}: {run.status}: {run.stderr.strip()[-300:]}")
    wall = statistics.median(r.wall_seconds for r in runs)
    row = {"label": label, "audio_seconds": audio_seconds, "runs": repeat,
           "peak_rss_bytes": statistics.median(r.peak_rss_bytes for r in runs),
           "maxrss_bytes": statistics.median(r.maxrss_bytes for r in runs),
           "wall_seconds": wall, "cpu_seconds": statistics.median(r.cpu_seconds for r in runs),
           "realtime_multiple": audio_seconds / wall if audio_seconds else None}
    print(f"{label:<28} {audio_seconds:>7.0f} s audio  {wall:>7.1f} s wall  "
          f"{row['realtime_multiple'] or 0:>6.1f}x real time  peak RSS {row['peak_rss_bytes'] / MB:>7.1f} MB",
          file=sys.stderr)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench flat-memory", description=__doc__.splitlines()[0])
    parser.add_argument("--short", default="1m", help="the short input's length (default 1m)")
    parser.add_argument("--long", default="60m", help="the long input's length (default 60m)")
    parser.add_argument("--baseline", default="10m", help="file length for the full-load comparison")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians are quoted (default 1)")
    parser.add_argument("--memory-limit", type=float, default=None, help="bytes; default min(4 GB, half free)")
    parser.add_argument("--out", type=Path, default=RESULTS / "flat-memory",
                        help="results folder (default bench/results/flat-memory)")
    args = parser.parse_args(argv)
    limit = int(args.memory_limit or default_memory_limit())
    lengths = {name: parse_duration(getattr(args, name)) for name in ("short", "long", "baseline")}
    samples = {name: make_sample(seconds, "mp3", log=lambda m: print(m, file=sys.stderr))
               for name, seconds in lengths.items()}
    rows = [measure("import floor", IMPORT_FLOOR_COMMAND, args.repeat, limit, 0.0)]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.wav"
        for name in ("short", "long", "baseline"):
            rows.append(measure(f"streaming {getattr(args, name)}", normalize_command(samples[name], out, "streaming"),
                                args.repeat, limit, lengths[name]))
        rows.append(measure(f"full-load {args.baseline}", normalize_command(samples["baseline"], out, "full-load"),
                            args.repeat, limit, lengths["baseline"]))
    floor, short, long_, streaming_base, full_base = rows
    growth = (long_["peak_rss_bytes"] - short["peak_rss_bytes"]) / MB
    summary = {
        "import_floor_mb": floor["peak_rss_bytes"] / MB,
        "streaming_growth_mb": growth,
        "streaming_flat_within_60mb": growth <= 60,
        "streaming_long_realtime_multiple": long_["realtime_multiple"],
        "streaming_vs_full_load_speed_ratio": full_base["wall_seconds"] / streaming_base["wall_seconds"],
        "full_load_vs_streaming_peak_rss_ratio": full_base["peak_rss_bytes"] / streaming_base["peak_rss_bytes"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary,
                                                       "memory_limit_bytes": limit}, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if summary["streaming_flat_within_60mb"] else 1
