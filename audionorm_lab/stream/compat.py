"""Which input and output a normalization uses: the toolkit's own, or the service's.

``compat="float"``: libsndfile (or ffmpeg) decodes in float, the output is written by libsndfile
(:class:`~audionorm_lab.media.sinks.AtomicSink`, 32-bit float in a WAV by default). ``compat="service"``: the
service's decode (:mod:`~audionorm_lab.media.service_decode`) and its export
(:mod:`~audionorm_lab.media.service_export`), so a file streamed is the file the service wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..media.probe import AudioInfo
from ..media.sinks import AtomicSink
from ..media.sources import AudioSource, open_source
from .options import NormalizeOptions
from ..media.service_decode import ServiceDecode
from ..media.service_export import ServiceSink


@dataclass(frozen=True)
class Endpoints:
    """A normalization's input (``open_input()`` opens a fresh source each pass) and output (a sink to enter),
    and what the report says of them."""

    open_input: Callable[[], AudioSource]
    output: AtomicSink | ServiceSink
    decoder: str
    output_format: str


def endpoints(info: AudioInfo, dst: Path, options: NormalizeOptions) -> Endpoints:
    """The input and output of ``options.compat`` for ``info`` into ``dst``."""
    if options.compat == "service":
        decode = ServiceDecode.of(info)
        sink = ServiceSink(dst, info.sample_rate, info.channels)
        return Endpoints(decode.open, sink, decode.describe(), sink.description)
    sink = AtomicSink(dst, info.sample_rate, info.channels, options.output_subtype, info.frames)
    return Endpoints(lambda: open_source(info), sink, info.decoder, f"{sink.format}/{sink.subtype}")
