"""A built wheel's smoke test (cibuildwheel's test-command, and by hand): which kernels the wheel runs, and a
10-second normalize with them and with the numpy path, the same samples.

    python bench/platforms/wheel_smoke.py [--expect compiled|numpy]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf


def normalize(src: Path, dst: Path, kernels: str) -> np.ndarray:
    done = subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--quiet"],
                          env={**os.environ, "AUDIONORM_KERNELS": kernels}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"normalize with AUDIONORM_KERNELS={kernels} failed: {done.stderr.strip()}")
    return sf.read(dst, dtype="float32")[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect", choices=("compiled", "numpy"), default="compiled")
    args = parser.parse_args(argv)
    from audionorm_lab.dsp.kernels import describe

    kernels = describe()
    print(f"kernels: {kernels}")
    if not kernels.startswith(args.expect):
        return 1
    rng = np.random.default_rng(0)
    t = np.arange(10 * 16000) / 16000
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    signal = (tone[:, None] + 0.01 * rng.standard_normal((len(t), 2))).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        src = Path(folder) / "in.wav"
        sf.write(src, signal, 16000, subtype="PCM_16")
        ours, pure = normalize(src, Path(folder) / "a.wav", "auto"), normalize(src, Path(folder) / "b.wav", "numpy")
    same = np.array_equal(ours.view(np.uint32), pure.view(np.uint32))
    print(f"10-second normalize: {'the same samples' if same else 'DIFFERENT samples'} with {kernels} and numpy")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
