"""virtsim: a discrete-event performance simulator of virtualization.

    import virtsim
    result = virtsim.run()                        # the built-in stack comparison
    print(result.summary.head())                  # pandas DataFrames, by table name
    virtsim.overhead(["kvm", "docker"], ["web"]).overhead
    result.report("results/mine")                 # the result folder and its report.html

Each experiment the ``virtsim`` command runs is a function here taking the same inputs (a TOML
file's path, its content as a dict, or the validated model) and returning a
:class:`~experiments.api.Result`; see :mod:`experiments.api`.
"""

from experiments.api import Result, calibrate, density, disk, load_scenario, overhead, plan, run, scenario, sweep
from experiments.outputs import ResultsError
from experiments.scenario import Scenario, ScenarioError

__all__ = ["Result", "ResultsError", "Scenario", "ScenarioError", "calibrate", "density", "disk",
           "load_scenario", "overhead", "plan", "run", "scenario", "sweep"]
