"""What the README promises about the command line and the service's settings, each through the real entry point:
the flags do what they say, a usage error is one line and exit 2, the environment's limits choose the mode or are
refused in one line, and the service's mp3 files are its own byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli, speech_like

from audionorm_lab import AudioJob, Limits, NormalizeOptions, OptionError, full_load, normalize_file
from audionorm_lab.service.processor import IN_MEMORY_BASE_BYTES, IN_MEMORY_PEAK_FACTOR


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """6 s of stereo 44.1 kHz speech-like audio, loud (peaks near full scale), 16-bit."""
    path = tmp_path_factory.mktemp("promises") / "speech.wav"
    x = speech_like(6.0, 44100, seed=9)
    sf.write(path, 0.95 * x / np.max(np.abs(x)), 44100, subtype="PCM_16")
    return path


def normalize(src, dst, *flags) -> dict:
    done = run_cli("normalize", src, dst, "--json", *flags)
    assert done.returncode == 0, done.stderr[-1500:]
    return json.loads(done.stdout)


def band_level_db(path, low: float, high: float) -> float:
    """Energy of ``path`` between ``low`` and ``high`` Hz, dB."""
    x, rate = sf.read(str(path), dtype="float64")
    spectrum = np.abs(np.fft.rfft(x.mean(axis=1))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return 10 * np.log10(spectrum[(freqs >= low) & (freqs < high)].sum() + 1e-30)


def test_the_ceiling_holds_the_peak_where_the_target_would_pass_it(speech, tmp_path):
    report = normalize(speech, tmp_path / "out.wav", "--target-lufs", "-5", "--ceiling-dbfs", "-6")
    assert report["gain_limited_by_ceiling"] and report["output_peak_dbfs"] <= -6.0 + 1e-6
    assert 20 * np.log10(np.max(np.abs(sf.read(str(tmp_path / "out.wav"))[0]))) <= -6.0 + 1e-4
    free = normalize(speech, tmp_path / "free.wav", "--target-lufs", "-5", "--ceiling-dbfs", "0")
    assert free["output_peak_dbfs"] > -6.0  # the same target without that ceiling goes past it


def test_the_voice_band_takes_what_is_below_its_low_edge(speech, tmp_path):
    narrow = normalize(speech, tmp_path / "narrow.wav", "--voice-band-hz", "400,3000", "--no-loudness")
    wide = normalize(speech, tmp_path / "wide.wav", "--voice-band-hz", "100,8000", "--no-loudness")
    assert narrow["options"]["voice_band_hz"] == [400.0, 3000.0] and wide["options"]["voice_band_hz"] == [100.0, 8000.0]
    below = band_level_db(tmp_path / "narrow.wav", 120, 250) - band_level_db(tmp_path / "wide.wav", 120, 250)
    inside = band_level_db(tmp_path / "narrow.wav", 800, 1600) - band_level_db(tmp_path / "wide.wav", 800, 1600)
    assert below < -10.0 and abs(inside) < 1.5, (below, inside)


def test_the_noise_profile_from_each_chunk_changes_the_output_and_says_so(speech, tmp_path):
    chunked = normalize(speech, tmp_path / "chunk.wav", "--noise-profile", "chunk", "--chunk-seconds", "2")
    whole = normalize(speech, tmp_path / "file.wav", "--noise-profile", "file", "--chunk-seconds", "2")
    assert chunked["options"]["noise_profile"] == "chunk" and whole["options"]["noise_profile"] == "file"
    assert not np.array_equal(sf.read(str(tmp_path / "chunk.wav"))[0], sf.read(str(tmp_path / "file.wav"))[0])


def test_spill_never_runs_the_chain_twice_for_the_same_samples(speech, tmp_path):
    spilled = normalize(speech, tmp_path / "spill.flac", "--spill", "auto")
    twice = normalize(speech, tmp_path / "twice.flac", "--spill", "never")
    assert spilled["gain_path"] == "spill file" and spilled["chain_runs"] == 1
    assert twice["gain_path"] == "chain twice" and twice["chain_runs"] == 2
    assert np.array_equal(sf.read(str(tmp_path / "spill.flac"))[0], sf.read(str(tmp_path / "twice.flac"))[0])


def test_concat_memory_joins_the_proposals_chunks_through_pydub(speech, tmp_path):
    memory = normalize(speech, tmp_path / "memory.wav", "--strategy", "ffmpeg-segments", "--concat", "memory",
                       "--chunk-seconds", "2")
    stream = normalize(speech, tmp_path / "stream.wav", "--strategy", "ffmpeg-segments", "--concat", "stream",
                       "--chunk-seconds", "2")
    assert memory["strategy"] == "ffmpeg-segments (concat=memory)" and "pydub's export" in memory["output_format"]
    assert stream["strategy"] == "ffmpeg-segments (concat=stream)" and memory["chunks"] == stream["chunks"] == 3
    assert sf.info(str(tmp_path / "memory.wav")).frames == sf.info(str(tmp_path / "stream.wav")).frames


@pytest.mark.parametrize("args", [["normalize", "in.wav"], ["normalize", "in.wav", "out.wav", "--bogus"],
                                  ["normalize", "in.wav", "out.wav", "--chunk-seconds", "ten"], ["frobnicate"]])
def test_a_usage_error_is_one_line_and_exit_2(args):
    done = run_cli(*args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("audionorm-lab") and ": error: " in done.stderr and done.stdout == ""


def test_the_memory_limit_in_the_environment_chooses_the_mode_in_auto(speech, tmp_path):
    """``AUDIONORM_MEMORY_LIMIT`` through mode="auto"'s processor: a file whose in-memory peak fits the limit runs
    in memory (full-load), the same file under a limit it does not fit is streamed."""
    from audionorm_lab.service.task import default_processor

    decoded = 6 * 44100 * 2 * 4
    fits = int(IN_MEMORY_BASE_BYTES + IN_MEMORY_PEAK_FACTOR * decoded) + 10**6
    job = AudioJob(str(speech), str(tmp_path / "out.wav"), NormalizeOptions(compat="service"))
    roomy = default_processor(Limits.from_environment({"AUDIONORM_MEMORY_LIMIT": str(fits)}))
    tight = default_processor(Limits.from_environment({"AUDIONORM_MEMORY_LIMIT": str(fits - 2 * 10**6)}))
    assert roomy.process_audio_job(job).strategy == "full-load"
    assert tight.process_audio_job(job).strategy == "streaming"


@pytest.mark.parametrize("name, value, words", [("AUDIONORM_MAX_SECONDS", "ten", "use a number of seconds"),
                                                ("AUDIONORM_MEMORY_LIMIT", "lots", "use e.g. 600M or 2G")])
def test_a_bad_limit_in_the_environment_is_refused_in_one_line(name, value, words):
    with pytest.raises(OptionError, match=words) as refused:
        Limits.from_environment({name: value})
    assert "\n" not in str(refused.value) and name in str(refused.value)


def test_the_services_mp3_is_its_own_byte_for_byte(speech, tmp_path):
    normalize_file(speech, tmp_path / "streaming.mp3", compat="service")
    full_load(speech, tmp_path / "service.mp3")
    assert (tmp_path / "streaming.mp3").read_bytes() == (tmp_path / "service.mp3").read_bytes()
