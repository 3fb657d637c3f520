"""Audio in, in blocks: memory never depends on the file's length.

Sources yield float32 blocks shaped ``(frames, channels)``. Files libsndfile reads
(wav, flac, ogg, mp3 on libsndfile >= 1.1) are read with :mod:`soundfile`; anything
else (m4a/aac, opus in other containers, the audio of video files) is decoded by an
``ffmpeg`` subprocess writing raw float32 to a pipe, which is always reaped.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from typing import Iterator

import numpy as np
import soundfile as sf

from .containers import ffmpeg_input
from .probe import AudioInfo, last_line, probe, require_tool
from ..errors import DecodeError


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


#: Frames an mp3 is decoded in, whatever a read asks for: 64 MPEG frames of 1152 samples.
MP3_DECODE_FRAMES = 64 * 1152


class SoundfileSource(AudioSource):
    """A file libsndfile decodes (wav, flac, ogg, mp3...).

    An mp3 is decoded in blocks of :data:`MP3_DECODE_FRAMES`, whatever a read asks for: libsndfile 1.2's mp3
    decoder gives samples that depend on where its reads end (a 48 kHz stereo file read 65,536 frames at a time
    differed from its whole read by up to 0.1 from frame 65,536 on; read in whole MPEG frames, a mono one still
    differed by an ulp), so the chunk length changed an mp3's output. Read the same way every time, the samples
    are the same every time; what a read does not take waits for the next (fewer than a block).
    """

    def __init__(self, info: AudioInfo):
        super().__init__(info)
        try:
            self._file = sf.SoundFile(str(info.path))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(f"{info.path}: cannot open ({exc})") from None
        self._fixed_blocks = self._file.format == "MP3"
        self._left = np.zeros((0, self._file.channels), np.float32)
        self._ended = False

    def _read(self, frames: int) -> np.ndarray:
        if not self._fixed_blocks:
            return self._decode(frames)
        pieces, held = [self._left], len(self._left)
        while held < frames and not self._ended:
            block = self._decode(MP3_DECODE_FRAMES)
            self._ended = len(block) < MP3_DECODE_FRAMES
            pieces.append(block)
            held += len(block)
        pool = np.concatenate(pieces) if len(pieces) > 1 else self._left
        block, self._left = pool[:frames], pool[frames:]
        return block

    def _decode(self, frames: int) -> np.ndarray:
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
