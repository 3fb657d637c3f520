"""The noise gate's element-wise work on spectra, in C (``_gate.c``): the same bits as numpy, in fewer passes.

- :func:`apply_gate`: the mask (a magnitude above its bin's threshold, or an open bin),
  noisereduce's smoothing of it (exact integer running sums) and the gains it gives, multiplied
  into the spectrum; and which frames kept any gain (a frame that kept none is zeros after the
  inverse transform, which need not be computed).
- :func:`overlap_add`: the inverse STFT's weighted overlap-add of a batch of frames.
- :func:`column_max_abs`: each bin's largest magnitude, for the scan's peaks.
- :func:`decide_bins`: which bins single-precision spectra open beyond doubt, and which they leave in doubt
  (:mod:`~audionorm_lab.dsp.floor_decision`).

Each equals the numpy expression named in its docstring, bit for bit (``tests/test_gate_kernels.py``).
Magnitudes come from numpy's own ``np.abs`` wherever they decide anything: the C code compares
squared magnitudes only where they decide beyond doubt (outside a relative band of 1e-12, where
rounding cannot reach), and hands the rest, a handful per spectrum, back to ``np.abs``.
"""

from __future__ import annotations

import numpy as np

from . import numpy_kernels
from .kernels import extension

#: The compiled kernels (None: their numpy expressions run instead, the same bits).
COMPILED = extension("_gate")

AMBIGUOUS = 2
#: The widest smoothing triangle the compiled kernel takes (bins or frames), and its largest count
#: (``freq_width ** 2 * time_width ** 2``, the size of its table of gains: 128 MB at most); wider smoothing runs the
#: numpy path. The gate's own widths stay far below both: noisereduce refuses the rates that would widen them
#: (:func:`~audionorm_lab.dsp.noise_gate.mask_smoothing`).
COMPILED_MAX_WIDTH = 256
COMPILED_MAX_COUNT = 2**24


def compiled_smoothing(freq_width: int, time_width: int) -> bool:
    """Whether the compiled kernel smooths these widths: each from 1 to :data:`COMPILED_MAX_WIDTH`, and the count
    table within :data:`COMPILED_MAX_COUNT`."""
    return (1 <= freq_width <= COMPILED_MAX_WIDTH and 1 <= time_width <= COMPILED_MAX_WIDTH
            and freq_width ** 2 * time_width ** 2 <= COMPILED_MAX_COUNT)


def _spectrum(spectrum: np.ndarray) -> None:
    if spectrum.dtype != np.complex128 or spectrum.ndim != 2 or not spectrum.flags.c_contiguous:
        raise ValueError(f"spectrum must be C-contiguous complex128 (frames, bins), not {spectrum.dtype} "
                         f"{spectrum.shape}")


def gate_mask(spectrum: np.ndarray, thresholds: np.ndarray, open_bins: np.ndarray) -> np.ndarray:
    """``np.abs(spectrum) > thresholds`` with ``mask[:, open_bins] = True``, as uint8 0/1 ``(frames, bins)``."""
    _spectrum(spectrum)
    frames, bins = spectrum.shape
    thresholds = np.ascontiguousarray(np.broadcast_to(thresholds, (bins,)), dtype=np.float64)
    opened = np.ascontiguousarray(open_bins, dtype=np.uint8)
    if opened.shape != (bins,):
        raise ValueError(f"open_bins must be ({bins},), not {opened.shape}")
    if COMPILED is None:
        return numpy_kernels.gate_mask(spectrum, thresholds, opened)
    mask = np.empty((frames, bins), np.uint8)
    if COMPILED.mask(spectrum, thresholds, opened, mask, frames, bins):
        flat = mask.reshape(-1)
        unsure = np.flatnonzero(flat == AMBIGUOUS)
        flat[unsure] = np.abs(spectrum.reshape(-1)[unsure]) > thresholds[unsure % bins]
    return mask


