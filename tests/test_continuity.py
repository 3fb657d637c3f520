"""Chunked processing equals whole-file processing (pedalboard's streamed-vs-one-shot check)."""

import math

import numpy as np
import pytest
from scipy import signal

from audionorm_lab import normalize_array
from audionorm_lab.dsp.chunks import context_chunks
from audionorm_lab.stream.pipeline import ArraySource
from audionorm_lab.dsp.stages import highpass, voice_band
from conftest import speech_like

RATE = 44100


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("block_frames", [1, 4410, 12345, 10**9])
def test_iir_stages_carry_state_across_blocks(channels, block_frames):
    x = speech_like(3.0 if block_frames > 1 else 0.2, RATE, channels)
    for stage_factory in (lambda: highpass(80, RATE, channels), lambda: voice_band(100, 8000, RATE, channels)[0]):
        whole = signal.sosfilt(stage_factory().sos, x, axis=0)
        stage = stage_factory()
        chunked = np.concatenate([stage.process(x[i:i + block_frames]) for i in range(0, len(x), block_frames)])
        assert chunked.shape == x.shape
        assert np.max(np.abs(chunked - whole)) <= 1e-5
        stage.reset()
        again = stage.process(x)
        assert np.max(np.abs(again - whole)) <= 1e-5, "reset() must start a new stream"


@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("chunk_seconds", [0.37, 1.0, 2.9])
def test_pipeline_without_denoise_matches_whole_file(channels, chunk_seconds):
    x = speech_like(6.3, RATE, channels, seed=channels)
    whole, whole_report = normalize_array(x, RATE, chunk_seconds=math.inf, denoise=False)
    chunked, report = normalize_array(x, RATE, chunk_seconds=chunk_seconds, denoise=False)
    assert report.chunks == math.ceil(len(x) / report.chunk_frames) > 1
    assert len(x) % report.chunk_frames != 0, "chunk length must not divide the input length"
    assert chunked.shape == x.shape
    assert np.max(np.abs(chunked - whole)) <= 1e-5
    assert report.gain_db == pytest.approx(whole_report.gain_db, abs=1e-6)


def test_one_block_chunks_match_whole_file():
    rate = 8000
    x = speech_like(0.6, rate, 2)
    whole, _ = normalize_array(x, rate, chunk_seconds=math.inf, denoise=False)
    chunked, report = normalize_array(x, rate, chunk_seconds=1 / rate, denoise=False)
    assert report.chunk_frames == 1 and report.chunks == len(x)
    assert np.max(np.abs(chunked - whole)) <= 1e-5


@pytest.mark.parametrize("chunk, overlap", [(1000, 0), (1000, 300), (4096, 1000), (10**6, 50)])
def test_context_chunks_cover_the_stream_once(chunk, overlap):
    x = np.arange(10007, dtype=np.float32)[:, None]
    source = ArraySource(x, 8000)
    cores = []
    chunks = list(context_chunks(source.read, 1, chunk, overlap))
    assert [last for *_, last in chunks] == [False] * (len(chunks) - 1) + [True]
    for padded, lead, core, _ in chunks:
        start = int(padded[lead, 0])
        assert lead == min(overlap, start), "left context is as long as asked, or reaches the start"
        assert len(padded) - lead - core == min(overlap, len(x) - start - core)
        assert len(padded) <= chunk + 2 * overlap
        cores.append(padded[lead:lead + core, 0])
    np.testing.assert_array_equal(np.concatenate(cores), x[:, 0])
