"""Overlap-save cutting: chunks of a stream that carry context on each side.

Used by the pipeline (chunks of a file) and by the noise gate (bounded pieces of a
chunk); holding at most one chunk plus its two margins.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np


def array_reader(samples: np.ndarray) -> Callable[[int], np.ndarray]:
    """``read(n)`` over an in-memory ``(frames, channels)`` array, for :func:`context_chunks`."""
    position = 0

    def read(frames: int) -> np.ndarray:
        nonlocal position
        block = samples[position: position + frames]
        position += len(block)
        return block

    return read


def context_chunks(read: Callable[[int], np.ndarray], channels: int, chunk_frames: int, overlap_frames: int,
                   read_frames: int | None = None) -> Iterator[tuple[np.ndarray, int, int, bool]]:
    """Cut a stream into chunks that carry ``overlap_frames`` of context on each side.

    Yields ``(padded, lead, core, last)``: the chunk proper is ``padded[lead:lead + core]``,
    and ``last`` says it ends the stream. At the start and end of the stream there is no
    context to add, so there the padding is shorter (never zeros). Holds at most
    ``chunk_frames + 2 * overlap_frames + 1`` frames (one frame of look-ahead tells the
    last chunk).

    Parameters
    ----------
    read : callable
        ``read(n)`` returns up to ``n`` float32 ``(frames, channels)`` frames, fewer only at the end.
    channels : int
    chunk_frames, overlap_frames : int
        Samples per channel.
    read_frames : int, optional
        Frames read at a time while a chunk fills (default :data:`READ_FRAMES`).
    """
    read_frames = read_frames or READ_FRAMES
    buffer = np.zeros((0, channels), np.float32)
    buffer_start = 0  # stream position of buffer[0], frames
    core_start = 0
    ended = False
    while True:
        wanted_end = core_start + chunk_frames + overlap_frames + 1
        if not ended and buffer_start + len(buffer) < wanted_end:
            buffer, ended = _extend(buffer, read, wanted_end - buffer_start - len(buffer), channels, read_frames)
        available_end = buffer_start + len(buffer)
        if core_start >= available_end:
            return
        core_end = min(core_start + chunk_frames, available_end)
        padded_start = max(0, core_start - overlap_frames)
        padded_end = min(core_end + overlap_frames, available_end)
        yield (buffer[padded_start - buffer_start: padded_end - buffer_start],
               core_start - padded_start, core_end - core_start, ended and core_end == available_end)
        core_start = core_end
        drop = max(0, core_start - overlap_frames) - buffer_start
        buffer, buffer_start = buffer[drop:], buffer_start + drop


#: Frames read at a time while a chunk's buffer fills: no whole-chunk block is held beside the buffer.
READ_FRAMES = 1 << 16


def _extend(buffer: np.ndarray, read: Callable[[int], np.ndarray], wanted: int, channels: int, read_frames: int
            ) -> tuple[np.ndarray, bool]:
    """A new array: ``buffer`` then up to ``wanted`` frames read ``read_frames`` at a time;
    and whether the stream ended. The old buffer is left as it is (chunks in flight may view it)."""
    extended = np.empty((len(buffer) + wanted, channels), np.float32)
    extended[: len(buffer)] = buffer
    filled = len(buffer)
    while filled < len(extended):
        asked = min(read_frames, len(extended) - filled)
        block = read(asked)
        extended[filled: filled + len(block)] = block
        filled += len(block)
        if len(block) < asked:
            return extended[:filled], True
    return extended, False
