"""Where the noise gate's STFT frames fall, and each stretch's spectral peaks.

The gate's output depends on the STFT frame grid, and, through noisereduce's 80 dB
floor (each bin's level is raised to 80 dB below that bin's loudest frame), on the
loudest frame of every bin across the whole signal the gate was handed. Two grids:

- ``"service"``: what ``noisereduce.reduce_noise(y, sr, stationary=True)`` does, so
  streaming gates as the service did (bit for bit but for the mask smoothing's last bits: noisereduce
  convolves by FFT, this gate sums exactly). The signal is gated in pieces of
  :data:`~audionorm_lab.dsp.noise_gate.NOISE_PROFILE_FRAMES` (600,000) frames; each piece is
  handed to the gate with :data:`SERVICE_PADDING_FRAMES` (30,000) frames of context on
  each side (zeros beyond the file's ends), so its STFT grid starts 30,000 frames
  before the piece and its 80 dB floor comes from that padded piece.
- ``"file"``: one grid from frame 0 and one floor for the whole file: what
  ``spectral_gating_stationary`` does when handed the whole file at once.

:func:`spectral_peaks` measures the loudest STFT magnitude of every bin, piece and
channel in one streamed pass (O(block) memory; a few kB per piece); the gate turns
them into the bins the floor opens (:meth:`~audionorm_lab.dsp.noise_gate.NoiseGate.open_bins`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import OptionError
from .floor_decision import FloorBounds, fold_exact
from .noise_gate import NOISE_PROFILE_FRAMES

#: noisereduce's ``reduce_noise`` default ``padding``: context on each side of a piece, frames.
SERVICE_PADDING_FRAMES = 30_000
GATE_GRIDS = ("service", "file")
#: Frames :func:`spectral_peaks` reads at a time by default.
SCAN_BLOCK_FRAMES = 1 << 15


@dataclass(frozen=True)
class GateGrid:
    """The stretches (pieces) a signal is gated in, and each one's STFT grid origin.

    Parameters
    ----------
    kind : {"service", "file"}
    hop_frames : int
        STFT hop, samples.
    piece_frames : int or None
        Samples per piece (``None``: the whole file is one piece).
    padding_frames : int
        Context each piece is gated with on each side, samples; its grid starts
        this far before the piece. Beyond the file's ends the context is zeros.
    """

    kind: str
    hop_frames: int
    piece_frames: int | None
    padding_frames: int

    @classmethod
    def named(cls, kind: str, hop_frames: int) -> "GateGrid":
        if kind == "service":
            return cls(kind, hop_frames, NOISE_PROFILE_FRAMES, SERVICE_PADDING_FRAMES)
        if kind == "file":
            return cls(kind, hop_frames, None, 0)
        raise OptionError(f"gate grid must be one of {', '.join(GATE_GRIDS)}, not {kind!r}")

    @property
    def zero_extended(self) -> bool:
        """Whether the signal continues as zeros beyond the file's ends (service), or stops there (file)."""
        return self.padding_frames > 0

    def piece_of(self, frame: int) -> int:
        """Index of the piece holding ``frame``."""
        return 0 if self.piece_frames is None else frame // self.piece_frames

    def origin(self, piece: int) -> int:
        """Frame the piece's STFT grid starts at (frame centres fall on ``origin + k * hop``)."""
        return 0 if self.piece_frames is None else piece * self.piece_frames - self.padding_frames

    def split(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """``[start, end)`` cut at piece boundaries: ``(piece, sub_start, sub_end)`` in order."""
        if self.piece_frames is None:
            return [(0, start, end)] if end > start else []
        parts, position = [], start
        while position < end:
            piece = self.piece_of(position)
            stop = min(end, (piece + 1) * self.piece_frames)
            parts.append((piece, position, stop))
            position = stop
        return parts

    def aligned_start(self, piece: int, earliest: int, latest: int) -> int:
        """A frame on the piece's grid for a gate block to start at: the first at or after
        ``earliest`` if that is not after ``latest``, else the last before ``earliest``."""
        step = self.hop_frames
        start = earliest + (self.origin(piece) - earliest) % step
        return start if start <= latest else start - step

    def extent(self, piece: int, total_frames: int) -> tuple[int, int]:
        """The stretch of signal the piece is gated with, ``[start, end)``: the STFT sees
        zeros outside it (and outside the file)."""
        if self.piece_frames is None:
            return 0, total_frames
        origin = self.origin(piece)
        if total_frames <= self.piece_frames:  # noisereduce gates a short file as one piece
            return origin, total_frames + self.padding_frames
        return origin, origin + self.piece_frames + 2 * self.padding_frames

    def centre_range(self, piece: int, total_frames: int, n_fft: int) -> tuple[int, int]:
        """First and one-past-last centre of the piece's STFT frames that hold any audio.

        scipy's STFT (``boundary="zeros"``) centres frames on ``origin + k * hop`` from
        the extent's start to its end. Frames wholly in zeros beyond the file's ends are
        left out: their magnitudes are 0 and cannot raise a bin's peak.
        """
        origin = self.origin(piece)
        start, end = self.extent(piece, total_frames)
        first = max(origin, -(n_fft // 2) + 1)
        first = origin + math.ceil((first - origin) / self.hop_frames) * self.hop_frames
        last = min(origin + (end - start) // self.hop_frames * self.hop_frames, total_frames + n_fft // 2 - 1)
        return first, last + 1


def spectral_peaks(read: Callable[[int], np.ndarray], channels: int, grid: GateGrid, n_fft: int,
                   block_frames: int = SCAN_BLOCK_FRAMES,
                   on_piece: Callable[[int, np.ndarray], None] | None = None,
                   fold: Callable[[np.ndarray, np.ndarray], None] = fold_exact) -> tuple[np.ndarray, int]:
    """Each piece's loudest STFT magnitude per channel and bin, in one streamed pass.

    The STFT is scipy's (periodic Hann window of ``n_fft``, hop ``grid.hop_frames``,
    magnitudes scaled by the window's sum), on each piece's own grid, over the
    piece's padded stretch with zeros beyond the file's ends.

    Parameters
    ----------
    read : callable
        ``read(n)`` returns up to ``n`` float32 ``(frames, channels)`` frames, fewer only at the end.
    block_frames : int
        Samples read at a time; memory is O(block_frames + n_fft).
    on_piece : callable, optional
        ``on_piece(piece, peaks)`` as soon as a piece's peaks are final, in piece order; the
        peaks are then handed over, not kept (and ``peaks`` below is None).
    fold : callable, optional
        ``fold(frames, peaks)`` folds a block of one channel's frames (float32 ``(count, n_fft)``)
        into that channel's peaks of the piece (float64 ``(n_fft // 2 + 1,)``, in place): by default
        each bin's loudest magnitude (:func:`~audionorm_lab.dsp.floor_decision.fold_exact`); a
        :meth:`~audionorm_lab.dsp.floor_decision.FloorBounds.fold` keeps only what decides the floor.

    Returns
    -------
    peaks : ndarray, (pieces, channels, n_fft // 2 + 1)
    total_frames : int
        Frames the stream held.
    """
    half, hop = n_fft // 2, grid.hop_frames
    peaks: list[np.ndarray] = []
    reported = 0  # pieces handed to on_piece
    next_centre: dict[int, int | None] = {}  # pieces still being scanned -> next frame centre (None: not begun)
    buffer = np.zeros((n_fft, channels), np.float32)  # zeros before frame 0
    buffer_start, total, ended = -n_fft, 0, False
    while not ended:
        block = np.asarray(read(block_frames), np.float32)
        ended = len(block) < block_frames
        total += len(block)
        tail = [np.zeros((n_fft, channels), np.float32)] if ended else []
        buffer = np.concatenate([buffer, block, *tail])
        buffer_end = buffer_start + len(buffer)
        known_total = total if ended else 1 << 62  # the length is known only at the end
        if ended:
            wanted = max(1, math.ceil(total / grid.piece_frames)) if grid.piece_frames else 1
        else:
            wanted = grid.piece_of(buffer_end + grid.padding_frames + n_fft) + 1
        for piece in range(len(peaks), wanted):
            peaks.append(np.zeros((channels, half + 1)))
            next_centre[piece] = None
        for piece in list(next_centre):
            first, stop = grid.centre_range(piece, known_total, n_fft)
            centre = first if next_centre[piece] is None else next_centre[piece]
            limit = min(stop, buffer_end - half + 1)
            if centre < limit:
                count = (limit - 1 - centre) // hop + 1
                offset = centre - half - buffer_start
                segment = buffer[offset: offset + (count - 1) * hop + n_fft]
                lo, hi = grid.extent(piece, known_total)
                seg_start = centre - half
                if seg_start < lo or seg_start + len(segment) > hi:  # zeros beyond the piece's stretch
                    segment = segment.copy()
                    segment[: max(0, lo - seg_start)] = 0
                    segment[max(0, hi - seg_start):] = 0
                frames = np.lib.stride_tricks.sliding_window_view(segment, n_fft, axis=0)[::hop]  # (count, ch, n_fft)
                for channel in range(channels):
                    fold(frames[:, channel], peaks[piece][channel])
                centre += count * hop
            next_centre[piece] = centre
            if centre >= stop:
                del next_centre[piece]
                reported = _report(reported, piece, peaks, next_centre, on_piece)
        pending = [c for c in next_centre.values() if c is not None]
        keep_from = min(pending + [buffer_end]) - half
        keep_from = max(buffer_start, min(keep_from, buffer_end - n_fft))
        buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
    _report(reported, wanted - 1, peaks, {}, on_piece)
    return (None if on_piece is not None else np.stack(peaks[:wanted])), total


def _report(reported: int, finished: int, peaks: list, pending: dict, on_piece) -> int:
    """Report pieces up to ``finished`` that no earlier piece still holds back; the count reported."""
    while reported <= finished and reported not in pending and reported < len(peaks):
        if on_piece is not None:
            on_piece(reported, peaks[reported])
            peaks[reported] = None  # handed over: not kept twice
        reported += 1
    return reported


class PeakScan:
    """:func:`spectral_peaks` on a thread of its own, over its own reader, ahead of the chain.

    The first ``head_frames`` frames (the noise clip) are kept for :meth:`head`, as the mean of the
    channels (all the noise profile uses of them: 2.4 MB whatever the width); each piece's
    peaks are handed out by :meth:`peaks` as soon as the scan has passed the piece, so
    the chain can gate piece ``p`` while the scan reads piece ``p + 1``. Once the gate's floor
    is known (:meth:`decide_with`), blocks are transformed in single precision where that
    decides the floor (:mod:`~audionorm_lab.dsp.floor_decision`). An error in the scan is raised,
    unchanged, in whoever waits on it.
    """

    def __init__(self, read: Callable[[int], np.ndarray], channels: int, grid: GateGrid, n_fft: int,
                 head_frames: int, block_frames: int = SCAN_BLOCK_FRAMES):
        self._read, self._channels, self._grid, self._n_fft = read, channels, grid, n_fft
        self._block_frames = block_frames
        self._head_frames = head_frames
        self._head: list[np.ndarray] = []
        self._head_kept = 0
        self._peaks: dict[int, np.ndarray] = {}
        self._summarize: Callable[[np.ndarray], np.ndarray] | None = None
        self._bounds: FloorBounds | None = None
        self.blocks = self.blocks_in_doubt = 0  # blocks folded with the bounds, and those transformed twice
        self._head_done = self._done = self._stopped = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="audionorm-peak-scan", daemon=True)

    def start(self) -> "PeakScan":
        self._thread.start()
        return self

    def _read_and_keep(self, frames: int) -> np.ndarray:
        if self._stopped:
            raise _Stopped
        block = self._read(frames)
        if self._head_kept < self._head_frames:
            # the mean of each frame's channels, as noisereduce takes it (row by row: the same bits as the
            # mean of the whole clip)
            self._head.append(block[: self._head_frames - self._head_kept].mean(axis=1))
            self._head_kept += len(self._head[-1])
        if not self._head_done and (self._head_kept >= self._head_frames or len(block) < frames):
            with self._ready:
                self._head_done = True
                self._ready.notify_all()
        return block

    def _fold(self, frames: np.ndarray, peaks: np.ndarray) -> None:
        bounds = self._bounds
        if bounds is None:
            fold_exact(frames, peaks)
            return
        self.blocks += 1
        self.blocks_in_doubt += bounds.fold(frames, peaks)

    def _piece_done(self, piece: int, peaks: np.ndarray) -> None:
        with self._ready:
            self._peaks[piece] = peaks if self._summarize is None else self._summarize(peaks)
            self._ready.notify_all()

    def _run(self) -> None:
        try:
            spectral_peaks(self._read_and_keep, self._channels, self._grid, self._n_fft, self._block_frames,
                           on_piece=self._piece_done, fold=self._fold)
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc
        with self._ready:
            self._head_done = self._done = True
            self._ready.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._ready:
            self._ready.wait_for(lambda: ready() or self._error is not None or self._done)
            if self._error is not None:
                raise self._error

    def head(self) -> np.ndarray:
        """The first ``head_frames`` frames (fewer if the stream is shorter), the mean of their channels:
        float32, ``(frames,)``."""
        self._wait(lambda: self._head_done)
        return np.concatenate(self._head) if self._head else np.zeros(0, np.float32)

    def summarize_with(self, summarize: Callable[[np.ndarray], np.ndarray]) -> None:
        """Keep ``summarize(peaks)`` of each piece instead of its peaks (those so far, and those to
        come): e.g. the gate's open bins packed into bits, 1/64 of the memory over a long file."""
        with self._ready:
            self._summarize = summarize
            self._peaks = {piece: summarize(peaks) for piece, peaks in self._peaks.items()}

    def decide_with(self, bounds: FloorBounds) -> None:
        """From the next block on, keep of each piece's peaks only what decides the floor of ``bounds``: the
        open bins they give stay those of the exact peaks, not the peaks themselves."""
        self._bounds = bounds

    def peaks(self, piece: int) -> np.ndarray | None:
        """The piece's peaks (or their summary, see :meth:`summarize_with`), once final; None for
        a piece past the stream's end."""
        self._wait(lambda: piece in self._peaks)
        return self._peaks.get(piece)

    def wait(self) -> None:
        """Wait for the whole scan (the sequential path: nothing else runs meanwhile)."""
        self._wait(lambda: self._done)

    def close(self) -> None:
        """Stop the scan (if it still runs) and wait for its thread."""
        self._stopped = True
        self._thread.join()


class _Stopped(Exception):
    """The scan was stopped by :meth:`PeakScan.close`."""
