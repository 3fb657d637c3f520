"""The STFT's real transforms, numpy's and scipy's to the bit, four frames at a time (eight in float32) on AVX2.

numpy.fft runs pocketfft, which transforms several frames at once, one per vector lane; numpy's wheel is built
for two lanes of float64 (SSE2), and scipy's for four of float32. :mod:`audionorm_lab.dsp._fft` is numpy's own copy of
pocketfft built twice (setup.py): for the baseline CPU and with AVX2 (``_fft_avx2``, four lanes of float64, eight
of float32), without contraction into FMA. A lane does what a one-frame transform does, so either build gives
``numpy.fft.rfft``'s and ``numpy.fft.irfft``'s results, and ``scipy.fft.rfft``'s in float32, bit for bit
(tests/test_frame_fft.py checks both builds). :data:`BUILD` says which one runs: the AVX2 build where the CPU and OS
run AVX2 code (x86-64 only), the baseline build elsewhere or where ``AUDIONORM_KERNELS=baseline`` asks for it, and
``"numpy"`` where no build is there or ``AUDIONORM_KERNELS=numpy`` asks for numpy.fft and scipy.fft themselves
(:mod:`~audionorm_lab.dsp.kernels`). Each build is checked against numpy.fft's bits when it loads
(:func:`gives_numpys_bits`); one that differs is not used. Built for aarch64 by Debian's cross compiler and run
under qemu, the baseline build's bits differ from numpy.fft's there (numpy's own aarch64 wheel gives x86-64's
bits), so on aarch64 the transforms are numpy.fft's; why they differ is not known yet.

On the 10-minute stereo mp3 the gate's transforms were a fifth of a job's CPU and the scan's single-precision ones
a twentieth (``perf record``). The forward transform here also applies the analysis window while it gathers the
frames, where numpy's path multiplied into a temporary first (the same products).
"""

from __future__ import annotations

import warnings

import numpy as np

from . import numpy_kernels
from .kernels import PurePathWarning, extension, requested_at_import

#: Frames the compiled transforms are checked on when they load: their bits against numpy.fft's and scipy.fft's.
SELF_CHECK_FRAMES, SELF_CHECK_N = 8, 1024


