"""Plots of the overhead experiment, from its saved tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from virtsim.experiments.figures import SMALL_FONT, grid, legend, log_ticks_125, new_axes, new_figure, save_figure

__all__ = ["plot_cdfs", "plot_ratios"]


def plot_ratios(overhead: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: each workload's primary metric on each stack, as a ratio to bare metal."""
    from virtsim.experiments.overhead import primary_rows

    primary = primary_rows(overhead)
    workloads = list(dict.fromkeys(primary["workload"]))
    stacks = [s for s in dict.fromkeys(primary["stack"]) if s != "bare-metal"]
    fig, ax = new_axes((max(9, 1.4 * len(workloads)), 4.8))
    width = 0.8 / max(1, len(stacks))
    x = np.arange(len(workloads))
    for i, stack in enumerate(stacks):
        part = primary[primary["stack"] == stack].set_index("workload").reindex(workloads)
        # Higher is better for every bar: latency-like metrics are inverted.
        ratio = np.where(part["lower_is_better"].fillna(False).astype(bool), 1 / part["ratio"], part["ratio"])
        ax.bar(x + (i - (len(stacks) - 1) / 2) * width, ratio, width, label=stack)
    ax.axhline(1.0, color="k", lw=0.8)
    labels = [f"{w}\n({primary[primary['workload'] == w]['metric'].iloc[0]})" for w in workloads]
    ax.set_xticks(x, labels, fontsize=SMALL_FONT)
    ax.set_ylabel("performance relative to bare metal (1 = same)")
    ax.set_title("Overhead by stack (higher is better; latency inverted)")
    ax.set_ylim(0, 1.22)
    legend(ax, ncol=len(stacks), loc="upper center")
    grid(ax, "y")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_cdfs(summary: pd.DataFrame, path: Path) -> Path:
    """Latency CDFs of each workload, one line per stack."""
    q = summary[(summary["metric"] == "latency_quantile_s") & (summary["guest"] == "g")].copy()
    q["level"] = q["station"].astype(float) / 100
    workloads = list(dict.fromkeys(q["workload"]))
    cols = 4
    rows = int(np.ceil(len(workloads) / cols))
    fig, axes = new_figure((4 * cols, 3.2 * rows), rows, cols)
    for ax, name in zip(axes.flat, workloads, strict=False):
        part = q[q["workload"] == name]
        for stack, g in part.groupby("stack", sort=False):
            g = g.sort_values("level")
            ax.plot(g["mean"] * 1e6, g["level"], label=stack)
        lo, hi = float(part["mean"].min()) * 1e6, float(part["mean"].max()) * 1e6
        if hi > 20 * lo:  # log only where it spreads the curves
            ax.set_xscale("log")
            log_ticks_125(ax.xaxis)
        else:
            # Plain numbers, never "1e-7+1.1e5": a workload whose latency hardly varies (a
            # constant-time batch) gets a window of +-5% around it instead of an offset axis.
            ax.ticklabel_format(axis="x", style="plain", useOffset=False)
            if hi - lo < 0.01 * hi:
                ax.set_xlim(lo * 0.95, hi * 1.05)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("latency (µs)", fontsize=SMALL_FONT)
        grid(ax)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    legend(axes.flat[0], fontsize=6)
    fig.suptitle("Latency CDFs by stack")
    fig.tight_layout()
    return save_figure(fig, path)
