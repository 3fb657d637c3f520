"""The chunk scheduler: the chain over a stream in chunks, once, on every core, in constant memory.

Pass 0 (profile) reads the head of the file for the noise profile and, over the
whole stream, each grid piece's loudest STFT frame per bin, which sets noisereduce's
80 dB floor (:mod:`audionorm_lab.gate_grid`): a few kB per 600,000 frames. It runs on
a thread of its own, ahead of pass 1, which waits for each piece; it also measures the
input's loudness. With more than one worker the file is decoded once: the scan reads
it, and pass 1 reads the same blocks a piece behind (:mod:`audionorm_lab.shared_source`).

Pass 1 (measure) runs the chain (noise gate, high-pass, voice band) chunk by chunk:
each chunk is gated on a thread of its own, its pieces spread over ``workers`` threads
(:mod:`audionorm_lab.parallel`), while the chunk before it goes through the IIR stages
and meters, in order. It keeps the summaries
(the meter's 100 ms energies, the peak) and the chain's pre-gain output: in the
output itself when it is a float WAV, or in an anonymous spill file beside it
(:mod:`audionorm_lab.spill`). Pass 2 (apply) reads that back and applies the gain
the summaries call for, while another thread meters what is written. With
``spill="never"``, or no room for a spill, pass 2 runs the chain again instead (the
same samples, no disk).

Each chunk is read with ``overlap_seconds`` of audio on each side; the gate keeps only
the chunk's own frames (overlap-save), the IIR stages carry their state from chunk to
chunk. The gate works on the grid of ``options.gate_grid``: by default
``reduce_noise``'s own 600,000-frame pieces, so the output is the service's whatever
``chunk_seconds`` is (a chunk that spans a piece boundary is gated in two parts).
Memory is O(chunk) samples (two chunks, and a few gate pieces per worker) plus
O(duration / 100 ms) floats.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np

from .allocator import release_free_memory, tune_malloc
from .chunks import context_chunks
from .errors import EmptyInputError, TooLongError
from .gate_grid import GateGrid, PeakScan
from .geometry import (
    BLOCK_SAMPLES,
    GATE_PIECE_FRAMES,
    SCAN_BLOCK_SAMPLES,
    SHARED_LEAD_SAMPLES,
    capped_frames,
    check_width,
    frames_of,
)
from .io import AtomicSink, AudioInfo, check_output_path, open_source, probe
from .loudness import LoudnessMeter
from .options import NormalizeOptions
from .parallel import Aside, available_cores, check_workers, ordered_map
from .shared_source import SharedSource
from .spill import Spill, spill_room
from .stages import NOISE_PROFILE_FRAMES, Gain, IIRFilter, NoiseGate, highpass, limit_gain, voice_band

#: ``progress(pass_name, frames_done, frames_expected)``; frames_expected may be None.
ProgressCallback = Callable[[str, int, "int | None"], None]

PASS_NAMES = ("profile", "measure", "apply")


@dataclass
class NormalizeReport:
    """What a normalization did, in the units its names say.

    ``loudness_in_lufs`` is the input as it is; ``loudness_before_gain_lufs`` the
    chain's output before the gain (what the gain is computed from);
    ``loudness_out_lufs`` is measured on the samples written. ``notes`` says, in
    words, anything repaired, cut short, clamped or skipped. ``gain_path`` says how the
    gain reached the output: ``"in place"`` (float WAV output rewritten), ``"spill file"``,
    ``"chain twice"`` (no room or ``spill="never"``: ``chain_runs`` is then 2) or
    ``"no gain"``; ``workers`` is the number of threads that gated chunks; ``input_decodes``
    how many times the input was read from its start (1 when the scan and the chain share
    one decode).
    """

    input_path: str
    output_path: str | None
    strategy: str
    decoder: str
    sample_rate: int
    channels: int
    input_frames_expected: int | None
    input_frames: int
    output_frames: int
    input_seconds: float
    output_seconds: float
    truncated: bool
    loudness_in_lufs: float
    loudness_before_gain_lufs: float | None
    loudness_out_lufs: float
    target_lufs: float | None
    gain_db: float
    gain_limited_by_ceiling: bool
    peak_before_gain_dbfs: float
    output_peak_dbfs: float
    chunks: int
    chunk_frames: int
    chunk_starts_frames: list[int]
    overlap_frames: int
    nonfinite_samples_repaired: int
    stages: list[str]
    pass_seconds: dict[str, float]
    options: dict
    notes: list[str] = field(default_factory=list)
    chain_runs: int = 1
    gain_path: str = "no gain"
    workers: int = 1
    input_decodes: int = 1

    def to_dict(self) -> dict:
        """JSON-ready: ``-inf`` loudness becomes None."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


