"""scipy.fft's real FFT, from scipy's own compiled pocketfft, without importing the scipy.fft package.

The noise profile must be computed with scipy.fft's single-precision FFT, to the bit, as noisereduce
computes it (:func:`~audionorm_lab.stft.scipy_stft_float32`), and the scan transforms in single
precision with it (:func:`~audionorm_lab.stft.single_precision_spectra`). Importing ``scipy.fft``
for that costs each job 22 MB of RSS and 0.35 s of CPU (``/usr/bin/time python -c "import
scipy.fft"`` beside the toolkit's own imports: 38 MB and 0.32 s without, 60 MB and 0.67 s with):
its package imports scipy.special and the array-API layer, which the FFT does not use. The
transform itself is one compiled module, ``scipy/fft/_pocketfft/pypocketfft``, which needs only
numpy. :func:`rfft` loads that module from scipy's installed folder and calls it as
``scipy.fft.rfft`` does (``r2c(x, (axis,), forward=True, inorm=0, out=None, nthreads=1)``); where it
cannot be loaded, it imports ``scipy.fft`` and calls ``scipy.fft.rfft`` itself. Either way the
result is ``scipy.fft.rfft(x, axis=axis)``'s (``tests/test_pocketfft.py`` checks it bit for bit).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

#: The compiled module's name: its init function is PyInit_pypocketfft.
MODULE = "pypocketfft"
_loading = threading.Lock()  # two threads asking at once load it one after the other


def extension_path() -> Path | None:
    """Where scipy keeps its compiled pocketfft, found without importing scipy; None if it is not there."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "fft" / "_pocketfft"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (folder / f"{MODULE}{suffix}").is_file():
            return folder / f"{MODULE}{suffix}"
    return None


def _load_extension(path: Path):
    loader = importlib.machinery.ExtensionFileLoader(MODULE, str(path))
    spec = importlib.util.spec_from_file_location(MODULE, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def real_transform() -> tuple[Callable[[np.ndarray, int], np.ndarray], str]:
    """The real FFT and where it comes from: ``"pypocketfft"`` (scipy's compiled module, loaded alone) or
    ``"scipy.fft"`` (the package imported, where the module could not be loaded)."""
    with _loading:
        path = extension_path()
        if path is not None:
            try:
                r2c = _load_extension(path).r2c
            except (ImportError, OSError, AttributeError):
                pass
            else:
                return (lambda x, axis: r2c(x, (axis,), True, 0, None, 1)), MODULE
        import scipy.fft

    return (lambda x, axis: scipy.fft.rfft(x, axis=axis)), "scipy.fft"


def rfft(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``scipy.fft.rfft(x, axis=axis)`` of a real float32 or float64 array: complex64 or complex128, the bins
    ``x.shape[axis] // 2 + 1`` along ``axis``, unscaled."""
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"rfft takes float32 or float64, not {x.dtype}")
    transform, _ = real_transform()
    return transform(x, axis % x.ndim)
