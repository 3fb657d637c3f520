"""The numpy and scipy path gives the compiled kernels' bits: kernel by kernel, and a whole normalize run both ways
(and with the STFT's baseline build), compared file to file. An install where nothing compiles still works."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import encode, sha256, speech_like

from audionorm_lab.dsp import frame_fft, gate_kernels, kernels, numpy_kernels, sections
from audionorm_lab.dsp.loudness import channel_weights, k_weighting_sos
from audionorm_lab.dsp.stages import chain_sections

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100
compiled = pytest.mark.skipif(sections.COMPILED is None or gate_kernels.COMPILED is None or frame_fft.COMPILED is None,
                              reason="the compiled kernels are not built here: only the numpy path runs")


def spectra(frames: int, bins: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((frames, bins)) * 1e-2 + 1j * rng.standard_normal((frames, bins)) * 1e-2


@compiled
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_transforms_are_the_same_bits_both_ways(dtype):
    signal = speech_like(0.5, RATE, 1)[:, 0]
    frames = np.lib.stride_tricks.sliding_window_view(signal, 1024)[::256]
    window = np.hanning(1024).astype(dtype)
    compiled_out = frame_fft.windowed_rfft(frames, window)
    pure = np.empty_like(compiled_out)
    numpy_kernels.windowed_rfft(frames, window, pure)
    assert np.array_equal(compiled_out.view(np.uint8), pure.view(np.uint8))
    if dtype == np.float64:
        back = np.empty((len(pure), 1024))
        numpy_kernels.irfft(pure, 1024, back)
        assert np.array_equal(frame_fft.irfft(pure, 1024).view(np.uint8), back.view(np.uint8))


@compiled
@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_the_sections_and_the_meters_power_are_the_same_bits_both_ways(channels):
    x = speech_like(1.0, RATE, channels, seed=3)
    sos = chain_sections(80.0, (200.0, 3800.0), RATE).sos
    state_c, state_p = np.zeros((len(sos), 2, channels)), np.zeros((len(sos), 2, channels))
    for start in range(0, len(x), 7000):
        block = x[start:start + 7000]
        assert np.array_equal(sections.filter_frames(sos, block, state_c),
                              numpy_kernels.filter_sections(sos, block, state_p).astype(np.float32))
        assert np.array_equal(state_c, state_p)
    k, weights = k_weighting_sos(RATE), channel_weights(channels)
    state_c, state_p = np.zeros((len(k), 2, channels)), np.zeros((len(k), 2, channels))
    assert np.array_equal(sections.weighted_power(k, x, state_c, weights),
                          numpy_kernels.weighted_power(numpy_kernels.filter_sections(k, x, state_p), weights))


@compiled
def test_the_gate_kernels_are_the_same_bits_both_ways():
    for seed in range(3):
        x = spectra(120, 513, seed)
        thresholds = 10.0 ** np.random.default_rng(seed).uniform(-4, -1, 513)
        open_bins = np.zeros(513, bool)
        open_bins[[0, 7, 512]] = True
        got, pure = x.copy(), x.copy()
        live = gate_kernels.apply_gate(got, thresholds, open_bins, 6, 9, 6.0 ** 2 * 9.0 ** 2)
        mask = numpy_kernels.gate_mask(pure, thresholds, open_bins)
        live_pure = numpy_kernels.apply_gate(pure, mask, 6, 9, 6.0 ** 2 * 9.0 ** 2)
        assert np.array_equal(got.view(np.uint64), pure.view(np.uint64)) and np.array_equal(live, live_pure)
        peaks_c = np.random.default_rng(seed).uniform(0, 0.02, 513)
        peaks_p = peaks_c.copy()
        gate_kernels.column_max_abs(x, peaks_c)
        numpy_kernels.column_max_abs(x, peaks_p)
        assert np.array_equal(peaks_c, peaks_p)
        frames, synthesis = np.random.default_rng(seed).standard_normal((2, 30, 1024))
        out_c, out_p = np.zeros((40, 256)), np.zeros((40, 256))
        rows = np.arange(30)[np.arange(30) % 4 != 1]
        gate_kernels.overlap_add(frames[rows], synthesis[0], out_c, rows)
        numpy_kernels.overlap_add(frames[rows], synthesis[0], out_p, rows)
        assert np.array_equal(out_c, out_p)


def normalize_with(kernels_choice: str, src: Path, dst: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, kernels.ENVIRONMENT: kernels_choice}
    return subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--json", *args],
                          capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def twenty_seconds(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pure")
    wav = folder / "speech.wav"
    sf.write(wav, speech_like(20.0, RATE, 2, seed=11), RATE, subtype="PCM_16")
    return encode(wav, folder / "speech.mp3", "-b:a", "128k")


@pytest.mark.parametrize("mode", [("--compat", "service"), ("--compat", "float"), ("--gate-grid", "file")])
def test_a_whole_normalize_gives_the_same_file_with_every_kernel_choice(twenty_seconds, tmp_path, mode):
    outputs = {}
    for choice in kernels.CHOICES:
        dst = tmp_path / f"{choice}.wav"
        done = normalize_with(choice, twenty_seconds, dst, *mode)
        assert done.returncode == 0, done.stderr
        outputs[choice] = dst
    if mode == ("--compat", "service"):  # the service's 16-bit WAV: the same bytes
        assert len({sha256(p) for p in outputs.values()}) == 1
    else:  # a float WAV carries libsndfile's PEAK chunk, with the time it was written: the same samples
        samples = [sf.read(p, dtype="float32")[0] for p in outputs.values()]
        assert all(np.array_equal(samples[0].view(np.uint32), s.view(np.uint32)) for s in samples[1:])


def test_the_plan_says_which_kernels_ran(twenty_seconds, tmp_path):
    import json

    for choice, says in (("numpy", "numpy and scipy (AUDIONORM_KERNELS=numpy)"), ("auto", "compiled")):
        done = normalize_with(choice, twenty_seconds, tmp_path / f"{choice}.wav")
        if choice == "auto" and frame_fft.COMPILED is None:
            says = "numpy and scipy (the compiled kernels were not built)"
        assert json.loads(done.stdout)["plan"]["kernels"].startswith(says)


def test_a_bad_kernels_choice_is_refused_in_one_line(twenty_seconds, tmp_path):
    done = normalize_with("fortran", twenty_seconds, tmp_path / "out.wav")
    assert done.returncode != 0 and "AUDIONORM_KERNELS must be one of auto, baseline, numpy" in done.stderr


def test_an_install_where_nothing_compiles_runs_the_numpy_path_and_says_so_once(tmp_path, twenty_seconds):
    """pip installs the package with no working compiler (CC and CXX fail): the install succeeds, carries the
    licences, and a run warns once that it runs the numpy and scipy path, and gives the compiled path's file."""
    source, target = tmp_path / "src", tmp_path / "site"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(  # the checkout as a clone has it: nothing built
        ".git", ".venv", "build", "*.so", "*.egg-info", "__pycache__", ".pytest_cache", "reports", "results",
        "samples", "notebooks", "tests"))
    env = {**os.environ, "CC": "/bin/false", "CXX": "/bin/false", "LDSHARED": "/bin/false",
           "LDCXXSHARED": "/bin/false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(source)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(target.rglob("*.so")), "nothing was compiled"
    (dist_info,) = target.glob("audionorm_lab-*.dist-info")  # the wheel pip built: the licences go with it
    assert (dist_info / "licenses" / "LICENSE").is_file()
    assert (dist_info / "licenses" / "vendor" / "pocketfft" / "LICENSE.md").is_file()
    assert "License-Expression: MIT" in (dist_info / "METADATA").read_text()
    pure = tmp_path / "pure.wav"
    run = subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(twenty_seconds), str(pure),
                          "--compat", "service", "--quiet"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(target)})
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("running the numpy and scipy path") == 1, run.stderr
    reference = tmp_path / "compiled.wav"
    assert normalize_with("auto", twenty_seconds, reference, "--compat", "service").returncode == 0
    assert sha256(pure) == sha256(reference)
