"""The noise gate's sample rates: where noisereduce (the service) refuses a rate, streaming refuses it in one line
with the same kind of error; where it takes one, streaming's service-mode file is the service's, byte for byte."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import soundfile as sf
from conftest import speech_like

from audionorm_lab import SampleRateError, full_load, normalize_file
from audionorm_lab.dsp.noise_gate import mask_smoothing


def _cli(src, dst, *flags, env=None):
    return subprocess.run([sys.executable, "-m", "audionorm_lab", "normalize", str(src), str(dst), "--quiet", *flags],
                          capture_output=True, text=True, env=env)


@pytest.mark.parametrize("rate", [1000, 5119, 256001, 384000])
def test_a_rate_the_service_refuses_is_refused_in_one_line_by_both(tmp_path, rate):
    src = tmp_path / "in.wav"
    sf.write(src, speech_like(2.0, rate, 1, seed=3), rate, subtype="PCM_16")
    with pytest.raises(SampleRateError, match="mask_smooth") as streaming:
        normalize_file(src, tmp_path / "s.wav", compat="service")
    with pytest.raises(SampleRateError, match="mask_smooth") as service:
        full_load(src, tmp_path / "f.wav")
    assert str(src) in str(streaming.value) and str(src) in str(service.value)
    # the same words and number in both: noisereduce's, "needs to be at least 256ms" at 1000 Hz
    words = re.search(r"\w+_mask_smooth_\w+ needs to be at least \d+m?s|\w+_mask_smooth_\w+ needs to be at least \d+Hz",
                      str(service.value)).group(0)
    assert words in str(streaming.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


@pytest.mark.parametrize("kernels", ["auto", "numpy"])
def test_the_1000_hz_file_gets_one_line_with_the_gate_and_is_processed_without_it(tmp_path, kernels):
    """The lowest rate the toolkit takes, 30 s of mono 16-bit WAV: exit 2 and one line in float and service mode
    (the service's own outcome), with the compiled kernels and the numpy path; without the gate the loudness meter
    refuses it too, and with neither (``--no-denoise --no-loudness``) it processes."""
    src = tmp_path / "low.wav"
    sf.write(src, speech_like(30.0, 1000, 1, seed=3), 1000, subtype="PCM_16")
    env = {**os.environ, "AUDIONORM_KERNELS": kernels}
    for mode in ("float", "service"):
        done = _cli(src, tmp_path / f"{mode}.wav", "--compat", mode, env=env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-1500:]
        assert "time_mask_smooth_ms needs to be at least 256ms" in done.stderr
        assert "without the noise gate and loudness normalization it processes" in done.stderr
        assert not (tmp_path / f"{mode}.wav").exists()
    # without the gate, the loudness meter cannot measure at 1000 Hz either (below 3364 Hz): one line again
    done = _cli(src, tmp_path / "plain.wav", "--no-denoise", env=env)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-1500:]
    assert "1,000 Hz is too low to measure loudness" in done.stderr and not (tmp_path / "plain.wav").exists()
    done = _cli(src, tmp_path / "plain.wav", "--no-denoise", "--no-loudness", env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-1500:]
    assert sf.info(str(tmp_path / "plain.wav")).frames == 30_000


@pytest.mark.parametrize("rate", [5120, 56320, 107520, 256000])
def test_at_the_edges_and_where_rounding_differs_the_service_file_is_the_same(tmp_path, rate):
    """5120 Hz and 256 kHz are the edges noisereduce takes; at 56,320 and 107,520 Hz another order of the same
    arithmetic gives a smoothing width one off from noisereduce's (a difference the service mode once had)."""
    src = tmp_path / "in.wav"
    sf.write(src, speech_like(3.0, rate, 1, seed=4), rate, subtype="PCM_16")
    normalize_file(src, tmp_path / "s.wav", compat="service")
    full_load(src, tmp_path / "f.wav")
    assert (tmp_path / "s.wav").read_bytes() == (tmp_path / "f.wav").read_bytes()


def test_mask_smoothing_is_noisereduces_at_every_rate_it_takes():
    """noisereduce's own filter generator, at every 64th rate from 5120 Hz to 256 kHz and at the rates where float
    rounding order matters: the same half-widths."""
    from noisereduce.spectralgate.base import SpectralGate

    class Probe(SpectralGate):
        def __init__(self, rate):
            self.sr, self._n_fft, self._hop_length = rate, 1024, 256

        def _do_filter(self, chunk):  # abstract in noisereduce; never called
            raise NotImplementedError

    def theirs(rate):
        probe = Probe(rate)
        probe._generate_mask_smoothing_filter(500, 50)
        return probe._smoothing_filter.shape

    for rate in [*range(5120, 256001, 64), 56320, 107520, 112640, 215040, 225280]:
        n_grad_freq, n_grad_time = mask_smoothing(rate, 1024, 256, 500, 50)
        if n_grad_freq == 1 and n_grad_time == 1:
            continue
        assert theirs(rate) == (2 * n_grad_freq + 1, 2 * n_grad_time + 1), rate
