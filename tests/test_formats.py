"""Every input format streams; ffmpeg-decoded inputs are reaped; every output format writes."""

import fcntl

import numpy as np
import psutil
import pytest
import soundfile as sf

from audionorm_lab import integrated_loudness, normalize_file, probe
from audionorm_lab.media.sinks import AtomicSink
from audionorm_lab.media.sources import PIPE_BYTES, open_source
from conftest import encode, leftovers, speech_like

RATE = 44100
SECONDS = 6.0


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("formats") / "source.wav"
    sf.write(path, speech_like(SECONDS, RATE, 2, seed=5), RATE, subtype="FLOAT")
    return path


def make_input(source_wav, folder, kind):
    x, _ = sf.read(source_wav, dtype="float32")
    if kind.startswith("wav-"):
        path = folder / f"{kind}.wav"
        sf.write(path, x, RATE, subtype={"wav-16": "PCM_16", "wav-24": "PCM_24", "wav-float": "FLOAT"}[kind])
        return path
    if kind == "flac":
        path = folder / "in.flac"
        sf.write(path, x, RATE, subtype="PCM_16")
        return path
    codec = {"mp3": ["-b:a", "128k"], "ogg": ["-c:a", "libvorbis", "-q:a", "4"], "m4a": ["-c:a", "aac", "-b:a", "128k"]}
    return encode(source_wav, folder / f"in.{kind}", *codec[kind])


@pytest.mark.parametrize("kind, decoder", [("wav-16", "soundfile"), ("wav-24", "soundfile"),
                                           ("wav-float", "soundfile"), ("flac", "soundfile"),
                                           ("mp3", "soundfile"), ("ogg", "soundfile"), ("m4a", "ffmpeg")])
def test_input_formats_stream(source_wav, tmp_path, kind, decoder):
    src = make_input(source_wav, tmp_path, kind)
    info = probe(src)
    assert info.decoder == decoder
    assert (info.sample_rate, info.channels) == (RATE, 2)
    out = tmp_path / "out.wav"
    report = normalize_file(src, out, chunk_seconds=2.0)
    assert report.chunks >= 3
    written, rate = sf.read(out, dtype="float32")
    assert rate == RATE and written.shape[1] == 2
    # codecs add or trim a few milliseconds of padding at most
    assert abs(len(written) - SECONDS * RATE) <= 0.05 * RATE
    assert len(written) == report.output_frames == report.input_frames
    assert not report.truncated
    assert abs(integrated_loudness(out) - report.target_lufs) <= 0.5


@pytest.mark.parametrize("suffix, subtype", [(".flac", "PCM_24"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III"),
                                             (".wav", "PCM_16")])
def test_output_formats(source_wav, tmp_path, suffix, subtype):
    out = tmp_path / f"out{suffix}"
    report = normalize_file(source_wav, out, output_subtype=None if suffix != ".wav" else subtype)
    info = sf.info(out)
    assert info.subtype == subtype
    assert abs(info.frames - report.output_frames) <= 0.05 * RATE
    assert abs(integrated_loudness(out) - report.target_lufs) <= 0.5
    assert leftovers(tmp_path) == []


def test_ffmpeg_source_is_reaped_on_early_close(source_wav, tmp_path):
    src = make_input(source_wav, tmp_path, "m4a")
    with open_source(src) as source:
        first = source.read(1024)
        process = source._proc
        assert first.shape == (1024, 2) and np.isfinite(first).all()
    assert process.returncode is not None
    assert psutil.Process().children(recursive=True) == []


def test_the_decoders_pipe_lets_it_decode_ahead(source_wav, tmp_path):
    """ffmpeg's pipe is widened from Linux's 64 KB (0.37 s of 16-bit stereo) to PIPE_BYTES, so the decoder keeps
    going while the reader works on a block."""
    src = make_input(source_wav, tmp_path, "m4a")
    with open_source(src) as source:
        assert fcntl.fcntl(source._proc.stdout.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES == 1 << 20


def test_failure_mid_stream_leaves_no_process_and_no_file(source_wav, tmp_path, monkeypatch):
    src = make_input(source_wav, tmp_path, "m4a")
    out = tmp_path / "out.wav"

    def full_disk(self, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AtomicSink, "write", full_disk)
    with pytest.raises(OSError):
        normalize_file(src, out)
    assert not out.exists() and leftovers(tmp_path) == []
    assert psutil.Process().children(recursive=True) == []
