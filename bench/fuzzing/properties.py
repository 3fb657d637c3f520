"""What every generated input must keep, checked on real files with the real decoders (:func:`check_case`):

- **one line or success**: each entry point (streaming in service and float mode, full-load, ``normalize_array``,
  the task's admission and processor) either succeeds with exactly the input's frames, or raises an
  :class:`~audionorm_lab.errors.AudionormError` whose message is one line (the CLI prints it as its one stderr line,
  exit 2); any other exception is a traceback;
- **differential against the service**: in service mode, streaming's WAV equals full-load's byte for byte where
  full-load succeeds; where full-load fails, streaming fails with the same error class;
- **chunking is invisible**: the case's ``chunk_seconds`` and ``workers`` give the default run's samples;
- **nothing is left behind**: no temporary or partial file, no output from a failed run, and the input unchanged.

A finding is one line: ``kind: what``. :data:`KINDS` lists the kinds.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from audionorm_lab import (AudionormError, AudioJob, AudioProcessor, Limits, NormalizeOptions, admit, full_load,
                           normalize_array, normalize_file)

from .cases import Case, write_case

KINDS = ("traceback", "abort", "two-lines", "frames", "difference", "error-class", "leftover", "input-changed",
         "chunking", "cli", "sniffed")
#: Findings that are a known, deliberate divergence rather than a defect: ``sniffed``, a file the service could not
#: decode because ffprobe, reading its content without a demuxer named, took it for something else (a 0.01 s mp3
#: for H.263 video), which the toolkit reads with the demuxer its probe names (media.containers).
DIVERGENCES = ("sniffed",)


def _outcome(run) -> tuple[str, object]:
    """``("ok", result)``, ``("error", exc)`` for an AudionormError, ``("traceback", text)`` for anything else."""
    try:
        return "ok", run()
    except AudionormError as exc:
        return "error", exc
    except Exception:  # the finding itself: an exception the toolkit should have turned into one clear line
        return "traceback", traceback.format_exc(limit=-3)


def _frames(path: Path) -> int:
    return sf.info(str(path)).frames


#: Containers whose decoders disagree on the frames: an mp3's encoder delay and padding, a Vorbis stream's end trim
#: (ffmpeg, the service's decoder, gives more frames than libsndfile). Their service-mode outputs are held to
#: full-load's (the differential), not to libsndfile's count.
LOSSY = ("mp3", "ogg")


def _input_frames(case: Case, path: Path) -> int | None:
    """The input's frames as libsndfile reads them (None for mp3, which libsndfile's decoder and ffmpeg's trim
    differently)."""
    if case.container == "mp3":
        return None
    try:
        return _frames(path)
    except Exception:  # a file libsndfile does not read: nothing to compare against
        return None


class Checker:
    """The findings of one case, as they are found."""

    def __init__(self):
        self.findings: list[str] = []

    def add(self, kind: str, what: str) -> None:
        assert kind in KINDS, kind
        self.findings.append(f"{kind}: {what}")

    def outcome(self, name: str, kind: str, value, output: Path | None = None, frames: int | None = None) -> None:
        """One entry point's outcome: a traceback, a message of more than one line, a failed run's output left
        behind, or a successful one's frames that are not the input's."""
        if kind == "traceback":
            self.add("traceback", f"{name}: {value.strip().splitlines()[-1]}")
        elif kind == "error":
            if "\n" in str(value) or not str(value).strip():
                self.add("two-lines", f"{name}: {str(value)!r}")
            if output is not None and output.exists():
                self.add("leftover", f"{name} failed and left {output.name}")
        elif output is not None and frames is not None and _frames(output) != frames:
            self.add("frames", f"{name} wrote {_frames(output)} frames of {frames}")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_case(case: Case, folder: Path, cli: bool = False) -> dict:
    """Write ``case`` into the empty ``folder`` and check every property on it; ``cli`` also runs the real CLI
    (``python -m audionorm_lab``) on it in a fresh process. Returns the case, each entry point's outcome
    (``ok`` or the error's class) and the findings (one line each)."""
    src = write_case(case, folder)
    before = _digest(src)
    check, outcomes = Checker(), {}
    options = NormalizeOptions(denoise=case.denoise)
    expected = _input_frames(case, src)
    service_expected = None if case.container in LOSSY else expected

    def run(name, call, output=None, frames=expected):
        kind, value = _outcome(call)
        check.outcome(name, kind, value, output, frames)
        outcomes[name] = "ok" if kind == "ok" else type(value).__name__ if kind == "error" else "traceback"
        return kind, value

    service_out, full_out = folder / "streaming-service.wav", folder / "full-load.wav"
    s_kind, s_value = run("streaming-service",
                          lambda: normalize_file(src, service_out, replace(options, compat="service")), service_out,
                          service_expected)
    f_kind, f_value = run("full-load", lambda: full_load(src, full_out, options), full_out, service_expected)
    _differential(check, case, (s_kind, s_value, service_out), (f_kind, f_value, full_out))
    float_out = folder / "streaming-float.wav"
    fl_kind, _ = run("streaming-float", lambda: normalize_file(src, float_out, options), float_out)
    if fl_kind == "ok":
        _chunking(check, case, src, float_out, options, folder, run)
    _array(check, case, src, options, run)
    task_out = folder / "task.wav"
    run("task", lambda: AudioProcessor().process_audio_job(
        AudioJob(**_admitted(src, task_out, replace(options, compat="service")))), task_out, service_expected)
    if cli:
        _cli(check, case, src, folder / "cli.wav", outcomes["streaming-service"])
    if _digest(src) != before:
        check.add("input-changed", src.name)
    _leftovers(check, folder, src, outcomes)
    return {"case": case.to_dict(), "outcomes": outcomes, "findings": check.findings}


def _admitted(src: Path, dst: Path, options: NormalizeOptions) -> dict:
    """The task's admission (:func:`~audionorm_lab.service.admission.admit`, default limits) as job fields."""
    admitted = admit(src, dst, options, Limits())
    return {"input_file": str(admitted.input_file), "output_file": str(admitted.output_file),
            "options": admitted.options}


def _differential(check: Checker, case: Case, streaming, service) -> None:
    (s_kind, s_value, s_out), (f_kind, f_value, f_out) = streaming, service
    if f_kind == "ok" and s_kind == "ok":
        if s_out.read_bytes() != f_out.read_bytes():
            a, b = sf.read(str(s_out), dtype="int16")[0], sf.read(str(f_out), dtype="int16")[0]
            same_shape = a.shape == b.shape
            worst = int(np.max(np.abs(a.astype(np.int32) - b))) if same_shape and a.size else None
            check.add("difference", f"service mode's file is not the service's ({a.shape} against {b.shape}, "
                                    f"largest sample difference {worst})")
    elif f_kind == "ok" and s_kind == "error":
        check.add("error-class", f"the service succeeded, streaming raised {type(s_value).__name__}: {s_value}")
    elif f_kind == "error" and "found no audio stream" in str(f_value):
        outcome = "succeeded" if s_kind == "ok" else f"raised {type(s_value).__name__}: {s_value}"
        check.add("sniffed", f"the service found no audio stream ({f_value}); streaming read it as "
                             f"{case.container} and {outcome}")
    elif f_kind == "error" and s_kind == "ok":
        check.add("error-class", f"the service raised {type(f_value).__name__} ({f_value}), streaming succeeded")
    elif f_kind == "error" and s_kind == "error" and type(f_value) is not type(s_value):
        check.add("error-class", f"the service raised {type(f_value).__name__}, streaming "
                                 f"{type(s_value).__name__}: {s_value}")


def _chunking(check: Checker, case: Case, src: Path, default_out: Path, options: NormalizeOptions, folder: Path,
              run) -> None:
    """The case's chunk length and workers against the default run: the same samples."""
    varied = folder / "streaming-chunked.wav"
    kind, _ = run("streaming-chunked", lambda: normalize_file(src, varied, replace(
        options, chunk_seconds=case.chunk_seconds, workers=case.workers)), varied)
    if kind == "ok":
        a, b = sf.read(str(default_out), dtype="float32")[0], sf.read(str(varied), dtype="float32")[0]
        if a.shape != b.shape or not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            check.add("chunking", f"chunk_seconds={case.chunk_seconds:g}, workers={case.workers} changed the samples")
    else:
        check.add("chunking", f"chunk_seconds={case.chunk_seconds:g}, workers={case.workers} failed where the "
                              f"default succeeded")


def _array(check: Checker, case: Case, src: Path, options: NormalizeOptions, run) -> None:
    """``normalize_array`` on the samples libsndfile decodes (not for mp3): the same shape back, or one line."""
    if case.container == "mp3":
        return
    try:
        samples, rate = sf.read(str(src), dtype="float32", always_2d=True)
    except sf.LibsndfileError:  # e.g. a FLAC of no frames, which libsndfile does not open: no array to give
        return
    kind, value = run("normalize_array", lambda: normalize_array(samples, rate, options))
    if kind == "ok" and value[0].shape != samples.shape:
        check.add("frames", f"normalize_array gave {value[0].shape} for {samples.shape}")


def _cli(check: Checker, case: Case, src: Path, dst: Path, expected: str) -> None:
    """The real CLI in a fresh process, service mode: exit 0, or exit 2 with one stderr line; never a traceback or
    a signal; the same outcome as the in-process call."""
    flags = [] if case.denoise else ["--no-denoise"]
    done = subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--compat",
                           "service", "--quiet", *flags], capture_output=True, text=True, timeout=600)
    if done.returncode < 0:
        check.add("abort", f"the CLI ended by signal {-done.returncode}: {done.stderr.strip()[-200:]}")
    elif done.returncode not in (0, 2) or "Traceback" in done.stderr:
        check.add("traceback", f"the CLI exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    elif done.returncode == 2 and done.stderr.count("\n") != 1:
        check.add("two-lines", f"the CLI printed {done.stderr.count(chr(10))} lines: {done.stderr[-300:]!r}")
    elif (done.returncode == 0) != (expected == "ok"):
        check.add("cli", f"the CLI exited {done.returncode}, the call's outcome was {expected}")
    dst.unlink(missing_ok=True)


def _leftovers(check: Checker, folder: Path, src: Path, outcomes: dict) -> None:
    """Only the input and the outputs of the runs that succeeded may be in ``folder``."""
    allowed = {src.name} | {f"{name}.wav" for name, outcome in outcomes.items() if outcome == "ok"}
    for path in folder.iterdir():
        if path.name not in allowed:
            check.add("leftover", path.name)
