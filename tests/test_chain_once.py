"""The chain runs once, on every core: same samples as the sequential chain-twice path, nothing left behind."""

import os
import resource
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from scipy import signal as scipy_signal

from audionorm_lab import normalize_array, normalize_file, snr_db
from audionorm_lab.dsp.noise_gate import NoiseGate
from audionorm_lab.dsp.stages import highpass
from conftest import CLI, leftovers, speech_like

RATE = 44100


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """20 s, more than one 600,000-frame piece of the service's grid."""
    path = tmp_path_factory.mktemp("chain-once") / "speech.wav"
    sf.write(path, speech_like(20.0, RATE, 2, seed=11), RATE, subtype="PCM_16")
    return path


@pytest.mark.parametrize("chunk_seconds", [1.3, 5.0, 17.0])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_parallel_single_run_equals_the_sequential_chain(chunk_seconds, channels):
    x = speech_like(16.0, RATE, channels, seed=channels)
    sequential, first = normalize_array(x, RATE, chunk_seconds=chunk_seconds, workers=1, spill="never")
    default, report = normalize_array(x, RATE, chunk_seconds=chunk_seconds, workers=2)
    assert (first.chain_runs, first.gain_path, first.workers) == (2, "chain twice", 1)
    assert (report.chain_runs, report.gain_path, report.workers) == (1, "in place", 2)
    # the scan and the chain share one decode, with one worker too; the second chain run decodes again
    assert (first.input_decodes, report.input_decodes) == (2, 1)
    assert first.plan["decode"] == report.plan["decode"] == "one, shared by the scan and the chain"
    assert snr_db(default, sequential) >= 120.0
    assert report.gain_db == pytest.approx(first.gain_db, abs=1e-9)
    assert report.loudness_in_lufs == pytest.approx(first.loudness_in_lufs, abs=1e-9)


@pytest.mark.parametrize("suffix, subtype, path", [(".wav", None, "in place"), (".wav", "PCM_24", "spill file"),
                                                   (".flac", None, "spill file")])
def test_files_through_each_gain_path_equal_the_sequential_chain(long_wav, tmp_path, suffix, subtype, path):
    sequential = normalize_file(long_wav, tmp_path / f"sequential{suffix}", workers=1, spill="never",
                                output_subtype=subtype)
    default = normalize_file(long_wav, tmp_path / f"default{suffix}", output_subtype=subtype)
    assert default.gain_path == path and default.chain_runs == 1 and default.input_decodes == 1
    a, _ = sf.read(tmp_path / f"default{suffix}", dtype="float64")
    b, _ = sf.read(tmp_path / f"sequential{suffix}", dtype="float64")
    assert a.shape == b.shape and snr_db(a, b) >= 120.0
    assert abs(default.loudness_out_lufs - sequential.loudness_out_lufs) < 1e-6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"default{suffix}", f"sequential{suffix}"])


@pytest.mark.parametrize("grid", ["service", "file"])
def test_a_run_without_loudness_follows_the_scan_on_one_decode(grid):
    """With no gain there is no measure pass: the apply pass is the chain's one run, and on the
    service grid it reads the scan's decode (20 s: longer than the scan may lead)."""
    x = speech_like(20.0, RATE, 2, seed=5)
    sequential, first = normalize_array(x, RATE, normalize_loudness=False, gate_grid=grid, workers=1)
    default, report = normalize_array(x, RATE, normalize_loudness=False, gate_grid=grid, workers=2)
    assert report.input_decodes == first.input_decodes == (1 if grid == "service" else 2)
    assert report.chain_runs == 1 and snr_db(default, sequential) >= 120.0


@pytest.mark.parametrize("rate", [44100, 48000])
def test_the_highpass_keeps_float64_state_and_gives_float32_blocks(rate):
    """In float32 the 80 Hz high-pass's state errs by about -85 dB at 44.1 and 48 kHz (measured),
    too much for -120 dB; the stage keeps float64 state and arithmetic, and hands out float32."""
    x = speech_like(6.0, rate, 2, seed=rate)
    stage = highpass(80.0, rate, 2)
    chunked = np.concatenate([stage.process(x[i:i + 7777]) for i in range(0, len(x), 7777)])
    assert chunked.dtype == np.float32 and stage._zi.dtype == np.float64
    assert snr_db(chunked, scipy_signal.sosfilt(stage.sos, x, axis=0)) >= 120.0


