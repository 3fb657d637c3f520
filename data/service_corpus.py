"""A small mixed corpus for comparing streaming's files with the service's: the formats, rates and
channel counts a service meets, each longer than 700,000 frames, so every file crosses the noise
gate's 600,000-frame pieces. Made locally by :func:`data.fetch_samples.make_sample` (nothing is
downloaded); a file already made with the same parameters is reused.

    python -m data.service_corpus FOLDER [--seconds-scale 1.0]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from data.fetch_samples import make_sample

#: The gate's piece is 600,000 frames: every file is longer, so every file crosses a piece boundary.
MIN_FRAMES = 700_000


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus: its format (and subtype), rate (Hz), channels and bitrate (bits per second, lossy)."""

    fmt: str
    rate: int
    channels: int
    subtype: str | None = None
    bitrate: int = 128_000

    @property
    def name(self) -> str:
        depth = f"-{self.subtype.lower()}" if self.subtype else ""
        return f"corpus-{self.fmt}{depth}-{self.rate // 1000}k-{self.channels}ch.{self.fmt}"


CORPUS = (
    CorpusFile("wav", 44100, 2, "PCM_16"), CorpusFile("wav", 48000, 2, "PCM_24"), CorpusFile("wav", 16000, 1, "PCM_16"),
    CorpusFile("wav", 48000, 6, "PCM_16"), CorpusFile("flac", 22050, 1, "PCM_16"), CorpusFile("flac", 96000, 2, "PCM_24"),
    CorpusFile("flac", 48000, 6, "PCM_16"), CorpusFile("mp3", 44100, 2), CorpusFile("mp3", 22050, 1),
    CorpusFile("m4a", 48000, 2), CorpusFile("m4a", 48000, 6), CorpusFile("ogg", 44100, 2), CorpusFile("ogg", 16000, 1, bitrate=48_000),
    CorpusFile("opus", 48000, 2),
)


def make_corpus(folder: Path, frames: int = MIN_FRAMES + 50_000, log=None) -> list[Path]:
    """Make (or reuse) :data:`CORPUS` in ``folder``, each file ``frames`` long; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    return [make_sample(frames / f.rate, f.fmt, subtype=f.subtype, bitrate=f.bitrate, out=folder, name=f.name, sample_rate=f.rate,
                        channels=f.channels, seed=index, log=log)
            for index, f in enumerate(CORPUS)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data.service_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--frames", type=int, default=MIN_FRAMES + 50_000, help="frames per file")
    args = parser.parse_args(argv)
    for path in make_corpus(args.folder, args.frames, log=print):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
