"""Reports: a self-contained HTML page and a Markdown file from any experiment's saved results.

``virtsim report DIR`` reads which experiment wrote ``DIR`` from its verified manifest, has that
experiment's module build its :class:`Report` (what was asked, the answer in a table and in
sentences, the plots, the assumptions), and renders it with the profiles used and the source of
every parameter. Built only from the saved files, never from live objects. The HTML embeds its
figures, so it can be mailed as one file; a script in it records how many figures loaded
(``data-figures-loaded`` on ``<body>``).
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

import pandas as pd
from jinja2 import Environment, StrictUndefined

from virtsim.experiments.grades import grades_table
from virtsim.experiments.outputs import MANIFEST, ResultsError, atomic_write, current_columns, read_manifest
from virtsim.experiments.scenario import label_profiles
from virtsim.models.profiles import Profile, load_profiles

__all__ = ["Report", "StackFields", "blank_missing", "build_report", "engine_text", "existing_files",
           "read_results_csv", "seconds_text", "stacks_fields", "write_combined_report", "write_report",
           "write_run_report"]


@dataclass
class Report:
    """What a report says, independent of its format."""

    title: str
    question: str
    answer: pd.DataFrame
    figures: list[Path] = field(default_factory=list)  # filled from the experiment's declared figures
    assumptions: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    stacks: list[str] = field(default_factory=list)  # labels whose calibration grade the report shows
    sentences: list[str] = field(default_factory=list)  # the answer in words, above its table


class StackFields(TypedDict):
    """The ``stacks`` and ``profiles`` fields of a :class:`Report` (see :func:`stacks_fields`)."""

    stacks: list[str]
    profiles: list[str]


def stacks_fields(labels: pd.Series) -> StackFields:
    """The ``stacks`` and ``profiles`` fields of a report whose table has these stack labels;
    :class:`ResultsError` naming a label that does not split into layers."""
    stacks = [str(s) for s in labels.unique()]
    try:
        profiles = {p for s in stacks for p in label_profiles(s)}
    except ValueError as exc:
        raise ResultsError(f"a stack label in the results cannot be read ({exc}); rerun the experiment") from None
    return {"stacks": stacks, "profiles": sorted(profiles)}


def read_results_csv(path: Path) -> pd.DataFrame:
    """A results CSV, or a :class:`ResultsError` if it cannot be read."""
    try:
        return current_columns(pd.read_csv(path))
    except Exception as exc:
        raise ResultsError(f"{path} cannot be read as CSV ({type(exc).__name__}); rerun the experiment") from None


def existing_files(folder: Path, names: list[str]) -> list[Path]:
    """The files among ``names`` (in that order) that ``folder``'s manifest lists: the ones its
    experiment wrote and vouches for (checked by :func:`read_manifest` before a report is made),
    never a file left there by anything else."""
    try:
        listed = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [Path(folder) / n for n in names if n in listed]


def engine_text(engine: object) -> str:
    """The engine that ran, per stack in words: "des" for all, or "des (kvm), vector (bare-metal)"."""
    if not isinstance(engine, dict):
        return str(engine)
    kinds = set(engine.values())
    if len(kinds) == 1:
        return f"{next(iter(kinds))} for every stack"
    return ", ".join(f"{e} ({', '.join(k for k, v in engine.items() if v == e)})" for e in sorted(kinds))


def seconds_text(seconds: float) -> str:
    """A duration in the unit that reads best: us, ms or s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def blank_missing(table: pd.DataFrame) -> pd.DataFrame:
    """Empty cells, not ``nan``, where a text column has no value (no note, no promise bound)."""
    out = table.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]) or out[column].isna().all():
            out[column] = out[column].astype(object).where(out[column].notna(), "")
    return out


def build_report(folder: Path) -> Report:
    """The report of the experiment that wrote ``folder``, named by its verified manifest.

    Every file the report reads must be listed (and verified) in the manifest; content that is
    not what the experiment writes (a file edited and its manifest with it) is a
    :class:`ResultsError`, never a traceback.
    """
    from virtsim.experiments.registry import experiment as registered

    folder = Path(folder)
    manifest = read_manifest(folder)
    experiment = str(manifest["experiment"])
    declared = registered(experiment)
    if declared is None:
        raise ResultsError(f"{folder} holds results of `virtsim {experiment}`, which has no report")
    unlisted = [name for name in declared.reads if name not in manifest["files"]]
    if unlisted:
        raise ResultsError(f"{folder / unlisted[0]} is not vouched for by {folder / 'manifest.json'}; "
                           "rerun the experiment")
    try:
        return replace(declared.report(folder), figures=existing_files(folder, list(declared.figures)))
    except ResultsError:
        raise  # already names the file and the fix
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ResultsError(f"{folder}: its files do not hold what `virtsim {experiment}` writes "
                           f"({type(exc).__name__}: {exc}); rerun the experiment") from None


