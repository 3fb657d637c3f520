"""Bad input: processed correctly with the report saying what happened, or one clear line and exit 2.

Either way no partial output is left behind and the input is unchanged.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from audionorm_lab import AudionormError, EmptyInputError, normalize_file
from conftest import encode, leftovers, run_cli, sha256, speech_like


def fails_cleanly(src, out, expected_words):
    """The CLI exits 2 with one line naming the cause; nothing is written; the input is untouched."""
    before = sha256(src) if src.exists() else None
    out_existed = out.exists()
    result = run_cli("normalize", src, out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audionorm-lab: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert all(word in lines[0] for word in expected_words), lines[0]
    assert out.exists() == out_existed
    if out.parent.is_dir():
        assert leftovers(out.parent) == []
    if before is not None:
        assert sha256(src) == before
    return lines[0]


def processes(src, out):
    """The CLI succeeds; returns the JSON report."""
    before = sha256(src)
    result = run_cli("normalize", src, out, "--json")
    assert result.returncode == 0, result.stderr
    assert sha256(src) == before
    assert leftovers(out.parent) == []
    return json.loads(result.stdout)


def test_missing_path(tmp_path):
    fails_cleanly(tmp_path / "nope.mp3", tmp_path / "out.wav", ["nope.mp3", "no such file"])


def test_empty_file(tmp_path):
    src = tmp_path / "empty.wav"
    src.write_bytes(b"")
    fails_cleanly(src, tmp_path / "out.wav", ["empty.wav", "empty"])


def test_text_file_named_wav(tmp_path):
    src = tmp_path / "notes.wav"
    src.write_text("these are meeting notes, not audio\n" * 20)
    fails_cleanly(src, tmp_path / "out.wav", ["notes.wav", "not an audio file"])


def test_header_only_wav(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, speech_like(1.0, 16000, 1), 16000, subtype="PCM_16")
    src = tmp_path / "header-only.wav"
    src.write_bytes(whole.read_bytes()[:44])
    fails_cleanly(src, tmp_path / "out.wav", ["header-only.wav", "no audio frames"])


def test_zero_frames(tmp_path):
    src = tmp_path / "zero.wav"
    with sf.SoundFile(src, "w", samplerate=44100, channels=2, subtype="PCM_16"):
        pass
    fails_cleanly(src, tmp_path / "out.wav", ["zero.wav", "no audio frames"])
    with pytest.raises(EmptyInputError):
        normalize_file(src, tmp_path / "out.wav")


def test_truncated_wav_is_processed_and_reported(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, speech_like(4.0, 44100, 2), 44100, subtype="PCM_16")
    src = tmp_path / "cut.wav"
    src.write_bytes(whole.read_bytes()[: 44 + 4 * 44100 * 2])  # 2 of 4 seconds
    report = processes(src, tmp_path / "out.wav")
    assert report["truncated"] and report["input_frames"] == 2 * 44100
    assert report["input_frames_expected"] == 4 * 44100
    assert any("ended early" in note for note in report["notes"])
    assert sf.info(tmp_path / "out.wav").frames == 2 * 44100


def test_truncated_mp3_is_processed_and_reported(tmp_path):
    wav = tmp_path / "whole.wav"
    sf.write(wav, speech_like(6.0, 44100, 2), 44100)
    mp3 = encode(wav, tmp_path / "whole.mp3", "-b:a", "128k")
    src = tmp_path / "cut.mp3"
    src.write_bytes(mp3.read_bytes()[: mp3.stat().st_size // 2])
    report = processes(src, tmp_path / "out.wav")
    assert report["truncated"]
    assert 2.5 < report["input_seconds"] < 3.5
    assert sf.info(tmp_path / "out.wav").frames == report["output_frames"]


def test_silence_gets_no_gain(tmp_path):
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros((44100 * 3, 2), np.float32), 44100)
    report = processes(src, tmp_path / "out.wav")
    assert report["loudness_in_lufs"] is None and report["loudness_out_lufs"] is None  # -inf in JSON
    assert report["gain_db"] == 0.0
    assert any("silent" in note for note in report["notes"])
    assert not np.any(sf.read(tmp_path / "out.wav")[0])


def test_nan_and_inf_samples_are_repaired_and_counted(tmp_path):
    x = speech_like(3.0, 44100, 2)
    x[1000, 0], x[2000, 1], x[3000:3010, :] = np.nan, np.inf, -np.inf
    src = tmp_path / "nan.wav"
    sf.write(src, x, 44100, subtype="FLOAT")
    report = processes(src, tmp_path / "out.wav")
    assert report["nonfinite_samples_repaired"] == 22
    assert any("NaN/inf" in note for note in report["notes"])
    out, _ = sf.read(tmp_path / "out.wav")
    assert np.isfinite(out).all()
    assert abs(report["loudness_out_lufs"] - report["target_lufs"]) <= 0.5


@pytest.mark.parametrize("rate, channels", [(8000, 1), (96000, 2), (22050, 3), (48000, 6)])
def test_rates_and_channel_counts(tmp_path, rate, channels):
    src = tmp_path / "in.wav"
    sf.write(src, speech_like(4.0, rate, channels), rate, subtype="PCM_16")
    report = processes(src, tmp_path / "out.wav")
    out, out_rate = sf.read(tmp_path / "out.wav", always_2d=True)
    assert out_rate == rate and out.shape == (4 * rate, channels)
    assert abs(report["loudness_out_lufs"] - report["target_lufs"]) <= 0.5
    assert any("Nyquist" in note for note in report["notes"]) == (rate <= 16000)


def test_output_folder_missing(speech_wav, tmp_path):
    fails_cleanly(speech_wav, tmp_path / "no" / "such" / "out.wav", ["does not exist"])


def test_output_folder_unwritable(speech_wav, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    fails_cleanly(speech_wav, blocker / "out.wav", ["does not exist"])


def test_output_is_the_input(tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, speech_like(1.0, 16000, 1), 16000)
    fails_cleanly(src, src, ["overwrite the input"])


def test_unsupported_output_format(speech_wav, tmp_path):
    fails_cleanly(speech_wav, tmp_path / "out.m4a", ["out.m4a", ".m4a"])


def test_bad_option_is_one_line(speech_wav, tmp_path):
    result = run_cli("normalize", speech_wav, tmp_path / "out.wav", "--chunk-seconds", "-3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "chunk length" in result.stderr
    result = run_cli("normalize", speech_wav, tmp_path / "out.wav", "--highpass-hz", "40000")
    assert result.returncode == 2 and "Nyquist" in result.stderr
    assert not (tmp_path / "out.wav").exists() and leftovers(tmp_path) == []


def test_api_raises_the_base_class(tmp_path):
    with pytest.raises(AudionormError, match="no such file"):
        normalize_file(tmp_path / "missing.flac", tmp_path / "out.wav")
