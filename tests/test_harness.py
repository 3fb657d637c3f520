"""The harness end to end: real subprocesses, real memray captures, a real watchdog kill, comparisons."""

import copy
import csv
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import memray
import numpy as np
import pytest

from bench.reporting.compare import compare
from data.fetch_samples import parse_duration
from bench.measuring.container import WATCHDOG, own_memory_cgroup

ROOT = Path(__file__).resolve().parent.parent


def bench(*args):
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    result = bench("run", "--quick", "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_quick_matrix_runs_every_strategy(quick_run):
    out, result = quick_run
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["strategy"] for r in rows} == {"full-load", "ffmpeg-segments", "streaming", "ffmpeg-filters", "sox"}
    assert all(r["status"] == "ok" for r in rows), [(r["run_id"], r["error"]) for r in rows]
    assert len(rows) == len(list(csv.DictReader(open(out / "results.csv"))))
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(progress) == len(rows), "one progress line per run"
    for row in rows:
        # SoX's chain needs a few MB; the others are Python or ffmpeg processes
        assert row["peak_rss_bytes"] > (2e6 if row["strategy"] == "sox" else 20e6)
        # audio seconds per wall second, of the audio the size names, in the time the run took
        assert row["audio_seconds"] == parse_duration(row["size"]) and row["cpu_seconds"] > 0
        assert row["realtime_multiple"] == pytest.approx(row["audio_seconds"] / row["wall_seconds"], rel=1e-9)
        if row["strategy"] in ("ffmpeg-filters", "sox"):
            assert row["memray_peak_bytes"] is None  # not a Python process
        else:
            capture = Path(row["memray_capture"])
            assert memray.FileReader(str(capture)).metadata.peak_memory == row["memray_peak_bytes"] > 1e6


def test_fidelity_against_streaming(quick_run):
    rows = json.loads((quick_run[0] / "results.json").read_text())["rows"]
    by_id = {r["run_id"]: r for r in rows}
    assert by_id["streaming-8s-c5-o0.5-r0"]["snr_vs_streaming_db"] is None  # the reference itself
    assert by_id["full-load-8s-r0"]["snr_vs_streaming_db"] > 20
    # the outside anchor: another algorithm altogether, though the same kind of chain
    assert by_id["sox-8s-r0"]["snr_vs_streaming_db"] < 10
    # one-second chunks with the default overlap: the same output as 5-second chunks
    assert by_id["streaming-8s-c1-o0.5-r0"]["snr_vs_streaming_db"] > 90
    # the proposal's one-second chunks: per-chunk processing, far from it, with seams
    segments = by_id["ffmpeg-segments-8s-c1-stream-r0"]
    assert segments["snr_vs_streaming_db"] < 15
    assert segments["seam_jump_ratio"] > by_id["streaming-8s-c1-o0.5-r0"]["seam_jump_ratio"]


def test_results_carry_machine_parameters_and_plots(quick_run):
    out, _ = quick_run
    payload = json.loads((out / "results.json").read_text())
    machine = payload["machine"]
    # the machine as it is: its cores, the numpy and Python that ran, the ffmpeg on PATH
    assert machine["cores"] == os.cpu_count()
    assert machine["numpy"] == np.__version__ and machine["python"] == platform.python_version()
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    assert machine["ffmpeg"] == ffmpeg
    assert payload["parameters"]["quick"] is True
    assert payload["summary"]["streaming"]["ok"] == 2
    for name in ("rss_vs_size", "rss_vs_chunk", "throughput", "full_load_limit"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "scratch").exists(), "outputs are deleted once measured"


def test_the_kernel_kills_full_load_at_the_limit(tmp_path):
    """Full-load on a 5-minute file needs more than 300 MB: the kernel's OOM killer ends it in its memory cgroup
    (the watchdog where no cgroup can be made, and the row says which)."""
    out = tmp_path / "kill"
    result = bench("run", "--sizes", "5m", "--strategies", "full-load", "--memory-limit", "300M", "--out", out,
                   "--no-plots")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert row["status"] == "killed: signal 9" and row["returncode"] == -9 and row["memory_limit_bytes"] == 300e6
    assert "killed: signal 9" in result.stderr
    if own_memory_cgroup() is None:
        assert row["limit_enforced_by"] == WATCHDOG and row["rss_at_kill_bytes"] > 300e6
    else:
        assert row["limit_enforced_by"].startswith("kernel memcg") and row["oom_kills"] == 1
        assert 290e6 <= row["cgroup_peak_bytes"] <= 300e6 and "Killed process" in row["kernel_log"]


def test_compare_flags_regressions(quick_run, tmp_path):
    payload = json.loads((quick_run[0] / "results.json").read_text())
    same = compare(payload, payload)
    assert same and all(e["peak_rss_ratio"] == 1.0 and not e["regressions"] for e in same)
    worse = copy.deepcopy(payload)
    for row in worse["rows"]:
        if row["strategy"] == "streaming":
            row["peak_rss_bytes"] *= 1.5
    flagged = [e for e in compare(payload, worse) if e["regressions"]]
    assert flagged and all(e["key"]["strategy"] == "streaming" and e["peak_rss_ratio"] == 1.5 for e in flagged)
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    result = bench("compare", quick_run[0], tmp_path / "worse.json")
    assert result.returncode == 1 and "regression: peak RSS" in result.stdout


def test_plots_draw_the_default_chunking_and_survive_a_run_without_it(tmp_path):
    """A streaming-only run at the default 5 s chunks (the 1-163 minute flatness run) is drawn; one
    at another chunk length has nothing for the size plot, whose log axes then stay linear."""
    from matplotlib.figure import Figure

    from audionorm_lab import NormalizeOptions
    from bench.measuring.run_plots import make_plots, plot_rss_vs_size

    default = NormalizeOptions()
    rows = [{"strategy": "streaming", "size": f"{m}m", "audio_seconds": 60.0 * m, "status": "ok",
             "chunk_seconds": default.chunk_seconds, "overlap_seconds": default.overlap_seconds,
             "peak_rss_bytes": (99 + m / 20) * 1e6, "realtime_multiple": 110.0, "repeat": 0} for m in (1, 10, 60, 163)]
    ax = Figure().subplots()
    plot_rss_vs_size(rows, 4e9, ax)
    assert list(ax.get_lines()[0].get_xdata()) == [1, 10, 60, 163] and ax.get_xscale() == "log"
    for run in (rows, [dict(r, chunk_seconds=30.0) for r in rows]):
        written = make_plots(run, tmp_path / str(run[0]["chunk_seconds"]), int(4e9))
        assert [p.read_bytes()[:4] for p in written] == [b"\x89PNG"] * 4
