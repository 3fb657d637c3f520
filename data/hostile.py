"""Hostile uploads, made on the spot (nothing downloaded): files a worker must refuse, or process safely.

    from data.hostile import make_corpus
    corpus = make_corpus(folder)     # [HostileFile(name, path, what, expect), ...]; folder/secret.mp3 is "another tenant's"

Each file is what an upload can be: a playlist that names another tenant's recording
(``secret.mp3``, beside the corpus), a concat list, headers that lie about their length
or declare impossible widths, non-media renamed ``.mp3``, a damaged mp3, a very wide
file. ``expect`` says what a careful worker does: ``"refused"`` (exit 2, one line),
``"processed"`` (a correct output), or ``"either"`` (a damaged file may be processed as
far as it goes, or refused).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class HostileFile:
    name: str
    path: Path
    what: str
    expect: str  # "refused", "processed" or "either"


def wav_header(channels: int, sample_rate: int, bits: int, data_bytes: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE PCM header declaring ``data_bytes`` of data (which need not follow)."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block_align, block_align, bits)
    riff_size = min(0xFFFFFFFF, 4 + 8 + len(fmt) + 8 + data_bytes)
    return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def tone(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A quiet tone with a little noise: something to normalize, float32 ``(frames, channels)``."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(7)
    voice = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    return (voice[:, None] + 0.005 * rng.standard_normal((len(t), channels))).astype(np.float32)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_secret(folder: Path) -> Path:
    """``secret.mp3``: another tenant's recording, 3 s, that no job of the corpus may read."""
    wav = folder / "secret-source.wav"
    sf.write(wav, tone(3.0, 44100, 2), 44100, subtype="PCM_16")
    secret = folder / "secret.mp3"
    _ffmpeg("-i", str(wav), "-c:a", "libmp3lame", "-b:a", "128k", str(secret))
    wav.unlink()
    return secret


def _playlists(folder: Path, secret: Path) -> list[HostileFile]:
    hls = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{secret}\n#EXT-X-ENDLIST\n"
    files = []
    for suffix in (".mp3", ".m4a", ".m3u8"):
        path = folder / f"playlist{suffix}"
        path.write_text(hls)
        files.append(HostileFile(path.name, path, f"an HLS playlist naming {secret.name}, as {suffix}", "refused"))
    concat = folder / "concat.mp3"
    concat.write_text(f"ffconcat version 1.0\nfile '{secret}'\n")
    files.append(HostileFile(concat.name, concat, f"an ffconcat list naming {secret.name}", "refused"))
    pls = f"[playlist]\nFile1={secret}\nTitle1=x\nLength1=-1\nNumberOfEntries=1\nVersion=2\n"
    sdp = ("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"
           "a=rtpmap:0 PCMU/8000\n")  # ffmpeg would listen for RTP on a port
    for name, text, what in (("pls.mp3", pls, f"a PLS playlist naming {secret.name}, as .mp3"),
                             ("playlist.pls", pls, f"a PLS playlist naming {secret.name}"),
                             ("session.mp3", sdp, "an SDP session description (RTP on port 5004), as .mp3"),
                             ("session.sdp", sdp, "an SDP session description (RTP on port 5004)")):
        (folder / name).write_text(text)
        files.append(HostileFile(name, folder / name, what, "refused"))
    return files


