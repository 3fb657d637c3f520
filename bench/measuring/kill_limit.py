"""The memory limit the evidence runs under, chosen from what this machine measures.

The evidence is that full-load dies at a container's limit where streaming, on the same
file and the same limit, finishes. A fixed limit proves that only on machines like the
one it was picked on: full-load's peak moves with library versions and allocators, and
streaming's with its own improvements. So the limit is derived at run time:

- streaming's peak is **measured** on the file (or the longest of the files);
- full-load's peak is **predicted** for the file's decoded size, by the service's own
  in-memory model (:func:`audionorm_lab.service.processor.in_memory_peak_bytes`, which
  ``mode="auto"`` sizes its jobs with);
- the limit is their geometric mean: it sits the same factor above streaming's peak as
  below full-load's, and that factor must be at least ``1 + margin`` on each side.

When the two peaks are too close for that (a file too short for full-load to stand out),
:class:`NoRoomForLimit` says how long the file must be.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from audionorm_lab.service.processor import IN_MEMORY_PEAK_FACTOR, in_memory_peak_bytes

#: Each side's margin: the limit is at least 1.5 x streaming's measured peak and at most
#: full-load's predicted peak / 1.5.
MARGIN = 0.5


class NoRoomForLimit(ValueError):
    """Streaming's peak and full-load's predicted peak are too close for a limit with margin on both sides."""


@dataclass(frozen=True)
class KillLimit:
    """A limit between streaming's measured peak and full-load's predicted peak (bytes)."""

    limit_bytes: int
    streaming_peak_bytes: int
    full_load_predicted_bytes: int
    margin: float

    @property
    def streaming_headroom(self) -> float:
        """Limit over streaming's peak (>= 1 + margin)."""
        return self.limit_bytes / self.streaming_peak_bytes

    @property
    def full_load_excess(self) -> float:
        """Full-load's predicted peak over the limit (>= 1 + margin)."""
        return self.full_load_predicted_bytes / self.limit_bytes

    def explain(self, streaming: str = "streaming's measured peak",
                full_load: str = "full-load's predicted peak ({} MB, the service's in-memory model)") -> str:
        """One sentence for the notebook: the limit, and why (``streaming`` and ``full_load`` name the two peaks;
        ``{}`` in ``full_load`` takes the figure)."""
        mb = 1e6
        return (f"memory limit **{self.limit_bytes / mb:.0f} MB**: the geometric mean of {streaming} "
                f"({self.streaming_peak_bytes / mb:.0f} MB) and "
                f"{full_load.format(f'{self.full_load_predicted_bytes / mb:.0f}')}, so it is "
                f"{self.streaming_headroom:.1f}x streaming's peak and full-load needs {self.full_load_excess:.1f}x it "
                f"(each at least {1 + self.margin:.1f}x)")

    def to_dict(self) -> dict:
        return {**asdict(self), "streaming_headroom": self.streaming_headroom,
                "full_load_excess": self.full_load_excess}


def full_load_predicted_bytes(seconds: float, sample_rate: int = 44100, channels: int = 2) -> int:
    """Full-load's predicted peak RSS for ``seconds`` of audio at ``sample_rate`` (Hz) and ``channels``, bytes."""
    return int(in_memory_peak_bytes(seconds * sample_rate * channels * 4))


def worker_full_load_predicted_bytes(idle_worker_bytes: float, seconds: float, sample_rate: int = 44100,
                                     channels: int = 2) -> int:
    """Full-load's predicted peak for a whole worker in a memory container, bytes: the idle worker (main and pool
    processes, shared pages once, as measured) plus a pool process's predicted peak for ``seconds`` of audio (the
    in-memory model counts its whole RSS, imports included, so it errs high: the limit errs towards streaming)."""
    return int(idle_worker_bytes) + full_load_predicted_bytes(seconds, sample_rate, channels)


def between(streaming_peak_bytes: float, full_load_predicted_bytes: float, margin: float = MARGIN) -> KillLimit:
    """The limit between the two peaks (bytes), their geometric mean; :class:`NoRoomForLimit` when the two are
    closer than ``(1 + margin) ** 2``, with the decoded size full-load would need to stand out that far."""
    streaming, full = int(streaming_peak_bytes), int(full_load_predicted_bytes)
    if streaming <= 0:
        raise ValueError("streaming's peak must be measured (> 0 bytes)")
    needed = streaming * (1 + margin) ** 2
    if full < needed:
        decoded = (needed - in_memory_peak_bytes(0)) / IN_MEMORY_PEAK_FACTOR
        raise NoRoomForLimit(
            f"full-load's predicted peak ({full / 1e6:.0f} MB) is not {(1 + margin) ** 2:.2f}x streaming's measured "
            f"peak ({streaming / 1e6:.0f} MB): use a file that decodes to at least {decoded / 1e6:.0f} MB "
            f"(about {decoded / (44100 * 2 * 4) / 60:.1f} minutes of stereo 44.1 kHz)")
    return KillLimit(int(math.sqrt(streaming * full)), streaming, full, margin)