def apply_gate(spectrum: np.ndarray, thresholds: np.ndarray, open_bins: np.ndarray, freq_width: int,
               time_width: int, norm: float) -> np.ndarray:
    """Gate ``spectrum`` (complex128 ``(frames, bins)``) in place; return the frames that kept any gain (bool).

    numpy: ``mask = np.abs(spectrum) > thresholds; mask[:, open_bins] = True;
    spectrum *= smooth_mask(mask, freq_width, time_width) / norm``.
    """
    mask = gate_mask(spectrum, thresholds, open_bins)
    if COMPILED is None or not compiled_smoothing(int(freq_width), int(time_width)):
        return numpy_kernels.apply_gate(spectrum, mask, int(freq_width), int(time_width), float(norm))
    frames, bins = spectrum.shape
    live = np.empty(frames, np.uint8)
    COMPILED.smooth_and_apply(spectrum, mask, int(freq_width), int(time_width), float(norm), live, frames, bins)
    return live.view(bool)


def overlap_add(frames: np.ndarray, synthesis: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """Add ``frames * synthesis`` (float64 ``(k, n_fft)``) into ``out`` (float64 ``(rows, hop)``), frame ``i`` from
    row ``rows[i]`` on, a part of ``hop`` samples at a time.

    numpy, for frames at consecutive rows from ``first``: ``frames = frames.reshape(-1, overlap, hop);
    frames *= synthesis.reshape(overlap, hop)``, then ``out[first + part: first + part + k] += frames[:, part]``
    for each part in order.
    """
    frames = np.ascontiguousarray(frames, dtype=np.float64)
    synthesis = np.ascontiguousarray(synthesis, dtype=np.float64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if frames.ndim != 2 or synthesis.shape != (frames.shape[1],) or out.ndim != 2 or len(rows) != len(frames):
        raise ValueError("frames (k, n_fft), synthesis (n_fft,), out (rows, hop) and k rows are needed")
    if out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous float64, not {out.dtype}")
    if COMPILED is None:
        numpy_kernels.overlap_add(frames, synthesis, out, rows)
        return
    COMPILED.overlap_add(frames, synthesis, out, rows, len(frames), frames.shape[1], out.shape[1], out.shape[0])


def column_max_abs(spectrum: np.ndarray, peaks: np.ndarray) -> None:
    """``np.maximum(peaks, np.abs(spectrum).max(axis=0), out=peaks)`` for complex128 ``(frames, bins)``: ``np.abs``
    of the frames that can hold a bin's largest magnitude and raise its peak, and of no others."""
    _spectrum(spectrum)
    if peaks.dtype != np.float64 or peaks.shape != (spectrum.shape[1],) or not peaks.flags.c_contiguous:
        raise ValueError(f"peaks must be C-contiguous float64 ({spectrum.shape[1]},)")
    if COMPILED is None:
        numpy_kernels.column_max_abs(spectrum, peaks)
        return
    frames, bins = spectrum.shape
    candidates = np.empty(frames * bins, np.int64)
    count = COMPILED.column_candidates(spectrum, peaks, candidates, frames, bins)
    if count:
        chosen = candidates[:count]
        np.maximum.at(peaks, chosen % bins, np.abs(spectrum.reshape(-1)[chosen]))


def decide_bins(spectrum: np.ndarray, closed_below: np.ndarray, open_above: np.ndarray, error: float,
                peaks: np.ndarray) -> int:
    """Raise ``peaks[b]`` to ``open_above[b]`` where a frame of ``spectrum`` (complex64 ``(frames, bins)``) is beyond
    doubt above it; return how many bins, not at ``open_above``, some frame leaves in doubt (may lie above
    ``closed_below``, or is not finite).

    "Beyond doubt" takes each single-precision magnitude to lie within ``error`` times its frame's whole-spectrum
    L2 norm (Parseval, from the frame's own bins), plus 1e-30, of the double-precision one. numpy, for a frame's
    magnitudes ``m`` and that margin ``d``: ``(m - d >= open_above)`` opens a bin, and a bin is in doubt unless
    ``m + d <= closed_below`` (compared as squares).
    """
    if spectrum.dtype != np.complex64 or spectrum.ndim != 2 or not spectrum.flags.c_contiguous:
        raise ValueError(f"spectrum must be C-contiguous complex64 (frames, bins), not {spectrum.dtype} "
                         f"{spectrum.shape}")
    frames, bins = spectrum.shape
    for name, array in (("closed_below", closed_below), ("open_above", open_above), ("peaks", peaks)):
        if array.dtype != np.float64 or array.shape != (bins,) or not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous float64 ({bins},)")
    if COMPILED is None:
        return numpy_kernels.decide_bins(spectrum)
    return COMPILED.decide_bins(spectrum, closed_below, open_above, float(error), peaks, frames, bins)
