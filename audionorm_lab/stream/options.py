"""NormalizeOptions: the one place every option is defined (CLI, API, harness, notebooks)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import OptionError
from ..dsp.gate_grid import GATE_GRIDS
from ..dsp.parallel import check_workers
from .spill import SPILL_MODES

NOISE_PROFILES = ("file", "chunk")
#: ``"float"``: the toolkit's own input and output (libsndfile's float decode, a float WAV); ``"service"``: the
#: service's (pydub's decode, its 16-bit export), so the files are the service's (:mod:`~audionorm_lab.stream.compat`).
COMPAT_MODES = ("float", "service")


@dataclass(frozen=True)
class NormalizeOptions:
    """How to normalize a recording.

    Parameters
    ----------
    chunk_seconds : float
        Audio processed at a time, seconds. Memory grows with it (two chunks are held at a
        time: one gated, one filtered and written), not with the file or ``workers``. The
        output does not depend on it.
        ``math.inf`` processes the whole input as one chunk (whole-file processing). The
        default, 5 s, keeps two workers within 60 MB of the import floor.
    overlap_seconds : float
        Context margin read on each side of a chunk and thrown away after noise
        reduction (overlap-save), seconds. At least the gate's time support
        (about 0.08 s at 44.1 kHz) makes chunked output match whole-file output.
    target_lufs : float
        Integrated loudness of the output, LUFS (EBU R128: -23).
    ceiling_dbfs : float
        Highest sample peak allowed in the output, dBFS; the gain is lowered to respect it.
    highpass_hz : float or None
        High-pass cutoff, Hz; None switches the stage off.
    voice_band_hz : (float, float) or None
        Speech band-pass edges, Hz; None switches the stage off.
    denoise : bool
        Stationary spectral gating (noisereduce).
    normalize_loudness : bool
        Measure in a first pass and apply gain in a second; False makes one pass, no gain.
    noise_profile : {"file", "chunk"}
        ``"file"``: one noise profile, from the start of the file, for every chunk
        (what whole-file processing does). ``"chunk"``: each chunk profiles itself,
        as the naive per-chunk fix does; with ``overlap_seconds=0`` this shows its seams.
    gate_grid : {"service", "file"}
        Where the noise gate's STFT frames fall. ``"service"``: as in
        ``noisereduce.reduce_noise(stationary=True)``, which the service called on the
        whole array: 600,000-frame pieces, each gated with 30,000 frames of context
        (zeros beyond the file's ends), so streaming gates as the service did (with
        ``compat="service"``, the service's 16-bit file, identical on the corpus of notebook 01).
        ``"file"``: one grid from frame 0 over the whole file (``spectral_gating_stationary``
        on the whole array). See :mod:`audionorm_lab.dsp.gate_grid`.
    workers : int or None
        Threads that gate a chunk's pieces at once, while the chunk before it is filtered
        and written; None: the cores this process may use (``os.sched_getaffinity``), which
        is also the most used. 1 is the sequential path.
    spill : {"auto", "never"}
        ``"auto"``: the chain runs once; its pre-gain output is kept on disk (in the float
        WAV output itself, or a spill file next to the output when there is room) and the
        gain applied from there. ``"never"``: the chain runs twice, nothing extra on disk.
        Both give the same samples.
    output_subtype : str or None
        libsndfile subtype of the output (``"PCM_16"``...); None picks the format's default.
    compat : {"float", "service"}
        ``"float"`` (the toolkit's default): the input decoded by libsndfile (ffmpeg for other containers)
        in float, the output 32-bit float in a WAV. ``"service"`` (the default of
        :class:`~audionorm_lab.service.processor.AudioProcessor` and the Celery task): decoded and exported as the
        service's pydub did (16-bit, clipped, scaled by 32767 and truncated), so the output file is the
        service's own (:mod:`~audionorm_lab.stream.compat`). Not with ``output_subtype``.
    max_seconds : float or None
        Longest input processed, seconds: a longer one is refused, by its header's length before
        anything decodes, or when its decode passes the limit (a header may declare less). None: no limit.
    """

    chunk_seconds: float = 5.0
    overlap_seconds: float = 0.5
    target_lufs: float = -23.0
    ceiling_dbfs: float = -1.0
    highpass_hz: float | None = 80.0
    voice_band_hz: tuple[float, float] | None = (100.0, 8000.0)
    denoise: bool = True
    normalize_loudness: bool = True
    noise_profile: str = "file"
    gate_grid: str = "service"
    workers: int | None = None
    spill: str = "auto"
    output_subtype: str | None = None
    max_seconds: float | None = None
    compat: str = "float"

    def __post_init__(self):
        if not self.chunk_seconds > 0:  # math.inf: the whole input as one chunk
            raise OptionError(f"chunk length must be a positive number of seconds, not {self.chunk_seconds}")
        if not (math.isfinite(self.overlap_seconds) and self.overlap_seconds >= 0):
            raise OptionError(f"overlap must be zero or more seconds, not {self.overlap_seconds}")
        if not (math.isfinite(self.target_lufs) and -70 < self.target_lufs < 0):
            raise OptionError(f"target loudness must lie between -70 and 0 LUFS, not {self.target_lufs}")
        if not (math.isfinite(self.ceiling_dbfs) and self.ceiling_dbfs <= 0):
            raise OptionError(f"peak ceiling must be at most 0 dBFS, not {self.ceiling_dbfs}")
        if self.noise_profile not in NOISE_PROFILES:
            raise OptionError(f"noise profile must be one of {', '.join(NOISE_PROFILES)}, not {self.noise_profile!r}")
        if self.gate_grid not in GATE_GRIDS:
            raise OptionError(f"gate grid must be one of {', '.join(GATE_GRIDS)}, not {self.gate_grid!r}")
        if self.spill not in SPILL_MODES:
            raise OptionError(f"spill must be one of {', '.join(SPILL_MODES)}, not {self.spill!r}")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise OptionError(f"max_seconds must be a positive number of seconds, not {self.max_seconds}")
        if self.compat not in COMPAT_MODES:
            raise OptionError(f"compat must be one of {', '.join(COMPAT_MODES)}, not {self.compat!r}")
        if self.compat == "service" and self.output_subtype is not None:
            raise OptionError("compat='service' writes what the service wrote (16-bit); it takes no output subtype")
        if self.workers is not None:
            check_workers(self.workers)
        if self.voice_band_hz is not None:
            object.__setattr__(self, "voice_band_hz", tuple(float(f) for f in self.voice_band_hz))

    def to_dict(self) -> dict:
        return asdict(self)
