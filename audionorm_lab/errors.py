"""The errors the toolkit raises for bad input, each naming the file and the cause.

The CLI turns any :class:`AudionormError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class AudionormError(Exception):
    """Base class: the input, the output path or an option cannot be used as given."""


class InputNotFoundError(AudionormError):
    """The input path does not exist or is not a regular file."""


class EmptyInputError(AudionormError):
    """The input file has zero bytes, or decodes to zero audio frames."""


class NotAudioError(AudionormError):
    """Neither libsndfile nor ffmpeg recognises the file as audio."""


class DecodeError(AudionormError):
    """The decoder started but failed part-way (its last message is included)."""


class UnsupportedFormatError(AudionormError):
    """The output extension names a format no sink here can write."""


class OutputPathError(AudionormError):
    """The output cannot be written: missing or unwritable folder, or the same file as the input."""


class OptionError(AudionormError):
    """An option is out of range for this input (for example a cutoff above Nyquist)."""


class SampleRateError(OptionError):
    """A stage cannot run at the input's sample rate. The noise gate: noisereduce's stationary gate, as the service
    calls it, refuses rates below 5120 Hz (50 ms is less than one 256-sample hop) and above 256 kHz (500 Hz is less
    than one bin of a 1024-point STFT); without it (``denoise=False``) such a file processes. The loudness meter:
    below 3364 Hz BS.1770's K-weighting cannot be built; without loudness normalization
    (``normalize_loudness=False``) such a file processes."""


class TooShortError(AudionormError):
    """The input is too short for the noise gate: noisereduce's STFT (1024 samples a frame, 768 of overlap) refuses
    a signal of 768 frames or fewer, as the service did. Without the noise gate such a file processes."""


class FfmpegNotFoundError(AudionormError):
    """ffmpeg or ffprobe is needed for this input and is not on PATH."""


class WidthError(AudionormError):
    """The input is wider (channels x sample rate) than memory can be bounded for, here or in the memory
    limit the service was given; nothing was decoded."""


class TooLongError(AudionormError):
    """The input is longer than the limit it was given (declared by its header, or found while decoding)."""


class PathOutsideRootError(AudionormError):
    """An input or output path resolves (symbolic links followed) outside the storage root the service confines
    paths to."""
