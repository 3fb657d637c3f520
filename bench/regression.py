"""The regression report's figures, and their check against committed thresholds (bench/baseline.json)."""

from __future__ import annotations

import numpy as np

MB = 1e6


def figures(rows: list[dict], import_floor_bytes: float) -> dict:
    """From a full-load + streaming matrix: the figures the baseline bounds.

    - ``streaming_rss_above_floor_mb``: the largest streaming peak RSS above the import floor, MB.
    - ``throughput_ratio_vs_full_load``: median over sizes of streaming's multiple of real
      time over full-load's (> 1: streaming is faster), among sizes where both finished.
    - ``loudness_error_lu``: the largest |output loudness - target| of the streaming runs, LU.
    - ``seam_jump_ratio``: the largest streaming seam jump ratio (1 or less: no click at boundaries).
    """
    streaming = [r for r in rows if r["strategy"] == "streaming" and r["status"] == "ok"]
    full = {r["size"]: r for r in rows if r["strategy"] == "full-load" and r["status"] == "ok"}
    if not streaming:
        raise ValueError("no streaming run finished: nothing to check")
    ratios = [r["realtime_multiple"] / full[r["size"]]["realtime_multiple"] for r in streaming if r["size"] in full]
    from audionorm_lab import NormalizeOptions

    target = NormalizeOptions().target_lufs
    seams = [r["seam_jump_ratio"] for r in streaming if r["seam_jump_ratio"] is not None]
    return {
        "streaming_rss_above_floor_mb": max(r["peak_rss_bytes"] for r in streaming) / MB - import_floor_bytes / MB,
        "throughput_ratio_vs_full_load": float(np.median(ratios)) if ratios else None,
        "loudness_error_lu": max(abs(r["loudness_out_lufs"] - target) for r in streaming),
        "seam_jump_ratio": max(seams) if seams else 0.0,
    }


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
