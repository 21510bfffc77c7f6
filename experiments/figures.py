"""Saving figures, and checking that people can read them: no text clipped by the figure's edge,
no two pieces of text drawn over each other.

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

import matplotlib

matplotlib.use("Agg")
import matplotlib.image
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

__all__ = ["FigureLayoutWarning", "layout_problems", "save_figure"]

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


def save_figure(fig: Figure, path: Path, dpi: int = 120) -> Path:
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
