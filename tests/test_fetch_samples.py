"""data/fetch_samples.py: generated samples as asked, deterministic, reusable; downloads verified."""

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audionorm_lab import probe
from data.fetch_samples import SampleError, fetch, make_sample, parse_duration, parse_size

SCRIPT = Path(__file__).resolve().parent.parent / "data" / "fetch_samples.py"


@pytest.mark.parametrize("fmt, rate, channels, subtype", [
    ("wav", 22050, 1, "PCM_24"), ("flac", 48000, 6, None), ("mp3", 44100, 2, None),
    ("ogg", 16000, 1, None), ("m4a", 44100, 2, None), ("wav", 8000, 2, "FLOAT"),
])
def test_duration_rate_and_channels_as_asked(tmp_path, fmt, rate, channels, subtype):
    path = make_sample(3.5, fmt, out=tmp_path, sample_rate=rate, channels=channels, subtype=subtype,
                       bitrate=48_000 if rate < 44100 else 128_000, speech="builtin")
    info = probe(path)
    assert (info.sample_rate, info.channels) == (rate, channels)
    tolerance = 0 if fmt in ("wav", "flac") else 0.06 * rate  # codec framing
    assert abs(info.frames - 3.5 * rate) <= tolerance
    if subtype:
        assert sf.info(path).subtype == subtype


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg"])
def test_same_seed_same_bytes(tmp_path, fmt):
    a = make_sample(2.0, fmt, out=tmp_path / "a", seed=7, speech="builtin")
    b = make_sample(2.0, fmt, out=tmp_path / "b", seed=7, speech="builtin")
    c = make_sample(2.0, fmt, out=tmp_path / "c", seed=8, speech="builtin")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_the_scene_has_speech_gaps_hum_and_noise(tmp_path):
    path = make_sample(20.0, "wav", subtype="FLOAT", out=tmp_path, clean_copy=True, channels=1, speech="builtin",
                       snr_db=15.0, hum_hz=60.0)
    noisy, rate = sf.read(path)
    clean, _ = sf.read(path.with_name(path.stem + ".clean.wav"))
    talking = np.abs(clean) > 1e-4
    assert 0.3 < talking.mean() < 0.95, "utterances separated by silent gaps"
    noise = noisy - clean
    snr = 10 * np.log10(np.mean(clean[talking] ** 2) / np.mean(noise ** 2))
    assert 10 < snr < 15, "the hum and rumble add to the pink noise's 15 dB"
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / rate)
    def band(lo, hi):
        return spectrum[(freqs >= lo) & (freqs < hi)].mean()
    assert spectrum[(freqs > 59.9) & (freqs < 60.1)].max() > 100 * band(62, 70), "60 Hz hum"
    assert band(5, 20) > 10 * band(300, 400), "rumble below 25 Hz"


def test_clean_copy_lines_up_with_the_mp3(tmp_path):
    path = make_sample(8.0, "mp3", out=tmp_path, clean_copy=True, speech="builtin")
    noisy, _ = sf.read(path)
    clean, _ = sf.read(path.with_name(path.stem + ".clean.wav"))
    assert noisy.shape == clean.shape
    a, b = noisy[44100:5 * 44100, 0], clean[44100:5 * 44100, 0]
    lags = signal.correlation_lags(len(a), len(b))
    assert lags[np.argmax(signal.correlate(a, b, method="fft"))] == 0


def test_manifest_records_and_reuse(tmp_path):
    path = make_sample(2.0, "flac", out=tmp_path, speech="builtin")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["files"][path.name]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["scene"]["seed"] == 0 and entry["duration_seconds"] == 2.0
    stamp = path.stat().st_mtime_ns
    assert make_sample(2.0, "flac", out=tmp_path, speech="builtin") == path
    assert path.stat().st_mtime_ns == stamp, "a matching file is reused, not remade"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # damaged: same size, other bytes
    make_sample(2.0, "flac", out=tmp_path, speech="builtin")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], "a damaged file is remade"
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def test_size_target(tmp_path):
    result = subprocess.run([sys.executable, SCRIPT, "make", "--size", "0.5MB", "--format", "mp3", "--out",
                             tmp_path, "--speech", "builtin"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert abs(path.stat().st_size - 500_000) <= 0.02 * 500_000
    assert parse_size("156MB") == 156_000_000 and parse_size("1MiB") == 2**20
    assert parse_duration("163m") == 9780 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90


def test_bad_arguments_are_one_line(tmp_path):
    for args in (["make", "--duration", "ten minutes"], ["make", "--size", "5MB", "--format", "flac"],
                 ["fetch", "not-a-thing"]):
        result = subprocess.run([sys.executable, SCRIPT, *args, "--out", tmp_path], capture_output=True, text=True)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


# ------------------------------------------------------------------ downloads from a local server

class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    fail = False
    ranges: list

    def do_GET(self):
        self.ranges.append(self.headers.get("Range"))
        if self.fail:
            self.send_error(500, "Internal Server Error")
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload) - start))
        self.end_headers()
        self.wfile.write(self.payload[start:])

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    payload = make_sample(3.0, "mp3", out=tmp_path / "origin", speech="builtin").read_bytes()
    handler = type("Handler", (_Handler,), {"payload": payload, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield handler, f"http://127.0.0.1:{httpd.server_address[1]}/talk.mp3", hashlib.sha256(payload).hexdigest()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_good_download(server, tmp_path):
    handler, url, digest = server
    path = fetch(url, sha256=digest, out=tmp_path / "dl", progress=False)
    assert path.name == "talk.mp3" and path.read_bytes() == handler.payload
    manifest = json.loads((tmp_path / "dl" / "manifest.json").read_text())
    assert manifest["files"]["talk.mp3"]["sha256"] == digest
    assert handler.ranges == [None]


def test_first_download_records_the_checksum_that_later_ones_must_match(server, tmp_path):
    handler, url, digest = server
    folder = tmp_path / "dl"
    path = fetch(url, out=folder, progress=False)
    assert json.loads((folder / "manifest.json").read_text())["files"]["talk.mp3"]["sha256"] == digest
    path.unlink()
    handler.payload = handler.payload[:-1] + b"\x00"
    with pytest.raises(SampleError, match="sha256 mismatch"):
        fetch(url, out=folder, progress=False)


def test_resumed_download(server, tmp_path):
    handler, url, digest = server
    folder = tmp_path / "dl"
    folder.mkdir()
    half = len(handler.payload) // 2
    (folder / "talk.mp3.part").write_bytes(handler.payload[:half])
    path = fetch(url, sha256=digest, out=folder, progress=False)
    assert handler.ranges == [f"bytes={half}-"]
    assert path.read_bytes() == handler.payload
    assert not (folder / "talk.mp3.part").exists()


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    _, url, _ = server
    folder = tmp_path / "dl"
    with pytest.raises(SampleError, match="sha256 mismatch"):
        fetch(url, sha256="0" * 64, out=folder, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == []


def test_server_error(server, tmp_path):
    handler, url, digest = server
    handler.fail = True
    folder = tmp_path / "dl"
    result = subprocess.run([sys.executable, SCRIPT, "fetch", url, "--sha256", digest, "--out", folder],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"fetch_samples.py: error: {url}: server answered 500 "
                                                  "Internal Server Error"]
    assert not (folder / "talk.mp3").exists() and not (folder / "talk.mp3.part").exists()
