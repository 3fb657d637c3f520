"""The C extensions: audionorm_lab._sections (the IIR sections' loop) and audionorm_lab._gate (the noise gate's
element-wise work on spectra); everything else is in pyproject.toml.

Compiled without contraction into FMA (-ffp-contract=off), so their results are scipy's sosfilt's and numpy's,
bit for bit.
"""

from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off"]
setup(ext_modules=[Extension("audionorm_lab._sections", ["audionorm_lab/_sections.c"], extra_compile_args=FLAGS),
                   Extension("audionorm_lab._gate", ["audionorm_lab/_gate.c"], extra_compile_args=FLAGS)])
