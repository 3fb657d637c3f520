"""A build's smoke test, for a wheel (cibuildwheel's test-command) or a checkout on another platform
(``./lab aarch64``): which kernels run, and a normalize of a generated tone in noise with them and with the numpy
path, in each mode: the same samples.

    python bench/platforms/wheel_smoke.py [--expect compiled|numpy] [--seconds 10] [--modes float,service]
        [--python "qemu-aarch64-static -L SYSROOT VENV/bin/python"]

``--python``: the interpreter that runs each normalize, when it cannot be started as ``sys.executable`` (an
emulated one on a host without binfmt_misc). Prints each mode's samples' sha256, to compare across platforms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def smoke_signal(seconds: float) -> np.ndarray:
    """A 220 Hz tone switched on and off twice a second, in stereo noise at -40 dBFS: float32 ``(frames, 2)``."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (tone[:, None] + 0.01 * rng.standard_normal((len(t), 2))).astype(np.float32)


def normalize(python: list[str], src: Path, dst: Path, mode: str, kernels: str) -> tuple[np.ndarray, str]:
    """``normalize`` with ``AUDIONORM_KERNELS=kernels``: the output's samples, and which kernels its plan ran."""
    done = subprocess.run([*python, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--compat", mode, "--json"],
                          env={**os.environ, "AUDIONORM_KERNELS": kernels}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"normalize --compat {mode} with AUDIONORM_KERNELS={kernels} failed: {done.stderr.strip()}")
    return sf.read(dst, dtype="float32")[0], json.loads(done.stdout)["plan"]["kernels"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", choices=("compiled", "numpy"), default="compiled")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", default="float", help="comma-separated: float, service")
    parser.add_argument("--python", help="the command that runs an interpreter (default: this one)")
    args = parser.parse_args(argv)
    python = shlex.split(args.python) if args.python else [sys.executable]
    failed = 0
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.wav"
        sf.write(src, smoke_signal(args.seconds), RATE, subtype="PCM_16")
        for mode in (m.strip() for m in args.modes.split(",") if m.strip()):
            ours, kernels = normalize(python, src, Path(folder) / f"{mode}-auto.wav", mode, "auto")
            pure, _ = normalize(python, src, Path(folder) / f"{mode}-numpy.wav", mode, "numpy")
            same = np.array_equal(ours.view(np.uint32), pure.view(np.uint32))
            print(f"{mode}: {kernels}; {args.seconds:g} s: {'the same samples' if same else 'DIFFERENT samples'} "
                  f"as the numpy path (sha256 {hashlib.sha256(ours.tobytes()).hexdigest()[:16]})")
            failed += not same or not kernels.startswith(args.expect)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
