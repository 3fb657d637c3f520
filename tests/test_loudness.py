"""The streaming meter against pyloudnorm and EBU Tech 3341, and normalization hitting its target."""

import math
import re
import warnings

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from audionorm_lab import (LoudnessMeter, SampleRateError, full_load, integrated_loudness, normalize_array,
                           normalize_file)
from audionorm_lab.dsp.loudness import LOWEST_MEASURABLE_RATE
from conftest import music_like, noise, speech_like


def stream(x: np.ndarray, rate: int, block_frames: int = 4321) -> float:
    meter = LoudnessMeter(rate, x.shape[1])
    for i in range(0, len(x), block_frames):
        meter.update(x[i:i + block_frames])
    return meter.integrated()


SIGNALS = {"speech": speech_like, "noise": noise, "music": music_like}


@pytest.mark.parametrize("kind", SIGNALS)
@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_within_0_1_lu_of_pyloudnorm(kind, rate, channels):
    x = SIGNALS[kind](8.0, rate, channels)
    reference = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    assert abs(stream(x, rate) - reference) <= 0.1


@pytest.mark.parametrize("rate", [LOWEST_MEASURABLE_RATE, 8000, 11025, 16000, 44100, 96000])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_equals_pyloudnorms_exact_bs1770_filters_at_any_rate(rate, channels):
    """pyloudnorm's 'DeMan' filters are BS.1770's at 48 kHz and hold at other rates; so do ours."""
    x = speech_like(5.0, rate, channels)
    reference = pyloudnorm.Meter(rate, filter_class="DeMan").integrated_loudness(x.astype(np.float64))
    assert abs(stream(x, rate, block_frames=999) - reference) <= 0.01


def sine(dbfs: float, seconds: float, rate: int = 48000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = 10 ** (dbfs / 20) * np.sin(2 * np.pi * 1000 * t)
    return np.stack([tone, tone], axis=1).astype(np.float32)


TECH_3341 = {  # case: (segments of (dBFS, seconds), expected LUFS)
    1: ([(-23, 20)], -23.0),
    2: ([(-33, 20)], -33.0),
    3: ([(-36, 10), (-23, 60), (-36, 10)], -23.0),
    4: ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    5: ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
}


@pytest.mark.parametrize("case", TECH_3341)
def test_ebu_tech_3341_cases(case):
    segments, expected = TECH_3341[case]
    x = np.concatenate([sine(level, seconds) for level, seconds in segments])
    assert abs(stream(x, 48000, block_frames=48000) - expected) <= 0.1


def test_silence_and_short_input_are_minus_infinity():
    assert stream(np.zeros((48000, 2), np.float32), 48000) == -math.inf
    assert stream(sine(-20, 0.3), 48000) == -math.inf  # under one 400 ms block


def test_memory_is_one_float_per_100ms():
    meter = LoudnessMeter(8000, 1)
    meter.update(np.zeros((8000 * 60, 1), np.float32))
    assert len(meter._hop_energy) == 600


@pytest.mark.parametrize("rate", [11025, 44100])
def test_the_gain_does_not_depend_on_how_the_stream_is_cut(rate):
    """Each 100 ms hop is summed once, whole: a file fed in any blocks gets the gain (to the last bit) of the
    same file fed at once, which is how full-load and streaming reach the same 16-bit samples."""
    x = speech_like(7.3, rate, 2)
    whole = LoudnessMeter(rate, 2)
    whole.update(x)
    cut = LoudnessMeter(rate, 2)
    edges = np.cumsum(np.random.default_rng(3).integers(1, 9000, size=200))
    edges = edges[edges < len(x)]
    for start, end in zip(np.concatenate(([0], edges)), np.concatenate((edges, [len(x)]))):
        cut.update(x[start:end])
    assert np.array_equal(np.frombuffer(cut._hop_energy), np.frombuffer(whole._hop_energy))
    assert cut.gain_to(-23.0) == whole.gain_to(-23.0) and cut.integrated() == whole.integrated()


@pytest.mark.parametrize("target", [-23.0, -30.0])
def test_normalized_output_is_within_half_a_lu_of_target(speech_wav, tmp_path, target):
    out = tmp_path / "out.wav"
    report = normalize_file(speech_wav, out, target_lufs=target, chunk_seconds=4.0)
    assert not report.gain_limited_by_ceiling
    measured = integrated_loudness(out)
    assert abs(measured - target) <= 0.5
    assert report.loudness_out_lufs == pytest.approx(measured, abs=0.01)
    x, _ = sf.read(speech_wav)
    assert report.loudness_in_lufs == pytest.approx(pyloudnorm.Meter(44100).integrated_loudness(x), abs=0.1)


def test_peak_ceiling_limits_the_gain_and_says_so():
    rate = 44100
    x = music_like(5.0, rate)
    x[rate] = 0.5  # one sharp peak leaves little headroom
    out, report = normalize_array(x, rate, target_lufs=-5.0, ceiling_dbfs=-1.0, denoise=False)
    assert report.gain_limited_by_ceiling
    assert any("ceiling" in note for note in report.notes)
    assert 20 * math.log10(np.max(np.abs(out))) <= -1.0 + 1e-3
    assert report.loudness_out_lufs < -5.0 - 0.5


@pytest.mark.parametrize("rate", [1000, 2000, LOWEST_MEASURABLE_RATE - 1])
def test_a_rate_whose_loudness_cannot_be_measured_is_refused_by_both_and_processes_without_the_gain(tmp_path, rate):
    """Below 3364 Hz BS.1770's shelf (1682 Hz) lies above the Nyquist frequency and its design is unstable (the meter
    said +68 LUFS for a -15 LUFS tone at 3363 Hz, and a gain of -90 dB followed): streaming and full-load refuse in
    one line, with the same class, when the gain depends on it; without loudness normalization both write the same
    file, and the meter says NaN rather than a figure or a numpy warning."""
    src = tmp_path / "in.wav"
    sf.write(src, speech_like(5.0, rate, 1, seed=5), rate, subtype="PCM_16")
    words = rf"{re.escape(str(src))}: {rate:,} Hz is too low to measure loudness"
    with pytest.raises(SampleRateError, match=words):
        normalize_file(src, tmp_path / "s.wav", compat="service", denoise=False)
    with pytest.raises(SampleRateError, match=words):
        full_load(src, tmp_path / "f.wav", denoise=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        streamed = normalize_file(src, tmp_path / "s.wav", compat="service", denoise=False, normalize_loudness=False)
        full_load(src, tmp_path / "f.wav", denoise=False, normalize_loudness=False)
    assert (tmp_path / "s.wav").read_bytes() == (tmp_path / "f.wav").read_bytes()
    assert math.isnan(streamed.loudness_in_lufs) and streamed.gain_db == 0.0
    assert any(f"not measured below {LOWEST_MEASURABLE_RATE:,} Hz" in note for note in streamed.notes)
