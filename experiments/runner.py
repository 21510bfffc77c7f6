"""Running a scenario: every variant and replication, gathered into one tidy table.

Rows are (stack, replication, guest, metric, layer, station, value, unit). ``layer`` and
``station`` are ``"all"`` except on attribution rows (``time_mean_s``, ``tail_time_mean_s``) and
on ``utilization`` rows (guest ``"host"``, one per station).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pandas as pd
from tqdm import tqdm

from virtsim.experiments.scenario import POOLED_GUEST, Scenario, ScenarioError, pooled_name
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import ClosedSpec, OpenSpec
from virtsim.sim.control import RunControl
from virtsim.sim.engine import RunResult, simulate
from virtsim.sim.kernel import compile_kernel, simulate_kernel
from virtsim.sim.load import loaded_keys, offered_load, overload_backlog
from virtsim.sim.records import METRIC_UNITS, latency_metrics, pooled_latencies, request_metrics
from virtsim.sim.routes import OpenArrivals
from virtsim.sim.stats import sectioned_quantile_interval, summarize
from virtsim.sim.vector import SimultaneousArrivals, simulate_vector, vector_rejects

__all__ = ["COLUMNS", "RunOutput", "run_scenario", "run_scenarios", "run_variant"]

COLUMNS = ["stack", "replication", "guest", "metric", "layer", "station", "value", "unit"]
SUMMARY_KEYS = ["stack", "guest", "metric", "layer", "station", "unit"]


@dataclass
class RunOutput:
    """The tidy table of a scenario's runs, its summary, and where it came from."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    provenance: dict[str, Any]


def run_variant(scenario: Scenario, label: str, stack: Stack | None,
                replication: int) -> tuple[list[dict[str, Any]], str]:
    """Rows of one replication of one variant, and the engine that ran it."""
    system = scenario.system(stack)
    stations, sources = system.engine_inputs()
    control: RunControl = scenario.run.control()
    engine = choose_engine(scenario.run.engine, stations, sources)
    if engine == "vector":
        try:
            result = simulate_vector(stations, sources, control, replication)
        except SimultaneousArrivals:
            if scenario.run.engine != "auto":
                raise
            engine = "kernel"
            result = simulate_kernel(stations, sources, control, replication)  # auto: event order decides ties
    elif engine == "kernel":
        result = simulate_kernel(stations, sources, control, replication)
    else:
        result = simulate(stations, sources, control, replication)
    return result_rows(scenario, label, result, replication) + offered_rows(label, stations, sources, replication,
                                                                            control.seed), engine


def offered_rows(label: str, stations: list, sources: list, replication: int, seed: int) -> list[dict[str, Any]]:
    """Rows ``offered_utilization`` (guest ``host``): the load open-loop sources offer each station
    and capped group, as a fraction of its capacity (:func:`virtsim.sim.load.offered_load`). At 1
    or more the queue grows for as long as the run lasts. A property of the configuration, not of
    a replication: written with replication 0 only."""
    if replication != 0 or not any(isinstance(s.arrivals, OpenArrivals) for s in sources):
        return []
    loads = offered_load(stations, sources, seed=seed)
    return [dict(stack=label, replication=replication, guest="host", metric="offered_utilization", layer="all",
                 station=name, value=float(value), unit="fraction") for name, value in loads.items()]


def result_rows(scenario: Scenario, label: str, result: RunResult, replication: int) -> list[dict[str, Any]]:
    """The tidy rows of one replication's result: metrics per guest (and pooled), utilization."""
    control: RunControl = scenario.run.control()
    rows: list[dict[str, Any]] = []
    specs = {name: spec.workload for spec in scenario.guests for name in spec.names()}
    for guest, log in result.logs.items():
        found = {}
        for metric, layer, station, value in request_metrics(log, control.warmup_s, control.duration_s,
                                                             cdf=scenario.run.latency_cdf,
                                                             horizon_s=scenario.run.latency_horizon_s):
            rows.append(dict(stack=label, replication=replication, guest=guest, metric=metric,
                             layer=layer, station=station, value=value, unit=METRIC_UNITS[metric]))
            if layer == "all" and station == "all":
                found[metric] = value
        derived = specs[guest].derived_metrics(found["throughput_rps"], found.get("latency_mean_s", float("nan")))
        for metric, value, unit in derived:
            rows.append(dict(stack=label, replication=replication, guest=guest, metric=metric,
                             layer="all", station="all", value=float(value), unit=unit))
    if scenario.run.pooled_latency:
        # Over every guest; and, with several guest entries, over each entry's guests (a service).
        pools = {POOLED_GUEST: list(result.logs)}
        if len(scenario.guests) > 1:
            pools |= {pooled_name(spec.name): spec.names() for spec in scenario.guests}
        for pool, names in pools.items():
            # in arrival order: the interval sections the run in time (latencies near saturation
            # come in correlated runs that order statistics would count as independent)
            pooled = pooled_latencies([result.logs[n] for n in names], control.warmup_s, control.duration_s,
                                      scenario.run.latency_horizon_s)
            low, high = sectioned_quantile_interval(pooled, 0.99)
            for metric, layer, station, value in [("completed", "all", "all", float(pooled.size)),
                                                  *latency_metrics(pooled),
                                                  ("latency_p99_low_s", "all", "all", low),
                                                  ("latency_p99_high_s", "all", "all", high)]:
                rows.append(dict(stack=label, replication=replication, guest=pool, metric=metric,
                                 layer=layer, station=station, value=value, unit=METRIC_UNITS[metric]))
    for station, value in result.utilization.items():
        rows.append(dict(stack=label, replication=replication, guest="host", metric="utilization",
                         layer="all", station=station, value=float(value), unit="fraction"))
    return rows


