"""Files: what an input is, and audio in and out of it in blocks.

Probe (ffprobe, libsndfile), sources (libsndfile, an ffmpeg pipe), atomic sinks, the container allowlist, the
service's own decode and export (pydub's, streamed), and file sameness. Uses :mod:`audionorm_lab.dsp` and
:mod:`audionorm_lab.errors`; knows nothing of the engine or the service.
"""