def test_a_worker_error_stops_the_run_with_the_original_error(long_wav, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = NoiseGate._gate_channel

    def failing(self, *args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise ValueError("gate failed on piece 7")
        return original(self, *args)

    monkeypatch.setattr(NoiseGate, "_gate_channel", failing)
    before = threading.active_count()
    with pytest.raises(ValueError, match="gate failed on piece 7"):
        normalize_file(long_wav, tmp_path / "out.wav", workers=2)
    assert threading.active_count() == before, "no thread is left running"
    assert list(tmp_path.iterdir()) == []


def test_no_room_for_a_spill_runs_the_chain_twice(long_wav, small_disk):
    """A 6 MB file system: room for the 16-bit output (3.5 MB), not for a 7 MB spill besides it."""
    report = normalize_file(long_wav, small_disk / "out.wav", output_subtype="PCM_16")
    assert report.gain_path == "chain twice" and report.chain_runs == 2
    assert any("too little for a" in note for note in report.notes)
    assert [p.name for p in small_disk.iterdir()] == ["out.wav"]


@pytest.fixture()
def small_disk(tmp_path):
    """A real 6 MB tmpfs (CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _limit_file_size(limit_bytes):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])
def test_a_file_size_limit_exits_2_and_leaves_nothing(long_wav, tmp_path, subtype):
    """RLIMIT_FSIZE of 1 MB: the float output (gain in place) or the spill (16-bit output) cannot grow."""
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([*CLI, "normalize", str(long_wav), str(out / "x.wav"), "--subtype", subtype, "--quiet"],
                            capture_output=True, text=True, preexec_fn=_limit_file_size(1 << 20))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_a_full_disk_exits_2_and_leaves_nothing(long_wav, small_disk):
    """A 6 MB file system cannot hold the 7 MB float output."""
    result = subprocess.run([*CLI, "normalize", str(long_wav), str(small_disk / "x.wav"), "--quiet"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr
    assert list(small_disk.iterdir()) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_leave_no_spill_and_no_output(tmp_path, sig, code):
    src = tmp_path / "long.wav"
    sf.write(src, speech_like(480.0, 16000, 2, seed=3), 16000, subtype="PCM_16")  # the chain runs a few seconds
    out = tmp_path / "out"
    out.mkdir()
    # Ctrl-C live in the child, as at a terminal: a suite started in the background (nohup, `&` in a
    # script) hands its children SIGINT ignored, and Python then keeps it ignored
    process = subprocess.Popen([*CLI, "normalize", str(src), str(out / "x.flac"), "--quiet", "--workers", "2"],
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (spills := _anonymous_files_in(process.pid, out)):  # the chain has started spilling
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stderr
    assert len(stderr.strip().splitlines()) == 1 and "no output written" in stderr
    assert list(out.iterdir()) == [] and leftovers(out) == []
    assert len(spills) == 1, "one spill, and it never had a name in the output's folder"


def _anonymous_files_in(pid, folder):
    """Files the process holds open in ``folder`` that have no name there (O_TMPFILE or unlinked)."""
    links = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return [link for link in links if link.startswith(str(folder) + "/") and link.endswith("(deleted)")]


def test_workers_must_be_a_positive_count(long_wav, tmp_path):
    result = subprocess.run([*CLI, "normalize", str(long_wav), str(tmp_path / "x.wav"), "--workers", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "workers" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    report = normalize_file(long_wav, tmp_path / "y.wav", workers=64)
    assert report.workers == len(os.sched_getaffinity(0)) and any("workers asked for" in n for n in report.notes)


@pytest.mark.parametrize("workers, ahead, gate_threads", [(1, False, 1), (2, True, 1), (3, True, 1), (4, True, 2),
                                                          (8, True, 6)])
def test_the_gate_gets_the_cores_the_scan_and_the_chain_leave(monkeypatch, workers, ahead, gate_threads):
    """On 2 cores a chunk is gated while the one before is written, its pieces on one thread: the scan and the
    chain's own thread keep the cores busy, and more gate threads only cost CPU (plan.THREADS_BESIDE_THE_GATE)."""
    from audionorm_lab.stream import plan as plan_module
    from audionorm_lab.media.probe import AudioInfo
    from audionorm_lab.stream.options import NormalizeOptions

    monkeypatch.setattr(plan_module, "available_cores", lambda: 8)
    info = AudioInfo("speech.wav", RATE, 2, 600 * RATE, "WAV", "soundfile", None)
    plan = plan_module.make_plan(info, NormalizeOptions(workers=workers))
    assert (plan.workers, plan.gate_ahead, plan.gate_threads) == (workers, ahead, gate_threads)
    assert plan.describe()["gate_threads"] == gate_threads
