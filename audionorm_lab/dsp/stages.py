"""The service's operations as stateful block processors.

Each stage takes float32 ``(frames, channels)`` blocks. ``process(block)`` goes on
from where the last call stopped; ``reset()`` starts a new stream. A stage says how
much context it needs on each side (``context_frames``) and on which grid chunk
boundaries must fall (``alignment_frames``); the pipeline, not the stage, supplies
that context (overlap-save). IIR stages need none: they carry their filter state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from .sections import butterworth, filter_frames

class IIRFilter:
    """A Butterworth filter as second-order sections, its state carried across blocks.

    Chunked output equals whole-signal ``scipy.signal.sosfilt`` output, rounded to float32,
    bit for bit for any block lengths, because the state ``zi`` carries over
    (:func:`~audionorm_lab.dsp.sections.filter_frames`).

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    channels : int
    name : str
        For reports.
    """

    context_frames = 0
    alignment_frames = 1

    def __init__(self, sos: np.ndarray, channels: int, name: str):
        self.sos, self.channels, self.name = sos, channels, name
        self.reset()

    def reset(self) -> None:
        self._zi = np.zeros((self.sos.shape[0], 2, self.channels))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter the next block: float64 state and arithmetic, float32 out. (The pipeline hands
        it :data:`~audionorm_lab.dsp.geometry.BLOCK_SAMPLES` at a time, which bounds the temporaries.)"""
        return filter_frames(self.sos, block, self._zi)


def highpass(cutoff_hz: float, sample_rate: int, channels: int, order: int = 4) -> IIRFilter:
    """High-pass at ``cutoff_hz`` (Hz), removing rumble and hum's fundamental region."""
    nyquist = sample_rate / 2
    if not 0 < cutoff_hz < nyquist:
        raise OptionError(f"high-pass cutoff {cutoff_hz:g} Hz must lie between 0 and {nyquist:g} Hz (Nyquist)")
    return IIRFilter(butterworth(order, cutoff_hz, "highpass", sample_rate), channels, f"highpass {cutoff_hz:g} Hz")


def voice_band(low_hz: float, high_hz: float, sample_rate: int, channels: int, order: int = 4
               ) -> tuple[IIRFilter, str | None]:
    """The service's "isolate vocals": a speech band-pass from ``low_hz`` to ``high_hz`` (Hz).

    When ``high_hz`` is at or above 95 % of Nyquist (for example 8 kHz at a 16 kHz
    rate) there is nothing above the band to remove, and the stage is a high-pass at
    ``low_hz``; the second value returned is a note saying so (None otherwise).
    """
    nyquist = sample_rate / 2
    if not 0 < low_hz < high_hz:
        raise OptionError(f"voice band {low_hz:g}-{high_hz:g} Hz: low edge must be above 0 and below the high edge")
    if low_hz >= 0.95 * nyquist:
        raise OptionError(f"voice band low edge {low_hz:g} Hz is above Nyquist ({nyquist:g} Hz)")
    if high_hz >= 0.95 * nyquist:
        sos = butterworth(order, low_hz, "highpass", sample_rate)
        note = (f"voice band upper edge {high_hz:g} Hz is at or above Nyquist at {sample_rate} Hz: "
                f"voice band applied as a {low_hz:g} Hz high-pass")
        return IIRFilter(sos, channels, f"voice band {low_hz:g} Hz-Nyquist"), note
    sos = butterworth(order, (low_hz, high_hz), "bandpass", sample_rate)
    return IIRFilter(sos, channels, f"voice band {low_hz:g}-{high_hz:g} Hz"), None


@dataclass(frozen=True)
class ChainSections:
    """The chain's IIR stages for one rate, as one cascade of second-order sections.

    ``sos`` stacks the stages' sections in their order (the high-pass, then the voice band), or is
    None when every IIR stage is off; ``names`` are the stages' names, ``notes`` what their design
    had to say (a voice band that became a high-pass).
    """

    sos: np.ndarray | None
    names: tuple[str, ...]
    notes: tuple[str, ...]

    def cascade(self, channels: int) -> "IIRFilter | None":
        """The stages as one stateful filter over ``channels``: one pass over the samples, whose sections
        the CPU overlaps (:mod:`audionorm_lab.dsp.sections`), instead of one pass per stage."""
        return None if self.sos is None else IIRFilter(self.sos, channels, " + ".join(self.names))


def chain_sections(highpass_hz: float | None, voice_band_hz: tuple[float, float] | None, sample_rate: int
                   ) -> ChainSections:
    """The one definition of the chain's IIR stages (:class:`~audionorm_lab.stream.options.NormalizeOptions`'
    ``highpass_hz`` and ``voice_band_hz``, Hz) at ``sample_rate`` (Hz): the pipeline, the bench and the
    tests all build them here."""
    stages, notes = [], []
    if highpass_hz is not None:
        stages.append(highpass(highpass_hz, sample_rate, 1))
    if voice_band_hz is not None:
        band, note = voice_band(*voice_band_hz, sample_rate, 1)
        stages.append(band)
        notes += [note] if note else []
    sos = np.ascontiguousarray(np.vstack([stage.sos for stage in stages])) if stages else None
    return ChainSections(sos, tuple(stage.name for stage in stages), tuple(notes))


def dbfs(linear: float) -> float:
    """A linear level (1.0 = full scale) in dBFS; ``-inf`` for 0."""
    return 20.0 * math.log10(linear) if linear > 0 else float("-inf")


def limit_gain(gain_db: float, peak: float, ceiling_dbfs: float) -> tuple[float, bool]:
    """Lower ``gain_db`` (dB) so that a sample peak of ``peak`` (linear, 1.0 = 0 dBFS) stays under
    ``ceiling_dbfs`` (dBFS). Returns the gain and whether the ceiling lowered it."""
    if peak <= 0.0:
        return gain_db, False
    headroom_db = ceiling_dbfs - 20.0 * math.log10(peak)
    if gain_db > headroom_db:
        return headroom_db, True
    return gain_db, False


class Gain:
    """A fixed gain in dB, applied sample by sample (no context, no state)."""

    context_frames = 0
    alignment_frames = 1

    def __init__(self, gain_db: float):
        self.gain_db = gain_db
        self._factor = np.float32(10.0 ** (gain_db / 20.0))

    def reset(self) -> None:
        """Nothing to forget."""

    def process(self, block: np.ndarray) -> np.ndarray:
        return block * self._factor
