"""What a result was measured on: cores, memory, versions of Python, the libraries and the tools, the commit.

A bottom module of the harness: it imports nothing from ``bench``, so every other module may use it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil

from audionorm_lab.dsp.kernels import describe as describe_kernels

from .paths import ROOT

LIBRARIES = ("numpy", "scipy", "noisereduce", "soundfile", "pydub", "memray", "celery")


def _first_line(command: list[str]) -> str | None:
    """The first line a tool prints of its version (stdout or stderr); None when it is not installed."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = ROOT) -> str | None:
    """The checkout's commit (with ``+changes`` when the work tree differs from it); None outside git."""
    commit = _first_line(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit is None or len(commit) != 40:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"{commit}+changes" if dirty else commit


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


def describe() -> dict:
    """The machine and the software a run used: ``cores``, ``memory_bytes``, ``cpu``, ``platform``, ``python``,
    ``ffmpeg`` and ``sox`` (their version lines), the library versions, ``kernels`` (which of audionorm_lab's
    kernels run: :func:`audionorm_lab.dsp.kernels.describe`) and ``commit``."""
    return {"cores": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total, "cpu": cpu_model(),
            "platform": platform.platform(), "python": platform.python_version(),
            "ffmpeg": _first_line(["ffmpeg", "-version"]), "sox": _first_line(["sox", "--version"]),
            "kernels": describe_kernels(), "commit": git_commit(), **{name: _version(name) for name in LIBRARIES}}


def fingerprint(machine: dict) -> str:
    """What makes two machines' timings comparable: cores, memory (GB) and the CPU model."""
    return f"{machine.get('cores')} cores, {round((machine.get('memory_bytes') or 0) / 1e9)} GB, {machine.get('cpu')}"
