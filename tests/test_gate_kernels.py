"""The noise gate's C kernels (audionorm_lab.dsp.gate_kernels) against the numpy expressions they replace, bit for bit."""

import numpy as np
import pytest

from audionorm_lab.dsp.gate_kernels import apply_gate, column_max_abs, overlap_add
from audionorm_lab.dsp import gate_kernels
from audionorm_lab.dsp.numpy_kernels import smooth_mask
from conftest import kernel_variant



@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def kernels(request, monkeypatch):
    """Every test here runs on the compiled kernels and on the numpy path (audionorm_lab.dsp.numpy_kernels)."""
    return kernel_variant(request, monkeypatch, gate_kernels)


def spectra(frames: int, bins: int, seed: int) -> np.ndarray:
    """Spectra with every kind of magnitude: loud, tiny, exact zeros of both signs, some just at the threshold."""
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-12, 0, (frames, bins))
    x = (rng.standard_normal((frames, bins)) + 1j * rng.standard_normal((frames, bins))) * scale
    x[rng.random((frames, bins)) < 0.05] = 0.0
    x[rng.random((frames, bins)) < 0.05] = complex(-0.0, -0.0)
    x[:, 7] = 1e-3 * np.exp(1j * rng.uniform(0, 2 * np.pi, frames))  # |x| on the threshold, up to rounding
    return x


@pytest.mark.parametrize("freq_width, time_width, threshold", [(6, 9, 1e-3), (1, 1, 1e-3), (6, 9, 0.0),
                                                                 (3, 2, -1.0), (6, 9, 1e-200), (13, 17, 1e-6),
                                                                 (6, 9, "per bin")])
def test_apply_gate_is_numpys_mask_smoothing_and_gains(freq_width, time_width, threshold):
    per_bin = isinstance(threshold, str)
    for seed in range(3):
        x = spectra(140, 513, seed)
        if per_bin:  # as the gate's: a threshold for each bin, some at 0 and below
            threshold = 10.0 ** np.random.default_rng(seed).uniform(-14, -1, 513)
            threshold[[3, 4, 5]] = [0.0, -1e-17, 1e-160]
        open_bins = np.zeros(513, bool)
        open_bins[[0, 100, 512]] = seed > 0
        norm = float(freq_width ** 2 * time_width ** 2)
        mask = np.abs(x) > threshold
        mask[:, open_bins] = True
        expected = x.copy()
        expected *= smooth_mask(mask, freq_width, time_width) / norm
        got = x.copy()
        live = apply_gate(got, threshold, open_bins, freq_width, time_width, norm)
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64)), "bit for bit, signed zeros too"
        assert np.array_equal(live, (expected != 0).any(axis=1) | (smooth_mask(mask, freq_width, time_width) != 0)
                              .any(axis=1))


def test_the_squared_magnitude_decides_only_beyond_doubt():
    """Magnitudes a hair either side of the threshold: np.abs decides them, as it did."""
    t = 0.0123456789
    angles = np.linspace(0, 2 * np.pi, 4000)
    radius = t * (1 + np.linspace(-4e-16, 4e-16, 4000))
    x = (radius * np.exp(1j * angles)).reshape(40, 100)
    got = x.copy()
    apply_gate(got, t, np.zeros(100, bool), 1, 1, 1.0)
    expected = x * (np.abs(x) > t)
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))


def test_overlap_add_is_the_inverse_stfts_batch_loop():
    rng = np.random.default_rng(4)
    hop, n_fft, k = 256, 1024, 37
    frames, synthesis = rng.standard_normal((k, n_fft)), rng.standard_normal(n_fft)
    first = 5
    expected = rng.standard_normal((k + 3 + 9, hop))
    got = expected.copy()
    weighted = (frames * synthesis).reshape(-1, 4, hop)
    for part in range(4):
        expected[first + part: first + part + k] += weighted[:, part]
    overlap_add(frames, synthesis, got, np.arange(first, first + k))
    assert np.array_equal(got, expected)
    # frames left out (every third: a batch with gaps, as silent frames are skipped) add nothing: the rows they
    # would have reached get only the kept frames' products, added in the same order (part by part, then frame)
    keep = np.arange(k) % 3 != 0
    rows = np.arange(first, first + k)[keep]
    base = rng.standard_normal((k + 3 + 9, hop))
    skipped, expected_skipped = base.copy(), base.copy()
    overlap_add(np.ascontiguousarray(frames[keep]), synthesis, skipped, rows)
    kept = (frames[keep] * synthesis).reshape(-1, 4, hop)
    for part in range(4):
        for i, row in enumerate(rows):
            expected_skipped[row + part] += kept[i, part]
    assert np.array_equal(skipped, expected_skipped)


def test_column_max_abs_is_numpys_maximum_of_magnitudes():
    for seed in range(4):
        x = spectra(300, 513, seed)
        x[:, 9] = 1e-160  # squares that underflow
        peaks = np.random.default_rng(seed).uniform(0, 0.5, 513)
        expected = np.maximum(peaks, np.abs(x).max(axis=0))
        column_max_abs(x, peaks)
        assert np.array_equal(peaks, expected)


def test_kernels_check_their_buffers():
    with pytest.raises(ValueError):
        apply_gate(np.zeros((3, 4), np.complex64), 1.0, np.zeros(4, bool), 2, 2, 16.0)
    with pytest.raises(ValueError):
        apply_gate(np.zeros((3, 4), complex), 1.0, np.zeros(5, bool), 2, 2, 16.0)
    with pytest.raises(ValueError):
        overlap_add(np.zeros((2, 1024)), np.zeros(1024), np.zeros((4, 256)), np.array([0, 1]))  # past the end


def test_smoothing_wider_than_the_compiled_kernel_takes_runs_numpys(kernels):
    """A 257-bin triangle (the compiled kernel takes 256): the numpy path smooths it, the same bits."""
    assert not gate_kernels.compiled_smoothing(257, 2) and gate_kernels.compiled_smoothing(256, 2)
    x = spectra(40, 513, 5)
    mask = np.abs(x) > 1e-3
    expected = x.copy()
    expected *= smooth_mask(mask, 257, 2) / (257.0 ** 2 * 2.0 ** 2)
    got = x.copy()
    apply_gate(got, 1e-3, np.zeros(513, bool), 257, 2, 257.0 ** 2 * 2.0 ** 2)
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))
