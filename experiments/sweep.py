"""Sweeps: a scenario run at every point of a grid (or of zipped lists) of parameter values.

A scenario declares

    [sweep]
    mode = "grid"                     # every combination; "zip": the i-th value of each list
    [sweep.parameters]
    "guests[0].workload.arrivals.rate" = ["100/s", "200/s"]
    "run.seed" = [1, 2, 3]

Every point is validated before anything runs. Points run serially, on a local process pool, or
on a Dask cluster (``Client(address).get_executor()``); each finished point is written at once,
atomically, to ``DIR/points/``, so a sweep that is interrupted (even by SIGKILL) resumes where
it stopped when the same command runs again. ``DIR/sweep.parquet`` then gathers every point's
tidy rows, in point order, with the parameters as columns.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import re
import signal
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError
from tqdm import tqdm

from virtsim.experiments.identity import content_key
from virtsim.experiments.inputs import format_validation_error
from virtsim.experiments.outputs import (
    ResultFolder,
    ResultsError,
    atomic_write,
    current_columns,
    read_manifest,
    write_json,
)
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import Report
from virtsim.experiments.scenario import Scenario, ScenarioError, SweepSpec, parse_scenario
from virtsim.sim.units import DIMENSIONS

__all__ = ["EXPERIMENT", "SweepSpec", "command", "expand_sweep", "gather", "parse_path", "report", "run_sweep"]

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


POINTS_INDEX = "sweep_points.json"  # the points of the sweep, written first: marks an unfinished sweep
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")  # as sim.units'
MAX_POINTS = 100_000  # a grid beyond this is refused before it is expanded


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its index, parameter values, and validated scenario.

    Its ``key`` is the hash of the fully resolved scenario (base and swept values, every default
    filled in) and of the code: a point computed for another scenario or another version of the
    model is never taken for this one.
    """

    index: int
    values: dict[str, Any]
    scenario: Scenario

    @cached_property
    def key(self) -> str:
        """The point's content key: the hash of its resolved scenario and of the code."""
        return content_key(self.scenario.model_dump(mode="json", by_alias=True))

    @cached_property
    def resolved(self) -> dict[str, float]:
        """Each swept value that validation made a number, as the scenario holds it: in the base
        unit of the field's own dimension (``"1.1GB/s"`` for a disk's bandwidth in B/s: 1.1e9,
        where the suffix alone could also be read as bits per second)."""
        data: Any = self.scenario.model_dump(mode="json", by_alias=True)
        out = {}
        for name in self.values:
            node = data
            try:
                for part in parse_path(name):
                    node = node[part]
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(node, int | float) and not isinstance(node, bool):
                out[name] = float(node)
        return out

    @cached_property
    def units(self) -> dict[str, str]:
        """The base unit of each swept parameter written here with a unit: the dimension whose
        reading of the written value is the number the scenario holds."""
        out = {}
        for name, number in self.resolved.items():
            written = self.values[name]
            match = _QUANTITY.match(written) if isinstance(written, str) else None
            if match is None or not match.group(2):
                continue
            for dimension, table in DIMENSIONS.items():
                if match.group(2) in table and math.isclose(float(match.group(1)) * table[match.group(2)], number,
                                                            rel_tol=1e-12) and BASE_UNITS.get(dimension):
                    out[name] = BASE_UNITS[dimension]
                    break
        return out


def parse_path(path: str) -> list[str | int]:
    """``"guests[0].workload.rate"`` -> ``["guests", 0, "workload", "rate"]``."""
    parts: list[str | int] = []
    for segment in path.split("."):
        pos = 0
        for match in _PART.finditer(segment):
            if match.start() != pos:
                break
            parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
            pos = match.end()
        if pos != len(segment) or not segment:
            raise ScenarioError(f"sweep.parameters: {path!r} is not a path like \"guests[0].workload.rate\"")
    return parts


