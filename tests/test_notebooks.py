"""The notebooks, executed by papermill on small parameters; assertions on the figures they record."""

import json
from pathlib import Path

import pytest

from bench.report import execute
from data.fetch_samples import make_sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return tmp_path_factory.mktemp("reports")


def test_01_reproduce_oom(reports):
    values = execute("01_reproduce_oom", reports, {"sizes": "10s,2m", "memory_limit": "300M",
                                                   "service_duration": "2m", "service_memory_limit": "400M",
                                                   "fidelity_seconds": 15.0})
    assert values["full_load_killed"] == ["2m"]
    assert values["full_load_status"]["2m"] == "killed: signal 9" and values["full_load_status"]["10s"] == "ok"
    assert values["streaming_ok"] and max(values["streaming_peak_rss_mb"].values()) < 300
    assert (reports / "01_reproduce_oom.html").stat().st_size > 10_000
    service = values["service"]
    assert service["as it was"]["status"] == "FAILURE" and service["as it was"]["worker_lost"]
    assert any("signal 9 (SIGKILL)" in line for line in service["as it was"]["log_lines"])
    assert service["streaming"]["status"] == "SUCCESS"
    redelivered = service["full-load, redelivered"]
    assert redelivered["status"] == "SUCCESS" and redelivered["delivery"]["delivery"] == 2
    assert redelivered["delivery"]["mode"] == "streaming" and "lost its worker" in redelivered["delivery"][
        "mode_changed_because"]
    # the fix changes nothing but the memory: streaming gives the service's samples, the proposal does not
    wav = values["fidelity_wav_db"]
    assert wav["streaming (service grid)"] <= -90 and wav["streaming (file grid)"] > -60
    assert wav["ffmpeg-segments"] > wav["streaming (file grid)"] - 20
    decoders = values["decoders"]
    assert decoders["start_offset_frames"] == 0 and len(set(decoders["frames"].values())) == 1
    assert decoders["float_decoders_db"] < decoders["pydub_int16_db"] < -60
    mp3 = values["fidelity_mp3_db"]
    assert mp3["streaming (service grid)"] < mp3["ffmpeg-segments"]
    assert mp3["streaming (service grid) of the service's decode"] <= -90, "what remains is the decode"


@pytest.fixture(scope="module")
def forty_seconds(tmp_path_factory):
    return make_sample(40.0, "mp3", out=tmp_path_factory.mktemp("samples"), speech="builtin")


QUICK_02 = {"minutes": 0.5, "boundary_seconds": 10.0, "memory_limit": "400M"}


def test_02_tune_chunk_and_overlap(reports, forty_seconds):
    values = execute("02_tune_chunk_and_overlap", reports, {"input_path": str(forty_seconds), **QUICK_02})
    assert values["interactive"] is False and values["reused"] is None
    assert values["memory_limit_bytes"] == 400 * 10**6
    assert values["predicted_peak_rss_bytes"] <= 0.9 * values["memory_limit_bytes"]
    assert abs(values["validated_rss_error"]) < 0.25 and values["validated_peak_rss_bytes"] < 400 * 10**6
    snr = {r["overlap_seconds"]: r["snr_vs_whole_db"] for r in values["fidelity"]}
    assert snr[0.5] >= 100 and snr[0.0] < snr[0.5]
    assert values["recommended"]["overlap_seconds"] in snr and snr[values["recommended"]["overlap_seconds"]] >= 60


def test_02_never_hangs_under_plain_papermill(tmp_path, forty_seconds):
    """Its default ``interactive`` under a plain papermill run: no widget, ten runs in a row, each in time."""
    import papermill

    source = ROOT / "notebooks" / "02_tune_chunk_and_overlap.ipynb"
    params = {"input_path": str(forty_seconds), "out_dir": str(tmp_path / "out"), **QUICK_02}
    for run in range(10):
        values_path = tmp_path / f"values-{run}.json"
        papermill.execute_notebook(str(source), str(tmp_path / f"run-{run}.ipynb"),
                                   parameters={**params, "values_path": str(values_path)}, cwd=str(ROOT),
                                   kernel_name="python3", progress_bar=False, execution_timeout=300)
        values = json.loads(values_path.read_text())
        assert values["interactive"] is False
        assert (values["reused"] is None) == (run == 0), "later runs reuse the first run's measurements"


def test_03_memory_profiles(reports):
    values = execute("03_memory_profiles", reports, {"size": "20s"})
    assert set(values["memray_peak_mb"]) == {"full-load", "ffmpeg-segments", "streaming"}
    assert all(v > 1 for v in values["memray_peak_mb"].values())
    for html in values["flamegraphs"].values():
        assert open(html).read(200).lower().lstrip().startswith("<!doctype html")


def test_04_regression_report_passes_on_the_committed_baseline(reports):
    values = execute("04_regression_report", reports, {})
    assert values["failed"] == []
    assert values["figures"]["loudness_error_lu"] < 0.5
    assert values["figures"]["streaming_vs_full_load_db"] <= -90


def test_04_regression_report_fails_on_a_regression(reports, tmp_path):
    strict = tmp_path / "baseline.json"
    strict.write_text(json.dumps({"streaming_rss_above_floor_mb": {"max": 1}}))
    with pytest.raises(Exception, match="regression: streaming_rss_above_floor_mb"):
        execute("04_regression_report", tmp_path / "out", {"baseline_path": str(strict), "sizes": "20s"})
    html = (tmp_path / "out" / "04_regression_report.html").read_text()
    assert "above maximum" in html


def test_05_service_capacity(reports):
    values = execute("05_service_capacity", reports,
                     {"jobs": 4, "durations": "1m", "fault_every": "1s", "capacity_jobs": 2,
                      "capacity_durations": "30s", "capacity_memory_limit": "1500M"})
    load = values["load"]
    assert load["lost"] == 0 and load["failed"] == 0 and load["partial_outputs"] == 0
    assert load["ran_concurrently"] == 0 and load["leftover_temporaries"] == []
    assert load["succeeded"] == 4 and load["failed_as_expected"] == load["bad_inputs"] >= 1
    assert sum(load["faults_injected"].values()) >= 2
    capacity = values["capacity"]
    assert {(r["mode"], r["concurrency"]) for r in capacity["rows"]} == {
        (m, c) for m in ("auto", "full-load") for c in (1, 2, 4)}
    assert all(r["finished_all"] for r in capacity["rows"]), "the fallback finishes every job"
    assert capacity["by_mode"]["auto"]["largest_concurrency_finishing_all"] == 4
    sizing = {(r["container_limit_bytes"], r["longest_file_seconds"]): r for r in values["sizing"]}
    big = sizing[(8 * 10**9, 163 * 60.0)]
    assert big["full_load_processes"] == 0 < big["streaming_processes"], "163 minutes never fit in memory in 8 GB"
    assert (reports / "05_service_capacity.html").stat().st_size > 10_000


def test_executed_notebooks_carry_their_plots(reports):
    import nbformat

    expected = {"01_reproduce_oom": 1, "02_tune_chunk_and_overlap": 4, "03_memory_profiles": 2,
                "05_service_capacity": 2}
    for name, minimum in expected.items():
        notebook = nbformat.read(reports / f"{name}.ipynb", as_version=4)
        images = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {})]
        assert len(images) >= minimum, name
