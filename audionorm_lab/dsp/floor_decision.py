"""The noise gate's 80 dB floor decided from single-precision spectra: the open bins the exact peaks give.

Of each grid piece's peaks (:func:`~audionorm_lab.dsp.gate_grid.spectral_peaks`) the gate uses only which bins
the floor opens (:meth:`~audionorm_lab.dsp.noise_gate.NoiseGate.open_bins`): whether some frame's magnitude in the
piece passes a level of that bin's. Taking every frame's spectrum in double precision for that cost the scan
as much CPU as the gate's own forward transforms. :class:`FloorBounds` transforms a block of frames in single
precision (:func:`~audionorm_lab.dsp.stft.single_precision_spectra`, about a third of the time) and decides each
bin where the single-precision magnitudes decide beyond doubt; a block that leaves a bin in doubt is
transformed again in double precision and its exact peaks taken (:func:`~audionorm_lab.dsp.gate_grid.fold_exact`).
The open bins, hence the output, are those of the exact peaks, bit for bit.

Beyond doubt means outside a margin of :func:`single_precision_error` times the frame's whole-spectrum L2
norm ``||Y||`` (from its own bins, by Parseval), plus 1e-30 for underflow:

- the window's products, rounded to float32 (the frame is float32 already, the window is rounded once),
  are each within 2u of the exact product (u = 2**-24), so their transform is within 2u ``||y||_1`` <=
  2u ``||Y||`` of the exact one in every bin;
- a Cooley-Tukey FFT is within ``log2(n_fft) * eta * ||Y||`` of the exact transform in L2, hence in each
  bin, with eta about 6.7u for accurate twiddle factors (Higham, *Accuracy and Stability of Numerical
  Algorithms*, 2nd ed., Theorem 24.2): 67u, or 4e-6 of ``||Y||``, at 1024 points;
- the double-precision spectrum the exact peaks come from is within about 1e-15 of ``||Y||``.

The margin is 5 times their sum (2.1e-5 of ``||Y||`` at 1024 points); measured on speech the largest
difference is 1.2e-7 of ``||Y||``. A frame that is not finite in single precision (an overflow) leaves every
bin in doubt. The bin's levels are checked against :meth:`~audionorm_lab.dsp.noise_gate.NoiseGate.open_bins` itself
(:meth:`FloorBounds.of`), so the floor's own rounding near its level cannot differ either; the decision takes
the floor to rise with the peak, as a logarithm does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .gate_kernels import column_max_abs, decide_bins
from .stft import frame_spectra, single_precision_spectra

#: Relative margins tried around a bin's level (the floor's turning point), smallest first.
LEVEL_MARGINS = (1e-9, 1e-6, 1e-3)
#: How many times the error bound's sum the margin is.
SAFETY = 5.0


def single_precision_error(n_fft: int) -> float:
    """How far a single-precision magnitude may lie from the double-precision one, as a fraction of the
    frame's whole-spectrum L2 norm (see the module): 5 x (2u + 6.7u log2(n_fft) + 1e-15)."""
    unit = 2.0 ** -24
    return SAFETY * (2 * unit + 6.7 * unit * math.log2(n_fft) + 1e-15)


def fold_exact(frames: np.ndarray, peaks: np.ndarray) -> None:
    """Raise ``peaks`` (float64 ``(n_fft // 2 + 1,)``) to the double-precision magnitudes of ``frames``'
    spectra (float32 ``(count, n_fft)``) where they are larger: each bin's loudest magnitude, exactly."""
    column_max_abs(frame_spectra(frames), peaks)


@dataclass(frozen=True)
class FloorBounds:
    """Per bin, the peak magnitude at or below which the floor surely leaves the bin closed (``closed_below``)
    and at or above which it surely opens it (``open_above``), float64 ``(n_fft // 2 + 1,)``; a bin whose
    levels could not be checked has 0 and +inf, and is always taken exactly."""

    closed_below: np.ndarray
    open_above: np.ndarray
    n_fft: int

    @classmethod
    def of(cls, gate) -> FloorBounds:
        """The bounds of a :class:`~audionorm_lab.dsp.noise_gate.NoiseGate`'s floor, checked against its ``open_bins``."""
        thresholds = np.asarray(gate.noise_threshold_db, np.float64)
        level = 10.0 ** ((thresholds + 80.0) / 20.0) - np.finfo(np.float64).eps  # where open_bins turns
        below, above = np.zeros_like(level), np.full_like(level, np.inf)
        unchecked = np.ones(len(level), bool)
        for margin in LEVEL_MARGINS:
            low, high = level * (1.0 - margin), level * (1.0 + margin)
            good = unchecked & (low > 0) & ~gate.open_bins(low) & gate.open_bins(high)
            below[good], above[good] = low[good], high[good]
            unchecked &= ~good
        return cls(below, above, gate.n_fft)

    @property
    def error(self) -> float:
        return single_precision_error(self.n_fft)

    def fold(self, frames: np.ndarray, peaks: np.ndarray) -> bool:
        """Fold a block of one channel's frames (float32 ``(count, n_fft)``) into its piece's ``peaks`` (float64
        ``(n_fft // 2 + 1,)``, in place) so that they open the bins the exact peaks would: a bin some frame surely
        opens is raised to ``open_above``; if any bin is left in doubt, the block's exact peaks are taken. True when
        the block was transformed twice."""
        if decide_bins(single_precision_spectra(frames), self.closed_below, self.open_above, self.error, peaks):
            fold_exact(frames, peaks)
            return True
        return False