def gives_numpys_bits(build) -> bool:
    """Whether ``build`` gives numpy.fft's bits on pseudo-random frames, forward and inverse, in double precision
    (the single-precision path is the same code on floats, and a check against scipy.fft would import scipy on every
    run). A build whose bits differ (the aarch64 one, under qemu) is not used."""
    rng = np.random.default_rng(20261207)
    frames = rng.standard_normal((SELF_CHECK_FRAMES, SELF_CHECK_N))
    window = np.hanning(SELF_CHECK_N)
    ours = np.empty((SELF_CHECK_FRAMES, SELF_CHECK_N // 2 + 1), np.complex128)
    build.windowed_rfft(frames.reshape(-1), SELF_CHECK_N, 1, window, ours, SELF_CHECK_FRAMES, SELF_CHECK_N, False)
    theirs = np.fft.rfft(frames * window, axis=-1)
    back = np.empty_like(frames)
    build.irfft(theirs, back, SELF_CHECK_FRAMES, SELF_CHECK_N)
    return bool(np.array_equal(ours.view(np.uint8), theirs.view(np.uint8))
                and np.array_equal(back.view(np.uint8), np.fft.irfft(theirs, n=SELF_CHECK_N, axis=-1).view(np.uint8)))


#: The builds that loaded but were not used, as they do not give numpy.fft's bits here.
DIFFERING_BUILDS: list[str] = []


def _checked(build):
    if build is None or gives_numpys_bits(build):
        return build
    DIFFERING_BUILDS.append(build.__name__.rsplit(".", 1)[-1])
    warnings.warn(f"audionorm-lab: the compiled transforms ({build.__name__}) do not give numpy.fft's bits on this "
                  f"machine; running numpy.fft and scipy.fft instead (the same samples)", PurePathWarning, stacklevel=2)
    return None


#: The compiled builds that load here and give numpy.fft's bits (None where not).
BASELINE_BUILD = _checked(extension("_fft"))
AVX2_BUILD = (_checked(extension("_fft_avx2"))
              if BASELINE_BUILD is not None and BASELINE_BUILD.avx2_usable() and requested_at_import() == "auto"
              else None)
#: The compiled transforms that run (None: numpy.fft's and scipy.fft's).
COMPILED = AVX2_BUILD or BASELINE_BUILD
#: Which runs: ``"avx2"``, ``"baseline"`` or ``"numpy"``.
BUILD = "avx2" if AVX2_BUILD is not None else "baseline" if BASELINE_BUILD is not None else "numpy"


def windowed_rfft(frames: np.ndarray, window: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.fft.rfft(frames * window, axis=-1)`` bit for bit, in the window's precision: frames ``(count, n)`` (read
    where they lie, as a sliding window over one channel of interleaved ones is: overlapping rows, samples a frame's
    width apart), a float64 or float32 ``window`` ``(n,)``; complex128 or complex64
    ``(count, n // 2 + 1)``, written into ``out`` (C-contiguous) when it is given.

    In float32 the result is scipy.fft's (``scipy.fft.rfft(frames * window)``: numpy's own float32 transform
    rounds differently), bit for bit as well.
    """
    window = np.ascontiguousarray(window)
    if window.dtype not in (np.float32, np.float64):
        raise TypeError(f"the window is float32 or float64, not {window.dtype}")
    if frames.ndim != 2 or frames.shape[1] < 1:
        raise ValueError(f"frames (count, n) are needed, not {frames.shape}")
    count, n = frames.shape
    if window.shape != (n,):
        raise ValueError(f"the window must have the frames' {n} samples, not {window.shape}")
    out = _output(out, (count, n // 2 + 1), np.result_type(window.dtype, np.complex64))
    if count and COMPILED is None:
        numpy_kernels.windowed_rfft(frames, window, out)
    elif count:
        frames, row_stride, step = _strided(frames, window.dtype)
        COMPILED.windowed_rfft(frames, row_stride, step, window, out, count, n, window.dtype == np.float32)
    return out


def irfft(rows: np.ndarray, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """``np.fft.irfft(rows, n=n, axis=-1)`` bit for bit, for complex128 ``rows`` ``(count, n // 2 + 1)``: float64
    ``(count, n)``, written into ``out`` (C-contiguous) when it is given."""
    rows = np.ascontiguousarray(rows, np.complex128)
    if rows.ndim != 2 or rows.shape[1] != n // 2 + 1:
        raise ValueError(f"rows (count, {n // 2 + 1}) are needed for n = {n}, not {rows.shape}")
    out = _output(out, (len(rows), n), np.float64)
    if len(rows) and COMPILED is None:
        numpy_kernels.irfft(rows, n, out)
    elif len(rows):
        COMPILED.irfft(rows, out, len(rows), n)
    return out


def _strided(frames: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, int, int]:
    """The frames' buffer as a flat array of ``dtype``, the stride from one frame to the next and from one sample to
    the next (in samples): overlapping frames are passed where they lie, not copied. Frames of another type, or
    with strides that are not whole samples or are negative, are copied first."""
    frames = frames if frames.dtype == dtype else frames.astype(dtype)
    item = frames.itemsize
    if any(stride % item or stride < 0 for stride in frames.strides) or frames.strides[1] == 0:
        frames = np.ascontiguousarray(frames)
    row_stride, step = (stride // item for stride in frames.strides)
    span = (len(frames) - 1) * row_stride + (frames.shape[1] - 1) * step + 1
    return np.lib.stride_tricks.as_strided(frames, (span,), (item,), writeable=False), row_stride, step


def _output(out: np.ndarray | None, shape: tuple[int, int], dtype: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous {np.dtype(dtype)} {shape}, not {out.dtype} {out.shape}")
    return out
