"""The curves of a sweep: each metric against the swept numeric parameter, one line per other setting.

A sweep over ``connections`` and ``stack`` draws throughput and p99 latency against connections,
one line per stack (and per value of any further swept parameter), each point the mean over
replications with its 95% interval. Built from the saved ``sweep.parquet`` table only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from virtsim.experiments.figures import TITLE_FONT, grid, legend, new_figure, save_figure
from virtsim.sim.records import METRIC_UNITS
from virtsim.sim.stats import t_interval

__all__ = ["axis_label", "plot_sweep", "series_label", "sweep_curves"]

_BASE_COLUMNS = ("point", "stack", "replication", "guest", "metric", "layer", "station", "value", "unit")
# every metric the simulator itself writes (the rest are a workload's own, its primary first);
# review 10 B1: a list of its own here lacked the pooled p99 interval, which then became "primary"
_STANDARD = {*METRIC_UNITS, "utilization"}


def series_label(value: object) -> str:
    """A swept value as a legend label: stacks as ``docker-nat`` or ``kvm{vcpus=1}``."""
    if isinstance(value, str) and value.startswith("["):
        try:
            entries = json.loads(value)
        except ValueError:
            return value
        if not isinstance(entries, list) or not all(isinstance(e, str | dict) for e in entries):
            return value  # a swept list that is not a stack
        from virtsim.experiments.scenario import stack_label

        return stack_label(entries)
    return str(value)


def apart_columns(main: pd.DataFrame) -> list[str]:
    """The columns among ``stack`` and ``guest`` whose values are series of their own, never
    averaged into one line: those with several values within a point (compared stacks, separate
    guests). A stack that changes only from point to point (a swept stack, each point labelled by
    its guests' stacks) is the swept parameter's doing, not a series (review 32 F7)."""
    within = main.groupby("point")[["stack", "guest"]].nunique().max() if "point" in main else main[
        ["stack", "guest"]].nunique()
    return [c for c in ("stack", "guest") if within.get(c, 1) > 1]


MAX_OWN_METRICS = 3
"""The most workload metrics a sweep plot draws, a panel each (a sweep of three workloads at most
shows each one's own figure)."""


def sweep_curves(table: pd.DataFrame) -> tuple[str, list[str], pd.DataFrame]:
    """The x parameter (numeric, most values), the series (the other parameters, and the compared
    stack and the guest where there are several), and per point and series the mean and 95%
    interval of the workloads' own metrics (each guest's workload its own: STREAM's bandwidth,
    Linpack's GFLOPS; at most ``MAX_OWN_METRICS``, else throughput) and the p99 latency (columns
    metric, mean, low, high)."""
    params = [c for c in table.columns if c not in _BASE_COLUMNS]
    numeric = [p for p in params if pd.api.types.is_numeric_dtype(table[p]) and table[p].nunique() > 1]
    if not numeric:
        raise ValueError("the sweep has no numeric parameter with more than one value to draw a curve against")
    x = max(numeric, key=lambda p: table[p].nunique())
    main = table[(table["layer"] == "all") & (table["station"] == "all") & (table["guest"] != "host")]
    series = [p for p in params if p != x] + apart_columns(main)
    derived = [m for m in dict.fromkeys(main["metric"]) if m not in _STANDARD]
    primary = derived[:MAX_OWN_METRICS] or ["throughput_rps"]
    rows = []
    for keys, group in main[main["metric"].isin([*primary, "latency_p99_s"])].groupby(
            [x, *series, "metric"], sort=True, dropna=False):
        values = group.groupby("replication")["value"].mean().to_numpy()
        mean, low, high = t_interval(values, 0.95) if len(values) > 1 else (values[0], values[0], values[0])
        rows.append({**dict(zip([x, *series, "metric"], keys, strict=True)), "mean": mean, "low": low, "high": high,
                     "unit": group["unit"].iloc[0]})
    return x, series, pd.DataFrame(rows)


def axis_label(parameter: str, units: dict[str, str] | None = None) -> str:
    """A swept parameter as an axis label: its last name part and its unit (``rate (1/s)``)."""
    unit = (units or {}).get(parameter)
    name = parameter.rsplit(".", 1)[-1]
    return f"{name} ({unit})" if unit else name


def plot_sweep(table: pd.DataFrame, path: Path, units: dict[str, str] | None = None) -> Path:
    """The workloads' own metrics and p99 latency against the swept parameter, a panel each and a
    line per series;
    ``units``: the unit of each parameter written with one (see ``sweep.parameter_units``)."""
    x, series, curves = sweep_curves(table)
    metrics = list(dict.fromkeys(curves["metric"]))
    metrics.sort(key=lambda m: m == "latency_p99_s")
    fig, axes = new_figure((6.2 * len(metrics), 4.4), 1, len(metrics))
    for ax, metric in zip(axes[0], metrics, strict=True):
        part = curves[curves["metric"] == metric]
        scale, unit = (1e3, "ms") if metric == "latency_p99_s" else (1.0, str(part["unit"].iloc[0]))
        groups = part.groupby(series, sort=False, dropna=False) if series else [((), part)]
        for key, line in groups:
            key = key if isinstance(key, tuple) else (key,)
            line = line.sort_values(x)
            label = ", ".join(series_label(k) for k in key) or metric
            y = line["mean"].to_numpy() * scale
            err = np.vstack([y - line["low"].to_numpy() * scale, line["high"].to_numpy() * scale - y])
            ax.errorbar(line[x], y, yerr=err, marker="o", ms=3.5, capsize=2, lw=1.4, label=label)
        ax.set_xlabel(axis_label(x, units))
        ax.set_ylabel(f"p99 latency ({unit})" if metric == "latency_p99_s" else f"{metric} ({unit})")
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        grid(ax)
        ax.set_ylim(bottom=0)
        legend(ax, loc="best")
    fig.suptitle(f"Sweep over {x.rsplit('.', 1)[-1]}: means over replications with 95% intervals", fontsize=TITLE_FONT)
    fig.tight_layout()
    return save_figure(fig, path)
