"""Which kernels run: the compiled ones (C and C++, built at install) or numpy's and scipy's.

Each compiled kernel gives numpy's or scipy's bits (tests/test_kernels_pure.py runs a whole normalize both ways and
compares the files), so the choice changes speed, never a sample:

- ``AUDIONORM_KERNELS=auto`` (or unset) runs the compiled kernels, the STFT's with AVX2 where the CPU has it, and
  the numpy and scipy path where they were not built (an install without a compiler, a platform the build does not
  know): that is said once per process, as a :class:`PurePathWarning`;
- ``AUDIONORM_KERNELS=baseline`` runs the compiled kernels, the STFT's baseline build even where AVX2 runs;
- ``AUDIONORM_KERNELS=numpy`` forces the numpy and scipy path.

:func:`describe` says which ran: the report's machine section and every run's plan give it.
"""

from __future__ import annotations

import importlib
import os
import warnings

from ..errors import OptionError

ENVIRONMENT = "AUDIONORM_KERNELS"
CHOICES = ("auto", "baseline", "numpy")


class PurePathWarning(RuntimeWarning):
    """The compiled kernels are missing; numpy's and scipy's run instead (the same bits, more slowly)."""


def requested() -> str:
    """``AUDIONORM_KERNELS``: ``auto`` (the default), ``baseline`` or ``numpy``."""
    choice = os.environ.get(ENVIRONMENT, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise OptionError(f"{ENVIRONMENT} must be one of {', '.join(CHOICES)}, not {choice!r}")
    return choice


def requested_at_import() -> str:
    """:func:`requested`, or ``auto`` where it is not one of the choices: the modules load, and the first run's plan
    refuses the setting in one line."""
    try:
        return requested()
    except OptionError:
        return "auto"


_said_missing = False


def extension(name: str):
    """The compiled module ``name`` of this package, or None where the numpy and scipy path runs instead."""
    if requested_at_import() == "numpy":
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as exc:
        global _said_missing
        if not _said_missing:  # once a process, whichever module asks first
            warnings.warn(f"audionorm-lab: the compiled kernels were not built here ({exc}); running the numpy and "
                          f"scipy path (the same samples, slower)", PurePathWarning, stacklevel=2)
            _said_missing = True
        return None


def describe() -> str:
    """Which kernels run in this process: ``"compiled, fft avx2"`` (or ``baseline``), ``"numpy and scipy"`` with why
    (asked for, or not built), or which are compiled and why the others are not."""
    from . import frame_fft, gate_kernels, sections

    choice = requested()  # a setting that is not a choice is refused here, in one line
    compiled = [name for name, module in (("sections", sections), ("gate", gate_kernels), ("fft", frame_fft))
                if module.COMPILED is not None]
    if len(compiled) == 3:
        return f"compiled, fft {frame_fft.BUILD}"
    if choice == "numpy":
        return f"numpy and scipy ({ENVIRONMENT}=numpy)"
    if not compiled and not frame_fft.DIFFERING_BUILDS:
        return "numpy and scipy (the compiled kernels were not built)"
    fft = ("numpy.fft and scipy.fft (the compiled transforms differ from numpy.fft's bits here)"
           if frame_fft.DIFFERING_BUILDS else "numpy.fft and scipy.fft (not built)")
    rest = [name for name in ("sections", "gate") if name not in compiled]
    return "; ".join(filter(None, [f"compiled {' and '.join(compiled)}" if compiled else "",
                                   "" if "fft" in compiled else f"fft: {fft}",
                                   f"{' and '.join(rest)}: numpy and scipy (not built)" if rest else ""]))
