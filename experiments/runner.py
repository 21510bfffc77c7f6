"""Running a scenario: every variant and replication, gathered into one tidy table.

Rows are (stack, replication, guest, metric, layer, station, value, unit). ``layer`` and
``station`` are ``"all"`` except on attribution rows (``time_mean_s``, ``tail_time_mean_s``) and
on ``utilization`` rows (guest ``"host"``, one per station).
"""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pandas as pd
from tqdm import tqdm

from virtsim.experiments.scenario import POOLED_GUEST, Scenario, ScenarioError, pooled_name
from virtsim.models.hardware.cpu import CPU_STATION
from virtsim.models.hardware.memory import MEMBW_STATION
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import ClosedSpec
from virtsim.sim.control import RunControl
from virtsim.sim.engine import RunResult, simulate
from virtsim.sim.kernel import compile_kernel, simulate_kernel
from virtsim.sim.load import offered_load
from virtsim.sim.records import METRIC_UNITS, latency_metrics, pooled_latencies, request_metrics
from virtsim.sim.routes import OpenArrivals
from virtsim.sim.stations import GroupPath, GroupSpec
from virtsim.sim.stats import sectioned_quantile_interval, summarize
from virtsim.sim.vector import SimultaneousArrivals, simulate_vector, vector_rejects

