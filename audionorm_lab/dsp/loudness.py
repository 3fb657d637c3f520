"""Streaming integrated loudness, ITU-R BS.1770-4 / EBU R128.

The meter is fed block by block and never holds the signal: K-weighting filters
carry their state across blocks, and only one weighted sum of squares per 100 ms
hop is kept, so memory is O(duration / 100 ms) floats (a few MB for 10 hours).
Gating blocks are 400 ms long with 75 % overlap, i.e. four consecutive hops.

pyloudnorm's ``Meter(rate).integrated_loudness(data)`` is the reference the tests
compare against; it needs the whole signal in memory.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from ..errors import SampleRateError
from .sections import weighted_power

#: The corner of BS.1770's pre-filter shelf (its analog prototype), Hz.
SHELF_HZ = 1681.9744509555319
#: The lowest rate whose Nyquist frequency lies above the shelf's corner, Hz. Below it the bilinear design of the
#: shelf is unstable and the meter says nothing true (+68 LUFS for a -15 LUFS tone at 3363 Hz, NaN at 2000 Hz).
LOWEST_MEASURABLE_RATE = math.ceil(2 * SHELF_HZ)
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
HOPS_PER_SECOND = 10  # 100 ms hops
HOPS_PER_BLOCK = 4  # 400 ms gating blocks, 75 % overlap


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting (pre-filter shelf + RLB high-pass) as second-order sections.

    Bilinear-transform designs from the analog prototypes of BS.1770 (the form
    used by Brecht De Man's implementation); at 48 kHz they reproduce the
    coefficients printed in BS.1770-4, Tables 1 and 2, and they hold at any rate.
    """
    # Stage 1: high shelf, about +4 dB above 1.5 kHz (head acoustics).
    gain_db, q, fc = 3.99984385397, 0.7071752369554193, SHELF_HZ
    k = math.tan(math.pi * fc / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    # Stage 2: RLB high-pass at about 38 Hz.
    q, fc = 0.5003270373253953, 38.13547087613982
    k = math.tan(math.pi * fc / sample_rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def measurable(sample_rate: int) -> bool:
    """Whether K-weighting can be built at ``sample_rate`` (Hz): at :data:`LOWEST_MEASURABLE_RATE` or above."""
    return sample_rate >= LOWEST_MEASURABLE_RATE


def check_measurable(sample_rate: int, name: str) -> None:
    """Refuse ``name``'s ``sample_rate`` (Hz) where its loudness cannot be measured (:class:`SampleRateError`, in one
    line): the gain depends on it."""
    if not measurable(sample_rate):
        raise SampleRateError(f"{name}: {sample_rate:,} Hz is too low to measure loudness: BS.1770's K-weighting needs its "
                              f"shelf ({SHELF_HZ:.0f} Hz) below the Nyquist frequency, so at least "
                              f"{LOWEST_MEASURABLE_RATE:,} Hz; without loudness normalization it processes")


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights G_i for common layouts.

    1-3 channels: 1.0 each (mono; L R; L R C). 4: L R Ls Rs. 5: L R C Ls Rs.
    6: 5.1 in WAV/SMPTE order (L R C LFE Ls Rs), the LFE excluded. Other counts:
    1.0 each (no layout is known to weight).
    """
    layouts = {4: [1.0, 1.0, 1.41, 1.41], 5: [1.0, 1.0, 1.0, 1.41, 1.41], 6: [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]}
    return np.array(layouts.get(channels, [1.0] * channels), dtype=np.float64)


def _hop_boundary(index, sample_rate: int):
    """First frame after hop ``index`` (rounded, so 11.025 kHz works too); ``index`` may be an array."""
    return ((index + 1) * sample_rate + HOPS_PER_SECOND // 2) // HOPS_PER_SECOND


def _hop_lengths(hops: int, sample_rate: int) -> np.ndarray:
    """Frames in each of the first ``hops`` hops (all equal unless the rate is not a multiple of 10 Hz):
    computed, not stored, so the meter keeps 8 bytes per 100 ms."""
    return np.diff(_hop_boundary(np.arange(hops, dtype=np.int64), sample_rate), prepend=0)


#: Frames filtered at a time by :meth:`LoudnessMeter.update` (bounds its float64 temporaries).
UPDATE_FRAMES = 1 << 16


class LoudnessMeter:
    """Integrated loudness of a stream, fed block by block.

    Parameters
    ----------
    sample_rate : int
        Hz.
    channels : int

    Examples
    --------
    >>> meter = LoudnessMeter(48000, 2)
    >>> for block in blocks:           # float (frames, channels), any block length
    ...     meter.update(block)
    >>> meter.integrated()             # LUFS; -inf for silence or under 400 ms

    Below :data:`LOWEST_MEASURABLE_RATE` it counts frames and measures nothing: :meth:`integrated` is NaN.
    """

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate, self.channels = sample_rate, channels
        self.measurable = measurable(sample_rate)
        self._sos = k_weighting_sos(sample_rate)
        self._weights = channel_weights(channels)
        self.reset()

    def reset(self) -> None:
        """Forget everything measured: start a new stream."""
        self._zi = np.zeros((self._sos.shape[0], 2, self.channels))
        self._hop_energy = array("d")  # sum over the hop of sum_i G_i * y_i^2 (each hop's length: _hop_lengths)
        self._pending = np.zeros(0)  # the weighted power of the hop under way, until it is complete
        self.frames = 0

    def update(self, block: np.ndarray) -> None:
        """Feed the next ``(frames, channels)`` block of the stream (float32, as the pipeline's
        blocks are; other types are rounded to it).

        K-weighted and summed over the channels in one loop (float64 state and arithmetic,
        :func:`~audionorm_lab.dsp.sections.weighted_power`), in sub-blocks of :data:`UPDATE_FRAMES`,
        so the temporaries stay about 0.5 MB whatever the block's length. A hop's energy is summed
        once it is complete, in one sum over its frames: so it does not depend on how the stream
        was cut into blocks, and a file streamed gets the gain of the same file measured whole.
        """
        if block.ndim == 1:
            block = block[:, None]
        if not self.measurable:
            self.frames += len(block)
            return
        for first in range(0, len(block), UPDATE_FRAMES):
            self._update(block[first: first + UPDATE_FRAMES])

    def _update(self, block: np.ndarray) -> None:
        power = weighted_power(self._sos, block, self._zi, self._weights)
        if len(self._pending):
            power = np.concatenate((self._pending, power))
        start = self.frames - len(self._pending)  # the frame power[0] belongs to
        self.frames += len(block)
        position = start
        while True:
            boundary = _hop_boundary(len(self._hop_energy), self.sample_rate)
            if boundary > self.frames:
                break
            self._hop_energy.append(float(power[position - start: boundary - start].sum()))
            position = boundary
        self._pending = power[position - start:].copy()

    def block_loudness(self) -> np.ndarray:
        """Loudness of each complete 400 ms gating block so far, LUFS (BS.1770-4 eq. 4)."""
        energy = np.frombuffer(self._hop_energy, dtype=np.float64)
        frames = _hop_lengths(len(energy), self.sample_rate)
        if len(energy) < HOPS_PER_BLOCK:
            return np.zeros(0)
        window = np.ones(HOPS_PER_BLOCK)
        mean_square = np.convolve(energy, window, "valid") / np.convolve(frames, window, "valid")
        with np.errstate(divide="ignore"):
            return -0.691 + 10.0 * np.log10(mean_square)

    def integrated(self, gain_db: float = 0.0) -> float:
        """Gated integrated loudness in LUFS (BS.1770-4 eqs. 5-7).

        With ``gain_db``, the loudness the same stream would measure after that gain:
        the absolute gate then admits or drops other blocks, so this is not simply
        the loudness plus ``gain_db`` for quiet material. ``-inf`` when no block
        passes the absolute gate (silence, or less than 400 ms); NaN at a rate it cannot measure.
        """
        if not self.measurable:
            return float("nan")
        loudness = self.block_loudness() + gain_db
        above_absolute = loudness[loudness > ABSOLUTE_GATE_LUFS]
        if len(above_absolute) == 0:
            return float("-inf")
        relative_gate = _mean_loudness(above_absolute) + RELATIVE_GATE_LU
        gated = above_absolute[above_absolute > relative_gate]
        return _mean_loudness(gated)

    def gain_to(self, target_lufs: float, tolerance_lu: float = 1e-4) -> float:
        """The gain in dB after which the stream measures ``target_lufs`` (0.0 for silence, or at a rate it cannot
        measure).

        Solved on the stored 100 ms energies, re-gating at each step, so quiet
        blocks that a gain lifts over the -70 LUFS gate are counted as they will be.
        """
        if not math.isfinite(self.integrated()):
            return 0.0  # silence: nothing to measure, no gain
        gain_db, best = 0.0, (math.inf, 0.0)
        for _ in range(50):  # loudness(gain) has slope 1 between gate jumps: a fixed-point step
            error = target_lufs - self.integrated(gain_db)
            best = min(best, (abs(error), gain_db))
            if abs(error) <= tolerance_lu:
                break
            gain_db += error
        return best[1]


def _mean_loudness(block_loudness: np.ndarray) -> float:
    """Loudness of the mean power of blocks given in LUFS."""
    mean_square = np.mean(10.0 ** ((block_loudness + 0.691) / 10.0))
    return float(-0.691 + 10.0 * np.log10(mean_square))
