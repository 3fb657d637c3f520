"""Fidelity figures for comparing outputs: SNR against a reference, and seams at chunk boundaries."""

from __future__ import annotations

import math

import numpy as np


def snr_db(output: np.ndarray, reference: np.ndarray) -> float:
    """Reference power over the power of (output - reference), dB; ``inf`` when identical.

    The arrays are cut to the shorter length (codecs may add a few frames).
    """
    frames = min(len(output), len(reference))
    out, ref = output[:frames].astype(np.float64), reference[:frames].astype(np.float64)
    error = np.mean((out - ref) ** 2)
    power = np.mean(ref ** 2)
    if error == 0:
        return math.inf
    return 10 * math.log10(power / error) if power > 0 else -math.inf


def snr_db_files(output_path, reference_path, block_frames: int = 1 << 18) -> float:
    """:func:`snr_db` of two audio files, read block by block (constant memory)."""
    import soundfile as sf

    error = power = 0.0
    with sf.SoundFile(str(output_path)) as out, sf.SoundFile(str(reference_path)) as ref:
        while True:
            a = out.read(block_frames, dtype="float64", always_2d=True)
            b = ref.read(block_frames, dtype="float64", always_2d=True)
            frames = min(len(a), len(b))
            if frames == 0:
                break
            error += float(np.sum((a[:frames] - b[:frames]) ** 2))
            power += float(np.sum(b[:frames] ** 2))
    if error == 0:
        return math.inf
    return 10 * math.log10(power / error) if power > 0 else -math.inf


def _jump_ratios(x: np.ndarray, positions: np.ndarray, window_frames: int) -> np.ndarray:
    """At each position p, |x[p] - x[p-1]| over the largest such jump within ``window_frames`` around p."""
    jumps = np.abs(np.diff(x, axis=0)).max(axis=1) if x.ndim == 2 else np.abs(np.diff(x))
    ratios = []
    for p in positions:
        j = p - 1  # jumps[j] is x[p] - x[p-1]
        lo, hi = max(0, j - window_frames), min(len(jumps), j + window_frames + 1)
        around = np.concatenate([jumps[lo: max(lo, j - 1)], jumps[min(hi, j + 2): hi]])
        if len(around) == 0 or j < 0 or j >= len(jumps):
            continue
        largest = around.max()
        ratios.append(jumps[j] / largest if largest > 0 else (math.inf if jumps[j] > 0 else 1.0))
    return np.array(ratios)


def _level_steps_db(x: np.ndarray, positions: np.ndarray, window_frames: int) -> np.ndarray:
    """|level just after p - level just before p| in dB, RMS over ``window_frames`` each side."""
    steps = []
    for p in positions:
        before, after = x[max(0, p - window_frames): p], x[p: p + window_frames]
        if len(before) == 0 or len(after) == 0:
            continue
        rms_before, rms_after = np.sqrt(np.mean(before.astype(np.float64) ** 2)), np.sqrt(np.mean(after ** 2))
        if rms_before > 0 and rms_after > 0:
            steps.append(abs(20 * math.log10(rms_after / rms_before)))
    return np.array(steps)


def seam_metric_file(path, boundaries: list[int], window_seconds: float = 0.005,
                     level_window_seconds: float = 0.05) -> dict:
    """:func:`seam_metric` of an audio file, reading only a window around each boundary and midpoint."""
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate, total = f.samplerate, f.frames
        window = max(2, int(window_seconds * rate))
        level_window = max(1, int(level_window_seconds * rate))
        half = max(window, level_window) + 2
        boundaries = sorted(b for b in boundaries if 0 < b < total)
        edges = [0, *boundaries, total]
        controls = [(a + b) // 2 for a, b in zip(edges[:-1], edges[1:])][1:]

        def measure(positions):
            ratios, steps = [], []
            for position in positions:
                start = max(0, position - half)
                f.seek(start)
                piece = f.read(2 * half, dtype="float32", always_2d=True)
                ratios.extend(_jump_ratios(piece, np.array([position - start]), window))
                steps.extend(_level_steps_db(piece, np.array([position - start]), level_window))
            return _summary(np.array(ratios), np.array(steps))

        jump, step = measure(boundaries)
        control_jump, control_step = measure(controls)
    return {"boundaries": len(boundaries), "jump_ratio": jump, "level_step_db": step,
            "control_jump_ratio": control_jump, "control_level_step_db": control_step}


def _summary(ratios: np.ndarray, steps: np.ndarray) -> tuple[float, float]:
    """The largest jump ratio and the median level step (0 when there is nothing to measure)."""
    return (float(ratios.max()) if len(ratios) else 0.0, float(np.median(steps)) if len(steps) else 0.0)


def seam_metric(x: np.ndarray, sample_rate: int, boundaries: list[int], window_seconds: float = 0.005,
                level_window_seconds: float = 0.05) -> dict:
    """How much chunk boundaries stand out, against the same figures midway between boundaries.

    Parameters
    ----------
    x : ndarray, (frames,) or (frames, channels)
    sample_rate : int
        Hz.
    boundaries : list of int
        Frames at which a chunk starts (0 excluded).
    window_seconds : float
        Neighbourhood a boundary's jump is compared with, seconds each side.
    level_window_seconds : float
        Span over which the level before and after is measured, seconds each side.

    Returns
    -------
    dict
        ``jump_ratio``: the largest, over boundaries, of the sample-to-sample jump at the
        boundary divided by the largest jump elsewhere in its neighbourhood (> 1: a
        click louder than anything around it). ``level_step_db``: the median level
        step across boundaries, dB. ``control_*``: the same at the midpoints between
        boundaries, where nothing was cut, as the baseline a clean join must match.
    """
    boundaries = np.array(sorted(b for b in boundaries if 0 < b < len(x)), dtype=np.int64)
    edges = np.concatenate([[0], boundaries, [len(x)]])
    controls = ((edges[:-1] + edges[1:]) // 2)[1:]
    return _seam_summary(x, sample_rate, boundaries, controls, window_seconds, level_window_seconds)


def _seam_summary(x: np.ndarray, sample_rate: int, boundaries: np.ndarray, controls: np.ndarray,
                  window_seconds: float = 0.005, level_window_seconds: float = 0.05) -> dict:
    window = max(2, int(window_seconds * sample_rate))
    level_window = max(1, int(level_window_seconds * sample_rate))
    jump, step = _summary(_jump_ratios(x, boundaries, window), _level_steps_db(x, boundaries, level_window))
    control_jump, control_step = _summary(_jump_ratios(x, controls, window), _level_steps_db(x, controls, level_window))
    return {"boundaries": int(len(boundaries)), "jump_ratio": jump, "level_step_db": step,
            "control_jump_ratio": control_jump, "control_level_step_db": control_step}
