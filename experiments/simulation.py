"""A scenario run step by step, for control loops (autoscalers, schedulers, learning agents).

    sim = virtsim.Simulation("experiments/scenarios/cgroup-quota.toml", stack="docker{cpu_max=50ms/100ms}")
    while sim.now_s < sim.duration_s:
        sim.step(by_s=0.5)
        seen = sim.observe(since_s=sim.now_s - 0.5)    # per guest: requests, p99 so far
        if seen.loc["api", "latency_p99_s"] > 0.05:
            sim.set_cpu_max("api", 0.1, 0.1)              # raise the container's cpu.max
    sim.set_rate("api", 0)                                # an open-loop guest leaves (0) or returns
    sim.set_clients("db", 4)                              # a closed-loop guest's clients (0..declared)
    runs = sim.runs()                                     # the table `virtsim run` writes

An autoscaler declares the most replicas it may run (``count = 10`` in the scenario), starts
with some of them inactive (``Simulation(..., inactive=["web-3", ..., "web-10"])``) and calls
``sim.add_guest("web")`` (the next inactive replica at its declared load) or
``sim.remove_guest("web-7")``.

Both engines run it (``engine="kernel"``, the default, or ``"des"``) with the same numbers; with
no change along the way, a run in steps equals one uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from virtsim.experiments.runner import offered_rows, result_rows
from virtsim.experiments.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from virtsim.models.virt.container import cpu_max_problem
from virtsim.models.workloads.catalog import Oltp
from virtsim.sim.engine import DesRun
from virtsim.sim.kernel import KernelRun
from virtsim.sim.routes import ClosedArrivals, OpenArrivals

__all__ = ["Simulation"]


class Simulation:
    """One replication of one stack of ``scenario``, advanced by :meth:`step`.

    ``scenario``: a validated :class:`~virtsim.experiments.scenario.Scenario` or a TOML path.
    ``stack``: the compared stack to run, by its label (default: the first variant).
    ``inactive``: guests of the scenario that start without load (see :meth:`add_guest`).
    """

    def __init__(self, scenario: Scenario | str | Path | Mapping[str, Any], stack: str | None = None,
                 engine: Literal["kernel", "des"] = "kernel", replication: int = 0,
                 inactive: Sequence[str] = ()) -> None:
        if isinstance(scenario, Mapping):  # a scenario file's content, as the other API functions take
            scenario = parse_scenario(dict(scenario))
        elif not isinstance(scenario, Scenario | str | Path):
            raise ScenarioError(f"Simulation: expected a Scenario, a scenario file's path or a dict, "
                                f"got {type(scenario).__name__}")
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        variants = dict(self.scenario.variants())
        if stack is None or (stack == "as-written" and self.scenario.compare is None):
            stack = next(iter(variants))  # "as-written": the label before runs were named by their stacks
        if stack not in variants:
            raise ValueError(f"stack {stack!r} is not one this scenario runs; it runs {sorted(variants)}")
        if engine not in ("kernel", "des"):
            raise ValueError(f"engine must be \"kernel\" or \"des\", got {engine!r}")
        self.label, self.engine, self.replication = stack, engine, replication
        self.control = self.scenario.run.control()
        self.stations, self.sources = self.scenario.system(variants[stack]).engine_inputs()
        run_class = KernelRun if engine == "kernel" else DesRun
        self._run: KernelRun | DesRun = run_class(self.stations, self.sources, self.control, replication)
        self._load_changed = False
        self._inactive: list[str] = []  # in the order they left: add_guest brings back the first
        if isinstance(inactive, str):
            raise ValueError(f"inactive is a list of guest names, got the string {inactive!r}")
        for guest in inactive:
            self.remove_guest(guest)

    @property
    def guests(self) -> list[str]:
        """The guests running now (with their load), in the scenario's order."""
        return [s.name for s in self.sources if s.name not in self._inactive]

    def remove_guest(self, guest: str) -> None:
        """Take ``guest``'s load away from now on: no new requests from an open-loop guest (rate 0);
        each client of a closed-loop guest stops after the request it is waiting for or thinking
        towards (a thinking client still makes that one: review 12 counted 8 from 8 clients
        thinking 200 ms), as :meth:`set_clients` to 0. Its groups and stations stay (the host is
        fixed when the run starts), idle."""
        source = self._source(guest)
        if guest in self._inactive:
            raise ValueError(f"guest {guest!r} is already inactive; active: {self.guests}")
        if isinstance(source.arrivals, OpenArrivals):
            self.set_rate(guest, 0)
        elif isinstance(source.arrivals, ClosedArrivals):
            self.set_clients(guest, 0)
        else:
            raise ValueError(f"guest {guest!r} makes a fixed batch or trace of requests; only open- and "
                             "closed-loop guests can be added and removed")
        self._inactive.append(guest)

    def add_guest(self, guest: str) -> str:
        """Bring an inactive guest back at the load the scenario declares for it (its rate, or all
        its clients), from now on; returns its name. ``guest``: a guest's name, or the name of a
        ``[[guests]]`` entry with ``count = N`` (``"web"``), which brings back the first of its
        guests that became inactive. A guest the scenario does not declare cannot be added (the
        host's stations and groups are fixed when the run starts): declare the most there."""
        of_entry = {spec.name: spec.names() for spec in self.scenario.guests}.get(guest, [])
        entry = [g for g in self._inactive if g == guest or g in of_entry]
        if not entry:
            declared = bool(of_entry) or guest in {s.name for s in self.sources}
            why = "is running already" if declared else "is not in the scenario (declare it there, inactive)"
            raise ValueError(f"no inactive guest {guest!r}: it {why}; inactive: {self._inactive}")
        name = entry[0]
        source = self._source(name)
        if isinstance(source.arrivals, OpenArrivals):
            self.set_rate(name, source.arrivals.rate_per_s)
        else:
            assert isinstance(source.arrivals, ClosedArrivals)
            self.set_clients(name, source.arrivals.clients)
        self._inactive.remove(name)
        return name

    def _source(self, guest: str) -> Any:
        """The source of ``guest`` (a :class:`ValueError` naming the guests if there is none)."""
        for source in self.sources:
            if source.name == guest:
                return source
        raise ValueError(f"no guest {guest!r} in this run; its guests are {sorted(s.name for s in self.sources)}")

    @property
    def now_s(self) -> float:
        """Simulated time reached, in seconds."""
        return self._run.now_s

    @property
    def duration_s(self) -> float:
        """Where the run ends, in seconds."""
        return self.control.duration_s

    def step(self, until_s: float | None = None, *, by_s: float | None = None) -> None:
        """Run to ``until_s``, or ``by_s`` seconds further (never past the run's duration)."""
        if (until_s is None) == (by_s is None):
            raise ValueError("give step() either until_s or by_s")
        target = until_s if until_s is not None else self.now_s + float(by_s)  # type: ignore[arg-type]
        if not math.isfinite(target) or target < self.now_s:
            raise ValueError(f"cannot step to {target} s: the run is at {self.now_s} s")
        if abs(target - self.duration_s) <= 1e-9 * max(1.0, self.duration_s):
            target = self.duration_s  # many steps by_s sum to the end with rounding (29.9999999999983 s)
        self._run.step(min(target, self.duration_s))

    def observe(self, since_s: float = 0.0) -> pd.DataFrame:
        """Per guest (the index), so far: requests ``arrived`` and ``finished``, ``in_flight``, and
        ``latency_mean_s``/``latency_p99_s`` of the requests that arrived after ``since_s`` and
        have finished (NaN when none has)."""
        if math.isnan(since_s) or since_s == math.inf:  # -inf: every request so far
            raise ValueError(f"since_s must be a time in seconds (or -inf for all), got {since_s!r}")
        rows = {}
        for name, log in self._run.logs().items():
            arrival, finish = log.arrival_s[:log.n], log.finish_s[:log.n]
            done = ~np.isnan(finish)
            recent = done & (arrival >= since_s)
            latency = finish[recent] - arrival[recent]
            rows[name] = dict(arrived=int(log.n), finished=int(done.sum()), in_flight=int(log.n - done.sum()),
                              latency_mean_s=float(latency.mean()) if latency.size else math.nan,
                              latency_p99_s=float(np.percentile(latency, 99)) if latency.size else math.nan)
        return pd.DataFrame.from_dict(rows, orient="index")

    def set_cpu_max(self, guest: str, quota_s: float, period_s: float | None = None) -> None:
        """Change ``guest``'s cgroup ``cpu.max`` from now on (its quota refilled, unthrottled at
        once, as a write to cpu.max does). ``period_s``: the period, if it changes (default: kept).
        The guest must start with a cpu.max, on exactly one of its groups."""
        where = [(spec.name, path, group) for spec in self.stations if spec.kind == "shared"
                 for path, group in spec.groups.items() if group.quota_s is not None and path[0] == guest]
        guests = sorted({s.name for s in self.sources})
        if guest not in guests:
            raise ValueError(f"no guest {guest!r} in this run; its guests are {guests}")
        if not where:
            raise ValueError(f"guest {guest!r} has no cpu.max to change; give its container a cpu_max "
                             "(for example docker{cpu_max = \"50ms/100ms\"}) when the run starts")
        if len(where) > 1:
            raise ValueError(f"guest {guest!r} has a cpu.max on {len(where)} groups ({[p for _, p, _ in where]}); "
                             "which one to change is ambiguous")
        station, path, group = where[0]
        period = group.period_s if period_s is None else period_s
        problem = cpu_max_problem(quota_s, period)
        if problem:  # as a scenario's cpu_max (review 32 F6: 20000 s per 100000 s never throttled)
            raise ValueError(f"set_cpu_max({guest!r}, {quota_s!r}, {period!r}): {problem}; quota and period "
                             "are in seconds (0.05, 0.1 for \"50ms/100ms\")")
        self._run.set_quota(station, path, quota_s, period)
        self._load_changed = True  # the offered load against the starting quota no longer holds

    def set_rate(self, guest: str, rate_per_s: float) -> None:
        """Change open-loop ``guest``'s request rate (1/s) from now on. 0 removes its load (no new
        requests; those in flight finish) and a positive rate afterwards brings it back, so a
        guest declared in the scenario can join or leave mid-run (the host's stations and groups
        are fixed when the run starts: a guest cannot be added that the scenario does not have).
        The next arrival moves as a Poisson process's does at a rate change."""
        names = sorted({s.name for s in self.sources})
        if guest not in names:
            raise ValueError(f"no guest {guest!r} in this run; its guests are {names}")
        self._run.set_rate(guest, rate_per_s)
        self._load_changed = True

    def set_clients(self, guest: str, clients: int) -> None:
        """Change closed-loop ``guest``'s active clients (connections, threads, jobs) from now on,
        from 0 (the guest goes quiet) to the clients the scenario gives it: the clients beyond the
        new count stop after the request they are thinking towards or waiting for; a stopped
        client taken up again starts with a think time. To grow past the scenario's count,
        declare the most it will have there and lower it before the first step."""
        names = sorted({s.name for s in self.sources})
        if guest not in names:
            raise ValueError(f"no guest {guest!r} in this run; its guests are {names}")
        workload = next(g for g in self.scenario.guests if guest in g.names()).workload
        if isinstance(workload, Oltp) and workload.trx_lock_cycles_per_connection > 0:
            # the read view's scan of every connection is drawn into each transaction's work when
            # the run starts: fewer connections now would keep the declared count's cost (review 26)
            raise ValueError(f"guest {guest!r}: its oltp transactions scan {workload.clients} connections under "
                             "the server lock (trx_lock_cycles_per_connection), fixed when the run starts; "
                             "run each connection count as its own scenario (or a sweep over threads)")
        self._run.set_clients(guest, clients)
        self._load_changed = True

    def runs(self) -> pd.DataFrame:
        """The tidy rows ``virtsim run`` writes for this stack and replication. Only once the run
        has reached its duration: rates are per second of the whole run."""
        if self.now_s < self.duration_s:
            raise ValueError(f"the run is at {self.now_s!r} s of {self.duration_s!r} s; step to the end "
                             "first (observe() reports on a run in progress)")
        rows: list[dict[str, Any]] = result_rows(self.scenario, self.label, self._run.result(), self.replication)
        if not self._load_changed:  # else the offered load would describe the starting rates
            rows += offered_rows(self.label, self.stations, self.sources, self.replication, self.control.seed)
        return pd.DataFrame(rows)
