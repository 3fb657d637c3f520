"""python -m bench compare OLD NEW: ratios between two result sets, regressions marked.

OLD and NEW are result folders (or their results.json). Runs are matched by strategy,
size, chunk, overlap and join. A run stands out when its peak RSS grows by more than
10 %, its wall time by more than 25 %, its SNR against streaming falls by more than
1 dB, or it was ok before and is not now. Exit code 1 when anything stands out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

KEY = ("strategy", "size", "chunk_seconds", "overlap_seconds", "concat")


def load(path: Path) -> dict:
    path = Path(path)
    return json.loads((path / "results.json" if path.is_dir() else path).read_text())


def _by_key(rows):
    grouped = {}
    for row in rows:
        grouped.setdefault(tuple(row[k] for k in KEY), []).append(row)
    return grouped


def _median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def compare(old: dict, new: dict) -> list[dict]:
    """One entry per run present in both: ratios new/old and whether it regressed."""
    old_rows, new_rows = _by_key(old["rows"]), _by_key(new["rows"])
    entries = []
    for key in sorted(set(old_rows) & set(new_rows), key=str):
        a, b = old_rows[key], new_rows[key]
        ok_before = all(r["status"] == "ok" for r in a)
        ok_now = all(r["status"] == "ok" for r in b)
        rss = _median(r["peak_rss_bytes"] for r in b) / max(1, _median(r["peak_rss_bytes"] for r in a))
        wall = _median(r["wall_seconds"] for r in b) / max(1e-9, _median(r["wall_seconds"] for r in a))
        snr_a, snr_b = _median(r["snr_vs_streaming_db"] for r in a), _median(r["snr_vs_streaming_db"] for r in b)
        snr_delta = snr_b - snr_a if snr_a is not None and snr_b is not None else None
        reasons = []
        if ok_before and not ok_now:
            reasons.append(f"status {b[0]['status']}")
        if ok_before and ok_now and rss > 1.10:
            reasons.append("peak RSS")
        if ok_before and ok_now and wall > 1.25:
            reasons.append("wall time")
        if snr_delta is not None and snr_delta < -1.0:
            reasons.append("fidelity")
        entries.append({"key": dict(zip(KEY, key)), "peak_rss_ratio": rss, "wall_ratio": wall,
                        "snr_delta_db": snr_delta, "status_before": a[0]["status"], "status_now": b[0]["status"],
                        "regressions": reasons})
    return entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="a results folder of python -m bench run (the reference)")
    parser.add_argument("new", type=Path, help="a results folder to compare with it")
    args = parser.parse_args(argv)
    entries = compare(load(args.old), load(args.new))
    print(f"{'run':<44} {'RSS x':>7} {'wall x':>7} {'SNR dB':>7}  status")
    for e in entries:
        k = e["key"]
        name = " ".join(str(k[f]) for f in KEY if k[f] is not None)
        snr = f"{e['snr_delta_db']:+.1f}" if e["snr_delta_db"] is not None else "-"
        flag = f"  <-- regression: {', '.join(e['regressions'])}" if e["regressions"] else ""
        print(f"{name:<44} {e['peak_rss_ratio']:>7.2f} {e['wall_ratio']:>7.2f} {snr:>7}  {e['status_now']}{flag}")
    regressions = sum(bool(e["regressions"]) for e in entries)
    print(f"{len(entries)} runs compared, {regressions} regressions", file=sys.stderr)
    return 1 if regressions else 0
