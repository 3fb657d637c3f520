"""``audionorm-lab``: normalize a recording, or measure its loudness, from the shell.

Exit codes: 0 success, 2 bad input, output path, option or usage (one line on
stderr, no traceback; a full disk or file size limit included), 130 interrupted,
143 terminated (SIGTERM); after 130 and 143 no output or temporary file is left. A progress bar goes to stderr when it is
a terminal; ``--json`` puts the report on stdout. What the C libraries print on their own
(mpg123's "Note: Illegal Audio-MPEG-Header..." on a broken mp3) is kept off stderr, so
that a bad input gives its one line and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager

from .errors import AudionormError
from .media.file_loudness import integrated_loudness
from .dsp.gate_grid import GATE_GRIDS
from .stream.options import COMPAT_MODES, NOISE_PROFILES, NormalizeOptions
from .stream.spill import SPILL_MODES
from .stream.pipeline import PASS_NAMES, NormalizeReport
from .strategies import CONCAT_MODES, STRATEGIES

EXIT_BAD_INPUT = 2
DEFAULTS = NormalizeOptions()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in Hz, e.g. 100,8000, not {text!r}") from None
    return low, high


def _version() -> str:
    from . import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="audionorm-lab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    norm = commands.add_parser("normalize", help="noise gate, high-pass, voice band and loudness, streamed")
    norm.add_argument("input")
    norm.add_argument("output", help="output file: .wav, .flac, .ogg or .mp3")
    norm.add_argument("--strategy", choices=list(STRATEGIES), default="streaming",
                      help="streaming (constant memory), full-load (the service as it was: whole file in RAM) "
                           "or ffmpeg-segments (the proposed fix: split, process each chunk alone, join)")
    norm.add_argument("--concat", choices=CONCAT_MODES, default="stream",
                      help="ffmpeg-segments only: append each chunk to the output, or join in memory")
    norm.add_argument("--chunk-seconds", type=float, default=DEFAULTS.chunk_seconds, metavar="S")
    norm.add_argument("--overlap-seconds", type=float, default=DEFAULTS.overlap_seconds, metavar="S")
    norm.add_argument("--target-lufs", type=float, default=DEFAULTS.target_lufs, metavar="L")
    norm.add_argument("--ceiling-dbfs", type=float, default=DEFAULTS.ceiling_dbfs, metavar="DB")
    norm.add_argument("--highpass-hz", type=float, default=DEFAULTS.highpass_hz, metavar="F")
    norm.add_argument("--no-highpass", action="store_true")
    norm.add_argument("--voice-band-hz", type=_band, default=DEFAULTS.voice_band_hz, metavar="LOW,HIGH")
    norm.add_argument("--no-voice-band", action="store_true")
    norm.add_argument("--no-denoise", action="store_true")
    norm.add_argument("--no-loudness", action="store_true", help="one pass, no gain")
    norm.add_argument("--noise-profile", choices=NOISE_PROFILES, default=DEFAULTS.noise_profile)
    norm.add_argument("--gate-grid", choices=GATE_GRIDS, default=DEFAULTS.gate_grid,
                      help="noise gate STFT grid: service (noisereduce.reduce_noise's 600,000-frame pieces, "
                           "the service's gating) or file (one grid from frame 0)")
    norm.add_argument("--workers", type=int, default=None, metavar="N",
                      help="threads that gate chunks at once (default: the cores this process may use; "
                           "1: sequential)")
    norm.add_argument("--spill", choices=SPILL_MODES, default=DEFAULTS.spill,
                      help="auto: run the chain once, keeping its output on disk until the gain is known "
                           "(in a float WAV output itself, or a spill file beside the output); never: run it twice")
    norm.add_argument("--compat", choices=COMPAT_MODES, default=DEFAULTS.compat,
                      help="streaming's input and output: float (libsndfile's float decode, a 32-bit float WAV) or "
                           "service (decoded and exported as the service's pydub did: its 16-bit file, byte for byte "
                           "in WAV); full-load always writes the service's file")
    norm.add_argument("--subtype", default=None, help="libsndfile subtype of the output, e.g. PCM_16 (compat float)")
    norm.add_argument("--max-seconds", type=float, default=None, metavar="S",
                      help="refuse a longer input (by its header, or when its decode passes S seconds)")
    norm.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    norm.add_argument("--quiet", action="store_true",
                      help="print nothing on success (no progress bar, no summary); errors still print one line "
                           "and exit 2; --json still prints its JSON")

    loud = commands.add_parser("loudness", help="integrated loudness (LUFS), streamed")
    loud.add_argument("input")
    loud.add_argument("--json", action="store_true")
    return parser


def options_from_args(args: argparse.Namespace) -> NormalizeOptions:
    return NormalizeOptions(
        chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds, target_lufs=args.target_lufs,
        ceiling_dbfs=args.ceiling_dbfs, highpass_hz=None if args.no_highpass else args.highpass_hz,
        voice_band_hz=None if args.no_voice_band else args.voice_band_hz, denoise=not args.no_denoise,
        normalize_loudness=not args.no_loudness, noise_profile=args.noise_profile, gate_grid=args.gate_grid,
        workers=args.workers, spill=args.spill, output_subtype=args.subtype, max_seconds=args.max_seconds,
        compat=args.compat,
    )


class _ProgressBars:
    """One tqdm bar per pass on stderr; silent when stderr is not a terminal."""

    def __init__(self, disable: bool):
        self.disable, self.bars = disable, {}

    def __call__(self, pass_name: str, done: int, total: int | None) -> None:
        from tqdm import tqdm

        bar = self.bars.get(pass_name)
        if bar is None:
            bar = self.bars[pass_name] = tqdm(total=total, desc=pass_name, unit="frame", unit_scale=True,
                                              file=sys.stderr, disable=True if self.disable else None, leave=False)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _summary(report: NormalizeReport) -> str:
    def lufs(value):
        return "-inf" if value is None or value == float("-inf") else f"{value:.2f}"

    lines = [
        f"{report.input_path} -> {report.output_path}",
        f"  {report.input_seconds:.2f} s, {report.sample_rate} Hz, {report.channels} ch, {report.chunks} chunks",
        f"  loudness {lufs(report.loudness_in_lufs)} LUFS in, {lufs(report.loudness_out_lufs)} LUFS out, "
        f"gain {report.gain_db:+.2f} dB, peak {report.output_peak_dbfs:.2f} dBFS",
        f"  read: {report.decoder}; written: {report.output_format}",
        "  seconds per pass: " + ", ".join(f"{name} {report.pass_seconds[name]:.2f}" for name in PASS_NAMES),
    ]
    return "\n".join(lines + [f"  note: {note}" for note in report.notes])


class Terminated(Exception):
    """SIGTERM arrived: unwind, so temporary outputs are removed, and exit 143."""


def _terminate(signum, frame):
    raise Terminated


def _install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C (temporary files removed); a file size limit (RLIMIT_FSIZE)
    fails the write with EFBIG, reported in one line, instead of killing the process."""
    signal.signal(signal.SIGTERM, _terminate)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at /dev/null while the body runs, and Python's ``sys.stderr`` at a copy of
    the real one: the C libraries' own notes go nowhere, this program's lines (and tracebacks) still show."""
    sys.stderr.flush()
    real, original = os.dup(2), sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding=original.encoding, errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = original
        os.dup2(real, 2)
        os.close(real)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _install_signal_handlers()
    with _native_stderr_silenced():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "loudness":
            lufs = integrated_loudness(args.input)
            print(json.dumps({"input": args.input, "integrated_lufs": lufs if lufs > float("-inf") else None})
                  if args.json else f"{lufs:.2f} LUFS")
            return 0
        options = options_from_args(args)
        if args.strategy == "full-load":
            report = STRATEGIES["full-load"](args.input, args.output, options)
        elif args.strategy == "ffmpeg-segments":
            report = STRATEGIES["ffmpeg-segments"](args.input, args.output, options, concat=args.concat)
        else:
            progress = _ProgressBars(disable=args.quiet or args.json)
            try:
                report = STRATEGIES["streaming"](args.input, args.output, options, progress=progress)
            finally:
                progress.close()
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        elif not args.quiet:
            print(_summary(report))
        return 0
    except AudionormError as exc:
        print(f"audionorm-lab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("audionorm-lab: interrupted; no output written", file=sys.stderr)
        return 130
    except Terminated:
        print("audionorm-lab: terminated; no output written", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
