"""The three passes over a stream, each with one contract.

- :class:`ScanPass` (pass 0, "profile"): reads the input ahead of the chain, on a thread of its
  own: the noise clip, from which the gate is made, then each grid piece's open bins (the 80 dB
  floor, :mod:`~audionorm_lab.dsp.gate_grid`), which the gate waits for piece by piece; and the input's
  loudness. With a shared decode the chain reads the same blocks after it
  (:mod:`~audionorm_lab.stream.shared_source`).
- :class:`MeasurePass` (pass 1): the chain once over the input; its loudness and sample peak before
  the gain, hence the gain; its output kept for pass 2, in the output itself (a float WAV) or a
  spill file, or not at all (the chain then runs twice).
- :class:`ApplyPass` (pass 2): the gain applied to what pass 1 kept, or to the chain run again, and
  written; the output metered on another core as it is written.

:func:`run_chain` is the chain over one opened source, in order, a chunk gated while the one
before it is filtered, metered and written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .allocator import release_free_memory
from .chain import Chain, chunks
from ..errors import EmptyInputError, TooLongError
from ..dsp.floor_decision import FloorBounds
from ..dsp.gate_grid import PeakScan
from ..dsp.loudness import LoudnessMeter
from ..dsp.parallel import Aside, ordered_map
from .plan import Plan
from .shared_source import SharedSource
from .spill import Spill
from ..dsp.noise_gate import NOISE_PROFILE_FRAMES, NoiseGate
from ..dsp.stages import Gain, limit_gain

#: ``progress(pass_name, frames_done, frames_expected)``; frames_expected may be None.
ProgressCallback = Callable[[str, int, "int | None"], None]

#: Audio between two hand-backs of the heap's free memory (:func:`~audionorm_lab.stream.allocator.release_free_memory`),
#: seconds. Each hand-back costs the chain's temporaries their pages again: every 60 s, 570,000 page faults on the
#: 163-minute file against 94,000 every 600 s, for the same peak RSS (106 and 105 MB); never, 110 MB.
RELEASE_EVERY_SECONDS = 600


class Reader:
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
        with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf sum to NaN: a finding, not a warning
            total = block.sum()
        if not np.isfinite(total):  # one pass: NaN or +-inf anywhere makes the sum so (or a huge block, checked)
            bad = ~np.isfinite(block)
            if bad.any():
                self.repaired += int(bad.sum())
                block = np.where(bad, np.float32(0.0), block)
        if self.progress is not None:
            self.progress(self.pass_name, self.source.frames_read, self.source.info.frames)
        return block


class Peak:
    """The largest ``|sample|`` seen (linear)."""

    def __init__(self):
        self.value = 0.0

    def update(self, block: np.ndarray) -> None:
        if len(block):  # max |x| without an array of |x|: the same value
            self.value = max(self.value, float(block.max()), -float(block.min()))


@dataclass
class ChainRun:
    """What one run of the chain over the stream read: frames, the frame each chunk starts at, NaN/inf repaired."""

    frames: int
    starts: list[int]
    repaired: int


def run_chain(chain: Chain, source, pass_name: str, progress: ProgressCallback | None,
              consume: Callable[[np.ndarray | None, np.ndarray], None], raw_needed: bool) -> ChainRun:
    """The chain over ``source`` (opened; closed here): its output goes to ``consume(raw, out)``, in order.

    Each chunk is gated on a thread of its own, its pieces on the plan's gate threads, while the chunk before it
    goes through the IIR stages, meters and writes here, in order, ``plan.block_frames`` at a time (their
    temporaries stay under 2 MB whatever the chunk length and the width). Once a chunk is gated only its output
    is kept (and its input, when ``raw_needed``; else ``raw`` is None).
    """
    plan = chain.plan
    chain.reset()
    starts = []

    def gate(chunk):
        return chunk.start, chunk.raw if raw_needed else None, chain.gate_chunk(chunk)

    with source:
        reader = Reader(source, pass_name, progress, plan.max_seconds)
        stream = chunks(reader, plan)
        if plan.denoise and plan.noise_profile == "chunk":
            gated = (gate(chain.profile_from(chunk)) for chunk in stream)
        else:  # a chunk gated (its pieces on the gate threads) while the one before is filtered and written
            gated = ordered_map(gate, stream, workers=1, ahead=1 if plan.gate_ahead else 0)
        released_at = 0
        for start, raw, out in gated:
            starts.append(start)
            if start - released_at >= RELEASE_EVERY_SECONDS * plan.sample_rate:
                release_free_memory()
                released_at = start
            for first in range(0, len(out), plan.block_frames):
                part = slice(first, first + plan.block_frames)
                consume(None if raw is None else raw[part], chain.filter(out[part]))
            del raw, out  # before the next chunk is read
        return ChainRun(source.frames_read, starts, reader.repaired)


class Decodes:
    """Opens the input afresh for each reader, counting the decodes."""

    def __init__(self, open_input: Callable):
        self._open, self.count = open_input, 0

    def __call__(self):
        self.count += 1
        return self._open()


class ScanPass:
    """Pass 0 (see the module): started by :meth:`start`, which returns once the gate exists (or the input
    proved too short for one); :meth:`chain_source` opens the source the chain's first run reads;
    :meth:`finish` waits for the whole scan; :meth:`close` stops it, whatever happened."""

    def __init__(self, plan: Plan, chain: Chain, decodes: Decodes, meter_in: LoudnessMeter,
                 progress: ProgressCallback | None):
        self.plan, self.chain, self.decodes, self.meter_in, self.progress = plan, chain, decodes, meter_in, progress
        self.source = None
        self.scan: PeakScan | None = None
        self._follower_taken = False
        #: After :meth:`start`: the input's whole length in frames where it is shorter than one of the gate's STFT
        #: frames (the head it read is all there is; its grid cannot gate it: :mod:`.whole_input`); else None.
        self.whole_input_frames: int | None = None
        self.notes: list[str] = []
        self.seconds = 0.0

    def _read(self, frames: int) -> np.ndarray:
        block = self.reader(frames)
        self.meter_in.update(block)  # the input's loudness, on the scan's thread
        return block

    def start(self) -> ScanPass:
        started = time.perf_counter()
        source = self.decodes()
        self.source = SharedSource(source, self.plan.lead_frames) if self.plan.shared_decode else source
        self.reader = Reader(self.source, "profile", self.progress, self.plan.max_seconds)
        self.scan = PeakScan(self._read, self.plan.channels, self.plan.grid, NoiseGate.N_FFT, NOISE_PROFILE_FRAMES,
                             block_frames=self.plan.scan_block_frames).start()
        clip = self.scan.head()
        self.whole_input_frames = len(clip) if len(clip) < NoiseGate.N_FFT else None
        if self.whole_input_frames is None:
            self.chain.gate = NoiseGate(clip, self.plan.sample_rate)
            self.scan.decide_with(FloorBounds.of(self.chain.gate))  # single precision where it decides the floor
            self.scan.summarize_with(self.chain.packed_open_bins)  # keep 1 bit per bin, not 8 bytes
            self.chain.open_bins = self.scan.peaks
        self.seconds = time.perf_counter() - started
        return self

    def chain_source(self):
        """The source the chain reads next: the scan's decode, shared, the first time; a decode of its own after."""
        if self.plan.shared_decode and not self._follower_taken:
            self._follower_taken = True
            return self.source.follower()
        return self.decodes()

    def finish(self) -> None:
        """Wait for the whole scan (its loudness meter has then seen the whole input)."""
        self.scan.wait()

    def close(self) -> None:
        if isinstance(self.source, SharedSource):
            self.source.stop()  # a scan waiting for the chain to catch up wakes and stops
        if self.scan is not None:
            self.scan.close()
        if self.source is not None:
            self.source.close()


