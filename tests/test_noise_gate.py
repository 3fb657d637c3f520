"""Noise reduction in chunks: the context margin makes it match whole-file processing."""

import math

import numpy as np
import pytest

from audionorm_lab import NormalizeOptions, normalize_array
from conftest import speech_like

RATE = 44100
GATE_ONLY = dict(highpass_hz=None, voice_band_hz=None, normalize_loudness=False)


def relative_error_db(out: np.ndarray, reference: np.ndarray) -> float:
    """RMS of the difference relative to the reference's RMS, in dB."""
    error = np.sqrt(np.mean((out.astype(np.float64) - reference) ** 2))
    return 20 * math.log10(max(error, 1e-30) / np.sqrt(np.mean(reference.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def speech():
    return speech_like(25.0, RATE, 2, seed=3)


@pytest.fixture(scope="module", params=["service", "file"])
def grid(request):
    """Both STFT grids of the gate: the service's pieces, and one grid from frame 0."""
    return request.param


@pytest.fixture(scope="module")
def whole(speech, grid):
    out, report = normalize_array(speech, RATE, chunk_seconds=math.inf, gate_grid=grid, **GATE_ONLY)
    assert report.chunks == 1
    return out


@pytest.mark.parametrize("chunk_seconds", [NormalizeOptions().chunk_seconds, 3.1])
def test_default_overlap_matches_whole_file(speech, whole, grid, chunk_seconds):
    out, report = normalize_array(speech, RATE, chunk_seconds=chunk_seconds, gate_grid=grid, **GATE_ONLY)
    assert report.chunks >= 3
    assert report.overlap_frames / RATE >= NormalizeOptions().overlap_seconds
    assert relative_error_db(out, whole) <= -60.0
    # the gate did something: the output is not the input
    assert relative_error_db(out, speech) > -20.0


def boundary_mask(length: int, chunk_frames: int, radius: int) -> np.ndarray:
    near = np.zeros(length, bool)
    for boundary in range(chunk_frames, length, chunk_frames):
        near[max(0, boundary - radius): boundary + radius] = True
    return near


def test_without_overlap_the_error_sits_at_chunk_boundaries(speech, whole, grid):
    out, report = normalize_array(speech, RATE, chunk_seconds=3.1, overlap_seconds=0, gate_grid=grid, **GATE_ONLY)
    error = np.abs(out - whole).max(axis=1)
    near = boundary_mask(len(speech), report.chunk_frames, radius=4096)
    assert relative_error_db(out, whole) > -50.0, "with no context the boundaries must show"
    assert error[near].max() > 1e-3
    assert error[~near].max() <= 1e-6, "away from boundaries the output is the whole-file output"


def test_naive_per_chunk_profiles_differ_everywhere(speech, whole, grid):
    """The naive fix (overlap 0, each chunk its own noise profile) errs far more than a missing margin."""
    no_overlap, report = normalize_array(speech, RATE, chunk_seconds=3.1, overlap_seconds=0, gate_grid=grid,
                                         **GATE_ONLY)
    naive, _ = normalize_array(speech, RATE, chunk_seconds=3.1, overlap_seconds=0, noise_profile="chunk",
                               gate_grid=grid, **GATE_ONLY)
    near = boundary_mask(len(speech), report.chunk_frames, radius=4096)
    naive_db, no_overlap_db = relative_error_db(naive, whole), relative_error_db(no_overlap, whole)
    assert naive_db > no_overlap_db + 6.0
    assert relative_error_db(naive[~near], whole[~near]) > -40.0


def test_error_falls_as_overlap_grows(speech, whole, grid):
    errors = [relative_error_db(normalize_array(speech, RATE, chunk_seconds=3.1, overlap_seconds=overlap,
                                                gate_grid=grid, **GATE_ONLY)[0], whole)
              for overlap in (0.0, 0.01, 0.03, 0.1)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[3] <= -60.0
