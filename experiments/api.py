"""The Python API: every experiment as a function returning a :class:`Result`.

    import virtsim
    result = virtsim.run("experiments/scenarios/compare-stacks.toml")
    result.summary                      # a pandas DataFrame
    virtsim.overhead(stacks=["kvm", "docker"], workloads=["web"]).overhead
    result.report("results/mine")       # the folder `virtsim report` renders, and its report.html

Inputs are what the command line takes: a TOML file's path, or the same content as a dict, or
the validated model (:class:`~virtsim.experiments.scenario.Scenario`, ``DensitySpec``, ``PlanSpec``,
``DiskSpec``). Bad input raises :class:`~virtsim.experiments.scenario.ScenarioError` naming the field,
as the command line reports it. A :class:`Result` holds its tables in memory;
:meth:`Result.save` writes the same result folder the command writes (with its manifest, so
``virtsim report`` reads it) and :meth:`Result.report` renders it. The command line calls these
functions, so both give the same numbers for the same inputs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from pydantic import ValidationError

from virtsim.experiments.inputs import InputError, format_validation_error, load_toml_model, read_toml
from virtsim.experiments.outputs import ResultFolder, current_columns
from virtsim.experiments.scenario import (
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
    parse_scenario,
    parse_stack,
    stack_from_text,
)
from virtsim.models.schema import StrictModel
from virtsim.models.virt.stack import LayerEntry, Stack

__all__ = ["Result", "calibrate", "density", "disk", "load_scenario", "overhead", "plan", "run", "scenario",
           "sweep"]

M = TypeVar("M", bound=StrictModel)

ALL_CORES = os.cpu_count() or 1
"""Processes by default, as the command line: results are the same on any number (keyed streams)."""


@dataclass
class Result:
    """One experiment's tables (pandas DataFrames, by name) and how to write them as a folder.

    ``result.tables["runs"]`` or ``result.runs``: a table by name. ``inputs`` is what the result
    folder is keyed by (a folder of other inputs is not overwritten without ``force``).
    """

    experiment: str
    tables: dict[str, pd.DataFrame]
    inputs: Any
    writer: Callable[[Path], Mapping[str, Path]] = field(repr=False)
    engine: Any = "kernel"  # the engine the experiment ran on (overhead, density, plan, calibrate: the kernel)
    meta: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    def __repr__(self) -> str:
        shapes = ", ".join(f"{name}: {len(t)} rows x {t.shape[1]} columns" for name, t in self.tables.items())
        return f"<virtsim {self.experiment} result: {shapes}; folder {self.out or 'not saved'}>"

    def __getattr__(self, name: str) -> pd.DataFrame:
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(f"{self.experiment} result has no table {name!r}; it has {sorted(tables)}")

    def publish(self, folder: ResultFolder) -> dict[str, Path]:
        """Write the tables into ``folder`` as one unit (the command line checks the folder first)."""
        with folder.publishing(engine=self.engine) as staging:
            written = dict(self.writer(staging))
        self.out = folder.out
        return {name: folder.out / path.name for name, path in written.items()}

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the result folder ``out`` (refused if it holds other results, unless ``force``)."""
        if self.out is not None and Path(out) == self.out:
            return self.out
        self.publish(ResultFolder(Path(out), self.experiment, self.inputs, force))
        assert self.out is not None
        return self.out

    def report(self, out: str | Path | None = None, force: bool = False) -> Path:
        """Render ``report.html`` (and ``report.md``) of the saved folder; saves first into ``out``
        (or, if never saved and no ``out`` is given, into a new temporary folder). Returns the HTML's path."""
        from virtsim.experiments.report import write_report

        if out is not None:
            self.save(out, force)
        elif self.out is None:
            self.save(tempfile.mkdtemp(prefix=f"virtsim-{self.experiment}-"))
        assert self.out is not None
        return write_report(self.out)["report.html"]


def publish_checked(experiment: str, spec: StrictModel, out: str | Path, force: bool, run: Callable[[], Result],
                    width: int) -> Result:
    """What a command with a spec file does: check ``out`` for ``experiment`` keyed by ``spec``
    before anything runs (:class:`~virtsim.experiments.outputs.ResultFolder`), then ``run()``,
    publish the result there and print each file's path (names right-aligned in ``width``)."""
    folder = ResultFolder(Path(out), experiment, spec.model_dump(mode="json", by_alias=True), force)
    result = run()
    for name, path in result.publish(folder).items():
        print(f"{name:>{width}}: {path}")
    return result


def _validated(model: type[M], value: Any, what: str, table: str | None = None) -> M:
    """``value`` as ``model``: already one, a TOML file's path, or a dict of the same content;
    :class:`ScenarioError` for a scenario, else :class:`InputError`, naming the problem."""
    error = ScenarioError if model is Scenario else InputError
    if isinstance(value, model):
        return value
    if isinstance(value, (str, Path)):
        try:
            return load_toml_model(value, model, what, table)
        except InputError as exc:
            raise error(str(exc)) from None
    if isinstance(value, Mapping):
        data = value.get(table, value) if table is not None and set(value) == {table} else value
        if not isinstance(data, Mapping):
            raise error(f"{what}: [{table}] must be a table of settings, got {type(data).__name__}")
        try:
            return model.model_validate(dict(data))
        except ValidationError as exc:
            raise error(f"{what} is invalid:\n{format_validation_error(exc)}") from None
    raise error(f"{what}: expected a TOML file's path, a dict or a {model.__name__}, "
                        f"got {type(value).__name__}")


