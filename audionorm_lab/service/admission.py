"""What a service worker accepts, decided before anything decodes, whatever mode a job asks for.

A job is admitted when:

- its paths lie under the storage root, links followed (:mod:`~audionorm_lab.service.storage`), when one is set;
- its input is media, not instructions (:func:`~audionorm_lab.media.probe.probe`: a container on the allowlist);
- its width is one memory can be bounded for (:func:`~audionorm_lab.dsp.geometry.check_width`), and the
  streaming core's working set for that width (:func:`~audionorm_lab.stream.pipeline.working_set_bytes`) fits the
  pool process's memory limit beside what the process already holds;
- its declared length is within the limit.

Each refusal is an :class:`~audionorm_lab.errors.AudionormError` with one line; the worker process lives on.
The settings come from the worker's environment (:meth:`Limits.from_environment`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import OptionError, WidthError
from ..dsp.geometry import check_width
from ..media.probe import AudioInfo, probe
from ..media.sinks import check_output_path
from ..stream.options import NormalizeOptions
from ..stream.pipeline import check_duration, working_set_bytes
from .storage import confine


def parse_bytes(name: str, text: str) -> int:
    """``"600M"``, ``"2G"``, ``"600MB"``, ``"1048576"`` -> bytes (powers of 10); ``name`` is the setting, for the error."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*", text.lower())
    if not match:
        raise OptionError(f"{name}={text!r}: use e.g. 600M or 2G")
    return int(float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)])


@dataclass(frozen=True)
class Limits:
    """A service worker's limits.

    Attributes
    ----------
    memory_limit_bytes : int or None
        One pool process's memory limit, bytes (``AUDIONORM_MEMORY_LIMIT``).
    max_seconds : float or None
        Longest input, seconds (``AUDIONORM_MAX_SECONDS``).
    storage_root : Path or None
        The folder every input and output must lie under (``AUDIONORM_STORAGE_ROOT``).
    """

    memory_limit_bytes: int | None = None
    max_seconds: float | None = None
    storage_root: Path | None = None

    @classmethod
    def from_environment(cls, environ=None) -> Limits:
        environ = os.environ if environ is None else environ
        memory = environ.get("AUDIONORM_MEMORY_LIMIT")
        seconds = environ.get("AUDIONORM_MAX_SECONDS")
        root = environ.get("AUDIONORM_STORAGE_ROOT")
        try:
            max_seconds = float(seconds) if seconds else None
        except ValueError:
            raise OptionError(f"AUDIONORM_MAX_SECONDS={seconds!r}: use a number of seconds, e.g. 14400") from None
        return cls(parse_bytes("AUDIONORM_MEMORY_LIMIT", memory) if memory else None, max_seconds,
                   Path(root) if root else None)


def resident_bytes() -> int:
    """This process's resident memory now, bytes (``/proc/self/statm``; its peak where that is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check_memory(info: AudioInfo, options: NormalizeOptions, limit_bytes: int | None) -> None:
    """Refuse an input whose streaming working set does not fit ``limit_bytes`` beside this process's memory."""
    if limit_bytes is None:
        return
    needed, held = working_set_bytes(info, options), resident_bytes()
    if held + needed > limit_bytes:
        raise WidthError(f"{info.path}: {info.channels} channels at {info.sample_rate:,} Hz need about "
                         f"{needed / 1e6:.0f} MB to stream beside the {held / 1e6:.0f} MB this process holds, over "
                         f"its {limit_bytes / 1e6:.0f} MB limit (AUDIONORM_MEMORY_LIMIT)")


@dataclass(frozen=True)
class Admitted:
    """A job a worker may run: its resolved paths, what its input is, and its options under the limits."""

    input_file: Path
    output_file: Path
    info: AudioInfo
    options: NormalizeOptions


def admit(input_file: str | os.PathLike, output_file: str | os.PathLike, options: NormalizeOptions,
          limits: Limits) -> Admitted:
    """Check a job against ``limits`` (see the module); the job as it may run. The options carry the duration
    limit on, so a decode that runs past it is stopped there.

    Raises
    ------
    AudionormError
    """
    if limits.storage_root is not None:
        input_file, output_file = confine(input_file, output_file, limits.storage_root)
    info = probe(input_file)
    check_width(info.path, info.channels, info.sample_rate)
    if limits.max_seconds is not None:
        options = replace(options, max_seconds=min(limits.max_seconds, options.max_seconds or limits.max_seconds))
    check_duration(info, options.max_seconds)
    check_memory(info, options, limits.memory_limit_bytes)
    return Admitted(Path(input_file), check_output_path(output_file, input_file), info, options)
