"""Notebook runs that need no shared report folder: notebook 02 under plain papermill, and a failed claim through
the regression workflow's own step. Apart from test_notebooks.py, so that the suite's two workers share the
notebooks' time (one file runs on one worker)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.measuring.machine import describe
from bench.reporting import history
from test_notebooks import QUICK_02, ROOT, forty_seconds  # noqa: F401  (forty_seconds: a fixture used here)
from test_workflows import report_step


def test_02_never_hangs_under_plain_papermill(tmp_path, forty_seconds):
    """Its default ``interactive`` under a plain papermill run: no widget, two runs in a row, each in time (a
    widget under papermill hung about 1 run in 5; without one there is nothing to hang on), the second reusing the
    first's measurements."""
    import papermill

    source = ROOT / "notebooks" / "02_tune_chunk_and_overlap.ipynb"
    params = {"input_path": str(forty_seconds), "out_dir": str(tmp_path / "out"), **QUICK_02}
    for run in range(2):
        values_path = tmp_path / f"values-{run}.json"
        papermill.execute_notebook(str(source), str(tmp_path / f"run-{run}.ipynb"),
                                   parameters={**params, "values_path": str(values_path)}, cwd=str(ROOT),
                                   kernel_name="python3", progress_bar=False, execution_timeout=300)
        values = json.loads(values_path.read_text())
        assert values["interactive"] is False
        assert (values["reused"] is None) == (run == 0), "later runs reuse the first run's measurements"


def _earlier_run(figures: dict, machine: dict, setup: dict) -> dict:
    return history.entry(figures, {name: 0.5 for name in figures}, machine, setup)


def test_a_failed_claim_fails_the_report_and_is_marked(tmp_path):
    """A strict bound, and a history whose runs all had 1 MB above the floor: both claims fail, the report exits
    non-zero naming them, the notebook's HTML and the index mark them, and the HTML is still written."""
    strict = tmp_path / "baseline.json"
    strict.write_text(json.dumps({"streaming_rss_above_floor_mb": {"max": 1}}))
    seeded = tmp_path / "history.jsonl"
    for _ in range(3):
        history.append(seeded, _earlier_run({"streaming_rss_above_floor_mb": 1.0}, describe(),
                                            {"sizes": "10s", "repeat": 1}))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"04_regression_report": {"baseline_path": str(strict), "sizes": "10s",
                                                           "repeat": 1, "history_path": str(seeded)}}))
    out = tmp_path / "out"
    # the regression workflow's own step (.github/workflows/regression.yml), run as GitHub Actions runs it
    step = report_step()
    env = {**os.environ, "REPORT_PARAMS": str(params), "REPORTS": str(out), "PATH": f"{Path(sys.executable).parent}:"
           + os.environ["PATH"]}
    script = step["run"].replace(".venv/bin/python", sys.executable)
    result = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stderr[-2000:]
    failed_lines = [line for line in result.stderr.splitlines() if line.startswith("claim failed:")]
    assert len(failed_lines) == 2, result.stderr[-2000:]
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error title=claim failed::")]
    assert len(annotations) == 2 and all(a.split("::", 2)[2] in result.stderr for a in annotations)
    assert any("within 1 MB of the import floor" in line for line in failed_lines)
    assert any("noise band" in line and "streaming_rss_above_floor_mb" in line for line in failed_lines)
    html = (out / "04_regression_report.html").read_text()
    for key in ("streaming_rss_above_floor_mb", "no_figure_regressed"):
        assert f'class="claim claim-failed" data-claim="{key}"' in html
    assert "2 of 2 claims failed" in (out / "index.html").read_text()
    assert "FAILED" in result.stdout and "evidence: 0 of 2 claims held" in result.stdout
