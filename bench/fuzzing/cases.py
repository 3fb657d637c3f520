"""Generated inputs: a :class:`Case` says what a file holds (rate, channels, frames, container, content), Hypothesis
draws them (:func:`cases`), and :func:`write_case` makes the file on disk."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

#: The rates drawn besides any from 1000 to 384,000 Hz: the toolkit's edges, the noise gate's (noisereduce refuses
#: below 5120 Hz and above 256 kHz), and rates where a smoothing width's floating-point order once mattered.
EDGE_RATES = (1000, 1001, 5119, 5120, 8000, 11025, 22050, 44100, 48000, 56320, 96000, 107520, 192000, 256000,
              256001, 384000)
#: container: (soundfile format, subtype or None for an ffmpeg encode, rates it takes or None for any,
#: most channels)
CONTAINERS = {
    "wav-u8": ("WAV", "PCM_U8", None, 64), "wav-16": ("WAV", "PCM_16", None, 64),
    "wav-24": ("WAV", "PCM_24", None, 64), "wav-32": ("WAV", "PCM_32", None, 64),
    "wav-float": ("WAV", "FLOAT", None, 64), "flac": ("FLAC", "PCM_16", (1000, 384_000), 8),
    "ogg": ("OGG", "VORBIS", (8000, 192_000), 8),
    "mp3": ("MP3", None, (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 2),
}
CONTENTS = ("silence", "dc", "full-scale", "clipping", "nonfinite", "noise", "tones", "speech")
#: The largest file drawn, in samples (frames x channels): a few of the streaming gate's 125,000-frame pieces in
#: mono, and past the service grid's first 600,000-frame piece at 8 kHz.
MAX_SAMPLES = 700_000


@dataclass(frozen=True)
class Case:
    """One generated input: its container (a key of :data:`CONTAINERS`), rate (Hz), channels, frames, content (one
    of :data:`CONTENTS`), the seed of its noise; and how it runs: whether the noise gate runs, and the chunk length
    (seconds) and workers a second streaming run uses (their output must be the default run's)."""

    container: str
    rate: int
    channels: int
    frames: int
    content: str
    seed: int
    denoise: bool = True
    chunk_seconds: float = 30.0
    workers: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


def _rate_for(container: str):
    rates = CONTAINERS[container][2]
    if container == "flac":  # a FLAC frame header holds a rate above 65,535 Hz in tens of Hz
        return st.one_of(st.sampled_from([r for r in EDGE_RATES if r <= 65_535 or r % 10 == 0]),
                         st.integers(1000, 65_535), st.integers(6_554, 38_400).map(lambda tens: tens * 10))
    if rates is None:
        return st.one_of(st.sampled_from(EDGE_RATES), st.integers(5120, 256_000), st.integers(1000, 384_000))
    if len(rates) == 2:
        low, high = rates
        return st.one_of(st.sampled_from([r for r in EDGE_RATES if low <= r <= high]), st.integers(low, high))
    return st.sampled_from(rates)


def _frames_for(rate: int, most: int):
    """Frames in one of four ranges, each as likely (Hypothesis favours small integers within a range): less than
    one STFT frame, up to 3 s, from 3 s up to ``most``, and anything up to ``most``."""
    ranges = [(0, 1100), (1100, rate * 3), (rate * 3, most), (0, most)]
    return st.sampled_from([(low, high) for low, high in ranges if low <= min(high, most)]).flatmap(
        lambda r: st.integers(r[0], min(r[1], most)))


@st.composite
def cases(draw, max_samples: int = MAX_SAMPLES) -> Case:
    """A :class:`Case`: any container, a rate it takes, 1 to its most channels (64 for WAV), 0 frames to
    ``max_samples`` samples (mostly short: less than one STFT frame, a few gate pieces now and then)."""
    container = draw(st.sampled_from(sorted(CONTAINERS)))
    rate = draw(_rate_for(container))
    channels = draw(st.one_of(st.integers(1, 2), st.integers(1, CONTAINERS[container][3])))
    most = max(0, max_samples // channels)
    frames = draw(_frames_for(rate, most))
    return Case(container, rate, channels, frames, draw(st.sampled_from(CONTENTS)), draw(st.integers(0, 2**16)),
                draw(st.sampled_from([True, True, True, False])),
                draw(st.sampled_from([0.01, 0.05, 0.3, 1.0, 2.7, 10.0, 1e6])), draw(st.integers(1, 3)))


def samples_of(case: Case) -> np.ndarray:
    """The case's samples, float32 ``(frames, channels)``."""
    rng = np.random.default_rng(case.seed)
    n, c = case.frames, case.channels
    t = np.arange(n)[:, None] / case.rate
    if case.content == "silence":
        x = np.zeros((n, c))
    elif case.content == "dc":
        x = np.full((n, c), rng.uniform(-0.9, 0.9))
    elif case.content == "full-scale":
        x = np.sign(np.sin(2 * np.pi * 97.0 * t + np.arange(c))) * np.ones((1, c))
    elif case.content == "clipping":
        x = np.clip(3.0 * np.sin(2 * np.pi * 311.0 * t), -1.0, 1.0) * np.ones((1, c))
    elif case.content == "tones":
        freqs = rng.uniform(20.0, case.rate / 2, size=(1, c))
        x = 0.5 * np.sin(2 * np.pi * freqs * t)
    elif case.content == "speech":
        syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None)
        x = 0.3 * syllables * np.sin(2 * np.pi * 180.0 * t) + 0.01 * rng.standard_normal((n, c))
    else:  # noise, and the noise a NaN/inf burst is put into
        x = 0.1 * rng.standard_normal((n, c))
    x = x.astype(np.float32)
    if case.content == "nonfinite" and n:
        start = int(rng.integers(0, n))
        burst = x[start: start + int(rng.integers(1, 64))]
        burst[...] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=burst.shape)
    return x


def write_case(case: Case, folder: Path) -> Path:
    """The case's file in ``folder``: libsndfile for WAV, FLAC and Ogg; ffmpeg's mp3 encoder for mp3 (from a
    16-bit WAV of the same samples). Non-finite samples survive only in float WAV; elsewhere the encoder clips them."""
    fmt, subtype, _, _ = CONTAINERS[case.container]
    x = samples_of(case)
    if subtype is not None:
        path = folder / f"in.{fmt.lower()}"
        sf.write(path, x if fmt == "WAV" and subtype == "FLOAT" else np.nan_to_num(x, posinf=1.0, neginf=-1.0),
                 case.rate, format=fmt, subtype=subtype)
        return path
    wav = folder / "source.wav"
    sf.write(wav, np.nan_to_num(x, posinf=1.0, neginf=-1.0), case.rate, subtype="PCM_16")
    path = folder / "in.mp3"
    done = subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav),
                           "-c:a", "libmp3lame", "-b:a", "64k", str(path)], capture_output=True, text=True)
    wav.unlink()
    if done.returncode != 0:  # a zero-frame WAV: ffmpeg writes an mp3 of no frames, or nothing
        path.write_bytes(b"")
    return path
