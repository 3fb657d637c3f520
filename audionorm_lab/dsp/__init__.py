"""The signal processing: arrays in, arrays out, no files.

IIR sections, STFT and frame transforms, the noise gate (its grid, kernels, floor decision and stage), loudness
metering, gains and the fidelity metrics, and the array geometry (chunks with context, buffer sizes in samples,
pieces mapped over threads in order). The C and C++ kernels sit beside the modules that wrap them; numpy and scipy
are their reference, bit for bit. Uses numpy, scipy and :mod:`audionorm_lab.errors` only.
"""
