"""The scan's single-precision decision of the 80 dB floor (audionorm_lab.dsp.floor_decision): the bins it opens are those
the exact peaks open, in every piece, including bins whose peak lies on the floor's level and inputs that overflow."""

import numpy as np
import pytest

from audionorm_lab.dsp.chunks import array_reader
from audionorm_lab.dsp.floor_decision import FloorBounds, single_precision_error
from audionorm_lab.dsp.gate_grid import GateGrid, PeakScan, spectral_peaks
from audionorm_lab.dsp.gate_kernels import decide_bins
from audionorm_lab.dsp.noise_gate import NOISE_PROFILE_FRAMES, NoiseGate
from audionorm_lab.dsp.stft import frame_spectra, single_precision_spectra
from conftest import speech_like

RATE = 44100
N_FFT = 1024
BINS = N_FFT // 2 + 1


def white_noise_gate(level=1e-4, seed=0):
    noise = level * np.random.default_rng(seed).standard_normal(NOISE_PROFILE_FRAMES).astype(np.float32)
    return NoiseGate(noise, RATE)


def tone(frames, bin_index, amplitude):
    """A sinusoid centred on a bin: its magnitude there (Hann, scaled by the window's sum) is amplitude / 2."""
    t = np.arange(frames)
    return (amplitude * np.cos(2 * np.pi * bin_index * t / N_FFT)).astype(np.float32)


def both_ways(x, gate, kind="service"):
    """The bins each piece opens, from the exact peaks and from the single-precision decision; and the scan."""
    channels = x.shape[1]
    grid = GateGrid.named(kind, gate.hop_frames)
    exact, _ = spectral_peaks(array_reader(x), channels, grid, N_FFT)
    scan = PeakScan(array_reader(x), channels, grid, N_FFT, NOISE_PROFILE_FRAMES)
    scan.decide_with(FloorBounds.of(gate))
    scan.start().wait()
    decided = np.stack([scan.peaks(piece) for piece in range(len(exact))])
    scan.close()
    return gate.open_bins(exact), gate.open_bins(decided), scan


def test_decide_bins_is_its_numpy_expression():
    rng = np.random.default_rng(1)
    frames = 200
    scale = 10.0 ** rng.uniform(-9, 0, (frames, BINS))
    spectrum = ((rng.standard_normal((frames, BINS)) + 1j * rng.standard_normal((frames, BINS))) * scale
                ).astype(np.complex64)
    spectrum[17, 40] = np.inf  # a frame that overflowed: nothing in it is beyond doubt
    level = 10.0 ** rng.uniform(-6, 0, BINS)
    below, above = level * (1 - 1e-6), level * (1 + 1e-6)
    above[5], below[6] = np.inf, 0.0  # a bin never surely open, and one never surely closed
    peaks = np.zeros(BINS)
    peaks[9] = above[9]  # already open
    error = single_precision_error(N_FFT)

    squares = np.abs(spectrum.astype(np.complex128)) ** 2
    energy = 2 * squares.sum(axis=1) - squares[:, 0] - squares[:, -1]
    margin = (error * np.sqrt(energy) + 1e-30)[:, None]
    opened = (squares >= (above + margin) ** 2).any(axis=0)
    surely_below = np.where(below - margin > 0, (below - margin) ** 2, -1.0)
    doubt = (squares > surely_below).any(axis=0) | ~np.isfinite(energy).all()
    expected = np.where(opened & ~(peaks >= above), above, peaks)

    got = peaks.copy()
    left = decide_bins(np.ascontiguousarray(spectrum), below, above, error, got)
    assert np.array_equal(got, expected)
    assert left == int((doubt & ~(expected >= above)).sum())
    assert left > 0 and opened.any()


