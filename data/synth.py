"""A deterministic scene that sounds like the service's input: speech, noise, hum and rumble.

The scene is generated block by block in fixed-size blocks, so a 10-hour file costs
as little memory as a 1-minute one, and the samples depend only on the seed and
their position, never on how the caller reads them.

- Speech: utterances of a few words separated by silent gaps, from espeak-ng when it
  is installed (``engine="espeak"``), or from a built-in formant synthesizer: a
  glottal sawtooth at a gliding pitch through three vowel formant resonators, with
  fricative and plosive noise onsets. Two speakers take turns.
- Pink noise (independent per channel) at ``snr_db`` below the speech level.
- Mains hum at ``hum_hz`` with harmonics, and low-frequency rumble (< 25 Hz).
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
import soundfile as sf
from scipy import signal

BLOCK_FRAMES = 65536
ENGINES = ("auto", "builtin", "espeak")

#: (F1, F2, F3) in Hz, adult averages (Peterson & Barney).
VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240),
          (660, 1720, 2410), (490, 1350, 1690))
SPEAKERS_F0_HZ = (118.0, 205.0)

SENTENCES = (  # public-domain style prose for espeak-ng
    "Good morning, and thank you all for joining the call today.",
    "The quarterly numbers came in slightly above what we expected.",
    "Could you repeat the last part? The line was breaking up.",
    "We will move the release to Thursday, once the tests are green.",
    "The river was wide and slow, and the boat drifted toward the bank.",
    "Please remember to send the recording to the team before noon.",
    "I think the second option is cheaper, but it takes longer.",
    "Nobody noticed the clock had stopped until the bell rang twice.",
    "Let me share my screen so everyone can see the chart.",
    "The storm passed in the night and left the streets shining.",
    "We measured the memory of the worker while it processed the file.",
    "That is a fair point, and I would like to come back to it later.",
)


@dataclass(frozen=True)
class SceneParams:
    """What the scene contains. Levels in dB; rates in Hz.

    Attributes
    ----------
    sample_rate : int
    channels : int
    seed : int
    speech_dbfs : float
        RMS of the speech while someone talks, dBFS.
    snr_db : float
        Speech RMS over pink-noise RMS, dB.
    hum_hz : float
        Mains frequency (50 or 60); 0 for no hum.
    hum_db, rumble_db : float
        Hum and rumble RMS relative to the speech RMS, dB.
    gap_seconds : (float, float)
        Range of the silent gaps between utterances, seconds.
    engine : str
        ``"builtin"`` or ``"espeak"`` (``"auto"`` is resolved before a scene is made).
    """

    sample_rate: int = 44100
    channels: int = 2
    seed: int = 0
    speech_dbfs: float = -20.0
    snr_db: float = 15.0
    hum_hz: float = 50.0
    hum_db: float = -28.0
    rumble_db: float = -22.0
    gap_seconds: tuple[float, float] = (0.3, 1.6)
    engine: str = "builtin"

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_engine(engine: str) -> str:
    """``auto`` -> ``espeak`` when espeak-ng is on PATH, else ``builtin``."""
    if engine not in ENGINES:
        raise ValueError(f"speech engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "auto":
        return "espeak" if shutil.which("espeak-ng") else "builtin"
    if engine == "espeak" and not shutil.which("espeak-ng"):
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng), use --speech builtin")
    return engine


def _resonator(frequency_hz: float, bandwidth_hz: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-pole resonator with unit gain at DC-ish levels (Klatt's form)."""
    r = np.exp(-np.pi * bandwidth_hz / rate)
    a = np.array([1.0, -2.0 * r * np.cos(2 * np.pi * frequency_hz / rate), r * r])
    return np.array([a.sum()]), a


