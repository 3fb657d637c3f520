"""Claims: the facts a notebook's narrative states, checked where the narrative states them.

A notebook calls :func:`claim` at the sentence that states a fact: the sentence, the figure
the run measured, and the threshold the figure must meet (or, for a fact that is not a
number, whether it held and what was seen). The claim is drawn in place, a green
``✔`` or a red ``✘`` with its figure, and appended to the notebook's values file
(``values["claims"]``), where ``python -m bench report`` finds it: a claim that failed
fails the report, and ``reports/index.html`` lists every claim.

    from bench.reporting.claims import claim
    claim(values_path, "streaming_flat", "Streaming's peak RSS is flat in the file's length",
          growth_mb, at_most=30, unit="MB")
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

HELD, FAILED = "✔", "✘"


@dataclass(frozen=True)
class Claim:
    """One checked fact.

    ``key`` is stable across runs (it names the claim in values files and tests); ``text`` is the
    sentence; ``figure`` what was measured, as shown; ``threshold`` what it had to meet, in words;
    ``value`` the measured number (None for a fact that is not one). ``speed`` marks a bound on how fast
    something ran (wall time, a ratio of wall times, a latency): it holds on one machine at one load, not on
    any, so the report, a benchmark, checks it and the test suite only sees that it was measured.
    """

    key: str
    text: str
    held: bool
    figure: str
    threshold: str
    value: float | None = None
    notebook: str | None = None
    speed: bool = False

    @property
    def mark(self) -> str:
        return HELD if self.held else FAILED

    def line(self) -> str:
        """One line of text: the mark, the notebook, the sentence, the figure and the threshold."""
        where = f"{self.notebook}: " if self.notebook else ""
        return f"{self.mark} {where}{self.text} ({self.figure}; {self.threshold})"

    def to_html(self) -> str:
        """The claim as the notebooks and the index page draw it (``class="claim claim-held"`` or
        ``claim-failed``, ``data-claim`` = its key, ``data-speed`` on a speed bound)."""
        state = "held" if self.held else "failed"
        colour = "#1a7f37" if self.held else "#cf222e"
        background = "#eef8f0" if self.held else "#fdecec"
        speed = ' data-speed="true"' if self.speed else ""
        return (f'<div class="claim claim-{state}" data-claim="{html.escape(self.key)}"{speed} style="border-left: '
                f'4px solid {colour}; background: {background}; padding: 4px 10px; margin: 4px 0">'
                f'<span class="claim-mark" style="color: {colour}; font-weight: bold">{self.mark}</span> '
                f'<span class="claim-text">{html.escape(self.text)}</span> '
                f'<span class="claim-figure" style="color: {colour}">{html.escape(self.figure)}</span> '
                f'<span class="claim-threshold" style="color: #57606a">({html.escape(self.threshold)})</span></div>')


def format_figure(value, unit: str = "") -> str:
    """A figure as a reader wants it: 4 significant digits, its unit, ``-inf dB`` for identical signals."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isinf(value):
            text = "-inf" if value < 0 else "inf"
        elif isinstance(value, int) or float(value).is_integer() and abs(value) < 1e6:
            text = f"{int(value)}"
        else:
            text = f"{value:.4g}"
        return f"{text} {unit}".strip()
    return f"{value} {unit}".strip()


def evaluate(key: str, text: str, value, *, at_most: float | None = None, at_least: float | None = None,
             held: bool | None = None, unit: str = "", figure: str | None = None, threshold: str | None = None,
             notebook: str | None = None, speed: bool = False) -> Claim:
    """A :class:`Claim` for ``value`` against ``at_most`` / ``at_least`` (both inclusive), or against ``held``
    (a fact that is not a number: ``value`` is then what was seen). ``figure`` and ``threshold`` replace the
    generated wording; ``speed`` marks a bound on how fast something ran (see :class:`Claim`). A number that is
    NaN or missing never holds."""
    if (at_most is not None or at_least is not None) == (held is not None):
        raise ValueError(f"claim {key}: give at_most and/or at_least, or held")
    number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if held is None:
        valid = number is not None and not math.isnan(number)
        held = valid and (at_most is None or number <= at_most) and (at_least is None or number >= at_least)
        bounds = [f"at least {format_figure(at_least, unit)}" if at_least is not None else None,
                  f"at most {format_figure(at_most, unit)}" if at_most is not None else None]
        threshold = threshold or " and ".join(b for b in bounds if b)
    return Claim(key, text, bool(held), figure or format_figure(value, unit), threshold or "must hold",
                 None if number is None or math.isnan(number) else number, notebook, speed)


def notebook_of(values_path: str | Path | None) -> str | None:
    """The notebook a values file belongs to: ``reports/01_reproduce_oom.values.json`` -> ``01_reproduce_oom``."""
    if not values_path:
        return None
    name = Path(values_path).name
    return name[: -len(".values.json")] if name.endswith(".values.json") else Path(values_path).stem


def record(values_path: str | Path | None, checked: Claim) -> None:
    """Put ``checked`` in the values file's ``claims`` (replacing a claim of the same key)."""
    if not values_path:
        return
    path = Path(values_path)
    current = json.loads(path.read_text()) if path.exists() else {}
    claims = [c for c in current.get("claims", []) if c["key"] != checked.key]
    current["claims"] = claims + [asdict(checked)]
    path.write_text(json.dumps(current, indent=2, default=float))


def claim(values_path: str | Path | None, key: str, text: str, value, **check) -> None:
    """Check a claim (see :func:`evaluate` for ``check``), draw it here, and record it in ``values_path``.

    Returns nothing, so a cell that ends with a claim prints nothing but the claim.
    """
    from IPython.display import HTML, display

    checked = evaluate(key, text, value, notebook=notebook_of(values_path), **check)
    record(values_path, checked)
    display(HTML(checked.to_html()))


def load(values: dict) -> list[Claim]:
    """The claims recorded in a notebook's values."""
    return [Claim(**c) for c in values.get("claims", [])]


def failed(claims: list[Claim]) -> list[Claim]:
    return [c for c in claims if not c.held]
