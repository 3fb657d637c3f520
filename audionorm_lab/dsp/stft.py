"""scipy.signal's STFT and inverse STFT, as noisereduce calls them, without their per-frame Python loop.

``stft(x)`` equals ``scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, nfft=n_fft,
padded=False)[2].T`` (Hann window, ``boundary="zeros"``, magnitudes scaled by the window's
sum), and ``istft(X)`` equals ``scipy.signal.istft(X.T, ...)[1]``, to float64 rounding.
Frames are rows here (``(frames, bins)``), so the FFT runs over contiguous memory, and
the overlap-add is ``n_fft // hop`` vector additions instead of one per frame: scipy's
``istft`` loop was a fifth of the noise gate's time. The double-precision transforms are
:mod:`~audionorm_lab.dsp.frame_fft`'s (numpy's, to the bit, four frames per vector where the CPU
has AVX2): the forward one windows the frames as it reads them, so no windowed copy is held,
and the inverse one works :data:`BATCH_FRAMES` at a time into one buffer.

``scipy_stft_float32(x)`` is the call noisereduce makes for its noise profile, on float32
audio, to the bit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .frame_fft import irfft, windowed_rfft
from .gate_kernels import overlap_add


@lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """scipy's periodic Hann window of ``n_fft`` samples (float64, read-only): ``get_window("hann", n_fft)``,
    computed as scipy computes it (a cosine sum over ``n_fft + 1`` points, the last dropped), to the bit."""
    angles = np.linspace(-np.pi, np.pi, n_fft + 1)
    window = np.zeros(n_fft + 1)
    for order, weight in enumerate((0.5, 0.5)):
        window += weight * np.cos(order * angles)
    window = window[:n_fft]
    window.flags.writeable = False
    return window


#: Frames inverse-transformed at a time: the inverse transforms' buffer stays about 1 MB.
BATCH_FRAMES = 128


def frame_spectra(frames: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Spectra of frames ``(count, n_fft)``, scaled as scipy's ``stft`` scales them, in float64;
    written into ``out`` (complex128, ``(count, n_fft // 2 + 1)``) when it is given.

    ``np.fft.rfft(frames * window, axis=-1)``'s bits (the same pocketfft as scipy.fft, the same results),
    from :func:`~audionorm_lab.dsp.frame_fft.windowed_rfft`: the window applied as the frames are read, the
    spectra written in place.
    """
    return windowed_rfft(frames, analysis_window(frames.shape[-1]), out)


@lru_cache(maxsize=8)
def analysis_window(n_fft: int, dtype: type = np.float64) -> np.ndarray:
    """The Hann window over its sum: windowing and scipy's scaling in one multiplication."""
    window = (hann(n_fft) / hann(n_fft).sum()).astype(dtype)
    window.flags.writeable = False
    return window