def _envelope(frames: int, rate: int, attack_s: float = 0.015, release_s: float = 0.03) -> np.ndarray:
    env = np.ones(frames)
    a, r = min(frames // 2, int(attack_s * rate)), min(frames // 2, int(release_s * rate))
    if a:
        env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    if r:
        env[-r:] = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return env


class BuiltinVoice:
    """A small formant synthesizer: enough spectral and temporal structure to exercise a noise gate."""

    def __init__(self, rate: int):
        self.rate = rate

    def utterance(self, rng: np.random.Generator, f0_hz: float) -> np.ndarray:
        rate = self.rate
        pieces = []
        syllables = int(rng.integers(5, 26))
        f0_start, f0_end = f0_hz * rng.uniform(1.05, 1.25), f0_hz * rng.uniform(0.8, 0.92)
        for index in range(syllables):
            if rng.random() < 0.6:
                pieces.append(self._consonant(rng))
            f0 = f0_start + (f0_end - f0_start) * index / max(1, syllables - 1)
            pieces.append(self._vowel(rng, f0))
            if rng.random() < 0.4:  # end of a word
                pieces.append(np.zeros(int(rng.uniform(0.03, 0.12) * rate)))
        speech = np.concatenate(pieces)
        return speech / (np.sqrt(np.mean(speech[speech != 0] ** 2)) + 1e-12)

    def _vowel(self, rng: np.random.Generator, f0_hz: float) -> np.ndarray:
        rate = self.rate
        frames = int(rng.uniform(0.09, 0.24) * rate)
        glide = np.linspace(1.0, rng.uniform(0.92, 1.08), frames)
        jitter = 1.0 + 0.01 * rng.standard_normal(frames)
        phase = np.cumsum(f0_hz * glide * jitter) / rate
        source = 2.0 * (phase % 1.0) - 1.0  # sawtooth: all harmonics, -6 dB/octave
        source = signal.lfilter([1.0], [1.0, -0.9], source) * 0.1  # glottal roll-off
        out = source
        for formant, bandwidth in zip(VOWELS[int(rng.integers(len(VOWELS)))], (80.0, 110.0, 160.0)):
            if formant < 0.45 * rate:
                out = signal.lfilter(*_resonator(formant, bandwidth, rate), out)
        return out * _envelope(frames, rate)

    def _consonant(self, rng: np.random.Generator) -> np.ndarray:
        rate = self.rate
        if rng.random() < 0.5:  # fricative: s, sh, f
            frames = int(rng.uniform(0.04, 0.11) * rate)
            centre = min(rng.choice([2500.0, 4500.0, 6500.0]), 0.4 * rate)
            noise = signal.lfilter(*_resonator(centre, centre * 0.5, rate), rng.standard_normal(frames))
            return 0.25 * noise / (np.std(noise) + 1e-12) * _envelope(frames, rate, 0.01, 0.01)
        closure = np.zeros(int(rng.uniform(0.02, 0.05) * rate))  # plosive: p, t, k
        burst_frames = int(0.012 * rate)
        burst = rng.standard_normal(burst_frames) * np.exp(-np.linspace(0, 6, burst_frames))
        return np.concatenate([closure, 0.6 * burst])


class EspeakVoice:
    """Sentences spoken by espeak-ng, synthesized once into a small pool (fixed memory)."""

    def __init__(self, rate: int):
        self.rate = rate
        self.pool = {}

    def _sentence(self, index: int, f0_hz: float) -> np.ndarray:
        key = (index, f0_hz)
        if key not in self.pool:
            pitch = "35" if f0_hz < 150 else "70"
            voice = "en-us" if f0_hz < 150 else "en-us+f3"
            wav = subprocess.run(["espeak-ng", "-v", voice, "-p", pitch, "-s", "165", "--stdout", SENTENCES[index]],
                                 capture_output=True, check=True).stdout
            speech, native_rate = sf.read(io.BytesIO(wav), dtype="float64")
            speech = signal.resample_poly(speech, self.rate, native_rate)
            self.pool[key] = speech / (np.sqrt(np.mean(speech[np.abs(speech) > 1e-4] ** 2)) + 1e-12)
        return self.pool[key]

    def utterance(self, rng: np.random.Generator, f0_hz: float) -> np.ndarray:
        return self._sentence(int(rng.integers(len(SENTENCES))), f0_hz)


class _SpeechTape:
    """Speech and gaps as one endless stream, read in any amounts; depends only on the seed."""

    def __init__(self, params: SceneParams):
        self.params = params
        self.voice = EspeakVoice(params.sample_rate) if params.engine == "espeak" else BuiltinVoice(params.sample_rate)
        self.level = 10 ** (params.speech_dbfs / 20)
        self.pending = np.zeros(0)
        self.utterances = 0

    def read(self, frames: int) -> np.ndarray:
        while len(self.pending) < frames:
            rng = np.random.default_rng([self.params.seed, 1, self.utterances])
            speaker = SPEAKERS_F0_HZ[self.utterances % len(SPEAKERS_F0_HZ)]
            gap = np.zeros(int(rng.uniform(*self.params.gap_seconds) * self.params.sample_rate))
            speech = self.voice.utterance(rng, speaker) * self.level * rng.uniform(0.7, 1.3)
            self.pending = np.concatenate([self.pending, gap, speech])
            self.utterances += 1
        out, self.pending = self.pending[:frames], self.pending[frames:]
        return out


def _unit_rms_gain(sos: np.ndarray) -> float:
    """Gain that gives filtered unit white noise an RMS of 1."""
    impulse = np.zeros(1 << 16)
    impulse[0] = 1.0
    return 1.0 / np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2))