def _profile_rows(names: list[str]) -> list[Profile]:
    """The layer and hardware profiles of these names (unknown names are left out)."""
    every = {**load_profiles("virtsim.models.virt"), **load_profiles("virtsim.models.hardware")}
    return [every[n] for n in names if n in every]


# Shared by the single and the combined report (rendered unescaped: they are our own markup).
_CSS = """<style>
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1a202c; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #cbd5e0; padding: 0.3em 0.6em; text-align: right; }
th { background: #edf2f7; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #e2e8f0; margin: 0.5em 0; }
.src { color: #4a5568; font-size: 0.85em; text-align: left; }
</style>"""
_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-figures-loaded", String(ok));
});
</script>"""
_GRADES_NOTE = ("Share of the stack's parameters taken from a measurement or a documented setup (the rest are "
                "assumptions), and the worst grade of the published rows they cite (A best); below half sourced "
                "is marked GUESSED: read those numbers as estimates.")


def _render(template: str, html_page: bool, **values: object) -> str:
    """A report template rendered (escaped for HTML) with the shared style, script and notes."""
    from markupsafe import Markup

    env = Environment(undefined=StrictUndefined, autoescape=html_page)
    return env.from_string(template).render(css=Markup(_CSS), script=Markup(_SCRIPT), grades_note=_GRADES_NOTE,
                                            **values)


def _write_texts(folder: Path, texts: dict[str, str]) -> dict[str, Path]:
    """Each text atomically into ``folder``, by file name."""
    out = {}
    for name, text in texts.items():
        def write(tmp: Path, text: str = text) -> None:
            tmp.write_text(text, encoding="utf-8")

        out[name] = atomic_write(folder / name, write)
    return out


_MD = """# {{ r.title }}

**Question.** {{ r.question }}

## The answer

{% for a in r.sentences %}- {{ a }}
{% endfor %}
{{ answer_md }}

{% for f in r.figures %}![{{ f.stem }}]({{ f.name }})

{% endfor %}
## Assumptions

{% for a in r.assumptions %}- {{ a }}
{% endfor %}
{% if grades_md %}## How well each stack is calibrated

{{ grades_note }}

{{ grades_md }}
{% endif %}
{% if profiles %}## Profiles used

{% for p in profiles %}### {{ p.name }} ({{ p.kind }})

{{ p.description }}

| parameter | value | source |
|---|---|---|
{% for k, v in p.params.items() %}| {{ k }} | {{ v }} | {{ p.sources.get(k, "") }} |
{% endfor %}
{% endfor %}{% endif %}"""

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ r.title }}</title>
{{ css }}</head>
<body data-figures-total="{{ figures|length }}" data-figures-loaded="0">
<h1>{{ r.title }}</h1>
<p><strong>Question.</strong> {{ r.question }}</p>
<h2>The answer</h2>
{% if r.sentences %}<ul>{% for a in r.sentences %}<li>{{ a }}</li>{% endfor %}</ul>{% endif %}
{{ answer_html }}
{% for name, data in figures %}<figure><img alt="{{ name }}" src="data:image/png;base64,{{ data }}"></figure>
{% endfor %}
<h2>Assumptions</h2><ul>{% for a in r.assumptions %}<li>{{ a }}</li>{% endfor %}</ul>
{% if grades_html %}<h2>How well each stack is calibrated</h2>
<p>{{ grades_note }}</p>
{{ grades_html }}{% endif %}
{% if profiles %}<h2>Profiles used</h2>
{% for p in profiles %}<h3>{{ p.name }} ({{ p.kind }})</h3><p>{{ p.description }}</p>
<table><tr><th>parameter</th><th>value</th><th>source</th></tr>
{% for k, v in p.params.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td>
<td class="src">{{ p.sources.get(k, "") }}</td></tr>{% endfor %}</table>{% endfor %}{% endif %}
{{ script }}
</body></html>
"""


