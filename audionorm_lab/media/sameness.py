"""How far two output files are from each other: their bytes, and their decoded samples, block by block.

What an operator checks when a new processor replaces the service's: are the files the same (bytes),
and if not, are the samples (decoded, in the file's own steps), and how far apart are they.
"""

from __future__ import annotations

import filecmp
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

#: A 16-bit step, in full-scale units.
STEP = 1.0 / 32768


@dataclass(frozen=True)
class Sameness:
    """Two files compared. ``samples_differing`` counts samples (frames x channels) that decode differently,
    a frame only one file has counting for all its channels; ``largest_step`` is the largest difference in
    16-bit steps; ``difference_db`` the difference's power below the reference's, dB (-inf: identical)."""

    identical_bytes: bool
    identical_samples: bool
    frames: int
    reference_frames: int
    samples_differing: int
    largest_step: float
    difference_db: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def compare_files(output: str | Path, reference: str | Path, block_frames: int = 1 << 18) -> Sameness:
    """Compare ``output`` with ``reference`` (any format libsndfile reads), in constant memory."""
    same_bytes = filecmp.cmp(output, reference, shallow=False)
    differing, largest, error, power, frames, reference_frames = 0, 0.0, 0.0, 0.0, 0, 0
    with sf.SoundFile(str(output)) as out, sf.SoundFile(str(reference)) as ref:
        channels = ref.channels
        while True:
            a = out.read(block_frames, dtype="float64", always_2d=True)
            b = ref.read(block_frames, dtype="float64", always_2d=True)
            frames, reference_frames = frames + len(a), reference_frames + len(b)
            if len(a) == 0 and len(b) == 0:
                break
            common = min(len(a), len(b))
            if a.shape[1] != b.shape[1]:
                differing += (len(a) + len(b)) * channels
                continue
            delta = a[:common] - b[:common]
            differing += int(np.count_nonzero(delta)) + (max(len(a), len(b)) - common) * channels
            if common:
                largest = max(largest, float(np.max(np.abs(delta))) / STEP)
                error += float(np.sum(delta * delta))
                power += float(np.sum(b[:common] * b[:common]))
    if error == 0:
        db = -math.inf
    else:
        db = 10 * math.log10(error / power) if power > 0 else math.inf
    return Sameness(same_bytes, differing == 0, frames, reference_frames, differing, largest, db)
