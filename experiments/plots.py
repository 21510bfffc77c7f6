"""Plots built from saved summaries (never from live simulation objects)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from virtsim.experiments.figures import save_figure

__all__ = ["plot_attribution", "plot_latency"]


def _pick(summary: pd.DataFrame, metric: str, **where: str) -> pd.DataFrame:
    """The rows of ``metric`` whose columns equal the values in ``where``."""
    rows = summary[summary["metric"] == metric]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows


def _error(rows: pd.DataFrame) -> np.ndarray:
    """Error bars (below, above the mean) from the confidence interval columns; 0 where there is none."""
    low = (rows["mean"] - rows["ci_low"]).fillna(0).to_numpy()
    high = (rows["ci_high"] - rows["mean"]).fillna(0).to_numpy()
    return np.vstack([low, high])


def plot_latency(summary: pd.DataFrame, path: Path) -> Path:
    """Mean, p50 and p99 latency per variant and guest, with 95% confidence intervals."""
    guests = [g for g in summary["guest"].unique() if g != "host"]
    variants = list(dict.fromkeys(summary["variant"]))
    metrics = [("latency_mean_s", "mean"), ("latency_p50_s", "p50"), ("latency_p99_s", "p99")]
    fig, axes = plt.subplots(1, len(guests), figsize=(max(6, 1.3 * len(variants)) * len(guests), 4), squeeze=False)
    width = 0.8 / len(metrics)
    for ax, guest in zip(axes[0], guests, strict=True):
        x = np.arange(len(variants))
        for i, (metric, label) in enumerate(metrics):
            rows = _pick(summary, metric, guest=guest, layer="all", station="all")
            rows = rows.set_index("variant").reindex(variants)
            ax.bar(x + (i - 1) * width, rows["mean"] * 1e6, width, yerr=_error(rows) * 1e6, capsize=3, label=label)
        ax.set_xticks(x, variants, rotation=30, ha="right")
        ax.set_ylabel("latency (µs)")
        ax.set_title(f"{guest}: latency by stack")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_attribution(summary: pd.DataFrame, path: Path, metric: str = "time_mean_s") -> Path:
    """Stacked bars: each variant's latency split by the layer that added it."""
    rows = _pick(summary, metric, station="all")
    rows = rows[rows["layer"] != "all"]
    table = rows.pivot_table(index="variant", columns="layer", values="mean", aggfunc="sum", sort=False)
    table = table.reindex(list(dict.fromkeys(summary["variant"]))).dropna(how="all").fillna(0.0) * 1e6
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(table)), 4))
    bottom = np.zeros(len(table))
    for layer in table.columns:
        ax.bar(table.index, table[layer], bottom=bottom, label=layer)
        bottom += table[layer].to_numpy()
    title = "mean latency" if metric == "time_mean_s" else "latency of the slowest 1%"
    ax.set_title(f"Where the time goes: {title}, by layer")
    ax.set_ylabel("time (µs)")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
