#!/usr/bin/env python3
"""Realistic sample audio for tests, benchmarks and notebooks: made locally, or downloaded.

    python data/fetch_samples.py make --duration 163m --format mp3 --bitrate 128k
    python data/fetch_samples.py make --size 156MB --format mp3 --clean-copy
    python data/fetch_samples.py fetch librivox-heart-of-darkness
    python data/fetch_samples.py fetch https://example.org/talk.mp3 --sha256 HEX
    python data/fetch_samples.py list

``make`` writes speech with pink noise, mains hum, rumble and silent gaps (see
``data/synth.py``) in constant memory, through soundfile (wav, flac) or an ffmpeg
encoder fed by a pipe (mp3, ogg, m4a). Files and their parameters and sha256 go in
``data/samples/manifest.json``; a file whose parameters match is reused, not remade.
Outputs are written under a temporary name and renamed when complete. Exit code 2
with one line on stderr for bad arguments, failed downloads or checksum mismatches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import soundfile as sf

if __package__ in (None, ""):  # run as a script: make `data` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.synth import ENGINES, Scene, SceneParams, resolve_engine  # noqa: E402

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
MANIFEST = "manifest.json"
GENERATOR_VERSION = 1  # bump when the same parameters would give other samples

#: format -> how it is written. "codec" formats go through ffmpeg; the others through soundfile.
FORMATS = {
    "wav": {"subtypes": ("PCM_16", "PCM_24", "FLOAT"), "default_subtype": "PCM_16"},
    "flac": {"subtypes": ("PCM_16", "PCM_24"), "default_subtype": "PCM_16"},
    "mp3": {"codec": ["-c:a", "libmp3lame", "-compression_level", "7"]},
    "ogg": {"codec": ["-c:a", "libvorbis"]},
    "m4a": {"codec": ["-c:a", "aac"]},
    "opus": {"codec": ["-c:a", "libopus"]},  # 48 kHz (libopus's rates: 8, 12, 16, 24, 48 kHz)
}

#: Public recordings. sha256 None: recorded in the manifest on the first download, checked after that.
CATALOGUE = {
    "librivox-heart-of-darkness": {
        "url": "https://archive.org/download/heart_of_darkness/heart_of_darkness_64kb_mp3.zip",
        "sha256": None, "bytes": None, "license": "public domain (LibriVox)",
        "what": "Joseph Conrad, Heart of Darkness, read aloud; about 4.2 h of 64 kbps mono mp3 in a zip",
    },
    "librispeech-test-clean": {
        "url": "https://www.openslr.org/resources/12/test-clean.tar.gz",
        "sha256": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23", "bytes": None,
        "license": "CC BY 4.0 (LibriSpeech, from LibriVox recordings)",
        "what": "LibriSpeech test-clean: 2620 read utterances, 16 kHz flac, about 346 MB",
    },
}


class SampleError(Exception):
    """A bad argument, a failed encode or download, a checksum mismatch: one line for the user."""


# ---------------------------------------------------------------- parsing sizes and durations

def parse_duration(text: str) -> float:
    """'163m', '90s', '2h', '1h30m', '600' (seconds) -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|min|s)", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        raise SampleError(f"cannot read duration {text!r}: use e.g. 90s, 10m, 163m, 2h, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "min": 60, "s": 1}[u] for n, u in parts)