def _image_pattern(folder: Path) -> list[HostileFile]:
    """``frame-%03d.png``: a name ffmpeg's image2 demuxer reads as a pattern (frame-001.png, frame-002.png...)."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:duration=1", "-frames:v", "3", str(folder / "frame-%03d.png"))
    pattern = folder / "frame-%03d.png"
    shutil.copyfile(folder / "frame-001.png", pattern)
    return [HostileFile(pattern.name, pattern, "an image sequence's pattern (frame-%03d.png, three frames there)",
                        "refused")]


def _lying_headers(folder: Path) -> list[HostileFile]:
    files = []
    huge = folder / "declares-2^31-frames.wav"  # 8-bit mono: 2^31 frames is 2 GiB of data, which fits the header
    huge.write_bytes(wav_header(1, 8000, 8, 2**31) + (128 + (tone(1.0, 8000, 1)[:, 0] * 100)).astype(np.uint8).tobytes())
    files.append(HostileFile(huge.name, huge, "a WAV whose header declares 2^31 frames (75 hours), 1 s of data",
                             "processed"))
    flac = folder / "claims-8h-in-1kB.flac"
    sf.write(flac, tone(2.0, 44100, 1), 44100, subtype="PCM_16")
    data = bytearray(flac.read_bytes())
    # STREAMINFO (the first metadata block, at byte 8): total samples are its bits 108-143
    total = 8 * 3600 * 44100
    packed = int.from_bytes(data[8 + 10: 8 + 18], "big")
    packed = (packed & ~((1 << 36) - 1)) | total
    data[8 + 10: 8 + 18] = packed.to_bytes(8, "big")
    flac.write_bytes(bytes(data[:1024]))
    files.append(HostileFile(flac.name, flac, "a FLAC whose STREAMINFO claims 8 hours, cut to 1 kB", "either"))
    for channels, rate, what in ((0, 44100, "0 channels"), (1, 1, "1 Hz"), (1, 1_000_000, "1 MHz")):
        path = folder / f"declares-{what.replace(' ', '-')}.wav"
        path.write_bytes(wav_header(channels, rate, 16, 2000) + bytes(2000))
        files.append(HostileFile(path.name, path, f"a WAV header declaring {what}", "refused"))
    return files


def _not_media(folder: Path, secret: Path) -> list[HostileFile]:
    png = folder / "image.mp3"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:duration=1", "-frames:v", "1", "-f", "image2", "-c:v", "png",
            str(png))
    archive = folder / "archive.mp3"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(secret, "inside.mp3")  # stored: an mp3 decoder could find frames in it
    elf = folder / "program.mp3"
    shutil.copyfile(sys.executable if Path(sys.executable).read_bytes()[:4] == b"\x7fELF" else "/bin/ls", elf)
    return [HostileFile(png.name, png, "a PNG renamed .mp3", "refused"),
            HostileFile(archive.name, archive, "a zip (an mp3 stored inside) renamed .mp3", "refused"),
            HostileFile(elf.name, elf, "an ELF binary renamed .mp3", "refused")]


def _damaged_and_wide(folder: Path, secret: Path) -> list[HostileFile]:
    data = secret.read_bytes()
    garbage = folder / "garbage-between-frames.mp3"
    middle = len(data) // 2
    garbage.write_bytes(data[:middle] + bytes(range(256)) * 8 + data[middle:])
    wide = folder / "32ch-192kHz.wav"
    sf.write(wide, np.tile(tone(1.0, 192000, 1), (1, 32)), 192000, subtype="PCM_16")
    return [HostileFile(garbage.name, garbage, "an mp3 with 2 kB of garbage between its frames", "either"),
            HostileFile(wide.name, wide, "32 channels at 192 kHz, 1 s", "processed")]


def make_corpus(folder: str | os.PathLike) -> list[HostileFile]:
    """Write the corpus and ``secret.mp3`` into ``folder`` (created); the corpus, without the secret."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    secret = make_secret(folder)
    return (_playlists(folder, secret) + _image_pattern(folder) + _lying_headers(folder) + _not_media(folder, secret)
            + _damaged_and_wide(folder, secret))


def secret_of(folder: str | os.PathLike) -> Path:
    return Path(folder) / "secret.mp3"


def mark_unread(path: Path) -> float:
    """Set ``path``'s access time two days before its modification time, so that any read moves it (under
    ``relatime`` too); the access time set."""
    stat = path.stat()
    os.utime(path, (stat.st_mtime - 2 * 86400, stat.st_mtime))
    return path.stat().st_atime


def was_read(path: Path, unread_atime: float) -> bool:
    """Whether ``path`` was read since :func:`mark_unread` returned ``unread_atime``."""
    return path.stat().st_atime != unread_atime