def write_report(folder: Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.html`` into ``folder``; returns their paths."""
    folder = Path(folder)
    report = build_report(folder)
    profiles = _profile_rows(report.profiles)
    grades = grades_table(report.stacks) if report.stacks else None
    md = _render(_MD, False, r=report, answer_md=_md_table(report.answer), profiles=profiles,
                 grades_md=_md_table(grades) if grades is not None else "")
    figures = [(f.stem, base64.b64encode(f.read_bytes()).decode("ascii")) for f in report.figures]
    page = _render(_HTML, True, r=report, answer_html=_html_table(report.answer), figures=figures, profiles=profiles,
                   grades_html=_html_table(grades) if grades is not None else "")
    return _write_texts(folder, {"report.md": md, "report.html": page})


_COMBINED_MD = """# {{ title }}

## The answers

{% for r, name in sections %}**{{ r.title }}** ({{ name }}): {{ r.question }}

{% for a in r.sentences %}- {{ a }}
{% else %}- See the table in its section below.
{% endfor %}
{% endfor %}
{% for r, name, table, figures in details %}## {{ r.title }} ({{ name }})

**Question.** {{ r.question }}

{{ table }}

{% for f in figures %}![{{ f }}]({{ f }})

{% endfor %}{% for a in r.assumptions %}- {{ a }}
{% endfor %}
{% endfor %}{% if grades_md %}## How well each stack is calibrated

{{ grades_note }}

{{ grades_md }}
{% endif %}"""

_COMBINED_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
{{ css }}</head>
<body data-figures-total="{{ figure_count }}" data-figures-loaded="0">
<h1>{{ title }}</h1>
<h2 id="answers">The answers</h2>
{% for r, name in sections %}<p><strong>{{ r.title }}</strong> ({{ name }}): {{ r.question }}</p>
<ul>{% for a in r.sentences %}<li>{{ a }}</li>{% else %}<li>See the table in its section below.</li>{% endfor %}</ul>
{% endfor %}
{% for r, name, table, figures in details %}<h2>{{ r.title }} ({{ name }})</h2>
<p><strong>Question.</strong> {{ r.question }}</p>
{{ table }}
{% for alt, data in figures %}<figure><img alt="{{ alt }}" src="data:image/png;base64,{{ data }}"></figure>
{% endfor %}<ul>{% for a in r.assumptions %}<li>{{ a }}</li>{% endfor %}</ul>
{% endfor %}
{% if grades_html %}<h2>How well each stack is calibrated</h2>
<p>{{ grades_note }}</p>
{{ grades_html }}{% endif %}
{{ script }}
</body></html>
"""


def _each_once(folders: list[Path]) -> None:
    """Refuse a results folder named more than once (``ResultsError``), however it is written."""
    seen = [Path(f).resolve() for f in folders]
    twice = sorted({str(f) for f in folders if seen.count(Path(f).resolve()) > 1})
    if twice:
        raise ResultsError(f"{', '.join(twice)}: named more than once; name each results folder once")


def write_combined_report(folders: list[Path], out: Path) -> dict[str, Path]:
    """One report of several results folders in ``out``: an answer section with each
    experiment's sentences first, then each one's table, figures and assumptions, and the
    calibration grade of every stack any of them ran. Figures are copied beside report.md
    (named after their folder) and embedded in report.html. ``out`` must not be a results folder."""
    import shutil

    out = Path(out)
    if (out / "manifest.json").exists():
        raise ResultsError(f"--out {out} holds an experiment's results; write the combined report elsewhere")
    _each_once(folders)
    reports = [(build_report(Path(f)), Path(f)) for f in folders]
    names = [f.name or str(f) for _, f in reports]
    if len(set(names)) < len(names):
        names = [str(f) for _, f in reports]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    details_md, details_html, count = [], [], 0
    for (r, _), name in zip(reports, names, strict=True):
        copied = []
        for fig in r.figures:
            target = out / f"{name.replace('/', '_')}-{fig.name}"
            shutil.copyfile(fig, target)
            copied.append(target.name)
        details_md.append((r, name, _md_table(r.answer), copied))
        details_html.append((r, name, _html_table(r.answer),
                             [(f.stem, base64.b64encode(f.read_bytes()).decode("ascii")) for f in r.figures]))
        count += len(r.figures)
    stacks = list(dict.fromkeys(s for r, _ in reports for s in r.stacks))
    grades = grades_table(stacks) if stacks else None
    title = "virtsim report: " + "; ".join(r.title for r, _ in reports)
    sections = [(r, name) for (r, _), name in zip(reports, names, strict=True)]
    md = _render(_COMBINED_MD, False, title=title, sections=sections, details=details_md,
                 grades_md=_md_table(grades) if grades is not None else "")
    page = _render(_COMBINED_HTML, True, title=title, sections=sections, details=details_html, figure_count=count,
                   grades_html=_html_table(grades) if grades is not None else "")
    return _write_texts(out, {"report.md": md, "report.html": page})


def _cell_text(value: object) -> str:
    """A table cell as people read it: whole numbers with thousands separators, others to four
    significant digits (no 16-digit seconds), missing values empty."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    if isinstance(value, float) and math.isnan(value):
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:  # 46,156, not 4.616e+04
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"


def _md_table(df: pd.DataFrame) -> str:
    """A Markdown (pipe) table; cells with a pipe have it escaped."""
    def cell(v: object) -> str:
        return _cell_text(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> object:
    """An HTML table of ``df`` (cells escaped, as :func:`_cell_text` writes them), marked safe for the template."""
    from markupsafe import Markup

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell_text(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    # in a box that scrolls sideways: a wide table (a plan's 12 columns) stays inside the page
    return Markup(f"<div class=\"wide\"><table><tr>{head}</tr>{body}</table></div>")


def write_run_report(folder: Path) -> Path:
    """The report of a ``virtsim run`` folder (Markdown path; the HTML is written beside it)."""
    return write_report(folder)["report.md"]
