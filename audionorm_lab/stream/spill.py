"""Spill files: the chain's pre-gain output kept on disk, so the chain runs once.

The gain depends on the loudness of the whole chain output, so that output is needed
twice: once to measure, once to write with the gain. A spill keeps it (float32) on disk
between the two, instead of running the chain again. It is an anonymous temporary file
in the output's folder (``O_TMPFILE`` where the system has it, else unlinked at once):
it never has a name, and its space is freed when it is closed or the process ends,
however it ends (success, error, Ctrl-C, SIGTERM, even SIGKILL).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import OutputPathError

SPILL_MODES = ("auto", "never")
#: Free space kept beyond what the spill and the output need, bytes.
SPILL_MARGIN_BYTES = 64 * 2**20


def disk_full_error(path: Path, exc: OSError) -> OutputPathError:
    """One clear line for a write that failed for lack of space (ENOSPC, or EFBIG under RLIMIT_FSIZE)."""
    why = "no space left on the device" if exc.errno == errno.ENOSPC else (
        "file size limit reached" if exc.errno == errno.EFBIG else exc.strerror or str(exc))
    return OutputPathError(f"{path}: cannot write ({why})")


def spill_room(folder: Path, spill_bytes: int, output_bytes: int) -> tuple[bool, int]:
    """Whether ``folder`` has room for a spill of ``spill_bytes`` besides an output of
    ``output_bytes`` and :data:`SPILL_MARGIN_BYTES`; and the free bytes seen."""
    free = shutil.disk_usage(folder).free
    return free >= spill_bytes + output_bytes + SPILL_MARGIN_BYTES, free


class Spill:
    """float32 ``(frames, channels)`` blocks written once, then read back once, in order.

    Parameters
    ----------
    folder : path-like
        Where the anonymous file lives (the output's folder, so the space checked is the right one).
    channels : int
    """

    def __init__(self, folder: str | os.PathLike, channels: int):
        self.folder, self.channels = Path(folder), channels
        self.frames = 0
        try:
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix=".audionorm-spill-")
        except OSError as exc:
            raise OutputPathError(f"{self.folder}: cannot create a spill file ({exc.strerror})") from None

    def write(self, block: np.ndarray) -> None:
        try:
            np.ascontiguousarray(block, dtype="<f4").tofile(self._file)
        except OSError as exc:
            raise disk_full_error(self.folder / "(spill)", exc) from None
        self.frames += len(block)

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """The frames written, from the start, ``block_frames`` at a time."""
        self._file.flush()
        self._file.seek(0)
        remaining = self.frames
        while remaining > 0:
            count = min(block_frames, remaining)
            block = np.fromfile(self._file, dtype="<f4", count=count * self.channels)
            if len(block) != count * self.channels:
                raise OutputPathError(f"{self.folder}: the spill file came back short")
            remaining -= count
            yield block.reshape(count, self.channels)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
