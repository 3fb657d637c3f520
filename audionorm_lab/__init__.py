"""audionorm-lab: constant-memory audio normalization, and the evidence for it.

Public API
----------
normalize_file(src, dst, **options) -> NormalizeReport
normalize_array(samples, sample_rate, **options) -> (array, NormalizeReport)
integrated_loudness(path) -> float (LUFS)
NormalizeOptions, NormalizeReport, LoudnessMeter, probe, AudioInfo
AudionormError and its subclasses (bad input, output or option)
"""

from .errors import (
    AudionormError,
    DecodeError,
    EmptyInputError,
    FfmpegNotFoundError,
    InputNotFoundError,
    NotAudioError,
    OptionError,
    OutputPathError,
    UnsupportedFormatError,
)
from .io import AudioInfo, probe
from .loudness import LoudnessMeter, integrated_loudness
from .options import NormalizeOptions
from .pipeline import NormalizeReport, normalize_array, normalize_file

__version__ = "0.1.0"

__all__ = [
    "AudioInfo", "AudionormError", "DecodeError", "EmptyInputError", "FfmpegNotFoundError", "InputNotFoundError",
    "LoudnessMeter", "NormalizeOptions", "NormalizeReport", "NotAudioError", "OptionError", "OutputPathError",
    "UnsupportedFormatError", "integrated_loudness", "normalize_array", "normalize_file", "probe",
]