# Paul Kellett / Julius O. Smith's pink-noise filter (-3 dB/octave within 0.5 dB over the audio band).
_PINK_B = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
_PINK_A = [1.0, -2.494956002, 2.017265875, -0.522189400]


class Scene:
    """The noisy mix and the clean speech, ``total_frames`` long, in blocks.

    ``blocks()`` yields ``(noisy, clean)`` float32 ``(frames, channels)`` pairs of
    :data:`BLOCK_FRAMES` frames (the last one shorter).
    """

    def __init__(self, params: SceneParams, total_frames: int):
        if params.engine not in ("builtin", "espeak"):
            raise ValueError("resolve the speech engine first (resolve_engine)")
        self.params, self.total_frames = params, total_frames
        rate, channels = params.sample_rate, params.channels
        self.speech_level = 10 ** (params.speech_dbfs / 20)
        self.channel_gains = np.linspace(1.0, 0.8, channels) if channels > 1 else np.ones(1)
        self.pink_sos = signal.tf2sos(_PINK_B, _PINK_A)
        self.pink_gain = _unit_rms_gain(self.pink_sos) * self.speech_level * 10 ** (-params.snr_db / 20)
        self.rumble_sos = signal.butter(2, min(25.0, 0.4 * rate), "lowpass", fs=rate, output="sos")
        self.rumble_gain = _unit_rms_gain(self.rumble_sos) * self.speech_level * 10 ** (params.rumble_db / 20)
        self.hum_amplitudes = [1.0, 0.5, 0.7, 0.25, 0.35, 0.15]  # odd harmonics strong, as from a transformer
        norm = np.sqrt(0.5 * sum(a * a for a in self.hum_amplitudes))
        self.hum_gain = self.speech_level * 10 ** (params.hum_db / 20) / norm
        self.hum_period = self._hum_period()
        self.hum_table = self._hum(np.arange(self.hum_period)) if self.hum_period else None

    def _hum_period(self) -> int | None:
        """Samples after which the hum repeats exactly (None for a non-integer mains frequency)."""
        hum_hz = self.params.hum_hz
        if hum_hz <= 0 or hum_hz != int(hum_hz):
            return None
        return self.params.sample_rate // math.gcd(self.params.sample_rate, int(hum_hz))

    def _hum(self, frame_indices: np.ndarray) -> np.ndarray:
        t = frame_indices / self.params.sample_rate
        hum_hz, nyquist = self.params.hum_hz, self.params.sample_rate / 2
        return self.hum_gain * sum(a * np.sin(2 * np.pi * (k + 1) * hum_hz * t + k)
                                   for k, a in enumerate(self.hum_amplitudes) if (k + 1) * hum_hz < nyquist)

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        p = self.params
        channels = p.channels
        tape = _SpeechTape(p)
        pink_zi = np.zeros((self.pink_sos.shape[0], 2, channels))
        rumble_zi = np.zeros((self.rumble_sos.shape[0], 2, 1))
        for index, start in enumerate(range(0, self.total_frames, BLOCK_FRAMES)):
            frames = min(BLOCK_FRAMES, self.total_frames - start)
            rng = np.random.default_rng([p.seed, 2, index])
            white = rng.standard_normal((frames, channels + 1), dtype=np.float32)
            clean = tape.read(frames)[:, None] * self.channel_gains[None, :]
            pink, pink_zi = signal.sosfilt(self.pink_sos, white[:, :channels], axis=0, zi=pink_zi)
            rumble, rumble_zi = signal.sosfilt(self.rumble_sos, white[:, channels:], axis=0, zi=rumble_zi)
            noisy = clean + pink * self.pink_gain + rumble * self.rumble_gain
            if self.hum_table is not None:
                noisy += self.hum_table[np.arange(start, start + frames) % self.hum_period][:, None]
            elif p.hum_hz > 0:
                noisy += self._hum(np.arange(start, start + frames))[:, None]
            yield (np.clip(noisy, -1.0, 1.0).astype(np.float32), clean.astype(np.float32))
