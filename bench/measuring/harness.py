"""python -m bench run: every strategy across file sizes x chunk lengths, each in a fresh measured process.

    python -m bench run [--sizes 1m,10m,60m,163m] [--chunks 5,30,120] [--chunk-sweep-sizes 10m]
                        [--overlaps 0.5] [--strategies full-load,ffmpeg-segments,streaming,ffmpeg-filters,sox]
                        [--memory-limit 2G] [--repeat N] [--out DIR] [--quick]

The matrix: every strategy on every size at the default chunk length, plus a chunk
(and overlap) sweep of the chunked strategies on ``--chunk-sweep-sizes``. Sizes are
durations of stereo 44.1 kHz 128 kbps mp3 made with data/fetch_samples.py, or paths.

The outside anchors are ``ffmpeg-filters`` (``highpass``, ``afftdn``, ``loudnorm`` in one
ffmpeg) and ``sox`` (:data:`SOX_CHAIN`: SoX's high-pass, ``sinc`` band-pass, ``noisered``
with a profile from the first 0.5 s, and ``norm``). So that the default matrix finishes
in under 15 minutes on 2 cores, ffmpeg-segments and ffmpeg-filters run only on files up
to 10 minutes long, and sox up to 20, unless ``--full-matrix`` is given: their memory is flat in length, their speed per minute is what the
10-minute runs show, and at 163 minutes they would take about 6 and 8 minutes each.

Each run records the process tree's peak RSS (psutil) and ru_maxrss, memray's peak
heap (the capture is kept for the notebooks), wall and CPU seconds, the multiple of
real time, the exit status (``killed: signal 9`` when the limit was enforced), and
fidelity against the streaming output of the same input (SNR, seams). Every run is
under a memory limit: ``--memory-limit``, or by default the smaller of 4 GB and half
the free memory, so no run can take the machine down. The limit is a memory cgroup
(bench.measuring.container) where one can be made, and the kernel's OOM killer does the killing:
each row says who held it (``limit_enforced_by``), the kernel's kills (``oom_kills``),
and what the kernel charged (``cgroup_peak_bytes``, its anon and file split) beside
the tree's RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audionorm_lab import NormalizeOptions, probe
from audionorm_lab.media.containers import ffmpeg_input
from audionorm_lab.media.probe import last_line
from audionorm_lab.dsp.metrics import seam_metric_file, snr_db_files
from data.fetch_samples import make_sample, parse_duration

from .machine import describe
from .measure import default_memory_limit, parse_limit, run_measured
from .paths import RESULTS, ROOT

ALL_STRATEGIES = ("full-load", "ffmpeg-segments", "streaming", "ffmpeg-filters", "sox")
#: Outside anchors: whole chains in another tool, run as they are (no report, no memray).
ANCHORS = ("ffmpeg-filters", "sox")
CHUNKED = ("streaming", "ffmpeg-segments")
DEFAULTS = {"sizes": "1m,10m,60m,163m", "chunks": "5,30,120", "chunk_sweep_sizes": "10m"}
QUICK = {"sizes": "4s,8s", "chunks": "1,3", "chunk_sweep_sizes": "8s"}
DEFAULT_OPTIONS = NormalizeOptions()
#: Longest input (seconds) each strategy runs on in the default matrix; --full-matrix lifts the caps.
DEFAULT_CAPS_SECONDS = {"ffmpeg-segments": 600.0, "ffmpeg-filters": 600.0, "sox": 1200.0}
#: SoX's equivalent chain, two passes: a noise profile from the first 0.5 s, then the chain (``norm``
#: measures the peak in a pass of its own, through a temporary file, before it applies the gain).
SOX_CHAIN = ("sox {src} -n trim 0 0.5 noiseprof {profile} && "
             "sox {src} -e floating-point {dst} highpass {highpass:g} sinc {low:g}-{high:g} "
             "noisered {profile} 0.21 norm {ceiling:g}")
FFMPEG_FILTERS = "highpass=f={highpass:g},afftdn=nr=12:nf=-40,lowpass=f={lowpass:g},loudnorm=I={target:g}:TP={ceiling:g}"


@dataclass(frozen=True)
class Size:
    label: str
    path: Path
    seconds: float


@dataclass(frozen=True)
class RunSpec:
    strategy: str
    size: Size
    chunk_seconds: float | None  # None: not a chunked strategy
    overlap_seconds: float | None
    concat: str | None
    repeat: int
    workers: int | None = None  # streaming's gating threads; None: its default

    @property
    def run_id(self) -> str:
        parts = [self.strategy, self.size.label]
        if self.chunk_seconds is not None:
            parts.append(f"c{self.chunk_seconds:g}")
        if self.overlap_seconds is not None:
            parts.append(f"o{self.overlap_seconds:g}")
        if self.concat:
            parts.append(self.concat)
        if self.workers is not None:
            parts.append(f"w{self.workers}")
        parts.append(f"r{self.repeat}")
        return "-".join(parts)

    @property
    def is_reference(self) -> bool:
        """The streaming run at default settings: what every other run of this size is compared with."""
        return (self.strategy == "streaming" and self.chunk_seconds == DEFAULT_OPTIONS.chunk_seconds
                and self.overlap_seconds == DEFAULT_OPTIONS.overlap_seconds and self.repeat == 0
                and self.workers is None)


def _numbers(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def resolve_sizes(text: str, log) -> list[Size]:
    sizes = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        if Path(token).exists():
            info = probe(token)
            sizes.append(Size(Path(token).stem, Path(token), info.duration_seconds or 0.0))
        else:
            seconds = parse_duration(token)
            sizes.append(Size(token, make_sample(seconds, "mp3", log=log), seconds))
    return sizes


def plan(sizes: list[Size], strategies: list[str], chunks: list[float], sweep_labels: set[str],
         overlaps: list[float], concats: list[str], repeat: int, caps: dict[str, float] | None = None,
         workers: tuple[int | None, ...] = (None,)) -> list[RunSpec]:
    """The run list, ordered so that each size's reference (streaming, defaults) comes first.

    ``caps`` maps a strategy to the longest input (seconds) it runs on; streaming at the default chunking runs
    once with each of ``workers`` (None: its default), one after the other in each repeat.
    """
    caps = caps or {}
    default_chunk, default_overlap = DEFAULT_OPTIONS.chunk_seconds, DEFAULT_OPTIONS.overlap_seconds
    specs: list[RunSpec] = []
    for size in sizes:
        for r in range(repeat):
            wanted = []
            for strategy in strategies:
                if strategy == "streaming":
                    wanted += [("streaming", default_chunk, default_overlap, None, w) for w in workers]
                elif strategy == "ffmpeg-segments":
                    wanted += [("ffmpeg-segments", default_chunk, None, c, None) for c in concats]
                else:
                    wanted.append((strategy, None, None, None, None))
            if size.label in sweep_labels:
                for chunk in chunks:
                    if "streaming" in strategies:
                        wanted.append(("streaming", chunk, default_overlap, None, None))
                    if "ffmpeg-segments" in strategies:
                        wanted.append(("ffmpeg-segments", chunk, None, concats[0], None))
                for overlap in overlaps:
                    if "streaming" in strategies:
                        wanted.append(("streaming", default_chunk, overlap, None, None))
            seen = set()
            for key in wanted:
                if size.seconds > caps.get(key[0], float("inf")):
                    continue
                if key not in seen:
                    seen.add(key)
                    specs.append(RunSpec(key[0], size, *key[1:4], r, key[4]))
    return sorted(specs, key=lambda s: (sizes.index(s.size), s.repeat, not s.is_reference))


def command(spec: RunSpec, output: Path, capture: Path | None) -> list[str]:
    if spec.strategy == "ffmpeg-filters":
        info = probe(spec.size.path)
        filters = FFMPEG_FILTERS.format(highpass=DEFAULT_OPTIONS.highpass_hz, lowpass=DEFAULT_OPTIONS.voice_band_hz[1],
                                        target=DEFAULT_OPTIONS.target_lufs, ceiling=DEFAULT_OPTIONS.ceiling_dbfs)
        return ["ffmpeg", "-nostdin", "-v", "error", "-y", *ffmpeg_input(spec.size.path, info.demuxer),
                "-af", filters, "-ar", str(info.sample_rate), "-c:a", "pcm_s16le", str(output)]
    if spec.strategy == "sox":
        low, high = DEFAULT_OPTIONS.voice_band_hz
        chain = SOX_CHAIN.format(src=shlex.quote(str(spec.size.path)), dst=shlex.quote(str(output)),
                                 profile=shlex.quote(str(output.with_suffix(".noise-profile"))),
                                 highpass=DEFAULT_OPTIONS.highpass_hz, low=low, high=high,
                                 ceiling=DEFAULT_OPTIONS.ceiling_dbfs)
        return ["sh", "-c", chain]
    cmd = [sys.executable, "-m", "bench.measuring.child", *(["--capture", str(capture)] if capture else []), spec.strategy,
           str(spec.size.path), str(output), "--chunk-seconds", f"{spec.chunk_seconds or DEFAULT_OPTIONS.chunk_seconds:g}"]
    if spec.overlap_seconds is not None:
        cmd += ["--overlap-seconds", f"{spec.overlap_seconds:g}"]
    if spec.concat:
        cmd += ["--concat", spec.concat]
    if spec.workers is not None:
        cmd += ["--workers", str(spec.workers)]
    return cmd


def memray_peak_bytes(capture: Path) -> int | None:
    """memray's peak heap for a capture; None when there is none or it was cut off by a kill."""
    if not capture.exists():
        return None
    try:
        import memray

        return int(memray.FileReader(str(capture)).metadata.peak_memory)
    except Exception:  # a capture truncated by SIGKILL has no readable header/trailer
        return None


