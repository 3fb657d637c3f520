"""The STFT's real transforms (audionorm_lab.dsp.frame_fft): numpy.fft's bits, from the baseline build and the AVX2 one."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.fft

from audionorm_lab.dsp import frame_fft
from audionorm_lab.dsp.stft import analysis_window, stft
from conftest import speech_like


def builds():
    """The numpy and scipy path (audionorm_lab.dsp.numpy_kernels), and each compiled build that runs here."""
    yield pytest.param(None, id="numpy")
    for build, name in ((frame_fft.BASELINE_BUILD, "baseline"), (frame_fft.AVX2_BUILD, "avx2")):
        if build is not None:
            yield pytest.param(build, id=name)


@pytest.fixture(params=list(builds()))
def build(request, monkeypatch):
    monkeypatch.setattr(frame_fft, "COMPILED", request.param)
    return request.param


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def frame_sets():
    """Frames as the gate makes them (a sliding window's strided rows) and others: counts that fill the vector
    lanes and counts that leave frames over, even and odd lengths, a Bluestein length, silence and tiny values."""
    rng = np.random.default_rng(5)
    speech = speech_like(3.0, 44100, 1, seed=3)[:, 0].astype(np.float64)
    for count in (1, 2, 3, 4, 5, 127, 130):
        yield f"speech, {count} sliding frames", np.lib.stride_tricks.sliding_window_view(speech, 1024)[::256][:count]
    stereo = speech_like(1.0, 44100, 2, seed=6)
    yield "one channel of interleaved stereo", np.lib.stride_tricks.sliding_window_view(stereo, 1024, axis=0)[::256, 1]
    yield "no frames", np.zeros((0, 1024))
    yield "odd length 1023", rng.standard_normal((9, 1023))
    yield "length 1009 (a prime: Bluestein)", rng.standard_normal((6, 1009))
    yield "length 2048, every other column", rng.standard_normal((5, 4096))[:, ::2]
    yield "silence", np.zeros((4, 512))
    yield "tiny values", rng.standard_normal((7, 512)) * 1e-300
    yield "float32 frames", rng.standard_normal((6, 1024)).astype(np.float32)


def test_windowed_rfft_is_numpys_bit_for_bit(build):
    for name, frames in frame_sets():
        window = analysis_window(frames.shape[1])
        expected = np.fft.rfft(np.multiply(frames, window, dtype=np.float64), axis=-1)
        assert same_bits(frame_fft.windowed_rfft(frames, window), expected), name
        out = np.full(expected.shape, np.nan + 0j)
        assert frame_fft.windowed_rfft(frames, window, out) is out and same_bits(out, expected), name


def test_windowed_rfft_in_float32_is_scipys_bit_for_bit(build):
    """The scan's single-precision spectra: scipy.fft.rfft of the float32 product (numpy's float32 FFT rounds
    differently)."""
    for name, frames in frame_sets():
        window = analysis_window(frames.shape[1], np.float32)
        expected = scipy.fft.rfft(np.multiply(frames, window, dtype=np.float32), axis=-1)
        assert expected.dtype == np.complex64
        assert same_bits(frame_fft.windowed_rfft(frames, window), expected), name


def test_irfft_is_numpys_bit_for_bit(build):
    for name, frames in frame_sets():
        n = frames.shape[1]
        rows = np.fft.rfft(np.asarray(frames, np.float64), axis=-1)
        rows[:, 0] += 1j  # the imaginary parts numpy ignores: bin 0's, and bin n / 2's for even n
        rows[:, -1] += 2j
        expected = np.fft.irfft(rows, n=n, axis=-1)
        assert same_bits(frame_fft.irfft(rows, n), expected), name
        out = np.full(expected.shape, np.nan)
        assert frame_fft.irfft(rows, n, out) is out and same_bits(out, expected), name


def test_the_stft_is_unchanged_by_the_build(monkeypatch):
    """The gate's STFT of speech from each build: the same bits (and numpy's, above)."""
    signal = speech_like(2.0, 44100, 1, seed=4)[:, 0]
    spectra = []
    for param in builds():
        monkeypatch.setattr(frame_fft, "COMPILED", param.values[0])
        spectra.append(stft(signal, 1024, 256))
    assert all(same_bits(s, spectra[0]) for s in spectra)


def test_the_fastest_build_that_gives_numpys_bits_is_chosen():
    """Each build is checked when it loads; one that differs from numpy.fft (the aarch64 build, under qemu) is not
    used. On x86-64 both builds pass, and the AVX2 one runs where the CPU has it."""
    from audionorm_lab.dsp import kernels

    compiled = kernels.extension("_fft")
    if compiled is None:
        assert frame_fft.BUILD == "numpy"
        return
    passes = frame_fft.gives_numpys_bits(compiled)
    assert (frame_fft.BASELINE_BUILD is compiled) == passes
    avx2 = frame_fft.AVX2_BUILD
    assert frame_fft.BUILD == ("avx2" if avx2 is not None else "baseline" if passes else "numpy")
    if avx2 is not None:
        assert compiled.avx2_usable() and frame_fft.gives_numpys_bits(avx2)


def test_wrong_shapes_are_refused():
    frames = np.zeros((3, 1024))
    with pytest.raises(ValueError, match="window"):
        frame_fft.windowed_rfft(frames, np.ones(512))
    with pytest.raises(ValueError, match="out must be"):
        frame_fft.windowed_rfft(frames, np.ones(1024), np.empty((3, 512), np.complex128))
    with pytest.raises(TypeError, match="float32 or float64"):
        frame_fft.windowed_rfft(frames, np.ones(1024, np.int64))
    with pytest.raises(ValueError, match="rows"):
        frame_fft.irfft(np.zeros((3, 400), np.complex128), 1024)


def test_a_streamed_job_imports_no_scipy(tmp_path):
    """Importing scipy.fft cost each job 22 MB of RSS and 0.35 s of CPU: the streaming path does without it (its
    float32 transforms, scipy.fft's bits, are this module's)."""
    import soundfile as sf

    source = tmp_path / "in.wav"
    sf.write(source, speech_like(20.0, 44100, 2, seed=2), 44100)
    code = ("import sys, audionorm_lab as anl; "
            f"anl.normalize_file({str(source)!r}, {str(tmp_path / 'out.wav')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    assert (tmp_path / "out.wav").stat().st_size > 0
