"""Where the harness finds the checkout and keeps its results: a bottom module, importing nothing from ``bench``."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # bench/measuring/paths.py -> the checkout
RESULTS = ROOT / "bench" / "results"
