"""The one place figures are made and saved: the project's plotting style (:func:`new_figure`,
:func:`grid`, :func:`legend`, :data:`DPI` and the font sizes), and saving with a check that
people can read them: no text clipped by the figure's edge, no two pieces of text drawn over
each other.

Every figure the project writes goes through :func:`save_figure`. It lays the figure out, asks
matplotlib's renderer where each visible piece of text landed (titles, axis labels, tick labels,
legend entries, annotations, figure notes) and warns with :class:`FigureLayoutWarning` naming
the texts that collide or stick out. The figure is saved either way (a crowded plot is better
than none); the test suite turns the warning into a failure.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

__all__ = ["DPI", "NOTE_FONT", "SMALL_FONT", "TITLE_FONT", "FigureLayoutWarning", "grid", "layout_problems", "legend",
           "log_ticks_125", "new_axes", "new_figure", "save_figure"]

DPI = 120  # every PNG's resolution (dots per inch)
TITLE_FONT = 10  # an axes' title (points)
SMALL_FONT = 8  # legends, bar labels, crowded tick labels
NOTE_FONT = 7  # notes and annotations inside a plot
GRID_ALPHA = 0.3  # grid lines stay behind the data

_SLACK_PX = 1.0  # boxes that only touch (anti-aliasing, rounding) are not a collision


class FigureLayoutWarning(UserWarning):
    """A saved figure has clipped or overlapping text."""


def _texts(fig: Figure) -> list[Text]:
    """Every visible, non-empty text of the figure (tick labels only where their tick is shown)."""
    out: list[Text] = list(fig.texts)
    # matplotlib keeps the suptitle and an axes' side titles only in private attributes
    out += [t for t in (getattr(fig, "_suptitle", None),) if isinstance(t, Text)]
    for ax in fig.axes:
        out += [t for t in (getattr(ax, "_left_title", None), getattr(ax, "_right_title", None)) if isinstance(t, Text)]
        out += [ax.title, ax.xaxis.label, ax.yaxis.label]
        out += [ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text()]
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                if lo <= tick.get_loc() <= hi:
                    out += [tick.label1, tick.label2]
        out += list(ax.texts)
        legend = ax.get_legend()
        if legend is not None:
            out += list(legend.get_texts())
            if legend.get_title().get_text():
                out.append(legend.get_title())
    unique = list({id(t): t for t in out}.values())  # the suptitle is also among fig.texts
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def _name(text: Text) -> str:
    return repr(text.get_text()[:40])


def layout_problems(fig: Figure) -> list[str]:
    """What a reader would trip over: texts that leave the figure, and pairs that overlap.

    Draws the figure once (so the layout is final) and compares the texts' boxes in pixels."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    canvas = Bbox.from_bounds(0, 0, fig.bbox.width, fig.bbox.height).expanded(1.0, 1.0)
    boxes: list[tuple[Text, Bbox]] = []
    problems = []
    for text in _texts(fig):
        box = text.get_window_extent(renderer)
        if box.width <= 0 or box.height <= 0:
            continue
        if not (canvas.x0 - _SLACK_PX <= box.x0 and box.x1 <= canvas.x1 + _SLACK_PX
                and canvas.y0 - _SLACK_PX <= box.y0 and box.y1 <= canvas.y1 + _SLACK_PX):
            problems.append(f"{_name(text)} is clipped by the figure's edge")
        boxes.append((text, box.padded(-_SLACK_PX)))
    for (a, box_a), (b, box_b) in combinations(boxes, 2):
        if box_a.overlaps(box_b):
            problems.append(f"{_name(a)} overlaps {_name(b)}")
    return problems


TICK_PART_CHARS = 40
"""The longest stack label a tick shows on one line; longer ones end in an ellipsis."""


def tick_text(label: str) -> str:
    """A stack label as a tick shows it: a scenario's several stacks (``kvm + docker``) one to a
    line, each cut to :data:`TICK_PART_CHARS` (review 32 F8: a six-stack label ran off the figure)."""
    parts = [p if len(p) <= TICK_PART_CHARS else p[:TICK_PART_CHARS - 1] + "…" for p in label.split(" + ")]
    return "\n+ ".join(parts)


def new_figure(size: tuple[float, float], rows: int = 1, cols: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure of ``size`` (width, height in inches) with a ``rows`` x ``cols`` array of axes
    (always 2-D: ``axes[0, 0]`` for one), drawn off screen (the Agg backend)."""
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    return fig, axes


def new_axes(size: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure of ``size`` (width, height in inches) with one axes."""
    fig, axes = new_figure(size)
    return fig, axes[0, 0]


def grid(ax: Axes, axis: Literal["both", "x", "y"] = "both",
         which: Literal["major", "minor", "both"] = "major") -> None:
    """Light grid lines on ``axis`` of ``ax``, the same in every figure."""
    ax.grid(axis=axis, alpha=GRID_ALPHA, which=which)


def log_ticks_125(axis: Axis) -> None:
    """Major ticks of a log ``axis`` at 1, 2 and 5 per decade, labelled as plain numbers
    (``2``, ``500``, ``1,000``), minor ticks unlabelled: matplotlib's own labels every minor
    tick (``2x10^2``, ``3x10^2``...) where an axis spans a decade or two, and they collide."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def legend(ax: Axes, fontsize: float = SMALL_FONT, **kwargs: Any) -> None:
    """A legend of ``ax``'s labelled artists in the small font (none when nothing is labelled)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, **kwargs)


def save_figure(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Save ``fig`` as ``path`` (PNG at ``dpi``) and close it; warn if its text is hard to read.

    The figure is drawn once, at ``dpi``: the check reads that drawing and the PNG is its pixels
    (``savefig`` would draw it again; drawing is most of a plot's cost)."""
    fig.set_dpi(dpi)
    problems = layout_problems(fig)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        warnings.warn(FigureLayoutWarning(f"{path.name}: {shown}"), stacklevel=2)
    pixels = fig.canvas.buffer_rgba()  # type: ignore[attr-defined]
    matplotlib.image.imsave(path, pixels, format="png", dpi=dpi)
    plt.close(fig)
    return path
