"""Plots built from saved summaries (never from live simulation objects)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from virtsim.experiments.figures import TITLE_FONT, grid, legend, new_figure, save_figure, tick_text

__all__ = ["attribution_table", "plot_attribution", "plot_latency"]


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


Entries = dict[str, list[str]]
"""Guests by the ``[[guests]]`` entry they come from (``count = N`` guests are alike)."""


def _entries(summary: pd.DataFrame, entries: Entries | None) -> Entries:
    """The entries whose guests have rows in ``summary`` (each guest its own without ``entries``)."""
    guests = [g for g in dict.fromkeys(summary["guest"]) if g != "host"]
    if entries is None:
        return {g: [g] for g in guests}
    present = set(guests)
    return {name: [g for g in names if g in present] for name, names in entries.items()
            if any(g in present for g in names)}


def _ticks(variants: list[str], entry: str, stacks: dict[str, str] | None) -> list[str]:
    """The tick labels of one entry's panel: the compared stacks, or for a scenario run as
    written (one variant, labelled by all its guests' stacks) the entry's own stack (review 32
    F8: every panel showed every guest's stack)."""
    if stacks and len(variants) == 1 and entry in stacks:
        return [tick_text(stacks[entry])]
    return [tick_text(v) for v in variants]


def plot_latency(summary: pd.DataFrame, path: Path, entries: Entries | None = None,
                 stacks: dict[str, str] | None = None) -> Path:
    """Mean, p50 and p99 latency per variant, one panel per guest entry: a single guest's with
    its 95% confidence intervals, the guests of a ``count = N`` entry averaged, their bars
    spanning the lowest to the highest guest (not one panel per guest: 40 guests made a plot
    28,800 pixels wide). ``stacks``: each entry's own stack, for a scenario run as written."""
    groups = _entries(summary, entries)
    variants = list(dict.fromkeys(summary["stack"]))
    metrics = [("latency_mean_s", "mean"), ("latency_p50_s", "p50"), ("latency_p99_s", "p99")]
    fig, axes = new_figure((max(6, 1.3 * len(variants)) * len(groups), 4), 1, len(groups))
    width = 0.8 / len(metrics)
    for ax, (entry, guests) in zip(axes[0], groups.items(), strict=True):
        x = np.arange(len(variants))
        for i, (metric, label) in enumerate(metrics):
            rows = _pick(summary, metric, layer="all", station="all")
            rows = rows[rows["guest"].isin(guests)]
            if len(guests) == 1:
                rows = rows.set_index("stack").reindex(variants)
                mean, err = rows["mean"].to_numpy(), _error(rows)
            else:
                by = rows.groupby("stack", sort=False)["mean"]
                mean = by.mean().reindex(variants).to_numpy()
                err = np.vstack([mean - by.min().reindex(variants).to_numpy(),
                                 by.max().reindex(variants).to_numpy() - mean])
            ax.bar(x + (i - 1) * width, mean * 1e6, width, yerr=np.nan_to_num(err) * 1e6, capsize=3, label=label)
        ax.set_xticks(x, _ticks(variants, entry, stacks), rotation=30, ha="right")
        ax.set_ylabel("latency (µs)")
        title = entry if len(guests) == 1 else f"{entry} ({len(guests)} guests: mean, bars min..max)"
        ax.set_title(f"{title}: latency by stack", fontsize=TITLE_FONT)
        grid(ax, "y")
        legend(ax)
    fig.tight_layout()
    return save_figure(fig, path)


def attribution_table(rows: pd.DataFrame, guests: list[str], variants: list[str]) -> pd.DataFrame:
    """(stack, layer) seconds of one attribution metric's summary ``rows``: per guest of
    ``guests`` summed over the stations, then the guests' mean (guests of one entry are alike)."""
    mine = rows[rows["guest"].isin(guests) & (rows["layer"] != "all")]
    per_guest = mine.pivot_table(index=["stack", "guest"], columns="layer", values="mean", aggfunc="sum",
                                 sort=False).fillna(0.0)
    table = per_guest.groupby(level="stack", sort=False).mean()
    return table.reindex(variants).dropna(how="all").fillna(0.0)


def plot_attribution(summary: pd.DataFrame, path: Path, metric: str = "time_mean_s",
                     entries: Entries | None = None, stacks: dict[str, str] | None = None) -> Path:
    """Stacked bars: each variant's latency split by the layer that added it, one panel per guest
    entry, the guests of a ``count = N`` entry averaged (a bar is one guest's latency, never a sum
    over guests: review 10 found bars of three guests' latencies added up). ``stacks``: each
    entry's own stack, for a scenario run as written."""
    groups = _entries(summary, entries)
    variants = list(dict.fromkeys(summary["stack"]))
    rows = _pick(summary, metric, station="all")
    fig, axes = new_figure((max(6, 1.2 * len(variants)) * len(groups), 4), 1, len(groups))
    title = "mean latency" if metric == "time_mean_s" else "latency of the slowest 1%"
    for ax, (entry, guests) in zip(axes[0], groups.items(), strict=True):
        table = attribution_table(rows, guests, variants) * 1e6
        bottom = np.zeros(len(table))
        for layer in table.columns:
            ax.bar(_ticks(list(table.index), entry, stacks), table[layer], bottom=bottom, label=layer)
            bottom += table[layer].to_numpy()
        who = entry if len(guests) == 1 else f"{entry} (mean of {len(guests)} guests)"
        ax.set_title(f"Where the time goes: {title}, by layer\n{who}", fontsize=TITLE_FONT)
        ax.set_ylabel("time (µs)")
        ax.tick_params(axis="x", rotation=30)
        grid(ax, "y")
        legend(ax)
    fig.tight_layout()
    return save_figure(fig, path)