def scenario(value: str | Path | Mapping[str, Any] | Scenario) -> Scenario:
    """A validated scenario from a TOML file, a dict of the same content, or a scenario."""
    if isinstance(value, Mapping):
        return parse_scenario(dict(value), "scenario")
    return _validated(Scenario, value, "scenario file")


def run(scenario_: str | Path | Mapping[str, Any] | Scenario | None = None, *, replications: int | None = None,
        seed: int | None = None, workers: int = ALL_CORES, progress: bool = False) -> Result:
    """Run a scenario (default: the built-in stack comparison). Tables ``runs`` (one row per
    replication, guest, metric, layer and station) and ``summary`` (means with 95% intervals);
    ``meta["provenance"]`` says which engine ran, with versions and seeds."""
    from virtsim.experiments.run import write_run_output
    from virtsim.experiments.runner import check_measured, run_scenario

    sc = with_run_overrides(scenario(default_scenario() if scenario_ is None else scenario_), replications, seed)
    sc.check_measurable()
    output = run_scenario(sc, progress=progress, workers=workers)
    check_measured(sc, output.runs)
    return Result("run", {"runs": output.runs, "summary": output.summary}, sc.model_dump(mode="json", by_alias=True),
                  lambda d: write_run_output(d, output), engine=output.provenance["engine"],
                  meta={"provenance": output.provenance})


def with_run_overrides(sc: Scenario, replications: int | None = None, seed: int | None = None) -> Scenario:
    """``sc`` with its ``[run]`` replications and seed replaced where given: the run section
    validated again with them (:class:`ScenarioError` naming the field), the rest of the
    validated scenario kept as it is (neither changes what the scenario's own checks judge)."""
    from pydantic import ValidationError

    from virtsim.experiments.inputs import format_validation_error

    updates = {k: v for k, v in (("replications", replications), ("seed", seed)) if v is not None}
    if not updates:
        return sc
    try:
        run = sc.run.revalidated(**updates)
    except ValidationError as exc:
        raise ScenarioError(f"run overrides: {format_validation_error(exc, '; ')}") from None
    return sc.model_copy(update={"run": run})


def check_overhead_args(stacks: Sequence[Stack] | None, workloads: Sequence[str] | None) -> None:
    """Refuse unknown or repeated workloads, repeated stacks, and a comparison of bare metal with
    itself (the stacks are built and checked already: :func:`overhead_stacks`)."""
    from virtsim.experiments.overhead import WORKLOADS

    names = list(workloads or [])
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ScenarioError(f"--workloads: unknown {unknown}; known: {', '.join(WORKLOADS)}")
    if len(set(names)) < len(names):
        raise ScenarioError(f"--workloads: {sorted({n for n in names if names.count(n) > 1})} listed more than once")
    if stacks:
        labels = [s.label for s in stacks]
        if len(set(labels)) < len(labels):
            raise ScenarioError(f"--stacks: {sorted({x for x in labels if labels.count(x) > 1})} listed more than once")
        if all(label == "bare-metal" for label in labels):
            raise ScenarioError("--stacks: name at least one stack besides bare-metal, the baseline every ratio "
                                "is taken against (it is always run)")


def overhead_stacks(stacks: str | Sequence[str | Stack | Sequence[LayerEntry]] | None) -> list[Stack] | None:
    """The stacks ``virtsim.overhead`` takes, each built and checked once: a :class:`Stack`, its
    text (``"docker{cpu_max=50ms/100ms}/kvm"``, read by
    :func:`~virtsim.experiments.scenario.stack_from_text`) or its list of layers as a scenario
    writes them; a text alone is one stack. :class:`ScenarioError` naming the one that is wrong."""
    if isinstance(stacks, str):  # one stack named alone: "kvm", not the letters k, v, m
        stacks = [stacks]
    if not stacks:
        return None
    out = []
    for stack in stacks:
        try:
            out.append(stack_from_text(stack) if isinstance(stack, str) else parse_stack(stack))
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"--stacks: {exc}") from None
    return out


def overhead_inputs(stacks: Sequence[Stack] | None, workloads: Sequence[str] | None, replications: int,
                    seed: int) -> dict[str, Any]:
    """What an overhead result folder is keyed by, as JSON: each stack as its entries
    (:meth:`Stack.entries`), the workloads, replications and seed; the same from the command
    line and the API."""
    return {"stacks": [s.entries() for s in stacks] if stacks else None,
            "workloads": list(workloads) if workloads else None, "replications": replications, "seed": seed}