def single_precision_spectra(frames: np.ndarray) -> np.ndarray:
    """Spectra of float32 frames ``(count, n_fft)``, scaled as :func:`frame_spectra` scales them, in single
    precision: complex64 ``(count, n_fft // 2 + 1)``, C-contiguous. Each bin lies within about 1e-7 of the frame's
    spectrum's L2 norm of :func:`frame_spectra`'s (see :mod:`~audionorm_lab.dsp.floor_decision` for the bound used).

    scipy.fft's float32 transform, bit for bit (numpy's own float32 FFT is slower than its float64 one), from
    :func:`~audionorm_lab.dsp.frame_fft.windowed_rfft`: eight frames at once where the CPU has AVX2.
    """
    return windowed_rfft(frames, analysis_window(frames.shape[-1], np.float32))


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """STFT of a 1-D signal, ``(frames, n_fft // 2 + 1)`` complex128, frames centred on ``k * hop``.

    Computed in float64 whatever ``x``'s type, as noisereduce computes it: in float32 the
    FFT's rounding swamps nearly empty bins (above an mp3's low-pass) and flips their mask
    (-91 dB from ``reduce_noise`` on a 60 s mp3, against -145 dB in float64).
    """
    half = n_fft // 2
    padded = np.zeros(len(x) + 2 * half, np.float64)
    padded[half: half + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return frame_spectra(frames)


def scipy_stft_float32(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, nfft=n_fft, boundary=None,
    padded=False)[2]`` of a float32 signal, to the bit: complex64, ``(bins, frames)``.

    scipy's steps: for float32 input its output type is complex64, so the window is cast to it, and
    the frames times the window (the real part of a complex64 product with a zero imaginary part: the
    float32 product itself) go through scipy.fft's float32 transform
    (:func:`~audionorm_lab.dsp.frame_fft.windowed_rfft` gives its bits; numpy's rounds differently in
    float32); then the window-sum scaling and scipy's layout.
    """
    window = hann(n_fft).astype(np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float32), n_fft)[::hop]
    spectrum = windowed_rfft(frames, window.real)
    spectrum *= np.sqrt(1.0 / window.sum() ** 2)
    return np.moveaxis(spectrum.astype(np.complex64), -1, -2)


def istft(spectra: np.ndarray, n_fft: int, hop: int, live: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), ``(len(spectra) - 1) * hop`` samples.

    ``live`` (bool, one per frame) says which frames may be other than zeros: the others are not
    transformed (a zero spectrum's inverse is zeros, which add nothing). The overlap-add runs in C
    (:func:`~audionorm_lab.dsp.gate_kernels.overlap_add`), in the order of scipy's loop and numpy's, bit for bit.
    """
    window = hann(n_fft)
    count = len(spectra)
    overlap = n_fft // hop
    if n_fft % hop or count == 0:
        raise ValueError(f"hop {hop} must divide n_fft {n_fft}, and there must be frames")
    out = np.zeros((count + overlap - 1, hop))
    synthesis = _synthesis_window(n_fft)
    inverse = np.empty((min(count, BATCH_FRAMES), n_fft))
    for first in range(0, count, BATCH_FRAMES):
        batch = spectra[first: first + BATCH_FRAMES]
        rows = np.arange(first, first + len(batch))
        if live is not None and not live[first: first + len(batch)].all():
            kept = live[first: first + len(batch)]
            if not kept.any():
                continue
            batch, rows = batch[kept], rows[kept]
        overlap_add(irfft(batch, n_fft, inverse[:len(batch)]), synthesis, out, rows)
    edge = overlap - 1  # rows that fewer than ``overlap`` frames cover, at each end
    head, period, tail = _inverse_norm_rows(n_fft, hop)
    if len(out) >= 2 * edge + 1:
        out[:edge] *= head
        out[edge: len(out) - edge] *= period
        out[len(out) - edge:] *= tail
    else:
        out *= _inverse_norm(window, overlap, hop, count)
    half = n_fft // 2
    return out.reshape(-1)[half: -half]


def _inverse_norm(window: np.ndarray, overlap: int, hop: int, count: int) -> np.ndarray:
    """1 / (the squared windows overlapped as ``count`` frames overlap), rows of ``hop``; as scipy's
    ``istft`` divides by it (1 where it is ~0)."""
    norm = np.zeros((count + overlap - 1, hop))
    squared = (window ** 2).reshape(overlap, hop)
    for part in range(overlap):
        norm[part: part + count] += squared[part]
    return 1.0 / np.where(norm > 1e-10, norm, 1.0)


@lru_cache(maxsize=8)
def _synthesis_window(n_fft: int) -> np.ndarray:
    """The window each inverse transform is weighted by before it is added: Hann times its sum (scipy's)."""
    window = hann(n_fft) * hann(n_fft).sum()
    window.flags.writeable = False
    return window


@lru_cache(maxsize=8)
def _inverse_norm_rows(n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inverse norm's first rows, its row for every fully overlapped stretch, and its last rows:
    the same for any number of frames, so nothing of the signal's length is cached."""
    overlap = n_fft // hop
    full = _inverse_norm(hann(n_fft), overlap, hop, 2 * overlap)
    return full[: overlap - 1], full[overlap - 1], full[len(full) - (overlap - 1):]
