"""Plots of the tuner (notebook 02): its measured runs and model, and one setting's prediction."""

from __future__ import annotations

import numpy as np

from ..measuring.run_plots import MB
from ..tuning.tune import Model


def plot_tune_model(result: dict, axes) -> None:
    """The tuner's measured runs and fitted model: peak RSS and speed against chunk length (per workers),
    and fidelity against overlap with the target."""
    model = Model.from_dict(result["model"])
    runs = [r for r in result["runs"] if r["overlap_seconds"] == 0.5]
    chunks = np.geomspace(1, 120, 60)
    for workers in sorted({r["workers"] for r in result["runs"]}):
        mine = sorted((r for r in runs if r["workers"] == workers), key=lambda r: r["chunk_seconds"])
        line = axes[0].plot(chunks, [model.peak_rss_bytes(c, 0.5, workers) / MB for c in chunks], "-",
                            label=f"model, {workers} workers")[0]
        axes[0].plot([r["chunk_seconds"] for r in mine], [r["peak_rss_bytes"] / MB for r in mine], "o",
                     color=line.get_color(), label=f"measured, {workers} workers")
        clip = result["clip_seconds"]
        axes[1].plot(chunks, [model.realtime_multiple(c, 0.5, workers, clip) for c in chunks], "-",
                     color=line.get_color(), label=f"model, {workers} workers")
        axes[1].plot([r["chunk_seconds"] for r in mine], [clip / r["wall_seconds"] for r in mine], "o",
                     color=line.get_color())
    axes[0].axhline(result["budget_per_job_bytes"] / MB, color="black", linestyle=":", label="budget per job")
    axes[0].set(xscale="log", xlabel="chunk length (s)", ylabel="peak RSS (MB)", title="memory (overlap 0.5 s)")
    axes[1].set(xscale="log", xlabel="chunk length (s)", ylabel="x real time",
                title=f"speed on the {result['clip_seconds']:.0f} s clip")
    fidelity = result["fidelity"]
    axes[2].plot([max(r["overlap_seconds"], 1e-3) for r in fidelity], [r["snr_vs_whole_db"] for r in fidelity], "o-")
    axes[2].axhline(result["target_fidelity_db"], color="tab:red", linestyle="--", label="target")
    axes[2].set(xscale="log", xlabel="overlap (s; 0 drawn at 1 ms)", ylabel="SNR vs whole file (dB)",
                title="fidelity (200 dB = identical)")
    for ax in axes:
        ax.legend(fontsize=8)


def plot_prediction(prediction: dict, ax) -> None:
    """One setting's predicted peak RSS against the per-job budget, as a bar."""
    budget = prediction["budget_per_job_bytes"] / MB
    peak = prediction["predicted_peak_rss_bytes"] / MB
    ax.barh([0], [peak], color="tab:green" if prediction["fits"] else "tab:red")
    ax.axvline(budget, color="black", linestyle=":")
    ax.set(yticks=[], xlim=(0, max(budget, peak) * 1.15), xlabel="MB",
           title=f"predicted peak {peak:.0f} MB of {budget:.0f} MB; {prediction['predicted_realtime_multiple']:.0f}x "
                 f"real time; {prediction['fidelity_db']:.0f} dB")
