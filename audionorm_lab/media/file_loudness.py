"""A file's integrated loudness (LUFS), streamed: the meter of :mod:`audionorm_lab.dsp.loudness` over the
file's blocks."""

from __future__ import annotations

import os

import numpy as np

from ..dsp.loudness import LoudnessMeter
from .sources import open_source


def integrated_loudness(path: str | os.PathLike, block_seconds: float = 10.0) -> float:
    """Integrated loudness of an audio file in LUFS, streamed in blocks of ``block_seconds``.

    Raises an :class:`~audionorm_lab.errors.AudionormError` for input that cannot be read.
    Non-finite samples count as 0.
    """
    with open_source(path) as source:
        meter = LoudnessMeter(source.info.sample_rate, source.info.channels)
        for block in source.blocks(max(1, int(block_seconds * source.info.sample_rate))):
            meter.update(np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0))
    return meter.integrated()
