"""The service's export, streamed: the file pydub's ``AudioSegment.export`` wrote, written in blocks.

The service clipped its float output, scaled it by 32767 and truncated it into a 16-bit segment
(:func:`service_pcm16`), then exported it by the output's extension:

- ``.wav``: Python's :mod:`wave` module writes the header and the samples (pydub's "easy wav");
  so does :class:`ServiceSink`, and the two files are equal byte for byte;
- ``.flac``, ``.mp3``, ``.ogg``: pydub writes that WAV to a temporary file and runs
  ``ffmpeg -y -f wav -i TMP [-acodec libvorbis] -f FORMAT OUT``; the sink pipes the same
  samples into the same encoder, without the temporary file.

Like :class:`~audionorm_lab.media.sinks.AtomicSink`, the output is written under a temporary name and renamed
into place when complete.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from ..errors import OutputPathError, UnsupportedFormatError
from .probe import dies_with_caller, last_line, require_tool
from .sinks import check_output_path, make_partial, publish_partial

#: pydub's ``AudioSegment.DEFAULT_CODECS``: the encoder it names for a format (ffmpeg's default otherwise).
PYDUB_CODECS = {"ogg": "libvorbis"}
#: pydub's "easy wav" is written by the wave module, whose RIFF sizes are 32-bit.
WAVE_LIMIT_BYTES = 0xFFFF_FFFF - 44


def service_pcm16(samples: np.ndarray) -> np.ndarray:
    """The service's float-to-16-bit conversion before export: clip to +-1, scale by 32767,
    truncate toward zero. Returns int16 ``(frames, channels)``.

    To compare another output with the service's file sample by sample, convert it
    with this first: the truncation alone is about 70 dB below speech at -23 LUFS.
    """
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")


class ServiceSink:
    """Write float32 ``(frames, channels)`` blocks as the service exported them (16-bit, by extension).

    A context manager, as :class:`~audionorm_lab.media.sinks.AtomicSink`: on an exception the temporary file
    (and any encoder) goes, and ``path`` is left as it was.
    """

    rewritable = False  # 16-bit samples cannot take the gain afterwards without a second rounding

    def __init__(self, path, sample_rate: int, channels: int):
        self.path = check_output_path(path)
        self.format = self.path.suffix.lower().lstrip(".")
        self.sample_rate, self.channels = sample_rate, channels
        self.frames_written = 0
        self._tmp: Path | None = None
        self._wave = None
        self._encoder: subprocess.Popen | None = None
        self._stderr = None

    @property
    def folder(self) -> Path:
        """The output's folder: where its temporary file (and any spill) lives."""
        return self.path.parent

    @property
    def description(self) -> str:
        """What is written, in words, for the report."""
        codec = PYDUB_CODECS.get(self.format, "ffmpeg's default encoder")
        return ("16-bit WAV, as pydub's export (the wave module)" if self.format == "wav"
                else f"16-bit samples through ffmpeg -f {self.format} ({codec}), as pydub's export")

    def estimated_bytes(self, frames: int) -> int:
        """The finished file's size at most, bytes (compressed formats take less)."""
        return 44 + frames * self.channels * 2

    def __enter__(self) -> "ServiceSink":
        try:
            self._tmp = make_partial(self.path)
        except OSError as exc:
            raise OutputPathError(f"{self.path}: cannot create a file in {self.path.parent} ({exc.strerror})") from None
        try:
            if self.format == "wav":
                self._open_wave()
            else:
                self._open_encoder()
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self

    def _open_wave(self) -> None:
        self._wave = wave.open(str(self._tmp), "wb")
        self._wave.setnchannels(self.channels)
        self._wave.setsampwidth(2)
        self._wave.setframerate(self.sample_rate)

    def _open_encoder(self) -> None:
        codec = PYDUB_CODECS.get(self.format)
        command = [require_tool("ffmpeg", self.path), "-nostdin", "-y", "-v", "error",
                   "-f", "s16le", "-ar", str(self.sample_rate), "-ac", str(self.channels), "-i", "pipe:0",
                   *(["-acodec", codec] if codec else []), "-f", self.format, str(self._tmp)]
        self._stderr = tempfile.TemporaryFile()
        self._encoder = subprocess.Popen(dies_with_caller(command), stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr)

    def write(self, block: np.ndarray) -> None:
        data = service_pcm16(block).tobytes()
        try:
            if self._wave is not None:
                if (self.frames_written + len(block)) * self.channels * 2 > WAVE_LIMIT_BYTES:
                    raise UnsupportedFormatError(f"{self.path}: over 4 GiB, more than the service's WAV export "
                                                 f"(the wave module) can write")
                self._wave.writeframesraw(data)
            else:
                self._encoder.stdin.write(data)
        except (OSError, ValueError):
            raise OutputPathError(f"{self.path}: cannot write after {self.frames_written} frames "
                                  f"(no space left, a file size limit, or the encoder failed)") from None
        self.frames_written += len(block)

    def _close(self) -> None:
        if self._wave is not None:
            self._wave.close()  # writes the final sizes into the header, as pydub's export did
            return
        self._encoder.stdin.close()
        if self._encoder.wait() != 0:
            self._stderr.seek(0)
            message = last_line(self._stderr.read().decode(errors="replace"))
            raise OutputPathError(f"{self.path}: ffmpeg could not write {self.format} ({message})")

    def _abandon(self) -> None:
        if self._encoder is not None:
            if self._encoder.poll() is None:
                self._encoder.kill()
            self._encoder.wait()
        elif self._wave is not None:
            try:
                self._wave.close()
            except (OSError, ValueError, AttributeError):
                pass

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self._close()
                except OSError:
                    raise OutputPathError(f"{self.path}: cannot finish writing (no space left, or a file size "
                                          f"limit)") from None
                publish_partial(self._tmp, self.path)
                return
            self._abandon()
        finally:
            if self._stderr is not None:
                self._stderr.close()
            if exc_type is not None or self._tmp.exists():
                self._tmp.unlink(missing_ok=True)
