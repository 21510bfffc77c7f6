"""How well a stack's numbers are sourced: its calibration grade.

Every profile parameter's source note says where its value comes from (see
:mod:`virtsim.models.profiles`): rows of ``published.csv`` it was fitted to, a setup fact (``setup:``), a
published source with its grade, or ``assumption``. A stack's grade is the share of its layers'
parameters that are not assumptions, and the worst grade among the published rows and graded
sources they cite (A best, C worst; ``-`` when none is graded). A stack below half sourced is
flagged as guessed, so a reader sees which numbers rest on guesses.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from virtsim.experiments.scenario import label_profiles
from virtsim.models.profiles import Profile, cited_rows, load_profiles

__all__ = ["GUESSED_BELOW", "PACKAGED_FOUND", "PACKAGED_PUBLISHED", "StackGrade", "grades_table", "stack_grade"]

PACKAGED_PUBLISHED = Path(__file__).resolve().parent / "calibration_data" / "published.csv"
"""The project's copy of the team's ``shared/calibration/published.csv`` (with its README, which
grades the rows), shipped in the package so that ``virtsim calibrate`` runs anywhere."""

PACKAGED_FOUND = PACKAGED_PUBLISHED.parent / "found.csv"
"""Published measurements the project found itself (not in the team's file), in its columns plus
the ``url`` read, graded as its README grades: profiles cite them as ``found.csv ID``."""

GUESSED_BELOW = 0.5  # a stack with less than half its parameters sourced is called guessed
_GRADE_IN_TEXT = re.compile(r"grade ([ABC])\b")


@cache
def _row_grades(paths: tuple[Path, ...] = (PACKAGED_PUBLISHED, PACKAGED_FOUND)) -> dict[str, str]:
    """The grade (A, B or C) of every row of the published and found tables, by row id."""
    grades: dict[str, str] = {}
    for path in paths:
        with path.open(newline="", encoding="utf-8") as f:
            grades |= {row["id"]: row["grade"] for row in csv.DictReader(f)}
    return grades


def _worst(grades: list[str]) -> str:
    """The worst of ``grades`` (C is worse than B, B than A); ``"-"`` if none is graded."""
    graded = [g for g in grades if g in "ABC" and g]
    return max(graded) if graded else "-"  # "C" > "B" > "A": the worst is the largest


@dataclass(frozen=True)
class StackGrade:
    """The calibration grade of a stack (or of one profile: a stack of one)."""

    label: str
    parameters: int
    sourced: int
    worst_grade: str
    assumed: tuple[str, ...]

    @property
    def sourced_share(self) -> float:
        """The share (0..1) of the parameters that cite a source; 1 for a stack without parameters."""
        return self.sourced / self.parameters if self.parameters else 1.0

    @property
    def guessed(self) -> bool:
        """Whether fewer than ``GUESSED_BELOW`` of the parameters are sourced."""
        return self.sourced_share < GUESSED_BELOW


def _profile_parts(profile: Profile) -> tuple[int, int, list[str], list[str]]:
    """(parameters, sourced, grades cited, assumed parameter names) of one profile."""
    rows = _row_grades()
    grades: list[str] = []
    assumed: list[str] = []
    for name in profile.params:
        note = profile.sources.get(name, "")
        if not note or note.strip().lower().startswith("assumption"):
            assumed.append(name)
            continue
        grades += [rows.get(r, "") for r in cited_rows(note)]
        grades += _GRADE_IN_TEXT.findall(note)
    return len(profile.params), len(profile.params) - len(assumed), grades, assumed


def stack_grade(label: str) -> StackGrade:
    """The grade of the stack a label names (:attr:`~virtsim.models.virt.stack.Stack.label`, or a
    scenario's ``kvm + docker``; its profiles as :func:`~virtsim.experiments.scenario.label_profiles`
    reads them). Unknown names count as nothing sourced, so a typo cannot pass for a calibrated stack."""
    every = {**load_profiles("virtsim.models.virt"), **load_profiles("virtsim.models.hardware")}
    parameters = sourced = 0
    grades: list[str] = []
    assumed: list[str] = []
    for name in label_profiles(label):
        if name not in every:
            parameters += 1
            assumed.append(f"{name} (unknown profile)")
            continue
        n, s, g, a = _profile_parts(every[name])
        parameters, sourced = parameters + n, sourced + s
        grades += g
        assumed += [f"{name}.{p}" for p in a]
    return StackGrade(label, parameters, sourced, _worst(grades), tuple(assumed))


def grades_table(labels: list[str]) -> pd.DataFrame:
    """One row per stack: parameters, share sourced, worst grade cited, and whether it is guessed."""
    rows = []
    for label in dict.fromkeys(labels):
        g = stack_grade(label)
        rows.append({"stack": label, "parameters": g.parameters, "sourced_share": round(g.sourced_share, 2),
                     "worst_grade": g.worst_grade, "assumed": len(g.assumed),
                     "confidence": "GUESSED" if g.guessed else "sourced"})
    return pd.DataFrame(rows)
