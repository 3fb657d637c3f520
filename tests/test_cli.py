"""The console script as DESIGN's contract describes it."""

import json
import subprocess
import sys
from pathlib import Path

import pyloudnorm
import soundfile as sf

from conftest import run_cli


def test_console_script_installed_next_to_python(speech_wav):
    script = Path(sys.executable).parent / "audionorm-lab"
    result = subprocess.run([script, "loudness", speech_wav], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    x, rate = sf.read(speech_wav)
    assert abs(float(result.stdout.split()[0]) - pyloudnorm.Meter(rate).integrated_loudness(x)) <= 0.1


def test_normalize_json_report(speech_wav, tmp_path):
    out = tmp_path / "out.flac"
    result = run_cli("normalize", speech_wav, out, "--json", "--chunk-seconds", "5", "--overlap-seconds", "0.25",
                     "--target-lufs", "-20", "--highpass-hz", "60")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["output_path"] == str(out) and out.exists()
    assert report["chunks"] == 5  # 25 s in 5 s chunks
    assert report["options"]["overlap_seconds"] == 0.25
    assert report["stages"] == ["noise gate (stationary spectral gating)", "highpass 60 Hz", "voice band 100-8000 Hz"]
    assert abs(report["loudness_out_lufs"] + 20) <= 0.5
    assert set(report["pass_seconds"]) == {"profile", "measure", "apply"}
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_stages_can_be_switched_off(speech_wav, tmp_path):
    out = tmp_path / "out.wav"
    result = run_cli("normalize", speech_wav, out, "--json", "--no-denoise", "--no-voice-band", "--no-highpass",
                     "--no-loudness")
    report = json.loads(result.stdout)
    assert report["stages"] == [] and report["gain_db"] == 0.0 and report["pass_seconds"]["measure"] == 0.0
    original, _ = sf.read(speech_wav, dtype="float32")
    written, _ = sf.read(out, dtype="float32")
    assert abs(written - original).max() == 0.0


def test_human_summary_and_loudness_json(speech_wav, tmp_path):
    out = tmp_path / "out.wav"
    result = run_cli("normalize", speech_wav, out)
    assert result.returncode == 0 and "LUFS out" in result.stdout and "chunks" in result.stdout
    loudness = json.loads(run_cli("loudness", out, "--json").stdout)
    assert abs(loudness["integrated_lufs"] + 23) <= 0.5


def test_version():
    from audionorm_lab import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"audionorm-lab {__version__}"


def test_quiet_prints_nothing_on_success(speech_wav, tmp_path):
    for strategy in ("streaming", "full-load", "ffmpeg-segments"):
        result = run_cli("normalize", speech_wav, tmp_path / f"{strategy}.wav", "--strategy", strategy, "--quiet")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), strategy
        assert sf.info(str(tmp_path / f"{strategy}.wav")).frames > 0


def test_quiet_keeps_the_json_and_the_one_line_error(speech_wav, tmp_path):
    result = run_cli("normalize", speech_wav, tmp_path / "out.wav", "--quiet", "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["output_path"].endswith("out.wav")
    result = run_cli("normalize", tmp_path / "missing.wav", tmp_path / "out2.wav", "--quiet")
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("audionorm-lab: error:")


def test_without_quiet_a_summary_is_printed(speech_wav, tmp_path):
    result = run_cli("normalize", speech_wav, tmp_path / "out.wav")
    assert result.returncode == 0 and "LUFS out" in result.stdout
