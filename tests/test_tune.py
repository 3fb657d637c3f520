"""python -m bench tune: the model, the recommendation, and the command on a real file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.tuning.tune import CANDIDATE_CHUNKS_SECONDS, SPEED_RESOLUTION, Model, NothingFits, fidelity_at, fit, recommend
from data.fetch_samples import make_sample

ROOT = Path(__file__).resolve().parents[1]
FIDELITY = [{"overlap_seconds": 0.0, "snr_vs_whole_db": 35.0}, {"overlap_seconds": 0.1, "snr_vs_whole_db": 70.0},
            {"overlap_seconds": 0.5, "snr_vs_whole_db": 200.0}]


def _truth() -> Model:
    return Model(44100, 2, 1.5, [120e6, 4.0, 2.0], {1: 0.03, 2: 0.018}, [0.02, 0.05])


def test_the_fit_recovers_a_linear_truth():
    truth, clip = _truth(), 180.0
    runs = []
    for chunk in (2.0, 5.0, 15.0, 40.0):
        for workers in (1, 2):
            for overlap in (0.5, 2.0):
                work = clip * truth.seconds_per_audio_second(chunk, overlap, workers)
                runs.append({"chunk_seconds": chunk, "overlap_seconds": overlap, "workers": workers,
                             "peak_rss_bytes": truth.peak_rss_bytes(chunk, overlap, workers),
                             "wall_seconds": truth.startup_seconds + work})
    model = fit(runs, 44100, 2, clip, truth.startup_seconds)
    assert model.rss_coefficients == pytest.approx(truth.rss_coefficients, rel=1e-6)
    assert model.time_coefficients == pytest.approx(truth.time_coefficients, rel=1e-6)
    assert model.time_by_workers == pytest.approx(truth.time_by_workers, rel=1e-6)
    assert model.rss_fit_error < 1e-9 and model.realtime_fit_error < 1e-9
    assert Model.from_dict(json.loads(json.dumps(model.to_dict()))) == model


def test_time_coefficients_stay_non_negative_when_noise_would_make_short_chunks_look_faster():
    """A chain whose per-chunk cost is below the noise: plain least squares fits a negative cost per chunk
    (1-second chunks "faster" than long ones, the recommendation flipping from run to run); the fit holds
    every time coefficient at >= 0."""
    truth, clip = Model(44100, 2, 0.4, [40e6, 4.0, 2.0], {1: 0.012, 2: 0.010}, [0.0, 0.0]), 30.0
    noise = iter([1.00, 1.04, 0.97, 1.02, 1.03, 0.99, 0.98, 1.05, 1.01, 0.96, 1.00, 1.03, 1.02, 0.97, 1.04, 0.98])
    runs = []
    for chunk in (2.0, 5.0, 15.0, 40.0):
        for workers in (1, 2):
            for overlap in (0.05, 2.0):
                work = clip * truth.seconds_per_audio_second(chunk, overlap, workers) * next(noise)
                runs.append({"chunk_seconds": chunk, "overlap_seconds": overlap, "workers": workers,
                             "peak_rss_bytes": truth.peak_rss_bytes(chunk, overlap, workers),
                             "wall_seconds": truth.startup_seconds + work})
    model = fit(runs, 44100, 2, clip, truth.startup_seconds)
    assert min(model.time_coefficients) >= 0 and min(model.time_by_workers.values()) >= 0
    assert model.seconds_per_audio_second(1.0, 0.1, 2) >= model.seconds_per_audio_second(120.0, 0.1, 2)


def test_the_recommendation_is_the_fastest_setting_that_fits_and_reaches_the_target():
    truth = _truth()
    budget = 200e6
    best = recommend(truth, FIDELITY, budget, max_workers=2, target_db=60.0, audio_seconds=600.0)
    assert best["overlap_seconds"] == 0.1 and best["fidelity_target_met"]
    assert best["predicted_peak_rss_bytes"] <= budget * 0.9
    fitting = [(chunk, workers) for chunk in CANDIDATE_CHUNKS_SECONDS for workers in (1, 2)
               if truth.peak_rss_bytes(chunk, 0.1, workers) <= budget * 0.9]
    fastest = max(truth.realtime_multiple(chunk, 0.1, workers, 600.0) for chunk, workers in fitting)
    assert best["predicted_realtime_multiple"] >= fastest * (1 - SPEED_RESOLUTION)
    for chunk, workers in fitting:  # as fast, within the resolution, and no other such setting takes less memory
        if truth.realtime_multiple(chunk, 0.1, workers, 600.0) >= fastest * (1 - SPEED_RESOLUTION):
            assert truth.peak_rss_bytes(chunk, 0.1, workers) >= best["predicted_peak_rss_bytes"]
    # a chain with no cost per chunk: every chunk length is as fast, so the least memory wins, the shortest chunk
    flat = Model(44100, 2, 0.4, [40e6, 4.0, 2.0], {1: 0.012, 2: 0.010}, [0.0, 0.0])
    assert recommend(flat, FIDELITY, budget, 2, 60.0, 600.0)["chunk_seconds"] == CANDIDATE_CHUNKS_SECONDS[0]
    with pytest.raises(NothingFits):
        recommend(truth, FIDELITY, 100e6, max_workers=2, target_db=60.0, audio_seconds=600.0)
    assert fidelity_at(FIDELITY, 0.3) == 70.0 and fidelity_at(FIDELITY, 0.0) == 35.0


@pytest.fixture(scope="module")
def forty_seconds(tmp_path_factory):
    return make_sample(40.0, "mp3", out=tmp_path_factory.mktemp("samples"), speech="builtin")


def test_tune_recommends_a_setting_that_fits_and_validates_it(forty_seconds):
    done = subprocess.run([sys.executable, "-m", "bench", "tune", str(forty_seconds), "--memory-limit", "400M",
                           "--minutes", "0.5", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    best = result["recommended"]
    assert set(best) == {"chunk_seconds", "overlap_seconds", "workers"} and best["workers"] >= 1
    assert result["memory_limit_bytes"] == 400 * 10**6
    assert result["predicted_peak_rss_bytes"] <= 0.9 * result["memory_limit_bytes"]
    assert result["validated_on"] == "whole input" and result["validated_peak_rss_bytes"] < 400 * 10**6
    assert abs(result["validated_rss_error"]) < 0.25, result["validated_rss_error"]
    assert result["fidelity_db"] >= 60 and result["fidelity_target_met"]
    assert len(result["runs"]) >= 8 and result["model"]["rss_fit_error"] < 0.2
    assert result["predicted_realtime_multiple"] > 1 and result["validated_realtime_multiple"] > 1


def test_a_limit_nothing_fits_is_one_line_and_exit_2(forty_seconds):
    done = subprocess.run([sys.executable, "-m", "bench", "tune", str(forty_seconds), "--memory-limit", "60M"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "nothing fits 60 MB" in done.stderr and "use --memory-limit" in done.stderr
