"""The streaming engine: a file normalized in constant memory.

Options, the plan, the passes (scan, measure, apply), the chain run once on every core, the shared decode, spill
files, the allocator, and compat (which source and sink a mode uses). Uses :mod:`audionorm_lab.media` and
:mod:`audionorm_lab.dsp`; knows nothing of Celery.
"""
