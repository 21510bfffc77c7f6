"""The capacity planner: a mix of services and host types in, hosts per stack out.

``virtsim plan PLAN.toml --out DIR`` writes ``plan.csv`` (per host type and stack: hosts, guests
per host, cores, memory and disk used, the bottleneck, the fleet's start-up time) and
``plan_services.csv`` (each service's per-guest needs), and a plot. A service that cannot fit on
any host type is an error naming it.

Hosts are packed under a utilization cap: no resource of a host, and no station of a guest's
own, above ``1 - headroom``. A service may promise a p99 latency (``p99_latency``): then one host
of each distinct mix of guests holding a promised service is simulated with the guests packed on
it (:func:`_hosts_to_check`), each service's p99 taken over its guests' requests there, the worst
host's figure kept; while one misses its promise, the cap is lowered by a fifth and
the fleet packed again (at most ``MAX_SLO_ROUNDS`` times), so the plan grows until every promise
holds, or says it cannot; the last step is then narrowed by bisection. ``spare_hosts`` (N+k)
adds hosts that let the fleet lose k of them: the packing onto the others already holds every
guest. The cheapest feasible option is marked.

Start-up: the guests of a host boot at once, contending for its cores and disk (a boot storm,
simulated: :func:`virtsim.models.density.startup.boot_storm`); hosts start in parallel, so the fleet is up
when the fullest host is.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from virtsim.experiments.inputs import InputError, load_toml_model
from virtsim.experiments.outputs import atomic_write
from virtsim.experiments.registry import Experiment
from virtsim.experiments.report import Report, blank_missing, read_results_csv, stacks_fields
from virtsim.experiments.scenario import (
    PackingSpec,
    WorkloadValue,
    check_numa_placement,
    numa_placements,
)
from virtsim.experiments.steady import MIN_RUN_S, relaxation_s, steady_runs, work_scv
from virtsim.models.density.footprint import footprint
from virtsim.models.density.planner import RESOURCES, GuestNeeds, Packing, guest_needs, pack
from virtsim.models.density.startup import boot_storm
from virtsim.models.hardware.host import HostSpec
from virtsim.models.quantities import Bytes, Seconds
from virtsim.models.resources import resource_of
from virtsim.models.schema import StrictModel
from virtsim.models.virt.stack import Stack
from virtsim.models.workloads.request import OpenSpec, lock_name

__all__ = ["EXPERIMENT", "MAX_JUDGED_MIXES", "MAX_SLO_REQUESTS", "MAX_SLO_ROUNDS", "PlanSpec", "command", "load_plan",
           "plan", "report"]

MIN_HEADROOM = 0.02  # a resource planned at 98% busy at most: at 100% a queue never drains
MAX_SLO_ROUNDS = 8  # lowered caps tried before a promise is called unkeepable
SLO_CAP_STEP = 0.8  # each round keeps this share of the previous cap
SLO_BISECTIONS = 3  # halvings of the last step, between a cap that kept the promises and one that broke them
MAX_SLO_REQUESTS = 200_000  # requests in one simulated host, all services together
MAX_JUDGED_MIXES = 8  # distinct mixes of guests simulated per round to judge the promises


class HostType(StrictModel):
    """A kind of host to buy: its ``name``, its hardware (``host``, as a scenario's ``[host]``) and
    its ``cost`` relative to the other host types (unitless; the cheapest feasible option is marked)."""

    name: str = Field(min_length=1)
    host: HostSpec = Field(default_factory=HostSpec)
    cost: float = Field(1.0, ge=0, le=1e12)  # relative cost of one host, for the cheapest choice


class Service(StrictModel):
    """A service to place: how many guests, what each serves, and its memory and disk.

    ``guests``: how many; ``workload``: each guest's workload, open-loop (its rate is the guest's
    load, req/s); ``p99_latency`` (s, optional): the promise checked by simulation;
    ``app_memory`` (bytes): the application's working set per guest; ``image`` (bytes): the base
    image or image layers, stored once per host; ``diff`` (bytes): each guest's differencing disk
    or writable layer.
    """

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    guests: int = Field(ge=1, le=10_000_000)
    workload: WorkloadValue
    p99_latency_s: Seconds | None = Field(None, alias="p99_latency", gt=0)  # the promise, checked by simulation
    app_memory_bytes: Bytes = Field(512 * 2**20, alias="app_memory")
    image_bytes: Bytes = Field(2 * 2**30, alias="image")
    diff_bytes: Bytes = Field(256 * 2**20, alias="diff")

    @model_validator(mode="after")
    def _open_loop(self) -> Service:
        """Refuse a workload without open-loop arrivals: a plan sizes hosts from a rate (raises ``ValueError``)."""
        arrivals = self.workload.request_workload().arrivals
        if arrivals.kind != "open":
            raise ValueError(
                f"service {self.name!r}: its workload (kind = {self.workload.kind!r}) has {arrivals.kind}-loop "
                "clients, but a plan sizes hosts from a request rate per guest; give the workload a rate "
                "(web, kv-store and oltp take one), or use kind = \"request\" with "
                "arrivals = { kind = \"open\", rate = \"...\" }")
        return self


class PlanSpec(PackingSpec):
    """A plan file: stacks to compare, host types to buy, services to place, and the headroom.

    ``headroom``: the share of every resource left unused (the utilization cap is
    ``1 - headroom``; at least ``MIN_HEADROOM``); ``spare_hosts``: k of N+k; ``slo_samples``:
    requests per service behind each simulated p99; ``seed``: random seed; ``host_reserved``
    (bytes): memory kept for each host itself; ``stacks``, ``host_types`` (:class:`HostType`),
    ``services`` (:class:`Service`).
    """

    headroom: float = Field(0.25, lt=1)
    spare_hosts: int = Field(0, ge=0, le=10_000)  # N+k: hosts the fleet may lose
    host_types: list[HostType] = Field(min_length=1)
    services: list[Service] = Field(min_length=1)

    @field_validator("headroom")
    @classmethod
    def _stable(cls, headroom: float) -> float:
        """Refuse a ``headroom`` below ``MIN_HEADROOM`` (raises ``ValueError``)."""
        if not headroom >= MIN_HEADROOM:
            raise ValueError(f"headroom = {headroom:g} would let a host run a resource at "
                             f"{100 * (1 - headroom):g}% busy, where queues grow without bound; use at least "
                             f"{MIN_HEADROOM:g} (and a p99_latency per service to size it from latency)")
        return headroom

    @model_validator(mode="after")
    def _consistent(self) -> PlanSpec:
        """Unique names, memory left on every host type after ``host_reserved``, and NUMA placements each host has."""
        for what, names in (("services", [s.name for s in self.services]),
                            ("host_types", [h.name for h in self.host_types])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what}: name {repeated[0]!r} is used more than once; give each a unique name")
        for ht in self.host_types:
            if self.host_reserved_bytes >= ht.host.memory.capacity_bytes:
                raise ValueError(
                    f"host_reserved ({self.host_reserved_bytes / 2**30:.3g} GiB) is not below host type "
                    f"{ht.name!r}'s memory ({ht.host.memory.capacity_bytes / 2**30:.3g} GiB): nothing would be "
                    "left for guests; lower host_reserved or give the host type more memory")
            for service in self.services:
                try:
                    check_numa_placement([service.workload.request_workload()], ht.host.memory.nodes)
                except ValueError as exc:
                    raise ValueError(f"service {service.name!r} on host type {ht.name!r}: "
                                     f"{str(exc).replace('guests[0].workload: ', '')}") from None
            self._one_placement(ht)
        return self

    def _one_placement(self, ht: HostType) -> None:
        """Refuse services that stream memory bound to different numbers of NUMA nodes (or bound
        and interleaved): any two may share a host, and that mix is not modelled (review 35 F6)."""
        placements = numa_placements([s.workload.request_workload() for s in self.services], ht.host.memory.nodes)
        if len(placements) > 1:
            named = ", ".join(f"{self.services[i].name!r} ({nodes} of {ht.host.memory.nodes} nodes)"
                              for nodes, (i, _) in sorted(placements.items()))
            raise ValueError(f"services {named} stream memory over different NUMA nodes on host type {ht.name!r}; "
                             "the planner may put them on one host, and bound and interleaved traffic sharing "
                             "memory controllers is not modelled: give every service's seq memory demands the "
                             "same numa_nodes, or plan them separately")


def load_plan(path: str | Path) -> PlanSpec:
    """A plan file, validated."""
    return load_toml_model(path, PlanSpec, "plan file")


def _fits_alone(needs: list[GuestNeeds], usable: float) -> list[bool]:
    """Whether one guest of each service fits a host within ``usable`` (its own stations too)."""
    return [bool(((n.per_guest + n.per_host) <= usable + 1e-12).all())
            and max(n.private_stations.values(), default=0.0) <= usable for n in needs]


def _binding(n: GuestNeeds) -> str:
    """What one guest of a service loads most, and how much (for messages)."""
    shared = n.per_guest + n.per_host
    i = int(np.argmax(shared))
    worst = (RESOURCES[i], float(shared[i]))
    own = max(n.private_stations.items(), key=lambda kv: kv[1], default=("", 0.0))
    station = own[0]
    if (lock := lock_name(station)) is not None:  # the lock's guest is the planner's own stand-in
        station = f"{resource_of(station)} {lock!r}"
    name, load = (f"its own {station}", own[1]) if own[1] > worst[1] else worst
    return f"{name} {100 * load:.0f}% busy"


def _fix_for(binding: str) -> str:
    """What to change when one guest alone is held by ``binding`` (a :func:`_binding` text)."""
    if "server lock" in binding:  # no host or vCPU makes a serialised section shorter
        return "a lower rate, or less work inside the lock (trx_lock_cycles for oltp)"
    return "a bigger host type or guest (more vCPUs, a higher cpu.max), a smaller app_memory or a lower rate"


def _rate_per_s(service: Service) -> float:
    """Requests per second one guest of ``service`` receives (services are open loops)."""
    arrivals = service.workload.request_workload().arrivals
    assert isinstance(arrivals, OpenSpec)  # Service refuses the other kinds
    return float(arrivals.rate_per_s)


def _simulate_host(spec: PlanSpec, ht: HostType, stack: Stack, on_host: np.ndarray) -> dict[str, Any]:
    """Simulate one host holding ``on_host[i]`` guests of service i: per service with a promise
    placed there, its p99 over all its guests' requests together (seconds) and how many
    requests it rests on."""
    from virtsim.experiments.runner import run_scenario
    from virtsim.experiments.scenario import POOLED_GUEST, parse_scenario, pooled_name

    placed = [(i, s, int(c)) for i, (s, c) in enumerate(zip(spec.services, on_host, strict=True)) if c > 0]
    rates = {s.name: c * _rate_per_s(s) for _, s, c in placed}
    promised = [s.name for _, s, _ in placed if s.p99_latency_s is not None]
    if not promised:
        return {}
    # Long enough for slo_samples requests of the slowest promised service (after a 10% warm-up)
    # and at least MIN_RUN_S, but no more than MAX_SLO_REQUESTS in all: a rare service then rests
    # on fewer (reported). Near saturation, longer until the p99s are steady (steady_runs).
    # The p99s are judged over requests that arrived at least the longest promise before the end
    # (a request still in flight then counts with its wait so far: review 35 F1), and the run
    # is long enough that those span four times that promise.
    horizon = max(s.p99_latency_s for _, s, _ in placed if s.p99_latency_s is not None)
    duration = min(max(max(spec.slo_samples / rates[n] for n in promised) * 1.05 / 0.9, MIN_RUN_S),
                   MAX_SLO_REQUESTS / sum(rates.values()))
    # ... within MAX_SLO_REQUESTS still, unless the judged window would vanish (review 36)
    duration = min(max(duration + horizon / 0.9, 5 * horizon / 0.9),
                   max(MAX_SLO_REQUESTS / sum(rates.values()), 2 * horizon / 0.9))
    # Guest entries are named by position: "s0" and "s1" cannot collide as "api" and "api-1" would
    # once "api" is expanded to api-1, api-2.
    data = {"name": "plan-host", "host": ht.host,
            "run": {"duration": duration, "warmup": duration / 10, "replications": 1, "seed": spec.seed,
                    "engine": "auto", "pooled_latency": True, "latency_horizon": horizon},
            "guests": [{"name": f"s{i}", "count": c, "stack": stack,
                        "workload": s.workload} for i, s, c in placed]}
    scenario = parse_scenario(data, f"plan host of type {ht.name!r}")

    def run(duration_s: float) -> pd.DataFrame:
        sized = scenario.with_run_length(duration_s, duration_s / 10)
        return run_scenario(sized, progress=False, refuse_backlog=False).runs

    pools = {s.name: pooled_name(f"s{i}") if len(placed) > 1 else POOLED_GUEST for i, s, _ in placed}
    promises = {pools[s.name]: s.p99_latency_s for _, s, _ in placed if s.p99_latency_s is not None}
    scv: dict[str, float] = {}  # the most variable work any service brings each station
    stations, sources = scenario.system().engine_inputs()
    for source in sources:
        for station, value in work_scv(source, samples=1024, stations=stations).items():
            scv[station] = max(scv.get(station, 0.0), value)
    runs = steady_runs(run, duration, pools=list(promises), limits=promises,
                       relaxation=lambda r: relaxation_s(r, sum(rates.values()), scv))
    out = {}
    for _, service, _ in placed:
        if service.p99_latency_s is None:
            continue
        pool = pools[service.name]
        rows = runs[(runs["guest"] == pool) & (runs["layer"] == "all") & (runs["station"] == "all")]
        values = rows.set_index("metric")["value"]
        # a p99 still rising at the longest run is not kept: judge() counts it as missing the promise
        out[service.name] = {"p99_s": float(values["latency_p99_s"]), "p99_requests": int(values["completed"]),
                             "p99_steady": pool not in runs.attrs.get("unsteady", [])}
    return out


def _hosts_to_check(packing: Packing, promised: list[int]) -> list[int]:
    """The hosts whose simulation judges every promise: one host of each distinct mix of guests
    that holds a promised service (the most loaded of those with that mix), at most
    ``MAX_JUDGED_MIXES`` of them, most loaded first, plus for a promised service none of those
    holds the most loaded host holding it. The most loaded host alone is not enough: it may be
    most loaded in memory while a service's p99 is worst on another host, where more of its
    guests share the CPU (review 8 A2)."""
    load = packing.load.max(axis=1)
    holding = [h for h in np.argsort(-load, kind="stable") if packing.counts[h, promised].sum() > 0]
    mixes: dict[tuple[int, ...], int] = {}
    for h in holding:
        mixes.setdefault(tuple(int(c) for c in packing.counts[h]), int(h))
    hosts = list(mixes.values())[:MAX_JUDGED_MIXES]
    for i in promised:
        if packing.counts[hosts, i].sum() == 0:
            with_it = np.flatnonzero(packing.counts[:, i] > 0)
            hosts.append(int(with_it[np.argmax(load[with_it])]))
    return hosts


def _packed_within_slos(spec: PlanSpec, ht: HostType, stack: Stack, needs: list[GuestNeeds]
                        ) -> tuple[Packing | None, float, dict[str, Any], list[str], str]:
    """Pack under the headroom cap, then lower the cap until every promise holds on the hosts
    that judge it (:func:`_hosts_to_check`), and narrow the last step by bisection
    (``SLO_BISECTIONS`` halvings between the cap that kept the promises and the one that broke
    them). Returns the packing (None if no cap keeps them), the last cap simulated, each promised
    service's worst simulated p99, the services whose promise lowered the cap, and a note."""
    counts = np.array([s.guests for s in spec.services])
    per_guest = np.array([n.per_guest for n in needs])
    per_host = np.array([n.per_host for n in needs])
    promise = {s.name: s.p99_latency_s for s in spec.services if s.p99_latency_s is not None}
    promised = [i for i, s in enumerate(spec.services) if s.p99_latency_s is not None]
    simulated: dict[tuple[int, ...], dict[str, Any]] = {}  # packings repeat as the cap falls

    def judge(cap: float) -> tuple[Packing, dict[str, Any], list[str], bool]:
        """The packing under ``cap``, its promised services' worst p99s, those that miss, and
        whether a judged host holds more than one guest (else fewer per host cannot help)."""
        packing = pack(counts, per_guest, per_host, cap)
        judges = _hosts_to_check(packing, promised)
        measured = _worst_p99s(spec, ht, stack, [packing.counts[h] for h in judges], simulated)
        missed = sorted(n for n, m in measured.items()
                        if m["p99_s"] > promise[n] or not m["p99_steady"])
        return packing, measured, missed, max(int(packing.counts[h].sum()) for h in judges) > 1

    usable, bound = 1 - spec.headroom, list[str]()
    measured, tried_cap, broke = dict[str, Any](), usable, None
    for _ in range(MAX_SLO_ROUNDS + 1):
        if not all(_fits_alone(needs, usable)):
            break
        if not promise:
            return pack(counts, per_guest, per_host, usable), usable, {}, [], ""
        tried_cap = usable
        packing, measured, missed, shared = judge(usable)
        if not missed:
            if broke is not None:
                packing, usable, measured = _bisect(judge, packing, usable, measured, broke)
            return packing, usable, measured, bound, ""
        bound = sorted({*bound, *missed})
        if not shared:
            break  # one guest alone misses: fewer guests per host cannot help
        broke, usable = usable, usable * SLO_CAP_STEP
    return None, tried_cap, measured, bound, _infeasible_note(measured, promise, usable, tried_cap)


