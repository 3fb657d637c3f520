"""The regression report's figures, and their check against committed thresholds (bench/baseline.json)."""

from __future__ import annotations

import numpy as np

from ..measuring.run_plots import at_default_chunking

MB = 1e6


def figures(rows: list[dict], import_floor_bytes: float) -> dict:
    """From a full-load + streaming matrix: the figures the baseline bounds.

    - ``streaming_rss_above_floor_mb``: the largest streaming peak RSS above the import floor, MB.
    - ``throughput_ratio_vs_full_load``: median over sizes of streaming's multiple of real
      time over full-load's (> 1: streaming is faster), among sizes where both finished.
    - ``loudness_error_lu``: the largest |output loudness - target| of the streaming runs, LU.
    - ``seam_jump_ratio``: the largest streaming seam jump ratio (1 or less: no click at boundaries).
    - ``streaming_wall_over_sox``: median over sizes of streaming's wall time over SoX's
      two-pass chain's (< 1: streaming is faster), when the run had sox.
    """
    streaming = [r for r in rows if r["strategy"] == "streaming" and r["status"] == "ok"]
    full = {r["size"]: r for r in rows if r["strategy"] == "full-load" and r["status"] == "ok"}
    if not streaming:
        raise ValueError("no streaming run finished: nothing to check")
    ratios = [r["realtime_multiple"] / full[r["size"]]["realtime_multiple"] for r in streaming if r["size"] in full]
    from audionorm_lab import NormalizeOptions

    target = NormalizeOptions().target_lufs
    seams = [r["seam_jump_ratio"] for r in streaming if r["seam_jump_ratio"] is not None]
    sox = {r["size"]: r for r in rows if r["strategy"] == "sox" and r["status"] == "ok"}
    over_sox = [r["wall_seconds"] / sox[r["size"]]["wall_seconds"] for r in streaming if r["size"] in sox]
    return {
        "streaming_wall_over_sox": float(np.median(over_sox)) if over_sox else None,
        "streaming_rss_above_floor_mb": max(r["peak_rss_bytes"] for r in streaming) / MB - import_floor_bytes / MB,
        "throughput_ratio_vs_full_load": float(np.median(ratios)) if ratios else None,
        "loudness_error_lu": max(abs(r["loudness_out_lufs"] - target) for r in streaming),
        "seam_jump_ratio": max(seams) if seams else 0.0,
    }


#: The sentence each baseline figure's claim states in notebook 04 (``{bound}`` is the threshold), and its unit.
CLAIMS = {
    "streaming_rss_above_floor_mb": ("Streaming's peak RSS stays within {bound} MB of the import floor", "MB"),
    "throughput_ratio_vs_full_load": ("Streaming's throughput is at least {bound}x full-load's", "x"),
    "loudness_error_lu": ("Streaming's output is within {bound} LU of the target loudness", "LU"),
    "seam_jump_ratio": ("Streaming's chunk boundaries leave no click (seam jump ratio at most {bound})", ""),
    "streaming_vs_full_load_db": ("Streaming's output differs from the service's by at most {bound} dB", "dB"),
    "streaming_wall_over_sox": ("Streaming's wall time is at most {bound}x SoX's two-pass chain's", "x"),
}
#: The figures that are ratios of wall times: their claims are speed bounds (:class:`bench.reporting.claims.Claim`'s ``speed``).
SPEED_FIGURES = frozenset({"throughput_ratio_vs_full_load", "streaming_wall_over_sox"})


def figures_over_repeats(rows: list[dict], import_floor_bytes: float) -> tuple[dict, dict]:
    """:func:`figures` for each repeat of a run: each figure's median over the repeats, and its spread
    (largest minus smallest: what this machine's noise does to it in one run)."""
    per_repeat = [figures([r for r in rows if r["repeat"] == repeat], import_floor_bytes)
                  for repeat in sorted({r["repeat"] for r in rows})]
    medians, spreads = {}, {}
    for name in per_repeat[0]:
        values = [f[name] for f in per_repeat if f[name] is not None]
        medians[name] = float(np.median(values)) if values else None
        spreads[name] = float(max(values) - min(values)) if values else 0.0
    return medians, spreads


def lower_is_better(baseline: dict) -> dict[str, bool]:
    """For each figure the baseline bounds: whether lower is better (it has a maximum)."""
    return {name: "max" in bound for name, bound in baseline.items() if not name.startswith("_")}


def check(measured: dict, baseline: dict) -> list[dict]:
    """One verdict per baseline entry: ``{"max": x}`` or ``{"min": x}`` bounds; ``moved_by`` past the bound."""
    verdicts = []
    for figure, bound in baseline.items():
        if figure.startswith("_"):
            continue
        value = measured.get(figure)
        status, moved, threshold = "ok", 0.0, None
        if value is None:
            status, threshold = "missing", bound
        elif "max" in bound:
            threshold = f"<= {bound['max']}"
            if value > bound["max"]:
                status, moved = "above maximum", value - bound["max"]
        elif "min" in bound:
            threshold = f">= {bound['min']}"
            if value < bound["min"]:
                status, moved = "below minimum", value - bound["min"]
        verdicts.append({"figure": figure, "value": value, "threshold": threshold, "status": status,
                         "moved_by": moved})
    return verdicts


def ratios(rows: list[dict], reference: str = "streaming") -> list[dict]:
    """Each strategy's wall time and peak RSS over ``reference``'s on the same size, from one run
    (default chunking, first repeat); rows for a table, in the order of the run."""
    default = [r for r in at_default_chunking(rows) if r["status"] == "ok" and r["repeat"] == 0]
    references = {r["size"]: r for r in default if r["strategy"] == reference}
    table = []
    for r in default:
        ref = references.get(r["size"])
        if ref is None:
            continue
        table.append({"size": r["size"], "strategy": r["strategy"], "wall_seconds": r["wall_seconds"],
                      "peak_rss_bytes": r["peak_rss_bytes"],
                      f"wall_over_{reference}": r["wall_seconds"] / ref["wall_seconds"],
                      f"peak_rss_over_{reference}": r["peak_rss_bytes"] / ref["peak_rss_bytes"]})
    return table