def execute(spec: RunSpec, scratch: Path, captures: Path | None, limit: int, reference: Path | None
            ) -> tuple[dict, Path]:
    """One run; ``captures`` None runs without memray (its tracking adds to RSS as a run goes on)."""
    output = scratch / f"{spec.run_id}.wav"
    capture = captures / f"{spec.run_id}.bin" if captures else None
    if capture:
        capture.unlink(missing_ok=True)
    # The previous run's output (200 MB and more) is still being written back to disk: flushed
    # here, it is not billed to this run. Measured: streaming after sox took 8.5 s, 7.0 s after sync.
    os.sync()
    result = run_measured(command(spec, output, capture), memory_limit_bytes=limit, cwd=str(ROOT))
    report = {}
    output.with_suffix(".noise-profile").unlink(missing_ok=True)
    if result.status == "ok" and spec.strategy not in ANCHORS:
        report = json.loads(result.stdout)
    row = {
        "run_id": spec.run_id, "strategy": spec.strategy, "size": spec.size.label, "input": str(spec.size.path),
        "audio_seconds": spec.size.seconds, "chunk_seconds": spec.chunk_seconds,
        "overlap_seconds": spec.overlap_seconds, "concat": spec.concat, "workers": spec.workers,
        "repeat": spec.repeat,
        "status": result.status, "killed": result.killed, "returncode": result.returncode,
        "peak_rss_bytes": result.peak_rss_bytes, "maxrss_bytes": result.maxrss_bytes,
        "rss_at_kill_bytes": result.rss_at_kill_bytes, "memory_limit_bytes": limit,
        "limit_enforced_by": result.limit_enforced_by, "oom_kills": result.oom_kills,
        "cgroup_peak_bytes": result.cgroup_peak_bytes, "cgroup_anon_bytes": result.cgroup_anon_bytes,
        "cgroup_file_bytes": result.cgroup_file_bytes, "kernel_log": "\n".join(result.kernel_log) or None,
        "memray_peak_bytes": memray_peak_bytes(capture) if capture else None,
        "memray_capture": str(capture) if capture and capture.exists() else None,
        "wall_seconds": result.wall_seconds, "cpu_seconds": result.cpu_seconds,
        "realtime_multiple": spec.size.seconds / result.wall_seconds if result.status == "ok" else None,
        "loudness_out_lufs": report.get("loudness_out_lufs"), "chunks": report.get("chunks"),
        "snr_vs_streaming_db": None, "seam_jump_ratio": None, "seam_control_jump_ratio": None,
        "seam_level_step_db": None, "error": None if result.status == "ok" else last_line(result.stderr)[-300:],
    }
    if result.status == "ok":
        if reference is not None and reference != output:
            row["snr_vs_streaming_db"] = _finite(snr_db_files(output, reference))
        if len(report.get("chunk_starts_frames") or []) > 1:  # one chunk: no boundary to look at
            seams = seam_metric_file(output, report["chunk_starts_frames"])
            row.update(seam_jump_ratio=seams["jump_ratio"], seam_control_jump_ratio=seams["control_jump_ratio"],
                       seam_level_step_db=seams["level_step_db"])
    return row, output