def _bisect(judge: Any, packing: Packing, kept: float, measured: dict[str, Any], broke: float
            ) -> tuple[Packing, float, dict[str, Any]]:
    """The highest cap found between ``kept`` (keeps every promise, with ``packing`` and
    ``measured``) and ``broke`` (breaks one) in ``SLO_BISECTIONS`` halvings, with its packing and
    figures: a step of a fifth would otherwise leave up to a fifth of the capacity unused."""
    for _ in range(SLO_BISECTIONS):
        middle = (kept + broke) / 2
        trial, trial_measured, missed, _ = judge(middle)
        if missed:
            broke = middle
        else:
            packing, kept, measured = trial, middle, trial_measured
    return packing, kept, measured


def _worst_p99s(spec: PlanSpec, ht: HostType, stack: Stack, hosts: list[np.ndarray],
                simulated: dict[tuple[int, ...], dict[str, Any]]) -> dict[str, Any]:
    """Each promised service's figures on the host (of ``hosts``, guest counts per service) where
    its p99 is worst (a p99 not steady is worse than any steady one); each mix of guests is
    simulated once (``simulated`` keeps them)."""
    def badness(m: dict[str, Any]) -> tuple[bool, float]:
        return not m["p99_steady"], m["p99_s"]

    measured: dict[str, Any] = {}
    for counts in hosts:
        key = tuple(int(c) for c in counts)
        if key not in simulated:
            simulated[key] = _simulate_host(spec, ht, stack, counts)
        for name, m in simulated[key].items():
            if name not in measured or badness(m) > badness(measured[name]):
                measured[name] = m
    return measured