@dataclass
class Meters:
    """Loudness meters and sample peaks: of the input, of the chain's output before the gain, of what is written."""

    meter_in: LoudnessMeter
    meter_before: LoudnessMeter
    meter_out: LoudnessMeter
    peak_before: Peak = field(default_factory=Peak)
    peak_out: Peak = field(default_factory=Peak)

    @classmethod
    def for_plan(cls, plan: Plan) -> Meters:
        return cls(*(LoudnessMeter(plan.sample_rate, plan.channels) for _ in range(3)))


@dataclass
class Measured:
    """Pass 1's result: the run, the loudness before the gain (LUFS), the gain (dB) and whether the peak
    ceiling lowered it."""

    run: ChainRun
    loudness_before_lufs: float
    gain_db: float
    limited: bool
    notes: list[str]


class MeasurePass:
    """Pass 1 (see the module). ``keep(out)`` keeps the chain's output for pass 2 (None: not kept);
    ``meter_input`` meters the input here (when no scan did)."""

    def __init__(self, chain: Chain, meters: Meters, keep: Callable | None, meter_input: bool):
        self.chain, self.meters, self.keep, self.meter_input = chain, meters, keep, meter_input

    def _consume(self, raw: np.ndarray | None, out: np.ndarray) -> None:
        if self.meter_input:
            self.meters.meter_in.update(raw)
        self.meters.meter_before.update(out)
        self.meters.peak_before.update(out)
        if self.keep is not None:
            self.keep(out)

    def run(self, source, progress: ProgressCallback | None, target_lufs: float, ceiling_dbfs: float) -> Measured:
        run = run_chain(self.chain, source, "measure", progress, self._consume, raw_needed=self.meter_input)
        if run.frames == 0:
            raise EmptyInputError(f"{source.info.path}: decodes to no audio frames")
        loudness = self.meters.meter_before.integrated()
        gain_db, limited = limit_gain(self.meters.meter_before.gain_to(target_lufs), self.meters.peak_before.value,
                                      ceiling_dbfs)
        notes = []
        if not math.isfinite(loudness):
            notes.append("input is silent (or under 400 ms): loudness is -inf, no gain applied")
        elif limited:
            notes.append(f"peak ceiling {ceiling_dbfs:g} dBFS limited the gain to {gain_db:.2f} dB: "
                         f"output is below the {target_lufs:g} LUFS target")
        return Measured(run, loudness, gain_db, limited, notes)


