"""The experiments virtsim runs, each declared by one module.

An experiment is one module that says what it answers and holds its spec, its run, its tables,
its figures, its command and its report; it ends with ``EXPERIMENT = Experiment(...)``. This file
lists the modules with their command-line options, which it keeps so that ``virtsim --help`` and
a mistyped argument answer without importing any module's numerical libraries. Adding an
experiment: write its module, add one :class:`Command` to :data:`COMMANDS`.

``report`` renders a results folder by the experiment its manifest names, through the same
table: never by guessing from file names.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from virtsim.experiments.report import Report

__all__ = ["COMMANDS", "Command", "Experiment", "Option", "experiment", "positive_int"]


@dataclass(frozen=True)
class Experiment:
    """What an experiment module declares (as ``EXPERIMENT``).

    ``name``: its command and the name its result folders' manifests carry; ``question``: what it
    answers, in a line; ``command``: runs it from parsed command-line arguments, prints where
    its files went and returns the exit status; ``report``: the :class:`~virtsim.experiments.report.Report`
    of one of its result folders, built from the files alone (its figures are added from
    ``figures``); ``reads``: the files that report reads (each must be vouched for by the folder's
    manifest); ``tables``: the data files every one of its result folders holds; ``figures``: the
    figures one may hold (one with nothing to draw is left out), in the order a report shows them.
    A folder is published only with exactly these files (see :class:`~virtsim.experiments.outputs.ResultFolder`).
    """

    name: str
    question: str
    command: Callable[[argparse.Namespace], int]
    report: Callable[[Path], Report]
    reads: tuple[str, ...]
    tables: tuple[str, ...]
    figures: tuple[str, ...]


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number >= 1 (else an error naming the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """One command-line argument: ``argparse``'s ``add_argument(*flags, **settings)``."""

    flags: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


def _out(what: str) -> Option:
    return Option(("--out",), {"required": True, "help": what})


FORCE = Option(("--force",), {"action": "store_true", "help": "replace --out even if it holds other results"})
QUIET = Option(("--quiet",), {"action": "store_true", "help": "no progress bar"})
WORKERS = Option(("--workers",), {"type": positive_int, "default": os.cpu_count() or 1,
                                  "help": "processes running in parallel (default: all cores; same numbers on any)"})
SEED = Option(("--seed",), {"type": int, "default": 1})


@dataclass(frozen=True)
class Command:
    """An experiment on the command line: its name, the module that declares it, a line of help
    and its options."""

    name: str
    module: str
    help: str
    options: tuple[Option, ...]

    def load(self) -> Experiment:
        """The module's :class:`Experiment` (importing it: pandas, numpy and the models)."""
        declared = importlib.import_module(self.module).EXPERIMENT
        if not isinstance(declared, Experiment) or declared.name != self.name:
            raise RuntimeError(f"{self.module}.EXPERIMENT must be the Experiment named {self.name!r}")
        return declared


COMMANDS: tuple[Command, ...] = (
    Command("run", "virtsim.experiments.run", "run a scenario and write runs.parquet, summary.csv, provenance.json", (
        Option(("scenario",), {"nargs": "?", "help": "scenario TOML (default: the built-in compare-stacks.toml)"}),
        _out("folder for the results (created if missing)"),
        Option(("--replications",), {"type": positive_int, "help": "override run.replications"}),
        Option(("--seed",), {"type": int, "help": "override run.seed"}),
        WORKERS, QUIET, FORCE)),
    Command("sweep", "virtsim.experiments.sweep", "run a scenario's [sweep] of parameters; resumes where it stopped", (
        Option(("scenario",), {"help": "scenario TOML with a [sweep] table"}),
        _out("folder for points/ and sweep.parquet (rerun to resume)"),
        WORKERS,
        Option(("--scheduler",), {"help": "address of a Dask scheduler (tcp://HOST:8786) to run the points on"}),
        QUIET,
        Option(("--force",), {"action": "store_true", "help": "clear --out first if it holds other results"}))),
    Command("overhead", "virtsim.experiments.overhead",
            "workloads on each stack as ratios to bare metal, with attribution", (
                _out("folder for overhead.csv, attribution.csv and plots"),
                Option(("--stacks",), {"help": 'comma-separated stacks, each as its label writes it: layers '
                                               'innermost first joined by "/", overrides in braces (e.g. '
                                               '"kvm,docker/kvm,docker{cpu_max=50ms/100ms}/kvm{vcpus=4}")'}),
                Option(("--workloads",), {"help": "comma-separated workloads (default: all)"}),
                Option(("--replications",), {"type": positive_int, "default": 2}),
                SEED, WORKERS, QUIET, FORCE)),
    Command("calibrate", "virtsim.experiments.calibrate",
            "reproduce the published measurements -> calibration.csv + plot", (
                _out("folder for calibration.csv and calibration.png"),
                Option(("--published",), {"help": "path of published.csv (default: the copy shipped in "
                                                  "experiments/calibration_data/)"}),
                SEED, WORKERS, FORCE)),
    Command("density", "virtsim.experiments.density",
            "guests per host under an SLO, per stack, and the limiting resource", (
                Option(("spec",), {"nargs": "?", "help": "TOML file with a [density] table (default: built-in "
                                                         "settings)"}),
                _out("folder for density.csv, density_summary.csv and the plot"), FORCE)),
    Command("plan", "virtsim.experiments.plan",
            "capacity plan: hosts per stack for a mix of services and host types", (
                Option(("plan",), {"help": "plan TOML: services, host_types, stacks, headroom"}),
                _out("folder for plan.csv, plan_services.csv and the plot"), FORCE)),
    Command("disk", "virtsim.experiments.disk",
            "disk usage: linked vs full clones, formats, drivers -> disk.csv + plots", (
                Option(("spec",), {"nargs": "?", "help": "TOML file with a [disk] table (default: built-in "
                                                         "settings)"}),
                _out("folder for disk.csv and the plots"), FORCE)),
)
"""Every experiment, in the order ``virtsim --help`` lists them."""


def experiment(name: str) -> Experiment | None:
    """The experiment called ``name`` (its module imported), or ``None`` if there is none."""
    for command in COMMANDS:
        if command.name == name:
            return command.load()
    return None