class ArraySource:
    """A source over an array already in memory, for whole-array processing and tests."""

    def __init__(self, samples: np.ndarray, sample_rate: int):
        samples = np.asarray(samples, dtype=np.float32)
        self.samples = samples[:, None] if samples.ndim == 1 else samples
        self.info = AudioInfo(Path("<array>"), sample_rate, self.samples.shape[1], len(self.samples), "array", "array")
        self.frames_read = 0

    def read(self, frames: int) -> np.ndarray:
        block = self.samples[self.frames_read: self.frames_read + frames]
        self.frames_read += len(block)
        return block

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ArraySink:
    """An output in memory, for whole-array processing: the gain is applied in place."""

    folder = None
    rewritable = True

    def __init__(self, frames: int, channels: int):
        self.samples = np.empty((frames, channels), np.float32)
        self.frames_written = 0

    def write(self, block: np.ndarray) -> None:
        self.samples[self.frames_written: self.frames_written + len(block)] = block
        self.frames_written += len(block)

    def rewrite(self, transform, block_frames: int = 1 << 16) -> None:
        for start in range(0, self.frames_written, block_frames):
            block = self.samples[start: min(start + block_frames, self.frames_written)]
            block[:] = transform(block)


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0 else float("-inf")


class _Chain:
    """The stages one normalization uses, built for one input's rate and channel count."""

    def __init__(self, info: AudioInfo, options: NormalizeOptions):
        rate, channels = info.sample_rate, info.channels
        self.options, self.sample_rate, self.channels = options, rate, channels
        self.notes: list[str] = []
        self.filters: list[IIRFilter] = []
        if options.highpass_hz is not None:
            self.filters.append(highpass(options.highpass_hz, rate, channels))
        if options.voice_band_hz is not None:
            band, note = voice_band(*options.voice_band_hz, rate, channels)
            self.filters.append(band)
            if note:
                self.notes.append(note)
        # The IIR stages run as one cascade: one pass over the samples, whose sections the CPU
        # overlaps (:mod:`audionorm_lab.sections`), instead of one pass per stage.
        self.cascade = IIRFilter(np.vstack([f.sos for f in self.filters]), channels,
                                 " + ".join(f.name for f in self.filters)) if self.filters else None
        # Geometry of the noise gate (the same for every profile at this rate), and of every buffer, in samples
        # (audionorm_lab.geometry): the same bytes whatever the input's width.
        self.gate: NoiseGate | None = None
        self.peak_scan: PeakScan | None = None  # each grid piece's open bins (the 80 dB floor)
        self.denoise = options.denoise
        alignment, self.gate_context_frames = NoiseGate.geometry(rate)[:2] if self.denoise else (1, 0)
        self.grid = GateGrid.named(options.gate_grid, alignment) if self.denoise else None
        # On the service grid a gate block starts on its piece's grid, up to one hop inside the overlap.
        self.gate_reach_frames = self.gate_context_frames + (alignment if self.denoise and self.grid.zero_extended
                                                             else 0)
        self.block_frames = frames_of(BLOCK_SAMPLES, channels)
        self.scan_block_frames = frames_of(SCAN_BLOCK_SAMPLES, channels, minimum=NoiseGate.N_FFT)
        if math.isinf(options.chunk_seconds):
            self.chunk_frames = (info.frames or 2**40) + alignment
        else:
            self.chunk_frames = max(alignment, capped_frames(options.chunk_seconds, rate, channels, alignment,
                                                             self.gate_reach_frames))
        self.overlap_frames = capped_frames(options.overlap_seconds, rate, channels, alignment,
                                            self.gate_reach_frames) if self.denoise else 0
        self.padded_samples = (self.chunk_frames + 2 * self.overlap_frames) * channels
        if self.denoise and self.overlap_frames < self.gate_reach_frames:
            self.notes.append(
                f"overlap {options.overlap_seconds:g} s is shorter than the noise gate's context "
                f"({self.gate_reach_frames / rate:.3f} s): chunk boundaries will differ from whole-file output")

    def stage_names(self) -> list[str]:
        names = ["noise gate (stationary spectral gating)"] if self.denoise else []
        return names + [f.name for f in self.filters]

    def reset(self) -> None:
        if self.cascade is not None:
            self.cascade.reset()

    def filter(self, x: np.ndarray) -> np.ndarray:
        """The IIR stages, in order, as one cascade: sequential in time (its state carries over)."""
        return x if self.cascade is None else self.cascade.process(x)

    def gate_chunk(self, chunk: "_Chunk", workers: int = 1) -> np.ndarray:
        """The noise gate's output for a chunk's core (the core itself without a gate).

        Depends on the chunk alone (and the fixed profile and open bins), so a chunk may be
        gated on another thread while the one before is filtered; its pieces are gated on
        ``workers`` threads.
        """
        if self.gate is None:
            return chunk.padded[chunk.lead: chunk.lead + chunk.core]
        return self._gate(chunk.padded, chunk.lead, chunk.core, chunk.start, chunk.last, workers)

    def _gate(self, padded: np.ndarray, lead: int, core: int, start: int, last: bool, workers: int
              ) -> np.ndarray:
        """Noise-gate the core on the grid's pieces.

        Each part of the core that lies in one piece is gated in a block that starts on
        that piece's grid and carries the piece's open bins. On the service grid the
        signal goes on as zeros beyond the file's ends, as in ``reduce_noise``: at least
        the gate's reach of them, whatever the overlap, since the file's ends are not
        chunk boundaries. A piece boundary inside a chunk gets the gate's reach of
        context from the chunk, for the same reason.
        """
        grid, overlap, reach = self.grid, self.overlap_frames, self.gate_reach_frames
        trail = len(padded) - lead - core
        if grid.zero_extended:
            zeros_before = max(0, (max(overlap, reach) if start == 0 else overlap) - lead) if start == lead else 0
            zeros_after = max(0, (max(overlap, reach) if last else overlap) - trail)
            if zeros_before or zeros_after:
                padded = np.concatenate([np.zeros((zeros_before, self.channels), np.float32), padded,
                                         np.zeros((zeros_after, self.channels), np.float32)])
                lead, trail = lead + zeros_before, trail + zeros_after
        block_start, core_end = start - lead, start + core
        block_end = core_end + trail
        out = np.empty((core, self.channels), np.float32)  # each part gated into its place: no concatenation
        for piece, part_start, part_end in grid.split(start, core_end):
            left = lead if part_start == start else max(lead, reach)
            right = trail if part_end == core_end else max(trail, reach)
            first = grid.aligned_start(piece, max(block_start, part_start - left), part_start)
            end = min(block_end, part_end + right)
            block = padded[max(first, block_start) - block_start: end - block_start]
            if first < block_start:  # no context left of an unaligned start: zeros up to the grid
                block = np.concatenate([np.zeros((block_start - first, self.channels), np.float32), block])
            self.gate.process(block, self._open_bins(piece), keep=(part_start - first, part_end - first),
                              workers=workers, out=out[part_start - start: part_end - start])
        return out

    def _open_bins(self, piece: int) -> np.ndarray | None:
        """The bins the 80 dB floor opens in the piece (waits for the scan to pass it); None: the
        gate takes the floor from the block itself (the per-chunk profile of the naive fix)."""
        if self.peak_scan is None:
            return None
        packed = self.peak_scan.peaks(piece)
        return None if packed is None else np.unpackbits(packed, axis=-1, count=NoiseGate.N_FFT // 2 + 1
                                                         ).astype(bool)

    def packed_open_bins(self, peaks: np.ndarray) -> np.ndarray:
        """A piece's open bins, 1 bit per bin (what the scan keeps of each piece: 130 bytes for
        stereo, 200 kB for 163 minutes)."""
        return np.packbits(self.gate.open_bins(peaks), axis=-1)


