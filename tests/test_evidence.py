"""The evidence's own parts: claims, the derived kill limit, the regression history's judgement, sizing by mode."""

import json
import math

import pytest

from bench.reporting import history
from bench.reporting.claims import evaluate, record
from bench.measuring.kill_limit import NoRoomForLimit, between, full_load_predicted_bytes
from bench.tuning.sizing import pool_processes_that_fit, recommendation, sizing_table

MB = 10**6


@pytest.mark.parametrize("value, bounds, held", [
    (5.0, {"at_most": 5.0}, True), (5.01, {"at_most": 5.0}, False), (2.0, {"at_least": 3.0}, False),
    (4.0, {"at_least": 3.0, "at_most": 5.0}, True), (float("nan"), {"at_most": 5.0}, False),
    (float("-inf"), {"at_most": -90.0}, True), (None, {"at_most": 1.0}, False)])
def test_a_numeric_claim_holds_only_within_its_bounds(value, bounds, held):
    checked = evaluate("k", "a sentence", value, unit="dB", **bounds)
    assert checked.held is held and checked.mark == ("✔" if held else "✘")
    assert ("at most" in checked.threshold) == ("at_most" in bounds)


def test_a_claim_says_its_figure_and_is_drawn_with_its_mark():
    checked = evaluate("peak", "Streaming is small", 123.456, at_most=100, unit="MB", notebook="01_x")
    assert checked.figure == "123.5 MB" and checked.threshold == "at most 100 MB" and checked.value == 123.456
    assert 'class="claim claim-failed" data-claim="peak"' in checked.to_html() and "✘" in checked.to_html()
    assert checked.line() == "✘ 01_x: Streaming is small (123.5 MB; at most 100 MB)"
    assert evaluate("f", "t", float("-inf"), at_most=-90, unit="dB").figure == "-inf dB"


def test_a_fact_that_is_not_a_number_takes_held_and_what_was_seen():
    checked = evaluate("kill", "Killed", "killed: signal 9", held=True, threshold="must be killed")
    assert checked.held and checked.figure == "killed: signal 9" and checked.value is None
    with pytest.raises(ValueError):
        evaluate("k", "t", 1.0, at_most=2.0, held=True)
    with pytest.raises(ValueError):
        evaluate("k", "t", 1.0)


def test_claims_are_recorded_once_per_key(tmp_path):
    path = tmp_path / "01_reproduce_oom.values.json"
    path.write_text(json.dumps({"other": 1}))
    record(path, evaluate("a", "first", 1.0, at_most=2.0))
    record(path, evaluate("a", "first, again", 3.0, at_most=2.0))
    record(path, evaluate("b", "second", 1.0, at_least=0.0))
    values = json.loads(path.read_text())
    assert values["other"] == 1 and [(c["key"], c["held"]) for c in values["claims"]] == [("a", False), ("b", True)]


def test_a_speed_bound_is_marked_as_one_wherever_it_goes(tmp_path):
    """A claim on how fast something ran says so in the values file, back in a Claim, and in its HTML."""
    from bench.reporting.claims import load

    path = tmp_path / "03_memory_profiles.values.json"
    record(path, evaluate("fast", "Streaming is faster", 4.2, at_least=1.5, unit="x", speed=True))
    record(path, evaluate("small", "Streaming is small", 3.0, at_least=3.0, unit="x"))
    fast, small = load(json.loads(path.read_text()))
    assert fast.speed and not small.speed and fast.held and small.held
    assert 'data-claim="fast" data-speed="true"' in fast.to_html() and "data-speed" not in small.to_html()


#: Full-load's peak RSS measured on the 10-minute stereo 44.1 kHz mp3 (``python -m bench run --sizes 10m
#: --strategies full-load``, the brief's figure): the model the kill limit is chosen from must predict it.
MEASURED_FULL_LOAD_10M_BYTES = 1275 * MB


def test_the_kill_limit_sits_between_the_peaks_with_margin_on_both_sides():
    # the prediction: within a tenth of what was measured at 10 minutes, and growing with the file
    assert full_load_predicted_bytes(600.0) == pytest.approx(MEASURED_FULL_LOAD_10M_BYTES, rel=0.1)
    full = full_load_predicted_bytes(300.0)  # 5 minutes of stereo 44.1 kHz
    assert full_load_predicted_bytes(150.0) < full < full_load_predicted_bytes(600.0)
    assert full == full_load_predicted_bytes(300.0, 22050, 4)  # decoded bytes decide: frames x channels
    chosen = between(128 * MB, full)
    # each side has its margin, and the same one: the limit is as far above streaming as below full-load
    assert 128 * MB * 1.5 <= chosen.limit_bytes <= full / 1.5
    assert chosen.streaming_headroom == pytest.approx(chosen.full_load_excess, rel=1e-6)
    assert chosen.streaming_headroom >= 1.5 and "geometric mean" in chosen.explain()


def test_no_kill_limit_when_the_peaks_are_too_close_and_the_error_says_how_long_a_file():
    with pytest.raises(NoRoomForLimit, match=r"at least \d+ MB \(about [\d.]+ minutes"):
        between(400 * MB, full_load_predicted_bytes(10.0))


