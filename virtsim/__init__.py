"""virtsim: a discrete-event performance simulator of virtualization.

    import virtsim
    result = virtsim.run()                        # the built-in stack comparison
    print(result.summary.head())                  # pandas DataFrames, by table name
    virtsim.overhead(["kvm", "docker"], ["web"]).overhead
    result.report("results/mine")                 # the result folder and its report.html

Each experiment the ``virtsim`` command runs is a function here taking the same inputs (a TOML
file's path, its content as a dict, or the validated model) and returning a
:class:`~virtsim.experiments.api.Result`; see :mod:`virtsim.experiments.api`. The simulator's
layers are the subpackages ``virtsim.sim`` (engines), ``virtsim.models`` (hardware, layers,
workloads) and ``virtsim.experiments`` (experiments, results, reports); importing one of them
does not import the others' heavy dependencies through this module, whose names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["InputError", "Result", "ResultsError", "Scenario", "ScenarioError", "Simulation", "calibrate", "density",
           "disk", "load_scenario", "overhead", "plan", "run", "scenario", "sweep"]

_HOMES = {"InputError": "virtsim.experiments.inputs", "ResultsError": "virtsim.experiments.outputs",
          "Scenario": "virtsim.experiments.scenario", "ScenarioError": "virtsim.experiments.scenario",
          "Simulation": "virtsim.experiments.simulation"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'virtsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "virtsim.experiments.api")), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