def _finite(value: float) -> float | None:
    """SNR for JSON: identical outputs (infinite SNR) are recorded as 200 dB."""
    return min(value, 200.0) if value > -np.inf else None


def summarize(rows: list[dict]) -> dict:
    """The figures the issue asks about, computed from the rows."""
    mb = 1e6
    default = [r for r in rows if r["chunk_seconds"] in (None, DEFAULT_OPTIONS.chunk_seconds)
               and r["overlap_seconds"] in (None, DEFAULT_OPTIONS.overlap_seconds)]
    summary: dict = {}
    for strategy in sorted({r["strategy"] for r in rows}):
        mine = [r for r in default if r["strategy"] == strategy]
        ok = [r for r in mine if r["status"] == "ok"]
        entry = {"runs": len(mine), "ok": len(ok),
                 "killed": sorted({r["size"] for r in mine if r["status"].startswith("killed")}),
                 "max_peak_rss_mb": max((r["peak_rss_bytes"] for r in ok), default=0) / mb,
                 "median_realtime_multiple": float(np.median([r["realtime_multiple"] for r in ok])) if ok else None}
        durations = sorted({r["audio_seconds"] for r in ok})
        if len(durations) >= 2:
            x = np.array([r["audio_seconds"] for r in ok]) / 600.0
            y = np.array([r["peak_rss_bytes"] for r in ok]) / mb
            entry["peak_rss_slope_mb_per_10min"] = float(np.polyfit(x, y, 1)[0])
        summary[strategy] = entry
    sweep = [r for r in rows if r["strategy"] == "streaming" and r["status"] == "ok"
             and r["overlap_seconds"] == DEFAULT_OPTIONS.overlap_seconds]
    by_chunk: dict = {}
    for r in sweep:
        by_chunk.setdefault((r["size"], r["chunk_seconds"]), []).append(r["peak_rss_bytes"] / mb)
    summary["streaming_peak_rss_mb_by_chunk"] = {f"{size} {chunk:g}s": float(np.median(v))
                                                 for (size, chunk), v in sorted(by_chunk.items())}
    return summary