def _line(value: float, spread: float = 1.0, machine: dict | None = None) -> dict:
    return history.entry({"peak_mb": value}, {"peak_mb": spread}, machine or {"cores": 2, "memory_bytes": 8e9,
                                                                              "cpu": "X"})


MACHINE = {"cores": 2, "memory_bytes": 8e9, "cpu": "X"}


def test_history_needs_earlier_runs_before_it_judges():
    judged = history.compare([_line(100.0)], {"peak_mb": 150.0}, {"peak_mb": 1.0}, MACHINE, {"peak_mb": True})
    assert judged[0]["status"] == "no history" and judged[0]["runs"] == 1


@pytest.mark.parametrize("value, status", [(101.5, "within noise"), (130.0, "regressed"), (70.0, "improved")])
def test_history_judges_a_move_against_the_median_and_a_band_from_the_repeats(value, status):
    earlier = [_line(v) for v in (99.0, 100.0, 101.0, 250.0)]  # one outlier: the median ignores it
    judged = history.compare(earlier, {"peak_mb": value}, {"peak_mb": 0.5}, MACHINE, {"peak_mb": True})[0]
    assert judged["reference"] == 100.5 and judged["band"] == 2.0 and judged["status"] == status


def test_history_compares_only_runs_on_a_machine_like_this_one_and_knows_the_better_direction():
    other = {"cores": 64, "memory_bytes": 5e11, "cpu": "Y"}
    earlier = [_line(10.0, machine=other)] * 3 + [_line(100.0), _line(100.0)]
    judged = history.compare(earlier, {"peak_mb": 130.0}, {"peak_mb": 1.0}, MACHINE, {"peak_mb": False})[0]
    assert judged["runs"] == 2 and judged["status"] == "improved"  # higher is better for this figure


def test_history_sees_any_change_in_a_deterministic_figure():
    earlier = [history.entry({"db": -math.inf}, {"db": 0.0}, MACHINE)] * 2
    same = history.compare(earlier, {"db": -math.inf}, {"db": 0.0}, MACHINE, {"db": True})[0]
    worse = history.compare(earlier, {"db": -110.0}, {"db": 0.0}, MACHINE, {"db": True})[0]
    assert same["status"] == "within noise" and worse["status"] == "regressed"


def _capacity(streaming_jpm: float, auto_jpm: float) -> dict:
    def row(mode, concurrency, peak, jpm):
        return {"mode": mode, "concurrency": concurrency, "max_child_rss_bytes": peak, "jobs_per_minute": jpm,
                "finished_all": True, "kills": 0, "max_worker_main_rss_bytes": 80 * MB}
    return {"rows": [row("streaming", c, 130 * MB, streaming_jpm) for c in (1, 2)]
            + [row("auto", c, 700 * MB, auto_jpm) for c in (1, 2)]}


def test_sizing_takes_streaming_from_the_kernel_and_the_rest_from_rss():
    rows = sizing_table({2 * 10**9: 29}, [163 * 60.0], {"streaming": 130 * MB, "auto": 700 * MB}, 80 * MB)
    assert rows[0]["streaming_processes"] == 29  # as the kernel measured it
    assert rows[0]["streaming_processes_by_rss"] == 14 and rows[0]["auto_processes"] == 2  # (2000 - 80) // 130, // 700
    assert rows[0]["full_load_processes"] == 0
    assert pool_processes_that_fit(10**9, 80 * MB, None) is None


def test_the_recommendation_says_only_what_the_figures_support():
    sizing = sizing_table({2 * 10**9: 29}, [600.0], {"streaming": 130 * MB, "auto": 700 * MB}, 80 * MB)
    assert "run every job with streaming" in recommendation(_capacity(60, 20), sizing, float("-inf"))
    slower = recommendation(_capacity(10, 20), sizing, float("-inf"))
    assert "for its memory" in slower and "at least as fast" in slower and "that it gives the same samples" not in slower
    differs = recommendation(_capacity(60, 20), sizing, -60.0)
    assert "for its memory" in differs and "gives the same samples" in differs and "-60.0 dB" in differs


def test_runs_at_once_overlap_and_each_failure_waits_for_the_others():
    """bench.reporting.notebook.at_once: notebook 05 runs its load runs and the pool-capacity search with it."""
    import threading
    import time

    from bench.reporting.notebook import at_once

    both_started = threading.Barrier(2, timeout=30)  # each run waits for the other: they can only end if they overlap
    ended = []

    def run(name):
        both_started.wait()
        ended.append(name)
        return name

    assert at_once(b=lambda: run("b"), a=lambda: run("a")) == {"b": "b", "a": "a"}

    def fails():
        raise ValueError("the first failure")

    def slow():
        time.sleep(0.2)
        ended.append("slow")

    with pytest.raises(ValueError, match="the first failure"):
        at_once(fails=fails, slow=slow)
    assert ended[-1] == "slow"  # the failure was raised only after the other run had ended
