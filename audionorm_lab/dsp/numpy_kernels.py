"""The numpy and scipy path: each compiled kernel's reference expression, which gives the kernel's bits.

The wrappers (:mod:`~audionorm_lab.dsp.frame_fft`, :mod:`~audionorm_lab.dsp.sections`,
:mod:`~audionorm_lab.dsp.gate_kernels`) call these where the compiled kernels were not built, or where
``AUDIONORM_KERNELS=numpy`` asks for them (:mod:`~audionorm_lab.dsp.kernels`). Arguments arrive checked by the
wrappers. tests/test_kernels_pure.py holds each to its kernel, bit for bit, and a whole normalize too.
"""

from __future__ import annotations

import numpy as np


def windowed_rfft(frames: np.ndarray, window: np.ndarray, out: np.ndarray) -> None:
    """``numpy.fft.rfft(frames * window)`` (float64), or ``scipy.fft.rfft`` (float32), into ``out``."""
    windowed = frames.astype(window.dtype, copy=False) * window
    if window.dtype == np.float32:
        import scipy.fft

        out[...] = scipy.fft.rfft(windowed, axis=-1)
    else:
        out[...] = np.fft.rfft(windowed, axis=-1)


def irfft(rows: np.ndarray, n: int, out: np.ndarray) -> None:
    """``numpy.fft.irfft(rows, n=n)`` into ``out``."""
    out[...] = np.fft.irfft(rows, n=n, axis=-1)


def filter_sections(sos: np.ndarray, frames: np.ndarray, state: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, frames, axis=0, zi=state)`` in float64 (``state`` updated in place)."""
    if len(frames) == 0:
        return np.zeros(frames.shape)
    from scipy.signal import sosfilt

    filtered, final = sosfilt(sos, frames.astype(np.float64), axis=0, zi=state)
    state[...] = final
    return filtered


def weighted_power(filtered: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum(weights * y ** 2)`` over channels, channel after channel (the compiled loop's order)."""
    power = filtered[:, 0] * filtered[:, 0] * weights[0]
    for channel in range(1, filtered.shape[1]):
        power = power + filtered[:, channel] * filtered[:, channel] * weights[channel]
    return power


def gate_mask(spectrum: np.ndarray, thresholds: np.ndarray, open_bins: np.ndarray) -> np.ndarray:
    """``np.abs(spectrum) > thresholds`` with the open bins set, as uint8 0/1."""
    mask = np.abs(spectrum) > thresholds
    mask[:, open_bins.astype(bool)] = True
    return mask.view(np.uint8)


def apply_gate(spectrum: np.ndarray, mask: np.ndarray, freq_width: int, time_width: int, norm: float) -> np.ndarray:
    """``spectrum *= smooth_mask(mask, freq_width, time_width) / norm`` in place; the frames that kept any gain."""
    counts = smooth_mask(mask, freq_width, time_width)
    spectrum *= counts / norm
    return (spectrum != 0).any(axis=1) | (counts != 0).any(axis=1)


def overlap_add(frames: np.ndarray, synthesis: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """Each frame times ``synthesis`` added into ``out`` from its row on: part by part, every frame's part in turn."""
    hop = out.shape[1]
    overlap = frames.shape[1] // hop
    if len(rows) and (rows.min() < 0 or rows.max() + overlap > len(out)):
        raise ValueError("a frame starts outside the output")
    weighted = frames.reshape(len(frames), overlap, hop) * synthesis.reshape(overlap, hop)
    for part in range(overlap):
        out[rows + part] += weighted[:, part]


def column_max_abs(spectrum: np.ndarray, peaks: np.ndarray) -> None:
    """``np.maximum(peaks, np.abs(spectrum).max(axis=0), out=peaks)``."""
    if len(spectrum):
        np.maximum(peaks, np.abs(spectrum).max(axis=0), out=peaks)


def decide_bins(spectrum: np.ndarray) -> int:
    """Decides nothing from single precision: every bin is left in doubt, so the caller takes the exact peaks (the
    compiled kernel's decisions are the exact peaks' by construction: the same open bins)."""
    return spectrum.shape[1]


def smooth_mask(mask: np.ndarray, freq_width: int, time_width: int) -> np.ndarray:
    """noisereduce's mask smoothing, unnormalized and exact: ``(frames, bins)`` 0/1 ``mask``
    convolved with the triangles 1, 2, .., w, .., 2, 1 along bins (w = ``freq_width``) and
    frames (w = ``time_width``), zeros outside (``fftconvolve(..., mode="same")``).

    A triangle of width w is a running sum of w values taken twice, and on a 0/1 mask
    every sum is a small integer: the result is exact, where a float convolution rounds
    at every tap. Divide by ``freq_width ** 2 * time_width ** 2`` for noisereduce's mask.
    """
    dtype = np.int16 if freq_width ** 2 * time_width ** 2 <= np.iinfo(np.int16).max else np.int32
    return _triangle_sum(_triangle_sum(mask.astype(dtype), freq_width, 1), time_width, 0)


def _triangle_sum(x: np.ndarray, width: int, axis: int) -> np.ndarray:
    """``x`` convolved with 1, 2, .., ``width``, .., 2, 1 along ``axis``, centred, zeros beyond the ends."""
    if width == 1:
        return x

    def along(start: int, count: int) -> tuple:
        return (slice(None),) * axis + (slice(start, start + count),)

    length = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = length + 2 * (width - 1)
    padded = np.zeros(shape, x.dtype)
    padded[along(width - 1, length)] = x
    for count in (length + width - 1, length):  # a running sum of ``width``, twice
        summed = padded[along(0, count)].copy()
        for shift in range(1, width):
            summed += padded[along(shift, count)]
        padded = summed
    return padded
