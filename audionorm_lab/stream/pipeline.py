"""The streaming core's entry points: a plan, three passes, a report; the chain over a stream, once, on every core.

:func:`normalize_file` probes the input, makes a plan (:mod:`~audionorm_lab.stream.plan`: workers, a
shared decode, the gain path, every buffer's geometry), and runs the passes
(:mod:`~audionorm_lab.stream.passes`): pass 0 reads the noise clip and each grid piece's spectral peaks
ahead of the chain, pass 1 runs the chain (:mod:`~audionorm_lab.stream.chain`: noise gate, high-pass,
voice band) once and measures it, pass 2 applies the gain to what pass 1 kept. The report is made
from what the plan and the passes return, and says which plan ran.

Each chunk is read with ``overlap_seconds`` of audio on each side; the gate keeps only the chunk's
own frames (overlap-save), the IIR stages carry their state from chunk to chunk. The gate works on
the grid of ``options.gate_grid``: by default ``reduce_noise``'s own 600,000-frame pieces, so the
output is the service's whatever ``chunk_seconds`` is. Memory is O(chunk) samples (two chunks, and
a few gate pieces per worker) plus O(duration / 100 ms) floats.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .allocator import tune_malloc
from .chain import Chain
from ..errors import DecodeError, EmptyInputError, TooLongError
from ..dsp.geometry import BLOCK_SAMPLES, GATE_PIECE_FRAMES, check_width
from .compat import endpoints
from ..media.probe import AudioInfo, probe
from ..media.sinks import check_output_path
from .options import NormalizeOptions
from .passes import ApplyPass, Decodes, MeasurePass, Meters, ProgressCallback, ScanPass
from .plan import Plan, make_plan
from .spill import Spill
from ..dsp.noise_gate import NoiseGate
from ..dsp.loudness import LoudnessMeter
from ..dsp.stages import dbfs
from .whole_input import SHORT_INPUT_FRAMES, service_gate

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
    ``"no gain"``; ``decoder`` and ``output_format`` say how the input was read and the output
    written (``options["compat"]``: the toolkit's float input and output, or the service's);
    ``workers`` is the number of threads that gated chunks; ``input_decodes``
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
    plan: dict = field(default_factory=dict)
    output_format: str = "array"

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

    def rewrite(self, transform, block_frames: int = BLOCK_SAMPLES // 2) -> None:
        for start in range(0, self.frames_written, block_frames):
            block = self.samples[start: min(start + block_frames, self.frames_written)]
            block[:] = transform(block)


def _normalize(open_input, info: AudioInfo, options: NormalizeOptions, output, progress) -> NormalizeReport:
    """The plan and its passes, over any source that ``open_input()`` opens afresh each time, into ``output``
    (an :class:`~audionorm_lab.media.sinks.AtomicSink` or an :class:`ArraySink`)."""
    plan = make_plan(info, options, output)
    chain, meters, decodes = Chain(plan), Meters.for_plan(plan), Decodes(open_input)
    seconds, notes = dict.fromkeys(PASS_NAMES, 0.0), list(plan.notes)
    tune_malloc()  # before the scan's and the workers' threads
    scan = ScanPass(plan, chain, decodes, meters.meter_in, progress) if plan.scan else None
    spill = Spill(output.folder, plan.channels) if plan.gain_path == "spill file" else None
    chain_source = scan.chain_source if scan is not None else decodes
    measured = None
    try:  # from here on the scan's thread is stopped, and the spill closed, whatever happens
        if scan is not None:
            notes += scan.start().notes
            seconds["profile"] = scan.seconds
            if scan.whole_input_frames:  # shorter than one STFT frame: the service's gate on it whole
                return _normalize_short(read_short_input(open_input, info), info, options, output, progress)
        if options.normalize_loudness:
            started = time.perf_counter()
            keep = {"in place": output.write, "spill file": spill.write if spill else None}.get(plan.gain_path)
            measured = MeasurePass(chain, meters, keep, meter_input=scan is None).run(
                chain_source(), progress, options.target_lufs, options.ceiling_dbfs)
            notes += measured.notes
            seconds["measure"] = time.perf_counter() - started
        started = time.perf_counter()
        applied = ApplyPass(chain, meters, output, measured.gain_db if measured else 0.0, options.normalize_loudness,
                            meter_input=scan is None).run(spill, chain_source, progress)
        run = applied or measured.run
        if run.frames == 0:
            raise EmptyInputError(f"{info.path}: decodes to no audio frames")
        seconds["apply"] = time.perf_counter() - started
        if scan is not None:
            scan.finish()  # its loudness meter has seen the whole input
    finally:
        if spill is not None:
            spill.close()
        if scan is not None:
            scan.close()
    return _report(info, options, plan, chain, meters, measured, run, seconds, notes,
                   chain_runs=2 if applied is not None and options.normalize_loudness else 1,
                   decodes=decodes.count)


def read_short_input(open_input, info: AudioInfo) -> np.ndarray:
    """The whole of an input the scan found shorter than
    :data:`~audionorm_lab.stream.whole_input.SHORT_INPUT_FRAMES` frames: float32 ``(frames, channels)``, from a
    decode of its own (the scan keeps only the channels' mean)."""
    source, blocks, frames = open_input(), [], 0
    try:
        while frames < SHORT_INPUT_FRAMES:
            block = source.read(SHORT_INPUT_FRAMES)
            if len(block) == 0:
                break
            blocks.append(np.array(block, np.float32))
            frames += len(block)
    finally:
        source.close()
    if not 0 < frames < SHORT_INPUT_FRAMES:
        raise DecodeError(f"{info.path}: decoded to {frames} frames on a second read, under "
                          f"{SHORT_INPUT_FRAMES} on the first")
    return np.concatenate(blocks)


def _normalize_short(samples: np.ndarray, info: AudioInfo, options: NormalizeOptions, output, progress
                     ) -> NormalizeReport:
    """An input shorter than one of the gate's STFT frames: the service's own gate on it whole
    (:func:`~audionorm_lab.stream.whole_input.service_gate`), then the chain and passes without the gate."""
    finite = np.isfinite(samples)
    repaired = int(samples.size - np.count_nonzero(finite))
    samples = np.where(finite, samples, np.float32(0.0)).astype(np.float32)
    gated = service_gate(samples, info.sample_rate, str(info.path))
    report = _normalize(lambda: ArraySource(gated, info.sample_rate), info, replace(options, denoise=False), output,
                        progress)
    meter_in = LoudnessMeter(info.sample_rate, info.channels)
    meter_in.update(samples)
    notes = report.notes + [f"{repaired} NaN/inf samples replaced with 0"] * bool(repaired)
    return replace(report, loudness_in_lufs=meter_in.integrated(), options=options.to_dict(),
                   nonfinite_samples_repaired=repaired, notes=notes,
                   stages=[f"noise gate (noisereduce.reduce_noise, stationary, on the whole input: "
                           f"{len(samples)} frames, less than one STFT frame)", *report.stages])


def _report(info: AudioInfo, options: NormalizeOptions, plan: Plan, chain: Chain, meters: Meters, measured,
            run, seconds: dict, notes: list[str], chain_runs: int, decodes: int) -> NormalizeReport:
    """The report, from what the plan and the passes returned."""
    expected, frames, rate = info.frames, run.frames, info.sample_rate
    if expected is not None and expected - frames > max(4096, expected // 500):
        notes.append(f"input ended early: {frames} of {expected} declared frames decoded "
                     f"({frames / rate:.2f} of {expected / rate:.2f} s); processed what was there")
    if run.repaired:
        notes.append(f"{run.repaired} NaN/inf samples replaced with 0")
    return NormalizeReport(
        input_path=str(info.path), output_path=None, strategy="streaming", decoder=info.decoder, sample_rate=rate,
        channels=info.channels, input_frames_expected=expected, input_frames=frames, output_frames=frames,
        input_seconds=frames / rate, output_seconds=frames / rate,
        truncated=expected is not None and expected - frames > max(4096, expected // 500),
        loudness_in_lufs=meters.meter_in.integrated(),
        loudness_before_gain_lufs=measured.loudness_before_lufs if measured else None,
        loudness_out_lufs=meters.meter_out.integrated(),
        target_lufs=options.target_lufs if options.normalize_loudness else None,
        gain_db=measured.gain_db if measured else 0.0, gain_limited_by_ceiling=measured.limited if measured else False,
        peak_before_gain_dbfs=dbfs(meters.peak_before.value), output_peak_dbfs=dbfs(meters.peak_out.value),
        chunks=len(run.starts), chunk_frames=min(plan.chunk_frames, frames), chunk_starts_frames=run.starts,
        overlap_frames=plan.overlap_frames, nonfinite_samples_repaired=run.repaired, stages=chain.stage_names(),
        pass_seconds=seconds, options=options.to_dict(), notes=notes, chain_runs=chain_runs,
        gain_path=plan.gain_path, workers=plan.workers, input_decodes=decodes, plan=plan.describe(),
    )


#: The streaming core's memory that no buffer size accounts for (allocator slack, threads, the meters' and the
#: scan's summaries, temporaries), bytes: set from measurements (stereo 44.1 kHz: about 62 MB above the import
#: floor in all, 16 channels at 192 kHz: about 51 MB).
UNSIZED_BYTES = 40 * 10**6
#: Bytes of temporaries a noise gate piece needs per frame (float64 signal, complex spectra, mask, gains).
GATE_BYTES_PER_FRAME = 64


def working_set_bytes(info: AudioInfo, options: NormalizeOptions) -> int:
    """An upper estimate of what streaming ``info`` with ``options`` holds above the import floor, bytes, from
    the buffers its geometry sizes (:mod:`~audionorm_lab.dsp.geometry`): three chunks with their overlap, a gate
    piece per gate thread, the scan's lead when the decode is shared, the blocks. A service checks it against its
    memory limit before anything decodes."""
    plan = make_plan(info, options)
    padded = plan.chunk_frames + 2 * plan.overlap_frames
    piece = min(padded, NoiseGate.geometry(info.sample_rate)[1] * 2 + GATE_PIECE_FRAMES) if plan.denoise else 0
    lead = plan.lead_frames if plan.shared_decode else 0
    chunks_held = 3 if plan.gate_ahead else 2
    return int(UNSIZED_BYTES + chunks_held * padded * info.channels * 4 + plan.gate_threads * piece * GATE_BYTES_PER_FRAME
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
    ends = endpoints(info, dst, options)
    with ends.output as sink:
        report = _normalize(ends.open_input, info, options, sink, progress)
    return replace(report, output_path=str(dst), decoder=ends.decoder, output_format=ends.output_format)


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
