"""The jobs of a load run: planned over the sample lengths, fed as earlier ones finish while faults remain, and
each output checked (valid audio, the input's length, loudness at the target)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import soundfile as sf

from audionorm_lab import integrated_loudness
from data.fetch_samples import make_sample

from .faults import FaultInjector


LOUDNESS_TOLERANCE_LU = 0.5


@dataclass
class Job:
    """One job of the mix; ``expected_error`` is set for a deliberately bad input."""

    index: int
    input_file: Path
    output_file: Path
    input_seconds: float
    expected_error: str | None = None
    task_id: str | None = None
    submitted: float | None = None
    finished: float | None = None
    state: str | None = None
    report: dict | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def delivery(self) -> dict:
        """The ``delivery`` entry of its report (empty until it succeeded)."""
        return (self.report or {}).get("delivery") or {}


def late_after(longest_input_seconds: float) -> float:
    """When a job counts as late, seconds from publication to its final state: three visibility timeouts (the
    wait for a cold shutdown's restore, twice over) and a minute."""
    return 3 * visibility_timeout_seconds(longest_input_seconds) + 60.0


def visibility_timeout_seconds(longest_input_seconds: float) -> float:
    """The visibility timeout set on the workers: 10 s plus a fifth of the longest input, seconds.

    Streaming runs well above 5x real time even with four jobs on two cores, so a job's
    message is rarely restored while it runs (and then its copy waits on the run lock);
    a cold shutdown's jobs come back within that time plus the restore interval.
    """
    return 10.0 + longest_input_seconds / 5.0


def job_output(outputs: Path, index: int) -> Path:
    """Where job ``index`` writes: ``outputs/job-NNN.flac``."""
    return outputs / f"job-{index:03d}.flac"


def plan_jobs(count: int, durations: list[float], out: Path, bad_inputs: int = 0, log=None) -> list[Job]:
    """``count`` jobs cycling through mp3 samples of ``durations`` (seconds), and ``bad_inputs`` bad ones."""
    samples = {d: make_sample(d, "mp3", log=log) for d in durations}
    outputs = out / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    jobs = [Job(i, samples[durations[i % len(durations)]], job_output(outputs, i), durations[i % len(durations)])
            for i in range(count)]
    bad_folder = out / "bad-inputs"
    bad_folder.mkdir(parents=True, exist_ok=True)
    for n in range(bad_inputs):
        if n % 2 == 0:
            src = bad_folder / f"minutes-{n}.mp3"
            src.write_text("minutes of the meeting, not audio\n" * 40)
            jobs.append(Job(len(jobs), src, job_output(outputs, len(jobs)), 0.0, "NotAudioError"))
        else:
            jobs.append(Job(len(jobs), bad_folder / f"missing-{n}.mp3", job_output(outputs, len(jobs)), 0.0,
                            "InputNotFoundError"))
    return jobs


@dataclass
class JobFeed:
    """More jobs, like the first ones in turn, while the fault injector has faults left: ``in_flight`` jobs
    without a final state at all times, so that a fault that hits a worker running a job finds one. Without it
    a fast run (RabbitMQ's, on a faster core) could finish its jobs before the last fault kind came round.

    A soak (``until``, monotonic seconds) feeds until then, stops the injector there, and takes the bad inputs
    among its models too (``with_bad_inputs``): each keeps failing with its own clear error."""

    jobs: list[Job]
    submit: Callable[[Job], None]
    injector: FaultInjector | None
    in_flight: int
    until: float | None = None
    with_bad_inputs: bool = False

    def active(self) -> bool:
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return self.injector is not None and self.injector.is_alive() and self.injector.remaining() > 0

    def __call__(self) -> None:
        if not self.active():
            if self.until is not None and self.injector is not None and self.injector.is_alive():
                self.injector.stop()  # the soak is over: drain
            return
        models = [j for j in self.jobs[:self.first] if self.with_bad_inputs or j.expected_error is None]
        waiting = sum(j.state is None for j in self.jobs)
        for _ in range(self.in_flight - waiting if models else 0):
            model = models[len(self.jobs) % len(models)]
            job = Job(len(self.jobs), model.input_file, job_output(model.output_file.parent, len(self.jobs)),
                      model.input_seconds, model.expected_error)
            self.submit(job)
            self.jobs.append(job)

    def __post_init__(self) -> None:
        self.first = len(self.jobs)  # the planned jobs: the models of those fed


def check_output(job: Job) -> str | None:
    """Why ``job``'s output is not complete, valid audio at the target loudness; None when it is."""
    try:
        info = sf.info(str(job.output_file))
    except (sf.LibsndfileError, RuntimeError) as exc:
        return f"not readable audio ({exc})"
    expected = (job.report or {}).get("input_frames")
    if expected is not None and info.frames != expected:
        return f"{info.frames} frames, the input has {expected}"
    target = (job.report or {}).get("target_lufs")
    if target is not None:
        loudness = integrated_loudness(job.output_file)
        if abs(loudness - target) > LOUDNESS_TOLERANCE_LU:
            return f"loudness {loudness:.2f} LUFS, target {target:.2f}"
    return None
