"""Same samples as the service: streaming against noisereduce.reduce_noise itself, and against full-load.

The service called ``noisereduce.reduce_noise(y, sr, stationary=True)`` on the whole array.
That gates 600,000-frame pieces, each on its own STFT grid starting 30,000 frames before
it, with an 80 dB floor taken from that padded piece. The streaming gate's default
``gate_grid="service"`` follows it, in chunks of any length.
"""

import math

import noisereduce
import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audionorm_lab import full_load, normalize_array, normalize_file, snr_db
from audionorm_lab.dsp.chunks import array_reader
from audionorm_lab.dsp.gate_grid import SERVICE_PADDING_FRAMES, GateGrid, spectral_peaks
from audionorm_lab.dsp.noise_gate import NOISE_PROFILE_FRAMES, NoiseGate
from audionorm_lab.media.service_export import service_pcm16
from conftest import speech_like

GATE_ONLY = dict(highpass_hz=None, voice_band_hz=None, normalize_loudness=False)


def band_limited(seconds, rate, channels, seed):
    """Speech-like audio with nothing above 15 kHz, as in an mp3: there noisereduce's 80 dB floor
    opens whole bins, so the test fails unless the floor comes from the service's own pieces."""
    x = speech_like(seconds, rate, channels, seed=seed)
    sos = signal.butter(12, 15000, "lowpass", fs=rate, output="sos")
    return signal.sosfilt(sos, x, axis=0).astype(np.float32)


def service_gate(x, rate):
    return noisereduce.reduce_noise(y=x.T, sr=rate, stationary=True).T


@pytest.mark.parametrize("seconds, rate, channels", [(5.0, 44100, 2), (31.0, 48000, 2), (28.0, 44100, 1)])
def test_gate_on_the_service_grid_matches_reduce_noise(seconds, rate, channels):
    x = band_limited(seconds, rate, channels, seed=channels)
    pieces = math.ceil(len(x) / NOISE_PROFILE_FRAMES)
    reference = service_gate(x, rate)
    out, report = normalize_array(x, rate, **GATE_ONLY)
    assert report.options["gate_grid"] == "service"
    print(f"{seconds} s, {rate} Hz, {channels} ch, {pieces} pieces: {-snr_db(out, reference):.1f} dB")
    assert snr_db(out, reference) >= 100.0
    assert snr_db(out, x) < 20.0, "the gate changed the signal"
    if seconds > 30:
        # one grid from frame 0 is not what the service computed
        file_grid, _ = normalize_array(x, rate, gate_grid="file", **GATE_ONLY)
        assert snr_db(file_grid, reference) < 60.0


def test_the_floor_opens_bins_in_these_signals():
    """The 80 dB floor matters here (so the previous test checks it), and only on the piece's own peaks."""
    rate = 48000
    x = band_limited(31.0, rate, 2, seed=2)
    gate = NoiseGate(x[:NOISE_PROFILE_FRAMES], rate)
    peaks, total = spectral_peaks(array_reader(x), 2, GateGrid.named("service", gate.hop_frames), gate.n_fft)
    assert total == len(x) and peaks.shape == (3, 2, gate.n_fft // 2 + 1)
    assert gate.open_bins(peaks).any()


@pytest.mark.parametrize("kind", ["service", "file"])
def test_spectral_peaks_equal_scipy_on_each_piece(kind):
    rng = np.random.default_rng(4)
    n = 2 * NOISE_PROFILE_FRAMES + 12345
    x = (rng.standard_normal((n, 2)) * np.linspace(0.01, 1.0, n)[:, None]).astype(np.float32)
    grid = GateGrid.named(kind, 256)
    peaks, total = spectral_peaks(array_reader(x), 2, grid, 1024, block_frames=77_777)
    if kind == "file":
        stretches = [(0, n)]
    else:
        stretches = [(p * NOISE_PROFILE_FRAMES - SERVICE_PADDING_FRAMES,
                      (p + 1) * NOISE_PROFILE_FRAMES + SERVICE_PADDING_FRAMES) for p in range(3)]
    assert total == n and len(peaks) == len(stretches)
    for piece, (start, end) in enumerate(stretches):
        padded = np.zeros((end - start, 2))
        padded[max(0, -start): min(end, n) - start] = x[max(0, start): min(end, n)]
        _, _, spectrum = signal.stft(padded.T, nfft=1024, nperseg=1024, noverlap=768, padded=False)
        np.testing.assert_allclose(peaks[piece], np.abs(spectrum).max(axis=-1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grid", ["service", "file"])
def test_chunk_lengths_that_do_not_divide_the_pieces_give_the_same_samples(grid):
    rate = 44100
    x = band_limited(30.0, rate, 2, seed=7)
    whole, _ = normalize_array(x, rate, chunk_seconds=math.inf, gate_grid=grid, **GATE_ONLY)
    for chunk_seconds in (1.0, 2.9, 13.7):
        out, report = normalize_array(x, rate, chunk_seconds=chunk_seconds, gate_grid=grid, **GATE_ONLY)
        assert NOISE_PROFILE_FRAMES % report.chunk_frames != 0 and report.chunks > 2
        assert snr_db(out, whole) >= 120.0, (grid, chunk_seconds)


@pytest.fixture(scope="module")
def pcm16_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pcm16")
    made = {}
    for rate, channels in [(44100, 1), (44100, 2), (48000, 2)]:
        path = folder / f"speech-{rate}-{channels}.wav"
        sf.write(path, speech_like(16.0, rate, channels, seed=rate + channels), rate, subtype="PCM_16")
        made[(rate, channels)] = path
    return made


@pytest.mark.parametrize("rate, channels", [(44100, 1), (44100, 2), (48000, 2)])
def test_streaming_gives_the_services_samples(pcm16_inputs, tmp_path, rate, channels):
    """Default options, a PCM_16 WAV longer than one 600,000-frame piece.

    Full-load exports 16 bits the service's way (scale 32767, truncate), which alone is
    about 70 dB below the signal; the streaming output is converted the same way, so
    what is compared is the processing.
    """
    src = pcm16_inputs[(rate, channels)]
    assert sf.info(src).frames > NOISE_PROFILE_FRAMES
    full_load(src, tmp_path / "service.wav")
    report = normalize_file(src, tmp_path / "streaming.wav")
    service, _ = sf.read(tmp_path / "service.wav", dtype="int16", always_2d=True)
    streaming, _ = sf.read(tmp_path / "streaming.wav", dtype="float32", always_2d=True)
    assert streaming.shape == service.shape
    difference_db = -snr_db(service_pcm16(streaming).astype(np.float64), service.astype(np.float64))
    print(f"{rate} Hz {channels} ch: streaming vs full-load {difference_db:.1f} dB, "
          f"{np.mean(service_pcm16(streaming) != service):.1e} of samples differ by one step")
    assert difference_db <= -90.0
    assert report.options["gate_grid"] == "service" and report.chunks > 1