class _Reader:
    """Reads a source, replacing NaN and +-inf samples with 0 and counting them, and stopping a decode
    that runs past ``max_seconds`` (its header may have declared less)."""

    def __init__(self, source, pass_name: str, progress: ProgressCallback | None, max_seconds: float | None = None):
        self.source, self.pass_name, self.progress = source, pass_name, progress
        rate = source.info.sample_rate
        self.limit_frames = None if max_seconds is None else int(math.floor(max_seconds * rate))
        self.repaired = 0

    def __call__(self, frames: int) -> np.ndarray:
        if self.limit_frames is not None:
            frames = min(frames, self.limit_frames + 1 - self.source.frames_read)  # one frame past it tells
        block = self.source.read(frames)
        if self.limit_frames is not None and self.source.frames_read > self.limit_frames:
            info = self.source.info
            declared = f"its header declared {info.duration_seconds:.1f} s" if info.frames else "no declared length"
            raise TooLongError(f"{info.path}: decoding passed the {self.limit_frames / info.sample_rate:g} s limit "
                               f"({declared}): stopped there")
        bad = ~np.isfinite(block)
        if bad.any():
            self.repaired += int(bad.sum())
            block = np.where(bad, np.float32(0.0), block)
        if self.progress is not None:
            self.progress(self.pass_name, self.source.frames_read, self.source.info.frames)
        return block


