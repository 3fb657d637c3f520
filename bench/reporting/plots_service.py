"""Plots of the service under load (notebook 05): the fault timeline and the capacity sweep."""

from __future__ import annotations

from ..measuring.run_plots import COLOURS, MB
from ..cluster.service_load import run_end_time

#: The service's modes: auto streams long jobs and keeps short ones in memory.
MODE_COLOURS = {"full-load": "tab:red", "streaming": "tab:green", "auto": "tab:olive"}
FAULT_COLOURS = {"kill-child": "tab:red", "restart-broker": "tab:blue", "warm-shutdown": "tab:orange",
                 "cold-shutdown": "black"}


def plot_fault_timeline(results: dict, ax) -> None:
    """Jobs against time (submitted to finished, each run a thicker bar) with the faults as vertical lines."""
    origin = min(j["submitted"] for j in results["jobs"])
    for row, job in enumerate(sorted(results["jobs"], key=lambda j: j["job"])):
        end = (job["finished"] or origin + results["wall_seconds"]) - origin
        ax.hlines(row, job["submitted"] - origin, end, colors="0.8", linewidth=1)
        starts = [r for r in job["runs"] if r["event"] == "start"]
        for run in starts:
            run_end = run_end_time(run, job["runs"])
            finished = run_end is not None
            stop = run_end if finished else min([r["time"] for r in starts if r["time"] > run["time"]] or [end + origin])
            colour = COLOURS["streaming"] if run["mode"] == "streaming" else COLOURS["full-load"]
            ax.hlines(row, run["time"] - origin, stop - origin, colors=colour, linewidth=5 if finished else 2,
                      alpha=1.0 if finished else 0.5)
        marker = {"SUCCESS": "o", "FAILURE": "x"}.get(job["state"], "D")  # D: lost (no final state)
        ax.plot(end, row, marker, color="black", markersize=4)
    seen = set()
    for fault in results["faults"]:
        ax.axvline(fault["time"] - origin, color=FAULT_COLOURS.get(fault["kind"], "0.5"), linestyle="--",
                   linewidth=1, label=None if fault["kind"] in seen else fault["kind"])
        seen.add(fault["kind"])
    ax.set(xlabel="seconds since submission", ylabel="job",
           title="jobs over time (thick: the run that finished; thin: a run that lost its worker)")
    if seen:
        ax.legend(loc="lower right", fontsize=8)


def plot_capacity(summary: dict, axes) -> None:
    """Jobs per minute and the worker tree's peak RSS against concurrency, for each mode, with the limit."""
    limit = summary["memory_limit_bytes"]
    for mode in summary["by_mode"]:
        rows = sorted((r for r in summary["rows"] if r["mode"] == mode), key=lambda r: r["concurrency"])
        colour = MODE_COLOURS.get(mode)
        xs = [r["concurrency"] for r in rows]
        axes[0].plot(xs, [r["jobs_per_minute"] or 0 for r in rows], "o-", color=colour, label=mode)
        axes[1].plot(xs, [r["max_worker_tree_rss_bytes"] / MB for r in rows], "o-", color=colour, label=mode)
        for r in rows:
            if r["kills"]:
                axes[1].annotate(f"{r['kills']} killed", (r["concurrency"], r["max_worker_tree_rss_bytes"] / MB),
                                 textcoords="offset points", xytext=(4, 4), fontsize=8, color=colour)
    axes[1].axhline(limit / MB, color="black", linestyle=":", label="worker memory limit")
    axes[0].set(xlabel="pool processes (concurrency)", ylabel="jobs per minute", title="throughput")
    axes[1].set(xlabel="pool processes (concurrency)", ylabel="MB", title="worker tree peak RSS")
    for ax in axes:
        ax.set_xticks(sorted({r["concurrency"] for r in summary["rows"]}))
        ax.legend(fontsize=8)
