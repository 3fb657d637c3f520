"""Audio in and out, in blocks: memory never depends on the file's length.

Sources yield float32 blocks shaped ``(frames, channels)``. Files libsndfile reads
(wav, flac, ogg, mp3 on libsndfile >= 1.1) are read with :mod:`soundfile`; anything
else (m4a/aac, opus in other containers, the audio of video files) is decoded by an
``ffmpeg`` subprocess writing raw float32 to a pipe, which is always reaped.

Sinks write blocks to a temporary file in the target folder and rename it into
place only when the whole output is written, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .containers import (
    MIN_PROBE_SCORE,
    SNDFILE_DEMUXERS,
    SNDFILE_FORMATS,
    demuxer_of,
    describe_refusal,
    ffmpeg_input,
    ffprobe_input,
    not_media,
    sndfile_magic,
)
from .errors import (
    DecodeError,
    EmptyInputError,
    FfmpegNotFoundError,
    InputNotFoundError,
    NotAudioError,
    OutputPathError,
    UnsupportedFormatError,
)

#: Output extension -> (libsndfile major format, default subtype).
SINK_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "FLOAT"),
    ".flac": ("FLAC", "PCM_24"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}

_WAV_LIMIT_BYTES = 0xFFFF_FFFF - 1024  # RIFF sizes are 32-bit; above this write RF64


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
        The ffmpeg demuxer that reads the file (:mod:`~audionorm_lab.containers`): every ffmpeg call on
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
    """Identify ``path`` among the allowed containers only (:func:`~audionorm_lab.containers.ffprobe_input`)."""
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
    """libsndfile's description of a file it reads (:func:`~audionorm_lab.containers.sndfile_magic`) in an
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
    """Describe an audio file without decoding it, and check what it is (:mod:`~audionorm_lab.containers`):
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


class AudioSource:
    """Blocks of float32 frames from one file; use as a context manager.

    ``read(frames)`` returns up to ``frames`` frames, shape ``(n, channels)``;
    fewer only at the end of the stream, and an empty array after it.
    """

    def __init__(self, info: AudioInfo):
        self.info = info
        self.frames_read = 0

    def read(self, frames: int) -> np.ndarray:
        block = self._read(frames)
        self.frames_read += len(block)
        return block

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Yield consecutive blocks of ``block_frames`` frames (the last may be shorter)."""
        while True:
            block = self.read(block_frames)
            if len(block) == 0:
                return
            yield block

    def _read(self, frames: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "AudioSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SoundfileSource(AudioSource):
    """A file libsndfile decodes (wav, flac, ogg, mp3...)."""

    def __init__(self, info: AudioInfo):
        super().__init__(info)
        try:
            self._file = sf.SoundFile(str(info.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(f"{info.path}: cannot open ({exc})") from None

    def _read(self, frames: int) -> np.ndarray:
        try:
            return self._file.read(frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            rate = self.info.sample_rate
            raise DecodeError(f"{self.info.path}: the decoder gave up after {self.frames_read:,} frames "
                              f"({self.frames_read / rate:.1f} s): the file is damaged there ({exc})") from None

    def close(self) -> None:
        self._file.close()


#: The decoder's pipe, bytes: Linux's default is 64 KB, about 0.37 s of 16-bit stereo at 44.1 kHz, so ffmpeg
#: stopped decoding whenever the reader was busy for longer; 1 MB (the largest an unprivileged process may ask for)
#: lets it decode about 6 s ahead. Kernel memory, not the process's RSS.
PIPE_BYTES = 1 << 20


def widen_pipe(fd: int, size_bytes: int = PIPE_BYTES) -> None:
    """Ask Linux for a pipe buffer of ``size_bytes`` on ``fd`` (``F_SETPIPE_SZ``); where that is refused or not
    Linux, the pipe keeps its size: only the decoder's lead depends on it. On the 10-minute mp3 in service mode
    the reads waited 0.52-0.57 s in all with 1 MB against 1.21-1.34 s with 64 KB."""
    if not hasattr(fcntl, "F_SETPIPE_SZ"):  # not Linux: no such request
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size_bytes)
    except OSError:
        pass


class FfmpegPipeSource(AudioSource):
    """An ``ffmpeg`` subprocess decoding the input (its demuxer pinned) into raw samples of ``sample_bytes``
    bytes on its stdout, read in fixed-size reads and always reaped. Subclasses give the output's arguments
    (``output_args``) and turn its bytes into float32 (:meth:`_floats`)."""

    def __init__(self, info: AudioInfo, output_args: list[str], sample_bytes: int):
        super().__init__(info)
        self.sample_bytes = sample_bytes
        self._stderr = tempfile.TemporaryFile()
        command = [require_tool("ffmpeg", info.path), "-nostdin", "-v", "error",
                   *ffmpeg_input(info.path, info.demuxer), "-map", "0:a:0", "-vn", *output_args, "pipe:1"]
        self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        widen_pipe(self._proc.stdout.fileno())
        self._done = False

    def _floats(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def _read(self, frames: int) -> np.ndarray:
        channels = self.info.channels
        if self._done:
            return np.zeros((0, channels), np.float32)
        frame_bytes = self.sample_bytes * channels
        data = self._proc.stdout.read(frames * frame_bytes)
        if len(data) < frames * frame_bytes:
            self._finish()
            data = data[: len(data) - len(data) % frame_bytes]
        return self._floats(data).reshape(-1, channels)

    def _finish(self) -> None:
        self._done = True
        if self._proc.wait() != 0:
            self._stderr.seek(0)
            message = last_line(self._stderr.read().decode(errors="replace"))
            raise DecodeError(f"{self.info.path}: ffmpeg failed after {self.frames_read} frames ({message})")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()


class FfmpegSource(FfmpegPipeSource):
    """Any format ffmpeg decodes, as raw float32."""

    def __init__(self, info: AudioInfo):
        super().__init__(info, ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(info.channels),
                                "-ar", str(info.sample_rate)], 4)

    def _floats(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype="<f4").astype(np.float32)


def open_source(info_or_path: AudioInfo | str | os.PathLike) -> AudioSource:
    """Open a block source for a probed file (or probe the path first)."""
    info = info_or_path if isinstance(info_or_path, AudioInfo) else probe(info_or_path)
    return SoundfileSource(info) if info.decoder == "soundfile" else FfmpegSource(info)


def check_output_path(dst: str | os.PathLike, src: str | os.PathLike | None = None) -> Path:
    """Check that ``dst`` can be written as a new file, before any work is done.

    Raises
    ------
    UnsupportedFormatError
        The extension is not one of :data:`SINK_FORMATS`.
    OutputPathError
        The folder is missing or unwritable, or ``dst`` is the input itself.
    """
    dst = Path(dst)
    if dst.suffix.lower() not in SINK_FORMATS:
        raise UnsupportedFormatError(
            f"{dst}: cannot write '{dst.suffix or '(no extension)'}' files; use one of {', '.join(SINK_FORMATS)}"
        )
    folder = dst.parent
    if not folder.is_dir():
        raise OutputPathError(f"{dst}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{dst}: output folder {folder} is not writable")
    if dst.is_dir():
        raise OutputPathError(f"{dst}: is a folder")
    if src is not None and dst.exists() and os.path.samefile(dst, src):
        raise OutputPathError(f"{dst}: output would overwrite the input")
    return dst


PARTIAL_SUFFIX = ".part"


def make_partial(path: Path) -> Path:
    """A new empty temporary file for ``path``, in its folder: ``.<name>.<random>.part``, the name
    :func:`partial_outputs` finds. Outputs are written there and renamed into place when complete."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    os.close(fd)
    return Path(name)


def publish_partial(partial: Path, path: Path) -> None:
    """Rename a complete temporary file (:func:`make_partial`) into place as ``path``, with the permissions
    a new file gets under the process's umask (mkstemp made it private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)
    os.replace(partial, path)


def partial_outputs(path) -> list[Path]:
    """The temporary files (:func:`make_partial`) a run for ``path`` left behind (killed before its rename),
    in ``path``'s folder. A live run's own file is among them: remove them only when no run writes ``path``."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{PARTIAL_SUFFIX}"))


class AtomicSink:
    """Write float32 ``(frames, channels)`` blocks to a temporary file, renamed into place on success.

    Used as a context manager: on an exception, the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : path-like
        Final output file; its extension picks the format (see :data:`SINK_FORMATS`).
    sample_rate : int
        Hz.
    channels : int
    subtype : str, optional
        libsndfile subtype (``"PCM_16"``, ``"FLOAT"``...); the format's default otherwise.
    expected_frames : int, optional
        Used to switch a ``.wav`` to RF64 when it would pass the 4 GiB RIFF limit.
    """

    def __init__(self, path, sample_rate: int, channels: int, subtype: str | None = None,
                 expected_frames: int | None = None):
        self.path = check_output_path(path)
        major, default_subtype = SINK_FORMATS[self.path.suffix.lower()]
        self.subtype = subtype or default_subtype
        if major == "WAV" and expected_frames is not None:
            width = 4 if self.subtype in ("FLOAT", "PCM_32") else 8 if self.subtype == "DOUBLE" else 3
            if expected_frames * channels * width > _WAV_LIMIT_BYTES:
                major = "RF64"
        self.format, self.sample_rate, self.channels = major, sample_rate, channels
        self.frames_written = 0
        self._tmp: Path | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> "AtomicSink":
        try:
            self._tmp = make_partial(self.path)
        except OSError as exc:
            raise OutputPathError(f"{self.path}: cannot create a file in {self.path.parent} ({exc.strerror})") from None
        try:
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=self.sample_rate, channels=self.channels,
                                      format=self.format, subtype=self.subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise UnsupportedFormatError(
                f"{self.path}: cannot write {self.format}/{self.subtype} at {self.sample_rate} Hz, "
                f"{self.channels} channels ({exc})"
            ) from None
        return self

    @property
    def folder(self) -> Path:
        """The output's folder: where its temporary file (and any spill) lives."""
        return self.path.parent

    @property
    def rewritable(self) -> bool:
        """Whether the frames written can be read back and rewritten in place without loss
        (32-bit float WAV): the pipeline then applies its gain in the output itself."""
        return self.format in ("WAV", "RF64") and self.subtype == "FLOAT"

    def estimated_bytes(self, frames: int) -> int:
        """The finished file's size at most, bytes, for free-space checks (compressed formats take less)."""
        width = {"FLOAT": 4, "PCM_32": 4, "DOUBLE": 8, "PCM_24": 3, "PCM_U8": 1, "PCM_S8": 1}.get(self.subtype, 2)
        return frames * self.channels * width

    def write(self, block: np.ndarray) -> None:
        try:
            self._file.write(block)
        except (AssertionError, sf.LibsndfileError, RuntimeError, OSError):
            # libsndfile reports a short write without errno: ENOSPC or RLIMIT_FSIZE (EFBIG)
            raise OutputPathError(f"{self.path}: cannot write after {self.frames_written} frames "
                                  f"(no space left, or a file size limit)") from None
        self.frames_written += len(block)

    def rewrite(self, transform, block_frames: int = 1 << 16) -> None:
        """Replace every frame written by ``transform(block)``, in place, ``block_frames`` at a time.

        Only for :attr:`rewritable` sinks; the file keeps its temporary name until the sink exits.
        """
        if not self.rewritable:
            raise ValueError(f"{self.format}/{self.subtype} cannot be rewritten in place")
        self._file.close()
        try:
            with sf.SoundFile(str(self._tmp), "r+") as f:
                position = 0
                while position < self.frames_written:
                    f.seek(position)
                    block = f.read(min(block_frames, self.frames_written - position), dtype="float32",
                                   always_2d=True)
                    if len(block) == 0:
                        raise OutputPathError(f"{self.path}: its temporary file came back short")
                    f.seek(position)
                    f.write(transform(block))
                    position += len(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise OutputPathError(f"{self.path}: cannot rewrite its temporary file ({exc})") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._file.closed:
                self._file.close()
            if exc_type is None:
                publish_partial(self._tmp, self.path)
                return
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._tmp.unlink(missing_ok=True)