class _Chunk(NamedTuple):
    padded: np.ndarray
    lead: int
    core: int
    last: bool
    start: int  # frame of the stream the core starts at

    @property
    def raw(self) -> np.ndarray:
        return self.padded[self.lead: self.lead + self.core]


def _chunks(reader, chain: _Chain) -> Iterator[_Chunk]:
    position = 0
    for padded, lead, core, last in context_chunks(reader, chain.channels, chain.chunk_frames, chain.overlap_frames,
                                                   read_frames=chain.block_frames):
        yield _Chunk(padded, lead, core, last, position)
        position += core


#: A chunk (with its overlap) of at most this many samples is gated while the one before it is filtered and
#: written (twice the default's at stereo 48 kHz); a larger one, on a wide input, waits for it.
OVERLAPPED_CHUNK_SAMPLES = 1_200_000

#: Audio between two hand-backs of the heap's free memory (:func:`~audionorm_lab.allocator.release_free_memory`), seconds.
RELEASE_EVERY_SECONDS = 60

def _run(open_pass, chain: _Chain, pass_name: str, progress, consume, workers: int, raw_needed: bool = True
         ) -> tuple[int, list[int], int]:
    """One pass of the chain over the stream: its output goes to ``consume(raw, out)``, in order.

    Each chunk is gated on a thread of its own, its pieces on ``workers`` threads, while the
    chunk before it goes through the IIR stages, meters and writes here, in order,
    ``chain.block_frames`` at a time (:data:`~audionorm_lab.geometry.BLOCK_SAMPLES`: their temporaries
    stay under 2 MB whatever the chunk length and the width). Once a chunk
    is gated only its output is kept (and its input, when ``raw_needed``; else ``raw`` is
    None). Returns (frames read, the frame each chunk starts at, non-finite samples repaired).
    """
    chain.reset()
    starts = []

    def gate(chunk: _Chunk) -> tuple[int, np.ndarray | None, np.ndarray]:
        out = chain.gate_chunk(chunk, workers)
        return chunk.start, chunk.raw if raw_needed else None, out

    with open_pass() as source:
        reader = _Reader(source, pass_name, progress, chain.options.max_seconds)
        if chain.denoise and chain.options.noise_profile == "chunk":
            gated = (gate(_own_profile(chain, chunk)) for chunk in _chunks(reader, chain))
        else:
            # one chunk gated (its pieces on the workers) while the one before is filtered and written; a wide
            # input's chunks (mostly the gate's context) are gated and written in turn: one chunk less held
            ahead = 1 if workers > 1 and chain.padded_samples <= OVERLAPPED_CHUNK_SAMPLES else 0
            gated = ordered_map(gate, _chunks(reader, chain), workers=1, ahead=ahead)
        released_at = 0
        for start, raw, out in gated:
            starts.append(start)
            if start - released_at >= RELEASE_EVERY_SECONDS * chain.sample_rate:
                release_free_memory()
                released_at = start
            for first in range(0, len(out), chain.block_frames):
                part = slice(first, first + chain.block_frames)
                consume(None if raw is None else raw[part], chain.filter(out[part]))
            del raw, out  # before the next chunk is read
        return source.frames_read, starts, reader.repaired


