"""Streaming in service mode writes the service's files: its decode, its chain, its export, sample for sample.

The corpus (:mod:`data.service_corpus`) covers WAV (16 and 24 bit), FLAC, mp3, m4a/aac, ogg and opus inputs,
mono, stereo and 5.1, at 16 to 96 kHz, each longer than the noise gate's 600,000-frame piece. It is made
once per session, locally; every comparison runs the real CLI (pydub and ffmpeg for full-load).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli

from audionorm_lab import (
    AudioJob,
    AudioProcessor,
    NormalizeOptions,
    full_load,
    normalize_array,
    normalize_file,
)
from audionorm_lab.media.probe import probe
from audionorm_lab.media.sameness import compare_files
from audionorm_lab.media.service_decode import ServiceDecode
from audionorm_lab.strategies import load_with_pydub
from data.service_corpus import CORPUS, MIN_FRAMES, make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("service-corpus"))


def test_the_corpus_covers_the_formats_rates_and_layouts(corpus):
    infos = [probe(path) for path in corpus]
    assert len(corpus) >= 12
    assert {path.suffix for path in corpus} >= {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}
    assert {info.channels for info in infos} >= {1, 2, 6}
    assert {info.sample_rate for info in infos} >= {16000, 22050, 44100, 48000, 96000}
    assert {f.subtype for f in CORPUS if f.fmt == "wav"} >= {"PCM_16", "PCM_24"}
    assert all(info.frames > MIN_FRAMES for info in infos)


def test_the_service_decode_gives_pydubs_samples(corpus):
    for path in corpus:
        decode = ServiceDecode.of(probe(path))
        with decode.open() as source:
            ours = np.concatenate(list(source.blocks(100_000)))
        _, theirs = load_with_pydub(path)
        assert ours.dtype == theirs.dtype == np.float32
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs), path.name
        assert decode.kind == ("wav" if path.suffix == ".wav" else "ffmpeg")


def test_every_corpus_file_gives_the_services_wav_bytes(corpus, tmp_path):
    """Full-load (the service as it was) and streaming in service mode write the same WAV, byte for byte."""
    for path in corpus:
        service, streamed = tmp_path / f"{path.name}.service.wav", tmp_path / f"{path.name}.streamed.wav"
        expected = full_load(path, service)
        report = normalize_file(path, streamed, compat="service")
        sameness = compare_files(streamed, service)
        assert sameness.identical_bytes and sameness.identical_samples, (path.name, sameness)
        assert sameness.frames > MIN_FRAMES
        # the one residual: noisereduce smooths its mask by FFT convolution, streaming by the exact sum, so a few
        # gated samples differ by a float32 ulp (about 1e-12) and the gain in its 14th digit; no 16-bit step moves
        assert abs(report.gain_db - expected.gain_db) < 1e-9
        assert report.output_format.startswith("16-bit WAV") and "as the service" in report.decoder
        assert report.plan["gate_grid"] == "service" and report.chunks > 1


def test_bench_same_as_service_on_every_output_format(corpus):
    """The command: FLAC and mp3 outputs equal too; ogg's samples (its stream serial differs run to run)."""
    mp3 = next(p for p in corpus if p.suffix == ".mp3")
    result = subprocess.run([sys.executable, "-m", "bench", "same-as-service", str(mp3), "--outputs",
                             "wav,flac,mp3,ogg", "--memory-limit", "3G", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = {row["output"]: row for row in json.loads(result.stdout)["rows"]}
    assert set(rows) == {"wav", "flac", "mp3", "ogg"}
    for row in rows.values():
        assert row["full_load_status"] == row["streaming_status"] == "ok", row
        assert row["identical_samples"] and row["samples_differing"] == 0, row
        assert row["frames"] == row["reference_frames"] > MIN_FRAMES, row
    assert rows["wav"]["identical_bytes"] and rows["flac"]["identical_bytes"]


def test_bench_same_as_service_says_when_full_load_is_killed(corpus):
    result = subprocess.run([sys.executable, "-m", "bench", "same-as-service", str(corpus[0]), "--memory-limit", "150M",
                             "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout)["rows"][0]
    assert row["full_load_status"] == "killed: signal 9" and row["streaming_status"] == "ok"
    assert "no service output to compare" in row["note"] and "identical_samples" not in row


def test_bench_same_as_service_exits_1_on_a_difference(corpus, tmp_path, monkeypatch):
    """A file the service would not have written (float mode's output) is reported and fails the run."""
    from bench.measuring import same_as_service

    monkeypatch.setattr(same_as_service, "STREAMING_ARGS", ["--compat", "float"])
    result = same_as_service.run([str(corpus[0])], ("wav",), 3 * 10**9)
    row = result["rows"][0]
    assert result["differing"] == 1 and not row["identical_bytes"] and not row["identical_samples"]
    assert row["samples_differing"] > 0 and row["difference_db"] < -60


def test_auto_writes_one_format_whatever_the_size(corpus, tmp_path):
    """The processor's in-memory and streamed paths write the same file (the service's), so the format of a
    job's output no longer depends on the size of its input."""
    src = corpus[0]
    kept, streamed = tmp_path / "kept.wav", tmp_path / "streamed.wav"
    in_memory = AudioProcessor(10**12).process_audio_job(AudioJob(str(src), str(kept)))
    chunked = AudioProcessor(0).process_audio_job(AudioJob(str(src), str(streamed)))
    assert in_memory.strategy == "full-load" and chunked.strategy == "streaming"
    assert kept.read_bytes() == streamed.read_bytes()
    assert sf.info(str(streamed)).subtype == "PCM_16"
    assert chunked.options["compat"] == "service" and "as the service" in chunked.decoder


def test_float_mode_stays_the_toolkits_default(corpus, tmp_path):
    report = normalize_file(corpus[0], tmp_path / "out.wav")
    assert report.options["compat"] == "float" and sf.info(str(tmp_path / "out.wav")).subtype == "FLOAT"
    assert report.output_format == "WAV/FLOAT"


def test_service_mode_takes_no_subtype(corpus, tmp_path):
    result = run_cli("normalize", corpus[0], tmp_path / "out.wav", "--compat", "service", "--subtype", "PCM_24")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "takes no output subtype" in result.stderr and not list(tmp_path.iterdir())
    with pytest.raises(Exception, match="compat must be one of"):
        NormalizeOptions(compat="pydub")


def test_the_gates_one_difference_from_noisereduce_is_its_fft_convolution(corpus, monkeypatch):
    """With its mask smoothed by the exact sum (scipy's direct convolution) instead of an FFT, reduce_noise gives
    the streaming gate's samples bit for bit: that rounding is all that is left between the two gates."""
    import noisereduce
    import noisereduce.spectralgate.stationary as stationary
    from scipy import signal

    path = next(p for p in corpus if p.suffix == ".mp3" and probe(p).channels == 1)
    samples = load_with_pydub(path)[1][:620_000]  # two of the gate's 600,000-frame pieces
    rate = probe(path).sample_rate
    gated, _ = normalize_array(samples, rate, NormalizeOptions(normalize_loudness=False, highpass_hz=None,
                                                               voice_band_hz=None))
    monkeypatch.setattr(stationary, "fftconvolve",
                        lambda a, kernel, mode: signal.convolve(a, kernel, mode=mode, method="direct"))
    exact = noisereduce.reduce_noise(y=samples.T, sr=rate, stationary=True).T
    assert gated.dtype == exact.dtype == np.float32 and np.array_equal(gated, exact)