def _set(data: Any, path: str, value: Any) -> None:
    """Set ``value`` at ``path`` inside ``data``; a clear error naming the first part that is missing."""
    parts = parse_path(path)
    node, where = data, ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                size = len(node) if isinstance(node, list) else "no list"
                raise ScenarioError(f"sweep.parameters: {path!r}: {where or 'the scenario'} has no item [{part}] "
                                    f"(it has {size})")
        elif not isinstance(node, dict) or part not in node:
            keys = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise ScenarioError(f"sweep.parameters: {path!r}: {part!r} is not a key of {where or 'the scenario'} "
                                f"(keys: {keys})")
        if last:
            node[part] = value
        else:
            node = node[part]
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))


def _refuse_shadowed_stacks(scenario: Scenario, names: list[str], origin: str) -> None:
    """Raise :class:`ScenarioError` if a swept path sets a guest's stack that a ``[compare]``
    table replaces: each guest runs on each compared stack in turn, so its own stack never runs
    and the points would carry labels of stacks that did not run (review 30 F2)."""
    if scenario.compare is None:
        return
    shadowed = [n for n in names if re.fullmatch(r"guests\[-?\d+\]\.stack(\[.*|\..*)?", n)]
    if shadowed:
        raise ScenarioError(f"{origin}: sweep.parameters: {shadowed[0]!r} sets a guest's stack, but the "
                            "[compare] table replaces every guest's stack with each of compare.stacks; "
                            "sweep compare.stacks instead, or remove [compare]")


def expand_sweep(data: dict[str, Any], origin: str = "scenario") -> list[Point]:
    """Every point of the scenario's sweep, each validated; errors before anything runs (the
    base scenario's first, then the sweep's)."""
    if "sweep" not in data:
        raise ScenarioError(f"{origin} has no [sweep] table; add one, or use `virtsim run`")
    parsed = parse_scenario({k: v for k, v in data.items() if k != "sweep"}, origin)  # the base's own errors first
    try:
        spec = SweepSpec.model_validate(data["sweep"])
    except ValidationError as exc:
        raise ScenarioError(f"{origin}: sweep.{format_validation_error(exc, '; sweep.')}") from None
    if not spec.parameters:
        raise ScenarioError(f"{origin}: sweep.parameters is empty; name at least one parameter path")
    empty = [p for p, values in spec.parameters.items() if not values]
    if empty:
        raise ScenarioError(f"{origin}: sweep.parameters: {empty[0]!r} has an empty list of values")
    names = list(spec.parameters)
    lists = [spec.parameters[n] for n in names]
    size = len(lists[0]) if spec.mode == "zip" else math.prod(len(v) for v in lists)
    if size > MAX_POINTS:
        raise ScenarioError(f"{origin}: the sweep has {size:,} points, more than {MAX_POINTS:,}; "
                            "split it into several sweeps or use fewer values")
    if spec.mode == "zip":
        lengths = {n: len(v) for n, v in spec.parameters.items()}
        if len(set(lengths.values())) != 1:
            raise ScenarioError(f"{origin}: sweep mode \"zip\" needs lists of one length; got {lengths}")
        combos = list(zip(*lists, strict=True))
    else:
        combos = list(itertools.product(*lists))
    _refuse_shadowed_stacks(parsed, names, origin)
    full = parsed.model_dump(mode="json", by_alias=True)
    points = []
    for index, combo in enumerate(combos):
        point = json.loads(json.dumps(full))
        values = dict(zip(names, combo, strict=True))
        for name, value in values.items():
            _set(point, name, value)
        where = ", ".join(f"{k} = {v!r}" for k, v in values.items())
        scenario = parse_scenario(point, f"{origin} at sweep point {index} ({where})")
        try:
            scenario.check_measurable()
        except ScenarioError as exc:
            raise ScenarioError(f"{origin} at sweep point {index} ({where}): {exc}") from None
        points.append(Point(index, values, scenario))
    return points


