"""The C and C++ extensions; everything else is in pyproject.toml.

- audionorm_lab.dsp._sections: the IIR sections' loop;
- audionorm_lab.dsp._gate: the noise gate's element-wise work on spectra;
- audionorm_lab.dsp._fft and audionorm_lab.dsp._fft_avx2: the STFT's real transforms (numpy's pocketfft, vendored), built
  for the baseline CPU and with AVX2; audionorm_lab.dsp.frame_fft picks the one the CPU runs.

All are compiled without contraction into FMA (-ffp-contract=off, and -mavx2 does not enable FMA), so their results
are scipy's sosfilt's and numpy's, bit for bit.
"""

import os

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off"]
POCKETFFT = ["audionorm_lab/dsp/_fft.cpp", "vendor/pocketfft/pocketfft_hdronly.h"]  # vendor/: outside the package
setup(ext_modules=[Extension("audionorm_lab.dsp._sections", ["audionorm_lab/dsp/_sections.c"], extra_compile_args=FLAGS),
                   Extension("audionorm_lab.dsp._gate", ["audionorm_lab/dsp/_gate.c"], extra_compile_args=FLAGS),
                   Extension("audionorm_lab.dsp._fft", ["audionorm_lab/dsp/_fft.cpp"], include_dirs=["vendor"],
                             extra_compile_args=FLAGS, depends=POCKETFFT),
                   Extension("audionorm_lab.dsp._fft_avx2", ["audionorm_lab/dsp/_fft_avx2.cpp"], include_dirs=["vendor"],
                             extra_compile_args=FLAGS + ["-mavx2"], depends=POCKETFFT)],
      options={"build_ext": {"parallel": os.cpu_count() or 1}})  # the two transforms compile at once
