"""Shared test signals and helpers. Every signal is made here, deterministically."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CLI = [sys.executable, "-m", "audionorm_lab"]
#: The suite's longest files, longest first (seconds of one worker, measured with --durations=0), ahead of the
#: rest in their own order. pytest-xdist (--dist loadfile --no-loadscope-reorder, pyproject.toml) hands whole
#: files to its two workers in collection order as each runs low, so the long ones start first and the many
#: short ones even out the end.
LONGEST_FIRST = ("test_notebooks.py",  # about 300 s: the five notebooks, executed
                 "test_service_load_rabbitmq.py", "test_same_as_service.py", "test_notebook_papermill.py",
                 "test_service_load.py", "test_harness.py", "test_service.py", "test_strategies.py")  # 50-80 s


def pytest_collection_modifyitems(items: list) -> None:
    """Whole files in :data:`LONGEST_FIRST`'s order first, the others after them; tests keep their order within
    a file."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def speech_like(seconds: float, rate: int, channels: int = 2, seed: int = 0, snr_db: float = 20.0) -> np.ndarray:
    """Voiced syllables (harmonics of a gliding pitch under formant-like weights), pauses, pink-ish noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    harmonics = sum(np.sin(k * phase) * np.exp(-((k * 140 - 700) / 900.0) ** 2) for k in range(1, 30)
                    if k * 180 < rate / 2)
    syllables = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) * (np.sin(2 * np.pi * 0.23 * t) > -0.3)
    voice = 0.2 * harmonics * syllables
    white = rng.standard_normal((n, channels))
    pink = np.cumsum(white, axis=0)
    pink -= np.cumsum(pink, axis=0) / np.arange(1, n + 1)[:, None]  # crude leaky integration
    pink /= np.std(pink, axis=0) + 1e-12
    noise_rms = np.sqrt(np.mean(voice ** 2)) / 10 ** (snr_db / 20)
    mix = voice[:, None] * np.linspace(1.0, 0.8, channels)[None, :] + noise_rms * (0.5 * pink + 0.5 * white)
    return mix.astype(np.float32)


def noise(seconds: float, rate: int, channels: int = 2, seed: int = 1, level: float = 0.05) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((int(seconds * rate), channels)) * level).astype(np.float32)


def music_like(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    """A chord sequence with decaying notes and stereo spread."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros((n, channels))
    for i, f in enumerate([220.0, 277.2, 329.6, 440.0, 554.4, 659.3, 1760.0, 3520.0]):
        envelope = np.exp(-((t * (1 + i % 3)) % 1.0) * 3)
        pan = np.linspace(0.3, 1.0, channels) if i % 2 else np.linspace(1.0, 0.3, channels)
        out += (0.08 * np.sin(2 * np.pi * f * t) * envelope)[:, None] * pan[None, :]
    return out.astype(np.float32)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary outputs a failed run must not leave behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".part"))


def encode(wav: Path, dst: Path, *args: str) -> Path:
    """Encode with the real ffmpeg."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), *args, str(dst)], check=True)
    return dst


def kernel_variant(request, monkeypatch, module) -> str:
    """Run a test on ``module``'s compiled kernel or on the numpy path (``request.param``: ``"compiled"`` or
    ``"numpy"``); a compiled variant that is not built here is skipped."""
    if request.param == "numpy":
        monkeypatch.setattr(module, "COMPILED", None)
    elif module.COMPILED is None:
        pytest.skip(f"{module.__name__}'s compiled kernel is not built here")
    return request.param


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    """Debian's headless Chromium, driven by selenium (``./lab test`` installs both)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session", autouse=True)
def _needs_ffmpeg():
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "ffmpeg must be installed (./lab setup does it)"


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """25 s of stereo 44.1 kHz speech-like audio with noise, 16-bit wav."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sf.write(path, speech_like(25, 44100), 44100, subtype="PCM_16")
    return path