def check_measured(scenario: Scenario, runs: pd.DataFrame) -> None:
    """Raise :class:`ScenarioError` for a guest none of whose measured requests finished because
    the window is too short for them: a closed loop whose clients were busy (or thinking) the
    whole window, or an open loop whose requests are still in flight though nothing is
    overloaded, or to which no request came. Its latency would be missing and its throughput
    (only requests from before the window, or none) not what the load gives. An open loop on an
    overloaded stack (offered 100% of a resource or more: the report warns) passes: a longer run
    would only queue more. (Density and plan judge overloaded guests by their own rules; they do
    not call this.) Only a guest whose own requests load the overloaded resource passes so, not
    every guest of the stack (review 35 F3)."""
    control: RunControl = scenario.run.control()
    window = control.duration_s - control.warmup_s
    closed = {name for spec in scenario.guests for name in spec.names()
              if isinstance(spec.workload.request_workload().arrivals, ClosedSpec)}
    overloaded = _overloaded_guests(scenario, runs)
    mine = runs[(runs["layer"] == "all") & (runs["station"] == "all")]
    table = mine.pivot_table(index=["stack", "replication", "guest"], columns="metric", values="value",
                             aggfunc="first")
    for key, row in table.iterrows():
        label, guest = str(key[0]), str(key[2])  # type: ignore[index]
        if "completed" not in row or row["completed"] > 0 or ((label, guest) in overloaded and guest not in closed):
            continue
        horizon = scenario.run.latency_horizon_s
        arrived = (f"[{control.warmup_s:g} s, {control.duration_s:g} s)" if horizon <= 0 else
                   f"[{control.warmup_s:g} s, {control.duration_s - horizon:g} s] "
                   f"(run.latency_horizon = {horizon:g} s)")
        where = (f"guest {guest!r} ({label}): no request that arrived in the measured window {arrived} "
                 "finished by the end")
        if row["unfinished"] == 0 and guest not in closed:
            raise ScenarioError(f"{where}: none arrived (an open loop's arrivals are random; few were expected): "
                                "nothing was measured; raise the rate or run.duration")
        why = ("a request or a think time takes longer than the window here" if row["unfinished"] == 0
               else "a request takes longer than the window here")
        raise ScenarioError(
            f"{where} ({row['unfinished']:,.0f} that arrived in it still in flight at the end; "
            f"{row['throughput_rps'] * window:,.0f} that arrived before it finished in it): its latency cannot be "
            "measured and its throughput would be understated; "
            f"lengthen run.duration so that requests finish inside it ({why})")


def _overloaded_guests(scenario: Scenario, runs: pd.DataFrame) -> set[tuple[str, str]]:
    """(stack label, guest) of each guest whose requests load a station, group, set of bound
    cores or lock offered 100% of its capacity or more."""
    offered = runs[(runs["metric"] == "offered_utilization") & (runs["value"] >= 1.0)]
    if offered.empty:
        return set()
    variants = dict(scenario.variants())
    out = set()
    for label, rows in offered.groupby("stack"):
        keys = set(rows["station"])
        stations, sources = scenario.system(variants[str(label)]).engine_inputs()
        out |= {(str(label), s.name) for s in sources if loaded_keys(stations, s) & keys}
    return out


def choose_engine(requested: str, stations: list, sources: list) -> str:
    """The engine that runs: as requested, or for ``auto`` the vector engine where it can, else the kernel."""
    if requested == "auto":
        return "vector" if vector_rejects(stations, sources) is None else "kernel"
    return requested


def _task(args: tuple[Scenario, str, Stack | None, int]) -> tuple[list[dict[str, Any]], str]:
    """Run one (scenario, label, stack override, replication) task: :func:`run_variant` on a tuple, for a pool."""
    return run_variant(*args)