__all__ = ["COLUMNS", "CoreUse", "RunOutput", "check_stream_cores", "core_use", "run_scenario", "run_scenarios",
           "run_variant", "stream_core_excess", "stream_overcommit"]

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
                                                             cdf=scenario.run.latency_cdf):
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
            pooled = pooled_latencies([result.logs[n] for n in names], control.warmup_s)
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
    not call this.) Then refuses runs whose memory streams and CPU work overcommit the cores
    (:func:`check_stream_cores`)."""
    check_stream_cores(scenario, runs)
    control: RunControl = scenario.run.control()
    window = control.duration_s - control.warmup_s
    closed = {name for spec in scenario.guests for name in spec.names()
              if isinstance(spec.workload.request_workload().arrivals, ClosedSpec)}
    offered = runs[runs["metric"] == "offered_utilization"]
    overloaded = set(offered.loc[offered["value"] >= 1.0, "stack"])
    mine = runs[(runs["layer"] == "all") & (runs["station"] == "all")]
    table = mine.pivot_table(index=["stack", "replication", "guest"], columns="metric", values="value",
                             aggfunc="first")
    for key, row in table.iterrows():
        label, guest = str(key[0]), str(key[2])  # type: ignore[index]
        if "completed" not in row or row["completed"] > 0 or (label in overloaded and guest not in closed):
            continue
        where = (f"guest {guest!r} ({label}): no request that arrived in the measured window "
                 f"[{control.warmup_s:g} s, {control.duration_s:g} s) finished by the end")
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


STREAM_CORE_TOLERANCE = 0.02
"""The share of the host's cores by which streams and CPU work may appear to overlap before a
run is refused: noise in the measured window, not overcommitment."""


@dataclass(frozen=True)
class CoreUse:
    """Where a guest's threads may run: at most ``stream_cap`` streams at once (the smallest
    cap on its streams' group path: vCPUs, cpuset, ``cpu.max``) and ``cpu_cap`` cores of CPU
    work, on the host cores ``cores`` (its cpuset or pin; None: any core)."""

    stream_cap: float = math.inf
    cores: frozenset[int] | None = None
    cpu_cap: float = math.inf  # the most cores its CPU work may hold at once (each group's cap, summed)


def _present(runs: pd.DataFrame, station: Callable[[pd.Series], pd.Series]) -> dict[tuple[str, int, str], float]:
    """Per (stack, replication, guest): its requests at the stations ``station`` picks, at once
    on average (Little's law: throughput x mean time there)."""
    mine = runs[runs["layer"] == "all"]
    times = mine[station(mine["station"]) & (mine["metric"] == "time_mean_s")]
    rate = mine[(mine["station"] == "all") & (mine["metric"] == "throughput_rps")].set_index(
        ["stack", "replication", "guest"])["value"]
    out: dict[tuple[str, int, str], float] = {}
    for label, replication, guest, seconds in zip(times["stack"], times["replication"], times["guest"],
                                                  times["value"], strict=True):
        at = (str(label), int(replication), str(guest))
        out[at] = out.get(at, 0.0) + float(rate.get(at, 0.0)) * float(seconds)
    return out


def stream_core_excess(runs: pd.DataFrame, capacity_cores: float, cores: int,
                       use: dict[tuple[str, str], CoreUse]) -> dict[tuple[str, int], tuple[float, float, str]]:
    """The runs (stack, replication) whose memory streams and CPU work together need more cores
    than they may use: for each, the cores streams keep busy, the cores CPU work keeps busy, and
    which cores. A guest keeps as many cores busy as it has requests at a ``membw`` station
    (at most its :attr:`CoreUse.stream_cap`) and at the CPU at once (Little's law). Checked for
    the whole host and for each core set a guest is bound to, with the guests bound within it
    (two bound to the same two cores share those two; review 32 F1). Host processes that always
    run are no guest's requests, and yield to them.

    A thread streaming memory runs on a core, but the model serves a stream at the bandwidth
    station alone (a stage holds one station): it does not take the core from CPU work. While
    both fit the cores that costs nothing; past them both would get full speed on cores they
    share, so such a run is no answer. Streams alone past the cores are left: the bandwidth
    they share, not the cores, bounds them. Averages over the window: streams and CPU work that
    overlap only part of it can pass (review 32 F3; the mechanism itself is the remedy)."""
    streams = _present(runs, lambda st: st.str.startswith(MEMBW_STATION))
    if not streams:
        return {}
    computing = _present(runs, lambda st: st == CPU_STATION)
    per_core = capacity_cores / cores
    out: dict[tuple[str, int], tuple[float, float, str]] = {}
    for run in sorted({(label, rep) for label, rep, _ in [*streams, *computing]}):
        guests = {g: use.get((run[0], g), CoreUse()) for (label, rep, g) in [*streams, *computing]
                  if (label, rep) == run}
        bound_sets = {u.cores for u in guests.values() if u.cores is not None}
        sets: list[frozenset[int] | None] = [None, *sorted(bound_sets, key=lambda c: sorted(c))]
        for bound in sets:
            size = capacity_cores if bound is None else len(bound) * per_core
            inside = {g: u for g, u in guests.items() if bound is None or (u.cores is not None and u.cores <= bound)}
            busy = sum(min(streams.get((*run, g), 0.0), u.stream_cap) for g, u in inside.items())
            work = sum(min(computing.get((*run, g), 0.0), u.cpu_cap, size) for g, u in inside.items())
            slack = STREAM_CORE_TOLERANCE * size
            if busy > slack and work > slack and min(busy, size) + work > size + slack:
                where = "the host's" if bound is None else f"cores {sorted(bound)}'s"
                out[run] = (busy, work, f"{where} {size:g} cores' worth")
                break
    return out


def _path_cap(groups: Mapping[GroupPath, GroupSpec], path: GroupPath) -> float:
    """The fewest cores the groups on ``path`` (the group itself included) may use at once:
    each one's servers (cap, threads, cores) and ``cpu.max`` quota over period."""
    def cap(spec: GroupSpec) -> float:
        return min(spec.servers, spec.quota_s / spec.period_s if spec.quota_s is not None else math.inf)

    return min((cap(groups[path[:k]]) for k in range(1, len(path) + 1) if path[:k] in groups), default=math.inf)


def core_use(scenario: Scenario) -> dict[tuple[str, str], CoreUse]:
    """For each compared stack and guest, where its threads may run (:class:`CoreUse`): its
    streams' cap is the smallest on their group's path at the bandwidth station (a container's
    in a VM of 1 vCPU: 1; review 32 F4); its cores, those its top-level group on the CPU is
    bound to."""
    out: dict[tuple[str, str], CoreUse] = {}
    for label, stack in scenario.variants():
        stations, sources = scenario.system(stack).engine_inputs()
        specs = {spec.name: spec for spec in stations}
        cpu_groups = specs[CPU_STATION].groups
        for source in sources:
            caps: list[float] = []
            cpu_caps: dict[GroupPath, float] = {}
            for slot in source.route:
                if slot.station.split(":", 1)[0] == MEMBW_STATION:
                    caps.append(_path_cap(specs[slot.station].groups, slot.group))
                elif slot.station == CPU_STATION:
                    cpu_caps[slot.group] = _path_cap(cpu_groups, slot.group)
            bound = next((spec.cores for path, spec in cpu_groups.items()
                          if path[:1] == (source.name,) and spec.cores is not None), None)
            cores = None if bound is None else frozenset(bound)
            out[(label, source.name)] = CoreUse(max(caps, default=math.inf), cores,
                                                sum(cpu_caps.values()) if cpu_caps else math.inf)
    return out


def stream_overcommit(scenario: Scenario, runs: pd.DataFrame) -> dict[tuple[str, int], tuple[float, float, str]]:
    """:func:`stream_core_excess` of ``scenario``'s ``runs`` on its host; nothing to work out
    (no lowering of the guests again) where no request streamed memory."""
    if not runs["station"].str.startswith(MEMBW_STATION).any():
        return {}
    cpu = scenario.host.cpu
    return stream_core_excess(runs, cpu.capacity_cores, cpu.cores, core_use(scenario))


def check_stream_cores(scenario: Scenario, runs: pd.DataFrame) -> None:
    """Raise :class:`ScenarioError` for a run whose memory streams and CPU work overcommit the
    cores they may use (:func:`stream_overcommit`), naming both loads and the ways out."""
    for (label, _), (busy, computing, where) in stream_overcommit(scenario, runs).items():
        raise ScenarioError(
            f"{label}: memory streams keep {busy:.1f} cores busy and CPU work {computing:.1f}, more than "
            f"{where}; the model serves a stream at the memory bandwidth without taking its core, so both "
            "would get their full speed on the cores they share (no answer). Give the host more cores, fewer "
            "streaming threads, or bind the streaming guest to cores of its own (cpuset or pin) that no other "
            "guest uses")


def choose_engine(requested: str, stations: list, sources: list) -> str:
    """The engine that runs: as requested, or for ``auto`` the vector engine where it can, else the kernel."""
    if requested == "auto":
        return "vector" if vector_rejects(stations, sources) is None else "kernel"
    return requested


def _task(args: tuple[Scenario, str, Stack | None, int]) -> tuple[list[dict[str, Any]], str]:
    """Run one (scenario, label, stack override, replication) task: :func:`run_variant` on a tuple, for a pool."""
    return run_variant(*args)


def run_scenario(scenario: Scenario, progress: bool = True, workers: int = 1) -> RunOutput:
    """Run every variant and replication of ``scenario``.

    With ``workers`` > 1 the runs go to a local process pool. Every random number is keyed by
    (seed, replication, names), and rows are gathered in task order, so the table is the same
    whatever the number of workers.
    """
    return run_scenarios([scenario], progress, workers, desc=scenario.name)[0]


def run_scenarios(scenarios: Sequence[Scenario], progress: bool = True, workers: int = 1,
                  desc: str = "runs") -> list[RunOutput]:
    """:func:`run_scenario` of each of ``scenarios``, their runs in one process pool (one pool
    for an experiment of several scenarios: a pool's start and its idle tail are paid once)."""
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
