"""The service-shaped API: ``AudioProcessor.process_audio_job(job)``, as the service calls it.

Small inputs are processed in memory, as before; inputs whose decoded size passes a
threshold go through the streaming core, whose memory does not depend on length.
The decision comes from a cheap probe (container headers through libsndfile or
ffprobe): nothing is decoded to make it.

Jobs default to ``compat="service"`` (:data:`SERVICE_OPTIONS`): a streamed job's file is the
file the service would have written, so the output format never depends on the input's size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..media.probe import probe
from ..stream.options import NormalizeOptions
from ..stream.passes import ProgressCallback
from ..stream.pipeline import NormalizeReport
from ..strategies import full_load, streaming

log = logging.getLogger(__name__)

#: Decoded size (float32 samples) above which a job is streamed, bytes: about 5 minutes of
#: stereo 44.1 kHz. Full-load processing peaks near six times the decoded size.
DEFAULT_CHUNK_THRESHOLD_BYTES = 100 * 10**6
#: In-memory (full-load) peak RSS of a Celery pool process, bytes: a base (imports, noisereduce's
#: 600,000-frame pieces, ffmpeg) plus a factor times the decoded size. Measured with
#: ``python -m bench run --sizes 1m,2m,3m,5m --strategies full-load --no-memray`` (420, 473,
#: 576, 744 MB: 336 MB + 3.9 x decoded) and in a pool process (a 3-minute mp3: 679 MB), rounded up.
IN_MEMORY_BASE_BYTES = 440 * 10**6
IN_MEMORY_PEAK_FACTOR = 4.0


def in_memory_peak_bytes(decoded_bytes: int | float) -> float:
    """The in-memory (full-load) model's peak RSS of a pool process for an input of ``decoded_bytes``
    (float32 samples: frames x channels x 4), bytes: :data:`IN_MEMORY_BASE_BYTES` +
    :data:`IN_MEMORY_PEAK_FACTOR` x ``decoded_bytes``."""
    return IN_MEMORY_BASE_BYTES + IN_MEMORY_PEAK_FACTOR * decoded_bytes


#: The service's options: its decode and its 16-bit export (``compat="service"``), whichever way a job runs.
SERVICE_OPTIONS = NormalizeOptions(compat="service")


@dataclass(frozen=True)
class AudioJob:
    """One normalization job, as the service's task receives it (by default with :data:`SERVICE_OPTIONS`)."""

    input_file: str
    output_file: str
    options: NormalizeOptions = SERVICE_OPTIONS
    job_id: str | None = None


class AudioProcessor:
    """Normalizes jobs, in memory when small, streamed when large.

    Parameters
    ----------
    chunk_threshold_bytes : int
        Decoded size (frames x channels x 4 bytes) above which a job is streamed.
        0 streams every job. An input whose length the probe cannot tell is streamed.
    """

    def __init__(self, chunk_threshold_bytes: int = DEFAULT_CHUNK_THRESHOLD_BYTES):
        self.chunk_threshold_bytes = chunk_threshold_bytes

    @classmethod
    def for_memory_limit(cls, limit_bytes: int) -> AudioProcessor:
        """A processor that keeps a job in memory only when its in-memory peak fits ``limit_bytes``
        (the pool process's memory limit, bytes); every other job is streamed. The threshold is
        ``(limit - IN_MEMORY_BASE_BYTES) / IN_MEMORY_PEAK_FACTOR``, capped at the default; 0 when
        nothing fits (every job streamed)."""
        fitting = int((limit_bytes - IN_MEMORY_BASE_BYTES) / IN_MEMORY_PEAK_FACTOR)
        return cls(max(0, min(DEFAULT_CHUNK_THRESHOLD_BYTES, fitting)))

    def process_audio_job(self, job: AudioJob, progress: ProgressCallback | None = None) -> NormalizeReport:
        """Normalize ``job``, in memory when small, streamed otherwise; ``progress(pass_name, frames_done,
        frames_expected)`` is called as a streamed job goes (the in-memory path has no passes to report)."""
        info = probe(job.input_file)
        decoded = info.decoded_bytes
        if decoded is None or decoded > self.chunk_threshold_bytes:
            log.info("job %s: %s decodes to %s bytes: streaming", job.job_id, job.input_file, decoded)
            return self._process_audio_in_chunks(job, progress)
        log.info("job %s: %s decodes to %s bytes: in memory", job.job_id, job.input_file, decoded)
        return self._process_audio_in_memory(job)

    def _process_audio_in_chunks(self, job: AudioJob, progress: ProgressCallback | None = None) -> NormalizeReport:
        return streaming(job.input_file, job.output_file, job.options, progress=progress)

    def _process_audio_in_memory(self, job: AudioJob) -> NormalizeReport:
        return full_load(job.input_file, job.output_file, job.options)
