"""The run lock's holder check on real processes: a lock held by a process that has ended is free."""

import os
import signal
import socket
import subprocess
import time

import soundfile as sf

from audionorm_lab.service.delivery import holder_alive


def test_a_killed_process_not_yet_reaped_holds_no_lock():
    """A pool process killed with its worker waits, a zombie, until pid 1 reaps it; its lock is free at once."""
    child = subprocess.Popen(["sleep", "60"])
    holder = f"{socket.gethostname()}:{child.pid}:abcd"
    assert holder_alive(holder) is True
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert holder_alive(holder) is False  # not reaped yet: os.kill(pid, 0) would still succeed
    child.wait()
    assert holder_alive(holder) is False
    assert holder_alive(f"{socket.gethostname()}:{os.getpid()}:abcd") is True
    assert holder_alive(f"another-host-{socket.gethostname()}:{os.getpid()}:abcd") is None


def test_a_killed_run_leaves_no_encoder_writing_its_temporary_file(tmp_path):
    """The service's ffmpeg encoder dies with the process that feeds it: a re-run that clears the killed run's
    temporary file must not see it written again (an orphaned encoder would finish it, trailer and all)."""
    import sys

    import psutil

    script = (
        "import sys, time, numpy as np\n"
        "from audionorm_lab.media.service_export import ServiceSink\n"
        "sink = ServiceSink(sys.argv[1], 44100, 2).__enter__()\n"
        "sink.write(np.zeros((44100, 2), np.float32))\n"
        "print(sink._encoder.pid, flush=True)\n"
        "time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.flac")], stdout=subprocess.PIPE,
                              text=True)
    encoder = psutil.Process(int(writer.stdout.readline()))
    assert "ffmpeg" in " ".join(encoder.cmdline())
    writer.kill()
    writer.wait()
    encoder.wait(timeout=60)  # ended, not orphaned: psutil.TimeoutExpired otherwise (PDEATHSIG: at once)
    temporaries = list(tmp_path.glob(".out.flac.*.part"))
    assert len(temporaries) == 1 and not (tmp_path / "out.flac").exists()
    # an orphaned encoder would have read its input's end and finished the file: its STREAMINFO then counts the
    # second written (a killed one never goes back to write the count)
    assert flac_total_samples(temporaries[0]) != 44100, "the encoder outlived its writer and finished the file"
    # the same writer, closed rather than killed: its encoder finishes, and the count says so
    closing = script.replace("print(sink._encoder.pid, flush=True)\ntime.sleep(60)\n", "sink.__exit__(None, None, None)\n")
    assert closing != script
    subprocess.run([sys.executable, "-c", closing, str(tmp_path / "closed.flac")], check=True, timeout=120)
    assert flac_total_samples(tmp_path / "closed.flac") == sf.info(str(tmp_path / "closed.flac")).frames == 44100


def flac_total_samples(path) -> int | None:
    """The total samples a FLAC's STREAMINFO declares (0 while an encoder has not finished), None where the file has
    no STREAMINFO yet. FLAC format: "fLaC", a 4-byte block header, then STREAMINFO, whose bytes 13-17 end with
    the 36-bit count."""
    data = open(path, "rb").read(42)
    if len(data) < 42 or data[:4] != b"fLaC" or data[4] & 0x7F != 0:
        return None
    info = data[8:42]
    return ((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")
