"""The noise gate on a whole input, as the service ran it: ``noisereduce.reduce_noise(y, sr, stationary=True)``.

Full-load runs it on every file. The streaming core runs it on an input shorter than one of the gate's STFT frames
(:data:`SHORT_INPUT_FRAMES`), where its fixed grid cannot follow noisereduce: scipy's STFT shrinks its frame to
the signal's length (so 769 to 1023 frames are gated on frames of that length, hopping by length - 768), and
refuses a signal of 768 frames or fewer. Such an input holds at most 1023 frames per channel, so running the
service's own gate on it keeps memory bounded, and gives the service's samples or its refusal.

noisereduce's refusals become errors that name the input: :class:`~audionorm_lab.errors.SampleRateError` for its
mask-smoothing checks, :class:`~audionorm_lab.errors.TooShortError` for scipy's frame check, and
:class:`~audionorm_lab.errors.DecodeError` for anything else it refuses.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..dsp.noise_gate import NoiseGate
from ..errors import DecodeError, SampleRateError, TooShortError

#: An input shorter than this many frames is gated whole, with noisereduce itself (one STFT frame of the gate).
SHORT_INPUT_FRAMES = NoiseGate.N_FFT


def service_gate(samples: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    """``noisereduce.reduce_noise(y=samples.T, sr=sample_rate, stationary=True).T`` (``samples``: float32
    ``(frames, channels)``; ``sample_rate`` in Hz); ``name`` names the input in an error.

    Raises
    ------
    SampleRateError, TooShortError, DecodeError
        noisereduce's own refusals, in its words.
    """
    import noisereduce

    try:
        with warnings.catch_warnings():  # scipy's note that it shrank the STFT frame to the input: said in the report
            warnings.filterwarnings("ignore", message=r"nperseg = \d+ is greater than input length")
            return noisereduce.reduce_noise(y=samples.T, sr=sample_rate, stationary=True).T
    except ValueError as exc:
        text = str(exc)
        kind = (SampleRateError if "mask_smooth" in text else TooShortError if "noverlap must be less than nperseg"
                in text else DecodeError)
        raise kind(f"{name}: the service's noise gate refused it ({text.rstrip('.')}: "
                   f"{len(samples)} frames at {sample_rate} Hz)") from None
