"""The C allocator's policy for the chain's temporaries (glibc's malloc; elsewhere nothing changes).

The chain allocates and frees the same few sizes over and over: a gate piece's spectra
and masks (1 to 3 MB), FFT batches (about 1 MB), filter blocks. glibc's defaults give
most of them back to the kernel as soon as they are freed (``mmap`` above a threshold
that starts at 128 kB, and heap trimming above twice that), so each new temporary
page-faults its memory in again: measured here, a third of the FFTs' time and 2 s of
CPU on a 10-minute file. :func:`tune_malloc` keeps such blocks in the heap for reuse,
and caps the number of arenas so that threads share them. What the heap keeps that
way can fragment and creep up over a long file, so the pipeline hands free memory
back now and then (:func:`release_free_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: Allocations below this many bytes come from the heap and are reused; larger ones are mapped.
MMAP_THRESHOLD_BYTES = 4 * 2**20
#: Free memory kept at the top of a heap before it is given back to the kernel, bytes.
TRIM_THRESHOLD_BYTES = 16 * 2**20
#: Arenas the threads share (glibc's default is 8 per core, each with its own high-water mark).
ARENAS = 2

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's malloc.h
_tuned = False
_libc = None


def tune_malloc() -> None:
    """Set glibc's arena count, mmap threshold and trim threshold for the chain, once per process.

    Call it before the worker threads start. The retained memory is bounded: at most
    :data:`TRIM_THRESHOLD_BYTES` of free heap per arena, :data:`ARENAS` arenas. Where
    the allocator is not glibc (macOS, musl), this does nothing.
    """
    global _tuned, _libc
    if _tuned or not sys.platform.startswith("linux"):
        return
    _tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, ARENAS)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        libc.malloc_trim  # noqa: B018  (glibc has it: then release_free_memory can call it)
        _libc = libc
    except (OSError, AttributeError):  # not glibc
        pass


def release_free_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim``), in every arena.

    A few milliseconds, and the chain's temporaries page-fault in again after it; the pipeline
    calls it once per ten minutes of audio (:data:`~audionorm_lab.stream.passes.RELEASE_EVERY_SECONDS`),
    so the memory the heap keeps for reuse cannot creep up with the file's length. Does
    nothing where :func:`tune_malloc` did nothing.
    """
    if _libc is not None:
        _libc.malloc_trim(0)
