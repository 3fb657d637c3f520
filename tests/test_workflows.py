"""The GitHub Actions workflows users copy: valid (actionlint), and the regression one keeps its history, uploads
reports/ and fails on a failed claim (its report step is run for real in test_notebook_papermill.py)."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def steps(workflow: str, job: str) -> list[dict]:
    return yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"][job]["steps"]


def report_step() -> dict:
    return next(s for s in steps("regression.yml", "regression") if s.get("id") == "report")


def test_every_workflow_passes_actionlint():
    assert {w.name for w in WORKFLOWS} >= {"regression.yml", "tests.yml", "wheels.yml"}
    actionlint = Path(sys.executable).with_name("actionlint")
    done = subprocess.run([str(actionlint), *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_regression_workflow_keeps_the_history_and_uploads_the_reports_whatever_happens():
    uses = {s.get("uses", "").split("@")[0]: s for s in steps("regression.yml", "regression")}
    history = "bench/results/regression-history.jsonl"
    assert uses["actions/cache/restore"]["with"]["path"] == history
    saved = uses["actions/cache/save"]
    assert saved["with"]["path"] == history and saved["if"] == "always()"
    assert saved["with"]["key"] == uses["actions/cache/restore"]["with"]["key"]
    assert uses["actions/upload-artifact"]["with"]["path"] == "reports/" and uses["actions/upload-artifact"]["if"] == "always()"
    assert "bench report --only 04_regression_report" in report_step()["run"]


def test_the_tests_workflow_runs_what_ci_runs():
    assert any("bash .ci/run" in s.get("run", "") for s in steps("tests.yml", "tests"))
