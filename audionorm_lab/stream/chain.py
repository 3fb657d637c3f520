"""The chain: what one normalization does to its samples, chunk by chunk, built for its plan.

The noise gate, on the plan's grid (each grid piece's open bins from the scan), then the IIR
stages as one cascade, whose state carries from chunk to chunk. Chunks come with the plan's
overlap on each side (:func:`chunks`); the gate keeps only a chunk's own frames (overlap-save).
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple

import numpy as np

from ..dsp.chunks import context_chunks
from .plan import Plan
from ..dsp.noise_gate import NoiseGate


class Chunk(NamedTuple):
    """A chunk of the stream: its core ``padded[lead:lead + core]`` with context on each side."""

    padded: np.ndarray
    lead: int
    core: int
    last: bool  # it ends the stream
    start: int  # frame of the stream the core starts at

    @property
    def raw(self) -> np.ndarray:
        return self.padded[self.lead: self.lead + self.core]


def chunks(read: Callable[[int], np.ndarray], plan: Plan) -> Iterator[Chunk]:
    """The stream ``read`` gives, cut into the plan's chunks, each with its overlap."""
    position = 0
    for padded, lead, core, last in context_chunks(read, plan.channels, plan.chunk_frames, plan.overlap_frames,
                                                   read_frames=plan.block_frames):
        yield Chunk(padded, lead, core, last, position)
        position += core


class Chain:
    """The gate and the cascade for one plan.

    ``gate`` is the noise gate once its profile is known (None: no gate, or none yet); ``open_bins`` gives a
    grid piece's open bins, 1 bit per bin, or None to take the 80 dB floor from each block itself (the
    per-chunk profile of the naive fix).
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.cascade = plan.sections.cascade(plan.channels)
        self.gate: NoiseGate | None = None
        self.open_bins: Callable[[int], np.ndarray | None] = lambda piece: None

    def stage_names(self) -> list[str]:
        return (["noise gate (stationary spectral gating)"] if self.gate is not None else []) + list(
            self.plan.sections.names)

    def reset(self) -> None:
        """The cascade from rest: a new run over the stream."""
        if self.cascade is not None:
            self.cascade.reset()

    def filter(self, block: np.ndarray) -> np.ndarray:
        """The IIR stages, in order, as one cascade: sequential in time (its state carries over)."""
        return block if self.cascade is None else self.cascade.process(block)

    def profile_from(self, chunk: Chunk) -> Chunk:
        """The naive fix: the gate's noise profile from the chunk itself (a short last chunk keeps the one
        before's); in order, since each chunk replaces the gate."""
        if self.gate is None or chunk.core >= NoiseGate.N_FFT:
            self.gate = NoiseGate(chunk.raw, self.plan.sample_rate)
        return chunk

    def gate_chunk(self, chunk: Chunk) -> np.ndarray:
        """The noise gate's output for a chunk's core (the core itself without a gate).

        Depends on the chunk alone (and the fixed profile and open bins), so a chunk may be gated on another
        thread while the one before is filtered; its pieces are gated on the plan's gate threads.
        """
        if self.gate is None:
            return chunk.raw
        return self._gate(chunk.padded, chunk.lead, chunk.core, chunk.start, chunk.last)

    def _zero_extended(self, padded: np.ndarray, lead: int, trail: int, start: int, last: bool
                       ) -> tuple[np.ndarray, int, int]:
        """On the service grid the signal goes on as zeros beyond the file's ends, as in ``reduce_noise``: at
        least the gate's reach of them, whatever the overlap, since the file's ends are not chunk boundaries."""
        overlap, reach, channels = self.plan.overlap_frames, self.plan.gate_reach_frames, self.plan.channels
        before = max(0, (max(overlap, reach) if start == 0 else overlap) - lead) if start == lead else 0
        after = max(0, (max(overlap, reach) if last else overlap) - trail)
        if before or after:
            padded = np.concatenate([np.zeros((before, channels), np.float32), padded,
                                     np.zeros((after, channels), np.float32)])
        return padded, lead + before, trail + after

    def _gate(self, padded: np.ndarray, lead: int, core: int, start: int, last: bool) -> np.ndarray:
        """Noise-gate the core on the grid's pieces.

        Each part of the core that lies in one piece is gated in a block that starts on that piece's grid and
        carries the piece's open bins. A piece boundary inside a chunk gets the gate's reach of context from
        the chunk, as a file's end does.
        """
        grid, reach, channels = self.plan.grid, self.plan.gate_reach_frames, self.plan.channels
        trail = len(padded) - lead - core
        if grid.zero_extended:
            padded, lead, trail = self._zero_extended(padded, lead, trail, start, last)
        block_start, core_end = start - lead, start + core
        block_end = core_end + trail
        out = np.empty((core, channels), np.float32)  # each part gated into its place: no concatenation
        for piece, part_start, part_end in grid.split(start, core_end):
            left = lead if part_start == start else max(lead, reach)
            right = trail if part_end == core_end else max(trail, reach)
            first = grid.aligned_start(piece, max(block_start, part_start - left), part_start)
            end = min(block_end, part_end + right)
            block = padded[max(first, block_start) - block_start: end - block_start]
            if first < block_start:  # no context left of an unaligned start: zeros up to the grid
                block = np.concatenate([np.zeros((block_start - first, channels), np.float32), block])
            self.gate.process(block, self._unpacked(piece), keep=(part_start - first, part_end - first),
                              workers=self.plan.gate_threads, out=out[part_start - start: part_end - start])
        return out

    def _unpacked(self, piece: int) -> np.ndarray | None:
        packed = self.open_bins(piece)
        return None if packed is None else np.unpackbits(packed, axis=-1, count=NoiseGate.N_FFT // 2 + 1
                                                         ).astype(bool)

    def packed_open_bins(self, peaks: np.ndarray) -> np.ndarray:
        """A piece's open bins from its peaks, 1 bit per bin (what the scan keeps of each piece: 130 bytes for
        stereo, 200 kB for 163 minutes)."""
        return np.packbits(self.gate.open_bins(peaks), axis=-1)
