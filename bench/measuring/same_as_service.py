"""python -m bench same-as-service: does streaming write the service's files? Compared as an operator would.

    python -m bench same-as-service FILES_OR_DIR... [--outputs wav,flac] [--memory-limit M] [--json]

Each input goes through the service as it was (``--strategy full-load``, under the watchdog's
memory limit) and through streaming in service mode (``--compat service``), each in a fresh
measured process of the CLI, into each output format. One row per input and format: the
input's format, its duration, whether the files' bytes are identical, whether their decoded
samples are, how many samples differ, the largest difference (16-bit steps) and the
difference's level (dB below the service's output). A row whose full-load run was killed at the
limit says so: there is no service output to compare with. Exit code 1 when any file differs
(bytes for WAV, decoded samples otherwise), 2 for bad arguments.

Two inputs are compared at once (:data:`COMPARED_AT_ONCE`), each run still a fresh measured process with its own
limit: the rows' peaks are each process's own, and their wall times include the other input's share of the cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from audionorm_lab.media.probe import probe
from audionorm_lab.media.sameness import compare_files

from .measure import IMPORT_FLOOR_COMMAND, default_memory_limit, parse_limit, run_measured

#: What a folder argument contributes: the audio files directly in it.
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".mka", ".mkv", ".mp4", ".webm")
OUTPUT_FORMATS = ("wav", "flac", "mp3", "ogg")
#: How streaming runs against the service: in its service mode.
STREAMING_ARGS = ["--compat", "service"]
#: Inputs compared at once (a sameness check, not a timing: the corpus in notebook 01 takes half the time).
COMPARED_AT_ONCE = 2


def inputs_of(paths: list[str]) -> list[Path]:
    """The files named, and the audio files in the folders named, sorted within each folder."""
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        else:
            found.append(path)
    return found


def _normalize(src: Path, dst: Path, extra: list[str], limit: int | None):
    command = [sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--json", *extra]
    return run_measured(command, memory_limit_bytes=limit, timeout_seconds=3600)


def describe_input(path: Path) -> dict:
    """The input's format, rate, channels and duration as the probe reads them (no decode)."""
    info = probe(path)
    return {"format": f"{path.suffix.lstrip('.').lower()} {info.sample_rate / 1000:g} kHz {info.channels} ch",
            "duration_seconds": info.duration_seconds, "frames": info.frames}


def compare_one(src: Path, output_format: str, scratch: Path, limit: int | None, floor: int) -> dict:
    """One input into one output format, both ways; its row (see the module)."""
    row = {"input": str(src), **describe_input(src), "output": output_format}
    service_out, streaming_out = scratch / f"service.{output_format}", scratch / f"streaming.{output_format}"
    service = _normalize(src, service_out, ["--strategy", "full-load"], limit)
    streamed = _normalize(src, streaming_out, STREAMING_ARGS, limit)
    row.update(full_load_status=service.status, full_load_peak_bytes=service.peak_rss_bytes,
               full_load_seconds=service.wall_seconds, streaming_status=streamed.status,
               streaming_peak_bytes=streamed.peak_rss_bytes, streaming_above_floor_bytes=streamed.peak_rss_bytes - floor,
               streaming_seconds=streamed.wall_seconds)
    if service.status == "ok" and streamed.status == "ok":
        row.update(compare_files(streaming_out, service_out).to_dict())
    else:
        row["note"] = (f"full-load {service.status} at the {limit / 1e6:.0f} MB limit: no service output to compare"
                       if service.killed else f"full-load {service.status}, streaming {streamed.status}")
    for path in (service_out, streaming_out):
        path.unlink(missing_ok=True)
    return row


def differs(row: dict) -> bool:
    """Whether the row shows a file that is not the service's: bytes for WAV, decoded samples for the rest."""
    if "identical_samples" not in row:
        return row.get("streaming_status") != "ok" and row.get("full_load_status") == "ok"
    return not (row["identical_bytes"] if row["output"] == "wav" else row["identical_samples"])


def run(paths: list[str], outputs=("wav",), memory_limit_bytes: int | None = None) -> dict:
    """Every input into every output format; ``{"floor_bytes", "memory_limit_bytes", "rows", "differing"}``."""
    limit = memory_limit_bytes or default_memory_limit()
    floor = run_measured(IMPORT_FLOOR_COMMAND).peak_rss_bytes
    pairs = [(src, fmt) for src in inputs_of(paths) for fmt in outputs]
    with tempfile.TemporaryDirectory(prefix="audionorm-same-") as scratch, \
            ThreadPoolExecutor(COMPARED_AT_ONCE) as pool:
        folders = [Path(scratch) / str(index) for index in range(len(pairs))]
        for folder in folders:
            folder.mkdir()
        rows = list(pool.map(lambda pair, folder: compare_one(*pair, folder, limit, floor), pairs, folders))
    return {"floor_bytes": floor, "memory_limit_bytes": limit, "rows": rows,
            "differing": sum(differs(r) for r in rows)}


def _yes(value) -> str:
    return "-" if value is None else "yes" if value else "NO"


def print_table(result: dict) -> None:
    print(f"each run under {result['memory_limit_bytes'] / 1e6:.0f} MB; streaming in service mode against "
          f"full-load (the service as it was)")
    print(f"{'input':<34} {'format':<18} {'min':>5} {'out':<4} {'bytes':>5} {'samples':>7} {'differing':>9} "
          f"{'step':>5} {'dB':>7}  note")
    for r in result["rows"]:
        minutes = (r["duration_seconds"] or 0) / 60
        db = r.get("difference_db")
        print(f"{Path(r['input']).name[:34]:<34} {r['format']:<18} {minutes:>5.1f} {r['output']:<4} "
              f"{_yes(r.get('identical_bytes')):>5} {_yes(r.get('identical_samples')):>7} "
              f"{r.get('samples_differing', '-'):>9} {r.get('largest_step', 0) or 0:>5.0f} "
              f"{'-inf' if db is None and 'difference_db' in r else '-' if db is None else f'{db:.1f}':>7}  "
              f"{r.get('note', '')}")
    print(f"{result['differing']} of {len(result['rows'])} differ")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench same-as-service", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="input files, or folders of them")
    parser.add_argument("--outputs", default="wav", help=f"output formats, comma-separated ({', '.join(OUTPUT_FORMATS)})")
    parser.add_argument("--memory-limit", help="full-load's limit, e.g. 2G (default: half the free memory, 4G at most)")
    parser.add_argument("--json", action="store_true", help="the rows as JSON on stdout")
    args = parser.parse_args(argv)
    outputs = [f.strip().lstrip(".") for f in args.outputs.split(",") if f.strip()]
    bad = [f for f in outputs if f not in OUTPUT_FORMATS]
    missing = [p for p in args.paths if not Path(p).exists()]
    if bad or missing or not inputs_of(args.paths):
        what = (f"unknown output format {bad[0]!r}" if bad else f"{missing[0]}: no such file or folder" if missing
                else "no audio files found")
        print(f"same-as-service: {what}", file=sys.stderr)
        return 2
    result = run(args.paths, outputs, parse_limit(args.memory_limit))
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print_table(result)
    return 1 if result["differing"] else 0
