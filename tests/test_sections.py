"""The IIR sections' loop and designs against scipy.signal, which they replace on the streaming path."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from audionorm_lab.dsp.loudness import channel_weights, k_weighting_sos
from audionorm_lab.dsp.metrics import snr_db
from audionorm_lab.dsp import sections
from audionorm_lab.dsp.sections import butterworth, filter_frames, weighted_power
from audionorm_lab import NormalizeOptions
from audionorm_lab.dsp.noise_gate import noise_profile_db
from audionorm_lab.dsp.stages import chain_sections
from audionorm_lab.dsp.stft import hann, scipy_stft_float32
from conftest import encode, kernel_variant, speech_like

RATE = 44100


@pytest.fixture(params=["compiled", "numpy"])
def loop(request, monkeypatch):
    """The compiled loop, and the numpy path (scipy's sosfilt: audionorm_lab.dsp.numpy_kernels)."""
    return kernel_variant(request, monkeypatch, sections)


def chain_sos(sections: int) -> np.ndarray:
    """2 (a high-pass), 4 (the voice band), 6 (both: the chain's cascade) or 3 (any other count)."""
    options = NormalizeOptions()
    hp = chain_sections(options.highpass_hz, None, RATE).sos
    band = chain_sections(None, options.voice_band_hz, RATE).sos
    cascade = chain_sections(options.highpass_hz, options.voice_band_hz, RATE).sos
    return {2: hp, 4: band, 6: cascade, 3: np.vstack([hp, band[:1]])}[sections]


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
@pytest.mark.parametrize("sections", [2, 3, 4, 6])
def test_filter_frames_is_sosfilt_bit_for_bit_in_any_blocks(channels, sections, loop):
    sos = chain_sos(sections)
    x = speech_like(2.0, RATE, channels, seed=channels)
    whole, final = signal.sosfilt(sos, x, axis=0, zi=np.zeros((len(sos), 2, channels)))
    state = np.zeros((len(sos), 2, channels))
    blocks = [filter_frames(sos, x[i: i + 12345], state) for i in range(0, len(x), 12345)]
    assert np.array_equal(np.concatenate(blocks), whole.astype(np.float32))
    assert np.array_equal(state, final)


def test_filter_frames_in_place_and_on_an_empty_block(loop):
    sos = chain_sos(6)
    x = speech_like(0.5, RATE, 2)
    expected = signal.sosfilt(sos, x, axis=0).astype(np.float32)
    state = np.zeros((len(sos), 2, 2))
    assert filter_frames(sos, x[:0], state).shape == (0, 2)
    assert filter_frames(sos, x, state, out=x) is x
    assert np.array_equal(x, expected)


@pytest.mark.parametrize("channels", [1, 2, 5, 6])
def test_weighted_power_is_the_meters_k_weighted_sum(channels, loop):
    sos, weights = k_weighting_sos(RATE), channel_weights(channels)
    x = speech_like(1.5, RATE, channels, seed=7)
    weighted = signal.sosfilt(sos, x, axis=0)
    expected = (weighted ** 2 * weights).sum(axis=1)
    state = np.zeros((len(sos), 2, channels))
    power = np.concatenate([weighted_power(sos, x[i: i + 4000], state, weights) for i in range(0, len(x), 4000)])
    np.testing.assert_allclose(power, expected, rtol=1e-13, atol=0)


def test_bad_buffers_are_refused():
    sos, x = chain_sos(2), np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match="state must be"):
        filter_frames(sos, x, np.zeros((2, 2, 1)))
    with pytest.raises(ValueError, match="sos must be"):
        filter_frames(sos.astype(np.float32), x, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="out must be"):
        filter_frames(sos, x, np.zeros((2, 2, 2)), out=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="channel weights"):
        weighted_power(sos, x, np.zeros((2, 2, 2)), np.ones(3))


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("btype, edges", [("highpass", 80.0), ("bandpass", (100.0, 3400.0)),
                                           ("bandpass", (100.0, 7600.0))])
def test_butterworth_is_scipys_design(rate, order, btype, edges):
    if btype == "bandpass":
        edges = (edges[0], min(edges[1], 0.45 * rate))  # below Nyquist, as voice_band keeps it
    ours = butterworth(order, edges, btype, rate)
    reference = signal.butter(order, edges, btype, fs=rate, output="sos")
    assert ours.shape == reference.shape
    _, response = signal.sosfreqz(ours, 2048, fs=rate)
    _, expected = signal.sosfreqz(reference, 2048, fs=rate)
    assert np.max(np.abs(response - expected)) < 1e-10
    x = speech_like(0.5, rate, 1)[:, 0].astype(np.float64)
    assert snr_db(signal.sosfilt(ours, x), signal.sosfilt(reference, x)) > 180.0


def test_butterworth_refuses_what_it_does_not_design():
    with pytest.raises(ValueError, match="btype"):
        butterworth(4, (100.0, 200.0), "highpass", RATE)
    with pytest.raises(ValueError, match="btype"):
        butterworth(4, 100.0, "lowpass", RATE)


def test_the_window_and_the_noise_profile_are_scipys_to_the_bit():
    for n_fft in (256, 1024, 2048):
        assert np.array_equal(hann(n_fft), signal.get_window("hann", n_fft))
    clip = speech_like(3.0, RATE, 2, seed=3)
    clip[::5] *= 1e-5  # nearly empty stretches, where rounding shows first
    mean, std = noise_profile_db(clip)
    mono = clip.mean(axis=1)
    padded = np.concatenate([np.zeros(512, np.float32), mono, np.zeros(512, np.float32)])
    _, _, spectrum = signal.stft(padded, nfft=1024, nperseg=1024, noverlap=768, boundary=None, padded=False)
    ours = scipy_stft_float32(padded, 1024, 256)
    assert ours.dtype == spectrum.dtype == np.complex64 and np.array_equal(ours, spectrum)
    # the statistics, taken here over the whole spectrogram at once (the profile takes them in pieces)
    level = 20.0 * np.log10(np.abs(spectrum) + np.finfo(np.float64).eps)
    level = np.maximum(level, level.max(axis=1, keepdims=True) - 80.0)
    np.testing.assert_allclose(mean, level.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, level.std(axis=1), rtol=1e-9)


def test_the_streaming_path_never_imports_scipy_signal(tmp_path, speech_wav):
    """Its import took 0.8 s of every run's start (it pulls in scipy.stats)."""
    mp3 = encode(speech_wav, tmp_path / "speech.mp3")
    code = ("import sys; from audionorm_lab import normalize_file; "
            f"normalize_file({str(mp3)!r}, {str(tmp_path / 'out.wav')!r}); "
            "print(sorted(m for m in sys.modules if m.startswith('scipy.signal')))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