def _infeasible_note(measured: dict[str, Any], promise: dict[str, float], usable: float, tried_cap: float) -> str:
    """Why no cap kept the promises: a guest stopped fitting first, or the worst p99 stayed above its promise."""
    if not measured:
        return (f"infeasible: with hosts at most {100 * usable:.0f}% used a guest no longer fits one host, and "
                "the promises were not kept above that")
    worst = max(measured, key=lambda n: measured[n]["p99_s"] / promise[n])
    return (f"infeasible: the p99 of {worst!r} ({measured[worst]['p99_s'] * 1e3:.3g} ms) stays above its promise "
            f"({promise[worst] * 1e3:.3g} ms) even with hosts at most {100 * tried_cap:.0f}% used")


def _fleet_figures(spec: PlanSpec, ht: HostType, stack: Any, p: Packing, usable: float) -> dict[str, Any]:
    """A feasible option's row: hosts (with spares), cost, guests per host, what is used, the
    bottleneck and the fleet's start-up (hosts start in parallel; the fullest host's boot storm)."""
    per_host_guests = p.counts.sum(axis=1)
    startup = float(boot_storm(ht.host, stack, int(per_host_guests.max())).max())
    load = p.load * usable  # back to fractions of capacity
    hosts = p.hosts + spec.spare_hosts
    return {
        "hosts": hosts, "spare_hosts": spec.spare_hosts, "cost": hosts * ht.cost,
        "guests": int(sum(s.guests for s in spec.services)),
        "guests_per_packed_host_mean": float(per_host_guests.mean()),
        "guests_per_host_max": int(per_host_guests.max()),
        # cores' worth: the CPU's capacity with every SMT thread busy, as its load is a share of
        "cores_used": float(load[:, RESOURCES.index("cpu")].sum() * ht.host.cpu.capacity_cores),
        "memory_used_bytes": float(load[:, RESOURCES.index("memory")].sum()
                                   * (ht.host.memory.capacity_bytes - spec.host_reserved_bytes)),
        "disk_used_bytes": float(load[:, RESOURCES.index("disk_space")].sum() * ht.host.storage.capacity_bytes),
        "bottleneck": p.bottleneck(), "peak_utilization": float(load.max()),
        "fleet_startup_s": startup, "note": "",
    }


