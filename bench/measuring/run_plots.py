"""PNG plots of one run's result set (``python -m bench run``): what the notebooks show, written next to
results.json.

Each ``plot_*`` draws on a matplotlib Axes it is given, so the notebooks show the same
plots inline; :func:`make_plots` draws on bare ``Figure`` objects (no pyplot, no
backend switch), so it works headless and leaves a notebook's inline backend alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

MB = 1e6
COLOURS = {"full-load": "tab:red", "ffmpeg-segments": "tab:orange", "streaming": "tab:green",
           "ffmpeg-filters": "tab:blue", "sox": "tab:purple"}


def at_default_chunking(rows: list[dict]) -> list[dict]:
    """The rows run at :class:`~audionorm_lab.NormalizeOptions`' default chunk and overlap (or with
    none: the strategies that do not chunk)."""
    from audionorm_lab import NormalizeOptions

    default = NormalizeOptions()
    return [r for r in rows if r["chunk_seconds"] in (None, default.chunk_seconds)
            and r["overlap_seconds"] in (None, default.overlap_seconds)]


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
