"""Whole strategies, for comparison: the service as it was, the fix as proposed, and the streaming core.

- ``full_load``: the baseline and the evidence. What the service's
  ``AudioProcessor.process_audio_job`` did, memory and all. Do not make it smarter.
- ``ffmpeg_segments``: the fix as proposed: ffmpeg cuts the input into chunk files,
  each is processed on its own as the service processed a whole file, and the
  chunks are joined.
- ``streaming``: this project's core (:func:`~audionorm_lab.stream.pipeline.normalize_file`).

All three share the same stage implementations, so their outputs compare sample by sample.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import DecodeError, EmptyInputError, NotAudioError, OptionError
from .media.containers import ffmpeg_input
from .media.probe import AudioInfo, check_input_file, last_line, probe, require_tool
from .media.sinks import AtomicSink, SINK_FORMATS, check_output_path, make_partial
from .dsp.loudness import LoudnessMeter, check_measurable
from .stream.options import NormalizeOptions
from .stream.pipeline import NormalizeReport, normalize_array, normalize_file
from .stream.whole_input import service_gate
from .media.service_decode import pcm_to_float32
from .media.service_export import service_pcm16
from .dsp.stages import dbfs

CONCAT_MODES = ("stream", "memory")


def load_with_pydub(path) -> tuple[object, np.ndarray]:
    """``AudioSegment.from_file(path)`` (the whole file in RAM) and its samples as float32 (frames, channels)."""
    from pydub import AudioSegment
    from pydub.exceptions import CouldntDecodeError

    try:
        segment = AudioSegment.from_file(str(path))
    except CouldntDecodeError as exc:
        raise NotAudioError(f"{path}: pydub could not decode it ({last_line(str(exc))})") from None
    except IndexError as exc:  # pydub indexes what it did not find: ffprobe's audio streams, or a first sample
        if "list index" in str(exc):  # audio_streams[0]: ffprobe, sniffing the content, found no audio stream
            raise NotAudioError(f"{path}: pydub found no audio stream in it (ffprobe's reading)") from None
        raise EmptyInputError(f"{path}: decodes to no audio frames (pydub)") from None
    except OSError as exc:
        raise DecodeError(f"{path}: pydub failed ({exc})") from None
    try:
        samples = np.array(segment.get_array_of_samples()).reshape(-1, segment.channels)
    except ValueError as exc:  # a header declaring 0 channels
        raise NotAudioError(f"{path}: pydub decoded it into no usable samples ({exc})") from None
    if len(samples) == 0:  # the service failed later, in noisereduce: the same clear error as streaming's
        raise EmptyInputError(f"{path}: decodes to no audio frames")
    samples = pcm_to_float32(samples, segment.sample_width)
    return segment, samples


def _process_in_memory(samples: np.ndarray, sample_rate: int, options: NormalizeOptions, name: str
                       ) -> tuple[np.ndarray, NormalizeReport]:
    """The service's processing of a decoded array, whole.

    ``noisereduce.reduce_noise(y, sr, stationary=True)`` as the service called it
    (noise profile from the first 600,000 frames; the array gone through in
    600,000-frame pieces with 30,000 frames of padding, in memory: the streaming
    gate's ``gate_grid="service"`` follows the same grid), then the same
    high-pass, voice band, loudness meter and gain as the streaming core on the
    whole array (one chunk).
    """
    meter_in = LoudnessMeter(sample_rate, samples.shape[1])
    meter_in.update(samples)
    if options.denoise:
        samples = service_gate(samples, sample_rate, name)
    if options.normalize_loudness:
        check_measurable(sample_rate, name)
    out, report = normalize_array(samples, sample_rate, replace(options, denoise=False), chunk_seconds=float("inf"))
    report.loudness_in_lufs = meter_in.integrated()
    if options.denoise:
        report.stages.insert(0, "noise gate (noisereduce.reduce_noise, stationary, whole array)")
    report.options = options.to_dict()
    return out, report


def _to_segment(samples: np.ndarray, sample_rate: int):
    from pydub import AudioSegment

    pcm = service_pcm16(samples)
    return AudioSegment(pcm.tobytes(), frame_rate=sample_rate, sample_width=2, channels=samples.shape[1])


def _export_atomically(segment, dst: Path) -> None:
    """pydub's export, to a temporary name renamed into place."""
    tmp = str(make_partial(dst))
    try:
        segment.export(tmp, format=dst.suffix.lstrip(".").lower()).close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def full_load(src: str | os.PathLike, dst: str | os.PathLike, options: NormalizeOptions | None = None,
              **overrides) -> NormalizeReport:
    """The service as it was: the whole file decoded into RAM with pydub, processed whole, exported.

    Memory grows with the file: the 16-bit AudioSegment (kept alive to the end, as
    the service kept it), float copies of the whole recording, noisereduce's work.
    And it trusts its input as the service did: pydub hands the path to ffmpeg, which
    follows a playlist to the files it names. This is the evidence, so it stays so;
    the service's task admits a job before any mode runs (:mod:`audionorm_lab.service.admission`).
    """
    options = replace(options or NormalizeOptions(), **overrides)
    check_input_file(Path(src))  # the same clear errors as the other strategies for a missing or empty input
    dst = check_output_path(dst, src)
    segment, samples = load_with_pydub(src)
    out, report = _process_in_memory(samples, segment.frame_rate, options, str(src))
    _export_atomically(_to_segment(out, segment.frame_rate), dst)
    return replace(report, input_path=str(src), output_path=str(dst), strategy="full-load",
                   decoder=f"pydub's AudioSegment.from_file ({8 * segment.sample_width}-bit integers)",
                   output_format=f"16-bit samples through pydub's export ({dst.suffix.lstrip('.').lower()})",
                   input_frames_expected=int(segment.frame_count()))


def _split_with_ffmpeg(info: AudioInfo, folder: Path, segment_seconds: float) -> list[Path]:
    """``ffmpeg -f segment -segment_time S``: the input as 16-bit wav chunk files in ``folder`` (the input read
    with the demuxer its probe found, and nothing else)."""
    src = info.path
    command = [require_tool("ffmpeg", src), "-nostdin", "-v", "error", *ffmpeg_input(src, info.demuxer),
               "-map", "0:a:0", "-vn",
               "-c:a", "pcm_s16le", "-f", "segment", "-segment_time", f"{segment_seconds:g}",
               str(folder / "chunk%06d.wav")]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DecodeError(f"{src}: ffmpeg could not split it ({last_line(result.stderr)})")
    return sorted(folder.glob("chunk*.wav"))


def ffmpeg_segments(src: str | os.PathLike, dst: str | os.PathLike, options: NormalizeOptions | None = None,
                    concat: str = "stream", **overrides) -> NormalizeReport:
    """The fix as proposed: split with ffmpeg, process each chunk file on its own, join.

    Each chunk (``options.chunk_seconds`` long) is loaded with pydub and processed
    exactly as :func:`full_load` processes a whole file. So each chunk gets its
    own noise profile (taken from that chunk), its own loudness measurement and gain,
    and filters that start from rest: the joined output has level steps and
    discontinuities at chunk boundaries, and its loudness only approximates the
    target. ``overlap_seconds`` is not used: the proposal has no overlap.

    Parameters
    ----------
    concat : {"stream", "memory"}
        ``"stream"``: each processed chunk is appended to the output file as it is
        done (memory O(chunk)). ``"memory"``: the chunks are joined as pydub
        AudioSegments (``a + b``) and exported at the end, which grows O(file) again.

    The chunk files live in a temporary folder that is removed on success and on error.
    """
    options = replace(options or NormalizeOptions(), **overrides)
    if concat not in CONCAT_MODES:
        raise OptionError(f"concat must be one of {', '.join(CONCAT_MODES)}, not {concat!r}")
    if not np.isfinite(options.chunk_seconds):
        raise OptionError("ffmpeg-segments needs a finite chunk length")
    src = Path(src)
    info = probe(src)
    dst = check_output_path(dst, src)
    folder = Path(tempfile.mkdtemp(prefix="audionorm-segments-"))
    try:
        chunks = _split_with_ffmpeg(info, folder, options.chunk_seconds)
        if concat == "stream":
            with AtomicSink(dst, info.sample_rate, info.channels, options.output_subtype, info.frames) as sink:
                report = _process_segments(chunks, options, sink.write)
        else:
            joined = None

            def join(out):
                nonlocal joined
                segment = _to_segment(out, info.sample_rate)
                joined = segment if joined is None else joined + segment

            report = _process_segments(chunks, options, join)
            _export_atomically(joined, dst)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    written = (f"16-bit samples through pydub's export ({dst.suffix.lstrip('.').lower()})" if concat == "memory"
               else f"{SINK_FORMATS[dst.suffix.lower()][0]}/{options.output_subtype or SINK_FORMATS[dst.suffix.lower()][1]}")
    return replace(report, input_path=str(src), output_path=str(dst), input_frames_expected=info.frames,
                   strategy=f"ffmpeg-segments (concat={concat})", output_format=written)


def _process_segments(chunks: list[Path], options: NormalizeOptions, write) -> NormalizeReport:
    first = None
    meter_in = meter_out = None
    starts, gains, frames, peak, limited, notes = [], [], 0, 0.0, False, []
    for path in chunks:
        segment, samples = load_with_pydub(path)
        path.unlink()  # the chunk file is no longer needed: free its disk space now
        if first is None:
            meter_in = LoudnessMeter(segment.frame_rate, segment.channels)
            meter_out = LoudnessMeter(segment.frame_rate, segment.channels)
        meter_in.update(samples)
        out, report = _process_in_memory(samples, segment.frame_rate, options, str(path))
        first = first or report
        write(out)
        meter_out.update(out)
        starts.append(frames)
        frames += len(out)
        gains.append(report.gain_db)
        peak = max(peak, float(np.max(np.abs(out))) if len(out) else 0.0)
        limited = limited or report.gain_limited_by_ceiling
        notes.extend(n for n in report.notes if n not in notes)
    if first is None:
        raise DecodeError("ffmpeg wrote no chunk files")
    notes.append(f"each chunk measured and gained on its own: gains from {min(gains):+.2f} to {max(gains):+.2f} dB")
    rate = first.sample_rate
    return replace(
        first, input_frames=frames, output_frames=frames, input_seconds=frames / rate, output_seconds=frames / rate,
        loudness_in_lufs=meter_in.integrated(), loudness_before_gain_lufs=None, loudness_out_lufs=meter_out.integrated(),
        gain_db=float(np.median(gains)), gain_limited_by_ceiling=limited, output_peak_dbfs=dbfs(peak),
        chunks=len(starts), chunk_frames=int(round(options.chunk_seconds * rate)), chunk_starts_frames=starts,
        overlap_frames=0, notes=notes, decoder="ffmpeg segment + pydub",
    )


def streaming(src, dst, options: NormalizeOptions | None = None, progress=None, **overrides) -> NormalizeReport:
    """This project's core: :func:`~audionorm_lab.stream.pipeline.normalize_file`."""
    return normalize_file(src, dst, options, progress=progress, **overrides)


STRATEGIES = {"streaming": streaming, "full-load": full_load, "ffmpeg-segments": ffmpeg_segments}