def _run_point(point: Point) -> pd.DataFrame:
    """The runs table of one point, with its index and swept values as columns (lists and dicts as JSON)."""
    from virtsim.experiments.runner import check_measured, run_scenario

    try:
        runs = run_scenario(point.scenario, progress=False, workers=1).runs
        check_measured(point.scenario, runs)
    except ScenarioError as exc:  # found only by running it (nothing measured): name the point
        where = ", ".join(f"{k} = {v!r}" for k, v in point.values.items())
        raise ScenarioError(f"sweep point {point.index} ({where}): {exc}") from None
    runs.insert(0, "point", point.index)
    for name, value in point.values.items():
        if name in point.resolved:
            runs[name] = point.resolved[name]
        else:
            runs[name] = json.dumps(value) if isinstance(value, list | dict) else table_value(value)
    return runs


def table_value(value: Any) -> Any:
    """A swept scalar as ``sweep.parquet`` holds it: a quantity written with a unit (``"250/s"``,
    ``"4KiB"``, ``"10ms"``) as its number in the base unit (1/s, bytes, s), so a parameter's
    column is numeric (a curve can be drawn against it) even when its values mix a bare number
    and a unit; any other string as it is."""
    if not isinstance(value, str):
        return value
    match = _QUANTITY.match(value)
    if match is None:
        return value
    suffix = match.group(2)
    if not suffix:
        return float(match.group(1))
    # The first dimension that knows the suffix; only bandwidths are in two (bits/s listed first),
    # and one column's values all go through the same one, so they stay comparable.
    for table in DIMENSIONS.values():
        if suffix in table:
            return float(match.group(1)) * table[suffix]
    return value


BASE_UNITS = {"bytes": "B", "seconds": "s", "hertz": "Hz", "bits_per_second": "bit/s", "bytes_per_second": "B/s",
              "cycles": "cycles", "per_second": "1/s", "count": ""}


def parameter_units(values: dict[str, list[Any]]) -> dict[str, str]:
    """The unit each swept parameter's numbers are in (see :func:`table_value`): the base unit of
    the dimension its values were written in (``"250/s"`` -> ``1/s``, ``"4KiB"`` -> ``B``), for
    the parameters with some value written with a unit."""
    units = {}
    for name, column in values.items():
        for value in column:
            match = _QUANTITY.match(value) if isinstance(value, str) else None
            if match is None or not match.group(2):
                continue
            dimension = next((d for d, table in DIMENSIONS.items() if match.group(2) in table), None)
            if dimension is not None and BASE_UNITS.get(dimension):
                units[name] = BASE_UNITS[dimension]
                break
    return units


def read_parameter_units(out_dir: Path) -> dict[str, str]:
    """:func:`parameter_units` of a sweep folder's points (``sweep_points.json``); none if it
    cannot be read (an older folder keeps its plain labels)."""
    try:
        held = json.loads((Path(out_dir) / POINTS_INDEX).read_text(encoding="utf-8"))
        columns: dict[str, list[Any]] = {}
        units: dict[str, str] = {}
        for entry in held:
            units |= entry.get("units") or {}
            for name, value in entry.items():
                if name not in ("key", "point", "units"):
                    columns.setdefault(name, []).append(value)
    except (OSError, ValueError, AttributeError, TypeError):
        return {}
    # the units each point recorded (its field's own); a folder from before they were: as written
    return {str(k): str(v) for k, v in units.items()} if units else parameter_units(columns)


def _point_file(out_dir: Path, point: Point) -> Path:
    """Where a point's table is kept: ``points/INDEX-KEY.parquet`` in ``out_dir``."""
    return out_dir / "points" / f"{point.index:06d}-{point.key}.parquet"