class ApplyPass:
    """Pass 2 (see the module): ``gain_db`` into ``output``, from the plan's gain path. Without loudness
    normalization it is the only pass: it runs the chain and meters the input and the peak before the gain too.
    """

    def __init__(self, chain: Chain, meters: Meters, output, gain_db: float, normalized: bool, meter_input: bool):
        self.chain, self.meters, self.output = chain, meters, output
        self.gain, self.normalized, self.meter_input = Gain(gain_db), normalized, meter_input
        self._written = None

    def _finish(self, block: np.ndarray) -> None:
        self.meters.meter_out.update(block)
        self.meters.peak_out.update(block)

    def _write(self, block: np.ndarray) -> np.ndarray:
        self._written.put(block)  # metered on another core while the next is made
        return block

    def _chain_output(self, raw: np.ndarray | None, out: np.ndarray) -> None:
        if not self.normalized:
            if self.meter_input:
                self.meters.meter_in.update(raw)
            self.meters.peak_before.update(out)
        self.output.write(self._write(self.gain.process(out)))

    def run(self, kept: Spill | None, source_for_chain: Callable, progress: ProgressCallback | None) -> ChainRun | None:
        """Apply the gain: rewrite the output in place, copy from ``kept`` (a spill), or run the chain again on
        ``source_for_chain()``; the chain's run when it ran (None otherwise)."""
        plan = self.chain.plan
        with Aside(self._finish, threaded=plan.workers > 1) as written:
            self._written = written
            if plan.gain_path == "in place":
                self.output.rewrite(lambda block: self._write(self.gain.process(block)), plan.block_frames)
                return None
            if plan.gain_path == "spill file":
                for block in kept.blocks(plan.block_frames):
                    self.output.write(self._write(self.gain.process(block)))
                return None
            return run_chain(self.chain, source_for_chain(), "apply", progress, self._chain_output,
                             raw_needed=self.meter_input and not self.normalized)
