"""Every ``python -m bench`` subcommand documents every option in its --help."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["run", "compare", "report", "flat-memory", "service-repro", "service-load", "tune", "sections", "hostile"]


def undocumented_options(help_text: str) -> list[str]:
    """Options listed in an argparse help whose entry has no description."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        match = re.match(r"^  (-\S.*?|[a-z]\S*)(?:\s{2,}(\S.*))?$", line)
        if not match or match.group(1).startswith(("-h", "--help")):
            continue
        described = match.group(2) or (i + 1 < len(lines) and re.match(r"^ {8,}\S", lines[i + 1]))
        if not described:
            missing.append(match.group(1))
    return missing


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help(command):
    done = subprocess.run([sys.executable, "-m", "bench", command, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert undocumented_options(done.stdout) == [], done.stdout


def test_the_checker_finds_an_option_without_help():
    text = "options:\n  -h, --help  show this help\n  --sizes SIZES\n  --quick     a few seconds\n"
    assert undocumented_options(text) == ["--sizes SIZES"]


def test_the_sections_benchmark_checks_its_loop_against_scipy():
    done = subprocess.run([sys.executable, "-m", "bench", "sections", "--repeat", "3", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert {(r["stage"].split(" (")[0], r["channels"]) for r in figures["loop"]} == {
        (stage, channels) for stage in ("chain cascade", "K-weighting") for channels in (1, 2, 6)}
    assert all(r["bit_for_bit"] and r["ours_ms"] > 0 and r["scipy_ms"] > 0 for r in figures["loop"])
    assert set(figures["import_seconds"]) == {"audionorm_lab", "scipy.signal"}