def _plan_host_type(spec: PlanSpec, ht: HostType, stack: Stack,
                    label: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One host type with one stack: its fleet row (or why none is possible) and each service's
    needs there (with its worst simulated p99 where it promised one)."""
    needs = [guest_needs(ht.host, stack, s.workload.request_workload(), s.app_memory_bytes,
                         s.image_bytes, s.diff_bytes, spec.host_reserved_bytes) for s in spec.services]
    fits = _fits_alone(needs, 1 - spec.headroom)
    service_rows = [{"stack": label, "host_type": ht.name, "service": s.name,
                     **{f"{r}_per_guest": v for r, v in zip(RESOURCES, n.per_guest, strict=True)},
                     "own_station_utilization": max(n.private_stations.values(), default=0.0),
                     "fits_one_host": ok, "binding": _binding(n), "p99_promise_s": s.p99_latency_s}
                    for s, n, ok in zip(spec.services, needs, fits, strict=True)]
    killed = [f"{s.name} ({fp.oom_reason})" for s in spec.services
              if (fp := footprint(stack, s.app_memory_bytes)).oom]
    if killed:  # no packing helps a guest whose own memory limit is below what it holds
        return ({"host_type": ht.name, "stack": label, "hosts": np.nan,
                 "note": f"infeasible: OOM kill of {'; '.join(killed)}"}, service_rows)
    too_big = [s.name for s, ok in zip(spec.services, fits, strict=True) if not ok]
    if too_big:
        why = "; ".join(f"{r['service']}: {r['binding']}" for r in service_rows if not r["fits_one_host"])
        return ({"host_type": ht.name, "stack": label, "hosts": np.nan,
                 "note": f"infeasible: {', '.join(too_big)} cannot fit on one host ({why})"}, service_rows)
    p, usable, measured, bound, note = _packed_within_slos(spec, ht, stack, needs)
    for r in service_rows:
        r.update(measured.get(r["service"], {}))
    row = {"host_type": ht.name, "stack": label, "utilization_cap": usable, "slo_bound": ", ".join(bound)}
    if p is None:
        return {**row, "hosts": np.nan, "note": note}, service_rows
    return {**row, **_fleet_figures(spec, ht, stack, p, usable)}, service_rows


def plan(spec: PlanSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per host type and stack, the fleet; and every service's per-guest needs (with its
    simulated p99 on the host where it is worst among those judged, where it made a promise)."""
    rows, needs_rows = [], []
    for stack in spec.stacks:
        label = stack.label
        results, service_rows = [], []
        for ht in spec.host_types:
            fleet_row, per_service = _plan_host_type(spec, ht, stack, label)
            results.append(fleet_row)
            service_rows += per_service
        needs_rows += service_rows
        placeable = {r["service"] for r in service_rows if r["fits_one_host"]}
        unplaceable = [s.name for s in spec.services if s.name not in placeable]
        if unplaceable:
            worst = {r["service"]: r["binding"] for r in service_rows}
            binding = worst[unplaceable[0]]
            raise InputError(f"service {unplaceable[0]!r} cannot fit on any host type with stack "
                             f"{label!r} (even alone, within headroom {spec.headroom}: one guest keeps "
                             f"{binding}); give it {_fix_for(binding)}")
        rows += results
    fleet = pd.DataFrame(rows)
    costs = fleet["cost"] if "cost" in fleet else pd.Series(np.nan, index=fleet.index)
    fleet["cheapest"] = costs.notna() & (costs == costs.min())
    return fleet, pd.DataFrame(needs_rows)


def write_plan(out_dir: Path, fleet: pd.DataFrame, needs: pd.DataFrame) -> dict[str, Path]:
    """Write ``plan.csv``, ``plan_services.csv`` and ``plan.png`` into ``out_dir``; returns their paths by name."""

    from virtsim.experiments.figures import grid, new_axes, save_figure

    out_dir = Path(out_dir)
    paths = {"plan": atomic_write(out_dir / "plan.csv", lambda t: fleet.to_csv(t, index=False)),
             "services": atomic_write(out_dir / "plan_services.csv", lambda t: needs.to_csv(t, index=False))}
    table = fleet.pivot_table(index="stack", columns="host_type", values="hosts", sort=False, dropna=False)
    fig, ax = new_axes((7, 4))
    if table.notna().any().any():
        table.plot.bar(ax=ax, rot=0)
    else:  # every option infeasible: say so rather than draw empty bars
        ax.text(0.5, 0.5, "no feasible option (see the notes in plan.csv)", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_ylabel("hosts needed")
    ax.set_title("Hosts needed per stack and host type")
    grid(ax, "y")
    fig.tight_layout()
    save_figure(fig, out_dir / "plan.png")
    paths["plot"] = out_dir / "plan.png"
    return paths


def command(args: argparse.Namespace) -> int:
    """``virtsim plan``: validate the plan, check the folder, plan every host type and stack, publish, print."""
    from virtsim.experiments import api

    spec = load_plan(args.plan)
    result = api.publish_checked("plan", spec, args.out, args.force, lambda: api.plan(spec), 9)
    shown = [c for c in ("host_type", "stack", "hosts", "guests_per_packed_host_mean", "bottleneck", "fleet_startup_s",
                         "cheapest", "note") if c in result.fleet.columns]
    print(result.fleet[shown].astype(object).where(result.fleet[shown].notna(), "").to_string(index=False))
    return 0


def _plan_sentences(fleet: pd.DataFrame, services: pd.DataFrame) -> list[str]:
    """The plan's answer in words: the cheapest option, what binds it, and each promise's p99."""
    if "cheapest" in fleet.columns:
        cheapest = fleet["cheapest"].astype(bool)
    else:  # a folder written before options were marked: the feasible rows of least cost
        cost = fleet["cost"] if "cost" in fleet.columns else pd.Series(float("nan"), index=fleet.index)
        cheapest = cost.notna() & (cost == cost.min())
    if not cheapest.any():
        return ["No option keeps every service on a host and every p99 promise: see the notes per row."]
    out = []
    for _, best in fleet[cheapest].iterrows():
        bound = str(best.get("slo_bound", "") or "")
        binds = (f"the p99 promise of {bound} (hosts at most {100 * float(best['utilization_cap']):.0f}% used)"
                 if bound and bound != "nan" and "utilization_cap" in best else f"{best['bottleneck']}")
        out.append(f"Cheapest: {int(best['hosts'])} {best['host_type']} hosts with {best['stack']} "
                   f"(cost {float(best['cost']):.4g}); what binds it: {binds}.")
        if "p99_s" in services.columns:
            kept = services[(services["stack"] == best["stack"]) & (services["host_type"] == best["host_type"])
                            & services["p99_s"].notna()]
            out += [f"{r['service']}: p99 {1e3 * float(r['p99_s']):.3g} ms on its worst simulated host "
                    f"(promise {1e3 * float(r['p99_promise_s']):.3g} ms, {int(r['p99_requests'])} requests)"
                    for _, r in kept.iterrows()]
    return out


def report(folder: Path) -> Report:
    """The report of a ``virtsim plan`` folder: hosts per stack and host type, and the cheapest option."""
    fleet = read_results_csv(folder / "plan.csv")
    services = read_results_csv(folder / "plan_services.csv")
    cols = [c for c in ("host_type", "stack", "hosts", "cost", "cheapest", "guests_per_packed_host_mean", "bottleneck",
                        "slo_bound", "utilization_cap", "peak_utilization", "fleet_startup_s", "note")
            if c in fleet.columns]
    return Report("Capacity plan", "How many hosts of each type does each stack need for this mix of services?",
                  blank_missing(fleet[cols].round(3)),
                  assumptions=[
                   "Hosts are packed under a utilization cap (1 - headroom) on every host resource and every "
                   "guest's own stations; where a service promises a p99, one host of each mix of guests holding "
                   "it is simulated (the worst p99 kept) and the cap lowered until every promise holds. "
                   "plan_services.csv gives each service's needs."],
                  sentences=_plan_sentences(fleet, services), **stacks_fields(fleet["stack"]))


EXPERIMENT = Experiment("plan", "How many hosts of each type does each stack need for this mix of services?",
                        command, report, ("plan.csv", "plan_services.csv"), tables=("plan.csv", "plan_services.csv"),
                        figures=("plan.png",))
