"""The plan: everything a normalization decides before its first sample is read.

From the input's probe, the options and the machine: how many threads gate, whether the
peak scan and the chain share one decode, how the gain reaches the output (in place, a spill
file, or the chain run twice), and the geometry of every buffer (chunks, their overlap, blocks,
the scan's reads), in samples, so memory is bounded in the input's width as in its length
(:mod:`~audionorm_lab.dsp.geometry`). The passes (:mod:`~audionorm_lab.stream.passes`) carry it out; the
report says which plan ran (:meth:`Plan.describe`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..dsp.gate_grid import GateGrid
from ..errors import SampleRateError
from ..dsp.kernels import describe as describe_kernels
from ..dsp.loudness import LOWEST_MEASURABLE_RATE, check_measurable, measurable
from ..dsp.geometry import BLOCK_SAMPLES, SCAN_BLOCK_SAMPLES, SHARED_LEAD_SAMPLES, capped_frames, frames_of
from ..media.probe import AudioInfo
from .options import NormalizeOptions
from ..dsp.parallel import available_cores, check_workers
from .spill import spill_room
from ..dsp.noise_gate import NoiseGate
from ..dsp.stages import ChainSections, chain_sections

#: A chunk (with its overlap) of at most this many samples is gated while the one before it is filtered and
#: written (twice the default's at stereo 48 kHz); a larger one, on a wide input, waits for it.
OVERLAPPED_CHUNK_SAMPLES = 1_200_000
#: Threads that keep a core busy beside the noise gate's: the scan (decode, peaks, the input's meter) and the
#: chain's own (filters, meters, writes). The gate's pieces get the rest of the workers, at least one thread:
#: on 2 cores, 2 more gate threads than cores cost 7.9 s of CPU and 4.9 s of wall per 10-minute job against
#: 7.4 s and 4.7 s with one (medians of 6, ``/usr/bin/time``).
THREADS_BESIDE_THE_GATE = 2


@dataclass(frozen=True)
class Plan:
    """What one normalization will do; frames are samples per channel.

    ``scan``: pass 0 runs (the noise gate with one noise profile for the file: the noise clip and each
    grid piece's open bins are read ahead of the chain). ``shared_decode``: the scan and the chain read
    one decode, the scan leading by :attr:`lead_frames`. ``gate_ahead``: a chunk is gated while the one
    before it is filtered and written. ``gain_path``: ``"in place"`` (a float WAV output rewritten),
    ``"spill file"``, ``"chain twice"`` or ``"no gain"``; None when no output was given to decide it.
    ``gate_threads``: the threads a chunk's gate pieces run on (:data:`THREADS_BESIDE_THE_GATE`).
    """

    sample_rate: int
    channels: int
    workers: int
    sections: ChainSections
    denoise: bool
    noise_profile: str
    grid: GateGrid | None
    hop_frames: int
    gate_reach_frames: int
    chunk_frames: int
    overlap_frames: int
    block_frames: int
    scan_block_frames: int
    scan: bool
    shared_decode: bool
    gate_ahead: bool
    gain_path: str | None
    max_seconds: float | None
    notes: tuple[str, ...]
    gate_threads: int = 1
    kernels: str = ""  # which kernels run (audionorm_lab.dsp.kernels.describe)

    @property
    def padded_samples(self) -> int:
        """Samples a chunk holds with its overlap."""
        return (self.chunk_frames + 2 * self.overlap_frames) * self.channels

    @property
    def lead_frames(self) -> int:
        """How far the scan may read ahead of the measure pass, frames: the pass gates a chunk once the scan
        has passed the last piece the chunk's core reaches into (plus the piece's padding and a scan block),
        and has read that chunk and its overlap by then; so one piece and some margin."""
        if self.grid is None or self.grid.piece_frames is None:
            return 0
        return (self.grid.piece_frames + 2 * self.grid.padding_frames + 4 * self.scan_block_frames
                + NoiseGate.N_FFT)

    def describe(self) -> dict:
        """The plan as the report gives it."""
        return {"workers": self.workers, "gain_path": self.gain_path,
                "decode": ("one, shared by the scan and the chain" if self.shared_decode
                           else "one per pass" if self.scan else "one per chain run"),
                "gate_grid": self.grid.kind if self.grid else None, "chunk_frames": self.chunk_frames,
                "overlap_frames": self.overlap_frames, "block_frames": self.block_frames,
                "gate_ahead": self.gate_ahead, "gate_threads": self.gate_threads, "kernels": self.kernels}


def decide_gain_path(options: NormalizeOptions, info: AudioInfo, output) -> tuple[str, str | None]:
    """How the gain reaches ``output``: ``"in place"`` (rewrite the output), ``"spill file"`` (keep the chain's
    output in a spill), ``"chain twice"`` or ``"no gain"``; and a note when a spill was not possible."""
    if not options.normalize_loudness:
        return "no gain", None
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


def _workers(options: NormalizeOptions) -> tuple[int, str | None]:
    workers = check_workers(options.workers)
    if workers > available_cores():
        return available_cores(), (f"{workers} workers asked for, {available_cores()} used: the cores this process "
                                   f"may use (more threads than cores add nothing)")
    return workers, None


def _gate_geometry(info: AudioInfo) -> tuple[int, int]:
    """The noise gate's hop and context at ``info``'s rate (frames); a rate it refuses, named with the input."""
    try:
        return NoiseGate.geometry(info.sample_rate)[:2]
    except SampleRateError as exc:
        raise SampleRateError(f"{info.path}: {exc}") from None


def make_plan(info: AudioInfo, options: NormalizeOptions, output=None) -> Plan:
    """The plan for ``info`` with ``options`` into ``output`` (an :class:`~audionorm_lab.media.sinks.AtomicSink` or an
    array sink; None leaves the gain path undecided, for estimates)."""
    rate, channels = info.sample_rate, info.channels
    sections = chain_sections(options.highpass_hz, options.voice_band_hz, rate)
    notes = list(sections.notes)
    workers, note = _workers(options)
    hop, context = _gate_geometry(info) if options.denoise else (1, 0)
    if options.normalize_loudness:
        check_measurable(rate, str(info.path))
    elif not measurable(rate):
        notes.append(f"loudness is not measured below {LOWEST_MEASURABLE_RATE:,} Hz (BS.1770's K-weighting): "
                     f"the report's loudness figures are NaN")
    grid = GateGrid.named(options.gate_grid, hop) if options.denoise else None
    # On the service grid a gate block starts on its piece's grid, up to one hop inside the overlap.
    reach = context + (hop if grid is not None and grid.zero_extended else 0)
    if math.isinf(options.chunk_seconds):
        chunk = (info.frames or 2**40) + hop
    else:
        chunk = max(hop, capped_frames(options.chunk_seconds, rate, channels, hop, reach))
    overlap = capped_frames(options.overlap_seconds, rate, channels, hop, reach) if options.denoise else 0
    if info.frames is not None:  # buffers are sized by the chunk and its overlap: none longer than the input
        whole = math.ceil((info.frames + 1) / hop) * hop
        chunk, overlap = min(chunk, whole), min(overlap, max(whole, reach))
    if options.denoise and overlap < reach:
        notes.append(f"overlap {options.overlap_seconds:g} s is shorter than the noise gate's context "
                     f"({reach / rate:.3f} s): chunk boundaries will differ from whole-file output")
    notes += [note] if note else []
    gain_path, note = decide_gain_path(options, info, output) if output is not None else (None, None)
    notes += [note] if note else []
    scan = options.denoise and options.noise_profile == "file"
    plan = Plan(rate, channels, workers, sections, options.denoise, options.noise_profile, grid, hop, reach, chunk,
                overlap, frames_of(BLOCK_SAMPLES, channels),
                frames_of(SCAN_BLOCK_SAMPLES, channels, minimum=NoiseGate.N_FFT), scan, False, False, gain_path,
                options.max_seconds, tuple(notes))
    # one decode for the scan and the chain, on a grid of pieces, when the lead between them is narrow enough
    shared = scan and plan.lead_frames > 0 and plan.lead_frames * channels <= SHARED_LEAD_SAMPLES
    ahead = workers > 1 and plan.padded_samples <= OVERLAPPED_CHUNK_SAMPLES
    gate_threads = max(1, workers - THREADS_BESIDE_THE_GATE) if ahead else workers
    return replace(plan, shared_decode=shared, gate_ahead=ahead, gate_threads=gate_threads, kernels=describe_kernels())
