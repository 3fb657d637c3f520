"""The regression report's history: one JSON line per run, and whether a figure moved past its noise.

The fixed bounds in ``bench/baseline.json`` catch a figure that leaves its range; they are wide, so
that a shared, noisy machine does not fail them, and a 30 % slowdown passes them unseen. The history
catches that: notebook 04 appends one line per run (:func:`entry`: commit, date, machine, what was
measured, each figure's median over the run's repeats and its spread), and :func:`compare` sets each
figure against the median of the last :data:`WINDOW` runs of the same measurement on a machine like
this one.

The noise band comes from repeats, not from a guess: a run measures every figure ``repeat``
times, and its spread (largest minus smallest) is what this machine's noise does to that figure
in one run. The band is :data:`BAND_FACTOR` times the larger of this run's spread and the median
spread of the runs compared with. A figure outside the band in its worse direction (up for a
figure with a maximum, down for one with a minimum) has regressed; in the other direction it has
improved. A deterministic figure (the difference from the service's output) has no spread: any
change in it shows.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from ..measuring.machine import fingerprint

#: Runs the reference median is taken over.
WINDOW = 5
#: Earlier runs needed before a figure is judged at all.
MIN_RUNS = 2
#: The noise band, in spreads of the repeats.
BAND_FACTOR = 2.0


def entry(figures: dict[str, float | None], spreads: dict[str, float], machine: dict, setup: dict | None = None
          ) -> dict:
    """One history line: ``commit``, ``date`` (UTC, ISO 8601), ``machine``, ``setup`` (what was measured: sizes,
    repeats), ``figures`` and their ``spreads``."""
    return {"commit": machine.get("commit"), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine, "setup": setup or {}, "figures": figures, "spreads": spreads}


def load(path: str | Path) -> list[dict]:
    """The history's lines, oldest first (none when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append(path: str | Path, line: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(line, default=float) + "\n")


def comparable(history: list[dict], machine: dict, setup: dict | None = None) -> list[dict]:
    """The last :data:`WINDOW` earlier runs that measured the same ``setup`` on a machine like ``machine``
    (:func:`~bench.measuring.machine.fingerprint`)."""
    mine = fingerprint(machine)
    return [line for line in history if fingerprint(line.get("machine") or {}) == mine
            and line.get("setup", {}) == (setup or {})][-WINDOW:]


def _moved(value: float, reference: float) -> float:
    if value == reference:  # also -inf == -inf: identical outputs stayed identical
        return 0.0
    return value - reference


def judge(figure: str, value: float | None, spread: float, earlier: list[dict], lower_is_better: bool) -> dict:
    """One figure against the earlier runs: ``status`` is ``"no history"``, ``"within noise"``, ``"regressed"`` or
    ``"improved"``; with ``reference`` (their median), ``band`` and ``moved`` (value - reference)."""
    values = [line["figures"].get(figure) for line in earlier if line["figures"].get(figure) is not None]
    row = {"figure": figure, "value": value, "spread": spread, "runs": len(values), "reference": None, "band": None,
           "moved": None, "status": "no history"}
    if value is None or len(values) < MIN_RUNS:
        return row
    spreads = [line.get("spreads", {}).get(figure, 0.0) for line in earlier]
    band = BAND_FACTOR * max(spread, statistics.median(spreads) if spreads else 0.0)
    reference = statistics.median(values)
    moved = _moved(value, reference)
    worse = moved > band if lower_is_better else moved < -band
    better = moved < -band if lower_is_better else moved > band
    if math.isnan(moved):
        worse, better = True, False
    status = "regressed" if worse else "improved" if better else "within noise"
    return {**row, "reference": reference, "band": band, "moved": moved, "status": status}


def compare(history: list[dict], figures: dict, spreads: dict, machine: dict, lower_is_better: dict[str, bool],
            setup: dict | None = None) -> list[dict]:
    """Each figure of ``lower_is_better`` judged against the comparable earlier runs (:func:`judge`)."""
    earlier = comparable(history, machine, setup)
    return [judge(name, figures.get(name), spreads.get(name, 0.0), earlier, lower) for name, lower in
            lower_is_better.items()]
