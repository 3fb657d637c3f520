"""The C and C++ extensions; everything else is in pyproject.toml.

- audionorm_lab.dsp._sections: the IIR sections' loop;
- audionorm_lab.dsp._gate: the noise gate's element-wise work on spectra;
- audionorm_lab.dsp._fft: the STFT's real transforms (numpy's pocketfft, vendored) for the baseline CPU, with the
  vectors pocketfft itself picks there (SSE2 on x86-64, NEON on aarch64); and audionorm_lab.dsp._fft_avx2 with
  AVX2, built on x86-64 only. audionorm_lab.dsp.frame_fft picks the one the CPU runs.

All are compiled without contraction into FMA (-ffp-contract=off, which GCC and clang both take; clang contracts by
default on some targets, and -mavx2 does not enable FMA), so their results are scipy's sosfilt's and numpy's, bit
for bit. Every extension is optional: where one cannot be built (no compiler, a platform these flags do not know),
the install still succeeds and the numpy and scipy path runs instead, with the same samples
(audionorm_lab.dsp.kernels says so once).
"""

import os
import platform
import sysconfig

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off"]
POCKETFFT = ["audionorm_lab/dsp/_fft.cpp", "vendor/pocketfft/pocketfft_hdronly.h"]  # vendor/: outside the package


def x86_64() -> bool:
    """Whether the build targets x86-64 (the host's machine, or a macOS universal/cross build's target)."""
    target = (os.environ.get("ARCHFLAGS", "") + " " + sysconfig.get_platform()).lower()
    if "arm64" in target or "aarch64" in target:
        return False
    return "x86_64" in target or "amd64" in target or platform.machine().lower() in ("x86_64", "amd64")


def extension(name: str, source: str, extra: list[str] = (), **options) -> Extension:
    return Extension(f"audionorm_lab.dsp.{name}", [f"audionorm_lab/dsp/{source}"], extra_compile_args=FLAGS + list(extra),
                     optional=True, **options)


EXTENSIONS = [extension("_sections", "_sections.c"), extension("_gate", "_gate.c"),
              extension("_fft", "_fft.cpp", include_dirs=["vendor"], depends=POCKETFFT)]
if x86_64():
    EXTENSIONS.append(extension("_fft_avx2", "_fft_avx2.cpp", ["-mavx2"], include_dirs=["vendor"], depends=POCKETFFT))

setup(ext_modules=EXTENSIONS,
      options={"build_ext": {"parallel": os.cpu_count() or 1}})  # the two transforms compile at once
