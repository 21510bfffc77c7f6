"""The figure check finds what a reader would trip over, and only that."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from virtsim.experiments.figures import FigureLayoutWarning, layout_problems, save_figure


def test_a_tidy_figure_has_no_problems() -> None:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["a", "b", "c"], [1, 2, 3], label="x")
    ax.set_title("title")
    ax.set_xlabel("stack")
    ax.legend()
    fig.tight_layout()
    assert layout_problems(fig) == []
    plt.close(fig)


def test_crowded_tick_labels_overlap() -> None:
    """Twelve long names under bars 0.4 inch apart cannot sit side by side."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([f"a-long-stack-name-{i}" for i in range(12)], range(12))
    problems = layout_problems(fig)
    assert any("overlaps" in p and "a-long-stack-name" in p for p in problems)
    plt.close(fig)


def test_text_beyond_the_edge_is_clipped() -> None:
    fig, _ax = plt.subplots(figsize=(4, 3))
    fig.text(0.9, 0.5, "a note that runs far past the right edge of the figure")
    assert any("clipped" in p and "a note that runs" in p for p in layout_problems(fig))
    plt.close(fig)


def test_saving_a_crowded_figure_warns_and_still_saves(tmp_path) -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, "same place")
    ax.text(0.5, 0.5, "same place too")
    with pytest.warns(FigureLayoutWarning, match="overlaps"):
        path = save_figure(fig, tmp_path / "crowded.png")
    assert path.stat().st_size > 0
