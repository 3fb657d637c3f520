"""PNG plots of a result set: what the notebooks show, written next to results.json.

Each ``plot_*`` draws on a matplotlib Axes it is given, so the notebooks show the same
plots inline; :func:`make_plots` draws on bare ``Figure`` objects (no pyplot, no
backend switch), so it works headless and leaves a notebook's inline backend alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .regression import at_default_chunking

MB = 1e6
COLOURS = {"full-load": "tab:red", "ffmpeg-segments": "tab:orange", "streaming": "tab:green",
           "ffmpeg-filters": "tab:blue", "sox": "tab:purple"}


def plot_rss_vs_size(rows, limit, ax):
    drawn = [r for r in at_default_chunking(rows) if r["status"] == "ok" or r["status"].startswith("killed")]
    for strategy in sorted({r["strategy"] for r in rows}):
        mine = sorted((r for r in drawn if r["strategy"] == strategy), key=lambda r: r["audio_seconds"])
        ok = [r for r in mine if r["status"] == "ok"]
        killed = [r for r in mine if r["status"].startswith("killed")]
        colour = COLOURS.get(strategy)
        ax.plot([r["audio_seconds"] / 60 for r in ok], [r["peak_rss_bytes"] / MB for r in ok], "o-",
                color=colour, label=strategy)
        if killed:
            ax.plot([r["audio_seconds"] / 60 for r in killed], [r["rss_at_kill_bytes"] / MB for r in killed], "X",
                    color=colour, markersize=12, label=f"{strategy}: killed (signal 9)")
    ax.axhline(limit / MB, color="black", linestyle="--", linewidth=1, label=f"memory limit {limit / MB:.0f} MB")
    if drawn:  # log axes need points
        ax.set(xscale="log", yscale="log")
    ax.set(xlabel="audio (minutes)", ylabel="peak RSS of the process tree (MB)", title="Peak memory against file length")
    ax.legend(fontsize=8)


def plot_rss_vs_chunk(rows, ax):
    for strategy in ("streaming", "ffmpeg-segments"):
        mine = [r for r in rows if r["strategy"] == strategy and r["status"] == "ok" and r["chunk_seconds"]
                and r["overlap_seconds"] in (None, 0.5)]
        for size in sorted({r["size"] for r in mine}):
            points = sorted((r["chunk_seconds"], r["peak_rss_bytes"] / MB) for r in mine if r["size"] == size)
            if len(points) > 1:
                ax.plot(*zip(*points), "o-", color=COLOURS[strategy], label=f"{strategy}, {size}")
    ax.set(xscale="log", xlabel="chunk length (s)", ylabel="peak RSS (MB)", title="Peak memory against chunk length")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def plot_throughput(rows, ax):
    ok = [r for r in at_default_chunking(rows) if r["status"] == "ok"]
    sizes = sorted({r["size"] for r in ok}, key=lambda s: min(r["audio_seconds"] for r in ok if r["size"] == s))
    strategies = sorted({r["strategy"] for r in ok})
    width = 0.8 / max(1, len(strategies))
    for i, strategy in enumerate(strategies):
        values = [next((r["realtime_multiple"] for r in ok if r["size"] == s and r["strategy"] == strategy), 0)
                  for s in sizes]
        ax.bar([x + i * width for x in range(len(sizes))], values, width, color=COLOURS.get(strategy), label=strategy)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(sizes))], sizes)
    ax.set(ylabel="multiple of real time", title="Throughput (higher is faster)")
    if strategies:
        ax.legend(fontsize=8)


def plot_full_load_limit(rows, limit, ax):
    mine = sorted((r for r in rows if r["strategy"] == "full-load"), key=lambda r: r["audio_seconds"])
    for r in mine:
        killed = r["status"].startswith("killed")
        value = (r["rss_at_kill_bytes"] if killed else r["peak_rss_bytes"]) / MB
        ax.bar(r["size"], value, color="tab:red" if killed else "tab:gray")
        ax.text(r["size"], value, "killed: signal 9" if killed else f"{value:.0f} MB", ha="center", va="bottom",
                fontsize=8)
    ax.axhline(limit / MB, color="black", linestyle="--", label=f"limit {limit / MB:.0f} MB")
    ax.set(ylabel="peak RSS (MB)", title="Where full-load dies at the limit")
    ax.legend(fontsize=8)


def make_plots(rows: list[dict], out: Path, limit: int) -> list[Path]:
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("rss_vs_size", lambda ax: plot_rss_vs_size(rows, limit, ax)),
                       ("rss_vs_chunk", lambda ax: plot_rss_vs_chunk(rows, ax)),
                       ("throughput", lambda ax: plot_throughput(rows, ax)),
                       ("full_load_limit", lambda ax: plot_full_load_limit(rows, limit, ax))):
        fig = Figure(figsize=(7, 4.5))
        draw(fig.subplots())
        fig.tight_layout()
        path = plots / f"{name}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def plot_difference_spectrograms(outputs: dict, differences_db: dict, fig) -> None:
    """One panel per output: the spectrogram of (output - the service's output), dB re. the service's loudest bin."""
    from .fidelity import difference_spectrogram

    labels = [label for label in outputs if label != "service"]
    axes = fig.subplots(1, len(labels), sharey=True)
    mesh = None
    for ax, label in zip(np.atleast_1d(axes), labels):
        freqs, times, level = difference_spectrogram(outputs[label], outputs["service"])
        mesh = ax.pcolormesh(times, freqs / 1000, level, vmin=-160, vmax=-20, shading="auto", cmap="magma")
        ax.set_title(f"{label}\n{differences_db[label]:.1f} dB from the service", fontsize=10)
        ax.set_xlabel("time (s)")
    np.atleast_1d(axes)[0].set_ylabel("frequency (kHz)")
    fig.colorbar(mesh, ax=list(np.atleast_1d(axes)), label="difference, dB re. the service's loudest bin")


HISTORY_COLOURS = {"regressed": "tab:red", "improved": "tab:green", "within noise": "black", "no history": "tab:gray"}


def plot_regression_history(history: list[dict], judgements: list[dict], axes) -> None:
    """One panel per figure: its value over the runs of ``history`` (the last is this run), the median it is
    judged against and the noise band around it (shaded), this run coloured by its verdict."""
    for ax, judged in zip(np.atleast_1d(axes), judgements):
        name = judged["figure"]
        values = [line["figures"].get(name) for line in history]
        points = [(i, v) for i, v in enumerate(values) if v is not None and np.isfinite(v)]
        if points:
            ax.plot(*zip(*points), "o-", color="tab:blue", markersize=3, linewidth=1)
        if judged["reference"] is not None and np.isfinite(judged["reference"]):
            ax.axhspan(judged["reference"] - judged["band"], judged["reference"] + judged["band"], color="tab:blue",
                       alpha=0.12)
            ax.axhline(judged["reference"], color="tab:blue", linestyle=":", linewidth=1)
        if judged["value"] is not None and np.isfinite(judged["value"]):
            ax.plot([len(history) - 1], [judged["value"]], "D", color=HISTORY_COLOURS[judged["status"]], markersize=8)
        ax.set_title(f"{name}\n{judged['status']}", fontsize=9)
        ax.set_xlabel("run", fontsize=8)
        ax.tick_params(labelsize=7)
