"""The report's plots: the difference spectrograms against the service, and the regression history.

Each draws on the matplotlib Axes or Figure it is given. One run's own plots are
:mod:`bench.measuring.run_plots`.
"""

from __future__ import annotations

import numpy as np

from ..measuring.fidelity import difference_spectrogram


def plot_difference_spectrograms(outputs: dict, differences_db: dict, fig) -> None:
    """One panel per output: the spectrogram of (output - the service's output), dB re. the service's loudest bin."""
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