def parse_size(text: str) -> int:
    """'156MB' (10^6), '150MiB' (2^20), '1.5GB', '800kB', '1000' (bytes) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", text.lower())
    if not match:
        raise SampleError(f"cannot read size {text!r}: use e.g. 156MB, 150MiB, 1.5GB")
    unit = match.group(2) or "b"
    factor = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30}[unit]
    return int(float(match.group(1)) * factor)


def parse_bitrate(text: str) -> int:
    """'128k' -> 128000 bits per second."""
    match = re.fullmatch(r"(\d+)(k?)", text.strip().lower())
    if not match:
        raise SampleError(f"cannot read bitrate {text!r}: use e.g. 128k")
    return int(match.group(1)) * (1000 if match.group(2) else 1)


def duration_for_size(size_bytes: int, fmt: str, rate: int, channels: int, bitrate: int, subtype: str | None) -> float:
    """Seconds of audio that make a file of about ``size_bytes``."""
    if fmt in ("mp3", "ogg", "m4a"):
        return size_bytes * 8 / bitrate
    if fmt == "wav":
        width = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype or "PCM_16"]
        return max(0.0, size_bytes - 44) / (rate * channels * width)
    raise SampleError(f"--size cannot be used with {fmt} (its size depends on the audio): give --duration")


# ---------------------------------------------------------------- manifest and hashing

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"files": {}}


def save_manifest(folder: Path, manifest: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / MANIFEST)


def _record(folder: Path, path: Path, entry: dict) -> None:
    manifest = load_manifest(folder)
    manifest["files"][path.name] = {**entry, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    save_manifest(folder, manifest)


# ---------------------------------------------------------------- writing

def _widen_pipe(pipe, size: int = 1 << 20) -> None:
    """Let the synthesizer run a whole block ahead of the encoder (Linux F_SETPIPE_SZ; best effort).

    With the default 64 KiB pipe the two processes take turns instead of running side by side.
    """
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError):
        pass


class _Writer:
    """Blocks to a temporary file; renamed into place by ``commit``; removed on any failure."""

    def __init__(self, path: Path, fmt: str, rate: int, channels: int, bitrate: int, subtype: str | None):
        self.path = path
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".part.{fmt}")
        os.close(fd)
        self.tmp = Path(name)
        spec = FORMATS[fmt]
        self.proc = self.file = None
        if "codec" in spec:
            exe = shutil.which("ffmpeg")
            if exe is None:
                self.tmp.unlink()
                raise SampleError(f"writing {fmt} needs ffmpeg (apt-get install ffmpeg)")
            cmd = [exe, "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", str(rate), "-ac", str(channels),
                   "-i", "pipe:0", *spec["codec"], "-b:a", str(bitrate), "-map_metadata", "-1",
                   "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", {"m4a": "ipod"}.get(fmt, fmt), str(self.tmp)]
            self.stderr = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.stderr)
            _widen_pipe(self.proc.stdin)
        else:
            self.file = sf.SoundFile(self.tmp, "w", samplerate=rate, channels=channels, format=fmt.upper(),
                                     subtype=subtype or spec["default_subtype"])

    def write(self, block) -> None:
        if self.file is not None:
            self.file.write(block)
            return
        try:
            self.proc.stdin.write(block.astype("<f4").tobytes())
        except BrokenPipeError:
            self._ffmpeg_failed()

    def _ffmpeg_failed(self):
        self.proc.wait()
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        raise SampleError(f"ffmpeg failed writing {self.path.name}: {lines[-1] if lines else 'no message'}")

    def commit(self) -> None:
        if self.file is not None:
            self.file.close()
        else:
            self.proc.stdin.close()
            if self.proc.wait() != 0:
                self._ffmpeg_failed()
            self.stderr.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.stderr.close()
        self.tmp.unlink(missing_ok=True)


def sample_name(fmt: str, seconds: float, params: SceneParams, bitrate: int, subtype: str | None) -> str:
    quality = f"{bitrate // 1000}k" if "codec" in FORMATS[fmt] else (subtype or FORMATS[fmt]["default_subtype"]).lower()
    length = f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"
    return f"speech-{length}-{params.sample_rate}hz-{params.channels}ch-{quality}-seed{params.seed}.{fmt}"


def make_sample(duration_seconds: float, fmt: str = "mp3", *, bitrate: int = 128_000, subtype: str | None = None,
                out: Path = SAMPLES_DIR, name: str | None = None, clean_copy: bool = False, force: bool = False,
                speech: str = "auto", log=None, **scene) -> Path:
    """Make (or reuse) a sample file; return its path.

    Parameters
    ----------
    duration_seconds : float
    fmt : {"wav", "flac", "mp3", "ogg", "m4a"}
    bitrate : int
        Bits per second, for mp3, ogg and m4a.
    subtype : str, optional
        For wav (PCM_16, PCM_24, FLOAT) and flac (PCM_16, PCM_24).
    clean_copy : bool
        Also write the speech alone as ``<name>.clean.wav`` (float), sample-aligned with the mix.
    speech : {"auto", "builtin", "espeak"}
    **scene
        Fields of :class:`data.synth.SceneParams` (sample_rate, channels, seed, snr_db, hum_hz...).
    """
    if fmt not in FORMATS:
        raise SampleError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if subtype is not None and subtype not in FORMATS[fmt].get("subtypes", ()):
        raise SampleError(f"{fmt} has no subtype {subtype!r} here")
    if not (duration_seconds > 0 and math.isfinite(duration_seconds)):
        raise SampleError(f"duration must be positive, not {duration_seconds}")
    try:
        params = SceneParams(engine=resolve_engine(speech), **scene)
    except (ValueError, RuntimeError) as exc:
        raise SampleError(str(exc)) from None
    if params.sample_rate < 4000 or params.channels < 1:
        raise SampleError("sample rate must be at least 4000 Hz and channels at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = round(duration_seconds * params.sample_rate)
    path = out / (name or sample_name(fmt, frames / params.sample_rate, params, bitrate, subtype))
    clean_path = path.with_name(path.stem + ".clean.wav") if clean_copy else None
    entry = {"kind": "generated", "generator_version": GENERATOR_VERSION, "format": fmt, "frames": frames,
             "duration_seconds": frames / params.sample_rate, "bitrate": bitrate if "codec" in FORMATS[fmt] else None,
             "subtype": subtype, "scene": params.to_dict(), "clean_copy": clean_path.name if clean_path else None}
    entry["scene"]["gap_seconds"] = list(params.gap_seconds)

    expected = {path: entry}
    if clean_path:
        expected[clean_path] = {**entry, "format": "wav", "subtype": "FLOAT", "bitrate": None, "clean_copy": None,
                                "clean_of": path.name}
    known = load_manifest(out)["files"]
    if not force and all(p.exists() and _matches(known.get(p.name), p, e) for p, e in expected.items()):
        if log:
            log(f"reusing {path}")
        return path

    writers = [_Writer(path, fmt, params.sample_rate, params.channels, bitrate, subtype)]
    if clean_path:
        writers.append(_Writer(clean_path, "wav", params.sample_rate, params.channels, bitrate, "FLOAT"))
    started = time.perf_counter()
    try:
        for noisy, clean in Scene(params, frames).blocks():
            writers[0].write(noisy)
            if clean_path:
                writers[1].write(clean)
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for written, written_entry in expected.items():
        _record(out, written, written_entry)
    if log:
        log(f"made {path} ({path.stat().st_size / 1e6:.1f} MB, {frames / params.sample_rate:.0f} s of audio "
            f"in {time.perf_counter() - started:.1f} s)")
    return path


def _matches(recorded: dict | None, path: Path, entry: dict) -> bool:
    if recorded is None:
        return False
    same = all(recorded.get(k) == v for k, v in entry.items()) and recorded.get("bytes") == path.stat().st_size
    return same and recorded.get("sha256") == sha256_of(path)


# ---------------------------------------------------------------- downloading

def fetch(what: str, *, sha256: str | None = None, out: Path = SAMPLES_DIR, name: str | None = None,
          progress: bool = True, timeout_seconds: float = 60.0, log=None) -> Path:
    """Download a catalogue entry or a URL into ``out``; resume a partial download; check size and sha256.

    The bytes go to ``<name>.part`` and are renamed to ``<name>`` only when complete
    and verified. A checksum mismatch deletes the download. Without a known sha256,
    the first download's is recorded in the manifest and later downloads must match it.
    """
    entry = CATALOGUE.get(what)
    url = entry["url"] if entry else what
    if not re.match(r"https?://", url):
        raise SampleError(f"{what!r} is neither a catalogue name ({', '.join(CATALOGUE)}) nor an http(s) URL")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (name or Path(urllib.request.url2pathname(url.split("?")[0].rstrip("/"))).name or "download")
    manifest = load_manifest(out)
    recorded = manifest["files"].get(path.name, {})
    expected_sha = (sha256 or (entry or {}).get("sha256") or recorded.get("sha256") or "").lower() or None
    expected_bytes = (entry or {}).get("bytes") or recorded.get("bytes")

    if path.exists() and expected_sha and sha256_of(path) == expected_sha:
        if log:
            log(f"already here: {path}")
        return path
    part = path.with_name(path.name + ".part")
    _download(url, part, timeout_seconds, progress)
    size = part.stat().st_size
    if expected_bytes and size != expected_bytes:
        raise SampleError(f"{path.name}: got {size} bytes, expected {expected_bytes}; "
                          f"the partial download {part.name} is kept and will be resumed")
    digest = sha256_of(part)
    if expected_sha and digest != expected_sha:
        part.unlink()
        raise SampleError(f"{path.name}: sha256 mismatch (expected {expected_sha}, got {digest}); nothing kept")
    os.replace(part, path)
    manifest = load_manifest(out)
    manifest["files"][path.name] = {"kind": "fetched", "url": url, "bytes": size, "sha256": digest,
                                    "license": (entry or {}).get("license")}
    save_manifest(out, manifest)
    if log:
        log(f"fetched {path} ({size / 1e6:.1f} MB, sha256 {digest})")
    return path


def _download(url: str, part: Path, timeout_seconds: float, progress: bool) -> None:
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the part is complete
            return
        raise SampleError(f"{url}: server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SampleError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    with response:
        resumed = offset > 0 and response.status == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5],
                     disable=not progress, file=sys.stderr) as bar:
            try:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError) as exc:
                raise SampleError(f"{url}: download interrupted after {f.tell()} bytes ({exc}); "
                                  f"run again to resume") from None
    if total is not None and part.stat().st_size != total:
        raise SampleError(f"{url}: download ended at {part.stat().st_size} of {total} bytes; run again to resume")


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fetch_samples.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="generate a deterministic speech-with-noise file")
    length = make.add_mutually_exclusive_group(required=True)
    length.add_argument("--duration", help="e.g. 90s, 10m, 163m, 2h")
    length.add_argument("--size", help="target file size, e.g. 156MB (mp3, ogg, m4a, wav)")
    make.add_argument("--format", default="mp3", choices=FORMATS)
    make.add_argument("--bitrate", default="128k")
    make.add_argument("--subtype", help="wav: PCM_16, PCM_24, FLOAT; flac: PCM_16, PCM_24")
    make.add_argument("--rate", type=int, default=44100, help="Hz")
    make.add_argument("--channels", type=int, default=2)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--snr-db", type=float, default=SceneParams.snr_db)
    make.add_argument("--hum-hz", type=float, default=SceneParams.hum_hz, help="50 or 60; 0 for none")
    make.add_argument("--speech", choices=ENGINES, default="auto")
    make.add_argument("--clean-copy", action="store_true", help="also write the speech alone as NAME.clean.wav")
    make.add_argument("--out", type=Path, default=SAMPLES_DIR)
    make.add_argument("--name", help="file name (default: from the parameters)")
    make.add_argument("--force", action="store_true", help="remake even if a matching file exists")
    get = commands.add_parser("fetch", help="download a catalogue entry or a URL")
    get.add_argument("what", help=f"one of {', '.join(CATALOGUE)}, or a URL")
    get.add_argument("--sha256")
    get.add_argument("--out", type=Path, default=SAMPLES_DIR)
    get.add_argument("--name")
    commands.add_parser("list", help="the catalogue")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def log(message):
        print(message, file=sys.stderr)

    try:
        if args.command == "list":
            for key, entry in CATALOGUE.items():
                print(f"{key}\n  {entry['what']}\n  {entry['license']}; {entry['url']}")
            return 0
        if args.command == "fetch":
            print(fetch(args.what, sha256=args.sha256, out=args.out, name=args.name, log=log))
            return 0
        bitrate = parse_bitrate(args.bitrate)
        seconds = parse_duration(args.duration) if args.duration else duration_for_size(
            parse_size(args.size), args.format, args.rate, args.channels, bitrate, args.subtype)
        path = make_sample(seconds, args.format, bitrate=bitrate, subtype=args.subtype, out=args.out,
                           name=args.name, clean_copy=args.clean_copy, force=args.force, speech=args.speech,
                           log=log, sample_rate=args.rate, channels=args.channels, seed=args.seed,
                           snr_db=args.snr_db, hum_hz=args.hum_hz)
        print(path)
        return 0
    except SampleError as exc:
        print(f"fetch_samples.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
