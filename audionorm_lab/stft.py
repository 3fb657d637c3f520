"""scipy.signal's STFT and inverse STFT, as noisereduce calls them, without their per-frame Python loop.

``stft(x)`` equals ``scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, nfft=n_fft,
padded=False)[2].T`` (Hann window, ``boundary="zeros"``, magnitudes scaled by the window's
sum), and ``istft(X)`` equals ``scipy.signal.istft(X.T, ...)[1]``, to float64 rounding.
Frames are rows here (``(frames, bins)``), so the FFT runs over contiguous memory, and
the overlap-add is ``n_fft // hop`` vector additions instead of one per frame: scipy's
``istft`` loop was a fifth of the noise gate's time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import signal


@lru_cache(maxsize=8)
def hann(n_fft: int) -> np.ndarray:
    """scipy's periodic Hann window of ``n_fft`` samples (float64, read-only)."""
    window = signal.get_window("hann", n_fft)
    window.flags.writeable = False
    return window


def frame_spectra(frames: np.ndarray) -> np.ndarray:
    """Spectra of windowed frames ``(..., n_fft)``, scaled as scipy's ``stft`` scales them."""
    window = hann(frames.shape[-1])
    spectra = scipy.fft.rfft(frames * window, axis=-1)
    spectra *= 1.0 / window.sum()
    return spectra


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """STFT of a 1-D signal, ``(frames, n_fft // 2 + 1)`` complex128, frames centred on ``k * hop``."""
    half = n_fft // 2
    padded = np.zeros(len(x) + 2 * half)
    padded[half: half + len(x)] = x
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    return frame_spectra(frames)


def istft(spectra: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), ``(len(spectra) - 1) * hop`` samples."""
    window = hann(n_fft)
    count = len(spectra)
    overlap = n_fft // hop
    if n_fft % hop or count == 0:
        raise ValueError(f"hop {hop} must divide n_fft {n_fft}, and there must be frames")
    frames = scipy.fft.irfft(spectra, n=n_fft, axis=-1)
    frames *= window.sum()
    frames *= window
    out = np.zeros((count + overlap - 1, hop))
    norm = np.zeros((count + overlap - 1, hop))
    frames = frames.reshape(count, overlap, hop)
    squared = (window ** 2).reshape(overlap, hop)
    for part in range(overlap):
        out[part: part + count] += frames[:, part]
        norm[part: part + count] += squared[part]
    half = n_fft // 2
    out, norm = out.reshape(-1)[half: -half], norm.reshape(-1)[half: -half]
    out /= np.where(norm > 1e-10, norm, 1.0)
    return out
