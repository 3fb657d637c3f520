"""The noise gate as a stateful block processor: noisereduce's stationary spectral gating, on the service's
STFT grid or one from frame 0, its pieces spread over threads in order.

A stage as :mod:`audionorm_lab.dsp.stages` says: ``process(block)`` goes on from where the last call stopped, and
the pipeline supplies the context it asks for (``context_frames``, ``alignment_frames``).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import SampleRateError
from .chunks import array_reader, context_chunks
from .gate_kernels import apply_gate, column_max_abs
from .loudness import measurable
from .numpy_kernels import smooth_mask
from .geometry import GATE_PIECE_FRAMES
from .parallel import ordered_map
from .stft import istft, scipy_stft_float32, stft

#: noisereduce's default ``chunk_size``: with ``clip_noise_stationary`` its noise profile
#: is taken from this many frames at the start of the signal it is given.
NOISE_PROFILE_FRAMES = 600_000


def mask_smoothing(sample_rate: int, n_fft: int, hop: int, freq_mask_smooth_hz: float, time_mask_smooth_ms: float
                   ) -> tuple[int, int]:
    """noisereduce's mask-smoothing half-widths (n_grad_freq bins, n_grad_time STFT frames) at ``sample_rate`` (Hz),
    in its own floating-point order (another order rounds differently at rates such as 56,320 Hz).

    Raises
    ------
    SampleRateError
        Where either is below 1, as noisereduce raises its ``ValueError`` (below 5120 Hz or above 256 kHz with the
        defaults), in its words.
    """
    n_grad_freq = int(freq_mask_smooth_hz / (sample_rate / (n_fft / 2)))
    if n_grad_freq < 1:
        raise SampleRateError(f"{sample_rate} Hz is too high for the noise gate: freq_mask_smooth_hz needs to be at "
                              f"least {int(sample_rate / (n_fft / 2))}Hz (noisereduce's check); without the noise "
                              f"gate it processes")
    n_grad_time = int(time_mask_smooth_ms / ((hop / sample_rate) * 1000))
    if n_grad_time < 1:
        raise SampleRateError(f"{sample_rate} Hz is too low for the noise gate: time_mask_smooth_ms needs to be at "
                              f"least {int((hop / sample_rate) * 1000)}ms (noisereduce's check); without the noise "
                              f"gate{'' if measurable(sample_rate) else ' and loudness normalization'} it processes")
    return n_grad_freq, n_grad_time


class NoiseGate:
    """Stationary spectral gating (noisereduce), with a noise profile fixed up front.

    The profile is computed once, from ``noise_clip``, exactly as
    ``noisereduce.reduce_noise(..., stationary=True)`` computes it (mean of the
    channels, first :data:`NOISE_PROFILE_FRAMES` frames, per-frequency mean and
    standard deviation in dB); every block is then gated against that same profile.

    The gating follows noisereduce's ``spectral_gating_stationary`` step by step
    (float64 STFT, dB with an 80 dB floor below each bin's loudest frame, mask above
    the threshold, mask smoothing, inverse STFT), with changes that leave the result
    the same: the dB comparison is made on magnitudes (``|X| > 10 ** (thr / 20) - eps``),
    the 80 dB floor is given as the bins it opens (:meth:`open_bins`, from the loudest
    frames of the whole signal noisereduce would have been handed), the smoothing
    kernel, an outer product of two triangles, is applied as two 1-D convolutions
    instead of a 2-D FFT convolution, the mask is float32, and scipy's STFT runs
    without its per-frame loop (:mod:`audionorm_lab.dsp.stft`).

    Measured against ``noisereduce.reduce_noise(y, sr, stationary=True)`` itself, as
    the service called it, with the pipeline on the service's grid
    (``gate_grid="service"``): -145 dB of the signal's RMS on 5 to 31 s clips of one to
    three 600,000-frame pieces, mono and stereo, 44.1 and 48 kHz, in any chunk length
    (``tests/test_service_grid.py``). On one grid from frame 0 (``gate_grid="file"``)
    the same clips differ from ``reduce_noise`` by about -30 dB: the frames fall elsewhere.

    The gate is stateless between calls, but its output near a block's edges
    depends on audio outside the block (the STFT window and the mask smoothing).
    The pipeline therefore hands it blocks with ``context_frames`` of extra audio
    on each side and keeps only the middle; block starts must fall on the STFT hop
    grid (``alignment_frames``) so that frames line up with whole-file processing.

    Parameters
    ----------
    noise_clip : ndarray, (frames, channels) or (frames,)
        Audio to take the noise statistics from.
    sample_rate : int
        Hz.
    n_fft : int
        STFT length in samples (noisereduce's default, 1024).
    n_std_thresh : float
        Threshold above the noise mean, in standard deviations of the noise (dB).
    prop_decrease : float
        Fraction of the gated energy removed, 0..1.
    freq_mask_smooth_hz, time_mask_smooth_ms : float
        Mask smoothing, Hz and milliseconds (noisereduce's defaults).
    piece_seconds : float
        Longest piece gated at once, seconds (and at most
        :data:`~audionorm_lab.dsp.geometry.GATE_PIECE_FRAMES` frames). noisereduce's gating needs
        about 9 MB per second of audio per channel at 44.1 kHz; a longer block is gated
        piece by piece and channel by channel, each piece with ``context_frames`` of overlap,
        which gives the same output as one call, so memory stays bounded whatever the
        pipeline's chunk length, the channels and the rate.
    """

    #: noisereduce's default STFT length, samples.
    N_FFT = 1024

    def __init__(self, noise_clip: np.ndarray, sample_rate: int, n_fft: int = N_FFT, n_std_thresh: float = 1.5,
                 prop_decrease: float = 1.0, freq_mask_smooth_hz: float = 500, time_mask_smooth_ms: float = 50,
                 piece_seconds: float = 2.6):
        mean_db, std_db = noise_profile_db(noise_clip, n_fft)
        self.noise_threshold_db = mean_db + std_db * n_std_thresh
        # level_dB > threshold_dB  <=>  |X| > 10 ** (threshold_dB / 20) - eps (noisereduce's eps inside the log)
        self._threshold_magnitude = 10.0 ** (self.noise_threshold_db / 20.0) - float(_EPS)
        self.sample_rate, self.n_fft, self.prop_decrease = sample_rate, n_fft, prop_decrease
        self.hop_frames, self.context_frames, n_grad_freq, n_grad_time = self.geometry(
            sample_rate, n_fft, freq_mask_smooth_hz, time_mask_smooth_ms)
        self.alignment_frames = self.hop_frames
        smooth = not (n_grad_freq == 1 and n_grad_time == 1)
        # noisereduce's kernel, _smoothing_filter(n_grad_freq, n_grad_time), is the outer product of two
        # triangles 1, 2, .., n, .., 2, 1 (n = n_grad + 1) over its sum: see smooth_mask
        self._smoothing = (n_grad_freq + 1, n_grad_time + 1) if smooth else None
        piece = min(piece_seconds * sample_rate, GATE_PIECE_FRAMES)  # per channel: bounded whatever the rate
        self.piece_frames = max(self.hop_frames, int(math.ceil(piece / self.hop_frames)) * self.hop_frames)

    @staticmethod
    def geometry(sample_rate: int, n_fft: int = 1024, freq_mask_smooth_hz: float = 500,
                 time_mask_smooth_ms: float = 50) -> tuple[int, int, int, int]:
        """The gate's grid and reach, without a noise profile: (hop, context, n_grad_freq, n_grad_time).

        ``hop`` (frames) is the STFT hop, the grid block starts must fall on; ``context`` (frames,
        a multiple of ``hop``) is how far a sample's output depends on audio around it.
        ``n_grad_*`` are noisereduce's mask-smoothing half-widths in bins and STFT frames.

        Raises
        ------
        SampleRateError
            Where noisereduce refuses the rate (:func:`mask_smoothing`).
        """
        hop = n_fft // 4
        n_grad_freq, n_grad_time = mask_smoothing(sample_rate, n_fft, hop, freq_mask_smooth_hz, time_mask_smooth_ms)
        smoothing_frames = 0 if (n_grad_freq == 1 and n_grad_time == 1) else n_grad_time
        # A frame's mask depends on frames up to smoothing_frames away; each frame spans n_fft samples.
        needed = (smoothing_frames + 1) * hop + n_fft
        return hop, int(math.ceil(needed / hop) * hop), n_grad_freq, n_grad_time

    def reset(self) -> None:
        """Nothing to forget: the gate keeps no state between blocks."""

    def open_bins(self, peaks: np.ndarray) -> np.ndarray:
        """The bins noisereduce's 80 dB floor opens, given each bin's loudest STFT magnitude.

        noisereduce raises every level to 80 dB below its bin's loudest frame in the
        signal it gates; where that floor is above the threshold, the whole bin passes.

        Parameters
        ----------
        peaks : ndarray, (..., n_fft // 2 + 1)
            Loudest STFT magnitude (scipy's scaling) of each bin, e.g. from
            :func:`~audionorm_lab.dsp.gate_grid.spectral_peaks`.

        Returns
        -------
        ndarray of bool, the shape of ``peaks``
        """
        floor_db = 20.0 * np.log10(np.asarray(peaks, np.float64) + float(_EPS)) - float(_TOP_DB)
        return floor_db > self.noise_threshold_db

    def process(self, block: np.ndarray, open_bins: np.ndarray | None = None,
                keep: tuple[int, int] | None = None, workers: int = 1, out: np.ndarray | None = None
                ) -> np.ndarray:
        """Gate a block, in pieces of at most ``piece_frames`` with ``context_frames`` of context.

        ``open_bins`` (bool, ``(channels, n_fft // 2 + 1)``) are the bins the 80 dB floor
        opens in the signal this block belongs to (:meth:`open_bins`); None takes the
        floor from this block alone, as noisereduce would if handed only this block.
        ``keep = (start, end)`` returns only ``block[start:end]``'s output (frames), gating
        only what that needs: the rest of the block is context. The block must start on
        the STFT grid. Each channel's pieces are gated on ``workers`` threads, each piece of
        each channel on its own (the context makes them independent), so the memory is a
        few one-channel pieces whatever the block's length and width. ``out``, if given, is
        the float32 ``(end - start, channels)`` array the output is written into (and returned).
        """
        start, end = keep if keep is not None else (0, len(block))
        if open_bins is None:
            open_bins = self._own_open_bins(block)
        if out is None:
            out = np.empty((end - start, block.shape[1]), np.float32)
        elif out.shape != (end - start, block.shape[1]) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 {(end - start, block.shape[1])}, not {out.dtype} {out.shape}")
        first_piece = start - start % self.hop_frames
        # equal pieces of at most piece_frames (on the hop grid): no short, mostly-context last piece
        count = max(1, math.ceil((end - first_piece) / self.piece_frames))
        piece_frames = math.ceil((end - first_piece) / count / self.hop_frames) * self.hop_frames

        def gate(piece: tuple[int, int]) -> None:
            channel, piece_start = piece
            piece_end = min(piece_start + piece_frames, end)
            lo = max(0, piece_start - self.context_frames)
            hi = min(len(block), piece_end + self.context_frames)
            gated = self._gate_channel(block[lo:hi, channel], open_bins[channel])
            first = max(piece_start, start)
            out[first - start: piece_end - start, channel] = gated[first - lo: piece_end - lo]

        pieces = ((channel, piece_start) for channel in range(block.shape[1])
                  for piece_start in range(first_piece, end, piece_frames))
        for _ in ordered_map(gate, pieces, workers):
            pass
        return out

    def _own_open_bins(self, block: np.ndarray) -> np.ndarray:
        peaks = np.zeros((block.shape[1], self.n_fft // 2 + 1))
        for channel in range(block.shape[1]):
            for padded, _, _, _ in context_chunks(array_reader(block[:, channel:channel + 1]), 1,
                                                  self.piece_frames, self.context_frames):
                column_max_abs(stft(padded[:, 0], self.n_fft, self.hop_frames), peaks[channel])
        return self.open_bins(peaks)

    def _smoothed(self, mask: np.ndarray) -> np.ndarray:
        """The gain each STFT bin gets (float64, ``(frames, bins)``): the 0/1 mask after
        ``prop_decrease`` and noisereduce's smoothing."""
        if self._smoothing is None:
            counts, ones, norm = mask, 1, 1.0
        else:
            counts = smooth_mask(mask, *self._smoothing)
            norm = float(self._smoothing[0] ** 2 * self._smoothing[1] ** 2)
            ones = smooth_mask(np.ones_like(mask), *self._smoothing) if self.prop_decrease != 1.0 else None
        if self.prop_decrease == 1.0:
            return counts / norm
        # smoothing is linear: smooth(p * mask + (1 - p)) = p * smooth(mask) + (1 - p) * smooth(1)
        return (self.prop_decrease * counts + (1.0 - self.prop_decrease) * ones) / norm

    def _gate_channel(self, signal: np.ndarray, open_bins: np.ndarray) -> np.ndarray:
        """Gate one channel's piece ``(frames,)`` given its open bins ``(n_fft // 2 + 1,)``; float32 out. A piece
        shorter than ``n_fft`` is zero-padded to it and cut back.

        noisereduce's mask is ``max(level_dB, floor_dB) > threshold_dB``; with the floor's
        open bins known, that is ``|X| > 10 ** (threshold / 20) - eps`` or an open bin.
        Spectra are ``(frames, bins)`` here (:mod:`audionorm_lab.dsp.stft`).
        """
        frames = len(signal)
        out = np.zeros(frames, np.float32)
        if frames == 0:
            return out
        if frames < self.n_fft:
            signal = np.concatenate([signal, np.zeros(self.n_fft - frames, signal.dtype)])
        spectrum = stft(signal, self.n_fft, self.hop_frames)
        if self.prop_decrease == 1.0:  # the mask, its smoothing and the gains in C, in one pass or two
            widths = self._smoothing or (1, 1)
            live = apply_gate(spectrum, self._threshold_magnitude, open_bins, *widths,
                              float(widths[0] ** 2 * widths[1] ** 2))
        else:
            mask = np.abs(spectrum) > self._threshold_magnitude
            mask[:, open_bins] = True
            spectrum *= self._smoothed(mask)
            live = None
        gated = istft(spectrum, self.n_fft, self.hop_frames, live)
        kept = min(len(gated), frames)
        out[:kept] = gated[:kept]
        return out


_EPS = np.float32(np.finfo(np.float64).eps)  # noisereduce's floor inside the log
_TOP_DB = np.float32(80.0)


def noise_profile_db(noise_clip: np.ndarray, n_fft: int = 1024, piece_frames: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-frequency mean and standard deviation (dB) of a noise clip, as noisereduce computes them.

    noisereduce (stationary, ``clip_noise_stationary``): the channels' mean, its first
    :data:`NOISE_PROFILE_FRAMES` frames, an STFT (Hann, ``n_fft``, hop ``n_fft // 4``,
    zero-padded by ``n_fft // 2`` at both ends), magnitudes in dB with a floor 80 dB
    below each bin's maximum, then the mean and standard deviation over time. Done
    here in pieces of ``piece_frames`` STFT frames, three passes (maximum, mean,
    deviation), so the clip's whole spectrogram (tens of MB) is never held at once.

    Returns
    -------
    mean_db, std_db : ndarray, (n_fft // 2 + 1,)
    """
    clip = np.asarray(noise_clip, dtype=np.float32)
    mono = (clip.mean(axis=1) if clip.ndim == 2 else clip)[:NOISE_PROFILE_FRAMES]
    hop = n_fft // 4
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), mono, np.zeros(n_fft // 2, np.float32)])
    frames = 1 + (len(padded) - n_fft) // hop

    def pieces():
        for first in range(0, frames, piece_frames):
            last = min(frames, first + piece_frames)
            spectrum = scipy_stft_float32(padded[first * hop: (last - 1) * hop + n_fft], n_fft, hop)
            yield 20.0 * np.log10(np.abs(spectrum) + np.finfo(np.float64).eps)

    floor = np.max([piece.max(axis=1) for piece in pieces()], axis=0) - 80.0
    total = sum(np.maximum(piece, floor[:, None]).sum(axis=1) for piece in pieces())
    mean = total / frames
    spread = sum(((np.maximum(piece, floor[:, None]) - mean[:, None]) ** 2).sum(axis=1) for piece in pieces())
    return mean, np.sqrt(spread / frames)