def _checksum(runs: pd.DataFrame) -> str:
    """SHA-256 of a point table's content (values and column names, not its file's bytes)."""
    digest = hashlib.sha256(",".join(map(str, runs.columns)).encode())
    digest.update(pd.util.hash_pandas_object(runs, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _write_point(path: Path, point: Point, runs: pd.DataFrame) -> None:
    """Write a point's table with its key and checksum in the Parquet metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(runs, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"virtsim.key": point.key.encode(),
            b"virtsim.checksum": _checksum(runs).encode()}
    atomic_write(path, lambda tmp: pq.write_table(table.replace_schema_metadata(meta), tmp))


def _read_point(path: Path, point: Point) -> pd.DataFrame | None:
    """The point's table if ``path`` holds exactly it (its key, an intact checksum), else ``None``."""
    import pyarrow.parquet as pq

    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        runs = table.to_pandas()
    except Exception:
        return None  # unreadable: compute the point again
    if meta.get(b"virtsim.key") != point.key.encode() or meta.get(b"virtsim.checksum") != _checksum(runs).encode():
        return None  # another point's file, or damaged: compute it again
    return current_columns(runs)


def _finished(path: Path, point: Point) -> bool:
    """Whether ``path`` holds this point's intact table."""
    return _read_point(path, point) is not None


def _index(points: list[Point]) -> list[dict[str, Any]]:
    """The sweep's points as written to ``sweep_points.json``: index, key and swept values."""
    return [{"point": p.index, "key": p.key, **p.values, "units": p.units} for p in points]


def _already_published(points: list[Point], out_dir: Path) -> bool:
    """Whether ``out_dir`` holds this very sweep, finished and sealed, every file as its manifest says."""
    try:
        read_manifest(out_dir)
        held = json.loads((out_dir / POINTS_INDEX).read_text(encoding="utf-8"))
    except (ResultsError, OSError, ValueError):
        return False
    return held == json.loads(json.dumps(_index(points))) and all(
        _finished(_point_file(out_dir, p), p) for p in points)


def run_sweep(points: list[Point], out_dir: Path, workers: int = 1, scheduler: str | None = None,
              progress: bool = True, force: bool = False) -> Path:
    """Run every point not yet finished in ``out_dir``, then gather ``sweep.parquet``.

    ``out_dir`` may hold an unfinished or finished sweep (its points are reused where their keys
    match); anything else there is refused unless ``force``, which clears it first.
    """
    out_dir = Path(out_dir)
    folder = ResultFolder(out_dir, "sweep", None, force=force, resumable=POINTS_INDEX)
    if not force and _already_published(points, out_dir):
        return out_dir / "sweep.parquet"  # nothing to do: the published table stays untouched
    if out_dir.exists():
        folder.unseal()
        (out_dir / "sweep.parquet").unlink(missing_ok=True)
    # the index first: it marks the folder an unfinished sweep, so a kill before the points
    # folder exists leaves one the next run resumes (the other order left a bare points/ that it
    # refused as not a virtsim result: found by the random-kill test on a loaded machine)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / POINTS_INDEX, _index(points))
    (out_dir / "points").mkdir(exist_ok=True)
    for stale in (out_dir / "points").glob(".*.tmp"):  # a write cut short by a kill
        stale.unlink(missing_ok=True)
    pending = [p for p in points if not _finished(_point_file(out_dir, p), p)]
    bar = tqdm(total=len(points), initial=len(points) - len(pending), desc="sweep", unit="point",
               disable=not progress)

    def save(point: Point, runs: pd.DataFrame) -> None:
        _write_point(_point_file(out_dir, point), point, runs)
        bar.update()

    if pending and scheduler is None and workers <= 1:
        for point in pending:
            save(point, _run_point(point))
    elif pending:
        executor, close = _executor(workers, scheduler)
        try:
            futures: dict[Future, Point] = {executor.submit(_run_point, p): p for p in pending}
            for future in as_completed(futures):
                save(futures[future], future.result())
        finally:
            close()
    bar.close()
    result = gather(points, out_dir)
    names = ["sweep.parquet", POINTS_INDEX]
    try:
        from virtsim.experiments.sweep_plots import plot_sweep

        plot_sweep(current_columns(pd.read_parquet(result)), out_dir / "sweep.png", read_parameter_units(out_dir))
        names.append("sweep.png")
    except ValueError:
        (out_dir / "sweep.png").unlink(missing_ok=True)  # nothing numeric swept: no curve to draw
    folder.seal(names)
    return result


def _executor(workers: int, scheduler: str | None) -> tuple[Executor, Any]:
    """A pool for the points (local processes, or a Dask scheduler's) and the function that closes it.

    Compiles the kernel first, so workers load it from the cache; raises :class:`ResultsError` if
    the scheduler cannot be reached.
    """
    from virtsim.sim.kernel import compile_kernel

    compile_kernel()  # local workers then load the compiled loop from the cache
    if scheduler is None:
        pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent)
        return pool, pool.shutdown
    from distributed import Client

    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, ValueError, TypeError, TimeoutError) as exc:
        raise ResultsError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
                           f"({type(exc).__name__}: {exc}); give its address as tcp://HOST:8786") from None
    return client.get_executor(), client.close


