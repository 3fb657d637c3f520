"""python -m bench sections: the IIR sections' loop against scipy.signal.sosfilt, and what each costs to import.

    python -m bench sections [--rate 44100] [--repeat 200] [--json]

For the chain's cascade (6 sections) and the K-weighting (2), on 1, 2 and 6 channels: the
median time of :func:`audionorm_lab.dsp.sections.filter_frames` and of ``sosfilt(sos, x, axis=0,
zi=state)`` rounded to float32 (what the chain used before) per block of 65,536 frames (the
pipeline's block on a stereo input, :data:`~audionorm_lab.dsp.geometry.BLOCK_SAMPLES` / 2), and whether
the two agree bit for bit.
Then the import time of ``audionorm_lab`` and of ``scipy.signal``, each in a fresh Python
(median of 5): the start every run pays.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

IMPORTS = {"audionorm_lab": "import audionorm_lab", "scipy.signal": "import scipy.signal"}


def _median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def loop_rows(rate: int, repeat: int) -> list[dict]:
    """One row per (stage, channels): ``ours_ms``, ``scipy_ms``, ``speedup``, ``bit_for_bit``."""
    from scipy import signal

    from audionorm_lab import NormalizeOptions
    from audionorm_lab.dsp.geometry import BLOCK_SAMPLES
    from audionorm_lab.dsp.loudness import k_weighting_sos
    from audionorm_lab.dsp.sections import filter_frames
    from audionorm_lab.dsp.stages import chain_sections

    options = NormalizeOptions()  # the default chain's stages
    cascade = chain_sections(options.highpass_hz, options.voice_band_hz, rate).sos
    stages = {"chain cascade (6 sections)": cascade, "K-weighting (2 sections)": k_weighting_sos(rate)}
    frames = BLOCK_SAMPLES // 2  # the pipeline's block on a stereo input: every channel count timed on as many frames
    rows = []
    for name, sos in stages.items():
        for channels in (1, 2, 6):
            x = (np.random.default_rng(channels).standard_normal((frames, channels)) * 0.1).astype(np.float32)
            state = np.zeros((len(sos), 2, channels))
            ours = filter_frames(sos, x, state.copy())
            theirs = signal.sosfilt(sos, x, axis=0, zi=state.copy())[0].astype(np.float32)
            out = np.empty_like(x)
            ours_ms = _median_ms(lambda: filter_frames(sos, x, state, out=out), repeat)
            scipy_ms = _median_ms(lambda: signal.sosfilt(sos, x, axis=0, zi=state)[0].astype(np.float32), repeat)
            rows.append({"stage": name, "channels": channels, "frames": frames, "ours_ms": ours_ms,
                         "scipy_ms": scipy_ms, "speedup": scipy_ms / ours_ms,
                         "bit_for_bit": bool(np.array_equal(ours, theirs))})
    return rows


def import_seconds(statement: str, repeat: int = 5) -> float:
    """Median wall time of ``statement`` in a fresh Python, seconds."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(repeat))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sections", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=44100, help="sample rate of the designs, Hz")
    parser.add_argument("--repeat", type=int, default=200, help="timed calls per figure (the median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    rows = loop_rows(args.rate, args.repeat)
    imports = {name: import_seconds(statement) for name, statement in IMPORTS.items()}
    if args.json:
        print(json.dumps({"loop": rows, "import_seconds": imports}, indent=2))
    else:
        print(f"per {rows[0]['frames']} frames | channels | ours (ms) | sosfilt (ms) | speedup | bit for bit")
        for r in rows:
            print(f"{r['stage']} | {r['channels']} | {r['ours_ms']:.3f} | {r['scipy_ms']:.3f} | "
                  f"{r['speedup']:.2f} | {'yes' if r['bit_for_bit'] else 'NO'}")
        for name, seconds in imports.items():
            print(f"import {name}: {seconds:.2f} s")
    return 0 if all(r["bit_for_bit"] for r in rows) else 1