def check_backlog(scenario: Scenario) -> None:
    """Raise :class:`ScenarioError` for a variant whose open-loop guests are offered so much
    more than a resource serves that more than ``MAX_BACKLOG`` requests would queue by the end
    (review 35 F7: 20,000 guests offered 167% of the CPU ran for over ten minutes, each event
    touching every queued request, to measure only a queue that grows with the run)."""
    if not any(isinstance(g.workload.request_workload().arrivals, OpenSpec) for g in scenario.guests):
        return
    control = scenario.run.control()
    for label, stack in scenario.variants():
        stations, sources = scenario.system(stack).engine_inputs()
        # the load certainly offered: costs paid only when a thread was idle left out (counted as
        # always paid, a stable 88,000/s guest read 110%: review 36 F4)
        loads = offered_load(stations, sources, seed=control.seed, certain=True)
        backlog, worst = overload_backlog(stations, sources, loads, control.duration_s)
        if backlog > MAX_BACKLOG:
            raise ScenarioError(
                f"{label}: the open-loop guests are offered {100 * loads[worst]:.0f}% of {worst!r}, so about "
                f"{backlog:,.0f} requests would be queued by the end of run.duration = {control.duration_s:g} s "
                f"(more than {MAX_BACKLOG:,}): the run would take very long and measure only a queue that grows "
                "with it; lower the rates or the guests, or shorten run.duration")


MAX_BACKLOG = 20_000
"""Requests an overloaded run may leave queued (:func:`check_backlog`)."""


def run_scenario(scenario: Scenario, progress: bool = True, workers: int = 1,
                 refuse_backlog: bool = True) -> RunOutput:
    """Run every variant and replication of ``scenario``.

    With ``workers`` > 1 the runs go to a local process pool. Every random number is keyed by
    (seed, replication, names), and rows are gathered in task order, so the table is the same
    whatever the number of workers.
    """
    return run_scenarios([scenario], progress, workers, desc=scenario.name, refuse_backlog=refuse_backlog)[0]


def run_scenarios(scenarios: Sequence[Scenario], progress: bool = True, workers: int = 1,
                  desc: str = "runs", refuse_backlog: bool = True) -> list[RunOutput]:
    """:func:`run_scenario` of each of ``scenarios``, their runs in one process pool (one pool
    for an experiment of several scenarios: a pool's start and its idle tail are paid once).
    ``refuse_backlog``: refuse, before running, a variant that would leave more than
    ``MAX_BACKLOG`` requests queued (:func:`check_backlog`); density and plan, which run
    overloaded hosts to find where they fail, do not ask."""
    if refuse_backlog:
        for scenario in scenarios:
            check_backlog(scenario)
    owner = [k for k, scenario in enumerate(scenarios) for _ in scenario.variants()
             for _ in range(scenario.run.replications)]  # the scenario of each task, by position
    tasks = [(scenario, label, stack, r) for scenario in scenarios for label, stack in scenario.variants()
             for r in range(scenario.run.replications)]
    bar = tqdm(total=len(tasks), desc=desc, unit="run", disable=not progress)
    results: list[tuple[list[dict[str, Any]], str]] = []
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            results.append(_task(task))
            bar.update()
    else:
        compile_kernel()  # workers then load the compiled loop from the cache, not compile it each
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_task, tasks):
                results.append(result)
                bar.update()
    bar.close()
    outputs = []
    for k, scenario in enumerate(scenarios):
        mine = [i for i, o in enumerate(owner) if o == k]
        runs = pd.DataFrame([row for i in mine for row in results[i][0]], columns=COLUMNS)
        engines: dict[str, set[str]] = {}
        for i in mine:
            engines.setdefault(tasks[i][1], set()).add(results[i][1])
        ran = {label: "+".join(sorted(e)) for label, e in engines.items()}
        outputs.append(RunOutput(runs, summarize(runs, SUMMARY_KEYS), provenance(scenario, ran)))
    return outputs


def provenance(scenario: Scenario, engines: dict[str, str]) -> dict[str, Any]:
    """What produced a result: the validated scenario, seeds, engine and versions."""
    versions = {}
    for package in ("virtsim", "simpy", "numpy", "pandas", "pydantic", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "scenario": scenario.model_dump(mode="json", by_alias=True),
        "seed": scenario.run.seed,
        "replications": scenario.run.replications,
        "random_streams": "numpy SeedSequence(entropy=seed, spawn_key=(replication, *blake2b(names)))",
        "engine_requested": scenario.run.engine,
        "engine": engines,  # per variant, the engine that ran (des+vector if replications differed)
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
