"""One decode for two readers: a source whose blocks a leading reader decodes and a follower reads again.

The spectral-peak scan (:class:`~audionorm_lab.dsp.gate_grid.PeakScan`) must run ahead
of the chain by a little more than one gate piece; decoding the file a second time
for it cost a tenth of the chain's CPU. Here the scan leads: every block it reads is
also kept for the chain, which follows, until the chain has read it. The lead is
bounded (``capacity_frames``): the leader waits when that much is kept, so memory is
that many frames whatever the file's length.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from ..errors import AudionormError


class SharedSource:
    """Blocks of ``source`` read once, by a leader (:meth:`read`) and then by a follower (:meth:`follower`).

    Parameters
    ----------
    source
        An opened source (``read(frames)``, ``frames_read``, ``info``, ``close()``); closed by :meth:`close`.
    capacity_frames : int
        Frames read by the leader and not yet by the follower, at most (the leader waits
        beyond). The follower must never need the leader to be further ahead than this,
        or both wait for ever.
    """

    def __init__(self, source, capacity_frames: int):
        self.source, self.info = source, source.info
        self.capacity_frames = capacity_frames
        self._kept: deque[np.ndarray] = deque()
        self._kept_frames = 0
        self._ended = self._closed = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()

    @property
    def frames_read(self) -> int:
        """Frames the leader has read, samples per channel."""
        return self.source.frames_read

    def read(self, frames: int) -> np.ndarray:
        """The leader's read: up to ``frames`` frames from the source, kept for the follower."""
        with self._changed:
            self._changed.wait_for(lambda: self._kept_frames < self.capacity_frames or self._closed)
            if self._closed:
                raise SourceClosed("the shared source was closed")
        try:
            block = self.source.read(frames)
        except BaseException as exc:
            with self._changed:
                self._error = exc
                self._changed.notify_all()
            raise
        with self._changed:
            if len(block):
                self._kept.append(block)
                self._kept_frames += len(block)
            self._ended = len(block) < frames
            self._changed.notify_all()
        return block

    def follower(self) -> "Follower":
        """The follower's source (once): the same frames, in order, as the leader read them."""
        return Follower(self)

    def _take(self, frames: int) -> np.ndarray:
        with self._changed:
            self._changed.wait_for(lambda: self._kept_frames >= frames or self._ended or self._closed
                                   or self._error is not None)
            if self._kept_frames < frames and self._error is not None:
                raise self._error
            if self._closed and self._kept_frames < frames and not self._ended:
                raise SourceClosed("the shared source was closed")
            parts, taken = [], 0
            while self._kept and taken < frames:
                block = self._kept.popleft()
                if taken + len(block) > frames:
                    self._kept.appendleft(block[frames - taken:])
                    block = block[: frames - taken]
                parts.append(block)
                taken += len(block)
            self._kept_frames -= taken
            self._changed.notify_all()
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.zeros((0, self.info.channels), np.float32)
        return np.concatenate(parts)

    def stop(self) -> None:
        """Wake both readers and stop them (their reads raise :class:`SourceClosed`); drop what is kept.
        The source stays open: a read may still be under way in the leader's thread."""
        with self._changed:
            self._closed = True
            self._kept.clear()
            self._kept_frames = 0
            self._changed.notify_all()

    def close(self) -> None:
        """Stop both readers and close the source (once no read is under way)."""
        self.stop()
        self.source.close()


class Follower:
    """The follower's side of a :class:`SharedSource`: a source (``read``, ``frames_read``, ``info``)."""

    def __init__(self, shared: SharedSource):
        self._shared, self.info = shared, shared.info
        self.frames_read = 0

    def read(self, frames: int) -> np.ndarray:
        block = self._shared._take(frames)
        self.frames_read += len(block)
        return block

    def close(self) -> None:
        """Nothing to close: the shared source is closed by its owner."""

    def __enter__(self) -> "Follower":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SourceClosed(AudionormError):
    """A reader of a :class:`SharedSource` was stopped because the source was closed."""
