"""The one C extension, audionorm_lab._sections (the IIR sections' loop); everything else is in pyproject.toml.

Compiled without contraction into FMA (-ffp-contract=off), so its results are scipy's sosfilt's, bit for bit.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("audionorm_lab._sections", ["audionorm_lab/_sections.c"],
                             extra_compile_args=["-O3", "-ffp-contract=off"])])