def die_with_parent() -> None:
    """In a pool worker: ask Linux to kill this process when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)


def gather(points: list[Point], out_dir: Path) -> Path:
    """Concatenate the points' tables in point order into ``sweep.parquet``."""
    frames = []
    for point in points:
        path = _point_file(out_dir, point)
        runs = _read_point(path, point)
        if runs is None:
            raise ResultsError(f"{path} is missing, damaged or not this point's; rerun the sweep to compute it")
        frames.append(runs)
    table = pd.concat(frames, ignore_index=True)
    return atomic_write(out_dir / "sweep.parquet", lambda tmp: table.to_parquet(tmp, index=False))


def command(args: argparse.Namespace) -> int:
    """``virtsim sweep``: expand the grid, run (or resume) every point, gather and publish the table."""
    from virtsim.experiments import api

    result = api.sweep(Path(args.scenario), Path(args.out), workers=args.workers, scheduler=args.scheduler,
                       progress=not args.quiet, force=args.force, announce=print)
    print(f"     sweep: {Path(str(result.out)) / 'sweep.parquet'}")
    return 0


def report(folder: Path) -> Report:
    """The report of a sweep folder: the primary metric (or throughput) and p99 latency per point, over replications."""
    try:
        table = current_columns(pd.read_parquet(folder / "sweep.parquet"))
    except Exception as exc:
        raise ResultsError(f"{folder / 'sweep.parquet'} cannot be read ({type(exc).__name__})") from None
    params = [c for c in table.columns if c not in
              ("point", "stack", "replication", "guest", "metric", "layer", "station", "value", "unit")]
    try:
        from virtsim.experiments.sweep_plots import apart_columns, series_label, sweep_curves

        x, series, curves = sweep_curves(table)
    except ValueError:
        main = table[(table["layer"] == "all") & (table["station"] == "all") & (table["guest"] != "host")]
        apart = apart_columns(main)  # never averaged together
        answer = main[main["metric"].isin(["throughput_rps", "latency_p99_s"])].pivot_table(
            index=["point", *params, *apart], columns="metric", values="value", aggfunc="mean").reset_index()
    else:
        answer = curves.pivot_table(index=[*series, x], columns="metric", values="mean", sort=False).reset_index()
        for column in series:
            answer[column] = answer[column].map(series_label)
        unit = read_parameter_units(folder).get(x)
        answer = answer.round(6).rename(columns={x: f"{x} ({unit})"} if unit else {})
    return Report("Sweep", f"How do the results change over {', '.join(params)}?", answer,
                  assumptions=["Means over replications; sweep.parquet holds every row."])


EXPERIMENT = Experiment("sweep", "How do the results change over the swept parameters?", command, report,
                        ("sweep.parquet",), tables=("sweep.parquet", POINTS_INDEX), figures=("sweep.png",))
