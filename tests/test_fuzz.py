"""Bad input, fuzzed: generated files through every entry point (bench.fuzzing.properties), with Hypothesis
derandomized and a fixed budget (about a minute here); ``python -m bench fuzz`` runs the long campaign."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzzing.cases import Case, cases
from bench.fuzzing.properties import check_case

#: Small cases keep the budget: up to 60,000 samples, a few of the gate's 125,000-frame pieces at most in mono.
SUITE = settings(derandomize=True, database=None, deadline=None, phases=[Phase.generate], max_examples=30,
                 suppress_health_check=list(HealthCheck))


@SUITE
@given(case=cases(max_samples=60_000))
def test_every_generated_input_succeeds_or_fails_in_one_line_as_the_service_does(case, tmp_path_factory):
    """One line or success at every entry point, service mode's file the service's, chunking invisible, nothing left
    behind: the findings are listed, one line each, with the case."""
    result = check_case(case, tmp_path_factory.mktemp("case"))
    assert result["findings"] == [], (case, result["outcomes"])


@settings(SUITE, max_examples=4)
@given(case=cases(max_samples=20_000))
def test_the_real_cli_in_a_fresh_process_agrees(case, tmp_path_factory):
    """``python -m audionorm_lab normalize`` in a fresh process: exit 0, or 2 with one stderr line, never a signal
    or a traceback, and the in-process call's outcome."""
    result = check_case(case, tmp_path_factory.mktemp("case"), cli=True)
    assert result["findings"] == [], (case, result["outcomes"])


def test_the_cases_the_old_code_got_wrong(tmp_path_factory):
    """Found by the fuzzer: an input shorter than the gate's 768 frames of overlap (the service refuses it; the
    stream gated it), one shorter than a 1024-frame STFT frame (scipy shrinks the service's frame to it), a rate
    whose smoothing width another order of arithmetic rounds one off, the 1000 Hz file, an mp3 whose float-mode
    samples changed with the chunk length (libsndfile's decoder, read inside an MPEG frame), a chunk of 10^6 s
    that sized its buffer by the asking, and a 24-bit WAV of no frames (pydub's IndexError)."""
    for case in [Case("wav-16", 44100, 2, 343, "speech", 1), Case("wav-u8", 8270, 1, 121, "speech", 2),
                 Case("wav-float", 44100, 2, 900, "nonfinite", 3), Case("wav-16", 56320, 1, 40_000, "tones", 4),
                 Case("wav-16", 1000, 1, 3000, "speech", 5), Case("mp3", 8000, 1, 600, "noise", 6),
                 Case("mp3", 48000, 2, 144_000, "speech", 65535, False, 1.0, 1),
                 Case("mp3", 44100, 1, 132_300, "nonfinite", 2, False, 1.0, 1),
                 Case("ogg", 8000, 8, 84, "silence", 249, False, 1e6, 1), Case("wav-24", 1000, 1, 0, "silence", 0)]:
        result = check_case(case, tmp_path_factory.mktemp("case"))
        assert result["findings"] == [], (case, result["outcomes"])


def test_bench_fuzz_runs_a_campaign_and_says_what_it_covered(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "fuzz", "--examples", "4", "--jobs", "1", "--seed", "3",
                           "--max-samples", "5000", "--cli-every", "2", "--out", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary == json.loads((tmp_path / "fuzz.json").read_text())
    assert summary["examples"] == 4 and set(summary["findings"].values()) == {0}
    assert sum(summary["coverage"]["containers"].values()) == 4
    assert {"streaming-service", "full-load", "task"} <= set(summary["outcomes"])


def lying_wav(path, frames: int, declared: int) -> None:
    """A 16-bit stereo 44.1 kHz WAV of ``frames`` frames of noise whose header declares ``declared``."""
    import struct

    import numpy as np
    import soundfile as sf

    samples = 0.3 * np.random.default_rng(frames).standard_normal((frames, 2))
    sf.write(path, samples.astype(np.float32), 44100, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4: at + 8] = struct.pack("<I", declared * 4)
    data[4:8] = struct.pack("<I", len(data) - 8 + (declared - frames) * 4)
    path.write_bytes(bytes(data))


def test_an_input_under_one_stft_frame_is_the_services_whatever_its_header_declares(tmp_path):
    """The scan finds an input shorter than one STFT frame (not the header, which may declare 100 times more):
    900 frames give the service's bytes, 500 its refusal, in one line."""
    for frames in (900, 500):
        src = tmp_path / f"lying-{frames}.wav"
        lying_wav(src, frames, declared=100 * frames)
        done = {strategy: subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(src),
                                          str(tmp_path / f"{frames}-{strategy}.wav"), "--compat", "service",
                                          "--strategy", strategy], capture_output=True, text=True, timeout=300)
                for strategy in ("streaming", "full-load")}
        if frames == 900:
            assert [d.returncode for d in done.values()] == [0, 0], done
            assert (tmp_path / "900-streaming.wav").read_bytes() == (tmp_path / "900-full-load.wav").read_bytes()
        else:
            assert [d.returncode for d in done.values()] == [2, 2], done
            assert all(len(d.stderr.splitlines()) == 1 and "noverlap must be less than nperseg" in d.stderr
                       for d in done.values()), done
