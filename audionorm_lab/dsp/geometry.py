"""How much audio each step of the streaming core holds, in samples (frames x channels).

Memory is flat in a file's length; it must also be bounded in its width, channels x sample
rate. So every buffer is sized in samples, not in seconds or frames: a 16-channel 192 kHz
file holds as many bytes per step as a stereo 48 kHz one, in fewer frames. The sizes were set
on stereo 44.1 and 48 kHz, and nothing changes there. The output does not depend on any of
them: chunks and gate pieces carry the noise gate's context, so their lengths never show in
the samples (a narrower chunk only costs more gating of context).

Where no bound can hold, :func:`check_width` refuses the input before anything decodes it.
"""

from __future__ import annotations

import math
import os

from ..errors import WidthError

#: Widest input processed: channels, and samples per second per channel (Hz).
MAX_CHANNELS = 64
MAX_SAMPLE_RATE = 384_000
#: Below this rate (Hz) there is no voice band to process.
MIN_SAMPLE_RATE = 1_000
#: A chunk of ``chunk_seconds`` holds at most ``chunk_seconds`` of this many samples a second: stereo 48 kHz.
CHUNK_SAMPLES_PER_SECOND = 96_000
#: Samples a block of reads, IIR filtering, metering and writing holds: 65,536 stereo frames (0.5 MB of float32).
BLOCK_SAMPLES = 1 << 17
#: Samples the noise scan reads at a time: 32,768 stereo frames.
SCAN_BLOCK_SAMPLES = 1 << 16
#: Longest noise gate piece, per channel, frames: 2.6 s at 48 kHz (its spectra about 8 MB). Each piece is
#: transformed with the gate's context on both sides, so a default 5 s chunk gated in two pieces costs 3 % more
#: FFTs than its frames, against 9 % in three (0.3 s of CPU per 10-minute stereo job).
GATE_PIECE_FRAMES = 125_000
#: The scan and the chain share one decode when the lead between them holds at most this many samples
#: (up to 6 channels of the service's 600,000-frame pieces, 20 MB); a wider input is decoded twice.
SHARED_LEAD_SAMPLES = 5_000_000


def check_width(path: str | os.PathLike, channels: int, sample_rate: int) -> None:
    """Refuse, with one line naming the width and the limit, an input whose memory no bound here holds.

    Raises
    ------
    WidthError
    """
    if not 1 <= channels <= MAX_CHANNELS:
        raise WidthError(f"{path}: {channels} channels; this tool processes 1 to {MAX_CHANNELS} channels in bounded "
                         f"memory")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise WidthError(f"{path}: a sample rate of {sample_rate:,} Hz; this tool processes {MIN_SAMPLE_RATE:,} to "
                         f"{MAX_SAMPLE_RATE:,} Hz in bounded memory")


def frames_of(samples: int, channels: int, minimum: int = 1) -> int:
    """Frames that hold at most ``samples`` samples of ``channels`` channels (at least ``minimum``)."""
    return max(minimum, samples // channels)


def aligned(frames: float, alignment: int) -> int:
    """``frames`` rounded up to a multiple of ``alignment``."""
    return int(math.ceil(frames / alignment)) * alignment


def capped_frames(seconds: float, sample_rate: int, channels: int, alignment: int, floor_frames: int) -> int:
    """``seconds`` (finite, s) of an input as frames on the gate's ``alignment`` grid, for a chunk or its overlap:
    ``seconds`` of audio, or of :data:`CHUNK_SAMPLES_PER_SECOND` samples a second when the input is wider than
    that; but not below ``floor_frames`` (the gate's reach: less context would change the output, and a
    chunk shorter than its context is mostly context) unless ``seconds`` itself asks for less."""
    wanted = aligned(seconds * sample_rate, alignment)
    capped = aligned(seconds * min(sample_rate, CHUNK_SAMPLES_PER_SECOND / channels), alignment)
    return min(wanted, max(capped, floor_frames))
