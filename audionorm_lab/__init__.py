"""audionorm-lab: constant-memory audio normalization, and the evidence for it.

Public API
----------
normalize_file(src, dst, **options) -> NormalizeReport
normalize_array(samples, sample_rate, **options) -> (array, NormalizeReport)
integrated_loudness(path) -> float (LUFS)
full_load(src, dst, **options), ffmpeg_segments(src, dst, concat=..., **options), STRATEGIES
AudioProcessor(...).process_audio_job(AudioJob(input_file, output_file, options))
DeliveryLedger(redis_client, max_deliveries=3): the service's delivery policy (every job finishes)
admit(input_file, output_file, options, Limits(...)): what a service worker accepts, before anything decodes
snr_db(output, reference), seam_metric(x, rate, boundaries)
compare_files(output, reference) -> Sameness: bytes and decoded samples of two outputs
normalize_file(src, dst, compat="service"): the service's decode and 16-bit export (its file, byte for byte)
NormalizeOptions, NormalizeReport, LoudnessMeter, probe, AudioInfo
AudionormError and its subclasses (bad input, output or option)
"""

from .service.admission import Limits, admit
from .service.delivery import DeliveryLedger
from .errors import (
    AudionormError,
    DecodeError,
    EmptyInputError,
    FfmpegNotFoundError,
    InputNotFoundError,
    NotAudioError,
    OptionError,
    OutputPathError,
    PathOutsideRootError,
    SampleRateError,
    TooLongError,
    TooShortError,
    UnsupportedFormatError,
    WidthError,
)
from .media.probe import AudioInfo, probe
from .dsp.loudness import LoudnessMeter
from .media.file_loudness import integrated_loudness
from .dsp.metrics import seam_metric, snr_db
from .stream.options import COMPAT_MODES, NormalizeOptions
from .stream.pipeline import NormalizeReport, normalize_array, normalize_file
from .service.processor import AudioJob, AudioProcessor
from .media.sameness import Sameness, compare_files
from .strategies import STRATEGIES, ffmpeg_segments, full_load

__version__ = "0.1.0"

__all__ = [
    "COMPAT_MODES", "Sameness", "compare_files", "STRATEGIES", "AudioJob", "AudioProcessor", "DeliveryLedger", "Limits", "admit", "PathOutsideRootError", "SampleRateError",
    "TooLongError", "TooShortError", "WidthError", "ffmpeg_segments", "full_load", "seam_metric", "snr_db",
    "AudioInfo", "AudionormError", "DecodeError", "EmptyInputError", "FfmpegNotFoundError", "InputNotFoundError",
    "LoudnessMeter", "NormalizeOptions", "NormalizeReport", "NotAudioError", "OptionError", "OutputPathError",
    "UnsupportedFormatError", "integrated_loudness", "normalize_array", "normalize_file", "probe",
]
