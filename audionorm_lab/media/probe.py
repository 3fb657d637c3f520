"""What an input is, before anything decodes it: :func:`probe` (libsndfile where it reads the file, else
ffprobe), and the checks and tools the sources share (a missing or empty input, ffmpeg on the PATH, a child that
dies with its caller)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from .containers import (
    MIN_PROBE_SCORE,
    SNDFILE_DEMUXERS,
    SNDFILE_FORMATS,
    demuxer_of,
    describe_refusal,
    ffprobe_input,
    not_media,
    sndfile_magic,
)
from ..errors import EmptyInputError, FfmpegNotFoundError, InputNotFoundError, NotAudioError


@dataclass(frozen=True)
class AudioInfo:
    """What a cheap probe says about a file, without decoding it.

    Attributes
    ----------
    path : Path
    sample_rate : int
        Hz.
    channels : int
    frames : int or None
        Frames per channel the container declares (None when it does not say).
        A truncated file may decode to fewer.
    format : str
        libsndfile's major format (``"WAV"``, ``"MP3"``...) or ffprobe's format name.
    decoder : str
        ``"soundfile"`` or ``"ffmpeg"``: which source :func:`open_source` will use.
    demuxer : str or None
        The ffmpeg demuxer that reads the file (:mod:`~audionorm_lab.media.containers`): every ffmpeg call on
        it pins this one. None for an array.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int | None
    format: str
    decoder: str
    demuxer: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        """Declared duration in seconds, or None when unknown."""
        return None if self.frames is None else self.frames / self.sample_rate

    @property
    def decoded_bytes(self) -> int | None:
        """Size of the whole file decoded to float32 samples, in bytes."""
        return None if self.frames is None else self.frames * self.channels * 4


def require_tool(name: str, path: Path) -> str:
    """The path of the program ``name`` (ffmpeg, ffprobe), or a clear error naming ``path``, the
    file that needed it."""
    exe = shutil.which(name)
    if exe is None:
        raise FfmpegNotFoundError(
            f"{path}: not a format libsndfile reads, and {name} is not installed to decode it "
            f"(install ffmpeg, e.g. `apt-get install ffmpeg`)"
        )
    return exe


def dies_with_caller(command: list[str]) -> list[str]:
    """``command`` run so that the kernel SIGKILLs it when the thread that started it ends (``setpriv
    --pdeathsig``, util-linux; unchanged where setpriv is missing). For a subprocess that writes a file: a pool
    process killed mid-job must not leave an encoder behind that finishes its temporary file after the job's
    next delivery has cleared it. Start it from the thread that waits for it."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


def check_input_file(path: Path) -> None:
    """A clear error for a missing, non-regular or empty input file (nothing about its content)."""
    if not path.exists():
        raise InputNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise InputNotFoundError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise EmptyInputError(f"{path}: file is empty (0 bytes)")


def last_line(text: str) -> str:
    """The last non-blank line of a program's output: the one that says what went wrong."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _ffprobe(path: Path) -> AudioInfo:
    """Identify ``path`` among the allowed containers only (:func:`~audionorm_lab.media.containers.ffprobe_input`)."""
    refusal = not_media(path)
    if refusal is not None:
        raise NotAudioError(refusal)
    cmd = [require_tool("ffprobe", path), "-v", "error", *ffprobe_input(path), "-select_streams", "a:0",
           "-show_entries", "stream=sample_rate,channels,duration:format=duration,format_name,probe_score",
           "-of", "json"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        reason = last_line(result.stderr).replace(f"file:{path.resolve()}: ", "")
        raise NotAudioError(describe_refusal(path, result.stderr) or f"{path}: not an audio file ({reason})")
    probed = json.loads(result.stdout or "{}")
    streams = probed.get("streams") or []
    if not streams:
        raise NotAudioError(f"{path}: no audio stream found")
    stream, container = streams[0], probed.get("format", {})
    if int(container.get("probe_score", 0)) < MIN_PROBE_SCORE:
        raise NotAudioError(f"{path}: not an audio file (ffprobe's best guess, {container.get('format_name')}, "
                            f"scores {container.get('probe_score')} of 100: a guess from the name, not the content)")
    rate, channels = int(stream.get("sample_rate", 0)), int(stream.get("channels", 0))
    if rate <= 0 or channels <= 0:
        raise NotAudioError(f"{path}: audio stream without a sample rate or channel count")
    duration = stream.get("duration") or container.get("duration")
    frames = round(float(duration) * rate) if duration not in (None, "N/A") else None
    format_name = container.get("format_name", "?")
    demuxer = demuxer_of(format_name)
    if demuxer is None:  # the whitelist let only these through; this is a guard, not a path
        raise NotAudioError(f"{path}: {format_name} is not a container this tool reads")
    return AudioInfo(path, rate, channels, frames, format_name, "ffmpeg", demuxer)


def _declared_wav_frames(path: Path) -> int | None:
    """Frames a RIFF/WAVE header declares in its data chunk, or None.

    libsndfile quietly shortens a truncated wav to what is on disk; the header
    still says how long it should be, which is how a cut-short file is noticed.
    """
    with open(path, "rb") as f:
        if f.read(12)[:4] != b"RIFF":
            return None
        block_align = None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk_id == b"fmt ":
                fmt = f.read(size + size % 2)
                block_align = int.from_bytes(fmt[12:14], "little")
            elif chunk_id == b"data":
                return size // block_align if block_align and size != 0xFFFFFFFF else None
            else:
                f.seek(size + size % 2, os.SEEK_CUR)


def _sndfile_info(path: Path):
    """libsndfile's description of a file it reads (:func:`~audionorm_lab.media.containers.sndfile_magic`) in an
    accepted major format; None otherwise (libsndfile is not even asked about other files: its mp3 decoder
    prints notes on whatever it is handed)."""
    if not sndfile_magic(path):
        return None
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return None
    return info if info.format in SNDFILE_FORMATS else None


def probe(path: str | os.PathLike) -> AudioInfo:
    """Describe an audio file without decoding it, and check what it is (:mod:`~audionorm_lab.media.containers`):
    a playlist or any container outside the allowlist is refused here, before anything decodes it.

    Raises
    ------
    InputNotFoundError, EmptyInputError, NotAudioError, FfmpegNotFoundError
    """
    path = Path(path)
    check_input_file(path)
    info = _sndfile_info(path)
    if info is None:
        return _ffprobe(path)
    if info.frames == 0:
        raise EmptyInputError(f"{path}: contains no audio frames")
    frames = info.frames
    if info.format == "WAV":
        frames = max(frames, _declared_wav_frames(path) or 0)
    return AudioInfo(path, info.samplerate, info.channels, frames, info.format, "soundfile",
                     SNDFILE_DEMUXERS[info.format])