def test_single_precision_magnitudes_stay_far_inside_the_bound():
    """The bound the decision relies on, against real differences: speech, noise, a tone, near-silence."""
    x = np.concatenate([speech_like(3.0, RATE, 1, seed=3)[:, 0], tone(RATE, 37, 0.9),
                        1e-6 * np.random.default_rng(2).standard_normal(RATE).astype(np.float32),
                        np.full(RATE, 1e-30, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::256]
    exact, single = np.abs(frame_spectra(frames)), np.abs(single_precision_spectra(frames)).astype(np.float64)
    squares = single ** 2
    norm = np.sqrt(2 * squares.sum(axis=1) - squares[:, 0] - squares[:, -1])
    worst = (np.abs(exact - single) / np.maximum(norm, 1e-300)[:, None])[norm > 1e-20].max()
    print(f"largest difference {worst:.2e} of the frame's norm; bound {single_precision_error(N_FFT):.2e}")
    assert worst < single_precision_error(N_FFT) / 20


def test_the_bounds_are_checked_against_the_gates_own_floor():
    gate = white_noise_gate()
    bounds = FloorBounds.of(gate)
    assert np.isfinite(bounds.open_above).all() and (bounds.closed_below > 0).all()
    assert not gate.open_bins(bounds.closed_below).any() and gate.open_bins(bounds.open_above).all()
    assert (bounds.open_above / bounds.closed_below < 1 + 1e-8).all(), "as tight as the floor's rounding allows"


@pytest.mark.parametrize("kind", ["service", "file"])
def test_speech_decides_the_floor_as_the_exact_peaks(kind):
    x = np.concatenate([speech_like(14.0, RATE, 2, seed=5), speech_like(20.0, RATE, 2, seed=6) * 0.3])
    gate = NoiseGate(x[:NOISE_PROFILE_FRAMES], RATE)
    exact, decided, scan = both_ways(x, gate, kind)
    assert np.array_equal(decided, exact)
    assert scan.blocks > 0 and scan.blocks_in_doubt < scan.blocks / 10, "single precision decided most blocks"


def test_tones_on_the_floors_level_are_taken_exactly():
    """Tones whose peak lies a hair above or below their bin's level: only the exact peak can tell."""
    gate = white_noise_gate()
    bounds = FloorBounds.of(gate)
    start, frames = NOISE_PROFILE_FRAMES // 2, 3 * NOISE_PROFILE_FRAMES // 2
    x = 1e-4 * np.random.default_rng(0).standard_normal((frames, 2)).astype(np.float32)
    x[start:] = 0.0  # pure tones from here on, so their peaks are where they are put
    for channel, bin_index, factor in [(0, 100, 1 + 3e-7), (1, 100, 1 - 3e-7), (0, 300, 1.5), (1, 300, 0.5)]:
        unit = np.abs(frame_spectra(np.lib.stride_tricks.sliding_window_view(tone(8 * N_FFT, bin_index, 1.0),
                                                                                 N_FFT)[::256]))[:, bin_index].max()
        level = (bounds.closed_below[bin_index] + bounds.open_above[bin_index]) / 2
        x[start:, channel] += tone(frames - start, bin_index, level * factor / unit)
    exact, decided, scan = both_ways(x, gate)
    assert np.array_equal(decided, exact)
    assert exact[:, 0, 300].all() and not exact[:, 1, 300].any()
    assert scan.blocks_in_doubt > 0, "the tones near the level left blocks in doubt"


def test_the_largest_floats_decide_as_the_exact_peaks():
    """Samples at float32's largest (a hostile float WAV): the single-precision spectra stay finite or leave their
    frames in doubt (decide_bins' own test shows the latter); either way the same bins open."""
    gate = white_noise_gate()
    x = 1e-4 * np.random.default_rng(1).standard_normal((NOISE_PROFILE_FRAMES + 50_000, 1)).astype(np.float32)
    x[NOISE_PROFILE_FRAMES + 10_000: NOISE_PROFILE_FRAMES + 12_000] = np.finfo(np.float32).max
    x[NOISE_PROFILE_FRAMES + 11_000: NOISE_PROFILE_FRAMES + 11_500] *= -1
    exact, decided, _ = both_ways(x, gate)
    assert np.array_equal(decided, exact) and exact.any()


def test_a_silent_noise_clip_leaves_the_floor_to_the_exact_peaks():
    """Digital silence as the noise clip: every level is tiny, and the decision must still agree."""
    silence = np.zeros(NOISE_PROFILE_FRAMES, np.float32)
    gate = NoiseGate(silence, RATE)
    x = np.concatenate([np.zeros((NOISE_PROFILE_FRAMES, 1), np.float32), speech_like(8.0, RATE, 1, seed=9)])
    exact, decided, _ = both_ways(x, gate)
    assert np.array_equal(decided, exact) and exact.any()
