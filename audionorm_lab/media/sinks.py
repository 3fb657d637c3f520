"""Audio out, in blocks, never half-written.

Sinks write blocks to a temporary file in the target folder and rename it into
place only when the whole output is written, so a reader never sees half a file.
"""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import OutputPathError, UnsupportedFormatError


#: Output extension -> (libsndfile major format, default subtype).
SINK_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "FLOAT"),
    ".flac": ("FLAC", "PCM_24"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}

_WAV_LIMIT_BYTES = 0xFFFF_FFFF - 1024  # RIFF sizes are 32-bit; above this write RF64



def check_output_path(dst: str | os.PathLike, src: str | os.PathLike | None = None) -> Path:
    """Check that ``dst`` can be written as a new file, before any work is done.

    Raises
    ------
    UnsupportedFormatError
        The extension is not one of :data:`SINK_FORMATS`.
    OutputPathError
        The folder is missing or unwritable, or ``dst`` is the input itself.
    """
    dst = Path(dst)
    if dst.suffix.lower() not in SINK_FORMATS:
        raise UnsupportedFormatError(
            f"{dst}: cannot write '{dst.suffix or '(no extension)'}' files; use one of {', '.join(SINK_FORMATS)}"
        )
    folder = dst.parent
    if not folder.is_dir():
        raise OutputPathError(f"{dst}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{dst}: output folder {folder} is not writable")
    if dst.is_dir():
        raise OutputPathError(f"{dst}: is a folder")
    if src is not None and dst.exists() and os.path.samefile(dst, src):
        raise OutputPathError(f"{dst}: output would overwrite the input")
    return dst


PARTIAL_SUFFIX = ".part"


def make_partial(path: Path) -> Path:
    """A new empty temporary file for ``path``, in its folder: ``.<name>.<random>.part``, the name
    :func:`partial_outputs` finds. Outputs are written there and renamed into place when complete."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
    os.close(fd)
    return Path(name)


def publish_partial(partial: Path, path: Path) -> None:
    """Rename a complete temporary file (:func:`make_partial`) into place as ``path``, with the permissions
    a new file gets under the process's umask (mkstemp made it private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)
    os.replace(partial, path)


def partial_outputs(path) -> list[Path]:
    """The temporary files (:func:`make_partial`) a run for ``path`` left behind (killed before its rename),
    in ``path``'s folder. A live run's own file is among them: remove them only when no run writes ``path``."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{PARTIAL_SUFFIX}"))


class AtomicSink:
    """Write float32 ``(frames, channels)`` blocks to a temporary file, renamed into place on success.

    Used as a context manager: on an exception, the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : path-like
        Final output file; its extension picks the format (see :data:`SINK_FORMATS`).
    sample_rate : int
        Hz.
    channels : int
    subtype : str, optional
        libsndfile subtype (``"PCM_16"``, ``"FLOAT"``...); the format's default otherwise.
    expected_frames : int, optional
        Used to switch a ``.wav`` to RF64 when it would pass the 4 GiB RIFF limit.
    """

    def __init__(self, path, sample_rate: int, channels: int, subtype: str | None = None,
                 expected_frames: int | None = None):
        self.path = check_output_path(path)
        major, default_subtype = SINK_FORMATS[self.path.suffix.lower()]
        self.subtype = subtype or default_subtype
        if major == "WAV" and expected_frames is not None:
            width = 4 if self.subtype in ("FLOAT", "PCM_32") else 8 if self.subtype == "DOUBLE" else 3
            if expected_frames * channels * width > _WAV_LIMIT_BYTES:
                major = "RF64"
        self.format, self.sample_rate, self.channels = major, sample_rate, channels
        self.frames_written = 0
        self._tmp: Path | None = None
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> "AtomicSink":
        try:
            self._tmp = make_partial(self.path)
        except OSError as exc:
            raise OutputPathError(f"{self.path}: cannot create a file in {self.path.parent} ({exc.strerror})") from None
        try:
            self._file = sf.SoundFile(str(self._tmp), "w", samplerate=self.sample_rate, channels=self.channels,
                                      format=self.format, subtype=self.subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise UnsupportedFormatError(
                f"{self.path}: cannot write {self.format}/{self.subtype} at {self.sample_rate} Hz, "
                f"{self.channels} channels ({exc})"
            ) from None
        return self

    @property
    def folder(self) -> Path:
        """The output's folder: where its temporary file (and any spill) lives."""
        return self.path.parent

    @property
    def rewritable(self) -> bool:
        """Whether the frames written can be read back and rewritten in place without loss
        (32-bit float WAV): the pipeline then applies its gain in the output itself."""
        return self.format in ("WAV", "RF64") and self.subtype == "FLOAT"

    def estimated_bytes(self, frames: int) -> int:
        """The finished file's size at most, bytes, for free-space checks (compressed formats take less)."""
        width = {"FLOAT": 4, "PCM_32": 4, "DOUBLE": 8, "PCM_24": 3, "PCM_U8": 1, "PCM_S8": 1}.get(self.subtype, 2)
        return frames * self.channels * width

    def write(self, block: np.ndarray) -> None:
        try:
            self._file.write(block)
        except (AssertionError, sf.LibsndfileError, RuntimeError, OSError):
            # libsndfile reports a short write without errno: ENOSPC or RLIMIT_FSIZE (EFBIG)
            raise OutputPathError(f"{self.path}: cannot write after {self.frames_written} frames "
                                  f"(no space left, or a file size limit)") from None
        self.frames_written += len(block)

    def rewrite(self, transform, block_frames: int = 1 << 16) -> None:
        """Replace every frame written by ``transform(block)``, in place, ``block_frames`` at a time.

        Only for :attr:`rewritable` sinks; the file keeps its temporary name until the sink exits.
        """
        if not self.rewritable:
            raise ValueError(f"{self.format}/{self.subtype} cannot be rewritten in place")
        self._file.close()
        try:
            with sf.SoundFile(str(self._tmp), "r+") as f:
                position = 0
                while position < self.frames_written:
                    f.seek(position)
                    block = f.read(min(block_frames, self.frames_written - position), dtype="float32",
                                   always_2d=True)
                    if len(block) == 0:
                        raise OutputPathError(f"{self.path}: its temporary file came back short")
                    f.seek(position)
                    f.write(transform(block))
                    position += len(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise OutputPathError(f"{self.path}: cannot rewrite its temporary file ({exc})") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._file.closed:
                self._file.close()
            if exc_type is None:
                publish_partial(self._tmp, self.path)
                return
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        self._tmp.unlink(missing_ok=True)
