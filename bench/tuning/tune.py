"""python -m bench tune: which chunk length, overlap and workers fit your file and your memory limit.

    python -m bench tune INPUT [--memory-limit 512M] [--concurrency 1] [--target-fidelity-db 60]
        [--minutes 3] [--json]

1. The first ``--minutes`` of INPUT are cut with ffmpeg (stream copy where the
   format allows, so the rest is never decoded).
2. A handful of fresh, measured subprocess runs of ``audionorm-lab normalize`` on
   that clip, across chunk lengths, overlaps and workers, give peak RSS (process
   tree) and wall time; one run on a 1-second cut gives the fixed start-up cost.
3. Two linear models are fitted by least squares (:class:`Model`):
   peak RSS = a + b * padded chunk samples + c * padded chunk samples * (workers - 1),
   where padded chunk samples = (chunk + 2 * overlap) * sample rate * channels, so
   channels and rate enter through the samples a chunk holds; and seconds of work
   per second of audio = d(workers) + e * (2 * overlap) / chunk + f / chunk, with
   every time coefficient held >= 0 (non-negative least squares): a chunk's fixed
   cost and its overlap's work are never a gain, however the noise falls.
4. Fidelity against whole-file processing (SNR and the seam jump ratio), by
   overlap, on the first 60 s of the clip, in memory, at the shortest chunk length
   (the most seams).
5. The recommendation: of the candidate chunk lengths, the overlaps that reach
   ``--target-fidelity-db`` and the workers a job may use (cores / concurrency),
   the fastest setting whose predicted peak stays within ``--memory-limit /
   --concurrency`` less a 10 % margin. Settings within 5 % of the fastest predicted
   speed count as equally fast (the run-to-run noise of a shared machine); of
   those, the one with the smallest predicted peak.
6. One more fresh run at that setting, on the whole INPUT when it is under 20
   minutes (else on the clip), validates it: predicted against measured.

Exit 2 with one line when nothing fits; the line says the smallest limit that would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import optimize

from audionorm_lab import AudionormError, normalize_array, probe
from audionorm_lab.media.probe import last_line
from audionorm_lab.dsp.metrics import seam_metric, snr_db
from audionorm_lab.dsp.parallel import available_cores

from ..measuring.measure import parse_limit, run_measured
from .clips import cut_clip, load_clip

MEASURE_CHUNKS_SECONDS = (2.0, 5.0, 15.0, 40.0)
MEASURE_OVERLAPS_SECONDS = (0.05, 2.0)
CANDIDATE_CHUNKS_SECONDS = (1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
FIDELITY_OVERLAPS_SECONDS = (0.0, 0.01, 0.03, 0.1, 0.3, 0.5, 1.0)
FIDELITY_CLIP_SECONDS = 60.0
#: Of the per-job memory budget kept free: room for the model's error. It is also the error the tuner
#: states for its predicted peak: the validation run must land within it.
MARGIN = 0.10
SPEED_RESOLUTION = 0.05  # predicted speeds this close to the fastest count as equally fast (relative)
VALIDATE_WHOLE_BELOW_SECONDS = 20 * 60.0
#: Part of the cache key: bump it when a result gains or changes a field, so no older result is reused.
CACHE_VERSION = 2


class NothingFits(AudionormError):
    """No setting's predicted peak fits the per-job memory budget."""


