"""Plots of the disk experiment, from its saved table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from virtsim.experiments.figures import NOTE_FONT, SMALL_FONT, grid, legend, new_axes, save_figure

__all__ = ["plot_all"]

GB = 1e9


def _part(table: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """The rows of ``table`` from one ``experiment``."""
    return table[table["experiment"] == experiment]


def _save(fig: Figure, path: Path) -> Path:
    """Lay out and save ``fig`` as ``path``; returns ``path``."""
    fig.tight_layout()
    return save_figure(fig, path)


def plot_guide_example(table: pd.DataFrame, path: Path) -> Path:
    """Bars (GB) of what each VM sees against what the host stores, with linked and with full clones."""
    def bars_of(experiment: str) -> tuple[list[str], np.ndarray]:
        rows = _part(table, experiment)
        views = rows[rows["measure"] == "per_guest_view"]
        host = rows[rows["system"] == "host"].set_index("measure")["bytes"]
        labels = [*views["system"], "host: linked clones", "host: full clones"]
        values = [*views["bytes"], host["linked_clones_bytes_total"], host["full_clones_bytes_total"]]
        return labels, np.asarray(values) / GB

    labels, ideal = bars_of("guide-example")
    x = np.arange(len(labels))
    colors = ["#8fb3d9"] * (len(labels) - 2) + ["#2b6cb0", "#c05621"]
    fig, ax = new_axes((8, 4.2))
    real = bars_of("guide-example-qcow2")[1] if (table["experiment"] == "guide-example-qcow2").any() else None
    width = 0.4 if real is not None else 0.8
    shift = width / 2 if real is not None else 0.0
    bars = ax.bar(x - shift, ideal, width, color=colors, label="the guide's arithmetic")
    ax.bar_label(bars, fmt="%.0f", fontsize=SMALL_FONT)
    if real is not None:  # the same as qcow2 files: L2 tables, refcount blocks, whole clusters
        qcow2 = ax.bar(x + width / 2, real, width, color=colors, alpha=0.55, hatch="//", label="as qcow2 files")
        ax.bar_label(qcow2, fmt="%.2f", fontsize=NOTE_FONT)
        legend(ax, loc="upper left")
    ax.set_xticks(x, labels)
    ax.set_ylim(top=max(ideal.max(), real.max() if real is not None else 0) * 1.25)
    ax.set_ylabel("GB")
    ax.set_title("Base image + differencing disks: what each VM sees vs what the host stores")
    ax.tick_params(axis="x", rotation=20)
    return _save(fig, path)


def plot_guests(table: pd.DataFrame, path: Path) -> Path:
    """Per format and driver, bytes on the host (GB, log scale) for all guests: shared + private against full clones."""
    parts = pd.concat([_part(table, "image-chain"), _part(table, "layer-stack")])
    pivot = parts.pivot_table(index="system", columns="measure", values="bytes", sort=False)
    guests = int(parts["guests"].iloc[0])
    fig, ax = new_axes((10, 4.5))
    x = np.arange(len(pivot))
    ax.bar(x - 0.2, pivot["shared_bytes"] / GB, 0.4, label="shared (base image / image layers)", color="#2b6cb0")
    ax.bar(x - 0.2, pivot["private_bytes_total"] / GB, 0.4, bottom=pivot["shared_bytes"] / GB,
           label=f"private (differencing disks / writable layers) of all {guests} guests", color="#90cdf4")
    ax.bar(x + 0.2, pivot["full_clones_bytes_total"] / GB, 0.4, label=f"full clones of all {guests} guests",
           color="#c05621", alpha=0.8)
    ax.set_xticks(x, pivot.index, rotation=20)
    ax.set_yscale("log")
    tallest = float(np.nanmax([pivot["shared_bytes"] + pivot["private_bytes_total"], pivot["full_clones_bytes_total"]]))
    ax.set_ylim(bottom=0.01, top=max(0.1, tallest / GB * 40))  # headroom: the legend sits above the bars
    ax.set_ylabel("GB on the host, as du counts (log scale)")
    ax.set_title(f"{guests} guests from one image: linked clones vs full copies, per format and driver")
    legend(ax)
    grid(ax, "y", "both")
    return _save(fig, path)


def plot_growth(table: pd.DataFrame, path: Path) -> Path:
    """Size (MiB) of a fresh qcow2 overlay against the number of 4 KiB writes, per write pattern."""
    rows = _part(table, "growth").copy()
    rows["writes"] = rows["measure"].str.split("@").str[1].astype(int)
    fig, ax = new_axes((7, 4.5))
    for kind, group in rows.groupby("system", sort=False):
        ax.plot(group["writes"], group["bytes"] / 2**20, marker=".", label=kind)
    written = np.unique(rows["writes"])
    ax.plot(written, written * 4096 / 2**20, "k--", lw=1, label="bytes written")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("4 KiB writes into a fresh qcow2 overlay")
    ax.set_ylabel("overlay file size (MiB)")
    ax.set_title("Growth of a differencing disk under each write pattern")
    legend(ax)
    grid(ax, "both", "both")
    return _save(fig, path)


def plot_amplification(table: pd.DataFrame, path: Path) -> Path:
    """Write amplification (bytes allocated / bytes written) of one 4 KiB write, per system."""
    rows = _part(table, "amplification").pivot_table(index="system", columns="measure", values="bytes", sort=False)
    factor = rows["added_allocated_bytes"] / rows["written_bytes"]
    # Horizontal bars: the systems' names are long ("overlay2 (64 MiB file)") and would collide
    # as rotated labels under vertical bars.
    fig, ax = new_axes((8, 0.9 + 0.35 * len(factor)))
    bars = ax.barh(factor.index, factor.to_numpy(), color="#805ad5")
    ax.bar_label(bars, fmt="%.0fx", padding=2)
    ax.set_xscale("log")
    ax.set_xlim(right=factor.max() * 8)  # room for the largest bar's label
    ax.invert_yaxis()  # in the table's order, top to bottom
    ax.set_xlabel("bytes the host stores / bytes written")
    ax.set_title("Write amplification of one 4 KiB write into fresh space")
    return _save(fig, path)


def plot_all(table: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """The four disk plots into ``out_dir``; returns their paths by name."""
    return {
        "guide_example": plot_guide_example(table, out_dir / "guide_example.png"),
        "guests": plot_guests(table, out_dir / "guests_by_format.png"),
        "growth": plot_growth(table, out_dir / "growth.png"),
        "amplification": plot_amplification(table, out_dir / "amplification.png"),
    }