def overhead(stacks: str | Sequence[str | Stack | Sequence[LayerEntry]] | None = None,
             workloads: str | Sequence[str] | None = None, *, replications: int = 2, seed: int = 1,
             workers: int = ALL_CORES, progress: bool = False) -> Result:
    """Each workload on each stack (``"kvm"``, ``"docker{cpu_max=50ms/100ms}/kvm"``, a list of
    layers or a :class:`Stack`: see :func:`overhead_stacks`), as ratios to bare metal with the
    time each layer adds. Tables ``overhead`` (ratios), ``attribution`` and ``summary``, as
    ``virtsim overhead`` writes them."""
    from virtsim.experiments.overhead import overhead as run_overhead
    from virtsim.experiments.overhead import write_overhead

    built = overhead_stacks(stacks)
    names = [workloads] if isinstance(workloads, str) else list(workloads) if workloads else None
    check_overhead_args(built, names)
    tables = run_overhead(built, names, replications=replications, seed=seed, workers=workers, progress=progress)
    return Result("overhead", dict(tables), overhead_inputs(built, names, replications, seed),
                  lambda d: write_overhead(d, tables))


def density(spec: Any = None) -> Result:
    """How many guests fit a host per stack under the SLO (``spec``: a ``[density]`` TOML file,
    its content as a dict, or a ``DensitySpec``; default: the built-in one). Tables ``tried``
    (every N evaluated) and ``summary`` (per stack: the largest N and what limits it)."""
    from virtsim.experiments.density import DensitySpec, run_density, write_density

    s = DensitySpec() if spec is None else _validated(DensitySpec, spec, "density spec", "density")
    tried, summary = run_density(s)
    return Result("density", {"tried": tried, "summary": summary}, s.model_dump(mode="json", by_alias=True),
                  lambda d: write_density(d, s, tried, summary))


def plan(spec: Any) -> Result:
    """A capacity plan (``spec``: a plan TOML file, its content as a dict, or a ``PlanSpec``).
    Tables ``fleet`` (hosts per host type and stack) and ``needs`` (per service and stack)."""
    from virtsim.experiments.plan import PlanSpec, write_plan
    from virtsim.experiments.plan import plan as run_plan

    s = _validated(PlanSpec, spec, "plan file")
    fleet, needs = run_plan(s)
    return Result("plan", {"fleet": fleet, "needs": needs}, s.model_dump(mode="json", by_alias=True),
                  lambda d: write_plan(d, fleet, needs))


def disk(spec: Any = None) -> Result:
    """Disk usage of image chains and container layers (``spec``: a ``[disk]`` TOML file, its
    content as a dict, or a ``DiskSpec``; default: the built-in one). Table ``disk``."""
    from virtsim.experiments.disk import DiskSpec, run_disk, write_disk_outputs

    s = DiskSpec() if spec is None else _validated(DiskSpec, spec, "disk spec", "disk")
    table = run_disk(s)
    return Result("disk", {"disk": table}, s.model_dump(mode="json", by_alias=True),
                  lambda d: write_disk_outputs(d, s, table), engine=None)


def calibrate(published: str | Path | None = None, *, seed: int = 1, workers: int = ALL_CORES) -> Result:
    """Reproduce the published measurements (default: the packaged ``published.csv``). Table
    ``calibration``: one row per published row, reproduced or with the reason it is not."""
    from virtsim.experiments.calibrate import calibrate as run_calibration
    from virtsim.experiments.calibrate import checked_published, write_calibration

    path, rows = checked_published(Path(published) if published is not None else None, "published")
    table = run_calibration(path, seed=seed, workers=workers)
    return Result("calibrate", {"calibration": table}, {"published": rows, "seed": seed},
                  lambda d: write_calibration(d, table))


def sweep(scenario_: str | Path | Mapping[str, Any], out: str | Path, *, workers: int = ALL_CORES,
          scheduler: str | None = None, progress: bool = False, force: bool = False,
          announce: Callable[[str], object] | None = None) -> Result:
    """Run a scenario's ``[sweep]`` into ``out`` (a sweep writes each point as it finishes, so a
    rerun resumes; it needs its folder from the start). Table ``sweep``: every point's runs."""
    from virtsim.experiments.sweep import expand_sweep, run_sweep

    if isinstance(scenario_, (str, Path)):
        data, origin = read_toml(scenario_, "scenario file"), str(scenario_)
    elif isinstance(scenario_, Mapping):
        data, origin = dict(scenario_), "scenario"
    else:
        raise ScenarioError(f"sweep: expected a scenario file's path or a dict, got {type(scenario_).__name__}")
    points = expand_sweep(data, origin)
    if announce is not None:
        announce(f"{len(points)} points")
    path = run_sweep(points, Path(out), workers=workers, scheduler=scheduler, progress=progress, force=force)
    table = current_columns(pd.read_parquet(path))

    def already_written(d: Path) -> dict[str, Path]:
        raise ScenarioError(f"a sweep's folder is written as it runs: it is {path.parent}")

    return Result("sweep", {"sweep": table}, None, already_written, out=path.parent, meta={"points": len(points)})