@dataclass
class Model:
    """Peak RSS (bytes) and work per audio second (seconds), fitted on measured runs of one input.

    ``rss = rss_coefficients . [1, x, x * (workers - 1)]`` with ``x`` the padded chunk's samples
    (``(chunk + 2 overlap) * rate * channels``); ``seconds per audio second =
    time_by_workers[workers] + time_coefficients . [2 overlap / chunk, 1 / chunk]``.
    """

    sample_rate: int
    channels: int
    startup_seconds: float
    rss_coefficients: list[float]
    time_by_workers: dict[int, float]
    time_coefficients: list[float]
    rss_fit_error: float = 0.0  # largest |predicted / measured - 1| on the fitted runs
    realtime_fit_error: float = 0.0

    def padded_samples(self, chunk_seconds: float, overlap_seconds: float) -> float:
        return (chunk_seconds + 2 * overlap_seconds) * self.sample_rate * self.channels

    def peak_rss_bytes(self, chunk_seconds: float, overlap_seconds: float, workers: int) -> float:
        x = self.padded_samples(chunk_seconds, overlap_seconds)
        a, b, c = self.rss_coefficients
        return a + b * x + c * x * (workers - 1)

    def seconds_per_audio_second(self, chunk_seconds: float, overlap_seconds: float, workers: int) -> float:
        known = sorted(self.time_by_workers)
        base = self.time_by_workers[min(known, key=lambda w: abs(w - workers))]
        e, f = self.time_coefficients
        return max(1e-6, base + e * 2 * overlap_seconds / chunk_seconds + f / chunk_seconds)

    def realtime_multiple(self, chunk_seconds: float, overlap_seconds: float, workers: int,
                          audio_seconds: float) -> float:
        """Audio seconds per wall second for a whole run of ``audio_seconds``, start-up included."""
        work = audio_seconds * self.seconds_per_audio_second(chunk_seconds, overlap_seconds, workers)
        return audio_seconds / (self.startup_seconds + work)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["time_by_workers"] = {str(k): v for k, v in self.time_by_workers.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Model:
        return cls(**{**data, "time_by_workers": {int(k): v for k, v in data["time_by_workers"].items()}})


def fidelity_at(fidelity: list[dict], overlap_seconds: float) -> float:
    """SNR against whole-file processing (dB) at ``overlap_seconds``: the measured value of the largest
    measured overlap not above it (fidelity only grows with the overlap, so this never flatters)."""
    below = [r for r in fidelity if r["overlap_seconds"] <= overlap_seconds + 1e-12]
    return max(below, key=lambda r: r["overlap_seconds"])["snr_vs_whole_db"] if below else 0.0


def predict(result: dict, chunk_seconds: float, overlap_seconds: float, workers: int) -> dict:
    """What the tuner's model says about one setting, from :func:`tune`'s result: predicted peak RSS
    (bytes) against the per-job budget, speed (x real time on the input) and fidelity (dB)."""
    model = Model.from_dict(result["model"])
    seconds = result["input_seconds"] or result["clip_seconds"]
    peak = model.peak_rss_bytes(chunk_seconds, overlap_seconds, workers)
    return {"chunk_seconds": chunk_seconds, "overlap_seconds": overlap_seconds, "workers": workers,
            "predicted_peak_rss_bytes": peak, "budget_per_job_bytes": result["budget_per_job_bytes"],
            "fits": peak <= result["budget_per_job_bytes"] * (1 - MARGIN),
            "predicted_realtime_multiple": model.realtime_multiple(chunk_seconds, overlap_seconds, workers, seconds),
            "fidelity_db": fidelity_at(result["fidelity"], overlap_seconds),
            "fidelity_target_met": fidelity_at(result["fidelity"], overlap_seconds) >= result["target_fidelity_db"]}


def measure_run(src: Path, out_folder: Path, chunk_seconds: float, overlap_seconds: float, workers: int,
                memory_limit_bytes: int | None = None) -> dict:
    """One fresh ``audionorm-lab normalize`` subprocess, measured; peak RSS (tree), wall and the setting."""
    dst = out_folder / f"out-{chunk_seconds:g}-{overlap_seconds:g}-{workers}.wav"
    command = [sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--quiet",
               "--chunk-seconds", f"{chunk_seconds}", "--overlap-seconds", f"{overlap_seconds}",
               "--workers", str(workers)]
    result = run_measured(command, memory_limit_bytes=memory_limit_bytes)
    dst.unlink(missing_ok=True)
    if result.status != "ok":
        raise AudionormError(f"{src}: the run at chunk {chunk_seconds:g} s, overlap {overlap_seconds:g} s, "
                             f"{workers} workers ended {result.status} ({last_line(result.stderr)})")
    return {"chunk_seconds": chunk_seconds, "overlap_seconds": overlap_seconds, "workers": workers,
            "peak_rss_bytes": result.peak_rss_bytes, "wall_seconds": result.wall_seconds}


def fit(runs: list[dict], sample_rate: int, channels: int, audio_seconds: float, startup_seconds: float) -> Model:
    """Least-squares fit of :class:`Model` to measured ``runs`` of an ``audio_seconds`` clip."""
    probe_model = Model(sample_rate, channels, startup_seconds, [0, 0, 0], {}, [0, 0])
    x = np.array([probe_model.padded_samples(r["chunk_seconds"], r["overlap_seconds"]) for r in runs])
    w = np.array([r["workers"] for r in runs], dtype=float)
    rss = np.array([r["peak_rss_bytes"] for r in runs], dtype=float)
    design = np.column_stack([np.ones_like(x), x, x * (w - 1)])
    rss_coefficients = np.linalg.lstsq(design, rss, rcond=None)[0]
    work = np.array([max(1e-3, r["wall_seconds"] - startup_seconds) / audio_seconds for r in runs])
    worker_values = sorted({r["workers"] for r in runs})
    chunk = np.array([r["chunk_seconds"] for r in runs])
    overlap = np.array([r["overlap_seconds"] for r in runs])
    columns = [(w == v).astype(float) for v in worker_values] + [2 * overlap / chunk, 1 / chunk]
    time_coefficients = optimize.nnls(np.column_stack(columns), work)[0]
    model = Model(sample_rate, channels, startup_seconds, [float(c) for c in rss_coefficients],
                  {v: float(c) for v, c in zip(worker_values, time_coefficients)},
                  [float(c) for c in time_coefficients[len(worker_values):]])
    model.rss_fit_error = max(abs(model.peak_rss_bytes(r["chunk_seconds"], r["overlap_seconds"], r["workers"])
                                  / r["peak_rss_bytes"] - 1) for r in runs)
    model.realtime_fit_error = max(abs(model.realtime_multiple(r["chunk_seconds"], r["overlap_seconds"],
                                                               r["workers"], audio_seconds)
                                       / (audio_seconds / r["wall_seconds"]) - 1) for r in runs)
    return model


def fidelity_by_overlap(clip: Path, chunk_seconds: float, overlaps=FIDELITY_OVERLAPS_SECONDS,
                        seconds: float = FIDELITY_CLIP_SECONDS) -> list[dict]:
    """SNR against whole-file processing (dB, capped at 200) and the seam jump ratio, for each overlap,
    on the first ``seconds`` of ``clip``, chunked at ``chunk_seconds``."""
    samples, rate = load_clip(clip, seconds)
    whole, _ = normalize_array(samples, rate, chunk_seconds=math.inf)
    rows = []
    for overlap in overlaps:
        out, report = normalize_array(samples, rate, chunk_seconds=chunk_seconds, overlap_seconds=overlap)
        seams = seam_metric(out, rate, report.chunk_starts_frames[1:])
        rows.append({"overlap_seconds": overlap, "snr_vs_whole_db": min(snr_db(out, whole), 200.0),
                     "seam_jump_ratio": seams["jump_ratio"], "control_jump_ratio": seams["control_jump_ratio"]})
    return rows


def recommend(model: Model, fidelity: list[dict], budget_bytes: float, max_workers: int, target_db: float,
              audio_seconds: float) -> dict:
    """The fastest (chunk, overlap, workers) whose predicted peak fits ``budget_bytes`` and whose overlap
    reaches ``target_db``: of the fitting settings within :data:`SPEED_RESOLUTION` of the fastest predicted
    speed, the one with the smallest predicted peak. Raises :class:`NothingFits` naming the smallest limit
    that would fit."""
    good = [r["overlap_seconds"] for r in fidelity if r["snr_vs_whole_db"] >= target_db]
    overlaps = good or [max(fidelity, key=lambda r: r["snr_vs_whole_db"])["overlap_seconds"]]
    overlap = min(overlaps)  # past the target, more overlap only costs time and memory
    options = []
    for chunk in CANDIDATE_CHUNKS_SECONDS:
        for workers in range(1, max_workers + 1):
            peak = model.peak_rss_bytes(chunk, overlap, workers)
            speed = model.realtime_multiple(chunk, overlap, workers, audio_seconds)
            options.append({"chunk_seconds": chunk, "overlap_seconds": overlap, "workers": workers,
                            "predicted_peak_rss_bytes": peak, "predicted_realtime_multiple": speed})
    fitting = [o for o in options if o["predicted_peak_rss_bytes"] <= budget_bytes * (1 - MARGIN)]
    if not fitting:
        smallest = min(options, key=lambda o: o["predicted_peak_rss_bytes"])
        raise NothingFits(smallest)
    fastest = max(o["predicted_realtime_multiple"] for o in fitting)
    as_fast = [o for o in fitting if o["predicted_realtime_multiple"] >= fastest * (1 - SPEED_RESOLUTION)]
    best = min(as_fast, key=lambda o: (o["predicted_peak_rss_bytes"], -o["predicted_realtime_multiple"]))
    best["fidelity_target_met"] = bool(good)
    best["fidelity_db"] = fidelity_at(fidelity, overlap)
    return best


def tune(src, memory_limit_bytes: int, concurrency: int = 1, target_fidelity_db: float = 60.0,
         minutes: float = 3.0, validate: bool = True, keep_clip_in: Path | None = None, cache_dir: Path | None = None,
         log=lambda message: None) -> dict:
    """Measure, fit, recommend and validate (see the module docstring); the result as a dict.

    ``keep_clip_in``: a folder to keep the measured clip in (its path is then ``result["clip_path"]``).
    ``cache_dir``: reuse a result for the same input (path, size, mtime) and arguments from there, and store
    new ones in it (``result["reused"]`` says which): a notebook run again does not measure again.
    """
    src = Path(src)
    cache = None
    if cache_dir is not None:
        stat = src.stat() if src.exists() else None
        key = json.dumps([CACHE_VERSION, str(src.resolve()), stat and stat.st_size, stat and stat.st_mtime_ns,
                          memory_limit_bytes, concurrency, target_fidelity_db, minutes, validate, str(keep_clip_in)])
        cache = Path(cache_dir) / f"tune-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        if cache.exists():
            cached = json.loads(cache.read_text())
            if cached.get("clip_path") is None or Path(cached["clip_path"]).exists():
                return {**cached, "reused": str(cache)}
    result = _tune(src, memory_limit_bytes, concurrency, target_fidelity_db, minutes, validate, keep_clip_in, log)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(result, indent=2))
    return {**result, "reused": None}


