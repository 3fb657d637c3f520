"""The C and C++ kernels' boundary: sizes that overflow, a mask that is not 0/1, widths past the count table, and an
allocation that fails inside C++ each come back as a Python exception, never as a read past a buffer or an abort.

Called directly here, past the Python wrappers' own checks (audionorm_lab.dsp.gate_kernels, frame_fft), as a
caller with a bug would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

gate = pytest.importorskip("audionorm_lab.dsp._gate", reason="the compiled kernels are optional; not built here")
fft = pytest.importorskip("audionorm_lab.dsp._fft", reason="the compiled kernels are optional; not built here")

HUGE = 2**61  # times 16 bytes, or times a few bins, past 2**63: a product that overflows
#: 2**60 + 1 frames of 8 samples: 80 bytes of rows and 64 of frames once the products wrap, which a one-frame call's
#: buffers match: before the checks were done in 64 bits without overflow, irfft took it and ran 2**60 frames.
WRAPS_TO_ONE_FRAME = 2**60 + 1


def spectrum(frames=4, bins=9):
    rng = np.random.default_rng(5)
    return (rng.standard_normal((frames, bins)) + 1j * rng.standard_normal((frames, bins))).astype(np.complex128)


def test_smoothing_widths_whose_count_table_overflows_an_int32_are_refused():
    """256 x 256 passed the per-width cap, and 256^4 = 2^32 wrapped to 0 in an int: a one-entry gains table."""
    x, mask, live = spectrum(), np.ones((4, 9), np.uint8), np.empty(4, np.uint8)
    before = x.copy()
    with pytest.raises(ValueError, match="smoothing widths 256 x 256"):
        gate.smooth_and_apply(x, mask, 256, 256, 1.0, live, 4, 9)
    assert np.array_equal(x, before)
    with pytest.raises(ValueError, match="smoothing widths 0 x 2"):
        gate.smooth_and_apply(x, mask, 0, 2, 1.0, live, 4, 9)


def test_a_mask_value_other_than_0_or_1_is_refused_and_nothing_changes():
    """_gate.mask writes 2 for a bin it cannot decide; a caller that forgot to decide it would index past the
    gains table (a count up to twice the largest)."""
    x, live = spectrum(), np.empty(4, np.uint8)
    mask = np.ones((4, 9), np.uint8)
    mask[2, 3] = 2
    before = x.copy()
    with pytest.raises(ValueError, match="other than 0 or 1"):
        gate.smooth_and_apply(x, mask, 3, 2, 36.0, live, 4, 9)
    assert np.array_equal(x, before)
    mask[2, 3] = 1
    gate.smooth_and_apply(x, mask, 3, 2, 36.0, live, 4, 9)  # the same call with a 0/1 mask runs
    assert not np.array_equal(x, before)


@pytest.mark.parametrize("call", [
    lambda x: gate.mask(x, np.zeros(9), np.zeros(9, np.uint8), np.empty((4, 9), np.uint8), HUGE, 9 * 4),
    lambda x: gate.smooth_and_apply(x, np.ones((4, 9), np.uint8), 2, 2, 16.0, np.empty(4, np.uint8), HUGE, 8),
    lambda x: gate.column_candidates(x, np.zeros(9), np.empty(36, np.int64), HUGE, 8),
    lambda x: gate.decide_bins(x.astype(np.complex64), np.zeros(9), np.zeros(9), 1e-6, np.zeros(9), HUGE, 8),
    lambda x: gate.overlap_add(np.zeros((4, 8)), np.zeros(8), np.zeros((4, 4)), np.zeros(4, np.int64), HUGE, 8, 4, 4),
    lambda x: gate.mask(x, np.zeros(9), np.zeros(9, np.uint8), np.empty((4, 9), np.uint8), -4, -9),
], ids=["mask", "smooth_and_apply", "column_candidates", "decide_bins", "overlap_add", "negative"])
def test_sizes_whose_products_overflow_are_refused(call):
    """frames x bins x 16 bytes past 2**63 wrapped to a small number, which a small buffer could match."""
    with pytest.raises(ValueError, match="buffer sizes"):
        call(spectrum())


def test_an_output_row_near_the_int64_limit_is_refused():
    rows = np.array([2**63 - 2], np.int64)
    with pytest.raises(ValueError, match="outside the output"):
        gate.overlap_add(np.zeros((1, 8)), np.zeros(8), np.zeros((4, 4)), rows, 1, 8, 4, 4)


@pytest.mark.parametrize("call", [
    lambda: fft.windowed_rfft(np.zeros(8), 8, 1, np.zeros(8), np.zeros((1, 5), complex), WRAPS_TO_ONE_FRAME, 8, False),
    lambda: fft.windowed_rfft(np.zeros(8), HUGE, 1, np.zeros(8), np.zeros((2, 5), complex), 2, 8, False),
    lambda: fft.windowed_rfft(np.zeros(8), 8, HUGE, np.zeros(8), np.zeros((1, 5), complex), 1, 8, False),
    lambda: fft.irfft(np.zeros((1, 5), complex), np.zeros((1, 8)), WRAPS_TO_ONE_FRAME, 8),
], ids=["count", "row_stride", "step", "irfft_count"])
def test_fft_sizes_whose_products_overflow_are_refused(call):
    with pytest.raises(ValueError, match="buffer sizes"):
        call()


@pytest.mark.parametrize("build", ["_fft", "_fft_avx2"])
def test_an_allocation_that_fails_inside_the_transform_is_a_memory_error(build):
    """A fresh process whose address space is capped just above what it holds; the transform's plan for a new
    length (tens of MB of twiddles) cannot be allocated. pocketfft throws std::bad_alloc without the GIL: it must
    come back as MemoryError, and the process must live (without the catch it ended in std::terminate, SIGABRT)."""
    if build == "_fft_avx2" and not fft.avx2_usable():
        pytest.skip("this CPU does not run the AVX2 build")
    script = textwrap.dedent(f"""
        import resource
        import numpy as np
        from audionorm_lab.dsp import {build} as fft
        n = 2**22 + 6  # not a length planned before, and not a power of two: a plan of several arrays
        frames, window = np.zeros(n), np.zeros(n)
        rows = np.zeros((1, n // 2 + 1), complex)
        size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + 16 * 2**20, resource.RLIM_INFINITY))
        try:
            fft.windowed_rfft(frames, n, 1, window, rows, 1, n, False)
        except MemoryError:
            print("MemoryError")
        try:
            fft.irfft(rows, frames.reshape(1, n), 1, n)
        except MemoryError:
            print("MemoryError")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-1500:])
    assert done.stdout.split() == ["MemoryError", "MemoryError"], done.stdout + done.stderr[-1500:]
