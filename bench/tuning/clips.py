"""The clips the tuner measures: the first seconds of an input, cut without decoding where the container allows,
and read as float32."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from audionorm_lab import AudionormError
from audionorm_lab.media.probe import last_line, probe
from audionorm_lab.media.containers import ffmpeg_input


def cut_clip(src: Path, seconds: float, folder: Path) -> Path:
    """The first ``seconds`` of ``src`` as a file in ``folder``: ffmpeg stream copy (nothing decoded),
    or a FLAC encode of just that part where the container cannot be copied."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudionormError(f"{src}: ffmpeg is needed to cut the clip the tuner measures (apt-get install ffmpeg)")
    suffix = src.suffix.lower() or ".mka"
    copy = folder / f"clip-{seconds:g}s{suffix}"
    source = ffmpeg_input(src, probe(src).demuxer)  # the input as its probe found it, and nothing else
    done = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", *source, "-t", f"{seconds}", "-map",
                           "0:a:0", "-c", "copy", str(copy)], capture_output=True, text=True)
    if done.returncode == 0 and copy.exists() and copy.stat().st_size > 0:
        try:
            if sf.info(str(copy)).frames > 0:
                return copy
        except (sf.LibsndfileError, RuntimeError):
            pass
    flac = folder / f"clip-{seconds:g}s.flac"
    done = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", *source, "-t", f"{seconds}", "-map",
                           "0:a:0", "-c:a", "flac", str(flac)], capture_output=True, text=True)
    if done.returncode != 0:
        raise AudionormError(f"{src}: ffmpeg could not cut its first {seconds:g} s ({last_line(done.stderr)})")
    return flac


def load_clip(path: str | Path, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of ``path`` as float32 ``(frames, channels)``, and its rate (Hz)."""
    with sf.SoundFile(str(path)) as f:
        return f.read(min(f.frames, int(seconds * f.samplerate)), dtype="float32", always_2d=True), f.samplerate