def _nothing_fits(src: Path, limit_bytes: int, concurrency: int, peak_bytes: float, why: str) -> NothingFits:
    """The one-line error: what does not fit, why, and the smallest limit that holds ``peak_bytes`` a job."""
    needed = peak_bytes / (1 - MARGIN) * concurrency
    return NothingFits(f"{src}: nothing fits {limit_bytes / 1e6:.0f} MB for {concurrency} job(s): {why}; "
                       f"use --memory-limit {math.ceil(needed / 1e6)}M or more")


def _tune(src: Path, memory_limit_bytes: int, concurrency: int, target_fidelity_db: float, minutes: float,
          validate: bool, keep_clip_in: Path | None, log) -> dict:
    started = time.perf_counter()
    info = probe(src)
    duration = info.frames / info.sample_rate if info.frames else None
    budget = memory_limit_bytes / concurrency
    max_workers = max(1, available_cores() // concurrency)
    with tempfile.TemporaryDirectory(prefix="audionorm-tune-") as scratch:
        folder = Path(scratch)
        clip_seconds = min(minutes * 60, duration) if duration else minutes * 60
        clip = cut_clip(src, clip_seconds, folder)
        clip_info = sf.info(str(clip))
        audio_seconds = clip_info.frames / clip_info.samplerate
        floor = measure_run(cut_clip(src, 1.0, folder), folder, 5.0, 0.5, 1)
        startup = floor["wall_seconds"]
        if floor["peak_rss_bytes"] > budget * (1 - MARGIN):  # not even a 1-second input fits: no need to measure
            raise _nothing_fits(src, memory_limit_bytes, concurrency, floor["peak_rss_bytes"],
                                f"a run on 1 second of it already peaks at {floor['peak_rss_bytes'] / 1e6:.0f} MB "
                                f"(the imports and one chunk)")
        log(f"clip: {audio_seconds:.0f} s of {src.name}; start-up {startup:.2f} s")
        runs = []
        worker_values = sorted({1, max_workers})
        for chunk in MEASURE_CHUNKS_SECONDS:
            for workers in worker_values:
                runs.append(measure_run(clip, folder, chunk, 0.5, workers))
                log(f"  chunk {chunk:g} s, overlap 0.5 s, {workers} workers: "
                    f"{runs[-1]['peak_rss_bytes'] / 1e6:.0f} MB, {runs[-1]['wall_seconds']:.1f} s")
        for overlap in MEASURE_OVERLAPS_SECONDS:
            runs.append(measure_run(clip, folder, 5.0, overlap, max_workers))
            log(f"  chunk 5 s, overlap {overlap:g} s, {max_workers} workers: "
                f"{runs[-1]['peak_rss_bytes'] / 1e6:.0f} MB, {runs[-1]['wall_seconds']:.1f} s")
        model = fit(runs, info.sample_rate, info.channels, audio_seconds, startup)
        fidelity = fidelity_by_overlap(clip, MEASURE_CHUNKS_SECONDS[0])
        whole = duration is not None and duration < VALIDATE_WHOLE_BELOW_SECONDS
        target_seconds = duration if whole else audio_seconds
        try:
            best = recommend(model, fidelity, budget, max_workers, target_fidelity_db, target_seconds)
        except NothingFits as exc:
            smallest = exc.args[0]
            raise _nothing_fits(src, memory_limit_bytes, concurrency, smallest["predicted_peak_rss_bytes"],
                                f"the smallest setting (chunk {smallest['chunk_seconds']:g} s, overlap "
                                f"{smallest['overlap_seconds']:g} s, 1 worker) needs about "
                                f"{smallest['predicted_peak_rss_bytes'] / 1e6:.0f} MB a job") from None
        kept = None
        if keep_clip_in is not None:
            Path(keep_clip_in).mkdir(parents=True, exist_ok=True)
            kept = Path(keep_clip_in) / clip.name
            shutil.copyfile(clip, kept)
        validated = None
        if validate:
            log(f"validating chunk {best['chunk_seconds']:g} s, overlap {best['overlap_seconds']:g} s, "
                f"{best['workers']} workers on {'the whole input' if whole else 'the clip'}")
            validated = measure_run(src if whole else clip, folder, best["chunk_seconds"], best["overlap_seconds"],
                                    best["workers"], memory_limit_bytes=int(budget * 1.5))
    result = {
        "input": str(src), "input_seconds": duration, "sample_rate": info.sample_rate, "channels": info.channels,
        "clip_seconds": audio_seconds, "clip_path": str(kept) if kept else None,
        "memory_limit_bytes": memory_limit_bytes, "concurrency": concurrency,
        "budget_per_job_bytes": budget, "target_fidelity_db": target_fidelity_db,
        "recommended": {k: best[k] for k in ("chunk_seconds", "overlap_seconds", "workers")},
        "predicted_peak_rss_bytes": best["predicted_peak_rss_bytes"], "stated_rss_error": MARGIN,
        "predicted_realtime_multiple": best["predicted_realtime_multiple"],
        "fidelity_db": best["fidelity_db"], "fidelity_target_met": best["fidelity_target_met"],
        "validated_on": ("whole input" if whole else "clip") if validate else None,
        "validated_peak_rss_bytes": validated["peak_rss_bytes"] if validated else None,
        "validated_realtime_multiple": target_seconds / validated["wall_seconds"] if validated else None,
        "model": model.to_dict(), "runs": runs, "fidelity": fidelity,
        "tune_seconds": time.perf_counter() - started,
    }
    if validated:
        result["validated_rss_error"] = validated["peak_rss_bytes"] / best["predicted_peak_rss_bytes"] - 1
        result["validated_realtime_error"] = (result["validated_realtime_multiple"]
                                              / best["predicted_realtime_multiple"] - 1)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench tune", description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="the recording to tune for (any format audionorm-lab reads)")
    parser.add_argument("--memory-limit", default="512M", help="the container's memory limit, e.g. 512M (default)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs sharing that limit (pool processes; default 1)")
    parser.add_argument("--target-fidelity-db", type=float, default=60.0,
                        help="SNR against whole-file processing the overlap must reach, dB (default 60)")
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of the input measured (default 3)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON on stdout")
    args = parser.parse_args(argv)
    limit = parse_limit(args.memory_limit)
    if args.concurrency < 1 or args.minutes <= 0 or limit is None:
        print("error: --concurrency must be >= 1, --minutes > 0 and --memory-limit a size", file=sys.stderr)
        return 2
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    try:
        result = tune(args.input, limit, args.concurrency, args.target_fidelity_db, args.minutes, log=log)
    except AudionormError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    best, model = result["recommended"], result["model"]
    print(f"\nrecommended: --chunk-seconds {best['chunk_seconds']:g} --overlap-seconds {best['overlap_seconds']:g} "
          f"--workers {best['workers']}")
    print(f"predicted: peak RSS {result['predicted_peak_rss_bytes'] / 1e6:.0f} MB of "
          f"{result['budget_per_job_bytes'] / 1e6:.0f} MB a job, {result['predicted_realtime_multiple']:.0f}x real time, "
          f"{result['fidelity_db']:.0f} dB against whole-file processing")
    print(f"model: peak RSS = {model['rss_coefficients'][0] / 1e6:.1f} MB + {model['rss_coefficients'][1]:.2f} B "
          f"x samples + {model['rss_coefficients'][2]:.2f} B x samples x (workers - 1); fit error "
          f"{model['rss_fit_error']:.1%} (RSS), {model['realtime_fit_error']:.1%} (speed)")
    if result["validated_peak_rss_bytes"]:
        print(f"validated on the {result['validated_on']}: peak RSS {result['validated_peak_rss_bytes'] / 1e6:.0f} MB "
              f"({result['validated_rss_error']:+.1%}), {result['validated_realtime_multiple']:.0f}x real time "
              f"({result['validated_realtime_error']:+.1%})")
    print(f"tuned in {result['tune_seconds']:.0f} s")
    return 0