def _own_profile(chain: _Chain, chunk: _Chunk) -> _Chunk:
    """The naive fix: each chunk's noise profile from the chunk itself (a short last chunk keeps
    the previous one's); in order, since each chunk replaces the chain's gate."""
    if chain.gate is None or chunk.core >= NoiseGate.N_FFT:
        chain.gate = NoiseGate(chunk.raw, chain.sample_rate)
    return chunk


class _Peak:
    def __init__(self):
        self.value = 0.0

    def update(self, block: np.ndarray) -> None:
        if len(block):
            self.value = max(self.value, float(np.max(np.abs(block))))


def _gain_path(options: NormalizeOptions, info: AudioInfo, output) -> tuple[str, str | None]:
    """How the gain reaches the output: ``"in place"`` (rewrite the output), ``"spill file"`` (keep
    the chain's output in a spill), or ``"chain twice"``; and a note when a spill was not possible."""
    if options.spill == "never":
        return "chain twice", None
    if output.rewritable:
        return "in place", None
    if info.frames is None:
        return "chain twice", "input length unknown, so no spill: the chain ran twice"
    spill_bytes = info.frames * info.channels * 4
    room, free = spill_room(output.folder, spill_bytes, output.estimated_bytes(info.frames))
    if not room:
        return "chain twice", (f"{free / 1e6:.0f} MB free in {output.folder}, too little for a "
                               f"{spill_bytes / 1e6:.0f} MB spill: the chain ran twice")
    return "spill file", None


def _first_then(first: Callable, then: Callable) -> Callable:
    """A function that returns ``first()`` when first called, ``then()`` after."""
    called = False

    def open_():
        nonlocal called
        if called:
            return then()
        called = True
        return first()

    return open_


def _lead_frames(chain: _Chain) -> int:
    """How far the scan may read ahead of the measure pass, frames: the pass gates a chunk once the
    scan has passed the last piece the chunk's core reaches into (plus the piece's padding and a scan
    block), and has read that chunk and its overlap by then; so one piece and some margin."""
    return chain.grid.piece_frames + 2 * chain.grid.padding_frames + 4 * chain.scan_block_frames + NoiseGate.N_FFT


def _share_decode(chain: _Chain, workers: int) -> bool:
    """Whether the scan and the chain read one decode: with more than one worker (the chain follows the scan
    on another core), on a grid of pieces, and when the lead between them holds at most
    :data:`~audionorm_lab.geometry.SHARED_LEAD_SAMPLES` (a wider input is decoded twice instead)."""
    return (workers > 1 and chain.grid.piece_frames is not None
            and _lead_frames(chain) * chain.channels <= SHARED_LEAD_SAMPLES)


