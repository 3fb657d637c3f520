"""The service-shaped API: ``AudioProcessor.process_audio_job(job)``, as the service calls it.

Small inputs are processed in memory, as before; inputs whose decoded size passes a
threshold go through the streaming core, whose memory does not depend on length.
The decision comes from a cheap probe (container headers through libsndfile or
ffprobe): nothing is decoded to make it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .io import probe
from .options import NormalizeOptions
from .pipeline import NormalizeReport
from .strategies import full_load, streaming

log = logging.getLogger(__name__)

#: Decoded size (float32 samples) above which a job is streamed, bytes: about 5 minutes of
#: stereo 44.1 kHz. Full-load processing peaks near six times the decoded size.
DEFAULT_CHUNK_THRESHOLD_BYTES = 100 * 10**6


@dataclass(frozen=True)
class AudioJob:
    """One normalization job, as the service's task receives it."""

    input_file: str
    output_file: str
    options: NormalizeOptions = field(default_factory=NormalizeOptions)
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

    def process_audio_job(self, job: AudioJob) -> NormalizeReport:
        info = probe(job.input_file)
        decoded = info.decoded_bytes
        if decoded is None or decoded > self.chunk_threshold_bytes:
            log.info("job %s: %s decodes to %s bytes: streaming", job.job_id, job.input_file, decoded)
            return self._process_audio_in_chunks(job)
        log.info("job %s: %s decodes to %s bytes: in memory", job.job_id, job.input_file, decoded)
        return self._process_audio_in_memory(job)

    def _process_audio_in_chunks(self, job: AudioJob) -> NormalizeReport:
        return streaming(job.input_file, job.output_file, job.options)

    def _process_audio_in_memory(self, job: AudioJob) -> NormalizeReport:
        return full_load(job.input_file, job.output_file, job.options)