def write_results(out: Path, rows: list[dict], parameters: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    payload = {"machine": describe(), "parameters": parameters, "summary": summarize(rows), "rows": rows}
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=str))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help=f"input lengths, comma-separated, e.g. 1m,10m,163m (default {DEFAULTS['sizes']})")
    parser.add_argument("--chunks", help=f"streaming chunk lengths swept, seconds (default {DEFAULTS['chunks']})")
    parser.add_argument("--chunk-sweep-sizes",
                        help=f"sizes the chunk sweep runs on, or 'none' (default {DEFAULTS['chunk_sweep_sizes']})")
    parser.add_argument("--overlaps", default="", help="extra overlaps (s) for streaming on the sweep sizes")
    parser.add_argument("--strategies", default=",".join(ALL_STRATEGIES),
                        help=f"comma-separated, of {', '.join(ALL_STRATEGIES)} (default: all)")
    parser.add_argument("--concats", default="stream", help="ffmpeg-segments joins: stream, memory")
    parser.add_argument("--memory-limit", help="e.g. 2G, 300M; default min(4 GB, half the free memory)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case; quote the medians (default 1)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<time>)")
    parser.add_argument("--quick", action="store_true", help="a few seconds of audio per size (for tests)")
    parser.add_argument("--full-matrix", action="store_true",
                        help="run ffmpeg-segments, ffmpeg-filters and sox on every size too (about 30 minutes here)")
    parser.add_argument("--no-plots", action="store_true", help="write results only, no PNG plots")
    parser.add_argument("--workers", default="",
                        help="streaming's workers, comma-separated, each a run beside its default (e.g. 1,2)")
    parser.add_argument("--no-memray", action="store_true",
                        help="measure RSS without memray tracking (memray's own tables grow with a run's length)")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = set(strategies) - set(ALL_STRATEGIES)
    if unknown:
        parser.error(f"unknown strategies: {', '.join(sorted(unknown))}")

    def log(message):
        print(message, file=sys.stderr, flush=True)

    sizes = resolve_sizes(args.sizes or base["sizes"], log)
    chunks = _numbers(args.chunks or base["chunks"])
    sweep = {t.strip() for t in (args.chunk_sweep_sizes or base["chunk_sweep_sizes"]).split(",")}
    limit = parse_limit(args.memory_limit) or default_memory_limit()
    specs = plan(sizes, strategies, chunks, sweep, _numbers(args.overlaps),
                 [c.strip() for c in args.concats.split(",")], args.repeat,
                 workers=(None, *(int(w) for w in _numbers(args.workers))),
                 caps={} if args.full_matrix else DEFAULT_CAPS_SECONDS)
    out = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")
    scratch, captures = out / "scratch", None if args.no_memray else out / "captures"
    for folder in (scratch, captures):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    parameters = {"sizes": [asdict(s) | {"path": str(s.path)} for s in sizes], "chunks": chunks,
                  "chunk_sweep_sizes": sorted(sweep), "strategies": strategies, "memory_limit_bytes": limit,
                  "repeat": args.repeat, "quick": args.quick, "full_matrix": args.full_matrix,
                  "memray": not args.no_memray, "argv": argv if argv is not None else sys.argv[1:]}
    rows, references = [], {}
    started = time.perf_counter()
    try:
        for index, spec in enumerate(specs, 1):
            row, output = execute(spec, scratch, captures, limit, references.get(spec.size.label))
            rows.append(row)
            if spec.is_reference and row["status"] == "ok":
                references[spec.size.label] = output
            elif output.exists():
                output.unlink()
            if all(s.size.label != spec.size.label for s in specs[index:]) and spec.size.label in references:
                references.pop(spec.size.label).unlink(missing_ok=True)
            peak = row["peak_rss_bytes"] / 1e6
            extra = f", SNR vs streaming {row['snr_vs_streaming_db']:.1f} dB" if row["snr_vs_streaming_db"] else ""
            log(f"[{index}/{len(specs)}] {spec.run_id}: {row['status']}, {row['wall_seconds']:.1f} s, "
                f"peak RSS {peak:.0f} MB{extra}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if rows:
            write_results(out, rows, parameters)
    if not args.no_plots:
        from .run_plots import make_plots

        make_plots(rows, out, limit)
    log(f"done in {time.perf_counter() - started:.0f} s: {out}")
    print(out)
    return 0
