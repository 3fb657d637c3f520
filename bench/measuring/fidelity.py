"""Does the fix change anything but the memory? Outputs against the service's own, sample by sample.

The service's output is what ``--strategy full-load`` writes: pydub's decode, then
``noisereduce.reduce_noise(stationary=True)`` on the whole array, the same filters and
gain, and a 16-bit export (scale 32767, truncated). Every other output is converted to
16 bits the same way before it is compared, so the figures measure the processing,
not the export. Every strategy runs in a fresh measured subprocess under a memory limit.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from audionorm_lab import probe
from audionorm_lab.media.containers import ffmpeg_input
from audionorm_lab.dsp.metrics import snr_db
from audionorm_lab.media.service_export import service_pcm16

from .measure import default_memory_limit, run_measured

#: label -> extra ``audionorm-lab normalize`` arguments. "service" is the reference.
OUTPUTS = {
    "service": ["--strategy", "full-load"],
    "streaming (service grid)": ["--gate-grid", "service"],
    "streaming (file grid)": ["--gate-grid", "file"],
    "ffmpeg-segments": ["--strategy", "ffmpeg-segments"],
}


def run_outputs(src: str | Path, out_dir: str | Path, memory_limit_bytes: int | None = None,
                labels=tuple(OUTPUTS)) -> dict[str, Path]:
    """Write the outputs of :data:`OUTPUTS` named in ``labels`` for ``src`` into ``out_dir``; label -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = memory_limit_bytes or default_memory_limit()
    paths = {}
    for label in labels:
        extra = OUTPUTS[label]
        dst = out_dir / (label.replace(" ", "-").replace("(", "").replace(")", "") + ".wav")
        command = [sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--quiet", *extra]
        run = run_measured(command, memory_limit_bytes=limit)
        if run.status != "ok":
            raise RuntimeError(f"{label}: {run.status}: {run.stderr.strip()[-300:]}")
        paths[label] = dst
    return paths


def _as_service_pcm(path: Path) -> np.ndarray:
    with sf.SoundFile(str(path)) as f:
        if f.subtype == "PCM_16":
            return f.read(dtype="int16", always_2d=True)
        return service_pcm16(f.read(dtype="float32", always_2d=True))


def difference_db(output: str | Path, reference: str | Path) -> float:
    """``output``'s difference from ``reference``, both as the service's 16-bit samples, in dB of the
    reference's RMS (-inf: identical)."""
    return -snr_db(_as_service_pcm(Path(output)).astype(np.float64), _as_service_pcm(Path(reference)).astype(np.float64))


def difference_from_service_db(outputs: dict[str, Path]) -> dict[str, float]:
    """Each output's difference from the service's, in dB of the service's signal RMS (-inf: identical)."""
    return {label: difference_db(path, outputs["service"]) for label, path in outputs.items() if label != "service"}


def difference_spectrogram(output: Path, service: Path, n_fft: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectrogram (channel mean) of output minus service, dB relative to the service's loudest bin.

    Returns (frequencies in Hz, times in seconds, levels in dB, (freqs, times)).
    """
    rate = sf.info(str(service)).samplerate
    a = _as_service_pcm(output).astype(np.float64)
    b = _as_service_pcm(service).astype(np.float64)
    frames = min(len(a), len(b))
    freqs, times, diff = signal.spectrogram((a[:frames] - b[:frames]).mean(axis=1), rate, nperseg=n_fft)
    _, _, ref = signal.spectrogram(b[:frames].mean(axis=1), rate, nperseg=n_fft)
    return freqs, times, 10 * np.log10(np.maximum(diff, 1e-30) / ref.max())


def decoder_comparison(mp3: str | Path, seconds: float = 60.0) -> dict:
    """The service's decode of an mp3 (ffmpeg through pydub, 16-bit) against streaming's (libsndfile's
    mpg123, float), over the first ``seconds``.

    - ``start_offset_frames``: lag of libsndfile's decode against ffmpeg's (cross-correlation);
      non-zero would mean the two skip a different encoder delay.
    - ``frames``: each decoder's length of the whole file.
    - ``float_decoders_db``: libsndfile against ffmpeg's float decode (decoder rounding).
    - ``pydub_int16_db``: pydub's 16-bit samples against ffmpeg's float decode (the quantization).
    All in dB of the signal's RMS.
    """
    from pydub import AudioSegment

    mp3 = Path(mp3)
    info = sf.info(str(mp3))
    frames = int(seconds * info.samplerate)
    libsndfile, _ = sf.read(str(mp3), dtype="float64", always_2d=True, frames=frames)
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *ffmpeg_input(mp3, "mp3"), "-t", f"{seconds:g}",
                          "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"], capture_output=True, check=True).stdout
    ffmpeg = np.frombuffer(raw, "<f4").reshape(-1, info.channels).astype(np.float64)[:frames]
    segment = AudioSegment.from_file(str(mp3))
    pydub = (np.array(segment.get_array_of_samples()).reshape(-1, segment.channels) / 32768.0)
    whole_frames = {"pydub (ffmpeg, int16)": len(pydub), "libsndfile (mpg123)": sf.info(str(mp3)).frames}
    pydub = pydub[:frames]
    a, b = libsndfile[:, 0], ffmpeg[:, 0]
    size = 1 << math.ceil(math.log2(2 * len(a)))
    correlation = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(correlation))
    lag = lag - size if lag > size // 2 else lag
    return {"start_offset_frames": lag, "frames": whole_frames, "seconds": seconds,
            "float_decoders_db": -snr_db(libsndfile, ffmpeg), "pydub_int16_db": -snr_db(pydub, ffmpeg)}


def streaming_vs_service_db(out_dir: str | Path, seconds: float = 30.0) -> float:
    """The regression figure: default streaming against the service's output on a stereo 44.1 kHz
    PCM_16 WAV of ``seconds`` (made with data/fetch_samples.py), dB."""
    from data.fetch_samples import make_sample

    wav = make_sample(seconds, "wav", subtype="PCM_16", out=Path(out_dir) / "samples")
    outputs = run_outputs(wav, Path(out_dir) / "fidelity", labels=("service", "streaming (service grid)"))
    return difference_from_service_db(outputs)["streaming (service grid)"]


def service_decode(mp3: str | Path, dst: str | Path) -> Path:
    """The samples the service decoded from ``mp3``, as a 16-bit WAV: ``ffmpeg -acodec pcm_s16le``, what
    ``pydub.AudioSegment.from_file`` runs and reads. Streaming this file isolates the processing
    from the decoders."""
    dst = Path(dst)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *ffmpeg_input(mp3, probe(mp3).demuxer), "-vn",
                    "-acodec", "pcm_s16le", "-f", "wav", str(dst)], check=True)
    return dst


def mp3_figures(mp3: str | Path, out_dir: str | Path, seconds: float) -> dict:
    """Every output against the service's on an mp3, streaming also on the service's own decode,
    and :func:`decoder_comparison`: what remains between streaming and the service on an mp3, and why."""
    out_dir = Path(out_dir)
    outputs = run_outputs(mp3, out_dir)
    decoded = service_decode(mp3, out_dir / "service-decode.wav")
    outputs["streaming (service grid) of the service's decode"] = run_outputs(
        decoded, out_dir / "on-service-decode", labels=("streaming (service grid)",))["streaming (service grid)"]
    return {"differences_db": difference_from_service_db(outputs), "decoders": decoder_comparison(mp3, seconds)}
