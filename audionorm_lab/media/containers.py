"""What an input file is, decided before anything decodes it: its container, against an allowlist.

An upload named ``.mp3`` may be anything, and some files are instructions rather than media:
an HLS or M3U playlist, a concat list, an SDP description, an image pattern. A decoder handed
one reads the files and streams it names, so a 117-byte "mp3" could make a worker normalize
another tenant's recording. A worker reads only the file it was given:

- A file whose first bytes are a container libsndfile reads (RIFF/RF64/W64 WAVE, AIFF, FLAC,
  Ogg, MPEG audio) is opened by libsndfile, which follows no reference; its major format must
  be one of :data:`SNDFILE_FORMATS`.
- Anything else is identified by ``ffprobe`` with ``-format_whitelist`` (:data:`FFMPEG_DEMUXERS`:
  media containers only; nested demuxers inherit the list, so a playlist cannot open a second
  file), ``-protocol_whitelist file,pipe`` and the path given as ``file:PATH`` (so a name like
  ``concat:a|b`` or ``http://`` is a file name, never a protocol).
- Every later ffmpeg call on the file (:func:`ffmpeg_input`) pins the demuxer found (``-f``) and
  the same protocols, so nothing probes a second time.

A refused file raises :class:`~audionorm_lab.errors.NotAudioError` with one line that says what it is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: libsndfile major formats accepted (``soundfile.info(...).format``).
SNDFILE_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "OGG", "MP3", "MPEG"})
#: The ffmpeg demuxer that reads each of them, for ffmpeg calls on a file libsndfile identified.
SNDFILE_DEMUXERS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "W64": "w64", "AIFF": "aiff", "FLAC": "flac",
                    "OGG": "ogg", "MP3": "mp3", "MPEG": "mp3"}
#: ffmpeg demuxers accepted: audio and video containers and raw audio streams. Not here, so refused:
#: ``hls``, ``concat``, ``sdp``, ``rtp``, ``image2`` and the image pipes, ``lavfi``, ``tee``, and the rest.
FFMPEG_DEMUXERS = ("aac", "ac3", "aiff", "amr", "ape", "asf", "au", "avi", "caf", "dsf", "dts", "eac3", "flac",
                   "flv", "loas", "matroska", "mlp", "mov", "mp3", "mpeg", "mpegts", "ogg", "truehd", "tta", "w64",
                   "wav", "wv")
#: Only files (and the pipes ffmpeg writes to): no network, no ``concat:``, ``subfile:``, ``tee:``.
PROTOCOLS = "file,pipe"

#: What a refused demuxer is, for the error line.
_REFUSED = {"hls": "an HLS/M3U playlist", "concat": "a concat list", "sdp": "an SDP session description",
            "rtp": "an RTP stream", "image2": "an image sequence", "tee": "a tee", "lavfi": "a filter graph"}
_TEXT_MARKS = ((b"#EXTM3U", "an M3U playlist"), (b"ffconcat", "a concat list"), (b"[playlist]", "a PLS playlist"),
               (b"<?xml", "an XML document (a playlist?)"), (b"v=0", "an SDP session description"))
#: Files that are surely not media, by their first bytes.
_NOT_MEDIA_MARKS = ((b"\x7fELF", "an executable (ELF)"), (b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b", "a gzip file"),
                    (b"%PDF", "a PDF document"), (b"\x89PNG", "an image (PNG)"), (b"\xff\xd8\xff", "an image (JPEG)"),
                    (b"GIF8", "an image (GIF)"), (b"MZ", "an executable (PE)"))
#: ffprobe's score below which its pick is a guess from the file name, not a match of the content
#: (ffmpeg's AVPROBE_SCORE_EXTENSION): an ELF binary named .mp3 scores 1 as mp3, a real mp3 51.
MIN_PROBE_SCORE = 50


def _mpeg_audio_sync(head: bytes) -> bool:
    """An MPEG audio frame header at the start: 11 sync bits, a layer (not the reserved 00, which is ADTS
    AAC), a bit rate index that is not 1111 and a sample rate index that is not 11."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return (head[1] >> 1) & 0x3 != 0 and head[2] >> 4 != 0xF and (head[2] >> 2) & 0x3 != 0x3


def sndfile_magic(path: str | os.PathLike) -> bool:
    """Whether the file starts like a container libsndfile reads (and libsndfile may open it)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return (head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"
            or head[:4] == b"riff"  # Sony Wave64
            or head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")
            or head[:4] in (b"fLaC", b"OggS") or head[:3] == b"ID3" or _mpeg_audio_sync(head))


def what_it_is(path: str | os.PathLike) -> str | None:
    """What the first bytes give away when they are not media: a playlist ("an M3U playlist"), an executable,
    an archive, an image, a document; None otherwise."""
    with open(path, "rb") as f:
        raw = f.read(64)
    text = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    return (next((what for mark, what in _TEXT_MARKS if text.startswith(mark)), None)
            or next((what for mark, what in _NOT_MEDIA_MARKS if raw.startswith(mark)), None))


def not_media(path: Path) -> str | None:
    """The one-line refusal of a file whose first bytes say it is not media (see :func:`what_it_is`), or None."""
    what = what_it_is(path)
    return None if what is None else f"{path}: {what}, not audio: refused (a worker reads only the file it was given)"


def refused_demuxer(ffprobe_stderr: str) -> str | None:
    """The demuxer ffprobe refused for not being on the whitelist (``[hls @ 0x...] Format not on whitelist``)."""
    match = re.search(r"\[(\w+) @ [^\]]+\] Format not on whitelist", ffprobe_stderr)
    return match.group(1) if match else None


def describe_refusal(path: Path, ffprobe_stderr: str) -> str | None:
    """Why ``path`` is refused, when it is a playlist or another container this tool does not read; None when
    ffprobe simply did not recognise it."""
    demuxer = refused_demuxer(ffprobe_stderr)
    if demuxer is not None:
        what = _REFUSED.get(demuxer) or ("an image" if demuxer.endswith("_pipe") else f"a {demuxer} container")
        return (f"{path}: {what} ({demuxer}), not an audio or video file this tool reads: refused "
                f"(a worker reads only the file it was given)")
    return not_media(path)


def ffprobe_input(path: Path) -> list[str]:
    """ffprobe's arguments to identify ``path`` among the allowed containers only."""
    return ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(FFMPEG_DEMUXERS),
            "-i", f"file:{Path(path).resolve()}"]


def ffmpeg_input(path: Path, demuxer: str) -> list[str]:
    """ffmpeg's arguments to read ``path`` with the ``demuxer`` its probe found, and nothing else."""
    if demuxer not in FFMPEG_DEMUXERS:
        raise ValueError(f"{demuxer!r} is not an allowed demuxer")
    return ["-protocol_whitelist", PROTOCOLS, "-format_whitelist", ",".join(FFMPEG_DEMUXERS), "-f", demuxer,
            "-i", f"file:{Path(path).resolve()}"]


def demuxer_of(format_name: str) -> str | None:
    """The allowed demuxer among ffprobe's ``format_name`` (``"mov,mp4,m4a,3gp,3g2,mj2"`` -> ``"mov"``), or None."""
    return next((name for name in format_name.split(",") if name in FFMPEG_DEMUXERS), None)
