"""The service's decode, streamed: the samples ``pydub.AudioSegment.from_file`` gave the service, block by block.

pydub decodes in one of two ways, and so does this module:

- a file named ``.wav`` whose header pydub's own parser accepts (PCM or extensible, its ``data``
  chunk among the first ten) is read as it is: its integers, 8-bit ones made signed, 24-bit ones
  widened to 32 bits with pydub's padding byte;
- anything else goes through ffmpeg into integer PCM of the width pydub picks from ffprobe: 16
  bits for mp3 and aac decoded in float, else the stream's bits per sample (read from ffprobe's
  own text where its JSON says 0: 32 for vorbis, opus and 24-bit flac).

The integers become float32 as :func:`pcm_to_float32` says, the conversion full-load uses too.
Unlike pydub, ffmpeg and ffprobe read the input with the demuxer its probe found
(:func:`~audionorm_lab.media.containers.ffmpeg_input`), and the samples stream: nothing holds the file.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
import subprocess
from dataclasses import dataclass

import numpy as np

from .containers import ffmpeg_input
from ..errors import DecodeError, UnsupportedFormatError
from .probe import AudioInfo, last_line, require_tool
from .sources import AudioSource, FfmpegPipeSource

#: pydub decodes these in float and says so, yet asks ffmpeg for 16 bits (its workaround for old ffprobes).
SIXTEEN_BIT_FLOAT_CODECS = ("mp3", "mp4", "aac", "webm", "ogg")
#: Integer sample width in bytes -> ffmpeg's raw format and numpy's dtype for it.
RAW_FORMATS = {1: ("u8", "pcm_u8", "u1"), 2: ("s16le", "pcm_s16le", "<i2"), 4: ("s32le", "pcm_s32le", "<i4")}
#: How many chunks pydub's WAV parser looks through for ``data``.
WAV_CHUNKS_LOOKED_AT = 10


def pcm_to_float32(samples: np.ndarray, sample_width: int) -> np.ndarray:
    """pydub's integer samples (``get_array_of_samples``, signed) as float32 in [-1, 1): the conversion
    the service made, in its order (to float32, then divided by ``2 ** (8 * sample_width - 1)``).
    ``sample_width``: bytes per sample of the segment (4 for 24-bit input, which pydub widens)."""
    floats = samples.astype(np.float32)
    if sample_width == 1:  # what full-load always did with 8-bit segments
        floats -= 128.0
    floats /= float(1 << (8 * sample_width - 1))
    return floats


@dataclass(frozen=True)
class WavData:
    """Where pydub finds a WAV's samples: bytes from ``offset``, ``size`` of them as its header says
    (fewer when the file is shorter), ``width`` bytes per sample as stored."""

    offset: int
    size: int
    channels: int
    width: int


def pydub_wav_data(path) -> WavData | None:
    """The samples pydub's WAV parser reads from ``path`` (``read_wav_audio``), or None when it would
    refuse the header and hand the file to ffmpeg instead."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        chunks, position = [], 12
        while position + 8 <= len(data) and len(chunks) < WAV_CHUNKS_LOOKED_AT:
            chunk_id, size = bytes(data[position:position + 4]), struct.unpack_from("<I", data, position + 4)[0]
            chunks.append((chunk_id, position, size))
            if chunk_id == b"data":
                break
            position += size + 8
        fmt = next(((p, s) for c, p, s in chunks if c == b"fmt "), None)
        if fmt is None or fmt[1] < 16 or chunks[-1][0] != b"data":
            return None
        audio_format, channels = struct.unpack_from("<HH", data, fmt[0] + 8)
        bits = struct.unpack_from("<H", data, fmt[0] + 22)[0]
        if audio_format not in (1, 0xFFFE) or channels == 0 or bits // 8 not in (1, 2, 3, 4):
            return None
        offset, size = chunks[-1][1] + 8, chunks[-1][2]
        return WavData(offset, max(0, min(size, len(data) - offset)), channels, bits // 8)


def pydub_ffmpeg_width(info: AudioInfo) -> int:
    """The sample width in bytes that pydub asks ffmpeg for (``-acodec pcm_s<bits>le``), from ffprobe's
    description of the first audio stream as pydub reads it (``mediainfo_json``)."""
    from pydub.utils import get_extra_info

    command = [require_tool("ffprobe", info.path), "-v", "info", "-of", "json", "-show_streams",
               "-select_streams", "a:0", *ffmpeg_input(info.path, info.demuxer)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    streams = json.loads(result.stdout or "{}").get("streams") or []
    if result.returncode != 0 or not streams:
        raise DecodeError(f"{info.path}: ffprobe could not describe its audio ({last_line(result.stderr)})")
    stream = streams[0]
    for token in get_extra_info(result.stderr).get(stream["index"], []):
        _fill_from_token(stream, token)
    if stream.get("sample_fmt") == "fltp" and stream.get("codec_name") in SIXTEEN_BIT_FLOAT_CODECS:
        return 2
    bits = int(stream.get("bits_per_sample") or 0)
    if bits // 8 not in RAW_FORMATS or bits % 8:
        raise UnsupportedFormatError(f"{info.path}: the service would decode it into {bits}-bit samples, "
                                     f"which this mode does not reproduce")
    return bits // 8


def _fill_from_token(stream: dict, token: str) -> None:
    """``mediainfo_json``'s reading of one token of ffprobe's stream line: it fills what the JSON left 0."""
    integer = re.match(r"([su]([0-9]{1,2})p?)( \(([0-9]{1,2}) bit\)| \(default\))?$", token)
    if integer:
        bits = int(integer.group(2))
    elif re.match(r"(flt)p?( \(default\))?$", token):
        bits = 32
    elif re.match(r"(dbl)p?( \(default\))?$", token):
        bits = 64
    else:
        return
    sample_fmt = integer.group(1) if integer else token
    for key, value in (("sample_fmt", sample_fmt), ("bits_per_sample", bits)):
        if key not in stream or stream[key] == 0:
            stream[key] = value


class ServiceWavSource(AudioSource):
    """A WAV pydub reads itself: its integers, read in blocks, as pydub's segment holds them."""

    def __init__(self, info: AudioInfo, wav: WavData):
        super().__init__(info)
        self.wav = wav
        self.sample_width = 4 if wav.width == 3 else wav.width
        self._file = open(info.path, "rb")
        self._file.seek(wav.offset)
        self._left = wav.size - wav.size % (wav.width * wav.channels)

    def _read(self, frames: int) -> np.ndarray:
        frame_bytes = self.wav.width * self.wav.channels
        data = self._file.read(min(frames * frame_bytes, self._left))
        self._left -= len(data)
        data = data[: len(data) - len(data) % frame_bytes]
        return pcm_to_float32(self._integers(data), self.sample_width).reshape(-1, self.wav.channels)

    def _integers(self, data: bytes) -> np.ndarray:
        width = self.wav.width
        if width == 1:
            return np.frombuffer(data, "u1").astype(np.int16) - 128  # pydub's audioop.bias(data, 1, -128)
        if width == 3:  # pydub's 24 -> 32 bits: a padding byte (0xFF below zero) under the three
            triples = np.frombuffer(data, "u1").reshape(-1, 3)
            words = np.empty((len(triples), 4), "u1")
            words[:, 0] = np.where(triples[:, 2] > 0x7F, 0xFF, 0)
            words[:, 1:] = triples
            return words.view("<i4").ravel()
        return np.frombuffer(data, RAW_FORMATS[width][2])

    def close(self) -> None:
        self._file.close()


class ServiceFfmpegSource(FfmpegPipeSource):
    """Any other input: ffmpeg's integer PCM of pydub's width (``sample_width`` bytes), as pydub's segment holds it."""

    def __init__(self, info: AudioInfo, sample_width: int):
        raw_format, codec, self._dtype = RAW_FORMATS[sample_width]
        self.sample_width = sample_width
        super().__init__(info, ["-acodec", codec, "-f", raw_format], sample_width)

    def _floats(self, data: bytes) -> np.ndarray:
        integers = np.frombuffer(data, self._dtype)
        if self.sample_width == 1:
            integers = integers.astype(np.int16) - 128  # ffmpeg's pcm_u8, made signed as pydub makes it
        return pcm_to_float32(integers, self.sample_width)


@dataclass(frozen=True)
class ServiceDecode:
    """How pydub decodes one input: ``"wav"`` (its own parser, :attr:`wav` says where) or ``"ffmpeg"``
    (into integers of :attr:`sample_width` bytes)."""

    info: AudioInfo
    kind: str
    sample_width: int
    wav: WavData | None = None

    @classmethod
    def of(cls, info: AudioInfo) -> "ServiceDecode":
        """pydub's choice for ``info``'s file: its own WAV parser for a ``.wav`` it accepts, else ffmpeg."""
        wav = pydub_wav_data(info.path) if os.fspath(info.path).lower().endswith(".wav") else None
        if wav is not None and wav.channels == info.channels:
            return cls(info, "wav", 4 if wav.width == 3 else wav.width, wav)
        return cls(info, "ffmpeg", pydub_ffmpeg_width(info))

    def describe(self) -> str:
        """In words, for the report."""
        bits = 8 * self.sample_width
        if self.kind == "wav":
            return f"as the service: pydub's WAV reader ({8 * self.wav.width}-bit, as {bits}-bit integers)"
        return f"as the service: ffmpeg into {bits}-bit integers, as pydub asks it"

    def open(self) -> AudioSource:
        """A fresh source of the service's samples."""
        if self.kind == "wav":
            return ServiceWavSource(self.info, self.wav)
        return ServiceFfmpegSource(self.info, self.sample_width)
