"""python -m bench hostile: every hostile upload through the CLI, each in a fresh measured process.

    python -m bench hostile [--strategies streaming,full-load] [--memory-limit 2G] [--json]

The corpus (:mod:`data.hostile`) is made in a temporary folder beside ``secret.mp3``,
another tenant's recording that none of it may read. Each file goes through
``audionorm-lab normalize`` with each strategy, under the watchdog's memory limit, and the
row says what happened: the exit code, how many lines stderr got (one, for a refusal)
and the last, whether ``secret.mp3`` was read (its access time, set in the past before
each run), whether an output or a temporary file was left, the output's frames, the wall
time and the peak RSS of the process tree, above the import floor too. ``full-load`` is
the service as it was: it reads the playlists' target, which is the evidence.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import soundfile as sf

from audionorm_lab.media.sinks import PARTIAL_SUFFIX
from data.hostile import make_corpus, mark_unread, secret_of, was_read

from .measure import IMPORT_FLOOR_COMMAND, parse_limit, run_measured

DEFAULT_STRATEGIES = ("streaming", "full-load")


def run_one(file, strategy: str, out: Path, limit: int, floor: int) -> dict:
    """One hostile file through one strategy, measured; the row (see the module)."""
    secret = secret_of(file.path.parent)
    unread = mark_unread(secret)
    dst = out / f"{file.path.name}.{strategy}.wav"
    command = [sys.executable, "-m", "audionorm_lab", "normalize", str(file.path), str(dst), "--strategy", strategy,
               "--quiet"]
    result = run_measured(command, memory_limit_bytes=limit, timeout_seconds=600)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    frames = None
    if dst.exists():
        try:
            frames = sf.info(str(dst)).frames
        except (sf.LibsndfileError, RuntimeError):
            frames = -1  # not readable audio
    leftovers = sorted(p.name for p in out.iterdir() if p.name.endswith(PARTIAL_SUFFIX))
    row = {"file": file.name, "what": file.what, "expect": file.expect, "strategy": strategy,
           "status": result.status, "exit_code": result.returncode, "stderr_lines": len(lines),
           "stderr_last": lines[-1] if lines else "", "read_another_file": was_read(secret, unread),
           "output_frames": frames, "leftovers": leftovers, "wall_seconds": result.wall_seconds,
           "peak_rss_bytes": result.peak_rss_bytes, "above_floor_bytes": result.peak_rss_bytes - floor}
    dst.unlink(missing_ok=True)
    return row


def run(strategies=DEFAULT_STRATEGIES, memory_limit_bytes: int = 2 * 10**9, folder: Path | None = None) -> dict:
    """The corpus through each strategy; ``{"floor_bytes", "rows"}``."""
    floor = run_measured(IMPORT_FLOOR_COMMAND).peak_rss_bytes
    with tempfile.TemporaryDirectory(prefix="audionorm-hostile-") as scratch:
        corpus_folder = Path(folder or Path(scratch) / "corpus")
        out = Path(scratch) / "out"
        out.mkdir()
        corpus = make_corpus(corpus_folder)
        rows = [run_one(file, strategy, out, memory_limit_bytes, floor) for file in corpus for strategy in strategies]
    return {"floor_bytes": floor, "memory_limit_bytes": memory_limit_bytes, "rows": rows}


def print_table(result: dict) -> None:
    print(f"import floor {result['floor_bytes'] / 1e6:.0f} MB; each run under {result['memory_limit_bytes'] / 1e6:.0f} MB")
    print(f"{'file':<28} {'strategy':<10} {'exit':>4} {'lines':>5} {'other file':>10} {'frames':>9} {'wall s':>7} "
          f"{'MB above floor':>14}  last line")
    for r in result["rows"]:
        frames = "-" if r["output_frames"] is None else str(r["output_frames"])
        print(f"{r['file']:<28} {r['strategy']:<10} {str(r['exit_code']):>4} {r['stderr_lines']:>5} "
              f"{'READ' if r['read_another_file'] else 'no':>10} {frames:>9} {r['wall_seconds']:>7.2f} "
              f"{r['above_floor_bytes'] / 1e6:>14.0f}  {r['stderr_last'][:110]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                        help="comma-separated: streaming, full-load, ffmpeg-segments (default streaming,full-load)")
    parser.add_argument("--memory-limit", default="2G", help="the watchdog's limit on each run (default 2G)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    result = run([s.strip() for s in args.strategies.split(",") if s.strip()], parse_limit(args.memory_limit))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0