def _stop_scan(chain: _Chain, source) -> None:
    if isinstance(source, SharedSource):
        source.stop()  # a scan waiting for the measure pass to catch up wakes and stops
    if chain.peak_scan is not None:
        chain.peak_scan.close()
    if source is not None:
        source.close()


def _normalize(open_input, info: AudioInfo, options: NormalizeOptions, output, progress) -> NormalizeReport:
    """The passes, over any source that ``open_input()`` opens afresh each time, into ``output``
    (an :class:`~audionorm_lab.io.AtomicSink` or an :class:`ArraySink`)."""
    decodes = 0

    def open_pass():
        nonlocal decodes
        decodes += 1
        return open_input()

    chain = _Chain(info, options)
    rate, channels = info.sample_rate, info.channels
    workers = check_workers(options.workers)
    if workers > available_cores():
        chain.notes.append(f"{workers} workers asked for, {available_cores()} used: the cores this process may "
                           f"use (more threads than cores add nothing)")
        workers = available_cores()
    seconds = dict.fromkeys(PASS_NAMES, 0.0)
    meter_in = LoudnessMeter(rate, channels)
    meter_before = LoudnessMeter(rate, channels)
    meter_out = LoudnessMeter(rate, channels)
    peak_before, peak_out = _Peak(), _Peak()

    tune_malloc()  # before the scan's and the workers' threads
    gain_db, limited, loudness_before, chain_runs, spill, scan_source = 0.0, False, None, 1, None, None
    open_chain = open_pass  # opens a source for each run of the chain
    try:  # from here on the scan's thread is stopped, and the spill closed, whatever happens
        if chain.denoise and options.noise_profile == "file":
            # Pass 0 runs on its own thread and reader, ahead of the chain: the noise clip first,
            # then each grid piece's spectral peaks, which the gate waits for piece by piece.
            started = time.perf_counter()
            scan_source = open_pass()
            if _share_decode(chain, workers):
                # one decode: the scan leads, the measure pass reads the same blocks after it
                scan_source = SharedSource(scan_source, _lead_frames(chain))
                open_chain = _first_then(scan_source.follower, open_pass)
            scan_reader = _Reader(scan_source, "profile", progress, options.max_seconds)

            def read_and_measure(frames: int) -> np.ndarray:  # the input's loudness, on the scan's thread
                block = scan_reader(frames)
                meter_in.update(block)
                return block

            chain.peak_scan = PeakScan(read_and_measure, channels, chain.grid, NoiseGate.N_FFT,
                                       NOISE_PROFILE_FRAMES, block_frames=chain.scan_block_frames).start()
            clip = chain.peak_scan.head()
            if len(clip) >= NoiseGate.N_FFT:
                chain.gate = NoiseGate(clip, rate)
                chain.peak_scan.summarize_with(chain.packed_open_bins)  # keep 1 bit per bin, not 8 bytes
            else:
                chain.denoise = False
                chain.notes.append(f"input shorter than one STFT window ({len(clip)} frames): "
                                   f"noise reduction skipped")
            del clip  # 600,000 samples: not to be held through the passes
            if workers == 1:
                chain.peak_scan.wait()  # the sequential path: the scan first, then the chain
            seconds["profile"] = time.perf_counter() - started

        measure_input = chain.peak_scan is None  # else the scan measures the input

        def finish(block):
            meter_out.update(block)
            peak_out.update(block)

        path, note = _gain_path(options, info, output) if options.normalize_loudness else ("no gain", None)
        if note:
            chain.notes.append(note)
        spill = Spill(output.folder, channels) if path == "spill file" else None
        if options.normalize_loudness:
            started = time.perf_counter()
            keep = {"in place": output.write, "spill file": spill.write if spill else None}.get(path)

            def measure(raw, out):
                if measure_input:
                    meter_in.update(raw)
                meter_before.update(out)
                peak_before.update(out)
                if keep is not None:
                    keep(out)

            frames, starts, repaired = _run(open_chain, chain, "measure", progress, measure, workers,
                                            raw_needed=measure_input)
            if frames == 0:
                raise EmptyInputError(f"{info.path}: decodes to no audio frames")
            loudness_before = meter_before.integrated()
            gain_db, limited = limit_gain(meter_before.gain_to(options.target_lufs), peak_before.value,
                                          options.ceiling_dbfs)
            if not math.isfinite(loudness_before):
                chain.notes.append("input is silent (or under 400 ms): loudness is -inf, no gain applied")
            elif limited:
                chain.notes.append(
                    f"peak ceiling {options.ceiling_dbfs:g} dBFS limited the gain to {gain_db:.2f} dB: "
                    f"output is below the {options.target_lufs:g} LUFS target")
            seconds["measure"] = time.perf_counter() - started

        started = time.perf_counter()
        gain = Gain(gain_db)
        # the output is metered on another core while it is written
        with Aside(finish, threaded=workers > 1) as measure_output:
            def write(block):
                measure_output.put(block)
                return block

            if path == "in place":
                output.rewrite(lambda block: write(gain.process(block)), chain.block_frames)
            elif path == "spill file":
                for block in spill.blocks(chain.block_frames):
                    output.write(write(gain.process(block)))
            else:
                def apply(raw, out):
                    if not options.normalize_loudness:
                        if measure_input:
                            meter_in.update(raw)
                        peak_before.update(out)
                    output.write(write(gain.process(out)))

                frames, starts, repaired = _run(open_chain, chain, "apply", progress, apply, workers,
                                                raw_needed=measure_input and not options.normalize_loudness)
                chain_runs = 2 if options.normalize_loudness else 1
        if frames == 0:
            raise EmptyInputError(f"{info.path}: decodes to no audio frames")
        seconds["apply"] = time.perf_counter() - started
        if chain.peak_scan is not None:
            chain.peak_scan.wait()  # its loudness meter has seen the whole input
    finally:
        if spill is not None:
            spill.close()
        _stop_scan(chain, scan_source)

    expected = info.frames
    truncated = expected is not None and expected - frames > max(4096, expected // 500)
    if truncated:
        chain.notes.append(f"input ended early: {frames} of {expected} declared frames decoded "
                           f"({frames / rate:.2f} of {expected / rate:.2f} s); processed what was there")
    if repaired:
        chain.notes.append(f"{repaired} NaN/inf samples replaced with 0")
    return NormalizeReport(
        input_path=str(info.path), output_path=None, strategy="streaming", decoder=info.decoder, sample_rate=rate, channels=channels,
        input_frames_expected=expected, input_frames=frames, output_frames=frames,
        input_seconds=frames / rate, output_seconds=frames / rate, truncated=truncated,
        loudness_in_lufs=meter_in.integrated(), loudness_before_gain_lufs=loudness_before,
        loudness_out_lufs=meter_out.integrated(),
        target_lufs=options.target_lufs if options.normalize_loudness else None,
        gain_db=gain_db, gain_limited_by_ceiling=limited, peak_before_gain_dbfs=_db(peak_before.value),
        output_peak_dbfs=_db(peak_out.value), chunks=len(starts), chunk_frames=min(chain.chunk_frames, frames),
        chunk_starts_frames=starts,
        overlap_frames=chain.overlap_frames, nonfinite_samples_repaired=repaired, stages=chain.stage_names(),
        pass_seconds=seconds, options=options.to_dict(), notes=chain.notes,
        chain_runs=chain_runs, gain_path=path, workers=workers, input_decodes=decodes,
    )


#: The streaming core's memory that no buffer size accounts for (allocator slack, threads, the meters' and the
#: scan's summaries, temporaries), bytes: set from measurements (stereo 44.1 kHz: about 62 MB above the import
#: floor in all, 16 channels at 192 kHz: about 51 MB).
UNSIZED_BYTES = 40 * 10**6
#: Bytes of temporaries a noise gate piece needs per frame (float64 signal, complex spectra, mask, gains).
GATE_BYTES_PER_FRAME = 64


def working_set_bytes(info: AudioInfo, options: NormalizeOptions) -> int:
    """An upper estimate of what streaming ``info`` with ``options`` holds above the import floor, bytes, from
    the buffers its geometry sizes (:mod:`~audionorm_lab.geometry`): three chunks with their overlap, a gate
    piece per worker, the scan's lead when the decode is shared, the blocks. A service checks it against its
    memory limit before anything decodes."""
    chain = _Chain(info, options)
    workers = min(check_workers(options.workers), available_cores())
    padded = chain.chunk_frames + 2 * chain.overlap_frames
    piece = min(padded, NoiseGate.geometry(info.sample_rate)[1] * 2 + GATE_PIECE_FRAMES) if chain.denoise else 0
    lead = _lead_frames(chain) if chain.denoise and _share_decode(chain, workers) else 0
    chunks_held = 3 if workers > 1 and chain.padded_samples <= OVERLAPPED_CHUNK_SAMPLES else 2
    return int(UNSIZED_BYTES + chunks_held * padded * info.channels * 4 + workers * piece * GATE_BYTES_PER_FRAME
               + lead * info.channels * 4 + 8 * BLOCK_SAMPLES * 8)


def check_duration(info: AudioInfo, max_seconds: float | None) -> None:
    """Refuse an input whose header declares more than ``max_seconds`` (None: no limit), before it decodes.

    Raises
    ------
    TooLongError
    """
    if max_seconds is not None and info.duration_seconds is not None and info.duration_seconds > max_seconds:
        raise TooLongError(f"{info.path}: {info.duration_seconds:.1f} s long, over the {max_seconds:g} s limit")


def _options(options: NormalizeOptions | None, overrides: dict) -> NormalizeOptions:
    return replace(options or NormalizeOptions(), **overrides)


def normalize_file(src: str | os.PathLike, dst: str | os.PathLike, options: NormalizeOptions | None = None,
                   progress: ProgressCallback | None = None, **overrides) -> NormalizeReport:
    """Normalize ``src`` into ``dst`` in constant memory; return what was done.

    Parameters
    ----------
    src, dst : path-like
        Input (any format libsndfile or ffmpeg decodes) and output (.wav, .flac, .ogg, .mp3).
        ``dst`` is written under a temporary name and renamed when complete.
    options : NormalizeOptions, optional
    progress : callable, optional
        ``progress(pass_name, frames_done, frames_expected)``.
    **overrides
        Fields of :class:`NormalizeOptions`, e.g. ``chunk_seconds=30``.

    Raises
    ------
    AudionormError
        Bad input, output path or option; no output file is left behind.
    """
    options = _options(options, overrides)
    info = probe(src)
    check_width(info.path, info.channels, info.sample_rate)
    check_duration(info, options.max_seconds)
    dst = check_output_path(dst, src)
    with AtomicSink(dst, info.sample_rate, info.channels, options.output_subtype, info.frames) as sink:
        report = _normalize(lambda: open_source(info), info, options, sink, progress)
    report.output_path = str(dst)
    return report


def normalize_array(samples: np.ndarray, sample_rate: int, options: NormalizeOptions | None = None,
                    **overrides) -> tuple[np.ndarray, NormalizeReport]:
    """Normalize an in-memory ``(frames, channels)`` array with the same chain and passes.

    With ``chunk_seconds=math.inf`` the whole array is one chunk: this is whole-file
    processing, the reference the chunked output is compared with.
    """
    options = _options(options, overrides)
    source = ArraySource(samples, sample_rate)
    if len(source.samples) == 0:
        raise EmptyInputError("<array>: no audio frames")
    sink = ArraySink(len(source.samples), source.samples.shape[1])
    report = _normalize(lambda: ArraySource(source.samples, sample_rate), source.info, options, sink, None)
    out = sink.samples
    return out, report
